"""Latency of ranking 100 candidates with `Ranker.rank()`, SQLite and Redis online stores, warm.

Reference measured in the same run: the naive path (Feast SDK `get_online_features(online_ranking)` for the
N entity rows, then the same scoring). Prints p50/p99 per path and the reference/ours ratio; goal p99 <= 20 ms.

    PYTHONPATH=. FEAST_USAGE=False .venv/bin/python benchmarks/bench_ranking_latency.py [--requests 500]
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the repo's packages and the tests' data fixture

from feature_fixture import write_feature_fixture  # noqa: E402
from features.definitions import RANKING_SERVICE, SPARSE_VIEWS, feature_columns  # noqa: E402
from features.online import OnlineFeatureReader  # noqa: E402
from features.store import apply, feature_store, materialize  # noqa: E402
from features.training_set import build_training_folder  # noqa: E402
from models.train import TrainConfig, train  # noqa: E402
from unisr_data.paths import Paths  # noqa: E402

CANDIDATES = 100
EMB_DIM = 384
GOAL_P99_MS = 20.0


@dataclass
class BenchWorld:
    """A materialized store and a trained checkpoint; the ids requests draw from."""

    paths: Paths
    checkpoint: Path
    users: list[str]
    items: list[str]
    query_texts: dict[str, str]  # query id -> text (written to raw/queries.parquet)
    end: object


def build_bench_world(root: Path, n_users: int = 500, n_items: int = 3000, n_queries: int = 50) -> BenchWorld:
    """Fixture marts/embeddings at benchmark size -> Feast (SQLite) -> training folder -> a 1-epoch SRF checkpoint."""
    paths = Paths(root, "bench")
    fx = write_feature_fixture(paths, n_users=n_users, n_items=n_items, n_queries=n_queries, n_days=2,
                               n_samples=2000, emb_dim=EMB_DIM)
    texts = {q: f"query number {k}" for k, q in enumerate(fx.queries)}
    pd.DataFrame({"query_id": list(texts), "text": list(texts.values())}).to_parquet(paths.raw_dir / "queries.parquet")
    store = feature_store(paths)
    apply(store, paths)
    materialize(store, end=fx.end)
    build_training_folder(store, paths, "pretrain", paths.training_dir / "pretrain")
    cfg = TrainConfig(epochs=1, batch_size=256, device="cpu", progress=False, min_count=1)
    checkpoint = Path(train(cfg, paths.training_dir / "pretrain", root / "model")["checkpoint"])
    return BenchWorld(paths, checkpoint, fx.users, fx.items, texts, fx.end)


def request_stream(world: BenchWorld, n: int, seed: int = 0) -> list[dict]:
    """n requests: half search (known query), half rec; 100 candidates of which ~5% unknown; ~5% cold users."""
    rng = np.random.default_rng(seed)
    items = np.asarray(world.items + [f"i:unknown{k}" for k in range(len(world.items) // 20)], dtype=object)
    queries = list(world.query_texts.items())
    out = []
    for k in range(n):
        search = k % 2 == 0
        query_id, text = queries[rng.integers(len(queries))] if search else (None, None)
        user = "u:cold" if rng.random() < 0.05 else world.users[rng.integers(len(world.users))]
        out.append({"user_id": user, "domain": "search_a" if search else "rec_a", "query": text,
                    "query_id": query_id, "items": list(rng.choice(items, CANDIDATES, replace=False))})
    return out


def percentiles(fn, requests: list[dict], warmup: int = 50) -> tuple[float, float]:
    """(p50, p99) in ms of fn(request) over `requests`, after `warmup` untimed calls."""
    for r in requests[:warmup]:
        fn(r)
    times = []
    for r in requests:
        start = time.perf_counter()
        fn(r)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


class NaiveRanker:
    """The reference: Feast SDK get_online_features over the online_ranking service, then the same Scorer."""

    def __init__(self, store, ranker):
        self.store, self.service = store, store.get_feature_service(RANKING_SERVICE)
        self.scorer, self.dim = ranker._model.scorer, ranker.text_dim
        self.columns = feature_columns()
        self.domains = {d.name: d.domain_id for d in ranker._model.domains}

    def __call__(self, r: dict) -> list[tuple[str, float]]:
        rows = [{"user_id": r["user_id"], "item_id": i, "query_id": r["query_id"] or ""} for i in r["items"]]
        got = self.store.get_online_features(features=self.service, entity_rows=rows).to_dict()
        frame = pd.DataFrame({"domain_id": self.domains[r["domain"]], "user_id": r["user_id"], "item_id": r["items"],
                              "query_id": r["query_id"]})
        for _, _, features in SPARSE_VIEWS.values():
            for feature in features:
                column = self.columns[feature]
                values = got[feature]
                frame[column] = (np.asarray(values, dtype=object) if column.startswith("cat_")
                                 else np.array([np.nan if v is None else float(v) for v in values]))
        def stack(values):
            return np.stack([np.zeros(self.dim, np.float32) if v is None else np.asarray(v, np.float32)
                             for v in values])
        scores = self.scorer.score(frame, stack(got["item_text_emb"]), stack(got["query_text_emb"]))
        order = np.argsort(-scores, kind="stable")
        return [(r["items"][k], float(scores[k])) for k in order]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis() -> tuple[subprocess.Popen, int]:
    """A throwaway redis-server on a free loopback port (no persistence); stop it with stop_redis."""
    port = _free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"redis-server did not start on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def stop_redis(proc: subprocess.Popen) -> None:
    proc.terminate()  # by PID: only the server this script started
    proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="timed requests per path (after 50 warm-up)")
    parser.add_argument("--reference-requests", type=int, default=200, help="timed requests of the naive path")
    parser.add_argument("--torch-threads", type=int, default=1, help="as `serving.cli serve` runs it")
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from serving import Ranker

    torch.set_num_threads(args.torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        world = build_bench_world(Path(tmp))
        print(f"built store ({len(world.items)} items, {len(world.users)} users, {EMB_DIM}-d text) and "
              f"checkpoint in {time.perf_counter() - t0:.1f} s")
        requests = request_stream(world, args.requests + 50)

        def ours(ranker):
            return lambda r: ranker.rank(r["user_id"], r["domain"], r["query"], r["items"])

        ranker = Ranker(world.paths, world.checkpoint)
        sqlite_store = feature_store(world.paths)
        results = {"Ranker.rank, SQLite": percentiles(ours(ranker), requests)}
        naive = NaiveRanker(sqlite_store, ranker)
        results["naive: Feast SDK + score, SQLite (reference)"] = percentiles(
            naive, requests[: args.reference_requests + 50])

        if args.no_redis or shutil.which("redis-server") is None:
            print("redis: skipped (--no-redis, or redis-server not installed: apt-get install -y redis-server)")
        else:
            proc, port = start_redis()
            try:
                redis_store = feature_store(world.paths, online="redis", redis_connection=f"127.0.0.1:{port}")
                apply(redis_store, world.paths)
                materialize(redis_store, end=world.end)
                redis_ranker = Ranker(world.paths, world.checkpoint, feature_reader=OnlineFeatureReader(redis_store))
                results["Ranker.rank, Redis"] = percentiles(ours(redis_ranker), requests)
                results["naive: Feast SDK + score, Redis"] = percentiles(
                    NaiveRanker(redis_store, redis_ranker), requests[: args.reference_requests + 50])
            finally:
                stop_redis(proc)

    ref_p50, ref_p99 = results["naive: Feast SDK + score, SQLite (reference)"]
    print(f"\nranking {CANDIDATES} candidates, warm, torch threads {args.torch_threads} "
          f"({args.requests} requests per path; reference {args.reference_requests})")
    print(f"{'path':<48} {'p50 ms':>8} {'p99 ms':>8} {'ref/this p50':>13} {'ref/this p99':>13}")
    for name, (p50, p99) in results.items():
        print(f"{name:<48} {p50:8.2f} {p99:8.2f} {ref_p50 / p50:13.2f} {ref_p99 / p99:13.2f}")
    for name in ("Ranker.rank, SQLite", "Ranker.rank, Redis"):
        if name in results:
            p99 = results[name][1]
            verdict = "met" if p99 <= GOAL_P99_MS else "MISSED"
            print(f"goal p99 <= {GOAL_P99_MS:.0f} ms, {name}: {verdict} ({p99:.2f} ms)")


if __name__ == "__main__":
    main()
