"""Paths reach SQL escaped: a var dir named "it's" lands, validates and feeds dbt (before: a parser error)."""
from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from raw_fixture import write_raw_fixture
from unisr_data.contract import TABLES, table_path
from unisr_data.landing import land_days, source_days
from unisr_data.paths import Paths
from unisr_data.sql import sql_string
from unisr_data.synthetic import SyntheticConfig, generate
from unisr_data.validation import validate
from unisr_data.warehouse import run_dbt


def test_sql_string_escapes_quotes():
    tricky = "'it''s'"
    with duckdb.connect() as con:
        assert con.execute(f"SELECT {sql_string(tricky)}").fetchone()[0] == tricky


def test_landing_and_validation_in_a_folder_named_with_a_quote(tmp_path):
    paths = Paths(tmp_path / "it's", "synthetic")
    generate(SyntheticConfig.tiny(), paths.source_dir)
    days = source_days(paths.source_dir)
    counts = land_days(paths.source_dir, paths.landing_dir, days)
    assert sum(v for k, v in counts.items() if k.startswith("impressions_")) > 0
    report = validate(paths.landing_dir, paths.raw_dir, paths.quarantine_dir)
    for table in TABLES:
        stats = report.tables[table]
        assert stats.landing == stats.clean + stats.quarantined > 0
    assert pq.read_table(table_path(paths.raw_dir, "domains")).num_rows == report.tables["domains"].clean


def test_dbt_sources_read_a_raw_folder_named_with_a_quote(tmp_path):
    paths = Paths(tmp_path / "it's", "fixture")
    write_raw_fixture(paths)
    result = run_dbt(["run", "--select", "stg_domains", "stg_items"], paths)
    assert result.success, [str(r.message) for r in (result.result or [])] or result.exception
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM main.stg_domains").fetchone()[0] == 3
