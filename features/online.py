"""Online features for ranking: one batched online-store read per entity type, as numpy/pandas."""
from __future__ import annotations

import sqlite3
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from feast import FeatureStore
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import FloatList
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.types import Bool, Float64, Int64, String

from features.behaviour import behaviour_columns
from features.definitions import BEHAVIOUR_FEATURES, BEHAVIOUR_VIEW, EMBEDDING_VIEWS, SPARSE_VIEWS, feature_columns

# ValueProto field holding each scalar type: reading it directly skips Feast's generic type dispatch
_PROTO_FIELD = {String: "string_val", Int64: "int64_val", Float64: "double_val", Bool: "bool_val"}
_LIST_FIELD = {"string_list_val", "int64_list_val", "double_list_val", "float_list_val", "bool_list_val"}


@dataclass
class RankingFeatures:
    """Features of N candidates for one request; row i of every array belongs to item_ids[i]."""

    frame: pd.DataFrame          # N rows: user_id, item_id, query_id, cat_* (str|None), num_* (float, NaN=missing)
    item_emb: np.ndarray         # [N, D] float32, zeros where the item has no text vector
    query_emb: np.ndarray        # [N, D] float32, the query's vector on every row, zeros without query/vector
    known_items: np.ndarray      # [N] bool, the item has a sparse feature row online
    has_item_text: np.ndarray    # [N] bool, the item has a text vector online
    known_user: bool
    known_query: bool            # False also when no query was given (rec request)
    has_query_text: bool
    behaviour: "BehaviourSnapshot"   # the user's latest behaviour snapshot (empty when the store has none)


@dataclass
class BehaviourSnapshot:
    """The user's latest `user_behaviour` snapshot as read online, with the text vectors of its items and queries."""

    features: dict[str, object]  # BEHAVIOUR_FEATURES name -> list (or int for beh_clicks); {} when unknown
    item_emb: np.ndarray         # [len(item_ids), D] float32, zeros where an item has no vector
    query_emb: np.ndarray        # [len(query_ids), D] float32

    @property
    def item_ids(self) -> list[str]:
        return list(self.features.get("beh_item_ids", []))

    @property
    def query_ids(self) -> list[str]:
        return list(self.features.get("beh_query_ids", []))

    @property
    def known(self) -> bool:
        return bool(self.features)


def _entity_key(join_key: str, value: str) -> EntityKeyProto:
    key = EntityKeyProto(join_keys=[join_key])
    key.entity_values.add(string_val=value)
    return key


def _float_list_header(dim: int) -> bytes:
    # protobuf wire bytes before the packed floats of a ValueProto(float_list_val) of length `dim`
    return ValueProto(float_list_val=FloatList(val=[0.0] * dim)).SerializeToString()[: -4 * dim]


class _SqliteRows:
    """Raw (feature -> ValueProto bytes) rows straight from Feast's SQLite tables: one SELECT per view, no
    timestamp conversion; one connection per thread because sqlite3 connections are not shareable."""

    def __init__(self, path: str, tables: dict[str, str], key_cache_entries: int = 1_000_000,
                 key_cache_bytes: int = 32 << 20):
        if not Path(path).exists():
            raise FileNotFoundError(
                f"SQLite online store {path} does not exist: apply the feature store and materialize it first"
            )
        self._path, self._tables = path, tables
        self._local = threading.local()
        # ids repeat across requests, so their serialized keys are cached; bounded by entries and bytes, and
        # emptied when full (a flood of one-off ids costs a re-serialization of the hot ids, never memory)
        self._keys: dict[tuple[str, str], bytes] = {}
        self._keys_bytes = 0
        self.key_cache_entries, self.key_cache_bytes = key_cache_entries, key_cache_bytes

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True)
        return conn

    def _key(self, join_key: str, value: str) -> bytes:
        key = self._keys.get((join_key, value))
        if key is None:
            key = serialize_entity_key(_entity_key(join_key, value), entity_key_serialization_version=3)
            size = sys.getsizeof(value) + sys.getsizeof(key) + 150  # id str + key bytes + tuple and dict slot
            if len(self._keys) >= self.key_cache_entries or self._keys_bytes + size > self.key_cache_bytes:
                self._keys = {}
                self._keys_bytes = 0
            self._keys[(join_key, value)] = key
            self._keys_bytes += size
        return key

    @property
    def key_cache_size(self) -> tuple[int, int]:
        """(entries, approximate bytes) held by the key cache."""
        return len(self._keys), self._keys_bytes

    def read(self, view: str, join_key: str, ids: Sequence[str]) -> list[dict[str, bytes] | None]:
        keys = [self._key(join_key, i) for i in ids]
        if not keys:
            return []
        rows = self._conn().execute(
            f'SELECT entity_key, feature_name, value FROM "{self._tables[view]}" '
            f"WHERE entity_key IN ({','.join('?' * len(keys))})",
            keys,
        ).fetchall()
        found: dict[bytes, dict[str, bytes]] = {}
        for key, feature, value in rows:
            found.setdefault(key, {})[feature] = value
        return [found.get(k) for k in keys]


