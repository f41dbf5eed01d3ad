"""Checks every real-data adapter test applies to the landing folder it wrote."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from unisr_data.contract import SCHEMAS, SINGLE_FILE_TABLES, table_path


def read_landing(landing: Path) -> dict[str, pd.DataFrame]:
    """All 5 landing tables as DataFrames, after asserting their arrow schemas equal the contract's."""
    tables = {}
    for table in SINGLE_FILE_TABLES:
        arrow = pq.read_table(table_path(landing, table))
        assert arrow.schema.equals(SCHEMAS[table]), f"{table}: {arrow.schema} != contract"
        tables[table] = arrow.to_pandas()
    arrow = ds.dataset(table_path(landing, "impressions"), format="parquet").to_table()
    assert arrow.schema.equals(SCHEMAS["impressions"]), f"impressions: {arrow.schema} != contract"
    tables["impressions"] = arrow.to_pandas()
    return tables


def assert_contract_rules(t: dict[str, pd.DataFrame], *, single_domain_pages: bool = True) -> None:
    """Keys unique and non-null, dense domain ids, ≥2 rec pretrain + ≥1 cold-start, referential integrity."""
    for table, key in (("domains", "domain_id"), ("users", "user_id"), ("items", "item_id"),
                       ("queries", "query_id"), ("impressions", "impression_id")):
        assert t[table][key].notna().all() and t[table][key].is_unique, f"{table}.{key}"
    domains = t["domains"]
    assert list(domains["domain_id"]) == list(range(len(domains)))
    assert ((domains.task == "rec") & (domains.role == "pretrain")).sum() >= 2
    assert (domains.role == "coldstart").sum() >= 1
    imp = t["impressions"]
    assert set(imp.domain_id) <= set(domains.domain_id)
    assert set(imp.item_id) <= set(t["items"].item_id)
    assert t["items"].created_at.notna().all()
    text = t["items"].text.dropna()
    assert (text.str.strip() != "").all()
    search = set(domains.domain_id[domains.task == "search"])
    in_search = imp.domain_id.isin(search)
    assert imp.query_id[in_search].notna().all() and imp.query_id[~in_search].isna().all()
    assert set(imp.query_id.dropna()) <= set(t["queries"].query_id)
    assert (imp.position >= 0).all() and set(imp.clicked.unique()) == {0, 1}
    # Positions on a page are exactly 0..n-1.
    pages = imp.groupby("request_id").position.agg(["min", "max", "size", "nunique"])
    assert (pages["min"] == 0).all() and (pages["max"] == pages["size"] - 1).all()
    assert (pages["nunique"] == pages["size"]).all()
    # A page belongs to one user and one time (and one domain, unless the source's pages mix domains: MIND).
    keys = ["user_id", "event_time"] + (["domain_id"] if single_domain_pages else [])
    per_page = imp.groupby("request_id")[keys].nunique()
    assert (per_page == 1).all().all()


def folder_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes under `folder` (determinism checks)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def validate_if_available(landing: Path, tmp: Path) -> None:
    """Run the validator (when that module exists) and require that it quarantines nothing we wrote."""
    validation = pytest.importorskip("unisr_data.validation", reason="unisr_data.validation not written yet")
    report = validation.validate(landing, tmp / "raw", tmp / "quarantine")
    bad = {name: r.by_reason for name, r in report.tables.items() if r.quarantined}
    assert not bad, f"validator quarantined legitimate adapter rows: {bad}"
    for name, r in report.tables.items():
        assert r.landing == r.clean, name
