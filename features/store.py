"""Build the Feast `FeatureStore` for a `Paths` (SQLite or Redis online), apply definitions and materialize."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import duckdb
from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RegistryConfig

from features.definitions import BEHAVIOUR_VIEW, EMBEDDING_VIEWS, PROJECT, SPARSE_VIEWS, build_definitions
from features.pruned_join import parts_between
from unisr_data.paths import Paths
from unisr_data.sql import sql_string

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


EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _entities_in_range(path: str, key: str, start: datetime, end: datetime) -> int:
    # materialize writes the latest row per entity within [start, end): count those entities
    query = (f"SELECT count(DISTINCT {key}) FROM read_parquet(?) "
             f"WHERE event_timestamp >= ? AND event_timestamp < ?")
    with duckdb.connect() as con:
        return int(con.execute(query, [path, start, end]).fetchone()[0])


def _join_keys() -> dict[str, str]:
    return ({v: key for v, (_, key, _) in SPARSE_VIEWS.items()} | {v: key for v, (_, key, _) in EMBEDDING_VIEWS.items()}
            | {BEHAVIOUR_VIEW: "user_id"})


def _check_aware(**stamps: datetime | None) -> None:
    naive = {name: t for name, t in stamps.items() if t is not None and t.tzinfo is None}
    if naive:
        raise ValueError(f"materialize needs timezone-aware datetimes, got {naive!r}")


def materialize(store: FeatureStore, end: datetime, start: datetime | None = None) -> dict[str, int]:
    """Load rows with event_timestamp in [start, end) into the online store; returns entities written per view.

    `start` defaults to the epoch (everything up to `end`), so the first run fills the store completely.
    """
    start = start or EPOCH
    _check_aware(start=start, end=end)
    store.materialize(start_date=start, end_date=end)
    for view in EMBEDDING_VIEWS:  # what materialize_incremental's "changed" mode compares with
        if start == EPOCH:
            _write_changed_embeddings(store, view, end, write=False)
        else:
            _online_state(store, view).unlink(missing_ok=True)
    keys, written = _join_keys(), {}
    for view in store.list_feature_views():
        if view.name in EMBEDDING_VIEWS:
            written[view.name] = _entities_in_range(view.batch_source.path, keys[view.name], start, end)
        else:  # recorded for materialize_incremental's "restate" mode to compare with
            written[view.name] = _write_changed_rows(store, view.name, start, end, write=False)
    return written


def materialize_incremental(store: FeatureStore, end: datetime, since: datetime | None = None) -> dict[str, dict]:
    """Load each view's rows from where its last materialization ended up to `end`; the interval loaded per view.

    Returns {view: {"mode", "start", "end", "entities"}} (ISO times; entities = distinct keys with rows in the
    interval, the entities whose online row was (re)written). Modes:
    - "full": a view never materialized loads [epoch, end). Feast's own `materialize_incremental` would start it
      at now - ttl, or now - 52 weeks for ttl 0 (user_behaviour, the text embeddings), and miss older history.
    - "incremental": Feast's `materialize_incremental`, from the view's most recent end (kept in the registry
      across `apply`), when nothing before it changed.
    - "restate": [since, end) when `since` (the first day a run rebuilt in the marts) lies before the last end. The
      day-keyed marts hold rows up to window + 1 days after the last activity, so the last end is already past the
      newest day; a rebuilt day rewrites rows from that day on (an item's first row, stamped at its creation, may
      have no later row to carry it), and only restating from `since` is sure to load them. A daily tick therefore
      restates from its day. Of each entity's latest row in [since, end) only those that differ from the row online
      (its key, timestamp and values, hashed beside the registry: `.<view>.online.<store>.parquet`) are written, with
      Feast's `write_to_online_store`, and the view's interval is recorded as Feast's materialize records it: the
      entities active on the tick's day, not every entity with a row in the last window + 1 days (which grows with
      the catalog).
    - "up_to_date": the view was already materialized to `end` and nothing before it changed.
    Entities: the entities written online (full / incremental: those with rows in the interval).
    - "changed" (the text-embedding views once loaded in full): the vectors whose id or text is not online yet, with
      a timestamp before `end`, written with Feast's `write_to_online_store`. Their timestamps are item creation
      times and a fixed epoch for queries, not arrival times, so an interval after the last end would never load a
      new query's vector; what was written is kept beside the registry (`.<view>.online.parquet`: id, text hash),
      so a tick writes the new items' vectors, not every item's.
    """
    _check_aware(end=end, since=since)
    plan: dict[str, tuple[str, datetime]] = {}
    for view in store.list_feature_views():
        last = view.most_recent_end_time
        last = last.replace(tzinfo=timezone.utc) if last is not None and last.tzinfo is None else last
        if view.name in EMBEDDING_VIEWS:
            known = last is not None and _online_state(store, view.name).exists()
            plan[view.name] = ("changed", EPOCH) if known else ("full", EPOCH)
        elif last is None:
            plan[view.name] = ("full", EPOCH)
        elif since is not None and since < last:
            plan[view.name] = ("restate", since)
        elif last >= end:
            plan[view.name] = ("up_to_date", end)
        else:
            plan[view.name] = ("incremental", last)
    by_start: dict[datetime, list[str]] = {}
    for view, (mode, start) in plan.items():
        if mode == "full":
            by_start.setdefault(start, []).append(view)
    for start, views in sorted(by_start.items()):
        store.materialize(start_date=start, end_date=end, feature_views=sorted(views))
    incremental = sorted(v for v, (mode, _) in plan.items() if mode == "incremental")
    if incremental:
        store.materialize_incremental(end_date=end, feature_views=incremental)
    written = {view: _write_changed_embeddings(store, view, end, write=mode == "changed")
               for view, (mode, _) in plan.items() if view in EMBEDDING_VIEWS}
    for view, (mode, start) in plan.items():
        if view not in EMBEDDING_VIEWS and mode != "up_to_date":
            # restate: the rows that differ from what is online; the others: record what Feast wrote
            written[view] = _write_changed_rows(store, view, start, end, write=mode == "restate")
    return {
        view: {"mode": mode, "start": start.isoformat(), "end": end.isoformat(),
               "entities": 0 if mode == "up_to_date" else written[view]}
        for view, (mode, start) in sorted(plan.items())
    }


def _online_state(store: FeatureStore, view: str) -> Path:
    """Beside the registry, per online store type: what of `view` was written online, (id, text hash) for a text
    vector view, (key, row hash) for the others."""
    return Path(store.config.repo_path) / f".{view}.online.{store.config.online_store.type}.parquet"


def _write_changed_rows(store: FeatureStore, view: str, start: datetime, end: datetime, write: bool = True) -> int:
    """Of each entity's latest row of `view` stamped in [start, end), write online (when `write`) those whose hash
    of key, timestamp and values differs from the online state's, and record the interval in the registry; then
    record every such row as online. Returns the rows written (or, without `write`, the rows recorded: what
    Feast's materialize of the interval wrote)."""
    key = _join_keys()[view]
    feature_view = store.get_feature_view(view)
    features = [f.name for f in feature_view.features]
    source = Path(feature_view.batch_source.path)
    parts = parts_between(source, start, end)
    files = [str(p) for p in parts] if parts is not None else [str(source)]
    state = _online_state(store, view)
    row_hash = f"hash({key}, event_timestamp, {', '.join(features)})"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f"CREATE TABLE latest AS SELECT {key}, event_timestamp, {', '.join(features)}, {row_hash} AS row_hash "
            f"FROM read_parquet(?) WHERE event_timestamp >= ? AND event_timestamp < ? "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC) = 1", [files, start, end])
        known = (f"SELECT {key}, row_hash FROM read_parquet({sql_string(state)})" if state.exists()
                 else f"SELECT {key}, row_hash FROM latest WHERE false")
        if write:
            frame = con.execute(f"SELECT l.* EXCLUDE (row_hash) FROM latest AS l "
                                f"ANTI JOIN ({known}) AS k ON l.{key} = k.{key} AND l.row_hash = k.row_hash").df()
            if len(frame):
                store.write_to_online_store(view, frame)
            store.registry.apply_materialization(feature_view, store.project, start, end)
            count = len(frame)
        else:
            count = con.execute("SELECT count(*) FROM latest").fetchone()[0]
        tmp = state.with_name(f"{state.name}.tmp")
        con.execute(  # the new rows' hashes win; entities without a row in the interval keep theirs
            f"COPY (SELECT {key}, row_hash FROM latest UNION ALL SELECT * FROM ({known}) AS k "
            f"WHERE k.{key} NOT IN (SELECT {key} FROM latest) ORDER BY {key}) TO {sql_string(tmp)} (FORMAT parquet)")
    os.replace(tmp, state)  # recorded only after the write succeeded
    return int(count)


