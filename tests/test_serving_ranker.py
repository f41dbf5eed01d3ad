"""`Ranker.rank()` end to end: a tiny Feast store, a tiny trained checkpoint promoted in the registry, real reads."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.behaviour import behaviour_columns
from features.definitions import BEHAVIOUR_FEATURES, SPARSE_VIEWS, feature_columns
from models.behaviour_inputs import UserBehaviour
from models.inference import Scorer
from models.model_registry import ModelRegistry
from serving import Ranker, RankingRequestError
from serving_fixture import EMB_DIM, ServedWorld
from unisr_data.paths import Paths


@pytest.fixture(scope="module")
def world(served_world) -> ServedWorld:
    return served_world


@pytest.fixture(scope="module")
def ranker(world) -> Ranker:
    return Ranker(world.paths)


def _scores(ranked) -> dict[str, float]:
    return {r.item_id: r.score for r in ranked}


def _assert_ranked(ranked, candidates):
    assert sorted(r.item_id for r in ranked) == sorted(candidates)
    scores = np.array([r.score for r in ranked])
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    assert (np.diff(scores) <= 0).all(), "not sorted by score, highest first"


def test_known_user_items_and_query_are_ranked_by_score(ranker, world):
    candidates = world.items[:100]
    ranked = ranker.rank("u:3", "search_a", "red running shoes", candidates)
    _assert_ranked(ranked, candidates)
    assert len({round(r.score, 6) for r in ranked}) > 1, "every candidate got the same score: features ignored?"
    assert ranker.query_cache.misses == 0, "a known query must use its stored vector, not the encoder"


def test_scores_match_the_scorer_on_features_read_from_the_marts(ranker, world):
    """The online path (SQLite, column mapping) gives the same scores as the latest mart rows fed straight in."""
    columns = feature_columns()
    latest = {}
    for view, (_, key, features) in SPARSE_VIEWS.items():
        mart = pd.read_parquet(world.paths.marts_dir / f"{view}.parquet").sort_values("event_timestamp")
        latest[key] = mart.groupby(key).last()[list(features)].rename(columns=columns)
    items = world.items[5:25]
    frame = pd.DataFrame({"domain_id": 1, "user_id": "u:4", "item_id": items, "query_id": None})
    frame = frame.join(latest["user_id"], on="user_id").join(latest["item_id"], on="item_id")
    for c in latest["query_id"].columns:
        frame[c] = np.nan
    frame = frame.astype({c: "float64" for c in frame.columns if c.startswith("num_")})
    history, derived = _latest_behaviour(world, "u:4", frame)
    for name, values in derived.items():
        if name.startswith("num_"):
            frame[name] = values
    item_emb = _item_vectors(world, items)
    expected = Scorer.from_checkpoint(world.checkpoint).score(frame, item_emb, np.zeros_like(item_emb), history)
    got = _scores(ranker.rank("u:4", 1, None, items))
    np.testing.assert_allclose([got[i] for i in items], expected, rtol=1e-5)


def _item_vectors(world, items) -> np.ndarray:
    emb = pd.read_parquet(world.paths.embeddings_dir / "item_text_emb.parquet").set_index("item_id")["embedding"]
    return np.stack([np.asarray(emb[i], np.float32) if i in emb.index else np.zeros(EMB_DIM, np.float32)
                     for i in items]).reshape(len(items), EMB_DIM)


def _latest_behaviour(world, user: str, frame: pd.DataFrame):
    """(UserBehaviour, derived behaviour columns) of the user's latest user_behaviour mart row, for `frame`'s rows."""
    mart = pd.read_parquet(world.paths.marts_dir / "user_behaviour.parquet").sort_values("event_timestamp")
    snap = mart.groupby("user_id").last().loc[user]
    snapshot = pd.DataFrame({f: [snap[f]] * len(frame) for f in BEHAVIOUR_FEATURES}, index=frame.index)
    derived = behaviour_columns(snapshot.assign(cat_item_category=frame["cat_item_category"],
                                                domain_id=frame["domain_id"]))
    queries = pd.read_parquet(world.paths.embeddings_dir / "query_text_emb.parquet").set_index("query_id")
    query_emb = np.stack([np.asarray(queries.loc[q, "embedding"], np.float32) for q in snap.beh_query_ids]
                         ).reshape(len(snap.beh_query_ids), EMB_DIM)
    history = UserBehaviour(list(snap.beh_item_ids), _item_vectors(world, list(snap.beh_item_ids)), query_emb)
    return history, derived


def test_ranking_reads_the_users_history_and_scores_with_it(ranker, world):
    """rank() with history (a user with clicks) differs from the same request scored with no history, and a user
    with no snapshot is scored exactly as an empty history."""
    items = world.items[:30]
    scorer = Scorer.from_checkpoint(world.checkpoint)
    assert scorer.uses_behaviour
    read = ranker._reader.read("u:3", items, None, 1)
    assert read.behaviour.known and read.behaviour.item_ids, "fixture user u:3 has clicks before the last day"
    frame = read.frame.assign(domain_id=1)
    with_history = _scores(ranker.rank("u:3", 1, None, items))
    without = scorer.score(frame, read.item_emb, read.query_emb, None)
    assert not np.allclose([with_history[i] for i in items], without, rtol=1e-4)

    nobody = ranker._reader.read("u:nobody", items, None, 1)
    assert not nobody.behaviour.known
    empty = scorer.score(nobody.frame.assign(domain_id=1), nobody.item_emb, nobody.query_emb, UserBehaviour())
    got = _scores(ranker.rank("u:nobody", 1, None, items))
    np.testing.assert_allclose([got[i] for i in items], empty, rtol=1e-6)


def test_unknown_user_and_items_get_default_scores(ranker, world):
    candidates = world.items[:10] + ["i:never-seen-1", "i:never-seen-2"]
    ranked = ranker.rank("u:nobody", "rec_a", None, candidates)
    _assert_ranked(ranked, candidates)
    unknown = _scores(ranked)
    # two unknown items have identical (all-default) inputs, so identical scores
    assert unknown["i:never-seen-1"] == pytest.approx(unknown["i:never-seen-2"])


def test_unseen_query_text_is_embedded_once_and_cached(ranker, world):
    pytest.importorskip("embeddings.encoder", reason="embeddings/encoder.py (TextEncoder) has not landed yet")
    candidates = world.items[:50]
    before = ranker.query_cache.misses
    first = ranker.rank("u:1", 0, "  waterproof   hiking boots ", candidates)
    second = ranker.rank("u:1", "search_a", "waterproof hiking boots", candidates)
    _assert_ranked(first, candidates)
    assert ranker.query_cache.misses == before + 1 and ranker.query_cache.hits >= 1
    assert _scores(first) == _scores(second)
    known = _scores(ranker.rank("u:1", 0, "red running shoes", candidates))
    assert known != _scores(first), "the query text does not reach the model"


def test_scores_do_not_depend_on_candidate_order(ranker, world):
    candidates = world.items[:40]
    forward = _scores(ranker.rank("u:2", 1, None, candidates))
    backward = _scores(ranker.rank("u:2", 1, None, candidates[::-1]))
    assert forward == pytest.approx(backward)


def test_domain_by_id_name_or_digit_string_is_the_same(ranker, world):
    candidates = world.items[:20]
    assert ranker.rank("u:1", 1, None, candidates) == ranker.rank("u:1", "rec_a", None, candidates) \
        == ranker.rank("u:1", "1", None, candidates)


@pytest.mark.parametrize(
    "user, domain, query, items, message",
    [
        ("u:1", 1, None, [], "items is empty"),
        ("u:1", 1, None, [f"i:{k}" for k in range(1001)], "at most 1000"),
        ("u:1", 1, None, ["i:1", "i:2", "i:1"], "duplicate candidate ids ['i:1']"),
        ("u:1", 1, None, ["i:1", 7], "items[1] = 7"),
        ("u:1", 1, None, "i:1", "must be a list"),
        (42, 1, None, ["i:1"], "user_id must be a non-empty string"),
        ("u:1", 9, None, ["i:1"], "unknown domain 9"),
        ("u:1", "no_such", None, ["i:1"], "unknown domain 'no_such'"),
        ("u:1", True, None, ["i:1"], "unknown domain True"),
        ("u:1", "search_a", None, ["i:1"], "search domain"),
        ("u:1", "search_a", "   ", ["i:1"], "search domain"),
        ("u:1", "rec_a", "shoes", ["i:1"], "recommendation domain"),
    ],
)
def test_malformed_requests_raise_a_clear_error(ranker, user, domain, query, items, message):
    with pytest.raises(RankingRequestError) as err:
        ranker.rank(user, domain, query, items)
    assert message in str(err.value)


def test_reload_serves_a_newly_promoted_model(world):
    ranker = Ranker(world.paths)
    candidates = world.items[:30]
    old_version, old = ranker.model_version, _scores(ranker.rank("u:1", 1, None, candidates))
    assert ranker.reload() is False
    registry = ModelRegistry(world.paths.models_dir / "registry")
    new = registry.register(world.second_checkpoint, name="srf")
    registry.promote(new.version, ["test: a better model"])
    try:
        assert ranker.reload() is True
        assert ranker.model_version == new.version != old_version
        version, ranked = ranker.rank_with_version("u:1", 1, None, candidates)
        assert version == new.version and _scores(ranked) != old
    finally:
        registry.promote(old_version, ["test: restore"])


def test_missing_promoted_model_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model is promoted"):
        Ranker(Paths(tmp_path, "empty"))


def test_cli_rank_prints_the_ranking_as_json(world, capsys):
    from serving.cli import main

    root = str(world.paths.root)
    assert main(["rank", "--var-dir", root, "--dataset", "fx", "--user", "u:1", "--domain", "rec_a",
                 "--items", "i:1,i:2,i:unknown"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert {i["item_id"] for i in body["items"]} == {"i:1", "i:2", "i:unknown"}
    assert main(["rank", "--var-dir", root, "--dataset", "fx", "--user", "u:1", "--domain", "9", "--items", "i:1"]) == 2
    assert "unknown domain 9" in capsys.readouterr().err


def test_dict_vocabularies_encode_exactly_like_the_checkpoint(world):
    from serving.dict_vocabularies import DictVocabularies

    vocab = Scorer.from_checkpoint(world.checkpoint).vocab
    frame = pd.DataFrame({
        "domain_id": [0, 1, 1, 0],
        "user_id": ["u:1", "u:nobody", "u:2", "u:1"],
        "item_id": [vocab.item.values[0], "i:nope", world.items[7], world.items[3]],
        "query_id": ["q:1", None, None, "q:unknown"],
        "cat_item_category": ["cat1", None, np.nan, "cat-unknown"],
        "cat_user_gender": pd.Series([1, "m", None, "f"], dtype=object),  # a non-string: the original's str()
        "num_item_ctr_7d": [0.1, np.nan, 0.3, 2.0],
        "num_user_impr_7d": pd.array([5, None, 7, 8], dtype="Int64"),
    })
    expected, got = vocab.encode(frame), DictVocabularies(vocab).encode(frame)
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert got["item"][0] > 0 and got["item"][1] == 0, "known item must hit the vocabulary, unknown must be OOV"


class _HashEncoder:
    """Deterministic stand-in for the text encoder: the cache's bounds do not depend on what its vectors mean."""

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([np.full(EMB_DIM, len(t) % 97, np.float32) for t in texts])


