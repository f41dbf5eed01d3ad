"""features/pruned_join.py: which parts a join reads, and that reading only them leaves Feast's join unchanged."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from feature_fixture import COLD_USER, DAY0, write_feature_fixture
from features.definitions import BEHAVIOUR_FEATURES, BEHAVIOUR_VIEW, SPARSE_VIEWS
from features.pruned_join import historical_features, parts_to_read, pruned_views
from features.store import apply, feature_store
from unisr_data.paths import Paths
from unisr_data.warehouse import EMPTY_PART, PART_STAMPS

UTC = timezone.utc


def _part_folder(folder, stems, period="%Y-%m-%d"):
    folder.mkdir(parents=True)
    for stem in stems:
        (folder / f"{stem}.parquet").write_bytes(b"")
    (folder / PART_STAMPS).write_text(json.dumps({"period": period, "parts": {}}))
    return folder


def test_parts_to_read_keeps_the_ttl_window_and_a_day_of_margin(tmp_path):
    days = [f"2024-03-{d:02d}" for d in range(1, 31)]
    folder = _part_folder(tmp_path / "m.parquet", [*days, EMPTY_PART.removesuffix(".parquet")])
    start, end = datetime(2024, 3, 20, 5, tzinfo=UTC), datetime(2024, 3, 21, 23, tzinfo=UTC)
    kept = [p.stem for p in parts_to_read(folder, start, end, timedelta(days=7))]
    # rows stamped in [03-13 05:00, 03-21 23:00] can match; one day of margin on each side
    assert kept == [*(f"2024-03-{d:02d}" for d in range(12, 23)), "none"]
    no_ttl = [p.stem for p in parts_to_read(folder, start, end, None)]
    assert no_ttl[0] == "2024-03-01" and no_ttl[-2] == "2024-03-22"


def test_parts_to_read_months_and_plain_files(tmp_path):
    months = _part_folder(tmp_path / "months.parquet", ["2023-11", "2023-12", "2024-01", "2024-02"], "%Y-%m")
    kept = parts_to_read(months, datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 12, tzinfo=UTC),
                         timedelta(days=30))
    assert [p.stem for p in kept] == ["2023-12", "2024-01"]
    far = parts_to_read(months, datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC), timedelta(days=1))
    assert len(far) == 1  # nothing in range: one part keeps the source readable
    single = tmp_path / "single.parquet"
    single.write_bytes(b"")
    assert parts_to_read(single, datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC), None) is None
    assert parts_to_read(_folder_without_stamps(tmp_path), datetime(2024, 1, 1, tzinfo=UTC),
                         datetime(2024, 1, 2, tzinfo=UTC), None) is None


def _folder_without_stamps(tmp_path):
    folder = tmp_path / "nostamps.parquet"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def parted_store(tmp_path_factory):
    """The feature fixture with its feature marts exported as day-part folders, as export_marts writes them."""
    paths = Paths(tmp_path_factory.mktemp("var"), "fx")
    write_feature_fixture(paths, n_days=40)
    for mart in [*SPARSE_VIEWS, BEHAVIOUR_VIEW]:
        path = paths.marts_dir / f"{mart}.parquet"
        table = pq.read_table(path)
        path.unlink()
        path.mkdir()
        day = pc.strftime(table["event_timestamp"], "%Y-%m-%d")
        for stem in sorted(set(day.to_pylist())):
            pq.write_table(table.filter(pc.equal(day, stem)), path / f"{stem}.parquet")
        (path / PART_STAMPS).write_text(json.dumps({"period": "%Y-%m-%d", "parts": {}}))
    store = feature_store(paths)
    apply(store, paths)
    return store


def _refs(views):
    features = {BEHAVIOUR_VIEW: BEHAVIOUR_FEATURES, **{v: spec[2] for v, spec in SPARSE_VIEWS.items()}}
    return [f"{view}:{feature}" for view in views for feature in features[view]]


@pytest.mark.parametrize("offsets", [[(12, 3)], [(0, 0), (39, 23)], [(3, 12), (4, 0), (4 + 31, 0), (20, 1)]])
def test_pruned_join_equals_feasts_join(parted_store, offsets):
    users = ["u:0", "u:1", "u:2", COLD_USER]
    items = ["i:0", "i:1", "i:3", "i:2"]
    rows = [(users[k % 4], items[(k + 1) % 4], DAY0 + timedelta(days=d, hours=h)) for k, (d, h) in enumerate(offsets)
            for _ in range(2)]
    entity_df = pd.DataFrame(rows, columns=["user_id", "item_id", "event_timestamp"]).drop_duplicates()
    entity_df["row"] = range(len(entity_df))
    views = ["user_features", "item_features", BEHAVIOUR_VIEW]
    expected = parted_store.get_historical_features(entity_df=entity_df, features=_refs(views)).to_df()
    got = historical_features(parted_store, entity_df, views, _refs(views))
    key = ["row"]
    expected = expected.sort_values(key).reset_index(drop=True)
    got = got.sort_values(key).reset_index(drop=True)
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got, expected)
    assert got["item_impr_7d"].notna().any() or offsets == [(4 + 31, 0)]


def test_pruned_views_read_only_the_window(parted_store):
    start = DAY0 + timedelta(days=20)
    with pruned_views(parted_store, ["user_features", BEHAVIOUR_VIEW], start, start + timedelta(hours=5)) as views:
        sparse, behaviour = ({p.name for p in Path(v.batch_source.path).glob("*.parquet")}
                             for v in views)
    # the 30-day TTL reaches before the first day: days 0..21; the one-day TTL: days 18..21
    assert len(sparse) == 22
    assert sorted(behaviour) == [f"{(DAY0 + timedelta(days=d)):%Y-%m-%d}.parquet" for d in range(18, 22)]
