"""The SRF ablation study: which part of the model earns its keep, on the cold-start test split with 95 % CIs.

Studies: text aspect on/off, behaviour sequences on/off, gating (mean / [CLS] / domain), divergence (js / mmd /
none) and the freeze level of fine-tuning (every level plus training from scratch). Each variant's cold-start test
AUC carries a page-view bootstrap CI (reporting/checkpoint_comparison.py), and its paired difference to the default
(the freeze level the pipeline picks on validation) says whether removing or swapping the part changes anything.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from reporting.comparison import MODEL, Comparison

DEFAULT = {"gating": "domain", "divergence": "js", "use_text": True, "use_behaviour": True}
#: (study, variant label, SRF kwargs changed from the default)
MODEL_VARIANTS = [
    ("text", "no text", {"use_text": False}),
    ("behaviour", "no behaviour", {"use_behaviour": False}),
    ("gating", "mean", {"gating": "mean"}),
    ("gating", "cls", {"gating": "cls"}),
    ("divergence", "mmd", {"divergence": "mmd"}),
    ("divergence", "none", {"divergence": "none"}),
]
#: The default's label in each model-variant study.
DEFAULT_LABELS = {"text": "with text", "behaviour": "with behaviour", "gating": "domain", "divergence": "js"}


def entry(study: str, variant: str) -> str:
    return f"{study}: {variant}"


def train_variants(trainer, training_dir: Path, out_dir_of: Callable[[str], Path], log, default_pretrained: Path,
                   epochs: int = 0) -> tuple[dict[str, Path], str]:
    """({entry: fine-tuned checkpoint}, the default's entry). `trainer` has `train` and `finetune` like
    orchestration's TrainerResource; `out_dir_of(name)` gives each training its run folder."""
    pre_dir, cold_dir = training_dir / "pretrain", training_dir / "coldstart"
    # freeze="auto" fine-tunes every level (the freeze study) and picks the pipeline's level on validation
    auto = trainer.finetune(log, cold_dir, default_pretrained, out_dir_of("ablation_freeze"), "auto", epochs)
    out = {entry("freeze", level): Path(fine["checkpoint"]) for level, fine in auto["levels"].items()}
    scratch = trainer.finetune(log, cold_dir, default_pretrained, out_dir_of("ablation_freeze_scratch"), "scratch",
                               epochs)
    out[entry("freeze", "scratch")] = Path(scratch["checkpoint"])
    default = entry("freeze", auto["freeze"])
    for study, variant, change in MODEL_VARIANTS:
        name = f"ablation_{study}_{variant.replace(' ', '_')}"
        pre = trainer.train(log, pre_dir, out_dir_of(name + "_pre"), "srf", {**DEFAULT, **change}, epochs)
        fine = trainer.finetune(log, cold_dir, pre["checkpoint"], out_dir_of(name), "auto", epochs)
        out[entry(study, variant)] = Path(fine["checkpoint"])
        log.info(f"ablation: trained {study}={variant}")
    return out, default


def ablation_table(comparison: Comparison, default: str) -> pd.DataFrame:
    """One row per (study, variant): test AUC [95 % CI] and the paired difference to the default, significance."""
    rows = []
    for name in comparison.entries(MODEL):
        study, variant = name.split(": ", 1)
        is_default = name == default
        row = {"study": study, "variant": variant + (" (default)" if is_default else ""),
               "AUC": str(comparison.auc(name))}
        if is_default:
            row.update({"− default": "0", "significant": ""})
        else:
            diff = comparison.difference(name, default)
            row.update({"− default": f"{diff.value:+.4f} [{diff.lo:+.4f}, {diff.hi:+.4f}]",
                        "significant": "yes" if diff.significant else "no"})
        rows.append(row)
    for study, label in DEFAULT_LABELS.items():  # the default is also the reference row of every model study
        rows.append({"study": study, "variant": f"{label} (default)", "AUC": str(comparison.auc(default)),
                     "− default": "0", "significant": ""})
    return pd.DataFrame(rows).sort_values(["study", "variant"]).reset_index(drop=True)
