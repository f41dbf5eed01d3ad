"""Turn an `EvaluationResult` into the report's files: tables, plots with error bars, Markdown and HTML."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd

from models.model_registry import ModelRegistry
from reporting.evaluation import EvaluationResult, headline
from reporting.evaluation_report import markdown_table, write_evaluation_report
from reporting.plots import auc_by_model_and_domain, gating_weights_by_domain, training_curves

TEST_INTRO = ("Reported only: nothing is chosen on these rows. Models, trivial references (`ref: …`) and, for "
              "synthetic data, the Bayes ceiling (the AUC of the true click probabilities) on the same rows.")
VALID_INTRO = "The rows every choice is made on: freeze level, best baseline, the champion / challenger decision."
PRETRAIN_INTRO = ("Each model's pretrained checkpoint per pretrain domain, beside the per-domain category "
                  "click-rate rule and the ceiling.")


def _curves(result: EvaluationResult, registry: ModelRegistry) -> dict[str, list[dict]]:
    curves = {}
    for version, label in result.labels.items():
        try:
            run_ckpt = registry.get(version).config.get("run_checkpoint")
        except KeyError:
            continue
        metrics = Path(run_ckpt).parent / "metrics.json" if run_ckpt else None
        if metrics is not None and metrics.exists():
            curves[label] = json.loads(metrics.read_text()).get("curve", [])
    return curves


def png_markdown(path: Path) -> str:
    """An inline Markdown image (Dagster's metadata viewer shows it)."""
    return f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def write_report(result: EvaluationResult, registry: ModelRegistry, out_dir: Path, title: str,
                 lineage: dict[str, Any]) -> dict[str, Any]:
    """report.md / report.html with plots under `out_dir`; returns paths, the test table and plot Markdown."""
    names = result.domain_names
    test_table = result.test.table(versus=result.best_baseline)
    sections = [
        (f"Cold-start domain — test split ({result.test.n_rows:,} rows, {result.test.n_page_views:,} page views)",
         test_table, TEST_INTRO),
        (f"Cold-start domain — validation split ({result.valid.n_rows:,} rows)",
         result.valid.table(versus=result.best_baseline), VALID_INTRO),
    ]
    plot_rows = [result.test.plot_frame(label="cold-start test")]
    if result.pretrain is not None:
        sections.append(("Pretrain domains — validation split, AUC per domain",
                         result.pretrain.domain_table(names), PRETRAIN_INTRO))
        plot_rows.append(result.pretrain.plot_frame(names))
    plots = {
        "auc_by_model_and_domain": auc_by_model_and_domain(
            pd.concat(plot_rows, ignore_index=True), out_dir / "auc_by_model_and_domain.png"),
        "training_curves": training_curves(_curves(result, registry), out_dir / "training_curves.png"),
    }
    if result.gate_weights:
        weights = pd.DataFrame(result.gate_weights).T
        weights.index = [names.get(int(d), str(d)) for d in weights.index]
        plots["gating_weights_by_domain"] = gating_weights_by_domain(weights, out_dir / "gating_weights.png")
    decision = {**result.decision.as_dict(), "serving": f"{result.serving_label} ({result.decision.serving})"}
    files = write_evaluation_report(
        out_dir, title=title, ours=result.ours, sections=sections, headline=headline(result), plots=plots,
        lineage=lineage, decision=decision, notes=result.notes,
    )
    return {**files, "test_table_md": markdown_table(test_table),
            "plots_md": {name: png_markdown(p) for name, p in plots.items()}}
