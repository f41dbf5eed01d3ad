"""MIND adapter: the real MIND-small subset and hand-written edge cases into the landing contract."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from landing_assertions import assert_contract_rules, folder_digest, read_landing, validate_if_available
from unisr_data.contract import ContractError
from unisr_data.mind import MindConfig, convert

MIND_SUBSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "mind-small-subset"
needs_mind = pytest.mark.skipif(
    not (MIND_SUBSET / "behaviors.tsv").is_file(),
    reason=f"real MIND data not found at {MIND_SUBSET} (a fresh clone has no ../shared); CI has it",
)
NEWS = (
    "N1\tsports\tfootball_nfl\tBig game tonight\tTeams meet.\thttp://x\t[]\t[]\n"
    "N2\tnews\tnewsus\tElection news\t\thttp://x\t[]\t[]\n"
    "N3\tlifestyle\tlifestyleroyals\t \t \thttp://x\t[]\t[]\n"
)
BEHAVIORS = (
    "1\tU1\t11/10/2019 8:55:22 AM\tN1 N2\tN1-1 N2-0 N9-0\n"
    "2\tU2\t11/11/2019 9:00:00 PM\t\tN2-1 N9-1\n"
    "3\tU1\t11/12/2019 10:00:00 AM\tN1\tN5-0 N1-1\n"
)


def _write(folder: Path, behaviors: str = BEHAVIORS, news: str = NEWS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "behaviors.tsv").write_text(behaviors)
    (folder / "news.tsv").write_text(news)
    return folder


def _log(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The impression log: the landing impressions less the history-role clicks."""
    domains = t["domains"].set_index("domain_id")
    imp = t["impressions"]
    return imp[imp.domain_id.map(domains.role) != "history"]


def _expected_clicks(behaviors: Path) -> tuple[int, int]:
    """(impressions, clicks) counted straight from the impressions column of behaviors.tsv."""
    tokens = pd.read_csv(behaviors, sep="\t", header=None, quoting=3)[4].str.split().explode()
    return len(tokens), int(tokens.str.endswith("-1").sum())


def test_handwritten_mind_maps_to_contract(tmp_path):
    src = _write(tmp_path / "src")
    counts = convert(src, tmp_path / "landing", MindConfig(coldstart_days=1.0))
    t = read_landing(tmp_path / "landing")
    assert_contract_rules(t, single_domain_pages=False)
    imp, items = _log(t), t["items"].set_index("item_id")
    assert counts["impressions"] == len(imp) == 7 and counts["clicks"] == int(imp.clicked.sum()) == 4
    # request = MIND impression id, position = order within its list.
    page = imp[imp.request_id == "mind:i:1"].sort_values("position")
    assert list(page.item_id) == ["mind:N1", "mind:N2", "mind:N9"] and list(page.clicked) == [1, 0, 0]
    assert (page.event_time == pd.Timestamp("2019-11-10 08:55:22", tz="UTC")).all()
    # N9 and N5 were impressed but have no news row; N3's title and abstract are blank: all kept, text null.
    assert items.loc[["mind:N9", "mind:N5", "mind:N3"], "text"].isna().all()
    assert counts["items_without_text"] == 3 and items.loc["mind:N1", "text"] == "Big game tonight\nTeams meet."
    assert items.loc["mind:N2", "text"] == "Election news"
    assert items.loc["mind:N9", "created_at"] == pd.Timestamp("2019-11-10 08:55:22", tz="UTC")
    # N3 is never impressed: live from the earliest impression time.
    assert items.loc["mind:N3", "created_at"] == pd.Timestamp("2019-11-10 08:55:22", tz="UTC")
    # Only N5 is first seen within the last day: its impression is the cold-start domain.
    domains = t["domains"].set_index("domain_id")
    role = imp.domain_id.map(domains.role)
    assert list(imp.item_id[role == "coldstart"]) == ["mind:N5"]
    name = imp.set_index("item_id").domain_id.map(domains.name)
    assert set(name.loc[["mind:N1"]]) == {"mind_sports"} and set(name.loc[["mind:N9"]]) == {"mind_uncategorised"}
    assert len(t["queries"]) == 0 and set(domains.task) == {"rec"}
    assert t["users"].user_id.tolist() == ["mind:U1", "mind:U2"]
    validate_if_available(tmp_path / "landing", tmp_path)


