"""The Dagster code location loads, groups read as the pipeline, and the daily schedule targets its day."""
from __future__ import annotations

from datetime import datetime, timezone

from dagster import AssetKey, RunRequest, SkipReason, build_schedule_context, instance_for_test

from orchestration.assets.ingest import impression_days
from orchestration.definitions import defs
from orchestration.schedules import daily_retrain


def test_definitions_load_with_lineage_from_raw_to_report():
    defs.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for expected in ("source_data", "landing_data", "raw/impressions", "samples_pretrain", "mart_exports",
                     "text_embeddings", "feast_registry", "online_features", "training_sets",
                     "pretrained_model", "coldstart_model", "evaluation_report", "promoted_model"):
        assert expected in keys
    # lineage: the report depends (transitively) on the raw impressions and the dbt marts
    upstream = graph.get(AssetKey("evaluation_report")).parent_keys
    assert AssetKey("coldstart_model") in upstream
    assert AssetKey(["raw", "impressions"]) in graph.get(AssetKey("stg_impressions")).parent_keys


def test_schedule_requests_yesterdays_partition_and_finetunes_on_weekdays():
    tuesday = datetime(2026, 3, 3, 3, 0, tzinfo=timezone.utc)  # ingests Monday 2026-03-02
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(impression_days.name, ["2026-03-02", "2026-03-03"])
        with build_schedule_context(instance=instance, scheduled_execution_time=tuesday) as context:
            request = daily_retrain(context)
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-03-02"
    assert request.tags["unisr/retrain"] == "finetune"
    selected = {k.to_user_string() for k in request.asset_selection}
    assert "coldstart_model" in selected and "pretrained_model" not in selected


def test_schedule_full_retrain_on_the_weekly_day_and_skips_days_without_data():
    sunday = datetime(2026, 3, 8, 3, 0, tzinfo=timezone.utc)  # weekday 6 = default full retrain day
    later = datetime(2026, 4, 1, 3, tzinfo=timezone.utc)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(impression_days.name, ["2026-03-07"])
        with build_schedule_context(instance=instance, scheduled_execution_time=sunday) as context:
            request = daily_retrain(context)
        with build_schedule_context(instance=instance, scheduled_execution_time=later) as context:
            skipped = daily_retrain(context)
    assert request.tags["unisr/retrain"] == "full" and request.asset_selection is None
    assert isinstance(skipped, SkipReason)
