"""Read a training folder (docs/data-contract.md, "Training folder") into columnar numpy arrays."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from models.spec import FeatureSpec
from models.vocab import Vocabularies

REQUIRED = ("domain_id", "user_id", "item_id", "label")


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


def feature_spec(meta: dict[str, Any], vocab: Vocabularies, text_dim: int) -> FeatureSpec:
    """FeatureSpec from meta.json (all domains) and the vocabulary sizes."""
    return FeatureSpec(n_domains=len(meta["domains"]), domain_tasks=[d["task"] for d in meta["domains"]],
                       text_dim=text_dim, **vocab.sizes())


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

    def has_split(self, split: str) -> bool:
        return (self.path / f"{split}.parquet").exists()

    def read(self, split: str) -> pd.DataFrame:
        return read_split(self.path, split)


def encode_frame(frame: pd.DataFrame, vocab: Vocabularies, item_text: TextTable, query_text: TextTable,
                 n_domains: int | None = None) -> dict[str, np.ndarray]:
    """Sample frame -> columns: domain/user/item/query/item_text/query_text [N] int64, cat [N,F] int64,
    num/num_mask [N,F] float32, label [N] float32 (text columns index the TextTable matrices)."""
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
    return cols
