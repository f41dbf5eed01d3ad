"""The story of the feature store: apply → point-in-time historical features → materialize → online reads →
training folder. Tiny data from tests/feature_fixture.py, whose feature values are known per (entity, day)."""
from __future__ import annotations

import json
import math
import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from feature_fixture import COLD_USER, DAY0, behaviour_of, write_feature_fixture
from features.definitions import BEHAVIOUR_FEATURES, RANKING_SERVICE, TRAINING_SERVICE, feature_columns
from features.online import OnlineFeatureReader
from features.store import apply, feature_store, materialize, materialize_incremental
from features.training_set import SPLITS, _read_split, _to_training_table, build_training_folder, join_features
from unisr_data.paths import Paths


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return write_feature_fixture(Paths(tmp_path_factory.mktemp("var"), "fx"), n_days=5)


@pytest.fixture(scope="module")
def store(fx):
    store = feature_store(fx.paths)
    apply(store, fx.paths)
    return store


@pytest.fixture(scope="module")
def materialized(store, fx):
    return materialize(store, end=fx.end)


def test_apply_registers_views_and_services(store, fx):
    views = {v.name for v in store.list_feature_views()}
    assert views == {"user_features", "item_features", "query_features", "item_text_embedding", "query_text_embedding",
                     "user_behaviour"}
    assert {s.name for s in store.list_feature_services()} == {TRAINING_SERVICE, RANKING_SERVICE}
    assert (fx.paths.feast_dir / "registry.db").exists()


def test_apply_names_missing_marts(tmp_path):
    paths = Paths(tmp_path, "empty")
    with pytest.raises(FileNotFoundError, match="item_features.parquet"):
        apply(feature_store(paths), paths)


def test_historical_features_are_point_in_time(store):
    day = lambda d, h=0: DAY0 + timedelta(days=d, hours=h)  # noqa: E731
    entity_df = pd.DataFrame(
        {
            "item_id": ["i:0", "i:0", "i:3", "i:3", "i:1"],
            "user_id": ["u:2", "u:2", COLD_USER, "u:1", "u:1"],
            "event_timestamp": [day(3, 12), day(3), day(2, 12), day(3, 1), day(4 + 31)],
        }
    )
    out = store.get_historical_features(
        entity_df=entity_df, features=["item_features:item_impr_7d", "user_features:user_impr_7d"]
    ).to_df()
    out = entity_df.merge(out, on=["item_id", "user_id", "event_timestamp"])
    got = [None if pd.isna(v) else int(v) for v in out["item_impr_7d"]]
    # day 3 12:00 → day-3 row (not day 4's); exactly day 3 00:00 → the day-3 row; i:3 goes live on day 3 so
    # on day 2 it has nothing; 31 days after the last row the 30-day TTL has expired
    assert got == [300, 300, None, 303, None]
    users = [None if pd.isna(v) else int(v) for v in out["user_impr_7d"]]
    assert users == [3002, 3002, None, 3001, None]


def test_materialize_writes_latest_row_per_entity(store, fx, materialized):
    assert materialized["user_features"] == len(fx.users)
    assert materialized["item_features"] == len(fx.items)
    assert materialized["item_text_embedding"] == len(fx.item_emb)
    online = store.get_online_features(
        features=["item_features:item_impr_7d"], entity_rows=[{"item_id": "i:2"}, {"item_id": "i:404"}]
    ).to_dict()
    last_day = fx.n_days - 1
    assert online["item_impr_7d"] == [100 * last_day + 2, None]


