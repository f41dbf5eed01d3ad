"""Train a model on a training folder: `python -m models.train --data DIR --out OUT --model srf [...]`.

The CLI and `train()`, which builds a fresh model for a training folder; the loop itself (TrainConfig, `fit`,
resume, precision, DDP) is models/engine.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.architectures import build_model
from models.distributed import DeviceUnavailableError, resolve_device, setup, teardown
from models.engine import TrainConfig, behaviour_lengths, deterministic_kernels, fit, load_split
from models.training_data import TrainingFolder, feature_spec
from models.vocab import Vocabularies

__all__ = ["TrainConfig", "add_config_args", "config_from_args", "main", "train"]


def train(cfg: TrainConfig, data_dir: str | Path, out_dir: str | Path,
          on_epoch_end: Callable[[dict], None] | None = None) -> dict:
    """Train cfg.model on DIR's train split, early-stop on valid AUC; returns {"checkpoint", "metrics", "curve",
    ...}."""
    ctx = setup(cfg.device)
    try:
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        folder = TrainingFolder.open(data_dir)
        train_frame = folder.read("train")
        vocab = Vocabularies.build(train_frame, cfg.min_count)
        spec = feature_spec(folder.meta, vocab, folder.text_dim)
        beh = behaviour_lengths(spec, bool(cfg.model_kwargs.get("use_behaviour", True)))
        train_split = load_split(folder, "train", vocab, ctx.device, train_frame, beh)
        del train_frame
        valid_split = load_split(folder, "valid", vocab, ctx.device, behaviour=beh)
        torch.manual_seed(cfg.seed)                        # same initial weights on every rank
        model = build_model(cfg.model, spec, **cfg.model_kwargs).to(ctx.device)
        torch.manual_seed(cfg.seed + 7919 * ctx.rank)      # then per-rank dropout streams
        with deterministic_kernels(ctx.device):
            return fit(cfg, ctx, model, spec, vocab, folder.meta, train_split, valid_split, Path(out_dir), on_epoch_end)
    finally:
        teardown(ctx)


# ------------------------------------------------------------------------------------------------------- CLI

def _parse_value(text: str) -> Any:
    """'3' -> 3, 'true' -> True, '[64,32]' -> [64, 32], 'cls' -> 'cls' (JSON first, else the string)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False}.get(text, text)


def _parse_list(text: str) -> list | None:
    """'64,32' -> [64, 32]; '' or 'none' -> None."""
    return None if text.lower() in ("", "none") else [_parse_value(x) for x in text.split(",")]


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per dataclass field (`--batch-size`); model_kwargs via repeated `--model-arg key=value`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        hint = hints[f.name]
        if f.name == "model_kwargs":
            parser.add_argument("--model-arg", dest="model_kwargs", action="append", default=[], metavar="KEY=VALUE",
                                help="model constructor keyword, repeatable (e.g. --model-arg hidden=32)")
            for k in ("gating", "divergence"):
                parser.add_argument(f"--{k}", default=None, help=f"shortcut for --model-arg {k}=...")
            parser.add_argument("--use-text", dest="use_text", action=argparse.BooleanOptionalAction, default=None,
                                help="shortcut for --model-arg use_text=true/false")
            parser.add_argument("--use-behaviour", dest="use_behaviour", action=argparse.BooleanOptionalAction,
                                default=None, help="shortcut for --model-arg use_behaviour=true/false")
        elif hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default)
        elif typing.get_origin(hint) in (list, typing.Union, types.UnionType):
            parser.add_argument(flag, dest=f.name, default=default, metavar="V[,V...]",
                                type=_parse_list)
        else:
            parser.add_argument(flag, dest=f.name, type=hint if hint in (int, float, str) else _parse_value,
                                default=default)


def exit_if_device_unavailable(device: str) -> None:
    """CLI guard: a device this torch/machine cannot use ends the command with one line on stderr and exit code 2."""
    if not str(device).startswith("cuda"):
        return
    try:
        resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    except DeviceUnavailableError as error:
        print(f"error: --device {device}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def config_from_args(cls: type, args: argparse.Namespace):
    """Build the dataclass from parsed flags (see add_config_args); exits (code 2) when --device cannot be used."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.name != "model_kwargs"}
    if "device" in values:
        exit_if_device_unavailable(values["device"])
    if any(f.name == "model_kwargs" for f in dataclasses.fields(cls)):
        kwargs = {}
        for item in args.model_kwargs:
            if "=" not in item:
                raise SystemExit(f"--model-arg {item!r}: expected KEY=VALUE, e.g. --model-arg hidden=32")
            k, v = item.split("=", 1)
            kwargs[k.strip()] = _parse_value(v)
        for k in ("gating", "divergence", "use_text", "use_behaviour"):
            if getattr(args, k, None) is not None:
                kwargs[k] = getattr(args, k)
        values["model_kwargs"] = kwargs
    return cls(**values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="training folder (train/valid parquet, meta.json)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder for checkpoint.pt, last.pt, metrics.json")
    add_config_args(parser, TrainConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    result = train(config_from_args(TrainConfig, args), args.data, args.out)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns; one summary line
        print(json.dumps({"checkpoint": str(result["checkpoint"]), "valid_auc": result["metrics"].get("auc"),
                          "step": result["step"], "stopped": result["stopped"]}))


if __name__ == "__main__":
    main()
