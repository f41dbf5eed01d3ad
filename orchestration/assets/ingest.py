"""Ingest: source (system of record) → landing/ one day per partition → validated raw/ + quarantine/."""

import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)

from orchestration.partitions import impression_days, run_landed_days
from orchestration.resources import UnisrSettings
from unisr_data.contract import TABLES, parquet_rows, table_path

GROUP = "ingest"
#: Raw tables carry the keys dbt's `raw` source maps to, so lineage runs landing → raw → dbt.
RAW_KEYS = {table: AssetKey(["raw", table]) for table in TABLES}



class SourceConfig(Config):
    """Size and seed of the synthetic data (ignored by real datasets except the seed)."""

    seed: int = 7
    n_impressions: int = 0  # 0 = the generator's default size
    n_days: int = 0  # 0 = the generator's default
    tiny: bool = False  # the test-sized synthetic set


@asset(
    group_name=GROUP,
    description="The upstream system of record: the synthetic generator or a MovieLens/MIND conversion, in "
                "contract layout.",
)
def source_data(context: AssetExecutionContext, config: SourceConfig, settings: UnisrSettings) -> MaterializeResult:
    from unisr_data.landing import source_days
    from unisr_data.partitions import granularity, partition_keys
    from unisr_data.sources import write_source

    paths = settings.paths
    counts = write_source(
        settings.dataset,
        paths.source_dir,
        source_path=settings.source_path,
        seed=config.seed,
        n_impressions=config.n_impressions or None,
        n_days=config.n_days or None,
        tiny=config.tiny,
        time_window=settings.time_window(),
    )
    days = source_days(paths.source_dir)
    keys = partition_keys(days)  # days, or months for a long-span source (unisr_data/partitions.py)
    new_keys = [k for k in keys if not context.instance.has_dynamic_partition(impression_days.name, k)]
    context.instance.add_dynamic_partitions(impression_days.name, new_keys)
    context.log.info(f"source rows: {counts}; {len(days)} days in {len(keys)} {granularity(days)} partitions "
                     f"({len(new_keys)} new)")
    return MaterializeResult(
        metadata={
            "dataset": settings.dataset,
            "path": MetadataValue.path(str(paths.source_dir)),
            "first_day": days[0] if days else "",
            "last_day": days[-1] if days else "",
            "days": len(days),
            "partition_granularity": granularity(days),
            "partitions": len(keys),
            **{f"rows_{k}": int(v) for k, v in counts.items() if isinstance(v, int)},
        }
    )


@asset(
    group_name=GROUP,
    deps=[source_data],
    partitions_def=impression_days,
    backfill_policy=BackfillPolicy.single_run(),
    description="Impressions of the partition's day(s) and the entities live by then, copied into landing/.",
)
def landing_data(context: AssetExecutionContext, settings: UnisrSettings) -> MaterializeResult:
    from unisr_data.landing import land_days, landed_days, source_days
    from unisr_data.partitions import days_of

    paths = settings.paths
    days = days_of(context.partition_keys, lambda: source_days(paths.source_dir))  # a month key: its days
    counts = land_days(paths.source_dir, paths.landing_dir, days)
    context.log.info(f"landed {len(days)} day(s): {counts}")
    return MaterializeResult(
        metadata={
            "partitions": MetadataValue.json(list(context.partition_keys)[:50]),
            "days": len(days),
            "first_day": days[0] if days else "",
            "last_day": days[-1] if days else "",
            "landed_days_total": len(landed_days(paths.landing_dir)),
            "dagster/row_count": int(sum(v for k, v in counts.items() if k.startswith("impressions_"))),
            "undated_rows": int(counts["impressions_undated"]),
        }
    )


@multi_asset(
    specs=[
        AssetSpec(key, group_name=GROUP, deps=[landing_data], description=f"Validated clean `{table}` rows.")
        for table, key in RAW_KEYS.items()
    ],
)
def raw_tables(context: AssetExecutionContext, settings: UnisrSettings):
    """Validate landing/ into raw/ (clean) and quarantine/ (bad rows with a reason); nothing is dropped.

    Unpartitioned, but it runs inside the partitioned jobs: a daily run validates only its day(s) (other days
    were validated when they landed); a run over every landed day, or outside a partitioned job, validates all.
    """
    from unisr_data.validation import validate

    paths = settings.paths
    days = run_landed_days(context, paths)
    report = validate(paths.landing_dir, paths.raw_dir, paths.quarantine_dir, time_window=settings.time_window(),
                      days=days)
    validated = report.validated_days
    context.log.info(f"validated {'every landing file' if report.full else f'{len(validated)} day(s)'}: "
                     f"{report.validated_landing_rows} landing rows judged")
    summary = report.to_dict()
    for table, key in RAW_KEYS.items():
        stats = summary["tables"][table]
        yield MaterializeResult(
            asset_key=key,
            metadata={
                "path": MetadataValue.path(str(table_path(paths.raw_dir, table))),
                # The whole clean table, not just what this run judged.
                "dagster/row_count": parquet_rows(table_path(paths.raw_dir, table)),
                "full_validation": report.full,
                "validated_days": len(validated),
                "first_validated_day": validated[0] if validated else "",
                "last_validated_day": validated[-1] if validated else "",
                # The days themselves, for the checks to look at only their parts (none needed when full).
                "validated_day_list": MetadataValue.json([] if report.full else validated),
                "validated_landing_rows": int(stats["landing"]),
                "quarantined_rows": int(stats["quarantined"]),
                "quarantined_by_reason": MetadataValue.json(stats.get("by_reason", {})),
                "quarantine_path": MetadataValue.path(str(table_path(paths.quarantine_dir, table))),
            },
        )


def read_raw_table(settings: UnisrSettings, table: str):
    """The clean raw table as pandas (impressions: all parts)."""
    return pq.read_table(table_path(settings.paths.raw_dir, table)).to_pandas()
