"""The run's partitions as days: what a partitioned run (a daily tick, a range backfill, `make run`) covers.

Partition keys are days or, for long-span sources, months (unisr_data/partitions.py). Assets below the ingest
stage are unpartitioned but run inside partitioned jobs, so they read the run's keys here and work on its days.
"""
from __future__ import annotations

from dagster import AssetExecutionContext, DynamicPartitionsDefinition
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

from unisr_data.partitions import days_of

#: One partition per day of impressions (per month for long-span sources); `source_data` registers them.
impression_days = DynamicPartitionsDefinition(name="impression_days")


def run_partition_keys(context: AssetExecutionContext) -> list[str] | None:
    """The partition keys of the run (a single key or a range), None when the run is not partitioned."""
    tags = context.run.tags
    if PARTITION_NAME_TAG in tags:
        return [tags[PARTITION_NAME_TAG]]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start is None or end is None:
        return None
    keys = context.instance.get_dynamic_partitions(impression_days.name)
    if start not in keys or end not in keys:
        raise ValueError(f"partition range {start}..{end} is not registered in {impression_days.name}")
    return keys[keys.index(start):keys.index(end) + 1]


def run_days(context: AssetExecutionContext, available_days: list[str]) -> list[str] | None:
    """The days the run covers among `available_days` (month keys expand to their days); None = not partitioned."""
    keys = run_partition_keys(context)
    return None if keys is None else days_of(keys, available_days)


def run_landed_days(context: AssetExecutionContext, paths) -> list[str] | None:
    """The landed days (`paths.landing_dir`) the run covers; None outside a partitioned run: the one reading of the
    run's days for the stages after landing (validation, training sets, the online store)."""
    from unisr_data.landing import landed_days

    return run_days(context, landed_days(paths.landing_dir))


def covers_all(days: list[str] | None, available_days: list[str]) -> bool:
    """Whether a run over `days` covers every available day (then a full rebuild is what it should do)."""
    return days is None or set(available_days) <= set(days)
