"""PNG plots for the evaluation report and Dagster materialization metadata."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def auc_by_model_and_domain(results: pd.DataFrame, path: Path, metric: str = "auc", title: str | None = None) -> Path:
    """Grouped bars: `metric` per domain (x) for each model (bars), with 95 % CI error bars when `results` has
    `lo`/`hi` columns. `results` has columns model, domain, metric[, lo, hi]."""
    table = results.pivot_table(index="domain", columns="model", values=metric, aggfunc="first", sort=False)
    has_ci = {"lo", "hi"} <= set(results.columns)
    if has_ci:
        lows = results.pivot_table(index="domain", columns="model", values="lo", aggfunc="first", sort=False)
        highs = results.pivot_table(index="domain", columns="model", values="hi", aggfunc="first", sort=False)
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(table.index) * max(1, len(table.columns)) / 3), 4.2))
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(table.index))
    for i, model in enumerate(table.columns):
        values = table[model].to_numpy(dtype=float)
        yerr = None
        if has_ci:
            yerr = np.vstack([values - lows[model].to_numpy(dtype=float), highs[model].to_numpy(dtype=float) - values])
            yerr = np.nan_to_num(np.clip(yerr, 0, None))
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=model, yerr=yerr, capsize=2,
               error_kw={"elinewidth": 0.8})
    lo = np.nanmin((lows if has_ci else table).to_numpy(dtype=float)) if table.size else 0.5
    ax.set_ylim(max(0.0, min(0.5, lo - 0.02)), 1.0)
    ax.set_xticks(x, table.index, rotation=20, ha="right")
    ax.set_ylabel(metric.upper())
    ax.set_title(title or f"{metric.upper()} by model and domain" + (" (95 % CI)" if has_ci else ""))
    ax.legend(fontsize=8, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def gating_weights_by_domain(weights: pd.DataFrame, path: Path) -> Path:
    """Stacked bars of mean aspect-gating weights (columns = aspects) per domain (index)."""
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(weights.index)), 3.6))
    bottom = np.zeros(len(weights.index))
    for aspect in weights.columns:
        values = weights[aspect].to_numpy(dtype=float)
        ax.bar(weights.index.astype(str), values, bottom=bottom, label=aspect)
        bottom += values
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean gate weight")
    ax.set_title("Aspect gating weights by domain")
    ax.legend(fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return _save(fig, path)


def training_curves(curves: dict[str, list[dict]], path: Path) -> Path:
    """Training loss and validation AUC at each validation for each model
    (`curves[model] = [{epoch, train_loss, valid_auc, epoch_progress}]`; x = epochs of data seen, `epoch_progress`,
    when the trainer validated several times an epoch, else the epoch index)."""
    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(9, 3.4))
    for model, epochs in curves.items():
        if not epochs:
            continue
        frame = pd.DataFrame(epochs)
        x = next((frame[c] for c in ("epoch_progress", "epoch") if c in frame), np.arange(1, len(frame) + 1))
        loss = "train_loss" if "train_loss" in frame else "loss"
        if loss in frame:
            ax_loss.plot(x, frame[loss], marker="o", label=model)
        if "valid_auc" in frame:
            ax_auc.plot(x, frame["valid_auc"], marker="o", label=model)
    ax_loss.set_title("training loss")
    ax_auc.set_title("validation AUC")
    for ax in (ax_loss, ax_auc):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_auc.legend(fontsize=8)
    return _save(fig, path)
