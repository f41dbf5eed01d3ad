"""Read the original delimited files of a real dataset as strings, and keep every row that cannot be used.

Adapters never drop a source row silently: a row with the wrong number of fields, bytes that are not UTF-8, an
unparsable number or a missing value is written to `<landing>/_rejects/<source file>.parquet` with a one-token
reason (the same tokens as docs/data-contract.md) and its row number, and the count is returned with the
adapter's counts. `_rejects/summary.json` holds, per source file, the rows read and rejected, for the blocking
reject-share check. A UTF-8 byte-order mark and CRLF line ends are accepted; an empty file is a ContractError.
"""
from __future__ import annotations

import codecs
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from unisr_data.contract import ContractError

REJECTS_DIR = "_rejects"
SUMMARY_FILE = "summary.json"
REJECT_SCHEMA = pa.schema(
    [("_source_file", pa.string()), ("_row", pa.int64()), ("_reason", pa.string()), ("raw", pa.string())]
)
BOM = codecs.BOM_UTF8
#: Stands in for a line that is not valid UTF-8, so the CSV reader (which would raise) sees one short field.
INVALID_UTF8_MARKER = "#unisr-invalid-utf8:"
_BLOCK = 1 << 22


@dataclass
class SourceRejects:
    """Collects unusable source rows (file, row number, reason, raw text) for `<landing>/_rejects/`."""

    rows: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    #: data rows read per source file (header excluded), the denominator of the reject share.
    read: dict[str, int] = field(default_factory=dict)

    def add(self, file: str, row: int, reason: str, raw: str) -> None:
        """Record one unusable row of `file` (row numbers are 1-based and count the header line)."""
        self.rows.setdefault(file, []).append((int(row), reason, raw))

    def count_read(self, file: str, rows: int) -> None:
        """Record that `rows` data rows of `file` were read (rejected ones included)."""
        self.read[file] = self.read.get(file, 0) + int(rows)

    def count(self) -> int:
        """Total rejected source rows."""
        return sum(len(rows) for rows in self.rows.values())

    def summary(self) -> dict[str, dict]:
        """Per source file: rows read, distinct rejected rows and rejects by reason."""
        out = {}
        for file in sorted(set(self.read) | set(self.rows)):
            entries = self.rows.get(file, [])
            by_reason: dict[str, int] = {}
            for _, reason, _ in entries:
                by_reason[reason] = by_reason.get(reason, 0) + 1
            out[file] = {"rows": self.read.get(file, 0), "rejected": len({r[0] for r in entries}),
                         "by_reason": dict(sorted(by_reason.items()))}
        return out

    def write(self, landing_dir: Path) -> int:
        """Write one parquet file per source file and `summary.json` under `<landing>/_rejects/` (old ones
        removed); returns rows."""
        folder = Path(landing_dir) / REJECTS_DIR
        if folder.exists():
            for old in [*folder.glob("*.parquet"), folder / SUMMARY_FILE]:
                old.unlink(missing_ok=True)
        folder.mkdir(parents=True, exist_ok=True)
        for file, rows in sorted(self.rows.items()):
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
        (folder / SUMMARY_FILE).write_text(json.dumps(self.summary(), indent=1, sort_keys=True) + "\n")
        return self.count()


