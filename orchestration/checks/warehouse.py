"""Great Expectations suites on the dbt marts, beside dbt's own tests (which dagster-dbt shows as checks).

Each check costs what its run changed (unisr_data/mart_quality.py): Great Expectations on the rows stamped from the
run's first day on (a daily tick, a range backfill), or on a bounded sample after a full build, and the same suite as
exact DuckDB aggregates over the same rows on a tick, over every row after a full build and in the weekly full
retrain.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetKey,
    MetadataValue,
    asset_check,
)

from orchestration.assets.warehouse import TEST_EVERY_ROW_JOBS
from orchestration.partitions import covers_all, run_landed_days
from orchestration.resources import UnisrSettings, WarehouseResource


def _first_rebuilt_day(context: AssetCheckExecutionContext, settings: UnisrSettings) -> str | None:
    """The run's first day when it rebuilt a day window (not every landed day), else None."""
    from unisr_data.landing import landed_days

    days = run_landed_days(context, settings.paths)
    if not days or covers_all(days, landed_days(settings.paths.landing_dir)):
        return None
    return min(days)


def _mart_expectations_check(mart: str) -> AssetChecksDefinition:
    @asset_check(asset=AssetKey(mart), name="great_expectations", blocking=True,
                 description=f"The Great Expectations suite of mart `{mart}` on the rows the run rebuilt (or a "
                             "sample), and the same suite as exact DuckDB aggregates over every row.")
    def check(context: AssetCheckExecutionContext, settings: UnisrSettings,
              warehouse: WarehouseResource) -> AssetCheckResult:
        from unisr_data.mart_quality import Scope, check_mart

        every_row = context.run.job_name in TEST_EVERY_ROW_JOBS  # the weekly full retrain checks every row
        with warehouse.connect(settings.paths) as con:
            result = check_mart(con, mart, Scope.from_day(_first_rebuilt_day(context, settings), every_row=every_row))
        return AssetCheckResult(
            passed=result.success,
            metadata={
                "rows": result.statistics["rows"],
                "ge_scope": result.statistics["ge_scope"],
                "ge_rows": result.statistics["ge_rows"],
                "failures": MetadataValue.json(result.failures),
                "statistics": MetadataValue.json(result.statistics),
            },
        )

    return check


def mart_checks() -> list[AssetChecksDefinition]:
    from unisr_data.warehouse import MARTS

    return [_mart_expectations_check(m) for m in MARTS]
