"""Blocking data-quality checks: adapter reject share per source file; on the raw tables rows conserved,
quarantine share, item-text coverage and the Great Expectations suites.

After a daily run (raw_tables validated only its days), rows conservation and the Great Expectations suite of
raw impressions look at those days' parts only: the other parts were checked when their day was validated.
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from orchestration.assets.ingest import RAW_KEYS, source_data
from orchestration.materializations import latest_metadata
from orchestration.resources import UnisrSettings
from unisr_data.contract import SCHEMAS, TABLES, parquet_rows, table_path
from unisr_data.sanity import items_without_text, max_items_without_text, share_breaches, top_reasons
from unisr_data.source_files import read_reject_summary


def quarantine_counts(quarantine_path: Path, column: str = "_reason") -> dict[str, int]:
    """Quarantined rows by reason (or by another quarantine column, e.g. `_source_file`), from a quarantine file
    or a folder of quarantine parts (impressions)."""
    files = sorted(quarantine_path.glob("*.parquet")) if quarantine_path.is_dir() else [quarantine_path]
    files = [f for f in files if f.exists()]
    if not files:
        return {}
    reasons = pa.concat_tables([pq.read_table(f, columns=[column]) for f in files]).column(column).to_pandas()
    return {str(k): int(v) for k, v in reasons.value_counts().items()}


def validated_parts(context: AssetCheckExecutionContext, table: str) -> list[str] | None:
    """The impression part names the latest raw_tables run judged (its days and the undated part); None when it
    judged everything: a full validation, an entity table (always re-validated whole), or nothing recorded."""
    from unisr_data.validation import impression_part_names

    if table != "impressions":
        return None
    try:
        metadata = latest_metadata(context.instance, RAW_KEYS["impressions"])
    except RuntimeError:
        return None
    if metadata.get("full_validation", True):
        return None
    return impression_part_names(metadata["validated_day_list"])


def _files(folder: Path, parts: list[str] | None) -> list[Path]:
    """The parquet parts of `folder` named in `parts` (all of them when None)."""
    return [p for p in sorted(folder.glob("*.parquet")) if parts is None or p.name in parts]


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
    def check(context: AssetCheckExecutionContext, settings: UnisrSettings) -> AssetCheckResult:
        paths = settings.paths
        parts = validated_parts(context, table)
        folders = [table_path(d, table) for d in (paths.landing_dir, paths.raw_dir, paths.quarantine_dir)]
        if parts is None:
            landing, clean, quarantined = (parquet_rows(f) for f in folders)
        else:
            landing, clean, quarantined = (sum(parquet_rows(f / name) for name in parts) for f in folders)
        return AssetCheckResult(
            passed=landing == clean + quarantined,
            metadata={"landing": landing, "clean": clean, "quarantined": quarantined,
                      "checked_parts": "all" if parts is None else MetadataValue.json(parts)},
        )

    return check


def _quarantine_share_check(table: str) -> AssetChecksDefinition:
    @asset_check(asset=RAW_KEYS[table], name="quarantine_share", blocking=True,
                 description=f"Share of quarantined `{table}` rows stays under the configured threshold.")
    def check(settings: UnisrSettings) -> AssetCheckResult:
        # Over the whole table, even after a daily run: the undated part (all quarantined) is re-judged every
        # day, and against one day's rows alone it could breach the threshold while the table is fine.
        paths = settings.paths
        quarantine_file = table_path(paths.quarantine_dir, table)
        by_reason = quarantine_counts(quarantine_file)
        quarantined = sum(by_reason.values())
        total = parquet_rows(table_path(paths.raw_dir, table)) + quarantined
        share = quarantined / total if total else 0.0
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
    def check(context: AssetCheckExecutionContext, settings: UnisrSettings) -> AssetCheckResult:
        from unisr_data.quality import check_frame

        path = table_path(settings.paths.raw_dir, table)
        parts = validated_parts(context, table)
        data = pq.read_table(path) if parts is None else pa.concat_tables(
            [pq.read_table(f) for f in _files(path, parts)] or [SCHEMAS[table].empty_table()])
        result = check_frame(data.to_pandas(), f"raw_{table}")
        return AssetCheckResult(
            passed=result.success,
            metadata={"failures": MetadataValue.json(result.failures),
                      "statistics": MetadataValue.json(result.statistics),
                      "checked_parts": "all" if parts is None else MetadataValue.json(parts)},
        )

    return check


raw_checks = [
    source_rejects_share,
    item_text_coverage,
    *(factory(t) for t in TABLES for factory in (_rows_conserved_check, _quarantine_share_check, _expectations_check)),
]
