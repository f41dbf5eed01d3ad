"""A daily run of the ingest stage in Dagster: raw_tables validates only the run's day, records which, and the
raw checks look at that day's parts; a run over every landed day validates everything."""
from __future__ import annotations

from dagster import AssetKey, instance_for_test, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.assets.ingest import RAW_KEYS, landing_data, raw_tables, source_data
from orchestration.checks.ingest import raw_checks
from orchestration.materializations import latest_metadata
from orchestration.partitions import impression_days
from orchestration.resources import UnisrSettings

RAW_TABLE_CHECKS = [c for c in raw_checks if all(k.asset_key in RAW_KEYS.values() for k in c.check_keys)]


def _check_metadata(result, name: str) -> dict:
    [evaluation] = [e for e in result.get_asset_check_evaluations()
                    if e.asset_key == RAW_KEYS["impressions"] and e.check_name == name]
    assert evaluation.passed, evaluation.description
    return {k: v.value for k, v in evaluation.metadata.items()}


def test_a_daily_run_validates_and_checks_only_its_day(tmp_path):
    resources = {"settings": UnisrSettings(dataset="synthetic", var_dir=str(tmp_path / "var"))}
    assets = [landing_data, raw_tables, *RAW_TABLE_CHECKS]
    with instance_for_test() as instance:
        assert materialize([source_data], resources=resources, instance=instance, run_config={
            "ops": {"source_data": {"config": {"tiny": True}}}}).success
        days = instance.get_dynamic_partitions(impression_days.name)
        backfill = materialize(assets, resources=resources, instance=instance, tags={
            ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-2]})
        assert backfill.success
        meta = latest_metadata(instance, RAW_KEYS["impressions"])
        assert meta["full_validation"] and meta["validated_days"] == len(days) - 1  # every landed day
        assert _check_metadata(backfill, "great_expectations")["checked_parts"] == "all"

        daily = materialize(assets, resources=resources, instance=instance, partition_key=days[-1])
        assert daily.success
        meta = latest_metadata(instance, RAW_KEYS["impressions"])
        assert not meta["full_validation"] and meta["validated_days"] == 1
        assert meta["first_validated_day"] == meta["last_validated_day"] == days[-1]
        assert meta["validated_day_list"] == [days[-1]]
        # landing_data's row count is the day's and the undated part's rows: just what was judged.
        landed = latest_metadata(instance, AssetKey("landing_data"))
        assert meta["validated_landing_rows"] == landed["dagster/row_count"]
        assert meta["dagster/row_count"] > meta["validated_landing_rows"]  # the whole clean table
        parts = [f"part-{days[-1]}.parquet", "part-undated.parquet"]
        assert _check_metadata(daily, "great_expectations")["checked_parts"] == parts
        conserved = _check_metadata(daily, "rows_conserved")
        assert conserved["checked_parts"] == parts and conserved["landing"] == meta["validated_landing_rows"]
