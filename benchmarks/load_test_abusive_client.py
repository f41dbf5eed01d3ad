"""Bounded loopback load test of POST /rank with one abusive client: do the other clients keep their latency?

Two phases against one uvicorn server on 127.0.0.1 (a subprocess in its own session, stopped by its process group):
1. unloaded: `--concurrency` normal clients (100 candidates, as benchmarks/load_test_ranking.py) for `--duration` s;
2. loaded: the same clients plus ONE abusive client sending, back to back, 2 MB bodies (413), 1001 candidates (400),
   over-long queries and ids (400), and the heaviest requests the limits allow: 1000 candidates with a never-seen
   1000-character query each time (every one a query-encoder forward pass).
Prints the normal clients' p50/p99 in both phases and the ratio loaded/unloaded p99 (goal <= 2), what the abuser got
by status, and a final JSON line. Nothing leaves 127.0.0.1; each phase stops at its duration or request cap.

    PYTHONPATH=. FEAST_USAGE=False .venv/bin/python benchmarks/load_test_abusive_client.py [--duration 30] [--workers 1]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ranking_latency import _free_port, build_bench_world, request_stream  # noqa: E402
from load_test_ranking import run_load, start_server, stop_server  # noqa: E402

GOAL_P99_RATIO = 2.0
BIG_BODY_BYTES = 2 << 20


def abusive_bodies(items: list[str], n_unique: int = 200, seed: int = 0, max_candidates: int = 1000,
                   max_query_chars: int = 1024, max_id_chars: int = 256) -> list[bytes]:
    """The abuser's request cycle (against the default ServingLimits): refused ones and the heaviest allowed ones."""
    rng = np.random.default_rng(seed)
    # max_candidates + 1 distinct ids: the catalog's, then unknown ones
    pool = list(items[: max_candidates + 1]) + [f"i:abuse-{k}" for k in range(max(0, max_candidates + 1 - len(items)))]
    heavy_items = pool[:max_candidates]

    def body(**fields) -> bytes:
        return json.dumps({"user_id": "u:abuser", **fields}).encode()

    refused = [
        body(domain="search_a", query="x" * BIG_BODY_BYTES, items=heavy_items[:10]),         # 413: body size
        body(domain="rec_a", items=pool),                                                     # 400: candidates
        body(domain="search_a", query="y" * (max_query_chars + 1), items=heavy_items[:10]),   # 400: query length
        body(domain="rec_a", items=["i" * (max_id_chars + 1)]),                               # 400: id length
    ]
    out = []
    for k in range(n_unique):
        words = " ".join(f"w{v}" for v in rng.integers(0, 10**6, size=max_query_chars // 8))[: max_query_chars - 10]
        out.append(body(domain="search_a", query=f"{k} {words}", items=heavy_items))  # 200: the heaviest allowed
        out.append(body(domain="rec_a", items=heavy_items))                             # 200: many candidates
        out.append(refused[k % len(refused)])
    return out


async def abuse(url: str, bodies: list[bytes], stop: asyncio.Event, timeout: float = 60.0,
                min_requests: int = 0) -> Counter:
    """One client sending `bodies` back to back (cycling) until `stop` is set and at least `min_requests` were sent;
    status counts ('error ...' for transport errors)."""
    got: Counter = Counter()
    async with httpx.AsyncClient(timeout=timeout) as http:
        k = 0
        while not stop.is_set() or k < min_requests:
            try:
                response = await http.post(url, content=bodies[k % len(bodies)],
                                           headers={"content-type": "application/json"})
                got[str(response.status_code)] += 1
            except httpx.HTTPError as err:
                got[f"error {type(err).__name__}"] += 1
            k += 1
    return got


async def loaded_phase(url: str, normal: list[bytes], abusive: list[bytes], concurrency: int, duration: float,
                       max_requests: int, abuser_min_requests: int = 0) -> tuple[dict, Counter]:
    """Normal clients for `duration` s with the abuser running alongside; (normal result, abuser status counts)."""
    stop = asyncio.Event()
    abuser = asyncio.create_task(abuse(url, abusive, stop, min_requests=abuser_min_requests))
    await asyncio.sleep(0.2)  # the abuser is already busy when the measurement starts
    result = await run_load(url, normal, concurrency, duration, max_requests)
    stop.set()
    return result, await abuser


def measure(url: str, normal: list[bytes], abusive: list[bytes], concurrency: int, duration: float,
            max_requests: int, abuser_min_requests: int = 0) -> dict:
    """Both phases against a running server; the numbers the script prints (and its test checks for shape)."""
    unloaded = asyncio.run(run_load(url, normal, concurrency, duration, max_requests))
    loaded, abuser = asyncio.run(loaded_phase(url, normal, abusive, concurrency, duration, max_requests,
                                              abuser_min_requests))
    ratio = loaded["p99"] / unloaded["p99"] if unloaded["p99"] > 0 else float("nan")
    return {"unloaded": unloaded, "loaded": loaded, "abuser": dict(abuser), "p99_ratio": ratio}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap on normal requests per phase")
    parser.add_argument("--concurrency", type=int, default=8, help="normal clients (keep-alive connections)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        world = build_bench_world(Path(tmp))
        normal = [json.dumps({k: r[k] for k in ("user_id", "domain", "query", "items")}).encode()
                  for r in request_stream(world, 2000, seed=1)]
        abusive = abusive_bodies(world.items)
        port = _free_port()
        proc = start_server(world, port, args.workers, args.torch_threads, warm_up=True)
        try:
            url = f"http://127.0.0.1:{port}/rank"
            asyncio.run(run_load(url, normal[:100], min(args.concurrency, 4), 3.0, 200))  # warm-up, not counted
            result = measure(url, normal, abusive, args.concurrency, args.duration, args.max_requests)
        finally:
            stop_server(proc)
    un, lo = result["unloaded"], result["loaded"]
    print(f"POST /rank, {args.workers} uvicorn worker(s), {args.concurrency} normal clients (100 candidates), "
          f"{args.duration:.0f} s per phase, {os.cpu_count()} cores shared with the clients")
    for name, r in (("unloaded", un), ("with abuser", lo)):
        print(f"  {name:12s} {r['rps']:6.1f} req/s ok, errors {sum(r['errors'].values())}, "
              f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms")
    print(f"  abuser got: {dict(sorted(result['abuser'].items()))}")
    met = result["p99_ratio"] <= GOAL_P99_RATIO and not lo["errors"] and not un["errors"]
    print(f"normal clients' p99 with / without the abuser: {result['p99_ratio']:.2f}x "
          f"(goal <= {GOAL_P99_RATIO}x, zero errors): {'met' if met else 'MISSED'} "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(json.dumps({"unloaded_p50_ms": round(un["p50"], 2), "unloaded_p99_ms": round(un["p99"], 2),
                      "loaded_p50_ms": round(lo["p50"], 2), "loaded_p99_ms": round(lo["p99"], 2),
                      "p99_ratio": round(result["p99_ratio"], 3), "normal_errors": {**un["errors"], **lo["errors"]},
                      "abuser": result["abuser"], "workers": args.workers, "concurrency": args.concurrency,
                      "duration_s": args.duration, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}))


if __name__ == "__main__":
    main()
