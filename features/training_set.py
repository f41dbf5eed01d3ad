"""Training folders (the models/ input contract) from point-in-time Feast joins of features onto samples."""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore

from embeddings.training_vectors import training_vectors
from features.behaviour import NUMERIC_COLUMNS as BEHAVIOUR_NUMERIC
from features.behaviour import SEQUENCE_COLUMNS as BEHAVIOUR_SEQUENCES
from features.behaviour import behaviour_columns
from features.definitions import BEHAVIOUR_FEATURES, BEHAVIOUR_VIEW, EMBEDDING_VIEWS, SPARSE_VIEWS, feature_columns
from features.pruned_join import historical_features
from unisr_data.paths import Paths
from unisr_data.warehouse import (
    BEHAVIOUR_LENGTH,
    BEHAVIOUR_QUERY_LENGTH,
    DAY_PART,
    EMPTY_PART,
    LONG_SPAN_DAYS,
    MONTH_PART,
    PART_STAMPS,
    part_expression,
    part_key,
    part_start,
)

# Output split -> sample mart. Each mart has a `split` column; a split keeps the mart rows whose split matches.
SPLITS = {
    "pretrain": {"train": "samples_pretrain", "valid": "samples_pretrain"},
    "coldstart": {
        "train": "samples_coldstart_train",
        "valid": "samples_coldstart_valid",
        "test": "samples_coldstart_test",
    },
}
# impression_id identifies a row (evaluation joins on it); it is never a model input.
SAMPLE_COLUMNS = ["impression_id", "domain_id", "user_id", "item_id", "query_id", "request_id", "label",
                  "event_timestamp", "is_new_item"]
_ROW = "_sample_row"  # carried through Feast so output order and count can be checked against the input
#: Hidden (tree_digest and the folder's readers skip it): the joined feature rows per impression day.
JOINED_DIR = ".joined"


def _read_split(paths: Paths, mart: str, split: str) -> pd.DataFrame:
    path = paths.marts_dir / f"{mart}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"sample mart {path} not found; run the dbt marts (and their parquet export) first")
    with duckdb.connect() as con:
        frame = con.execute(
            f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM read_parquet(?) WHERE split = ?", [str(path), split]
        ).arrow().read_all().to_pandas()
    frame[_ROW] = np.arange(len(frame), dtype=np.int64)
    return frame


def _view_features(view: str) -> dict:
    return BEHAVIOUR_FEATURES if view == BEHAVIOUR_VIEW else SPARSE_VIEWS[view][2]


def _historical(store: FeatureStore, entity_df: pd.DataFrame, views: list[str]) -> pd.DataFrame:
    features = [feature for view in views for feature in _view_features(view)]
    if entity_df.empty:  # Feast cannot infer a timestamp column from an empty frame
        return entity_df.assign(**{f: pd.Series(dtype="object") for f in features})
    refs = [f"{view}:{feature}" for view in views for feature in _view_features(view)]
    out = historical_features(store, entity_df, views, refs)  # Feast's join over the parts it can match
    out = out.sort_values(_ROW).reset_index(drop=True)
    if len(out) != len(entity_df) or not np.array_equal(out[_ROW].to_numpy(), np.sort(entity_df[_ROW].to_numpy())):
        raise RuntimeError(
            f"Feast historical retrieval of {views} returned {len(out)} rows for {len(entity_df)} samples; "
            f"look for duplicate feature rows per (entity, event_timestamp) in the marts"
        )
    return out


