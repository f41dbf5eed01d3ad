"""Cold-start fine-tuning: `python -m models.finetune --data DIR --pretrained CKPT --freeze L0 --out OUT`.

Loads a pretrained checkpoint (its vocabularies and numeric stats are reused, so cold-start ids unseen in
pretraining fall into the OOV rows and text carries the transfer), re-initialises the cold-start domain's own
parameters from the closest pretrain domain (same task, most pretrain rows) or the mean of the pretrain
domains, freezes the chosen levels (requires_grad False, left out of the optimiser, kept in eval mode so a
frozen level has no dropout noise) and trains the rest on the cold-start training folder.
freeze="scratch" instead trains a fresh model (the pretrained config, or `scratch_model`) on the cold-start
data only, with its own vocabularies: the no-transfer reference.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from models import checkpoint as ckpt_io
from models.distributed import setup, teardown
from models.train import TrainConfig, add_config_args, config_from_args, fit, load_split, train
from models.training_data import TrainingFolder

log = logging.getLogger("models.train")
FREEZE = {"L0": ("L0",), "L0+L1": ("L0", "L1"), "none": (), "scratch": ()}


@dataclass
class FinetuneConfig(TrainConfig):
    """TrainConfig plus: freeze (L0 | L0+L1 | none | scratch), target domains, tower initialisation."""

    freeze: str = "L0"
    target_domains: list[int] | None = None   # None = the domains whose role is "coldstart" in meta.json
    init_from: str = "closest"                # closest | mean | a domain id
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


def finetune(cfg: FinetuneConfig, data_dir: str | Path, pretrained_ckpt: str | Path, out_dir: str | Path,
             on_epoch_end=None) -> dict:
    """Fine-tune CKPT on the cold-start folder DIR; writes OUT/checkpoint.pt + metrics.json like train()."""
    if cfg.freeze not in FREEZE:
        raise ValueError(f"finetune: freeze={cfg.freeze!r}; use one of {list(FREEZE)}")
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
            raise ValueError(f"{data_dir}: text embeddings have D={folder.text_dim}, the checkpoint expects {spec.text_dim}")
        targets = cfg.target_domains or [d["domain_id"] for d in folder.meta["domains"] if d.get("role") == "coldstart"]
        if not targets:
            raise ValueError(f"{data_dir}/meta.json names no coldstart domain; pass --target-domains")
        counts = list(pre.get("domain_counts", [0] * spec.n_domains))
        init = {}
        for t in targets:
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
        log.info("fine-tuning domains %s (init from %s), frozen levels %s", targets, init, list(frozen) or "none")
        train_split = load_split(folder, "train", vocab, ctx.device)
        valid_split = load_split(folder, "valid", vocab, ctx.device)
        torch.manual_seed(cfg.seed + 7919 * ctx.rank)
        extra = {"finetune": {"pretrained": str(pretrained_ckpt), "freeze": cfg.freeze, "target_domains": targets,
                              "init_from": {str(k): v for k, v in init.items()}}}
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
    result = finetune(config_from_args(FinetuneConfig, args), args.data, args.pretrained, args.out)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every rank returns; one summary line
        print(json.dumps({"checkpoint": str(result["checkpoint"]), "valid_auc": result["metrics"].get("auc"),
                          "step": result["step"], "stopped": result["stopped"]}))


if __name__ == "__main__":
    main()
