"""Read the original delimited files of a real dataset as strings, and keep every row that cannot be used.

Adapters never drop a source row silently: a row with the wrong number of fields, an unparsable number or a
missing value is written to `<landing>/_rejects/<source file>.parquet` with a one-token reason (the same
tokens as docs/data-contract.md) and its row number, and the count is returned with the adapter's counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from unisr_data.contract import ContractError

REJECTS_DIR = "_rejects"
REJECT_SCHEMA = pa.schema(
    [("_source_file", pa.string()), ("_row", pa.int64()), ("_reason", pa.string()), ("raw", pa.string())]
)


@dataclass
class SourceRejects:
    """Collects unusable source rows (file, row number, reason, raw text) for `<landing>/_rejects/`."""

    rows: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)

    def add(self, file: str, row: int, reason: str, raw: str) -> None:
        """Record one unusable row of `file` (row numbers are 1-based and count the header line)."""
        self.rows.setdefault(file, []).append((int(row), reason, raw))

    def count(self) -> int:
        """Total rejected source rows."""
        return sum(len(rows) for rows in self.rows.values())

    def write(self, landing_dir: Path) -> int:
        """Write one parquet file per source file under `<landing>/_rejects/` (old ones removed); returns rows."""
        folder = Path(landing_dir) / REJECTS_DIR
        if folder.exists():
            for old in folder.glob("*.parquet"):
                old.unlink()
        for file, rows in sorted(self.rows.items()):
            folder.mkdir(parents=True, exist_ok=True)
            rows = sorted(rows)
            table = pa.table(
                {
                    "_source_file": [file] * len(rows),
                    "_row": [r[0] for r in rows],
                    "_reason": [r[1] for r in rows],
                    "raw": [r[2] for r in rows],
                },
                schema=REJECT_SCHEMA,
            )
            pq.write_table(table, folder / f"{file}.parquet")
        return self.count()


def require_file(src_dir: Path, name: str, dataset: str) -> Path:
    """`src_dir/name`, or a ContractError saying which file of `dataset` is missing and where."""
    path = Path(src_dir) / name
    if not path.is_file():
        raise ContractError(
            f"{dataset} source file missing: expected {name} in {src_dir}; download the dataset "
            f"(python -m unisr_data.download) or point source_path at the folder holding it",
            file=path,
        )
    return path


def read_strings(
    path: Path,
    columns: list[str],
    rejects: SourceRejects,
    *,
    header: bool = True,
    delimiter: str = ",",
    quoted: bool = True,
    encoding: str = "utf8",
) -> tuple[pa.Table, np.ndarray]:
    """Read `columns` of a delimited file as strings; returns (table, row numbers of its rows, 1-based).

    With `header`, every name in `columns` must be in the header line (else ContractError naming the column);
    without it, `columns` names the fields in order. Rows with the wrong field count go to `rejects`.
    """
    path = Path(path)
    bad_lines: list[int] = []

    def on_invalid(row) -> str:
        bad_lines.append(row.number)
        rejects.add(path.name, row.number, "bad_value", f"expected {row.expected_columns} fields, got "
                    f"{row.actual_columns}: {row.text}")
        return "skip"

    if header:
        with open(path, "rb") as handle:
            first = handle.readline().decode(encoding).rstrip("\r\n")
        present = [name.strip().strip('"') for name in first.split(delimiter)]
        for name in columns:
            if name not in present:
                raise ContractError(
                    f"column {name!r} missing from the header of {path.name} (found {present}); "
                    "is this the right file or dataset layout?",
                    file=path,
                    column=name,
                )
        read_options = pacsv.ReadOptions(use_threads=False, encoding=encoding, block_size=1 << 24)
        column_types = {name: pa.string() for name in present}
    else:
        read_options = pacsv.ReadOptions(
            use_threads=False, encoding=encoding, column_names=columns, block_size=1 << 24
        )
        column_types = {name: pa.string() for name in columns}
    parse_options = pacsv.ParseOptions(
        delimiter=delimiter, quote_char='"' if quoted else False, invalid_row_handler=on_invalid
    )
    convert_options = pacsv.ConvertOptions(
        column_types=column_types, include_columns=columns, strings_can_be_null=False, quoted_strings_can_be_null=False
    )
    table = pacsv.read_csv(path, read_options=read_options, parse_options=parse_options, convert_options=convert_options)
    # Row numbers as the reader counts them: data rows start after the header, shifted past skipped rows.
    first_line = 2 if header else 1
    numbers = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
    for line in sorted(bad_lines):
        numbers[numbers >= line] += 1
    return table, numbers
