"""The seed benchmark (its own job, outside `make run`): every candidate trained with ≥ 3 seeds, mean ± sd."""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from orchestration.assets.features import training_sets
from orchestration.assets.training import BASELINES, run_dir
from orchestration.resources import TrainerResource, UnisrSettings

GROUP = "benchmark"
MULTI_DOMAIN = ("srf", *BASELINES)


class SeedBenchmarkConfig(Config):
    seeds: list[int] = [0, 1, 2]
    epochs: int = 0  # 0 = the trainer resource's default
    freeze: str = "auto"


@asset(group_name=GROUP, deps=[training_sets],
       description="Cold-start test AUC (and pretrain-domain valid AUC) of every candidate over seeds: mean ± sd.")
def seed_benchmark(context: AssetExecutionContext, config: SeedBenchmarkConfig, settings: UnisrSettings,
                   trainer: TrainerResource) -> MaterializeResult:
    from reporting.evaluation_report import markdown_table
    from reporting.seed_benchmark import mean_sd_table, run_seeds

    paths = settings.paths
    rows = run_seeds(
        [trainer.model_copy(update={"seed": seed}) for seed in config.seeds], config.seeds, MULTI_DOMAIN,
        paths.training_dir, lambda name, seed: run_dir(context, settings, f"seed{seed}_{name}"),
        context.log, config.freeze, config.epochs,
    )
    table = mean_sd_table(rows)
    out_dir = paths.reports_dir / "benchmark"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out_dir / "seed_benchmark.csv", index=False)
    md = f"# Seed benchmark ({len(config.seeds)} seeds: {config.seeds})\n\n{markdown_table(table)}\n"
    (out_dir / "seed_benchmark.md").write_text(md)
    return MaterializeResult(metadata={"table": MetadataValue.md(markdown_table(table)),
                                       "csv": MetadataValue.path(str(out_dir / "seed_benchmark.csv")),
                                       "seeds": MetadataValue.json(list(config.seeds)),
                                       "rows": len(rows)})
