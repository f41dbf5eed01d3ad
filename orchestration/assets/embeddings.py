"""Embeddings: frozen-LM text vectors for every item and query text, incremental by text hash."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from orchestration.assets.ingest import RAW_KEYS
from orchestration.resources import TextEncoderResource, UnisrSettings

GROUP = "embeddings"


@asset(
    group_name=GROUP,
    deps=[RAW_KEYS["items"], RAW_KEYS["queries"]],
    description="Item and query text embeddings from the frozen text encoder; only new or changed texts are embedded.",
)
def text_embeddings(
    context: AssetExecutionContext, settings: UnisrSettings, text_encoder: TextEncoderResource
) -> MaterializeResult:
    from embeddings.materialize import materialize_text_embeddings

    paths = settings.paths
    stats = materialize_text_embeddings(paths, text_encoder.encoder(), progress=True)
    context.log.info(f"text embeddings: {stats}")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(paths.embeddings_dir)),
            **{k: (float(v) if isinstance(v, float) else v) for k, v in stats.items()
               if isinstance(v, (int, float, str))},
        }
    )
