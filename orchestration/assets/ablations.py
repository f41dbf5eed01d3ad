"""The ablation study (its own job, so the default run stays short): text on/off, behaviour on/off, gating,
divergence, freezing; cold-start test AUC with 95 % CIs and the paired difference to the default
(reporting/ablations.py)."""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from orchestration.assets.features import training_sets
from orchestration.assets.training import latest_checkpoint, pretrained_model, run_dir
from orchestration.resources import TrainerResource, UnisrSettings

GROUP = "ablations"


class AblationConfig(Config):
    epochs: int = 0  # 0 = the trainer resource's default
    n_boot: int = 1000


@asset(
    group_name=GROUP,
    deps=[training_sets, pretrained_model],
    description="Cold-start test AUC [95 % CI] of SRF variants and their paired difference to the default: no text; "
                "no behaviour; mean/cls/domain gating; js/mmd/none; freeze levels.",
)
def ablation_study(
    context: AssetExecutionContext, config: AblationConfig, settings: UnisrSettings, trainer: TrainerResource
) -> MaterializeResult:
    from reporting.ablations import ablation_table, train_variants
    from reporting.checkpoint_comparison import compare_checkpoints
    from reporting.evaluation_report import markdown_table

    paths = settings.paths
    checkpoints, default = train_variants(trainer, paths.training_dir, lambda name: run_dir(context, settings, name),
                                          context.log, latest_checkpoint(context, pretrained_model.key), config.epochs)
    comparison = compare_checkpoints(checkpoints, paths.training_dir / "coldstart", paths.truth_dir, config.n_boot)
    table = ablation_table(comparison, default)
    out_dir = paths.reports_dir / context.run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "ablations.csv", index=False)
    md = (f"# Ablations ({paths.dataset}, cold-start test)\n\n{markdown_table(table)}\n\n"
          f"## All entries, with the trivial references\n\n{markdown_table(comparison.table())}\n")
    (out_dir / "ablations.md").write_text(md)
    return MaterializeResult(metadata={"table": MetadataValue.md(markdown_table(table)),
                                       "report": MetadataValue.path(str(out_dir / "ablations.md")),
                                       "csv": MetadataValue.path(str(out_dir / "ablations.csv")),
                                       **comparison.metadata()})