def _write_changed_embeddings(store: FeatureStore, view: str, end: datetime, write: bool = True) -> int:
    """Write online the vectors of `view` (latest per id, stamped before `end`) whose (id, text hash) the online
    state lacks, when `write`; then record every such pair as online. Returns the vectors written."""
    _, key, stem = EMBEDDING_VIEWS[view]
    source = store.get_feature_view(view).batch_source.path
    state = _online_state(store, view)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(
            f"CREATE TABLE latest AS SELECT {key}, embedding, text_hash, event_timestamp FROM read_parquet(?) "
            f"WHERE event_timestamp < ? "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC) = 1",
            [source, end])
        changed = 0
        if write:
            known = (f"SELECT {key}, text_hash FROM read_parquet({sql_string(state)})" if state.exists()
                     else f"SELECT {key}, text_hash FROM latest WHERE false")
            frame = con.execute(
                f"SELECT l.{key}, l.embedding AS {stem}, l.event_timestamp FROM latest AS l "
                f"ANTI JOIN ({known}) AS k ON l.{key} = k.{key} AND l.text_hash IS NOT DISTINCT FROM k.text_hash"
            ).df()
            if len(frame):
                store.write_to_online_store(view, frame)
            changed = len(frame)
        tmp = state.with_name(f"{state.name}.tmp")
        con.execute(f"COPY (SELECT {key}, text_hash FROM latest ORDER BY {key}) TO {sql_string(tmp)} (FORMAT parquet)")
    os.replace(tmp, state)  # recorded only after the write succeeded
    return changed


