"""MovieLens adapter: both GroupLens layouts (ml-100k fixture, real ml-latest-small) into the landing contract."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from landing_assertions import assert_contract_rules, folder_digest, read_landing, validate_if_available
from unisr_data.contract import ContractError
from unisr_data.movielens import MovieLensConfig, coldstart_cut_seconds, convert
from unisr_data.negative_sampling import page_positions, sample_live_negatives

FIXTURE = Path(__file__).parent / "fixtures" / "ml-100k"
LATEST_SMALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-latest-small"
needs_latest = pytest.mark.skipif(
    not (LATEST_SMALL / "ratings.csv").is_file(),
    reason=f"real MovieLens data not found at {LATEST_SMALL} (a fresh clone has no ../shared); CI has it",
)


def _ratings_100k() -> pd.DataFrame:
    return pd.read_csv(FIXTURE / "u.data", sep="\t", names=["user", "movie", "rating", "ts"])


def _with_keys(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Impressions joined with the item's created_at and their domain's task/role."""
    imp = t["impressions"].merge(t["items"][["item_id", "created_at"]], on="item_id")
    return imp.merge(t["domains"], on="domain_id")


def _check_ratings_and_negatives(t, ratings: pd.DataFrame, tags: pd.DataFrame, config: MovieLensConfig):
    """Each rating is shown once with label rating>=threshold; every other rec row is a live, unrated negative."""
    imp = _with_keys(t)
    rec = imp[imp.task == "rec"].copy()
    rated = ratings.assign(user_id="ml:u:" + ratings.user.astype(str), item_id="ml:m:" + ratings.movie.astype(str),
                           event_time=pd.to_datetime(ratings.ts, unit="s", utc=True))
    joined = rec.merge(rated[["user_id", "item_id", "event_time", "rating"]], on=["user_id", "item_id", "event_time"],
                       how="left")
    shown_ratings = joined[joined.rating.notna()]
    assert len(shown_ratings) == len(ratings), "every rating must be one impression"
    assert (shown_ratings.clicked == (shown_ratings.rating >= config.positive_rating)).all()
    sampled = joined[joined.rating.isna()]
    assert len(sampled) > 0 and (sampled.clicked == 0).all()
    assert (sampled.created_at < sampled.event_time).all(), "sampled negatives must be live at event time"
    touched = set(zip(rated.user_id, rated.item_id))
    touched |= set(zip("ml:u:" + tags.user.astype(str), "ml:m:" + tags.movie.astype(str)))
    assert not any(pair in touched for pair in zip(sampled.user_id, sampled.item_id)), "negative already rated"
    # Negatives stay in their page's domain: cold-start pages hold only new items and vice versa.
    cut = pd.Timestamp(coldstart_cut_seconds(ratings.ts.to_numpy(), config), unit="s", tz="UTC")
    cold = rec.role == "coldstart"
    assert cold.any() and (rec.created_at[cold] >= cut).all() and (rec.event_time[cold] >= cut).all()
    assert (rec.created_at[~cold] < cut).all()
    new_items = set(t["items"].item_id[t["items"].created_at >= cut])
    assert set(rec.item_id[cold]) <= new_items and new_items.isdisjoint(rec.item_id[~cold])


def test_negatives_are_live_unrated_and_distinct():
    created = np.array([0, 10, 20, 30, 40])
    pool = np.arange(5)
    event_time, event_user = np.array([25, 25, 5, 100, 5]), np.array([0, 1, 0, 1, 1])
    excluded = np.sort(np.array([0 * 5 + 1, 1 * 5 + 0, 1 * 5 + 2]))  # user 0 rated item 1; user 1 items 0, 2
    rng = np.random.default_rng(0)
    idx, item = sample_live_negatives(event_time, event_user, pool, created, excluded, 5, 8, rng)
    assert (created[item] < event_time[idx]).all()
    assert not np.isin(event_user[idx] * 5 + item, excluded).any()
    assert len(set(zip(idx, item))) == len(idx)
    assert set(item[idx == 0]) == {0, 2} and set(item[idx == 1]) == {1}  # every live unrated item found
    assert set(item[idx == 2]) == {0} and set(item[idx == 3]) == {1, 3, 4}
    assert 4 not in idx  # event 4: the only live item (0) was rated by its user
    order, position = page_positions(np.array([3, 1, 3, 3, 1]), rng)
    assert sorted(zip(np.array([3, 1, 3, 3, 1])[order], position)) == [(1, 0), (1, 1), (3, 0), (3, 1), (3, 2)]


