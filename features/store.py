"""Build the Feast `FeatureStore` for a `Paths` (SQLite or Redis online), apply definitions and materialize."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import duckdb
from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RegistryConfig

from features.definitions import BEHAVIOUR_VIEW, EMBEDDING_VIEWS, PROJECT, SPARSE_VIEWS, build_definitions
from unisr_data.paths import Paths

REDIS_ENV = "UNISR_REDIS"  # e.g. "redis.internal:6379,password=…,ssl=true"


def repo_config(paths: Paths, online: str = "sqlite", redis_connection: str | None = None) -> RepoConfig:
    """The RepoConfig the CLI's feature_repo/feature_store.yaml describes, built for `paths`."""
    paths.feast_dir.mkdir(parents=True, exist_ok=True)
    if online == "sqlite":
        online_store = SqliteOnlineStoreConfig(path=str(paths.feast_dir / "online_store.db"))
    elif online == "redis":
        connection = redis_connection or os.environ.get(REDIS_ENV)
        if not connection:
            raise ValueError(
                f"online='redis' needs a connection string: pass redis_connection='host:port[,password=…]' "
                f"or set ${REDIS_ENV}"
            )
        online_store = RedisOnlineStoreConfig(connection_string=connection)
    else:
        raise ValueError(f"unknown online store {online!r}: use 'sqlite' or 'redis'")
    return RepoConfig(
        project=PROJECT,
        provider="local",
        # cache_ttl 0: the registry file is re-read only when we call refresh_registry(), never per request
        registry=RegistryConfig(path=str(paths.feast_dir / "registry.db"), cache_ttl_seconds=0),
        offline_store=DuckDBOfflineStoreConfig(),
        online_store=online_store,
        entity_key_serialization_version=3,
        repo_path=paths.feast_dir,
    )


def feature_store(paths: Paths, online: str = "sqlite", redis_connection: str | None = None) -> FeatureStore:
    """A FeatureStore over `paths` with registry and SQLite file in `paths.feast_dir`, or a Redis online store."""
    return FeatureStore(config=repo_config(paths, online, redis_connection))


def apply(store: FeatureStore, paths: Paths) -> list[str]:
    """Register every definition built for `paths`; returns the names applied."""
    objects = build_definitions(paths)
    missing = [
        src.path for src in (o for o in objects if hasattr(o, "file_options")) if not os.path.exists(src.path)
    ]
    if missing:
        raise FileNotFoundError(
            f"feature sources missing: {missing}; build the dbt marts (marts_dir={paths.marts_dir}) and the "
            f"text embeddings (embeddings_dir={paths.embeddings_dir}) before applying the feature store"
        )
    store.apply(objects)
    return [o.name for o in objects]


def _entities_in_range(path: str, key: str, start: datetime, end: datetime) -> int:
    # materialize writes the latest row per entity within [start, end): count those entities
    query = (f"SELECT count(DISTINCT {key}) FROM read_parquet(?) "
             f"WHERE event_timestamp >= ? AND event_timestamp < ?")
    with duckdb.connect() as con:
        return int(con.execute(query, [path, start, end]).fetchone()[0])


def materialize(store: FeatureStore, end: datetime, start: datetime | None = None) -> dict[str, int]:
    """Load rows with event_timestamp in [start, end) into the online store; returns entities written per view.

    `start` defaults to the epoch (everything up to `end`), so the first run fills the store completely.
    """
    start = start or datetime(1970, 1, 1, tzinfo=timezone.utc)
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError(f"materialize needs timezone-aware datetimes, got start={start!r} end={end!r}")
    store.materialize(start_date=start, end_date=end)
    keys = ({v: key for v, (_, key, _) in SPARSE_VIEWS.items()} | {v: key for v, (_, key, _) in EMBEDDING_VIEWS.items()}
            | {BEHAVIOUR_VIEW: "user_id"})
    written = {}
    for view in store.list_feature_views():
        written[view.name] = _entities_in_range(view.batch_source.path, keys[view.name], start, end)
    return written
