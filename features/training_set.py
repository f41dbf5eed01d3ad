"""Training folders (the models/ input contract) from point-in-time Feast joins of features onto samples."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore

from features.behaviour import NUMERIC_COLUMNS as BEHAVIOUR_NUMERIC
from features.behaviour import SEQUENCE_COLUMNS as BEHAVIOUR_SEQUENCES
from features.behaviour import behaviour_columns
from features.definitions import BEHAVIOUR_FEATURES, BEHAVIOUR_VIEW, EMBEDDING_VIEWS, SPARSE_VIEWS, feature_columns
from unisr_data.paths import Paths
from unisr_data.warehouse import BEHAVIOUR_LENGTH, BEHAVIOUR_QUERY_LENGTH

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
    out = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
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


def _copy_embeddings(paths: Paths, out_dir: Path) -> tuple[int, str]:
    dim, model = 0, "unknown"
    for _, key, stem in EMBEDDING_VIEWS.values():
        src = paths.embeddings_dir / f"{stem}.parquet"
        if not src.exists():
            raise FileNotFoundError(f"text embeddings {src} not found; run the text_embeddings stage first")
        with duckdb.connect() as con:
            # the latest vector per id wins when the embedder re-embedded a changed text
            table = con.execute(
                f"SELECT {key}, embedding FROM read_parquet(?) "
                f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC) = 1 ORDER BY {key}",
                [str(src)],
            ).arrow().read_all()
        table = table.cast(pa.schema([pa.field(key, pa.string()), pa.field("embedding", pa.list_(pa.float32()))]))
        pq.write_table(table, out_dir / f"{stem}.parquet")
        if len(table):
            dim = dim or len(table.column("embedding")[0])
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


def build_training_folder(
    store: FeatureStore,
    paths: Paths,
    samples: str,
    out_dir: Path,
    splits: dict[str, str] | None = None,
    emb_model: str | None = None,
) -> dict[str, int]:
    """Write the contract's training folder for `samples` ("pretrain" | "coldstart") into `out_dir`; rows per split.

    `splits` maps output split -> sample mart (default SPLITS[samples]); `emb_model` defaults to the
    `emb_model` key of the embedding parquet's schema metadata.
    """
    splits = splits or SPLITS[samples]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for split, mart in splits.items():
        frame = _read_split(paths, mart, split)
        table = _to_training_table(join_features(store, frame))
        if table.num_rows != len(frame):
            raise RuntimeError(f"{samples}/{split}: {len(frame)} samples in {mart} but {table.num_rows} written")
        pq.write_table(table, out_dir / f"{split}.parquet")
        rows[split] = table.num_rows
    dim, model = _copy_embeddings(paths, out_dir)
    meta = {"domains": _domains(paths), "emb_dim": dim, "emb_model": emb_model or model, "samples": samples,
            "rows": rows, "behaviour": {"length": BEHAVIOUR_LENGTH, "query_length": BEHAVIOUR_QUERY_LENGTH}}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return rows
