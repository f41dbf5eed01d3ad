"""Blocking data-quality checks on the raw tables: rows conserved, quarantine share, Great Expectations suites."""

from pathlib import Path

import pyarrow.parquet as pq
from dagster import AssetCheckResult, AssetCheckSeverity, AssetChecksDefinition, MetadataValue, asset_check

from orchestration.assets.ingest import RAW_KEYS
from orchestration.resources import UnisrSettings
from unisr_data.contract import TABLES, table_path


def parquet_rows(path: Path) -> int:
    """Rows in a parquet file or a folder of parquet parts, from metadata only (0 when absent)."""
    if path.is_dir():
        return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(path.glob("*.parquet")))
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def quarantine_counts(quarantine_file: Path) -> dict[str, int]:
    """Quarantined rows by reason."""
    if not quarantine_file.exists():
        return {}
    reasons = pq.read_table(quarantine_file, columns=["_reason"]).column("_reason").to_pandas()
    return {str(k): int(v) for k, v in reasons.value_counts().items()}


def _rows_conserved_check(table: str) -> AssetChecksDefinition:
    @asset_check(asset=RAW_KEYS[table], name="rows_conserved", blocking=True,
                 description=f"landing `{table}` rows = clean rows + quarantined rows: nothing silently dropped.")
    def check(settings: UnisrSettings) -> AssetCheckResult:
        paths = settings.paths
        landing = parquet_rows(table_path(paths.landing_dir, table))
        clean = parquet_rows(table_path(paths.raw_dir, table))
        quarantined = parquet_rows(paths.quarantine_dir / f"{table}.parquet")
        return AssetCheckResult(
            passed=landing == clean + quarantined,
            metadata={"landing": landing, "clean": clean, "quarantined": quarantined},
        )

    return check


def _quarantine_share_check(table: str) -> AssetChecksDefinition:
    @asset_check(asset=RAW_KEYS[table], name="quarantine_share", blocking=True,
                 description=f"Share of quarantined `{table}` rows stays under the configured threshold.")
    def check(settings: UnisrSettings) -> AssetCheckResult:
        paths = settings.paths
        by_reason = quarantine_counts(paths.quarantine_dir / f"{table}.parquet")
        quarantined = sum(by_reason.values())
        total = parquet_rows(table_path(paths.raw_dir, table)) + quarantined
        share = quarantined / total if total else 0.0
        return AssetCheckResult(
            passed=share <= settings.max_quarantine_share,
            severity=AssetCheckSeverity.ERROR,
            description=None if share <= settings.max_quarantine_share
            else f"{share:.2%} of {table} rows quarantined (threshold {settings.max_quarantine_share:.2%}); see {paths.quarantine_dir}",
            metadata={
                "share": share,
                "threshold": settings.max_quarantine_share,
                "quarantined": quarantined,
                "by_reason": MetadataValue.json(by_reason),
            },
        )

    return check


def _expectations_check(table: str) -> AssetChecksDefinition:
    @asset_check(asset=RAW_KEYS[table], name="great_expectations", blocking=True,
                 description=f"The Great Expectations suite of raw `{table}`.")
    def check(settings: UnisrSettings) -> AssetCheckResult:
        from unisr_data.quality import check_frame

        frame = pq.read_table(table_path(settings.paths.raw_dir, table)).to_pandas()
        result = check_frame(frame, f"raw_{table}")
        return AssetCheckResult(
            passed=result.success,
            metadata={"failures": MetadataValue.json(result.failures), "statistics": MetadataValue.json(result.statistics)},
        )

    return check


raw_checks = [factory(t) for t in TABLES for factory in (_rows_conserved_check, _quarantine_share_check, _expectations_check)]
