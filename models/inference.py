"""Online scoring: `Scorer.from_checkpoint(path).score(frame, item_emb, query_emb)` -> click probabilities.

Built for ranking ~100 candidates per request on CPU in a few ms: the vocabularies' hash indexes are built once
at load, lookups are vectorised (pandas Index.get_indexer), and the model runs in inference mode.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models import checkpoint as ckpt_io


class NonFiniteScoresError(RuntimeError):
    """The model produced NaN/inf scores: a fault of the served model or its features, never returned as a score."""


class Scorer:
    """A checkpoint's model + vocabularies, ready to score sample frames."""

    def __init__(self, model: torch.nn.Module, vocab, spec, device: str | torch.device = "cpu",
                 meta: dict | None = None):
        self.model = model.eval()
        self.vocab, self.spec, self.device, self.meta = vocab, spec, torch.device(device), meta or {}

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", expected_sha256: str | None = None) -> "Scorer":
        """Load CKPT (checkpoint.pt written by train/finetune) onto `device`, verified (see models.checkpoint.load);
        `expected_sha256` is the digest the model registry recorded for it."""
        ckpt = ckpt_io.load(path, expected_sha256=expected_sha256)
        model, spec, vocab = ckpt_io.build_from(ckpt, device, path)
        return cls(model, vocab, spec, device, ckpt.get("meta"))

    def batch(self, frame: pd.DataFrame, item_emb: np.ndarray, query_emb: np.ndarray) -> dict[str, torch.Tensor]:
        """Sample frame [N rows] + text vectors [N, D] (all-zero row = no text) -> the model's batch dict."""
        n, D = len(frame), self.spec.text_dim
        item_emb = np.asarray(item_emb, dtype=np.float32).reshape(n, D)
        query_emb = np.asarray(query_emb, dtype=np.float32).reshape(n, D)
        cols = self.vocab.encode(frame)
        dev = self.device
        domain = frame["domain_id"].to_numpy().astype(np.int64)
        if n and (domain.min() < 0 or domain.max() >= self.spec.n_domains):
            raise ValueError(f"Scorer.score: domain_id must be in 0..{self.spec.n_domains - 1}, "
                             f"got {sorted(set(domain))}")
        t = {k: torch.from_numpy(v).to(dev) for k, v in cols.items()}
        t["domain"] = torch.from_numpy(domain).to(dev)
        t["item_emb"] = torch.from_numpy(item_emb).to(dev)
        t["query_emb"] = torch.from_numpy(query_emb).to(dev)
        t["has_item_text"] = torch.from_numpy(np.abs(item_emb).sum(1) > 0).float().to(dev)
        t["has_query"] = torch.from_numpy(np.abs(query_emb).sum(1) > 0).float().to(dev)
        t["label"] = torch.zeros(n, device=dev)
        return t

    @torch.inference_mode()
    def score(self, frame: pd.DataFrame, item_emb: np.ndarray, query_emb: np.ndarray) -> np.ndarray:
        """Click probabilities [N] float32 for the frame's rows (columns as in the training folder's samples)."""
        if len(frame) == 0:
            return np.zeros(0, np.float32)
        out = self.model(self.batch(frame, item_emb, query_emb))
        scores = out["logit"].float().sigmoid().cpu().numpy()
        finite = np.isfinite(scores)
        if not finite.all():
            raise NonFiniteScoresError(
                f"the model scored {int((~finite).sum())} of {len(scores)} rows NaN/inf (first: row "
                f"{int(np.flatnonzero(~finite)[0])}); refusing to return them: check the served weights and the "
                f"numeric features of those rows")
        return scores