class OnlineFeatureReader:
    """Reads ranking features from the online store Feast materialized into (Feast stays the only writer).

    SQLite is read with one SELECT per view and embeddings are decoded straight from the protobuf bytes;
    other stores (Redis) go through the store's own `online_read`, skipping Feast's response building."""

    def __init__(self, store: FeatureStore, emb_dim: int | None = None, key_cache_bytes: int = 32 << 20):
        self._config = store.config
        self._views = {name: store.get_feature_view(name)
                       for name in [*SPARSE_VIEWS, *EMBEDDING_VIEWS, BEHAVIOUR_VIEW]}
        self._columns = feature_columns()
        if isinstance(self._config.online_store, SqliteOnlineStoreConfig):
            versioned = self._config.registry.enable_online_feature_view_versioning
            tables = {name: compute_table_id(self._config.project, fv, versioned) for name, fv in self._views.items()}
            self._sqlite = _SqliteRows(self._config.online_store.path, tables, key_cache_bytes=key_cache_bytes)
        else:
            self._sqlite = None
            self._online = store._get_provider().online_store  # the configured store, e.g. redis
        self.emb_dim = emb_dim if emb_dim is not None else self._infer_emb_dim()
        self._emb_header = _float_list_header(self.emb_dim)

    def _infer_emb_dim(self) -> int:
        for view in EMBEDDING_VIEWS:
            path = self._views[view].batch_source.path
            if not Path(path).exists():
                raise FileNotFoundError(
                    f"cannot infer the text-embedding width: {path} is not on this machine; "
                    f"pass OnlineFeatureReader(store, emb_dim=D)"
                )
            file = pq.ParquetFile(path)
            if file.metadata.num_rows:
                return len(file.read_row_group(0, columns=["embedding"]).column("embedding")[0])
        return 0

    def _read(self, view: str, ids: Sequence[str]) -> list[dict | None]:
        join_key = "user_id" if view == BEHAVIOUR_VIEW else (SPARSE_VIEWS.get(view) or EMBEDDING_VIEWS[view])[1]
        if self._sqlite is not None:
            return self._sqlite.read(view, join_key, ids)
        keys = [_entity_key(join_key, i) for i in ids]
        rows = self._online.online_read(self._config, self._views[view], keys, None)
        # Redis answers an unknown key with empty ValueProtos rather than nothing: treat those as absent
        return [values if values and any(v.WhichOneof("val") for v in values.values()) else None
                for _, values in rows]

    def _sparse(self, view: str, ids: Sequence[str]) -> tuple[dict[str, list], np.ndarray]:
        features = SPARSE_VIEWS[view][2]
        rows = [
            None if r is None else {f: ValueProto.FromString(v) if isinstance(v, bytes) else v for f, v in r.items()}
            for r in self._read(view, ids)
        ]
        known = np.array([r is not None for r in rows], dtype=bool)
        out: dict[str, list] = {}
        for feature, dtype in features.items():
            field = _PROTO_FIELD[dtype]
            values = []
            for r in rows:
                v = r.get(feature) if r is not None else None
                values.append(getattr(v, field) if v is not None and v.HasField(field) else None)
            out[self._columns[feature]] = values
        return out, known

    def _behaviour(self, user_id: str) -> dict[str, object]:
        """The user's snapshot: feature -> list / int, {} when the online store has no row for the user."""
        [row] = self._read(BEHAVIOUR_VIEW, [user_id])
        if row is None:
            return {}
        out: dict[str, object] = {}
        for feature in BEHAVIOUR_FEATURES:
            v = row.get(feature)
            if v is None:
                continue
            proto = ValueProto.FromString(v) if isinstance(v, bytes) else v
            kind = proto.WhichOneof("val")
            if kind in _LIST_FIELD:
                out[feature] = list(getattr(proto, kind).val)
            elif kind is not None:
                out[feature] = getattr(proto, kind)
        return out

    def _embeddings(self, view: str, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        emb = np.zeros((len(ids), self.emb_dim), dtype=np.float32)
        has = np.zeros(len(ids), dtype=bool)
        size = len(self._emb_header) + 4 * self.emb_dim
        feature = EMBEDDING_VIEWS[view][2]
        for i, r in enumerate(self._read(view, ids)):
            v = r.get(feature) if r is not None else None
            if v is None:
                continue
            if isinstance(v, bytes) and len(v) == size and v.startswith(self._emb_header):
                emb[i] = np.frombuffer(v, dtype="<f4", offset=len(self._emb_header))
                has[i] = True
                continue
            proto = ValueProto.FromString(v) if isinstance(v, bytes) else v
            if proto.HasField("float_list_val"):
                vector = np.asarray(proto.float_list_val.val, dtype=np.float32)
                if vector.shape != (self.emb_dim,):
                    raise ValueError(
                        f"{view}: {ids[i]!r} has a {vector.shape[0]}-dim embedding online, expected {self.emb_dim}; "
                        f"re-materialize after re-embedding, or pass emb_dim"
                    )
                emb[i] = vector
                has[i] = True
        return emb, has

    def read(self, user_id: str, item_ids: Sequence[str], query_id: str | None = None,
             domain_id: int | None = None) -> RankingFeatures:
        """Features for one request; unknown users/items/queries give None/NaN/zero rows and False flags.

        `domain_id` (the request's domain) is needed for the behaviour share of clicks in that domain; without it
        that feature is missing."""
        n = len(item_ids)
        user_cols, known_user = self._sparse("user_features", [user_id])
        behaviour = self._behaviour(user_id)
        history_items = [str(i) for i in behaviour.get("beh_item_ids", [])]
        history_queries = [str(q) for q in behaviour.get("beh_query_ids", [])]
        item_cols, known_items = self._sparse("item_features", item_ids)
        # candidates and the history's items in one read of the vectors (and the query with the history's queries)
        all_item_emb, all_has_text = self._embeddings("item_text_embedding", [*item_ids, *history_items])
        item_emb, has_item_text = all_item_emb[:n], all_has_text[:n]
        if query_id is not None:
            query_cols, known_query = self._sparse("query_features", [query_id])
            all_q_emb, all_has_q = self._embeddings("query_text_embedding", [query_id, *history_queries])
            q_emb, has_q, history_q_emb = all_q_emb[:1], all_has_q[:1], all_q_emb[1:]
        else:
            query_cols = {self._columns[f]: [None] for f in SPARSE_VIEWS["query_features"][2]}
            known_query, q_emb, has_q = np.zeros(1, bool), np.zeros((1, self.emb_dim), np.float32), np.zeros(1, bool)
            history_q_emb = self._embeddings("query_text_embedding", history_queries)[0]
        columns: dict[str, object] = {"user_id": [user_id] * n, "item_id": list(item_ids), "query_id": [query_id] * n}
        for cols, broadcast in ((user_cols, True), (item_cols, False), (query_cols, True)):
            for name, values in cols.items():
                values = values * n if broadcast else values
                columns[name] = (np.array(values, dtype=object) if name.startswith("cat_")
                                 else np.array([np.nan if v is None else v for v in values], dtype=np.float64))
        frame = pd.DataFrame(columns, copy=False)
        # the model-facing behaviour columns, computed by the code that builds the training folders
        snapshot = pd.DataFrame({f: [behaviour.get(f)] * n for f in BEHAVIOUR_FEATURES}, index=frame.index)
        if domain_id is not None:
            snapshot["domain_id"] = int(domain_id)
        derived = behaviour_columns(snapshot.assign(cat_item_category=frame.get("cat_item_category")))
        if domain_id is None:
            derived["num_beh_domain_share"] = np.full(n, np.nan)
        for name, values in derived.items():
            if name.startswith("num_"):
                frame[name] = values
            else:
                frame[name] = values.to_pylist()
        return RankingFeatures(
            frame=frame,
            item_emb=item_emb,
            query_emb=np.repeat(q_emb, n, axis=0),
            known_items=known_items,
            has_item_text=has_item_text,
            known_user=bool(known_user[0]),
            known_query=bool(known_query[0]),
            has_query_text=bool(has_q[0]),
            behaviour=BehaviourSnapshot(behaviour, all_item_emb[n:], history_q_emb),
        )
