"""A tiny, hand-controlled raw/ folder in the data-contract layout, for warehouse (dbt) tests.

Calendar: days 0..4 from DAY0 (T_end = day 4). Domains: 0 `search_pre` (search, pretrain), 1 `rec_pre`
(rec, pretrain), 2 `rec_cold` (rec, coldstart). A regular grid gives every (day, domain) 2 requests of
2 impressions (60 rows); on top of it the probe item `PROBE_ITEM` (went live day 1 06:00) has 2 impressions
(1 click) on day 1 and 3 impressions (2 clicks) on day 2, all in domain 1 — so its feature row at day 3 holds
5 impressions / 3 clicks and its row at day 2 holds 2 / 1. `NEW_ITEM` goes live on day 3 and is never shown.
`COLD_USER` has impressions but no row in the users table; `TEXTLESS_ITEM` has no text.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from unisr_data.contract import ImpressionWriter, write_table
from unisr_data.paths import Paths

DAY0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
N_DAYS = 5
PROBE_ITEM = "i:probe"
NEW_ITEM = "i:new"
TEXTLESS_ITEM = "i:4"
COLD_USER = "u:cold"
GRID_ITEMS = [f"i:{k}" for k in range(5)]
USERS = ["u:0", "u:1", "u:2"]
QUERIES = ["q:0", "q:1", "q:2"]
DOMAINS = [(0, "search_pre", "search", "pretrain"), (1, "rec_pre", "rec", "pretrain"),
           (2, "rec_cold", "rec", "coldstart")]
PROBE_EVENTS = [(1, 0), (1, 1), (2, 1), (2, 1), (2, 0)]  # (day, clicked)


def day(d: int, hours: float = 0.0) -> datetime:
    """Day d of the fixture calendar plus `hours`, UTC."""
    return DAY0 + timedelta(days=d, hours=hours)


@dataclass
class RawFixture:
    """What was written: paths and the row count of each raw table."""

    paths: Paths
    rows: dict[str, int]


def _grid_impressions() -> list[dict]:
    rows = []
    for d in range(N_DAYS):
        for dom, _, task, role in DOMAINS:
            for r in range(2):
                for p in range(2):
                    k = d + dom + r + p
                    rows.append(
                        {
                            "impression_id": f"imp:{d}:{dom}:{r}:{p}",
                            "event_time": day(d, 8 + dom + r * 0.5 + p / 3600),
                            "domain_id": dom,
                            "user_id": COLD_USER if (role == "coldstart" and r == 1) else USERS[(d + r) % 3],
                            "query_id": QUERIES[(d + r) % 3] if task == "search" else None,
                            "item_id": GRID_ITEMS[k % 5],
                            "request_id": f"req:{d}:{dom}:{r}",
                            "position": p,
                            "clicked": int(k % 3 == 0),
                        }
                    )
    return rows


def _probe_impressions() -> list[dict]:
    return [
        {
            "impression_id": f"imp:probe:{n}",
            "event_time": day(d, 10 + n / 60),
            "domain_id": 1,
            "user_id": "u:0",
            "query_id": None,
            "item_id": PROBE_ITEM,
            "request_id": f"req:probe:{d}",
            "position": n,
            "clicked": clicked,
        }
        for n, (d, clicked) in enumerate(PROBE_EVENTS)
    ]


def impression_rows() -> list[dict]:
    """All fixture impressions as dicts (the grid, then the probe item's)."""
    return _grid_impressions() + _probe_impressions()


def write_raw_fixture(paths: Paths, *, duplicate_impressions: int = 0) -> RawFixture:
    """Write the fixture into `paths.raw_dir`; `duplicate_impressions` > 0 repeats that many rows verbatim."""
    raw = paths.raw_dir
    domains = list(zip(*DOMAINS))
    write_table(raw, "domains",
                pa.table({"domain_id": domains[0], "name": domains[1], "task": domains[2], "role": domains[3]}))
    write_table(
        raw,
        "users",
        pa.table({"user_id": USERS, "age_bucket": ["18-24", None, "35-44"], "gender": ["f", "m", None],
                  "segment": ["a", "b", "a"]}),
    )
    items = GRID_ITEMS + [PROBE_ITEM, NEW_ITEM]
    write_table(
        raw,
        "items",
        pa.table(
            {
                "item_id": items,
                "text": [None if i == TEXTLESS_ITEM else f"text of {i}" for i in items],
                "category": [f"c{k % 2}" for k in range(len(items))],
                "subcategory": [f"s{k % 3}" for k in range(len(items))],
                "created_at": pa.array([day(-10)] * 5 + [day(1, 6), day(3, 12)], pa.timestamp("us", tz="UTC")),
            }
        ),
    )
    write_table(raw, "queries", pa.table({"query_id": QUERIES, "text": [f"query {q}" for q in QUERIES]}))
    impressions = impression_rows()
    writer = ImpressionWriter(raw)
    # Two parts, so the dbt source's impressions/*.parquet glob is exercised.
    half = len(impressions) // 2
    for chunk in (impressions[:half], impressions[half:] + impressions[:duplicate_impressions]):
        writer.write(pa.Table.from_pylist(chunk))
    return RawFixture(
        paths=paths,
        rows={"domains": 3, "users": len(USERS), "items": len(items), "queries": len(QUERIES),
              "impressions": writer.rows},
    )
