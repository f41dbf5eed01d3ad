"""The same store with a real Redis online store: materialize, read back, and match SQLite value for value."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import numpy as np
import pandas as pd
import pytest

from feature_fixture import write_feature_fixture
from features.online import OnlineFeatureReader
from features.store import apply, feature_store, materialize
from unisr_data.paths import Paths

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(shutil.which("redis-server") is None,
                       reason="redis-server is not installed (Debian: apt-get install -y redis-server)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def redis_port():
    port = _free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, redis_port):
    fx = write_feature_fixture(Paths(tmp_path_factory.mktemp("var"), "fx"))
    sqlite = feature_store(fx.paths)
    apply(sqlite, fx.paths)
    materialize(sqlite, end=fx.end)
    redis = feature_store(fx.paths, online="redis", redis_connection=f"127.0.0.1:{redis_port}")
    apply(redis, fx.paths)
    written = materialize(redis, end=fx.end)
    return fx, sqlite, redis, written


def test_redis_needs_a_connection_string(tmp_path, monkeypatch):
    monkeypatch.delenv("UNISR_REDIS", raising=False)
    with pytest.raises(ValueError, match="UNISR_REDIS"):
        feature_store(Paths(tmp_path), online="redis")


def test_redis_holds_what_sqlite_holds(stores):
    fx, sqlite, redis, written = stores
    assert written["item_features"] == len(fx.items)
    rows = [{"user_id": u, "item_id": i, "query_id": q}
            for u, i, q in zip(fx.users + ["u:404"], fx.items + ["i:404"], (fx.queries * 9)[: len(fx.users) + 1])]
    service = sqlite.get_feature_service("online_ranking")
    from_sqlite = sqlite.get_online_features(features=service, entity_rows=rows).to_dict()
    from_redis = redis.get_online_features(features=redis.get_feature_service("online_ranking"),
                                           entity_rows=rows).to_dict()
    assert from_redis == from_sqlite
    assert from_redis["item_impr_7d"][1] == 100 * (fx.n_days - 1) + 1  # not a pair of empty answers


def test_reader_on_redis_matches_reader_on_sqlite(stores):
    fx, sqlite, redis, _ = stores
    items = fx.items + ["i:404"]
    a = OnlineFeatureReader(sqlite).read("u:1", items, query_id="q:0")
    b = OnlineFeatureReader(redis).read("u:1", items, query_id="q:0")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.item_emb, b.item_emb)
    np.testing.assert_array_equal(a.query_emb, b.query_emb)
    assert a.known_items.tolist() == b.known_items.tolist() and b.known_items.sum() == len(fx.items)
    assert (a.known_user, a.known_query) == (b.known_user, b.known_query) == (True, True)
