"""Validation: every bad-input class ends as a clear error or a quarantined row with its reason; nothing is lost."""
from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unisr_data import validation
from unisr_data.contract import SCHEMAS, TABLES, ContractError, table_path
from unisr_data.synthetic import SyntheticConfig, generate
from unisr_data.validation import quarantine_schema, quarantine_share_exceeded, validate


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("pristine") / "landing"
    generate(SyntheticConfig.tiny(), landing)
    return landing


@pytest.fixture()
def dataset(pristine, tmp_path) -> Path:
    """A fresh copy of the tiny landing/ folder to corrupt; returns the dataset dir."""
    shutil.copytree(pristine, tmp_path / "landing")
    return tmp_path


def run(dataset: Path):
    return validate(dataset / "landing", dataset / "raw", dataset / "quarantine")


def part(dataset: Path, n: int = 0) -> Path:
    return table_path(dataset / "landing", "impressions") / f"part-{n:05d}.parquet"


def edit(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame | None], schema: pa.Schema | None = None) -> None:
    """Rewrite a landing parquet file through pandas (types may go loose, as real landing files do)."""
    frame = pq.read_table(path).to_pandas()
    changed = change(frame)
    frame = frame if changed is None else changed
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


def quarantined(dataset: Path, table: str) -> pd.DataFrame:
    """The quarantined rows of `table` (impressions: every part)."""
    return pq.read_table(table_path(dataset / "quarantine", table)).to_pandas()


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet"))}


def assert_conserved(dataset: Path, report) -> None:
    """landing = clean + quarantined, from the report and from the files themselves."""
    for table in TABLES:
        stats = report.tables[table]
        landing = pq.read_table(table_path(dataset / "landing", table)).num_rows
        clean = pq.read_table(table_path(dataset / "raw", table)).num_rows
        bad = pq.read_table(table_path(dataset / "quarantine", table)).num_rows
        assert (stats.landing, stats.clean, stats.quarantined) == (landing, clean, bad)
        assert landing == clean + bad
        assert sum(stats.by_reason.values()) == bad


def test_clean_landing_passes_untouched_in_contract_layout(dataset):
    report = run(dataset)
    assert_conserved(dataset, report)
    for table, schema in SCHEMAS.items():
        assert report.tables[table].quarantined == 0
        raw = pq.read_table(table_path(dataset / "raw", table))
        assert raw.schema.equals(schema)
        assert raw.equals(pq.read_table(table_path(dataset / "landing", table)))
        assert pq.read_table(table_path(dataset / "quarantine", table)).schema.equals(quarantine_schema(table))
    landing_parts = sorted(p.name for p in table_path(dataset / "landing", "impressions").iterdir())
    assert sorted(p.name for p in table_path(dataset / "raw", "impressions").iterdir()) == landing_parts
    # Quarantine mirrors raw: one (here empty) part per landing part, so a day's re-validation replaces its own.
    assert sorted(p.name for p in table_path(dataset / "quarantine", "impressions").iterdir()) == landing_parts
    assert report.quarantine_share("impressions") == 0.0
    assert report.to_dict()["tables"]["items"]["clean"] == report.tables["items"].landing


def test_missing_file_names_the_file(dataset):
    (dataset / "landing" / "queries.parquet").unlink()
    with pytest.raises(ContractError, match=r"queries\.parquet"):
        run(dataset)


def test_missing_column_names_file_and_column(dataset):
    edit(part(dataset, 2), lambda f: f.drop(columns=["clicked"]))
    with pytest.raises(ContractError, match=r"part-00002\.parquet.*'clicked'") as error:
        run(dataset)
    assert error.value.column == "clicked" and error.value.file.endswith("part-00002.parquet")


def set_value(row: int, column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str) and pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].map(lambda t: t.isoformat())  # timestamps landed as text
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value
        return frame

    return change


def loose(column: str, arrow_type: pa.DataType, path_schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, arrow_type) if f.name == column else f for f in path_schema])


IMPRESSIONS = SCHEMAS["impressions"]

