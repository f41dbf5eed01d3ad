"""Evaluation: AUC, GAUC and PVCTR of our model against the baselines, the report, the promotion gate."""

import base64
import json
import shutil
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from models.model_registry import ModelRegistry, gate_decision
from orchestration.assets.training import BASELINE_KEYS, coldstart_model, latest_checkpoint, pretrained_model
from orchestration.lineage import code_version, data_version
from orchestration.resources import UnisrSettings

GROUP = "evaluation"
OURS = "srf (fine-tuned)"
COLDSTART_METRICS = ("auc", "new_item_auc", "gauc", "logloss", "pvctr@1", "pvctr@3", "n")


def _png_markdown(path: Path) -> str:
    return f"![{path.stem}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def _model_label(key) -> str:
    return key.to_user_string().removeprefix("baseline_")


def _domain_names(data_dir: Path) -> dict[int, str]:
    meta = json.loads((data_dir / "meta.json").read_text())
    return {int(d["domain_id"]): d["name"] for d in meta["domains"]}


def _curve(checkpoint: Path) -> list[dict]:
    metrics = checkpoint.parent / "metrics.json"
    return json.loads(metrics.read_text()).get("curve", []) if metrics.exists() else []


@asset(
    group_name=GROUP,
    deps=[coldstart_model, pretrained_model, *BASELINE_KEYS],
    description="Per-domain AUC, GAUC and PVCTR@1/@3 of the fine-tuned model vs every baseline, as an HTML report.",
)
def evaluation_report(context: AssetExecutionContext, settings: UnisrSettings) -> MaterializeResult:
    from models.evaluate import evaluate
    from reporting.evaluation_report import add_lifts, markdown_table, write_evaluation_report
    from reporting.plots import auc_by_model_and_domain, gating_weights_by_domain, training_curves

    paths = settings.paths
    coldstart_dir, pretrain_dir = paths.training_dir / "coldstart", paths.training_dir / "pretrain"
    names = _domain_names(coldstart_dir)
    checkpoints = {OURS: latest_checkpoint(context, coldstart_model.key)}
    checkpoints.update({_model_label(k): latest_checkpoint(context, k) for k in BASELINE_KEYS})

    rows, per_domain, curves, gate_frames = [], [], {}, {}
    for model, ckpt in checkpoints.items():
        result = evaluate(ckpt, coldstart_dir, split="test")
        rows.append({"model": model, **{m: result.get(m) for m in COLDSTART_METRICS}})
        if model == OURS:
            gate_frames.update(result.get("gate_weights_by_domain", {}))
        curves[model] = _curve(ckpt)
        context.log.info(f"{model}: cold-start test AUC {result.get('auc'):.4f}")
    coldstart = add_lifts(pd.DataFrame(rows), OURS)

    pre_ckpts = {"srf": latest_checkpoint(context, pretrained_model.key)}
    for key in BASELINE_KEYS:
        event = context.instance.get_latest_materialization_event(key).asset_materialization
        if "pretrained_checkpoint" in event.metadata:
            pre_ckpts[_model_label(key)] = Path(event.metadata["pretrained_checkpoint"].value)
    for model, ckpt in pre_ckpts.items():
        result = evaluate(ckpt, pretrain_dir, split="valid")
        for domain, auc in result.get("domain_auc", {}).items():
            per_domain.append({"model": model, "domain": names.get(int(domain), str(domain)), "auc": auc})
        if model == "srf":
            gate_frames.update(result.get("gate_weights_by_domain", {}))
    pretrain = pd.DataFrame(per_domain)
    pretrain_table = pretrain.pivot_table(index="domain", columns="model", values="auc").reset_index() if len(pretrain) else pretrain

    out_dir = paths.reports_dir / context.run_id
    plot_rows = pd.concat(
        [pretrain, pd.DataFrame({"model": [r["model"] for r in rows], "domain": "cold-start", "auc": [r["auc"] for r in rows]})]
    )
    plots = {
        "auc_by_model_and_domain": auc_by_model_and_domain(plot_rows, out_dir / "auc_by_model_and_domain.png"),
        "training_curves": training_curves(curves, out_dir / "training_curves.png"),
    }
    if gate_frames:
        weights = pd.DataFrame(gate_frames).T
        weights.index = [names.get(int(d), str(d)) for d in weights.index]
        plots["gating_weights_by_domain"] = gating_weights_by_domain(weights, out_dir / "gating_weights.png")

    ours = coldstart.set_index("model").loc[OURS]
    baselines_only = coldstart[coldstart.model != OURS]
    best = baselines_only.loc[baselines_only["auc"].idxmax()]
    headline = {
        "cold-start AUC (ours)": f"{ours['auc']:.4f}",
        f"best baseline ({best['model']})": f"{best['auc']:.4f}",
        "PVCTR@1 lift vs best": f"{(ours['pvctr@1'] - best['pvctr@1']) / best['pvctr@1']:+.1%}" if best["pvctr@1"] else "n/a",
    }
    coldstart_event = context.instance.get_latest_materialization_event(coldstart_model.key).asset_materialization
    version = coldstart_event.metadata["version"].value
    lineage = {
        "model version": version,
        "code version": code_version(),
        **{k: v for k, v in data_version(paths).items()},
        "feast views": "user_features, item_features, query_features, item_text_embedding, query_text_embedding",
        "dbt marts": "samples_pretrain, samples_coldstart_{train,valid,test}, {user,item,query}_features",
    }
    files = write_evaluation_report(
        out_dir, title=f"unisr evaluation — {paths.dataset}", ours=OURS, coldstart=coldstart,
        pretrain=pretrain_table, headline=headline, plots=plots, lineage=lineage,
    )
    latest = paths.reports_dir / "latest"
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out_dir, latest)

    registry = ModelRegistry(paths.models_dir / "registry")
    registry.update_metrics(version, {"coldstart_auc": float(ours["auc"]), "best_baseline_auc": float(best["auc"])})
    return MaterializeResult(
        metadata={
            "report_html": MetadataValue.path(str(files["html"])),
            "report_md": MetadataValue.path(str(files["md"])),
            "candidate_version": version,
            "coldstart_auc": float(ours["auc"]),
            "best_baseline": str(best["model"]),
            "best_baseline_auc": float(best["auc"]),
            "coldstart_table": MetadataValue.md(markdown_table(coldstart)),
            "pretrain_table": MetadataValue.md(markdown_table(pretrain_table)) if len(pretrain_table) else "",
            **{f"plot_{name}": MetadataValue.md(_png_markdown(p)) for name, p in plots.items()},
        }
    )


