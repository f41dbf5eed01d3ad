"""The text-encoder comparison (its own job `encoder_comparison`, outside `make run`): SRF on the vectors of each frozen
text encoder. (The asset is `text_encoder_comparison`: an asset and a job may not share a name.)"""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from orchestration.assets.features import training_sets
from orchestration.assets.training import run_dir
from orchestration.resources import TextEncoderResource, TrainerResource, UnisrSettings

GROUP = "encoders"


class EncoderComparisonConfig(Config):
    #: Named encoders (embeddings.model_source.ENCODERS); the default one (minilm) is always the reference.
    encoders: list[str] = ["minilm", "mpnet", "smollm2"]
    epochs: int = 0  # 0 = the trainer resource's default
    freeze: str = "auto"
    n_boot: int = 1000
    seed: int = 0


@asset(
    group_name=GROUP,
    deps=[training_sets],
    description="Cold-start test AUC (95 % CI, paired Δ vs the default encoder) of SRF trained on the vectors of "
                "each frozen text encoder: all-MiniLM-L6-v2, all-mpnet-base-v2, SmolLM2-135M (last-token pooling).",
)
def text_encoder_comparison(context: AssetExecutionContext, config: EncoderComparisonConfig, settings: UnisrSettings,
                            trainer: TrainerResource, text_encoder: TextEncoderResource) -> MaterializeResult:
    from embeddings.model_source import ENCODERS
    from reporting.encoder_comparison import display_table, run_encoder_comparison
    from reporting.evaluation_report import markdown_table

    unknown = [name for name in config.encoders if name not in ENCODERS]
    if unknown:
        raise ValueError(f"unknown encoder(s) {unknown}: choose from {sorted(ENCODERS)}")
    paths = settings.paths
    result = run_encoder_comparison(
        paths, config.encoders, text_encoder.named_encoder, trainer, context.log, paths.reports_dir / context.run_id,
        lambda name, inputs: run_dir(context, settings, name, extra=inputs),
        freeze=config.freeze, epochs=config.epochs, n_boot=config.n_boot, seed=config.seed,
    )
    return MaterializeResult(metadata={
        "table": MetadataValue.md(markdown_table(display_table(result.table, result.reference))),
        "report": MetadataValue.path(str(result.files["md"])),
        "csv": MetadataValue.path(str(result.files["csv"])),
        "not_run": MetadataValue.json(result.not_run()),
        "test_rows": result.n_rows,
        **result.metadata(),
    })