# (table, row, column, bad value, loose landing schema or None, expected reason)
BAD_ROWS = [
    ("impressions", 3, "user_id", None, None, "null_key"),
    ("impressions", 4, "impression_id", None, None, "null_key"),
    ("items", 2, "item_id", None, None, "null_key"),
    ("impressions", 5, "event_time", "not a timestamp", loose("event_time", pa.string(), IMPRESSIONS),
     "unparsable_timestamp"),
    ("impressions", 6, "domain_id", 99, None, "unknown_domain"),
    ("impressions", 7, "item_id", "it-no-such-item", None, "unknown_item"),
    ("impressions", 8, "clicked", 2, loose("clicked", pa.int64(), IMPRESSIONS), "label_out_of_range"),
    ("impressions", 9, "position", -1, None, "negative_position"),
    ("items", 4, "text", "   ", None, "empty_text"),
    ("queries", 1, "text", "", None, "empty_text"),
    ("items", 5, "text", b"\xff\xfe caf\xe9", loose("text", pa.binary(), SCHEMAS["items"]), "invalid_utf8"),
    ("domains", 1, "task", "social", None, "bad_value"),
    ("domains", 2, "role", "holdout", None, "bad_value"),
    ("impressions", 10, "event_time", pd.Timestamp("2099-06-01", tz="UTC"), None, "time_out_of_range"),
    ("impressions", 11, "event_time", pd.Timestamp("1969-12-31", tz="UTC"), None, "time_out_of_range"),
    ("items", 6, "created_at", pd.Timestamp("2100-01-01", tz="UTC"), None, "time_out_of_range"),
]


@pytest.mark.parametrize("table,row,column,value,schema,reason", BAD_ROWS,
                         ids=[f"{t}-{c}-{r}-{n}" for t, n, c, _, _, r in BAD_ROWS])
def test_bad_row_is_quarantined_with_its_reason(dataset, table, row, column, value, schema, reason):
    path = part(dataset) if table == "impressions" else table_path(dataset / "landing", table)
    if schema is not None and column == "text":
        # Binary text: every row as bytes, one of them not UTF-8.
        edit(path, lambda f: f.assign(text=[t.encode() if isinstance(t, str) else None for t in f.text]), schema)
    original = pq.read_table(path).to_pandas()
    edit(path, set_value(row, column, value), schema)
    report = run(dataset)
    assert_conserved(dataset, report)
    bad = quarantined(dataset, table)
    hit = bad[(bad._row == row) & (bad._source_file == path.relative_to(dataset / "landing").as_posix())]
    assert list(hit._reason) == [reason], bad[["_reason", "_row"]]
    assert report.tables[table].by_reason[reason] >= 1
    if reason == "invalid_utf8":
        assert hit.text.iloc[0].startswith("\\xFF")  # bytes shown escaped, never lost
    if table == "impressions":
        # The neighbours of the bad row survive with their contract types and values.
        raw = pq.read_table(table_path(dataset / "raw", "impressions") / path.name).to_pandas()
        assert len(raw) == len(original) - 1
        kept = original.drop(index=row).reset_index(drop=True)
        pd.testing.assert_frame_equal(raw, kept, check_dtype=False)


def test_bad_domain_quarantines_its_impressions_as_unknown_domain(dataset):
    edit(table_path(dataset / "landing", "domains"), set_value(1, "task", "social"))
    report = run(dataset)
    domain_rows = sum(pq.read_table(p, columns=["domain_id"]).column(0).to_pandas().eq(1).sum()
                      for p in table_path(dataset / "landing", "impressions").glob("*.parquet"))
    assert report.tables["impressions"].by_reason == {"unknown_domain": domain_rows}


def test_search_impression_without_query_is_quarantined(dataset):
    frame = pq.read_table(part(dataset)).to_pandas()
    row = int(frame.index[frame.query_id.notna()][0])
    edit(part(dataset), set_value(row, "query_id", None))
    run(dataset)
    bad = quarantined(dataset, "impressions")
    assert list(bad._reason) == ["query_missing_in_search"] and list(bad._row) == [row]


def test_duplicate_impressions_keep_the_first(dataset):
    first = pq.read_table(part(dataset)).to_pandas()
    duplicated = first.impression_id[0]
    edit(part(dataset), set_value(10, "impression_id", duplicated))  # within a part
    edit(part(dataset, 1), set_value(0, "impression_id", duplicated))  # across parts
    report = run(dataset)
    assert_conserved(dataset, report)
    bad = quarantined(dataset, "impressions")
    assert report.tables["impressions"].by_reason == {"duplicate_impression": 2}
    assert sorted(zip(bad._source_file, bad._row)) == [
        ("impressions/part-00000.parquet", 10), ("impressions/part-00001.parquet", 0)]
    raw = pq.read_table(table_path(dataset / "raw", "impressions")).to_pandas()
    assert raw.impression_id.is_unique
    assert raw[raw.impression_id == duplicated].user_id.item() == first.user_id[0]


def test_rerun_is_byte_identical(dataset):
    edit(part(dataset), set_value(1, "position", -3))
    run(dataset)
    before = digests(dataset / "raw") | {f"q/{k}": v for k, v in digests(dataset / "quarantine").items()}
    run(dataset)
    after = digests(dataset / "raw") | {f"q/{k}": v for k, v in digests(dataset / "quarantine").items()}
    assert before == after and len(before) > 8


