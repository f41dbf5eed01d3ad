"""Every model with and without user-behaviour sequences, on the same data, decided on the cold-start test split with
page-view bootstrap CIs and paired differences (the issue's fairness rule: behaviour is an input of every model, so the
comparison is per model, not SRF-with vs baselines-without).

`train_pairs` trains each multi-domain model (pretrain, then fine-tune with the freeze level chosen on validation)
and the single-domain DNN twice, `use_behaviour` True and False; `compare_pairs` scores them all on the cold-start
test split, beside the trivial references and (synthetic) the Bayes ceiling.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from reporting.checkpoint_comparison import compare_checkpoints
from reporting.comparison import Comparison

WITH, WITHOUT = "with behaviour", "without behaviour"


def label(model: str, use_behaviour: bool) -> str:
    return f"{model} ({WITH if use_behaviour else WITHOUT})"


def train_pairs(trainer, training_dir: Path, out_dir_of: Callable[[str], Path], log, models: tuple[str, ...],
                freeze: str = "auto", epochs: int = 0,
                existing: dict[str, Path] | None = None) -> dict[str, Path]:
    """{label: fine-tuned checkpoint} of every model in `models` (+ "dnn": the single-domain DNN trained from scratch
    on the cold-start data) with and without behaviour; `existing` supplies already-trained ones by label."""
    pre_dir, cold_dir = training_dir / "pretrain", training_dir / "coldstart"
    out: dict[str, Path] = dict(existing or {})
    for model in models:
        for use in (True, False):
            name = label(model, use)
            if name in out:
                continue
            tag = f"{model}_{'with' if use else 'without'}_behaviour"
            if model == "dnn":
                fine = trainer.train(log, cold_dir, out_dir_of(tag), "dnn", {"use_behaviour": use}, epochs,
                                     small_data=True)
            else:
                pre = trainer.train(log, pre_dir, out_dir_of(f"pre_{tag}"), model, {"use_behaviour": use}, epochs)
                fine = trainer.finetune(log, cold_dir, pre["checkpoint"], out_dir_of(tag), freeze, epochs)
            out[name] = Path(fine["checkpoint"])
            log.info(f"behaviour comparison: trained {name}")
    return out


def compare_pairs(checkpoints: dict[str, Path], coldstart_dir: Path, truth_dir: Path | None, n_boot: int = 1000,
                  seed: int = 0) -> Comparison:
    """Every checkpoint and the trivial references on the cold-start test split (CIs, ceiling where known)."""
    return compare_checkpoints(checkpoints, coldstart_dir, truth_dir, n_boot, seed)


def pairs_table(comparison: Comparison, models: tuple[str, ...]) -> pd.DataFrame:
    """One row per model: test AUC [95 % CI] with and without behaviour, their paired difference, significance, and
    (synthetic) the share of achievable lift with behaviour."""
    rows = []
    for model in models:
        a, b = label(model, True), label(model, False)
        if a not in comparison.estimates or b not in comparison.estimates:
            continue
        diff = comparison.difference(a, b)
        row = {"model": model, "AUC with behaviour": str(comparison.auc(a)),
               "AUC without behaviour": str(comparison.auc(b)),
               "with − without": f"{diff.value:+.4f} [{diff.lo:+.4f}, {diff.hi:+.4f}]",
               "significant": "yes" if diff.significant else "no"}
        if comparison.has_ceiling:
            share = comparison.lift_share(a)
            row["share of lift (with)"] = f"{share.value:.0%} [{share.lo:.0%}, {share.hi:.0%}]"
        rows.append(row)
    return pd.DataFrame(rows)