def join_features(store: FeatureStore, samples: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join of the sparse and behaviour views onto `samples` (event_timestamp, ids, `_sample_row`)."""
    keys = samples[[_ROW, "event_timestamp", "user_id", "item_id"]]
    joined = _historical(store, keys, ["user_features", "item_features", BEHAVIOUR_VIEW])
    # rec samples have no query: a null join key would only ever miss, so ask Feast for rows that have one
    with_query = samples.loc[samples["query_id"].notna(), [_ROW, "event_timestamp", "query_id"]]
    query_features = list(SPARSE_VIEWS["query_features"][2])
    q = _historical(store, with_query, ["query_features"])[[_ROW, *query_features]]
    joined = joined.drop(columns=["event_timestamp", "user_id", "item_id"]).merge(q, on=_ROW, how="left")
    out = samples.merge(joined, on=_ROW, how="left", validate="one_to_one")
    if len(out) != len(samples) or not np.array_equal(out[_ROW].to_numpy(), samples[_ROW].to_numpy()):
        raise RuntimeError(f"point-in-time join changed the samples: {len(samples)} rows in, {len(out)} out")
    return out


def _to_training_table(joined: pd.DataFrame) -> pa.Table:
    columns = {c: joined[c] for c in SAMPLE_COLUMNS}
    ts = columns["event_timestamp"]
    # the contract's timestamps are UTC; a mart exported without a zone is read as UTC
    columns["event_timestamp"] = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    for feature, column in feature_columns().items():
        values = joined[feature]
        if column.startswith("cat_"):
            columns[column] = values.astype("string")
        else:
            # bools (item_has_text) become 0/1; nulls stay null so the model masks them
            columns[column] = pd.to_numeric(values.astype("object"), errors="raise").astype("Float64")
    frame = pd.DataFrame(columns)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # behaviour: the id sequences (text vectors are looked up by id later, never stored per row) and derived numerics
    behaviour = behaviour_columns(joined.assign(cat_item_category=frame["cat_item_category"]))
    for name in BEHAVIOUR_SEQUENCES:
        table = table.append_column(name, behaviour[name])
    for name in BEHAVIOUR_NUMERIC:
        table = table.append_column(name, pa.array(behaviour[name], pa.float64(), from_pandas=True))
    return table.cast(_training_schema())


def _training_schema() -> pa.Schema:
    # fixed types, so an empty split or an all-null column (query_id of a rec domain) keeps the contract's types
    samples = [
        ("impression_id", pa.string()), ("domain_id", pa.int32()), ("user_id", pa.string()),
        ("item_id", pa.string()), ("query_id", pa.string()),
        ("request_id", pa.string()), ("label", pa.int8()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("is_new_item", pa.bool_()),
    ]
    features = [(c, pa.string() if c.startswith("cat_") else pa.float64()) for c in feature_columns().values()]
    behaviour = ([(c, pa.list_(pa.string())) for c in BEHAVIOUR_SEQUENCES]
                 + [(c, pa.float64()) for c in BEHAVIOUR_NUMERIC])
    return pa.schema(samples + features + behaviour)


def split_label_counts(path: Path) -> tuple[int, int]:
    """(rows, clicks) of a training-folder split file; (0, 0) when it does not exist. Counts in int64."""
    if not Path(path).exists():
        return 0, 0
    labels = pq.read_table(path, columns=["label"]).column("label").to_numpy(zero_copy_only=False)
    return int(len(labels)), int(np.count_nonzero(labels))


def _link_or_copy(src: Path, dst: Path) -> None:
    """`dst` becomes `src`'s content: a hard link where the file system allows it, else a copy; atomic."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    tmp.replace(dst)


def _copy_embeddings(paths: Paths, out_dir: Path) -> tuple[int, str]:
    dim, model = 0, "unknown"
    for _, key, stem in EMBEDDING_VIEWS.values():
        src = paths.embeddings_dir / f"{stem}.parquet"
        if not src.exists():
            raise FileNotFoundError(f"text embeddings {src} not found; run the text_embeddings stage first")
        vectors = training_vectors(src, key)
        _link_or_copy(vectors, out_dir / f"{stem}.parquet")
        first = pq.ParquetFile(vectors)
        if first.metadata.num_rows:
            dim = dim or len(first.read_row_group(0, columns=["embedding"]).column("embedding")[0])
        metadata = pq.read_schema(src).metadata or {}
        model = metadata.get(b"emb_model", model.encode()).decode()
    return dim, model


def _domains(paths: Paths) -> list[dict]:
    src = paths.raw_dir / "domains.parquet"
    if not src.exists():
        raise FileNotFoundError(f"domains table {src} not found; run ingest first")
    frame = pd.read_parquet(src).sort_values("domain_id")
    return [
        {"domain_id": int(r.domain_id), "name": str(r.name), "task": str(r.task), "role": str(r.role)}
        for r in frame.itertuples()
    ]


#: Cache files and split parts hold one day each, or one month each when the samples span more than LONG_SPAN_DAYS
#: (MovieLens: decades of sparse days; a file per day would be thousands of small files for every reader): the same
#: periods as the mart folders' parts (unisr_data/warehouse.py).
DAY, MONTH = DAY_PART, MONTH_PART


@dataclass
class JoinedDays:
    """The impression days whose features this build joined through Feast, and those read from the cache."""

    joined: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0
    parts_written: dict[str, int] = field(default_factory=dict)  # day parts (re)written per split
    period: str = DAY  # what a cache file and a split part hold: DAY, or MONTH for a long span


class FolderRows(dict):
    """Rows per split (the dict), with `.days`: what the build joined and what it reused (a JoinedDays)."""

    def __init__(self, rows: dict[str, int], days: JoinedDays):
        super().__init__(rows)
        self.days = days


def _mart_paths(paths: Paths, marts: Iterable[str]) -> list[str]:
    out = []
    for mart in sorted(set(marts)):
        path = paths.marts_dir / f"{mart}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"sample mart {path} not found; run the dbt marts (and their parquet export) first")
        out.append(str(path))
    return out


#: The sample columns whose values a cached day holds: a day whose fingerprint over them changes is joined again.
_FINGERPRINT = "count(*) || ':' || sum(hash({}))".format(", ".join(SAMPLE_COLUMNS))
_FINGERPRINTS = "fingerprints.json"
#: Entity rows per Feast historical-retrieval call when joining many days (whole days, so one may exceed it). Feast's
#: join (DuckDB through ibis) pairs each entity row with the feature rows of its entity inside the view's TTL before
#: keeping the newest; every view joined here has one (≤ 30 days, features/definitions.py; a test pins it), so a
#: chunk's memory is bounded however long the history. (Before user_behaviour had its one-day TTL, 200k rows at 210
#: days of history held 16 GiB.)
JOIN_CHUNK_ROWS = 200_000


def _period_format(marts: list[str]) -> str:
    """DAY, or MONTH when the samples of `marts` span more than LONG_SPAN_DAYS."""
    with duckdb.connect() as con:
        span = con.execute("SELECT date_diff('day', min(event_timestamp), max(event_timestamp)) FROM read_parquet(?)",
                           [marts]).fetchone()[0]
    return MONTH if span is not None and span > LONG_SPAN_DAYS else DAY


def _day_fingerprints(marts: list[str], period: str = DAY, only: Iterable[str] | None = None) -> dict[str, str]:
    """Per impression day (or month) of `marts`: rows and a hash sum of their sample columns (order-free); with
    `only`, for those days alone."""
    where, params = "", {"marts": marts}
    if only is not None:
        only = sorted(only)
        if not only:
            return {}
        where, params["only"] = f"WHERE strftime(event_timestamp, '{period}') IN (SELECT unnest($only))", only
        where += " AND event_timestamp >= $first"  # a plain comparison: DuckDB skips older parts by their statistics
        params["first"] = part_start(only[0], period)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(
            f"SELECT strftime(event_timestamp, '{period}') AS day, {_FINGERPRINT} "
            f"FROM (SELECT DISTINCT {', '.join(SAMPLE_COLUMNS)} FROM read_parquet($marts) {where}) "
            "GROUP BY day ORDER BY day", params).fetchall()
    return {day: str(fingerprint) for day, fingerprint in rows}


def _days_of(marts: list[str], period: str = DAY) -> list[str]:
    """The impression days (or months) `marts` hold: from the mart folders' part stamps where they were cut by the
    same period (export_marts), else by reading their timestamps."""
    stamped = [_stamped_parts(Path(mart), period) for mart in marts]
    if all(parts is not None for parts in stamped):
        return sorted(set().union(*stamped))
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return [d for (d,) in con.execute(
            f"SELECT DISTINCT strftime(event_timestamp, '{period}') AS day FROM read_parquet(?) ORDER BY day",
            [marts]).fetchall()]


def _stamped_parts(folder: Path, period: str) -> set[str] | None:
    """The non-empty parts of a mart folder per its PART_STAMPS, if they were cut by `period`; else None."""
    stamps = folder / PART_STAMPS
    if not stamps.exists():
        return None
    recorded = json.loads(stamps.read_text())
    if recorded.get("period") != period or "parts" not in recorded:
        return None
    return {part for part, stamp in recorded["parts"].items() if not stamp.startswith("0:")}


def _current_fingerprints(marts: list[str], cached: dict[str, str], since: str | None, period: str) -> dict[str, str]:
    """The fingerprints of every day `marts` hold. With `since` (a run's first day), a day before it that the cache
    holds keeps its cached fingerprint: dbt's day-window builds leave the sample columns of older days as they were
    (only their `split` can move, which the cache does not hold), so only the run's days and days the cache lacks are
    hashed, not the history. Without `since` every day is hashed."""
    if since is None:
        return _day_fingerprints(marts, period)
    days = _days_of(marts, period)
    trusted = {d: cached[d] for d in days if d < since and d in cached}
    return {**trusted, **_day_fingerprints(marts, period, only=[d for d in days if d not in trusted])}


def _cached_fingerprints(cache: Path) -> dict[str, str]:
    path = cache / _FINGERPRINTS
    known = json.loads(path.read_text()) if path.exists() else {}
    return {day: fp for day, fp in known.items() if (cache / f"day={day}.parquet").exists()}


def _write_fingerprints(cache: Path, fingerprints: dict[str, str]) -> None:
    tmp = cache / f".{_FINGERPRINTS}.tmp"
    tmp.write_text(json.dumps(dict(sorted(fingerprints.items())), indent=1))
    tmp.replace(cache / _FINGERPRINTS)


def _days_to_join(current: dict[str, str], cached: dict[str, str], since: str | None) -> list[str]:
    """The days to join: days from `since` on, and days whose samples the cache lacks or holds otherwise (a new day,
    an interrupted build, a re-cut mart, marts another `splits` did not cover)."""
    return [d for d, fp in current.items() if cached.get(d) != fp or (since is not None and d >= since)]


def _join_days(store: FeatureStore, marts: list[str], days: list[str], cache: Path,
               fingerprints: dict[str, str], period: str = DAY) -> None:
    """Point-in-time join of the impressions of `days` (every mart), written as training rows to
    `cache/day=<day>.parquet`; each day's fingerprint is recorded once its file is in place."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        frame = con.execute(
            f"SELECT DISTINCT {', '.join(SAMPLE_COLUMNS)}, strftime(event_timestamp, '{period}') AS _day "
            f"FROM read_parquet(?) WHERE strftime(event_timestamp, '{period}') IN (SELECT unnest(?)) "
            f"ORDER BY impression_id", [marts, days],
        ).arrow().read_all().to_pandas()
    if frame["impression_id"].duplicated().any():
        raise RuntimeError(f"impression ids repeat with different sample values across {marts}: the marts disagree")
    frame[_ROW] = np.arange(len(frame), dtype=np.int64)
    recorded = _cached_fingerprints(cache)
    # Feast holds a call's entity rows and their candidate feature rows in memory: join whole days in chunks of about
    # JOIN_CHUNK_ROWS rows, so a full rebuild costs chunks × a bounded join.
    for chunk in _day_chunks(frame, JOIN_CHUNK_ROWS):
        joined = join_features(store, chunk)
        for day, part in joined.groupby("_day", sort=True):
            tmp = cache / f".day={day}.parquet.tmp"
            pq.write_table(_to_training_table(part.reset_index(drop=True)), tmp)
            tmp.replace(cache / f"day={day}.parquet")  # atomic: a crash never leaves a half-written day
            recorded[day] = fingerprints[day]
        _write_fingerprints(cache, recorded)


def _day_chunks(frame: pd.DataFrame, max_rows: int):
    """`frame` in consecutive groups of whole days (column `_day`) of about `max_rows` rows each."""
    sizes = frame.groupby("_day", sort=True).size()
    chunk, rows = [], 0
    for day, n in sizes.items():
        if chunk and rows + n > max_rows:
            yield frame[frame["_day"].isin(chunk)]
            chunk, rows = [], 0
        chunk.append(day)
        rows += n
    if chunk:
        yield frame[frame["_day"].isin(chunk)]


def update_joined(store: FeatureStore, paths: Paths, marts: Iterable[str], cache: Path,
                  days: Iterable[str] | None = None, refresh: bool = False) -> JoinedDays:
    """Bring the per-day cache of joined training rows of `marts`' impressions up to date; which days were joined.

    An impression's point-in-time features do not depend on its split, and adding a later day does not change
    them: its feature rows are stamped at or before its own day's 00:00 UTC (sparse rows count impressions before
    their day; a user_behaviour row of day D is the history before D, so the snapshot an impression of day D joins
    depends only on events before D), and dbt's day-window builds recompute mart rows only from the run's first day
    on (checked on tests/raw_fixture.py: full dbt builds without and with the last day agree on every row of the four
    feature marts stamped before it). So the cache keeps each day once joined, except: a day whose sample rows
    changed (its fingerprint: rows and a hash of their sample columns), and `days` (a run's partition days,
    `YYYY-MM-DD`) re-join from their earliest day on, every later day included. A re-ingested or backfilled
    day B rewrites the mart rows stamped from B on: sparse rows through B + window (and those carried by the 30-day
    TTL), and the cumulative user_behaviour rows of every later day. On a daily tick B is the newest day, so only it
    is joined.
    `refresh` clears the cache and joins every day (after a full dbt rebuild or a change of feature logic).
    """
    started = time.perf_counter()
    cache = Path(cache)
    stamp = cache / "schema.json"
    wanted = json.dumps({"rows": "training", **{f.name: str(f.type) for f in _training_schema()}}, indent=2)
    if refresh or (stamp.exists() and stamp.read_text() != wanted):  # other features: nothing cached is reusable
        shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)
    sources = _mart_paths(paths, marts)
    days = sorted(days or [])
    period = _period_format(sources)
    # the run's first day as a cache key (its month for a long span); None: no run days, fingerprints decide alone
    since = (days[0][:len("YYYY-MM")] if period == MONTH else days[0]) if days else None
    cached = _cached_fingerprints(cache)
    current = _current_fingerprints(sources, cached, since, period)
    to_join = _days_to_join(current, cached, since)
    if to_join:
        _join_days(store, sources, to_join, cache, current, period=period)
    for path in cache.glob("day=*.parquet"):  # days no mart holds any more
        if path.stem.removeprefix("day=") not in current:
            path.unlink()
    _write_fingerprints(cache, {d: fp for d, fp in _cached_fingerprints(cache).items() if d in current})
    joined = set(to_join)
    return JoinedDays(joined=to_join, reused=[d for d in current if d not in joined],
                      seconds=time.perf_counter() - started, period=period)


def _split_days(paths: Paths, mart: str, split: str, period: str = DAY) -> dict[str, str]:
    """The fingerprint (count, hash sum of impression ids) of `split` in `mart` per impression day."""
    path = paths.marts_dir / f"{mart}.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return {part_key(day, period): fingerprint for day, fingerprint in con.execute(
            f"SELECT {part_expression(period)} AS day, count(*) || ':' || sum(hash(impression_id)) "
            "FROM read_parquet(?) WHERE split = ? GROUP BY day", [str(path), split]).fetchall()}


def _split_ids(paths: Paths, mart: str, split: str, days: list[str], period: str = DAY) -> dict[str, pa.Array]:
    """The impression ids of `split` in `mart` on each of `days`."""
    if not days:
        return {}
    path = paths.marts_dir / f"{mart}.parquet"
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        table = con.execute(
            f"SELECT day, list(impression_id) AS ids FROM (SELECT strftime(event_timestamp, '{period}') AS day, "
            "impression_id FROM read_parquet(?) WHERE split = ? AND event_timestamp >= ?) "
            "WHERE day IN (SELECT unnest(?)) GROUP BY day",
            [str(path), split, part_start(min(days), period), days]).arrow().read_all()
    ids = table.column("ids").combine_chunks() if table.num_rows else None
    return {day: ids[i].values for i, day in enumerate(table.column("day").to_pylist())}


# Inside a split folder, as in a mart folder: `PART_STAMPS` records what each day part was written from (hidden:
# readers and tree_digest skip it); `EMPTY_PART` is what an empty split holds, so it still reads as a table.


def _write_split(cache: Path, folder: Path, days: dict[str, str], ids_of, where: str) -> tuple[int, int]:
    """The split folder `folder` (one parquet part per day, `<day>.parquet`) from the cached days; (rows, parts
    written). `days` maps each day to the fingerprint of its ids, `ids_of(days)` fetches the ids of the days to write.
    A part is rewritten only when its day's ids or its cached day changed, so a daily tick reads and writes its day
    (and the days whose split moved), not the history."""
    schema = _training_schema()
    if folder.is_file():  # a single-file split of an older build
        folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    stamps_path = folder / PART_STAMPS
    old = json.loads(stamps_path.read_text()) if stamps_path.exists() else {}
    stamps, rows, stale = {}, 0, []
    for day, fingerprint in sorted(days.items()):
        source = cache / f"day={day}.parquet"
        if not source.exists():
            raise RuntimeError(f"{where}: the samples of {day} have no joined features in the cache; "
                               "rebuild with refresh=True")
        stat = source.stat()
        stamps[day] = f"{fingerprint}|{stat.st_size}|{stat.st_mtime_ns}"
        rows += int(fingerprint.split(":")[0])
        if old.get(day) != stamps[day] or not (folder / f"{day}.parquet").exists():
            stale.append(day)
    for day, ids in sorted(ids_of(stale).items()):
        table = pq.read_table(cache / f"day={day}.parquet", schema=schema)
        table = table.filter(pc.is_in(table["impression_id"], value_set=ids))
        if table.num_rows != len(ids):
            raise RuntimeError(f"{where}: {len(ids) - table.num_rows} samples of {day} have no joined features in "
                               "the cache; rebuild with refresh=True")
        tmp = folder / f".{day}.parquet.tmp"
        pq.write_table(table, tmp)
        tmp.replace(folder / f"{day}.parquet")  # atomic: a crash never leaves a half-written part
    for part in folder.glob("*.parquet"):
        if part.stem not in stamps:
            part.unlink()
    if not stamps:
        pq.write_table(schema.empty_table(), folder / EMPTY_PART)
    tmp = folder / f"{PART_STAMPS}.tmp"
    tmp.write_text(json.dumps(stamps, indent=1))
    tmp.replace(stamps_path)
    return rows, len(stale)


def build_training_folder(
    store: FeatureStore,
    paths: Paths,
    samples: str,
    out_dir: Path,
    splits: dict[str, str] | None = None,
    emb_model: str | None = None,
    days: Iterable[str] | None = None,
    refresh: bool = False,
) -> FolderRows:
    """Write the contract's training folder for `samples` ("pretrain" | "coldstart") into `out_dir`; rows per split.

    `splits` maps output split -> sample mart (default SPLITS[samples]); `emb_model` defaults to the
    `emb_model` key of the embedding parquet's schema metadata. Features are joined per impression day and cached
    as training rows in `out_dir/.joined/`. Each split is a folder of day parts, `<split>.parquet/<day>.parquet`
    (pyarrow, pandas and `models/` read it as one table, in day order); a part is written only when its day's ids
    or its cached day changed, so memory is bounded by a day and a daily tick writes its day, not the history.
    Only days not joined yet (or whose sample rows changed), and `days` (a
    run's partition days) with every later day, go through Feast; `refresh` joins every day again (see
    `update_joined`). The split labels always come from the current marts, so a day whose impressions moved split
    lands in its new split folder. The returned dict also carries `.days` (a JoinedDays).
    """
    splits = splits or SPLITS[samples]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    joined_days = update_joined(store, paths, splits.values(), out_dir / JOINED_DIR, days=days, refresh=refresh)
    rows, parts_written = {}, {}
    for split, mart in splits.items():
        rows[split], parts_written[split] = _write_split(
            out_dir / JOINED_DIR, out_dir / f"{split}.parquet", _split_days(paths, mart, split, joined_days.period),
            lambda days, mart=mart, split=split: _split_ids(paths, mart, split, days, joined_days.period),
            f"{samples}/{split} ({mart})")
    joined_days.parts_written = parts_written
    dim, model = _copy_embeddings(paths, out_dir)
    meta = {"domains": _domains(paths), "emb_dim": dim, "emb_model": emb_model or model, "samples": samples,
            "rows": rows, "behaviour": {"length": BEHAVIOUR_LENGTH, "query_length": BEHAVIOUR_QUERY_LENGTH}}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return FolderRows(rows, joined_days)
