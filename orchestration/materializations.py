"""Reading what earlier materializations recorded (lineage through Dagster's event log), with clear errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance


def latest_metadata(instance: DagsterInstance, key: AssetKey) -> dict[str, Any]:
    """The metadata values of `key`'s latest materialization; a clear error when it was never materialized."""
    event = instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        raise RuntimeError(f"{key.to_user_string()} has never been materialized: materialize it first")
    return {name: entry.value for name, entry in event.asset_materialization.metadata.items()}


def recorded_path(instance: DagsterInstance, key: AssetKey, name: str = "checkpoint") -> Path:
    """A file path recorded in `key`'s latest materialization metadata, which must still exist."""
    metadata = latest_metadata(instance, key)
    if name not in metadata:
        raise RuntimeError(f"{key.to_user_string()}'s latest materialization records no {name!r}: re-materialize it")
    path = Path(metadata[name])
    if not path.exists():
        raise FileNotFoundError(f"{key.to_user_string()}'s {name} {path} is gone: re-materialize it")
    return path


def run_elapsed_seconds(instance: DagsterInstance, run_id: str) -> float:
    """Seconds since the run started (its creation when no start was recorded): the wall time of a run so far,
    recorded by its last asset so a daily tick's cost shows beside its result."""
    import time

    record = instance.get_run_record_by_id(run_id)
    if record is None:
        raise RuntimeError(f"run {run_id} is not in the instance")
    start = record.start_time or record.create_timestamp.timestamp()
    return round(time.time() - start, 1)
