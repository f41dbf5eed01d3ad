"""Blocking data-quality checks: adapter reject share per source file; on the raw tables rows conserved,
quarantine share, item-text coverage and the Great Expectations suites."""

from pathlib import Path

import pyarrow.parquet as pq
from dagster import AssetCheckResult, AssetChecksDefinition, AssetCheckSeverity, MetadataValue, asset_check

from orchestration.assets.ingest import RAW_KEYS, source_data
from orchestration.resources import UnisrSettings
from unisr_data.contract import TABLES, table_path
from unisr_data.sanity import items_without_text, max_items_without_text, share_breaches, top_reasons
from unisr_data.source_files import read_reject_summary


def parquet_rows(path: Path) -> int:
    """Rows in a parquet file or a folder of parquet parts, from metadata only (0 when absent)."""
    if path.is_dir():
        return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(path.glob("*.parquet")))
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def quarantine_counts(quarantine_file: Path, column: str = "_reason") -> dict[str, int]:
    """Quarantined rows by reason (or by another quarantine column, e.g. `_source_file`)."""
    if not quarantine_file.exists():
        return {}
    reasons = pq.read_table(quarantine_file, columns=[column]).column(column).to_pandas()
    return {str(k): int(v) for k, v in reasons.value_counts().items()}


@asset_check(asset=source_data, name="source_rejects_share", blocking=True,
             description="Per source file of a real dataset, rows the adapter rejected stay under the threshold "
                         "(UnisrSettings.max_rejected_share); a breach names the file, the count and top reasons.")
def source_rejects_share(settings: UnisrSettings) -> AssetCheckResult:
    paths = settings.paths
    summary = read_reject_summary(paths.source_dir)
    if summary is None:  # the synthetic generator writes contract tables directly: nothing to reject
        return AssetCheckResult(passed=True, metadata={"files": 0, "threshold": settings.max_rejected_share})
    counts = {file: (s["rows"], s["rejected"], s["by_reason"]) for file, s in summary.items()}
    breaches = share_breaches(counts, settings.max_rejected_share)
    rejected = sum(s["rejected"] for s in summary.values())
    return AssetCheckResult(
        passed=not breaches,
        severity=AssetCheckSeverity.ERROR,
        description=None if not breaches else
        f"source rows rejected above {settings.max_rejected_share:.2%} (see {paths.source_dir / '_rejects'}): "
        + "; ".join(b.describe() for b in breaches),
        metadata={
            "threshold": settings.max_rejected_share,
            "rejected_rows": rejected,
            "worst_share": max((s["rejected"] / s["rows"] for s in summary.values() if s["rows"]), default=0.0),
            "per_file": MetadataValue.json(summary),
        },
    )


@asset_check(asset=RAW_KEYS["items"], name="item_text_coverage", blocking=True,
             description="The share of items without text (the model's text aspect) stays under the threshold "
                         "(UnisrSettings.max_items_without_text_share, default per dataset).")
def item_text_coverage(settings: UnisrSettings) -> AssetCheckResult:
    path = table_path(settings.paths.raw_dir, "items")
    missing, total = items_without_text(path)
    share = missing / total if total else 1.0
    limit = max_items_without_text(settings.dataset, settings.max_items_without_text_share)
    return AssetCheckResult(
        passed=share <= limit,
        severity=AssetCheckSeverity.ERROR,
        description=None if share <= limit else
        f"{missing:,} of {total:,} items ({share:.2%}) have no text, above {limit:.2%}: a text model would train "
        f"without text; check the item source file and its rejects ({settings.paths.source_dir / '_rejects'})",
        metadata={"items": total, "without_text": missing, "share": share, "threshold": limit},
    )


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
        quarantine_file = paths.quarantine_dir / f"{table}.parquet"
        by_file = quarantine_counts(quarantine_file, "_source_file") if share > settings.max_quarantine_share else {}
        return AssetCheckResult(
            passed=share <= settings.max_quarantine_share,
            severity=AssetCheckSeverity.ERROR,
            description=None if share <= settings.max_quarantine_share
            else f"{quarantined:,} of {total:,} {table} rows quarantined ({share:.2%}, threshold "
                 f"{settings.max_quarantine_share:.2%}); top reasons: {top_reasons(by_reason)}; most from "
                 f"{top_reasons(by_file)} (landing files); see {quarantine_file}",
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
            metadata={"failures": MetadataValue.json(result.failures),
                      "statistics": MetadataValue.json(result.statistics)},
        )

    return check


raw_checks = [
    source_rejects_share,
    item_text_coverage,
    *(factory(t) for t in TABLES for factory in (_rows_conserved_check, _quarantine_share_check, _expectations_check)),
]