def test_ml100k_fixture_maps_to_contract(tmp_path):
    config = MovieLensConfig(seed=3, negatives_per_positive=3)
    counts = convert(FIXTURE, tmp_path / "landing", config)
    t = read_landing(tmp_path / "landing")
    assert_contract_rules(t)
    ratings = _ratings_100k()
    assert counts["positives"] + counts["rated_negatives"] == len(ratings)
    assert counts["impressions"] == len(t["impressions"]) and counts["rejected_source_rows"] == 0
    # ml-100k has no tags: no search domain, an empty queries table.
    assert set(t["domains"].task) == {"rec"} and len(t["queries"]) == 0
    assert counts["new_items"] == 4  # movies 11..14 were only rated in the last days of the fixture
    users = t["users"].set_index("user_id")
    assert users.loc["ml:u:4", "age_bucket"] == "<18" and users.loc["ml:u:2", "gender"] == "F"
    assert users.loc["ml:u:6", "segment"] == "retired"
    items = t["items"].set_index("item_id")
    assert items.loc["ml:m:11", "text"] == "Café au lait (1994) | Comedy"  # latin-1 decoded
    assert items.loc["ml:m:1", "category"] == "Animation"
    _check_ratings_and_negatives(t, ratings, pd.DataFrame(columns=["user", "movie"]), config)
    # Two ratings with one (user, timestamp) in one domain share a page.
    imp = t["impressions"]
    page = imp[imp.item_id.isin(["ml:m:12", "ml:m:13"]) & (imp.user_id == "ml:u:2") & (imp.clicked == 1)]
    assert page.request_id.nunique() == 1 and len(page) == 2
    validate_if_available(tmp_path / "landing", tmp_path)


def test_ml100k_is_deterministic_and_seeded(tmp_path):
    first = convert(FIXTURE, tmp_path / "a", MovieLensConfig(seed=5))
    second = convert(FIXTURE, tmp_path / "b", MovieLensConfig(seed=5))
    other = convert(FIXTURE, tmp_path / "c", MovieLensConfig(seed=6))
    assert first == second and folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    assert folder_digest(tmp_path / "a") != folder_digest(tmp_path / "c")
    assert other["positives"] == first["positives"]  # the seed moves sampling, never the observed ratings


