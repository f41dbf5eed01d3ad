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