def test_online_reader_known_and_unknown_entities(store, fx, materialized):
    reader = OnlineFeatureReader(store)
    assert reader.emb_dim == fx.emb_dim
    items = ["i:1", "i:404", "i:0"]
    got = reader.read("u:1", items, query_id="q:2")
    last = fx.n_days - 1
    assert got.known_user and got.known_query and got.has_query_text
    assert got.known_items.tolist() == [True, False, True]
    assert got.has_item_text.tolist() == [True, False, False]  # i:0 is a text-less item
    assert got.frame["num_item_impr_7d"].iloc[0] == 100 * last + 1
    assert math.isnan(got.frame["num_item_impr_7d"].iloc[1])
    assert got.frame["cat_item_category"].tolist() == ["cat1", None, "cat0"]
    assert got.frame["num_user_impr_7d"].tolist() == [1000 * last + 1] * 3
    assert got.frame["num_query_impr_7d"].tolist() == [10 * last + 2] * 3
    assert got.frame["num_item_has_text"].tolist()[::2] == [1.0, 0.0]
    np.testing.assert_array_equal(got.item_emb[0], fx.item_emb["i:1"])
    assert not got.item_emb[1:].any()
    np.testing.assert_array_equal(got.query_emb, np.tile(fx.query_emb["q:2"], (3, 1)))
    assert set(feature_columns().values()) <= set(got.frame.columns)

    cold = reader.read("u:nobody", ["i:404"], query_id=None)
    assert not cold.known_user and not cold.known_query and not cold.known_items.any()
    assert cold.frame["cat_user_gender"].tolist() == [None]
    assert cold.query_emb.shape == (1, fx.emb_dim) and not cold.query_emb.any()


def test_online_reader_agrees_with_feast_sdk(store, fx, materialized):
    reader = OnlineFeatureReader(store)
    items = fx.items + ["i:404"]
    sdk = store.get_online_features(
        features=["item_features:item_ctr_7d", "item_features:item_subcategory", "item_text_embedding:item_text_emb"],
        entity_rows=[{"item_id": i} for i in items],
    ).to_dict()
    got = reader.read("u:0", items)
    np.testing.assert_array_equal(got.frame["num_item_ctr_7d"].to_numpy(),
                                  np.array([np.nan if v is None else v for v in sdk["item_ctr_7d"]]))
    assert got.frame["cat_item_subcategory"].tolist() == sdk["item_subcategory"]
    for row, vector in enumerate(sdk["item_text_emb"]):
        expected = np.zeros(fx.emb_dim, np.float32) if vector is None else np.asarray(vector, np.float32)
        np.testing.assert_array_equal(got.item_emb[row], expected)


