"""Every model with and without user-behaviour sequences (its own job, outside `make run`): cold-start test AUC with
page-view bootstrap CIs and the paired difference per model. The with-behaviour models are the pipeline's latest
candidates (coldstart_model, baselines); only the without-behaviour twins are trained here."""

from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, MetadataValue, asset

from orchestration.assets.training import BASELINE_KEYS, BASELINES, coldstart_model, latest_checkpoint, run_dir
from orchestration.resources import TrainerResource, UnisrSettings

GROUP = "behaviour"
MODELS = ("srf", *BASELINES, "dnn")


class BehaviourComparisonConfig(Config):
    epochs: int = 0  # 0 = the trainer resource's default
    freeze: str = "auto"
    n_boot: int = 1000


def _pipeline_checkpoints(context: AssetExecutionContext) -> dict[str, object]:
    from reporting.behaviour_comparison import label

    keys = {"srf": coldstart_model.key, **{name: AssetKey(f"baseline_{name}") for name in BASELINES},
            "dnn": AssetKey("baseline_scratch_dnn")}
    return {label(model, True): latest_checkpoint(context, key) for model, key in keys.items()}


@asset(group_name=GROUP, deps=[coldstart_model, *BASELINE_KEYS],
       description="Cold-start test AUC [95 % CI] of every model with and without behaviour sequences, paired.")
def with_and_without_behaviour(context: AssetExecutionContext, config: BehaviourComparisonConfig,
                               settings: UnisrSettings, trainer: TrainerResource) -> MaterializeResult:
    from reporting.behaviour_comparison import compare_pairs, pairs_table, train_pairs
    from reporting.evaluation_report import markdown_table

    paths = settings.paths
    checkpoints = train_pairs(trainer, paths.training_dir, lambda name: run_dir(context, settings, name),
                              context.log, MODELS, config.freeze, config.epochs, _pipeline_checkpoints(context))
    comparison = compare_pairs(checkpoints, paths.training_dir / "coldstart", paths.truth_dir, config.n_boot)
    table = pairs_table(comparison, MODELS)
    out_dir = paths.reports_dir / "behaviour"
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "behaviour_comparison.csv", index=False)
    full = comparison.table()
    md = (f"# Every model with and without behaviour sequences ({paths.dataset}, cold-start test)\n\n"
          f"{markdown_table(table)}\n\n## All entries\n\n{markdown_table(full)}\n")
    (out_dir / "behaviour_comparison.md").write_text(md)
    return MaterializeResult(metadata={"table": MetadataValue.md(markdown_table(table)),
                                       "report": MetadataValue.path(str(out_dir / "behaviour_comparison.md")),
                                       **comparison.metadata()})