def test_malformed_rows_go_to_rejects_not_dropped(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    with open(src / "u.data", "a") as f:
        f.write("x7\t1\t3\t875000000\n")      # unparsable user id -> line 46
        f.write("2\t5\n")                     # missing fields      -> line 47
        f.write("3\t999\t4\t875000100\n")     # unknown movie       -> line 48
    counts = convert(src, tmp_path / "landing")
    assert counts["rejected_source_rows"] == 3
    assert counts["positives"] + counts["rejected_source_rows"] + counts["rated_negatives"] == 48
    rejects = pq.read_table(tmp_path / "landing" / "_rejects" / "u.data.parquet").to_pandas()
    assert list(rejects._row) == [46, 47, 48]
    assert list(rejects._reason) == ["bad_value", "bad_value", "unknown_item"]
    assert "x7" in rejects.raw.iloc[0]


def test_missing_file_and_column_raise_contract_errors(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    (src / "u.user").unlink()
    with pytest.raises(ContractError, match="u.user") as err:
        convert(src, tmp_path / "landing")
    assert err.value.file.endswith("u.user")
    latest = tmp_path / "latest"
    latest.mkdir()
    (latest / "ratings.csv").write_text("userId,movieId,timestamp\n1,1,964982703\n")
    (latest / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Comedy\n")
    (latest / "tags.csv").write_text("userId,movieId,tag,timestamp\n")
    with pytest.raises(ContractError, match="rating") as err:
        convert(latest, tmp_path / "landing2")
    assert err.value.column == "rating" and err.value.file.endswith("ratings.csv")
    (latest / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    (latest / "movies.csv").unlink()
    with pytest.raises(ContractError, match="movies.csv"):
        convert(latest, tmp_path / "landing3")
    with pytest.raises(ContractError, match="u.data"):
        convert(tmp_path / "nowhere", tmp_path / "landing4")


@pytest.fixture(scope="module")
def latest_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("ml_latest_small")
    counts = convert(LATEST_SMALL, out / "landing", MovieLensConfig())
    return out, counts, read_landing(out / "landing")


@needs_latest
def test_latest_small_maps_to_contract(latest_small):
    out, counts, t = latest_small
    assert_contract_rules(t)
    ratings = pd.read_csv(LATEST_SMALL / "ratings.csv").rename(
        columns={"userId": "user", "movieId": "movie", "timestamp": "ts"})
    tags = pd.read_csv(LATEST_SMALL / "tags.csv").rename(
        columns={"userId": "user", "movieId": "movie", "timestamp": "ts"})
    assert counts["positives"] + counts["rated_negatives"] == len(ratings) == 100_836
    assert counts["rejected_source_rows"] == 0
    assert (t["domains"].task == "rec").sum() >= 3
    clicked = t["impressions"].clicked.mean()
    assert 0.05 < clicked < 0.5, f"label balance {clicked:.3f}"
    _check_ratings_and_negatives(t, ratings, tags, MovieLensConfig())


@needs_latest
def test_latest_small_search_domain_comes_from_tags(latest_small):
    _, counts, t = latest_small
    tags = pd.read_csv(LATEST_SMALL / "tags.csv")
    search_ids = set(t["domains"].domain_id[t["domains"].task == "search"])
    assert len(search_ids) == 1
    imp = _with_keys(t)
    search = imp[imp.domain_id.isin(search_ids)].merge(t["queries"].rename(columns={"text": "qtext"}), on="query_id")
    positives = search[search.clicked == 1]
    assert len(positives) == len(tags) == counts["search_positives"]
    # The clicked item of a search page is the tagged movie, and the query text is the tag.
    tagged = tags.assign(user_id="ml:u:" + tags.userId.astype(str), item_id="ml:m:" + tags.movieId.astype(str),
                         event_time=pd.to_datetime(tags.timestamp, unit="s", utc=True),
                         key=tags.tag.str.strip().str.lower())
    matched = positives.assign(key=positives.qtext.str.lower()).merge(
        tagged[["user_id", "item_id", "event_time", "key"]], on=["user_id", "item_id", "event_time", "key"])
    assert len(matched) >= len(positives)
    assert set(t["queries"].text.str.lower()) == set(tagged.key)
    negatives = search[search.clicked == 0]
    assert len(negatives) > len(positives)
    assert (negatives.created_at < negatives.event_time).all(), "search negatives must be live at tag time"


@needs_latest
def test_latest_small_passes_validation(latest_small, tmp_path):
    out, _, _ = latest_small
    validate_if_available(out / "landing", tmp_path)


@needs_latest
def test_latest_small_subsample_keeps_whole_users(tmp_path):
    config = MovieLensConfig(max_ratings=20_000, coldstart_cut=pd.Timestamp("2016-01-01").to_pydatetime())
    counts = convert(LATEST_SMALL, tmp_path / "landing", config)
    assert 0 < counts["positives"] + counts["rated_negatives"] <= 20_000
    t = read_landing(tmp_path / "landing")
    assert_contract_rules(t)
    cold = t["domains"].domain_id[t["domains"].role == "coldstart"].iloc[0]
    cold_imp = t["impressions"][t["impressions"].domain_id == cold]
    assert (cold_imp.event_time >= pd.Timestamp("2016-01-01", tz="UTC")).all()
    ratings = pd.read_csv(LATEST_SMALL / "ratings.csv")
    kept_users = {int(u.split(":")[-1]) for u in t["users"].user_id}
    per_user = ratings.groupby("userId").size()
    assert per_user[list(kept_users)].sum() == counts["positives"] + counts["rated_negatives"]
