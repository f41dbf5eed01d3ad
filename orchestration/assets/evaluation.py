"""Evaluation: every candidate vs trivial references and the ceiling with CIs, champion / challenger promotion.

The computation lives in `reporting/` (evaluation, comparison, report) and `models/` (bootstrap, promotion);
these assets only gather the candidates from the event log and record what was decided.
"""

import shutil
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from models.model_registry import ModelRegistry
from orchestration.assets.training import BASELINE_KEYS, coldstart_model, pretrained_model
from orchestration.lineage import code_version, data_version
from orchestration.materializations import latest_metadata, run_elapsed_seconds
from orchestration.partitions import run_partition_keys
from orchestration.resources import UnisrSettings

GROUP = "evaluation"
OURS = "srf (ours)"


class EvaluationConfig(Config):
    """Bootstrap size and seed of the confidence intervals."""

    n_boot: int = 1000
    seed: int = 0


def _candidates(context: AssetExecutionContext, registry: ModelRegistry):
    """The latest version of every model, from the event log: each baseline asset's, and `coldstart_model`'s under
    the name it registered. The daily fine-tune refreshes the champion, whichever model it is: a refreshed baseline
    replaces that baseline's version, and SRF is then its latest registered version."""
    from reporting.evaluation import Candidate

    found = {}
    for key in BASELINE_KEYS:
        meta = latest_metadata(context.instance, key)
        label = key.to_user_string().removeprefix("baseline_")
        pretrained = Path(meta["pretrained_checkpoint"]) if "pretrained_checkpoint" in meta else None
        found[label] = Candidate(label, meta["version"], Path(meta["checkpoint"]), pretrained)
    cold = latest_metadata(context.instance, coldstart_model.key)
    name = cold.get("model", "srf")
    pretrained = cold.get("pretrained_from") or latest_metadata(context.instance, pretrained_model.key)["checkpoint"]
    label = OURS if name == "srf" else name
    found[label] = Candidate(label, cold["version"], Path(cold["checkpoint"]), Path(pretrained))
    if OURS not in found:
        srf = registry.latest("srf")
        if srf is None:
            raise ValueError(f"no SRF version in the registry at {registry.root}: run the pipeline first")
        found[OURS] = Candidate(OURS, srf.version, Path(srf.checkpoint),
                                Path(srf.config["pretrained"]) if srf.config.get("pretrained") else None)
    return [found[OURS]] + [c for lbl, c in found.items() if lbl != OURS]


def _champion(registry: ModelRegistry):
    from reporting.evaluation import Candidate

    promoted = registry.promoted()
    return None if promoted is None else Candidate(promoted.name, promoted.version, Path(promoted.checkpoint))


@asset(
    group_name=GROUP,
    deps=[coldstart_model, pretrained_model, *BASELINE_KEYS],
    description="Every candidate vs trivial references and the Bayes ceiling, with 95 % CIs; which model serves.",
)
def evaluation_report(context: AssetExecutionContext, config: EvaluationConfig,
                      settings: UnisrSettings) -> MaterializeResult:
    from reporting.evaluation import evaluate_candidates, per_model_metadata
    from reporting.report_files import write_report

    paths = settings.paths
    registry = ModelRegistry(paths.registry_dir)
    candidates = _candidates(context, registry)
    result = evaluate_candidates(
        candidates, _champion(registry), paths.training_dir / "coldstart", paths.training_dir / "pretrain",
        paths.truth_dir, OURS, settings.promotion_tolerance, config.n_boot, config.seed, context.log.info,
    )
    for cand in candidates:
        registry.update_metrics(cand.version, {
            "coldstart_valid_auc": result.valid.auc(cand.label).value,
            "coldstart_test_auc": result.test.auc(cand.label).value,
        })
    lineage = {"code version": code_version(), **data_version(paths)}
    out_dir = paths.reports_dir / context.run_id
    files = write_report(result, registry, out_dir, f"unisr evaluation — {paths.dataset}", lineage)
    latest = paths.reports_dir / "latest"
    shutil.rmtree(latest, ignore_errors=True)
    shutil.copytree(out_dir, latest)
    return MaterializeResult(
        metadata={
            "report_html": MetadataValue.path(str(files["html"])),
            "report_md": MetadataValue.path(str(files["md"])),
            "decision": MetadataValue.json(result.decision.as_dict()),
            "serving_version": result.decision.serving,
            "serving_model": result.serving_label,
            "best_baseline_by_valid": result.best_baseline,
            "coldstart_test_rows": result.test.n_rows,
            "coldstart_test_page_views": result.test.n_page_views,
            "test_table": MetadataValue.md(files["test_table_md"]),
            **per_model_metadata(result),
            **{f"plot_{name}": MetadataValue.md(md) for name, md in files["plots_md"].items()},
        }
    )


@asset_check(
    asset=evaluation_report,
    name="promotion_gate",
    blocking=True,
    description="Champion/challenger on validation: the version chosen to serve exists and its checkpoint is intact.",
)
def promotion_gate(context, settings: UnisrSettings) -> AssetCheckResult:
    metadata = latest_metadata(context.instance, evaluation_report.key)
    decision = metadata["decision"]
    registry = ModelRegistry(settings.paths.registry_dir)
    problems = []
    try:  # the version chosen to serve must exist and load: digest, finite weights, a model checkpoint
        registry.load_checkpoint(decision["serving"])
    except (KeyError, OSError, ValueError) as err:
        problems.append(f"{decision['serving']} cannot serve: {err}")
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems or decision["reasons"]),
        metadata={
            "serving": decision["serving"],
            "promote": decision["promote"],
            "champion": decision["champion"] or "none",
            "challenger": decision["challenger"],
            "reasons": MetadataValue.json(decision["reasons"]),
            "tolerance": settings.promotion_tolerance,
        },
    )


@asset(
    group_name="serving",
    deps=[evaluation_report],
    description="The model version online ranking serves: the champion / challenger decision of the evaluation.",
)
def promoted_model(context: AssetExecutionContext, settings: UnisrSettings) -> MaterializeResult:
    decision = latest_metadata(context.instance, evaluation_report.key)["decision"]
    registry = ModelRegistry(settings.paths.registry_dir)
    current = registry.promoted()
    if current is None or current.version != decision["serving"]:
        registry.promote(decision["serving"], decision["reasons"])
    entry = registry.get(decision["serving"])
    context.log.info(f"serving {entry.name} {entry.version}: " + "; ".join(decision["reasons"]))
    return MaterializeResult(
        metadata={
            "version": entry.version,
            "model": entry.name,
            "checkpoint": MetadataValue.path(entry.checkpoint),
            "newly_promoted": bool(decision["promote"]),
            "why": MetadataValue.json(decision["reasons"]),
            "coldstart_valid_auc": float(entry.metrics.get("coldstart_valid_auc") or float("nan")),
            "run_wall_seconds": run_elapsed_seconds(context.instance, context.run_id),
            "run_partitions": MetadataValue.json((run_partition_keys(context) or [])[:50]),
        }
    )