def test_query_cache_is_bounded_by_bytes_as_well_as_entries():
    from serving.query_embedding_cache import QueryEmbeddingCache, entry_bytes

    cache = QueryEmbeddingCache(_HashEncoder(), dim=EMB_DIM, maxsize=10_000, max_bytes=200_000)
    for k in range(300):  # ~3.6 KB each (a 1000-char text + a 384-d vector): 1 MB unbounded
        cache.get(f"{k} " + "x" * 1000)
    assert cache.nbytes <= 200_000 and 0 < len(cache) < 300
    assert cache.nbytes == sum(entry_bytes(t, v) for t, v in cache._cache.items())
    assert cache.get("299 " + "x" * 1000) is not None and cache.hits == 1, "the newest entry must still be cached"


def test_online_key_cache_is_bounded_by_bytes(world):
    from features.online import OnlineFeatureReader
    from features.store import feature_store

    reader = OnlineFeatureReader(feature_store(world.paths), key_cache_bytes=100_000)
    for k in range(20):  # 2000 one-off 250-char ids: ~1.3 MB of keys unbounded
        features = reader.read("u:1", [f"i:flood-{k}-{j}-" + "z" * 230 for j in range(100)])
        assert not features.known_items.any()
    entries, nbytes = reader._sqlite.key_cache_size
    assert 0 < entries < 2000 and nbytes <= 100_000
    assert reader.read("u:1", world.items[:3]).known_items.all(), "known ids still read after the cache was emptied"
