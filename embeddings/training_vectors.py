"""The text vectors as the training folders hold them: the latest vector per id (id, embedding), sorted by id.

Made once per version of an embedding table (its file's size and mtime, kept beside it): by the embedding stage
from the vectors it has just written, else by the first training folder that needs it. Every training folder
hard-links the file (features/training_set.py), so a daily tick neither re-reads the whole catalog's vectors nor
writes them once per folder.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Beside the embedding tables: the training form of each, and the version of the table it was made from.
FOLDER = ".training_vectors"


def _version(src: Path) -> str:
    stat = src.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def training_vectors(src: Path, key: str, table: pa.Table | None = None) -> Path:
    """The training form of the embedding table `src` (id column `key`); `table`: `src`'s content when the caller
    holds it already (read from `src` otherwise). Made only when `src` changed since it was last made."""
    out_dir = src.parent / FOLDER
    out, stamp = out_dir / src.name, out_dir / f"{src.stem}.source"
    version = _version(src)
    if out.exists() and stamp.exists() and stamp.read_text() == version:
        return out
    out_dir.mkdir(exist_ok=True)
    if table is None:
        table = pq.read_table(src, columns=[key, "embedding", "event_timestamp"])
    if pc.count_distinct(table[key]).as_py() != table.num_rows:
        with duckdb.connect() as con:  # the latest vector per id wins when the embedder re-embedded a changed text
            con.register("vectors", table.select([key, "embedding", "event_timestamp"]))
            table = con.execute(
                f"SELECT {key}, embedding FROM vectors "
                f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC) = 1").arrow().read_all()
    table = table.select([key, "embedding"]).sort_by(key)
    table = table.cast(pa.schema([pa.field(key, pa.string()), pa.field("embedding", pa.list_(pa.float32()))]))
    tmp = out_dir / f".{src.name}.tmp"
    pq.write_table(table, tmp)
    tmp.replace(out)  # a new file: folders linked to the old one keep it
    stamp.write_text(version)
    return out