def read_reject_summary(landing_dir: Path) -> dict[str, dict] | None:
    """`_rejects/summary.json` of an adapter's output folder ({file: {rows, rejected, by_reason}}), or None
    when the folder was not written by an adapter (the synthetic generator)."""
    path = Path(landing_dir) / REJECTS_DIR / SUMMARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None


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
    without it, `columns` names the fields in order. Rows with the wrong field count go to `rejects` as
    `bad_value`, lines that are not valid UTF-8 as `invalid_utf8` (with `encoding="utf8"`). An empty file (or
    one holding only a byte-order mark and blanks) raises ContractError naming the file.
    """
    path = Path(path)
    _require_content(path)
    bad_lines: list[int] = []
    invalid_lines: dict[int, str] = {}

    def on_invalid(row) -> str:
        bad_lines.append(row.number)
        text = row.text or ""
        line = _marker_line(text)
        if line is not None and line in invalid_lines:
            rejects.add(path.name, line, "invalid_utf8", invalid_lines[line])
        else:
            rejects.add(path.name, row.number, "bad_value", f"expected {row.expected_columns} fields, got "
                        f"{row.actual_columns}: {text}")
        return "skip"

    if header:
        present = _header_names(path, delimiter, encoding)
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
    utf8 = codecs.lookup(encoding).name == "utf-8"
    source = _Utf8LineFilter(path, invalid_lines) if utf8 and _has_invalid_utf8(path) else path
    try:
        table = pacsv.read_csv(source, read_options=read_options, parse_options=parse_options,
                               convert_options=convert_options)
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise ContractError(f"{path.name} could not be parsed as a delimited file: {error}", file=path) from error
    finally:
        if isinstance(source, _Utf8LineFilter):
            source.close()
    # Row numbers as the reader counts them: data rows start after the header, shifted past skipped rows.
    first_line = 2 if header else 1
    numbers = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
    for line in sorted(bad_lines):
        numbers[numbers >= line] += 1
    rejects.count_read(path.name, table.num_rows + len(bad_lines))
    return table, numbers


def _require_content(path: Path) -> None:
    """ContractError when `path` holds nothing but a byte-order mark and whitespace."""
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            if not block:
                raise ContractError(f"{path.name} is empty: expected a delimited file with rows", file=path)
            if block.removeprefix(BOM).strip():
                return


def _header_names(path: Path, delimiter: str, encoding: str) -> list[str]:
    """Column names of the header line (a leading byte-order mark and a CRLF line end are dropped)."""
    with open(path, "rb") as handle:
        first = handle.readline().removeprefix(BOM)
    try:
        text = first.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise ContractError(f"the header line of {path.name} is not valid {encoding}: {error}", file=path) from None
    return [name.strip().strip('"') for name in text.split(delimiter)]


def _has_invalid_utf8(path: Path) -> bool:
    """Whether any byte sequence of the file is not UTF-8 (one streaming pass, C-speed decoding)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        try:
            while block := handle.read(_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return True
    return False


def _marker_line(text: str) -> int | None:
    if not text.startswith(INVALID_UTF8_MARKER):
        return None
    try:
        return int(text[len(INVALID_UTF8_MARKER):].strip())
    except ValueError:
        return None


class _Utf8LineFilter(io.RawIOBase):
    """A binary reader of `path` in which every line that is not valid UTF-8 is replaced by a one-field marker
    line naming its line number; the original bytes (escaped) are stored in `invalid_lines[line]`.

    The CSV reader then reports the marker as a row with too few fields, and the handler turns it into an
    `invalid_utf8` reject (the reader itself raises on such bytes, and so does its invalid-row callback).
    Valid blocks pass through untouched; only a block holding a bad byte is split into lines.
    """

    def __init__(self, path: Path, invalid_lines: dict[int, str]):
        super().__init__()
        self._file = open(path, "rb")
        self._invalid = invalid_lines
        self._line = 0  # lines emitted so far
        self._tail = b""  # an incomplete last line, completed by the next block
        self._out = memoryview(b"")
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not len(self._out) and not self._eof:
            self._fill()
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        self._file.close()
        super().close()

    def _fill(self) -> None:
        block = self._file.read(_BLOCK)
        if block:
            data = self._tail + block
            cut = data.rfind(b"\n") + 1
            data, self._tail = data[:cut], data[cut:]
        else:
            data, self._tail, self._eof = self._tail, b"", True
        if not data:
            return
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            data = b"".join(self._clean_line(line) for line in data.splitlines(keepends=True) if line)
        else:
            # Lines end at LF, CRLF or a lone CR, as the CSV reader counts them.
            self._line += (data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
                           + (not data.endswith((b"\n", b"\r"))))
        self._out = memoryview(data)

    def _clean_line(self, line: bytes) -> bytes:
        # splitlines also splits at a lone CR, as the CSV reader does, so line numbers stay the reader's.
        self._line += 1
        try:
            line.decode("utf-8")
            return line
        except UnicodeDecodeError:
            self._invalid[self._line] = line.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
            return f"{INVALID_UTF8_MARKER}{self._line}\n".encode()