def test_training_folder_has_contract_columns_and_all_rows(store, fx, tmp_path):
    rows = build_training_folder(store, fx.paths, "coldstart", tmp_path / "coldstart")
    assert rows == {s: fx.sample_rows[f"coldstart_{s}"] for s in ("train", "valid", "test")}
    rows = build_training_folder(store, fx.paths, "pretrain", tmp_path / "pretrain")
    assert sum(rows.values()) == fx.sample_rows["pretrain"] and set(rows) == {"train", "valid"}

    folder = tmp_path / "pretrain"
    schema = pq.read_table(folder / "train.parquet").schema  # a folder of day parts
    for column in ("domain_id", "user_id", "item_id", "query_id", "request_id", "label", "event_timestamp",
                   "is_new_item"):
        assert column in schema.names
    cats = [n for n in schema.names if n.startswith("cat_")]
    nums = [n for n in schema.names if n.startswith("num_")]
    assert len(cats) == 5 and len(nums) == 11 + 3  # + num_beh_clicks, num_beh_category_share, num_beh_domain_share
    assert all(str(schema.field(n).type) == "string" for n in cats)
    assert all(str(schema.field(n).type) == "double" for n in nums)

    train = pd.read_parquet(folder / "train.parquet")
    # point in time, row by row: an item's impressions on day d come from its day-d row (if live by then)
    day = (train["event_timestamp"] - pd.Timestamp(DAY0)).dt.days
    k = train["item_id"].str[2:].astype(int)
    live = day >= k % fx.n_days
    assert (train.loc[live, "num_item_impr_7d"] == 100 * day[live] + k[live]).all()
    assert train.loc[~live, "num_item_impr_7d"].isna().all()
    assert train.loc[train["user_id"] == COLD_USER, "cat_user_gender"].isna().all()
    assert train.loc[train["query_id"].isna(), "num_query_ctr_7d"].isna().all()
    search = train["query_id"].notna()
    q = train.loc[search, "query_id"].str[2:].astype(int)
    assert (train.loc[search, "num_query_impr_7d"] == 10 * day[search] + q).all()

    emb = pd.read_parquet(folder / "item_text_emb.parquet")
    assert list(emb.columns) == ["item_id", "embedding"] and len(emb) == len(fx.item_emb)
    np.testing.assert_array_equal(np.stack(emb.set_index("item_id").loc["i:1", "embedding"]), fx.item_emb["i:1"])
    assert list(pd.read_parquet(folder / "query_text_emb.parquet").columns) == ["query_id", "embedding"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["emb_dim"] == fx.emb_dim
    assert [d["domain_id"] for d in meta["domains"]] == [0, 1, 2]
    assert {"name", "task", "role"} <= set(meta["domains"][0])


def test_training_folders_share_one_vector_table_per_embeddings_version(tmp_path):
    paths = write_feature_fixture(Paths(tmp_path / "var", "fx"), n_days=3).paths
    store = feature_store(paths)
    apply(store, paths)
    a, b = (tmp_path / "a", tmp_path / "b")
    build_training_folder(store, paths, "coldstart", a)
    build_training_folder(store, paths, "pretrain", b)
    assert (a / "item_text_emb.parquet").stat().st_ino == (b / "item_text_emb.parquet").stat().st_ino
    old = pd.read_parquet(a / "item_text_emb.parquet")

    # the embedder re-embeds a text: the next build de-duplicates again, the older folder keeps its own vectors
    src = paths.embeddings_dir / "item_text_emb.parquet"
    table = pq.read_table(src)
    changed = table.slice(0, 1)
    vector = pa.array([[9.0] * fx_dim(table)], pa.list_(pa.float32()))
    changed = changed.set_column(changed.schema.get_field_index("embedding"), "embedding", vector)
    changed = changed.set_column(changed.schema.get_field_index("event_timestamp"), "event_timestamp",
                                 pc.add(changed["event_timestamp"], pa.scalar(timedelta(days=1000))))
    pq.write_table(pa.concat_tables([table, changed.cast(table.schema)]), src)
    build_training_folder(store, paths, "pretrain", b)
    new = pd.read_parquet(b / "item_text_emb.parquet").set_index("item_id")
    assert len(new) == len(old) and list(new.loc[table["item_id"][0].as_py(), "embedding"]) == [9.0] * fx_dim(table)
    pd.testing.assert_frame_equal(pd.read_parquet(a / "item_text_emb.parquet"), old)


def fx_dim(table: pa.Table) -> int:
    return len(table["embedding"][0])


def test_online_reader_handles_an_empty_candidate_list(store, materialized):
    got = OnlineFeatureReader(store).read("u:1", [], query_id="q:0")
    assert len(got.frame) == 0 and got.item_emb.shape[0] == 0 and got.known_user


def test_training_folder_keeps_types_for_rec_only_and_empty_splits(store, fx, tmp_path):
    # the cold-start domain is rec-only (query_id all null); "test" here selects no rows of the train mart
    rows = build_training_folder(store, fx.paths, "coldstart", tmp_path,
                                 splits={"train": "samples_coldstart_train", "test": "samples_coldstart_train"})
    assert rows == {"train": fx.sample_rows["coldstart_train"], "test": 0}
    for split in ("train", "test"):
        schema = pq.read_table(tmp_path / f"{split}.parquet").schema
        assert str(schema.field("query_id").type) == "string"
        assert str(schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert pd.read_parquet(tmp_path / "train.parquet")["num_query_ctr_7d"].isna().all()


def test_split_label_counts_do_not_wrap_around_int8(tmp_path):
    """A split's click count is exact beyond int8's 127 (a summed int8 array used to wrap: 3,665 read as 81)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.training_set import split_label_counts

    labels = pa.array([1] * 3665 + [0] * 10000, pa.int8())
    pq.write_table(pa.table({"label": labels}), tmp_path / "train.parquet")
    assert split_label_counts(tmp_path / "train.parquet") == (13665, 3665)
    assert split_label_counts(tmp_path / "missing.parquet") == (0, 0)


def _behaviour_refs() -> list[str]:
    return [f"user_behaviour:{f}" for f in BEHAVIOUR_FEATURES]


def _plain(value):
    return [v.item() if hasattr(v, "item") else v for v in value] if hasattr(value, "__len__") else int(value)


def test_historical_behaviour_is_point_in_time(store, fx):
    day = lambda d, h=0: DAY0 + timedelta(days=d, hours=h)  # noqa: E731
    entity_df = pd.DataFrame({"user_id": ["u:1", "u:1", "u:2", COLD_USER],
                              "event_timestamp": [day(3, 12), day(3), day(2, 23), day(3)]})
    out = store.get_historical_features(entity_df=entity_df, features=_behaviour_refs()).to_df()
    out = entity_df.merge(out, on=["user_id", "event_timestamp"])
    expected = [behaviour_of(1, 3, fx.items, fx.queries), behaviour_of(1, 3, fx.items, fx.queries),
                behaviour_of(2, 2, fx.items, fx.queries)]
    for row, want in zip(out.itertuples(), expected):
        for feature, value in want.items():
            assert _plain(getattr(row, feature)) == value, feature
    # no snapshot ever for the cold user
    assert out.iloc[3]["beh_item_ids"] is None or len(out.iloc[3]["beh_item_ids"]) == 0
    # the one-day TTL: the last row holds until a day after it, then the offline join finds none (the mart writes a
    # row on every day the user has an impression, so no sample ever falls outside it)
    last = fx.n_days - 1
    late = store.get_historical_features(
        entity_df=pd.DataFrame({"user_id": ["u:3", "u:3"], "event_timestamp": [day(last, 23), day(last + 1, 1)]}),
        features=_behaviour_refs()).to_df().sort_values("event_timestamp")
    assert _plain(late["beh_item_ids"].iloc[0]) == behaviour_of(3, last, fx.items, fx.queries)["beh_item_ids"]
    assert late["beh_item_ids"].iloc[1] is None or len(late["beh_item_ids"].iloc[1]) == 0


def test_online_behaviour_equals_offline_at_the_same_time(store, fx, materialized):
    reader = OnlineFeatureReader(store)
    # on the day of every user's latest snapshot (the offline join's TTL is a day; online reads apply none)
    latest = DAY0 + timedelta(days=fx.n_days - 1, hours=12)
    entity_df = pd.DataFrame({"user_id": fx.users, "event_timestamp": [latest] * len(fx.users)})
    offline = store.get_historical_features(entity_df=entity_df, features=_behaviour_refs()).to_df()
    assert offline["beh_clicks"].notna().all()
    for row in offline.itertuples():
        online = reader.read(row.user_id, ["i:1", "i:2"], query_id=None, domain_id=1)
        assert online.behaviour.known
        for feature in BEHAVIOUR_FEATURES:
            assert _plain(online.behaviour.features[feature]) == _plain(getattr(row, feature)), (row.user_id, feature)
        # the history's text vectors come with the same read: zeros for text-less items
        for j, item in enumerate(online.behaviour.item_ids):
            np.testing.assert_array_equal(online.behaviour.item_emb[j],
                                          fx.item_emb.get(item, np.zeros(fx.emb_dim, np.float32)))
        assert online.frame["beh_item_ids"].tolist() == [online.behaviour.item_ids] * 2
        assert online.frame["num_beh_clicks"].tolist() == [float(row.beh_clicks)] * 2


def test_online_behaviour_of_an_unknown_user_is_empty(store, materialized):
    got = OnlineFeatureReader(store).read("u:nobody", ["i:1"], query_id="q:0", domain_id=0)
    assert not got.behaviour.known and got.behaviour.item_ids == [] and got.behaviour.item_emb.shape[0] == 0
    assert got.frame["num_beh_clicks"].tolist() == [0.0] and math.isnan(got.frame["num_beh_category_share"].iloc[0])


def test_training_folder_carries_behaviour(store, fx, tmp_path):
    build_training_folder(store, fx.paths, "coldstart", tmp_path / "coldstart")
    frame = pq.read_table(tmp_path / "coldstart" / "train.parquet").to_pandas()
    meta = json.loads((tmp_path / "coldstart" / "meta.json").read_text())
    assert meta["behaviour"] == {"length": 20, "query_length": 10}
    for row in frame.itertuples():
        k = fx.users.index(row.user_id) if row.user_id in fx.users else None
        d = (row.event_timestamp - pd.Timestamp(DAY0)).days
        if k is None:
            assert list(row.beh_item_ids) == [] and row.num_beh_clicks == 0
            continue
        want = behaviour_of(k, d, fx.items, fx.queries)
        assert list(row.beh_item_ids) == want["beh_item_ids"] and row.num_beh_clicks == want["beh_clicks"]
        n = want["beh_clicks"]
        share = {"cat0": (n - n // 2) / n, "cat1": (n // 2) / n}.get(row.cat_item_category, 0.0) if n else None
        if share is None:
            assert math.isnan(row.num_beh_category_share)
        else:
            assert row.num_beh_category_share == pytest.approx(share)


def _online_rows(store, fx) -> dict:
    ids = {"user_id": fx.users + ["u:404"], "item_id": fx.items + ["i:404"], "query_id": fx.queries + ["q:404"]}
    out = {}
    for view in store.list_feature_views():
        key = view.entity_columns[0].name
        refs = [f"{view.name}:{f.name}" for f in view.features]
        got = store.get_online_features(features=refs, entity_rows=[{key: i} for i in ids[key]]).to_dict()
        out[view.name] = {f: [_plain(v) if v is not None else None for v in values] for f, values in got.items()}
    return out


def test_incremental_materialization_loads_only_the_new_interval_and_equals_a_full_one(tmp_path):
    fx = write_feature_fixture(Paths(tmp_path / "incremental", "fx"), n_days=5)
    ref = write_feature_fixture(Paths(tmp_path / "full", "fx"), n_days=5)  # the same data (same seed)
    inc, full = feature_store(fx.paths), feature_store(ref.paths)
    apply(inc, fx.paths)
    apply(full, ref.paths)
    yesterday = DAY0 + timedelta(days=fx.n_days - 1)  # after the rows of days 0 .. n-2

    first = materialize_incremental(inc, end=yesterday)
    # never materialized: all history, also for the no-TTL views Feast alone would start a year before now
    assert {v["mode"] for v in first.values()} == {"full"}
    assert {v["start"] for v in first.values()} == {"1970-01-01T00:00:00+00:00"}
    assert first["user_behaviour"]["entities"] == len(fx.users)
    apply(inc, fx.paths)  # the daily re-apply keeps the materialization intervals
    assert {v.name: v.most_recent_end_time for v in inc.list_feature_views()} == {n: yesterday for n in first}

    second = materialize_incremental(inc, end=fx.end)
    for view in ("user_features", "item_features", "query_features", "user_behaviour"):
        assert second[view]["mode"] == "incremental"
        assert (second[view]["start"], second[view]["end"]) == (yesterday.isoformat(), fx.end.isoformat())
    # entities with a row on the new day: every user and query, the items live by then
    assert second["user_behaviour"]["entities"] == second["user_features"]["entities"] == len(fx.users)
    assert second["item_features"]["entities"] == len(fx.items)
    # stamped at creation, not arrival: the vectors not online yet, the items created on the new day
    assert second["item_text_embedding"]["mode"] == "changed"
    new_items = [i for i, created in fx.item_created.items() if yesterday <= created < fx.end]
    assert second["item_text_embedding"]["entities"] == len(new_items) == 1
    assert second["query_text_embedding"] == {**second["query_text_embedding"], "mode": "changed", "entities": 0}
    materialize(full, end=fx.end)
    assert _online_rows(inc, fx) == _online_rows(full, ref)

    again = materialize_incremental(inc, end=fx.end)
    assert again["user_features"] == {"mode": "up_to_date", "start": fx.end.isoformat(), "end": fx.end.isoformat(),
                                      "entities": 0}
    restated = materialize_incremental(inc, end=fx.end, since=yesterday - timedelta(days=1))
    assert restated["user_behaviour"]["mode"] == "restate"
    assert restated["user_behaviour"]["start"] == (yesterday - timedelta(days=1)).isoformat()
    assert _online_rows(inc, fx) == _online_rows(full, ref)


def test_a_restate_writes_only_the_rows_that_changed_and_equals_a_full_load(tmp_path):
    fx = write_feature_fixture(Paths(tmp_path / "incremental", "fx"), n_days=5)
    ref = write_feature_fixture(Paths(tmp_path / "full", "fx"), n_days=5)
    inc, full = feature_store(fx.paths), feature_store(ref.paths)
    apply(inc, fx.paths)
    apply(full, ref.paths)
    materialize_incremental(inc, end=fx.end)

    # a rebuilt day changes one user's newest row (and a backfill adds nothing else): only that row goes online
    for paths in (fx.paths, ref.paths):
        path = paths.marts_dir / "user_features.parquet"
        frame = pd.read_parquet(path)
        newest = frame.index[(frame["user_id"] == "u:1")][frame.loc[frame["user_id"] == "u:1", "event_timestamp"]
                                                          .argmax()]
        frame.loc[newest, "user_impr_7d"] = 999_999
        frame.to_parquet(path, index=False)
    since = DAY0 + timedelta(days=fx.n_days - 2)
    restated = materialize_incremental(inc, end=fx.end, since=since)
    assert {v: restated[v]["mode"] for v in ("user_features", "item_features", "user_behaviour")} == dict.fromkeys(
        ("user_features", "item_features", "user_behaviour"), "restate")
    assert restated["user_features"]["entities"] == 1
    assert restated["item_features"]["entities"] == restated["user_behaviour"]["entities"] == 0
    assert {v.name: v.most_recent_end_time for v in inc.list_feature_views()}["user_features"] == fx.end
    materialize(full, end=fx.end)
    online = _online_rows(inc, fx)
    assert online == _online_rows(full, ref)
    assert 999_999 in online["user_features"]["user_impr_7d"]


def _day_key(d: int) -> str:
    return (DAY0 + timedelta(days=d)).date().isoformat()


def _keep_days_before(paths: Paths, last: int) -> None:
    """The marts as they stood before day `last` landed: no rows from it on, splits recut over the shorter span."""
    before = pd.Timestamp(DAY0 + timedelta(days=last))
    for path in paths.marts_dir.glob("*.parquet"):
        table = pq.read_table(path)
        stamps = table["event_timestamp"]
        pq.write_table(table.filter(pc.less(stamps, pa.scalar(before, stamps.type))), path)
    day = lambda t: (t - pd.Timestamp(DAY0)).days  # noqa: E731
    pre = pq.read_table(paths.marts_dir / "samples_pretrain.parquet")
    split = ["valid" if day(t) == last - 1 else "train" for t in pre["event_timestamp"].to_pandas()]
    pq.write_table(pre.set_column(pre.schema.get_field_index("split"), "split", pa.array(split)),
                   paths.marts_dir / "samples_pretrain.parquet")
    cold = pa.concat_tables(pq.read_table(paths.marts_dir / f"samples_coldstart_{s}.parquet") for s in
                            ("train", "valid", "test"))
    split = pa.array(["test" if day(t) == last - 1 else "valid" if day(t) == last - 2 else "train"
                      for t in cold["event_timestamp"].to_pandas()])
    cold = cold.set_column(cold.schema.get_field_index("split"), "split", split)
    for s in ("train", "valid", "test"):
        pq.write_table(cold.filter(pc.equal(cold["split"], s)), paths.marts_dir / f"samples_coldstart_{s}.parquet")


def test_training_folders_grow_by_the_new_day_and_equal_a_full_build(tmp_path, monkeypatch):
    import features.training_set as training_set

    fx = write_feature_fixture(Paths(tmp_path / "var", "fx"), n_days=5, n_samples=120)
    store = feature_store(fx.paths)
    apply(store, fx.paths)
    shutil.copytree(fx.paths.marts_dir, tmp_path / "marts_today")
    last = fx.n_days - 1
    _keep_days_before(fx.paths, last)
    for samples in SPLITS:
        before = build_training_folder(store, fx.paths, samples, tmp_path / "inc" / samples)
        assert before.days.joined == [_day_key(d) for d in range(last)] and before.days.reused == []
    shutil.rmtree(fx.paths.marts_dir)
    shutil.copytree(tmp_path / "marts_today", fx.paths.marts_dir)  # day `last` lands; the splits move

    for samples, splits in SPLITS.items():
        inc = build_training_folder(store, fx.paths, samples, tmp_path / "inc" / samples, days=[_day_key(last)])
        assert inc.days.joined == [_day_key(last)]
        assert inc.days.reused == [_day_key(d) for d in range(last)]
        # each split folder rewrites only its day parts that changed: the new day, and a day whose split moved
        assert 0 < sum(inc.days.parts_written.values()) and max(inc.days.parts_written.values()) <= 2, \
            inc.days.parts_written
        # the from-scratch build joins whole days in chunks of ~30 rows: one Feast call per chunk, same rows
        calls = []
        monkeypatch.setattr(training_set, "JOIN_CHUNK_ROWS", 30)
        monkeypatch.setattr(training_set, "join_features", lambda st, chunk, calls=calls: calls.append(len(chunk))
                            or join_features(st, chunk))
        full = build_training_folder(store, fx.paths, samples, tmp_path / "full" / samples, refresh=True)
        monkeypatch.undo()
        assert len(calls) > 1
        assert full.days.joined == [_day_key(d) for d in range(fx.n_days)]
        assert dict(inc) == dict(full)
        for split, mart in splits.items():
            got = pq.read_table(tmp_path / "inc" / samples / f"{split}.parquet")
            assert got.equals(pq.read_table(tmp_path / "full" / samples / f"{split}.parquet")), (samples, split)
            # and both equal one point-in-time join of the whole split, the build without a day cache
            direct = _to_training_table(join_features(store, _read_split(fx.paths, mart, split)))
            by_id = [("impression_id", "ascending")]
            assert got.sort_by(by_id).equals(direct.sort_by(by_id)), (samples, split)
            # written a day at a time: rows in day order, by impression id within a day
            keys = got.select(["event_timestamp", "impression_id"]).to_pandas()
            keys["day"] = keys.event_timestamp.dt.floor("D")
            assert keys.equals(keys.sort_values(["day", "impression_id"])), (samples, split)
        assert ((tmp_path / "inc" / samples / "meta.json").read_text()
                == (tmp_path / "full" / samples / "meta.json").read_text())

    # a re-ingested older day is joined again with every later day; untouched days stay cached
    redo = build_training_folder(store, fx.paths, "coldstart", tmp_path / "inc" / "coldstart", days=[_day_key(2)])
    assert redo.days.joined == [_day_key(d) for d in range(2, fx.n_days)]
    unchanged = build_training_folder(store, fx.paths, "coldstart", tmp_path / "inc" / "coldstart")
    assert unchanged.days.joined == [] and len(unchanged.days.reused) == fx.n_days
    assert sum(unchanged.days.parts_written.values()) == 0
    # a sample row of an old day changed in the marts without the run naming its day: its fingerprint catches it
    path = fx.paths.marts_dir / "samples_coldstart_train.parquet"
    table = pq.read_table(path)
    labels = table["label"].to_numpy().copy()
    labels[0] = 1 - labels[0]
    pq.write_table(table.set_column(table.schema.get_field_index("label"), "label",
                                    pa.array(labels, table["label"].type)), path)
    changed_day = table["event_timestamp"][0].as_py().strftime("%Y-%m-%d")
    # a run naming its days trusts the cached days before them (dbt's day window left them as they were): only the
    # run's days are hashed and joined, so a tick does not hash the history
    newest = _day_key(fx.n_days - 1)
    assert changed_day < newest
    tick = build_training_folder(store, fx.paths, "coldstart", tmp_path / "inc" / "coldstart", days=[newest])
    assert tick.days.joined == [newest]
    relabelled = build_training_folder(store, fx.paths, "coldstart", tmp_path / "inc" / "coldstart")
    assert relabelled.days.joined == [changed_day]
    train = pq.read_table(tmp_path / "inc" / "coldstart" / "train.parquet").to_pandas().set_index("impression_id")
    assert train.loc[table["impression_id"][0].as_py(), "label"] == labels[0]


def test_feature_assets_follow_the_run_partition(tmp_path):
    """Inside a partitioned run the assets load the run's day on; outside one they rebuild everything."""
    from dagster import materialize as run

    from orchestration.assets.features import online_features, training_sets
    from orchestration.resources import FeastResource, UnisrSettings

    settings = UnisrSettings(var_dir=str(tmp_path / "var"))
    fx = write_feature_fixture(settings.paths, n_days=5)
    apply(feature_store(fx.paths), fx.paths)
    resources = {"settings": settings, "feast": FeastResource()}

    def metadata(tags: dict) -> dict:
        result = run([online_features, training_sets], resources=resources, tags=tags)
        return {node: {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}
                for node in ("online_features", "training_sets")}

    last = {"dagster/partition": _day_key(fx.n_days - 1)}
    first = metadata(last)  # nothing materialized or cached yet: all history
    assert first["online_features"]["loaded"]["user_features"]["mode"] == "full"
    assert first["training_sets"]["days_joined_coldstart"] == fx.n_days
    again = metadata(last)  # the day re-ingested: only it is joined again, and restated online
    assert again["online_features"]["loaded"]["user_features"]["mode"] == "restate"
    assert (again["training_sets"]["days_joined_pretrain"], again["training_sets"]["days_reused_pretrain"]) == (1, 4)
    assert again["training_sets"]["seconds"] >= 0
    outside = metadata({})
    assert outside["online_features"]["loaded"]["user_features"]["mode"] == "full"
    assert outside["training_sets"]["days_joined_pretrain"] == fx.n_days


def test_every_view_joined_point_in_time_has_a_bounded_ttl(store):
    """Feast's DuckDB join pairs a sample with every row of its entity inside the view's TTL: a view without one
    (user_behaviour before) makes a training-set build O(rows x days of history)."""
    from datetime import timedelta

    from features.definitions import TRAINING_SERVICE

    service = store.get_feature_service(TRAINING_SERVICE)
    for projection in service.feature_view_projections:
        ttl = store.get_feature_view(projection.name).ttl
        assert timedelta(0) < ttl <= timedelta(days=30), (projection.name, ttl)


def test_a_long_span_is_cached_and_split_by_month(tmp_path):
    from features.training_set import DAY, MONTH, _period_format

    def marts(days: int) -> list[str]:
        path = tmp_path / f"span{days}.parquet"
        stamps = pa.array([pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2000-01-01", tz="UTC")
                           + pd.Timedelta(days=days)], pa.timestamp("us", tz="UTC"))
        pq.write_table(pa.table({"event_timestamp": stamps}), path)
        return [str(path)]

    assert _period_format(marts(210)) == DAY      # the synthetic default and 10x its history: a part per day
    assert _period_format(marts(8000)) == MONTH   # MovieLens' decades: a part per month
