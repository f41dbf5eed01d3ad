"""Read a training folder (docs/data-contract.md, "Training folder") into columnar numpy arrays."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models.spec import FeatureSpec
from models.vocab import Vocabularies

REQUIRED = ("domain_id", "user_id", "item_id", "label")
#: The behaviour sequence columns (list<string> per row, most recent first; null = empty history).
BEH_ITEM_COLUMN, BEH_QUERY_COLUMN = "beh_item_ids", "beh_query_ids"
#: Numeric columns with this prefix are behaviour aggregates (masked out by a model with use_behaviour=False).
BEH_NUM_PREFIX = "num_beh_"


def read_meta(data_dir: str | Path) -> dict[str, Any]:
    """meta.json: {"domains": [{"domain_id", "name", "task", "role"}, ...], "emb_dim": D, ...}."""
    path = Path(data_dir) / "meta.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: a training folder needs meta.json (docs/data-contract.md)")
    meta = json.loads(path.read_text())
    meta["domains"] = sorted(meta["domains"], key=lambda d: int(d["domain_id"]))
    ids = [int(d["domain_id"]) for d in meta["domains"]]
    if ids != list(range(len(ids))):
        raise ValueError(f"{path}: domain ids {ids} must be dense 0..K-1")
    return meta


def read_split(data_dir: str | Path, split: str) -> pd.DataFrame:
    """DIR/{split}.parquet as a DataFrame, checked for the required columns and 0/1 labels."""
    path = Path(data_dir) / f"{split}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: split {split!r} is not in the training folder {data_dir}")
    frame = pq.read_table(path).to_pandas()
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; the training folder must have {list(REQUIRED)}")
    bad = ~frame["label"].isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"{path}: column 'label' row {row} is {frame['label'].iloc[row]!r}; labels must be 0 or 1")
    return frame


def behaviour_lengths(meta: dict[str, Any]) -> tuple[int, int]:
    """(L, Lq) from meta.json's `"behaviour": {"length": L, "query_length": Lq}`; (0, 0) when absent."""
    beh = meta.get("behaviour") or {}
    return int(beh.get("length", 0) or 0), int(beh.get("query_length", 0) or 0)


def feature_spec(meta: dict[str, Any], vocab: Vocabularies, text_dim: int) -> FeatureSpec:
    """FeatureSpec from meta.json (all domains, behaviour lengths) and the vocabularies (sizes, num_beh_* fields)."""
    length, query_length = behaviour_lengths(meta)
    beh_fields = [j for j, c in enumerate(vocab.num_columns) if c.startswith(BEH_NUM_PREFIX)]
    return FeatureSpec(n_domains=len(meta["domains"]), domain_tasks=[d["task"] for d in meta["domains"]],
                       text_dim=text_dim, behaviour_length=length, behaviour_query_length=query_length,
                       behaviour_num_fields=beh_fields, **vocab.sizes())


@dataclass
class TextTable:
    """Frozen text vectors: ids [N] and matrix [N + 1, D] float32 whose row 0 is zeros ("no text")."""

    index: pd.Index
    matrix: np.ndarray

    @classmethod
    def read(cls, path: Path, key: str, dim: int) -> "TextTable":
        """From an embedding parquet (key string, embedding list<float32>); an absent file means no text."""
        if not path.exists():
            return cls(pd.Index([], dtype=object), np.zeros((1, dim), np.float32))
        table = pq.read_table(path, columns=[key, "embedding"])
        ids = table.column(key).to_pandas().astype(str)
        emb = table.column("embedding").combine_chunks()
        flat = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        if len(ids) and flat.size != len(ids) * dim:
            raise ValueError(f"{path}: column 'embedding' must hold {dim} floats per row (meta.json emb_dim), "
                             f"got {flat.size} values for {len(ids)} rows")
        matrix = np.concatenate([np.zeros((1, dim), np.float32), flat.reshape(len(ids), dim)])
        return cls(pd.Index(ids, dtype=object), matrix)

    def lookup(self, ids) -> np.ndarray:
        """ids [N] -> row indices [N] int64 into matrix, 0 where the id has no text (or is missing)."""
        col = pd.Series(ids, copy=False)
        keys = col.astype(object).where(col.notna(), None)
        return (self.index.get_indexer(keys) + 1).astype(np.int64)


@dataclass
class TrainingFolder:
    """A training folder's meta.json and text tables, read once; splits are encoded on demand."""

    path: Path
    meta: dict[str, Any]
    item_text: TextTable
    query_text: TextTable

    @classmethod
    def open(cls, data_dir: str | Path) -> "TrainingFolder":
        """Read meta.json and the two embedding tables of DIR."""
        path = Path(data_dir)
        meta = read_meta(path)
        dim = int(meta.get("emb_dim", 0))
        return cls(path, meta, TextTable.read(path / "item_text_emb.parquet", "item_id", dim),
                   TextTable.read(path / "query_text_emb.parquet", "query_id", dim))

    @property
    def text_dim(self) -> int:
        return int(self.item_text.matrix.shape[1])

    @property
    def behaviour_lengths(self) -> tuple[int, int]:
        """(L, Lq) of meta.json's behaviour sequences; (0, 0) for a folder without them."""
        return behaviour_lengths(self.meta)

    def has_split(self, split: str) -> bool:
        return (self.path / f"{split}.parquet").exists()

    def read(self, split: str) -> pd.DataFrame:
        return read_split(self.path, split)


