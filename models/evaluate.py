"""Evaluate a checkpoint on a split: `python -m models.evaluate --checkpoint CKPT --data DIR --split test`.

Returns auc, domain_auc, gauc, logloss, pvctr@1, pvctr@3 (offline replay proxy of the online PVCTR; see
models/metrics.py), n, new_item_auc when the split has is_new_item, and gate_weights_by_domain for SRF.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import checkpoint as ckpt_io
from models.distributed import resolve_device
from models.engine import Split, gate_by_domain, load_split, predict, split_metrics
from models.training_data import TrainingFolder


def score_splits(checkpoint: str | Path, data_dir: str | Path, splits: dict[str, pd.DataFrame | None],
                 device: str = "auto", batch_size: int = 16384) -> dict[str, tuple[np.ndarray, Split, dict]]:
    """For each split name (-> its frame if already read, else None): click probabilities of CKPT for the rows
    (file order), the encoded split and the mean aspect-gate weights by domain (empty unless the model gates).
    The checkpoint is loaded and verified once for all splits."""
    dev = resolve_device(device)
    model, spec, vocab = ckpt_io.build_from(ckpt_io.load(checkpoint), dev, path=checkpoint)
    folder = TrainingFolder.open(data_dir)
    if folder.text_dim != spec.text_dim:
        raise ValueError(f"{data_dir}: text embeddings have D={folder.text_dim}, {checkpoint} expects {spec.text_dim}")
    out = {}
    for split, frame in splits.items():
        data = load_split(folder, split, vocab, dev, frame=frame)
        probs, gates, names = predict(model, data.data, batch_size)
        out[split] = (probs, data, gate_by_domain(gates, names, data.domains))
    return out


def score(checkpoint: str | Path, data_dir: str | Path, split: str = "test", device: str = "auto",
          batch_size: int = 16384) -> tuple[np.ndarray, Split, dict]:
    """`score_splits` for one split read from the folder."""
    return score_splits(checkpoint, data_dir, {split: None}, device, batch_size)[split]


def evaluate(checkpoint: str | Path, data_dir: str | Path, split: str = "test", device: str = "auto",
             batch_size: int = 16384) -> dict[str, Any]:
    """Metrics of CKPT on DIR/{split}.parquet (ids unseen by the checkpoint's vocabularies count as OOV)."""
    probs, data, gbd = score(checkpoint, data_dir, split, device, batch_size)
    out = split_metrics(data, probs)
    if gbd:
        out["gate_weights_by_domain"] = gbd
    out["split"] = split
    return out


def _json_safe(value):
    """NaN -> null (strict JSON), recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None, help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)
    result = evaluate(args.checkpoint, args.data, args.split, args.device)
    text = json.dumps(_json_safe(result), indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
