"""Great Expectations suites on the dbt marts, beside dbt's own tests (which dagster-dbt shows as checks)."""

from dagster import AssetCheckResult, AssetChecksDefinition, AssetKey, MetadataValue, asset_check

from orchestration.resources import UnisrSettings, WarehouseResource


def _mart_expectations_check(mart: str) -> AssetChecksDefinition:
    @asset_check(asset=AssetKey(mart), name="great_expectations", blocking=True,
                 description=f"The Great Expectations suite of mart `{mart}`.")
    def check(settings: UnisrSettings, warehouse: WarehouseResource) -> AssetCheckResult:
        from unisr_data.quality import check_frame

        with warehouse.connect(settings.paths) as con:
            frame = con.execute(f'SELECT * FROM "{mart}"').df()
        result = check_frame(frame, mart)
        return AssetCheckResult(
            passed=result.success,
            metadata={
                "rows": len(frame),
                "failures": MetadataValue.json(result.failures),
                "statistics": MetadataValue.json(result.statistics),
            },
        )

    return check


def mart_checks() -> list[AssetChecksDefinition]:
    from unisr_data.warehouse import MARTS

    return [_mart_expectations_check(m) for m in MARTS]
