"""Query text -> query id for queries the pipeline has seen, so they get their id, features and stored vector."""
from __future__ import annotations

from pathlib import Path

import pandas as pd


class KnownQueries:
    """Exact (whitespace-normalised) text match against raw/queries.parquet; empty if the file is absent."""

    def __init__(self, text_to_id: dict[str, str]):
        self._ids = text_to_id

    @classmethod
    def load(cls, queries_parquet: Path) -> "KnownQueries":
        if not Path(queries_parquet).exists():
            return cls({})
        frame = pd.read_parquet(queries_parquet, columns=["query_id", "text"]).dropna()
        # the first id wins when two query ids share a text: deterministic, and both carry the same meaning
        ids: dict[str, str] = {}
        for query_id, text in zip(frame["query_id"], frame["text"]):
            ids.setdefault(" ".join(str(text).split()), str(query_id))
        return cls(ids)

    def id_of(self, text: str) -> str | None:
        """The query id of a normalised text, or None for a query never seen."""
        return self._ids.get(text)

    def __len__(self) -> int:
        return len(self._ids)