def test_malformed_behaviors_go_to_rejects(tmp_path):
    bad = BEHAVIORS + "4\tU3\tnot a time\t\tN1-0\n" + "5\tU3\t11/12/2019 10:00:00 AM\t\tN1-1 N2-7 N3\n" + "6\tU4\n"
    counts = convert(_write(tmp_path / "src", behaviors=bad), tmp_path / "landing")
    rejects = pq.read_table(tmp_path / "landing" / "_rejects" / "behaviors.tsv.parquet").to_pandas()
    assert list(rejects._row) == [4, 5, 5, 6]
    assert list(rejects._reason) == ["unparsable_timestamp", "bad_value", "bad_value", "bad_value"]
    assert counts["rejected_source_rows"] == 4
    assert counts["impressions"] == 7 + 1  # only N1-1 of row 5 is usable


def test_missing_files_raise_contract_errors(tmp_path):
    src = _write(tmp_path / "src")
    (src / "news.tsv").unlink()
    with pytest.raises(ContractError, match="news.tsv") as err:
        convert(src, tmp_path / "landing")
    assert err.value.file.endswith("news.tsv")
    (src / "behaviors.tsv").unlink()
    with pytest.raises(ContractError, match="behaviors.tsv"):
        convert(src, tmp_path / "landing")


@pytest.fixture(scope="module")
def mind_subset(tmp_path_factory):
    out = tmp_path_factory.mktemp("mind_subset")
    counts = convert(MIND_SUBSET, out / "landing", MindConfig())
    return out, counts, read_landing(out / "landing")


@needs_mind
def test_mind_subset_maps_to_contract(mind_subset):
    _, counts, t = mind_subset
    # A MIND page lists news of several category groups, so one request spans domains (docs/datasets.md).
    assert_contract_rules(t, single_domain_pages=False)
    n_impressions, n_clicks = _expected_clicks(MIND_SUBSET / "behaviors.tsv")
    imp = _log(t)
    assert counts["impressions"] == len(imp) == n_impressions
    assert counts["clicks"] == int(imp.clicked.sum()) == n_clicks
    assert imp.request_id.nunique() == 5000 and counts["rejected_source_rows"] == 0
    ctr = imp.clicked.mean()
    assert 0.01 < ctr < 0.2, f"MIND CTR {ctr:.3f}"
    # Most impressed news are not in the 2,000-row news.tsv: kept, with null text.
    items = t["items"]
    assert counts["items_without_text"] == int(items.text.isna().sum()) > len(items) / 2
    assert set(imp.item_id) <= set(items.item_id)
    # Cold-start items were first impressed in the last day, and every impression of one is cold-start.
    domains = t["domains"].set_index("domain_id")
    merged = imp.merge(items[["item_id", "created_at"]], on="item_id")
    cut = imp.event_time.max() - pd.Timedelta(days=1)
    cold = merged.domain_id.map(domains.role) == "coldstart"
    assert cold.any() and (merged.created_at[cold] > cut).all() and (merged.created_at[~cold] <= cut).all()
    # created_at: the first impression, or the first history click of an article some user had clicked before
    first_seen = imp.groupby("item_id").event_time.min()
    shown = items.set_index("item_id").loc[first_seen.index]
    in_history = shown.index.isin(t["impressions"][t["impressions"].domain_id.map(domains.role) == "history"].item_id)
    assert (shown.created_at[~in_history] == first_seen[~in_history]).all()
    assert (shown.created_at[in_history] < first_seen[in_history]).all() and in_history.any()


@needs_mind
def test_mind_subset_is_deterministic_and_valid(mind_subset, tmp_path):
    out, counts, _ = mind_subset
    again = convert(MIND_SUBSET, tmp_path / "again", MindConfig())
    assert again == counts and folder_digest(tmp_path / "again") == folder_digest(out / "landing")
    validate_if_available(out / "landing", tmp_path)


def test_history_column_becomes_history_clicks_before_the_log(tmp_path):
    src = _write(tmp_path / "src")
    counts = convert(src, tmp_path / "landing", MindConfig(coldstart_days=1.0))
    t = read_landing(tmp_path / "landing")
    domains = t["domains"].set_index("domain_id")
    history_domains = domains.index[domains.role == "history"].tolist()
    assert len(history_domains) == 1 and domains.loc[history_domains[0], "name"] == "mind_history"
    history = t["impressions"][t["impressions"].domain_id == history_domains[0]].sort_values("event_time")
    # U1's history (from its earliest row) is N1 then N2, oldest first; U2's is empty
    assert counts["history_clicks"] == 2
    assert history.item_id.tolist() == ["mind:N1", "mind:N2"] and set(history.user_id) == {"mind:U1"}
    assert (history.clicked == 1).all() and (history.position == 0).all() and history.request_id.is_unique
    assert history.event_time.max() < _log(t).event_time.min()
