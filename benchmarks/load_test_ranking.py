"""Bounded load test of POST /rank: uvicorn in a subprocess on 127.0.0.1, concurrent async httpx clients.

Stops at --duration seconds or --max-requests requests, whichever comes first, then stops the server (by its
process group, which only it is in). Prints requests/s, errors, client-side p50/p99; goal >= 200 req/s for
60 s with zero errors. Traffic goes to 127.0.0.1 only.

    PYTHONPATH=. FEAST_USAGE=False .venv/bin/python benchmarks/load_test_ranking.py [--duration 60] [--workers 1]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ranking_latency import REPO, _free_port, build_bench_world, request_stream  # noqa: E402

GOAL_RPS = 200


def start_server(world, port: int, workers: int, torch_threads: int, warm_up: bool = False) -> subprocess.Popen:
    """`python -m serving.cli serve` in its own session, ready when /health answers (after loading the query
    encoder too when `warm_up`)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEAST_USAGE": "False"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--var-dir", str(world.paths.root), "--dataset",
         world.paths.dataset, "--checkpoint", str(world.checkpoint), "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--torch-threads", str(torch_threads), *([] if warm_up else ["--no-warm-up"])],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"the ranking server did not come up on 127.0.0.1:{port}")
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


async def run_load(url: str, bodies: list[bytes], concurrency: int, duration: float, max_requests: int) -> dict:
    """`concurrency` clients send bodies back to back until the time or request budget is spent."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    stop_at = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent
        while sent < max_requests and time.perf_counter() < stop_at:
            body = bodies[sent % len(bodies)]
            sent += 1
            start = time.perf_counter()
            try:
                response = await http.post(url, content=body, headers=headers)
                if response.status_code != 200:
                    errors[f"HTTP {response.status_code}"] = errors.get(f"HTTP {response.status_code}", 0) + 1
                    continue
            except httpx.HTTPError as err:
                errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                continue
            latencies.append((time.perf_counter() - start) * 1e3)

    begin = time.perf_counter()
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    elapsed = time.perf_counter() - begin
    return {"requests": sent, "ok": len(latencies), "errors": errors, "seconds": elapsed,
            "rps": len(latencies) / elapsed,
            "p50": float(np.percentile(latencies, 50)) if latencies else float("nan"),
            "p99": float(np.percentile(latencies, 99)) if latencies else float("nan")}


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (the test stops by itself)")
    parser.add_argument("--max-requests", type=int, default=30_000, help="hard cap on requests sent")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (keep-alive connections)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        world = build_bench_world(Path(tmp))
        requests = request_stream(world, 2000, seed=1)
        bodies = [json.dumps({k: r[k] for k in ("user_id", "domain", "query", "items")}).encode() for r in requests]
        port = _free_port()
        proc = start_server(world, port, args.workers, args.torch_threads)
        try:
            url = f"http://127.0.0.1:{port}/rank"
            asyncio.run(run_load(url, bodies[:100], min(args.concurrency, 4), 3.0, 200))  # warm-up, not counted
            server = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            server_cpu0, client_cpu0 = _cpu_seconds(server), _cpu_seconds([psutil.Process()])
            result = asyncio.run(run_load(url, bodies, args.concurrency, args.duration, args.max_requests))
            server_cpu, client_cpu = _cpu_seconds(server) - server_cpu0, _cpu_seconds([psutil.Process()]) - client_cpu0
        finally:
            stop_server(proc)
    print(f"POST /rank, 100 candidates, {args.workers} uvicorn worker(s), torch threads {args.torch_threads}, "
          f"{args.concurrency} concurrent clients, {os.cpu_count()} cores shared with the client")
    print(f"{result['requests']} requests in {result['seconds']:.1f} s: {result['rps']:.1f} req/s ok, "
          f"errors {sum(result['errors'].values())} {result['errors'] or ''}, "
          f"latency p50 {result['p50']:.1f} ms p99 {result['p99']:.1f} ms")
    ok = max(result["ok"], 1)
    per_request = (server_cpu + client_cpu) / ok
    print(f"CPU per request: server {1e3 * server_cpu / ok:.2f} ms, load client {1e3 * client_cpu / ok:.2f} ms -> "
          f"an idle {os.cpu_count()}-core box would top out near {os.cpu_count() / per_request:.0f} req/s "
          f"(load average during the run: {os.getloadavg()[0]:.1f})")
    met = result["rps"] >= GOAL_RPS and not result["errors"]
    print(f"goal >= {GOAL_RPS} req/s with zero errors: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
