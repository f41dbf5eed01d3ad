"""Cold-start fine-tuning: `python -m models.finetune --data DIR --pretrained CKPT --freeze L0 --out OUT`.

Loads a pretrained checkpoint (its vocabularies and numeric stats are reused, so cold-start ids unseen in
pretraining fall into the OOV rows and text carries the transfer), re-initialises the cold-start domain's own
parameters from the closest pretrain domain (same task, most pretrain rows) or the mean of the pretrain
domains, freezes the chosen levels (requires_grad False, left out of the optimiser, kept in eval mode so a
frozen level has no dropout noise) and trains the rest on the cold-start training folder.
freeze="scratch" instead trains a fresh model (the pretrained config, or `scratch_model`) on the cold-start
data only, with its own vocabularies: the no-transfer reference.
freeze="auto" fine-tunes once per level of AUTO_FREEZE_LEVELS, into OUT/<level>/ (OUT/L0, OUT/L0_L1, OUT/none),
and keeps the best by validation AUC (best_freeze_level; the test split never takes part in the choice).

The daily refresh (`--init-from keep --window-days W`) starts from an already fine-tuned checkpoint (the serving
champion): its cold-start parameters are kept instead of re-initialised, and only the training rows of the last W
days (by event_timestamp, up to the split's latest row) are trained on; validation is the whole valid split, so the
refreshed model and the champion are compared on the same rows.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from models import checkpoint as ckpt_io
from models.distributed import setup, teardown
from models.engine import TrainConfig, behaviour_lengths, deterministic_kernels, fit, load_split
from models.train import add_config_args, config_from_args, train
from models.training_data import TrainingFolder

log = logging.getLogger("models.finetune")
FREEZE = {"L0": ("L0",), "L0+L1": ("L0", "L1"), "none": (), "scratch": ()}
#: The levels freeze="auto" tries ("scratch" is the no-transfer baseline, never chosen by "auto").
AUTO_FREEZE_LEVELS = ("L0", "L0+L1", "none")


@dataclass
class FinetuneConfig(TrainConfig):
    """TrainConfig plus: freeze (L0 | L0+L1 | none | scratch), target domains, tower initialisation."""

    freeze: str = "L0"                        # L0 | L0+L1 | none | scratch | auto (the best by valid AUC)
    target_domains: list[int] | None = None   # None = the domains whose role is "coldstart" in meta.json
    init_from: str = "closest"                # closest | mean | keep (a fine-tuned checkpoint) | a domain id
    window_days: float = 0.0                  # > 0: train only on the last W days of the train split (daily refresh)
    scratch_model: str = ""                   # freeze=scratch: model name ("" = the pretrained model's), e.g. dnn
    lr: float = 1e-3
    epochs: int = 5


def closest_domain(target: int, meta: dict, counts: list[int]) -> int:
    """The pretrain domain with the same task as `target` and the most pretrain rows (any pretrain domain if none)."""
    domains = meta["domains"]
    pre = [d["domain_id"] for d in domains if d.get("role") != "coldstart" and d["domain_id"] != target
           and (counts[d["domain_id"]] if d["domain_id"] < len(counts) else 0) > 0]
    same = [k for k in pre if domains[k]["task"] == domains[target]["task"]]
    pool = same or pre
    if not pool:
        raise ValueError("finetune: the pretrained checkpoint saw no pretrain domain to initialise from")
    return max(pool, key=lambda k: (counts[k], -k))


def trailing_window(frame, days: float):
    """The rows of `frame` whose event_timestamp is within `days` days of its latest one (all rows for days <= 0).

    A clear error when the split has no event_timestamp or the window would be empty."""
    if days <= 0:
        return frame
    if "event_timestamp" not in frame:
        raise ValueError("finetune: window_days needs an event_timestamp column in the train split")
    import pandas as pd

    ts = pd.to_datetime(frame["event_timestamp"], utc=True)
    window = frame[ts > ts.max() - pd.Timedelta(days=days)]
    if window.empty:
        raise ValueError(f"finetune: no training rows in the last {days:g} day(s)")
    return window


def freeze_levels(freeze: str) -> tuple[str, ...]:
    """The levels a `freeze` setting fine-tunes: AUTO_FREEZE_LEVELS for "auto", else that one level."""
    if freeze == "auto":
        return AUTO_FREEZE_LEVELS
    if freeze not in FREEZE:
        raise ValueError(f"finetune: freeze={freeze!r}; use auto or one of {list(FREEZE)}")
    return (freeze,)


def level_dir(out_dir: str | Path, level: str) -> Path:
    """OUT/<level>, where freeze="auto" fine-tunes `level` (`+` left out of folder names: OUT/L0_L1)."""
    return Path(out_dir) / level.replace("+", "_")


def _selection_auc(result: dict) -> float:
    auc = result["metrics"].get("auc")
    return -math.inf if auc is None or math.isnan(auc) else float(auc)


def best_freeze_level(freeze: str, out_dir: str | Path, finetune_level: Callable[[str, Path], dict]) -> dict:
    """Run `finetune_level(level, out)` for each level of `freeze` (into OUT itself for one level, OUT/<level>/ for
    "auto") and return the result with the best validation AUC, plus "freeze" (the level kept), "levels" (every
    level's result) and metrics["valid_auc_freeze_<level>"] for every level.

    The one loop over freeze levels: in-process fine-tuning (`finetune` with freeze="auto") and the pipeline's
    launcher (one torchrun per level) both pass their way of fine-tuning one level."""
    levels = freeze_levels(freeze)
    results = {lv: finetune_level(lv, level_dir(out_dir, lv) if len(levels) > 1 else Path(out_dir)) for lv in levels}
    best = max(levels, key=lambda lv: _selection_auc(results[lv]))
    aucs = {lv: results[lv]["metrics"].get("auc") for lv in levels}
    if len(levels) > 1:
        log.info("freeze levels by valid AUC: %s -> %s", {lv: round(a, 4) if a is not None else None
                                                         for lv, a in aucs.items()}, best)
    metrics = {**results[best]["metrics"], **{f"valid_auc_freeze_{lv}": auc for lv, auc in aucs.items()}}
    return {**results[best], "metrics": metrics, "freeze": best, "levels": results}


def finetune(cfg: FinetuneConfig, data_dir: str | Path, pretrained_ckpt: str | Path, out_dir: str | Path,
             on_epoch_end=None) -> dict:
    """Fine-tune CKPT on the cold-start folder DIR; writes OUT/checkpoint.pt + metrics.json like train().

    freeze="auto": each level of AUTO_FREEZE_LEVELS into OUT/<level>/, the best by validation AUC returned
    (best_freeze_level: "freeze" names it, metrics hold every level's valid AUC)."""
    if cfg.freeze == "auto":
        return best_freeze_level("auto", out_dir, lambda level, out: finetune(
            replace(cfg, freeze=level), data_dir, pretrained_ckpt, out, on_epoch_end))
    freeze_levels(cfg.freeze)   # a clear error for an unknown level
    pre = ckpt_io.load(pretrained_ckpt)
    if cfg.freeze == "scratch":
        pre_cfg = dict(pre["model_config"])
        name = cfg.scratch_model or pre_cfg.pop("name")
        kwargs = cfg.model_kwargs if cfg.scratch_model else pre_cfg
        return train(replace(TrainConfig(**{k: getattr(cfg, k) for k in TrainConfig.__dataclass_fields__}),
                             model=name, model_kwargs=kwargs), data_dir, out_dir, on_epoch_end)

    ctx = setup(cfg.device)
    try:
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        folder = TrainingFolder.open(data_dir)
        model, spec, vocab = ckpt_io.build_from(pre, ctx.device)
        if len(folder.meta["domains"]) != spec.n_domains:
            raise ValueError(f"{data_dir}/meta.json has {len(folder.meta['domains'])} domains but {pretrained_ckpt} "
                             f"was built for {spec.n_domains}; both folders must list all domains")
        if folder.text_dim != spec.text_dim:
            raise ValueError(f"{data_dir}: text embeddings have D={folder.text_dim}, the checkpoint expects "
                             f"{spec.text_dim}")
        targets = cfg.target_domains or [d["domain_id"] for d in folder.meta["domains"] if d.get("role") == "coldstart"]
        if not targets:
            raise ValueError(f"{data_dir}/meta.json names no coldstart domain; pass --target-domains")
        counts = list(pre.get("domain_counts", [0] * spec.n_domains))
        init = {}
        for t in targets if cfg.init_from != "keep" else ():
            if cfg.init_from == "mean":
                src: Any = [k for k in range(spec.n_domains) if k not in targets and counts[k] > 0] or None
            elif cfg.init_from == "closest":
                src = closest_domain(t, folder.meta, counts)
            else:
                src = int(cfg.init_from)
            model.init_domain(t, src)
            init[t] = src
        frozen = FREEZE[cfg.freeze]
        levels = model.parameter_levels()
        for lv in frozen:
            for p in levels[lv]:
                p.requires_grad_(False)
        log.info("fine-tuning domains %s (init from %s), frozen levels %s", targets, init or cfg.init_from,
                 list(frozen) or "none")
        # The pretrained model's behaviour lengths (its spec), encoded only when it reads the sequences.
        beh = behaviour_lengths(spec, model.uses_behaviour)
        if beh != (0, 0) and folder.behaviour_lengths == (0, 0):
            raise ValueError(f"{pretrained_ckpt} reads user-behaviour sequences but {data_dir}/meta.json declares "
                             f"none (\"behaviour\"): build the cold-start folder with them, or pretrain with "
                             f"use_behaviour=false")
        train_frame = trailing_window(folder.read("train"), cfg.window_days)
        if cfg.window_days > 0:
            log.info("training on the last %g day(s): %d rows", cfg.window_days, len(train_frame))
        train_split = load_split(folder, "train", vocab, ctx.device, frame=train_frame, behaviour=beh)
        valid_split = load_split(folder, "valid", vocab, ctx.device, behaviour=beh)
        torch.manual_seed(cfg.seed + 7919 * ctx.rank)
        extra = {"finetune": {"pretrained": str(pretrained_ckpt), "freeze": cfg.freeze, "target_domains": targets,
                              "init_from": {str(k): v for k, v in init.items()} or cfg.init_from,
                              "window_days": cfg.window_days, "train_rows": len(train_frame)}}
        with deterministic_kernels(ctx.device):
            return fit(cfg, ctx, model, spec, vocab, folder.meta, train_split, valid_split, Path(out_dir),
                       on_epoch_end, extra)
    finally:
        teardown(ctx)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.finetune", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="cold-start training folder")
    parser.add_argument("--pretrained", required=True, type=Path, help="pretrained checkpoint.pt")
    parser.add_argument("--out", required=True, type=Path)
    add_config_args(parser, FinetuneConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = config_from_args(FinetuneConfig, args)
    result = finetune(cfg, args.data, args.pretrained, args.out)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns; one summary line
        summary = {"checkpoint": str(result["checkpoint"]), "valid_auc": result["metrics"].get("auc"),
                   "step": result["step"], "stopped": result["stopped"], "freeze": result.get("freeze", cfg.freeze)}
        if "levels" in result:
            summary["valid_auc_by_freeze"] = {lv: r["metrics"].get("auc") for lv, r in result["levels"].items()}
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