def encode_frame(frame: pd.DataFrame, vocab: Vocabularies, item_text: TextTable, query_text: TextTable,
                 n_domains: int | None = None, behaviour_length: int = 0,
                 behaviour_query_length: int = 0) -> dict[str, np.ndarray]:
    """Sample frame -> columns: domain/user/item/query/item_text/query_text [N] int64, cat [N,F] int64,
    num/num_mask [N,F] float32, label [N] float32 (text columns index the TextTable matrices).

    With behaviour_length L > 0 also beh_item [N, L] int64 (item vocabulary index, 0 = OOV), beh_item_text [N, L]
    int64 (row of item_text.matrix, 0 = no text) and beh_mask [N, L] float32 (1 = an event) from the list column
    `beh_item_ids`; with behaviour_query_length Lq > 0 beh_query_text / beh_query_mask [N, Lq] from
    `beh_query_ids`. Lists are most recent first: longer ones keep their first L, shorter ones are padded
    (index 0, mask 0); a null list or a null element is no event."""
    domain = frame["domain_id"].to_numpy().astype(np.int64)
    if n_domains is not None and len(domain) and (domain.min() < 0 or domain.max() >= n_domains):
        row = int(np.flatnonzero((domain < 0) | (domain >= n_domains))[0])
        raise ValueError(f"column 'domain_id' row {row} is {domain[row]}, outside meta.json's domains "
                         f"0..{n_domains - 1}")
    cols = vocab.encode(frame)
    cols["domain"] = domain
    cols["item_text"] = item_text.lookup(frame["item_id"])
    cols["query_text"] = (query_text.lookup(frame["query_id"]) if "query_id" in frame
                          else np.zeros(len(frame), np.int64))
    cols["label"] = (frame["label"].to_numpy().astype(np.float32) if "label" in frame
                     else np.zeros(len(frame), np.float32))
    if behaviour_length > 0:
        (beh_item, beh_item_text), mask = _encode_sequences(
            _list_column(frame, BEH_ITEM_COLUMN), behaviour_length,
            (vocab.item.encode, item_text.lookup))
        cols.update(beh_item=beh_item, beh_item_text=beh_item_text, beh_mask=mask)
    if behaviour_query_length > 0:
        (beh_query_text,), mask = _encode_sequences(
            _list_column(frame, BEH_QUERY_COLUMN), behaviour_query_length, (query_text.lookup,))
        cols.update(beh_query_text=beh_query_text, beh_query_mask=mask)
    return cols


def _list_column(frame: pd.DataFrame, column: str) -> pa.ListArray:
    """A frame's list<string> column as one arrow ListArray (lists of str, numpy arrays or None per row)."""
    if column not in frame:
        raise ValueError(f"column {column!r} is missing: meta.json declares behaviour sequences "
                         f"(\"behaviour\": {{\"length\", \"query_length\"}}), so every split needs it "
                         f"(list<string> per row, most recent first; null = an empty history)")
    arr = pa.array(frame[column], type=pa.list_(pa.string()), from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _encode_sequences(arr: pa.ListArray, length: int, lookups) -> tuple[list[np.ndarray], np.ndarray]:
    """Lists [N] -> (one [N, length] int64 array per lookup (ids -> indices, 0 = unknown), mask [N, length]
    float32). Vectorised: flatten, keep positions < length, look up each distinct id once, scatter."""
    n = len(arr)
    outs = [np.zeros((n, length), np.int64) for _ in lookups]
    mask = np.zeros((n, length), np.float32)
    flat = pc.list_flatten(arr)
    if len(flat) == 0:
        return outs, mask
    rows = pc.list_parent_indices(arr).to_numpy()
    sizes = pc.fill_null(pc.list_value_length(arr), 0).to_numpy().astype(np.int64)
    pos = np.arange(len(flat), dtype=np.int64) - (np.cumsum(sizes) - sizes)[rows]
    keep = pos < length
    encoded = pc.dictionary_encode(flat.filter(pa.array(keep)))
    present = encoded.indices.is_valid().to_numpy(zero_copy_only=False)
    codes = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = encoded.dictionary.to_numpy(zero_copy_only=False)
    r, p = rows[keep][present], pos[keep][present]
    for out, lookup in zip(outs, lookups):
        out[r, p] = np.asarray(lookup(values), dtype=np.int64)[codes[present]] if len(values) else 0
    mask[r, p] = 1.0
    return outs, mask