@asset_check(
    asset=evaluation_report,
    name="promotion_gate",
    blocking=True,
    description="Promote only if cold-start AUC ≥ promoted − tolerance and ≥ the best baseline; else keep the old model.",
)
def promotion_gate(context, settings: UnisrSettings) -> AssetCheckResult:
    event = context.instance.get_latest_materialization_event(evaluation_report.key).asset_materialization
    candidate_auc = float(event.metadata["coldstart_auc"].value)
    best_baseline = float(event.metadata["best_baseline_auc"].value)
    registry = ModelRegistry(settings.paths.models_dir / "registry")
    promoted = registry.promoted()
    decision = gate_decision(
        candidate_auc, promoted.coldstart_auc if promoted else None, best_baseline, settings.promotion_tolerance
    )
    return AssetCheckResult(
        passed=decision.promote,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(decision.reasons),
        metadata={
            "candidate_version": event.metadata["candidate_version"].value,
            "promoted_version": promoted.version if promoted else "none",
            "reasons": MetadataValue.json(decision.reasons),
            "candidate_auc": candidate_auc,
            "best_baseline_auc": best_baseline,
            "tolerance": settings.promotion_tolerance,
        },
    )


@asset(
    group_name="serving",
    deps=[evaluation_report],
    description="The model version online ranking serves: the candidate, once the promotion gate passed.",
)
def promoted_model(context: AssetExecutionContext, settings: UnisrSettings) -> MaterializeResult:
    event = context.instance.get_latest_materialization_event(evaluation_report.key).asset_materialization
    version = event.metadata["candidate_version"].value
    registry = ModelRegistry(settings.paths.models_dir / "registry")
    registry.promote(version, [f"cold-start AUC {event.metadata['coldstart_auc'].value:.4f} passed the gate"])
    entry = registry.get(version)
    return MaterializeResult(
        metadata={
            "version": version,
            "checkpoint": MetadataValue.path(entry.checkpoint),
            "coldstart_auc": float(entry.metrics.get("coldstart_auc", float("nan"))),
        }
    )