def test_failure_leaves_previous_raw_intact(dataset, monkeypatch):
    run(dataset)
    before = digests(dataset / "raw")

    def explode(self, table, path, clean_out, quarantine_out):
        raise RuntimeError("disk full")

    monkeypatch.setattr(validation._Validator, "validate_file", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        run(dataset)
    assert digests(dataset / "raw") == before
    assert sorted(p.name for p in dataset.iterdir()) == ["landing", "quarantine", "raw"]  # no temp leftovers


def test_quarantine_share_exceeded_lists_only_tables_over_threshold(dataset):
    edit(table_path(dataset / "landing", "queries"), lambda f: f.assign(text=[""] * 10 + list(f.text[10:])))
    report = run(dataset)
    share = report.quarantine_share("queries")
    assert share == pytest.approx(10 / report.tables["queries"].landing)
    assert quarantine_share_exceeded(report, share / 2) == {"queries": share}
    assert quarantine_share_exceeded(report, share) == {}


def test_time_window_is_configurable(dataset):
    from datetime import datetime, timezone

    from unisr_data.sanity import EventTimeWindow

    first = pq.read_table(part(dataset), columns=["event_time"]).column(0).to_pandas().min()
    window = EventTimeWindow(earliest=(first + pd.Timedelta(seconds=1)).to_pydatetime())
    report = validate(dataset / "landing", dataset / "raw", dataset / "quarantine", time_window=window)
    assert report.tables["impressions"].by_reason.get("time_out_of_range", 0) >= 1
    # A load time before the data makes every event "in the future".
    past = EventTimeWindow(now=datetime(2000, 1, 1, tzinfo=timezone.utc))
    report = validate(dataset / "landing", dataset / "raw", dataset / "quarantine", time_window=past)
    assert report.tables["impressions"].by_reason == {"time_out_of_range": report.tables["impressions"].landing}


# --- Daily (incremental) validation: only the run's days are judged ------------------------------------------


@pytest.fixture(scope="module")
def daily_pristine(tmp_path_factory) -> Path:
    """A landing/ of one part per day (as `landing_data` writes it), with planted bad rows; returns its folder.

    Planted: a duplicate id across two days, a duplicate within a day, malformed rows, and an id repeated after
    its first occurrence was quarantined for another reason (still a duplicate: the rule counts every row).
    """
    from unisr_data.landing import land_days, source_days

    base = tmp_path_factory.mktemp("daily")
    generate(SyntheticConfig.tiny(), base / "source")
    land_days(base / "source", base / "landing", source_days(base / "source"))
    parts = day_parts(base / "landing")
    first_id = pq.read_table(parts[0], columns=["impression_id"]).column(0)[0].as_py()
    edit(parts[2], set_value(0, "impression_id", first_id))  # across days
    within = pq.read_table(parts[2], columns=["impression_id"]).column(0)[4].as_py()
    edit(parts[2], set_value(5, "impression_id", within))  # within a day
    edit(parts[1], set_value(3, "position", -1))  # malformed
    edit(parts[3], set_value(2, "position", -1))  # malformed, and its id comes again two days later
    malformed_id = pq.read_table(parts[3], columns=["impression_id"]).column(0)[2].as_py()
    edit(parts[5], set_value(1, "impression_id", malformed_id))
    return base / "landing"


def day_parts(landing: Path) -> list[Path]:
    """The landing impression parts of days (not the undated part), oldest first."""
    return sorted(table_path(landing, "impressions").glob("part-2*.parquet"))


def day_of(part_file: Path) -> str:
    return part_file.stem.removeprefix("part-")


@pytest.fixture()
def daily(daily_pristine, tmp_path) -> Path:
    """A fresh copy of the daily landing/ folder; returns the dataset dir."""
    shutil.copytree(daily_pristine, tmp_path / "landing")
    return tmp_path


def run_days(dataset: Path, days: list[str] | None):
    return validate(dataset / "landing", dataset / "raw", dataset / "quarantine", days=days)


def outputs(dataset: Path) -> dict[str, pa.Table]:
    """Every raw and quarantine parquet file as a table, by its path under the dataset dir."""
    return {p.relative_to(dataset).as_posix(): pq.read_table(p)
            for folder in ("raw", "quarantine") for p in sorted((dataset / folder).rglob("*.parquet"))}


def file_ids(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.parquet")}


def test_validating_day_by_day_in_order_equals_one_full_validation(daily, tmp_path):
    full = run_days(daily, None)
    assert full.full and full.tables["impressions"].by_reason == {"duplicate_impression": 3, "negative_position": 2}
    assert full.validated_days == [day_of(p) for p in day_parts(daily / "landing")]

    # The same landing/, arriving one day at a time, each day validated by its own run.
    grown = tmp_path / "grown"
    impressions = table_path(grown / "landing", "impressions")
    impressions.mkdir(parents=True)
    for table in ("domains", "users", "items", "queries"):
        shutil.copy(table_path(daily / "landing", table), table_path(grown / "landing", table))
    shutil.copy(table_path(daily / "landing", "impressions") / "part-undated.parquet", impressions)
    for i, part_file in enumerate(day_parts(daily / "landing")):
        shutil.copy(part_file, impressions)
        report = run_days(grown, [day_of(part_file)])
        assert report.full == (i == 0)  # the first run has nothing validated before it: a full one
        assert report.validated_days == [day_of(part_file)]
        assert report.tables["impressions"].landing == (
            parquet_rows(part_file) + parquet_rows(impressions / "part-undated.parquet"))
    expected, got = outputs(daily), outputs(grown)
    assert sorted(got) == sorted(expected)
    for name, table in expected.items():
        assert got[name].equals(table), name


def parquet_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def test_a_day_run_judges_and_replaces_only_that_days_parts(daily):
    run_days(daily, None)
    before = {folder: file_ids(table_path(daily / folder, "impressions")) for folder in ("raw", "quarantine")}
    contents = outputs(daily)
    day = day_of(day_parts(daily / "landing")[5])
    report = run_days(daily, [day])
    assert not report.full and report.validated_days == [day]
    assert report.to_dict()["validated_days"] == [day] and report.to_dict()["full"] is False
    assert report.tables["impressions"].by_reason == {"duplicate_impression": 1}  # judged against earlier days
    assert report.validated_landing_rows == sum(r.landing for r in report.tables.values())
    judged = {f"part-{day}.parquet", "part-undated.parquet"}
    for folder, ids in before.items():
        after = file_ids(table_path(daily / folder, "impressions"))
        assert sorted(after) == sorted(ids)
        assert {n: i for n, i in after.items() if n not in judged} == {n: i for n, i in ids.items() if n not in judged}
        assert all(after[n] != ids[n] for n in judged)  # replaced by new files
    # Re-validating a day is idempotent: the same rows as the full run (and the same bytes).
    assert outputs(daily).keys() == contents.keys()
    assert all(outputs(daily)[n].equals(t) for n, t in contents.items())
    again = digests(daily / "raw") | {f"q/{k}": v for k, v in digests(daily / "quarantine").items()}
    run_days(daily, [day])
    assert again == digests(daily / "raw") | {f"q/{k}": v for k, v in digests(daily / "quarantine").items()}


def test_a_failed_day_run_leaves_raw_and_quarantine_intact(daily, monkeypatch):
    run_days(daily, None)
    before = digests(daily / "raw") | {f"q/{k}": v for k, v in digests(daily / "quarantine").items()}
    original = validation._Validator.validate_file

    def explode_on_impressions(self, table, path, clean_out, quarantine_out):
        if table == "impressions":  # the entity tables were already re-validated into the temp folders
            raise RuntimeError("disk full")
        return original(self, table, path, clean_out, quarantine_out)

    monkeypatch.setattr(validation._Validator, "validate_file", explode_on_impressions)
    with pytest.raises(RuntimeError, match="disk full"):
        run_days(daily, [day_of(day_parts(daily / "landing")[3])])
    assert before == digests(daily / "raw") | {f"q/{k}": v for k, v in digests(daily / "quarantine").items()}
    assert sorted(p.name for p in daily.iterdir()) == ["landing", "quarantine", "raw"]  # no temp leftovers


def test_all_landed_days_is_a_full_validation_that_drops_days_gone_from_landing(daily):
    run_days(daily, None)
    gone = day_parts(daily / "landing")[-1]
    gone.unlink()
    days = [day_of(p) for p in day_parts(daily / "landing")]
    report = run_days(daily, days)
    assert report.full and report.validated_days == days
    for folder in ("raw", "quarantine"):
        assert not (table_path(daily / folder, "impressions") / gone.name).exists()


def test_a_day_that_never_landed_is_a_clear_error(daily):
    run_days(daily, None)
    with pytest.raises(ContractError, match=r"2001-01-01.*land them first"):
        run_days(daily, ["2001-01-01"])
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        run_days(daily, ["2001-01"])


def test_a_day_run_after_the_single_file_quarantine_layout_is_a_full_one(daily):
    run_days(daily, None)
    quarantine = table_path(daily / "quarantine", "impressions")
    merged = pq.read_table(quarantine)
    shutil.rmtree(quarantine)
    pq.write_table(merged, daily / "quarantine" / "impressions.parquet")  # as written before per-day parts
    report = run_days(daily, [day_of(day_parts(daily / "landing")[2])])
    assert report.full
    assert not (daily / "quarantine" / "impressions.parquet").exists() and quarantine.is_dir()
