"""The ranking HTTP API: in-process through FastAPI's TestClient, and once through a real uvicorn process."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from serving import Ranker
from serving.http import create_app

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(served_world):
    return served_world


@pytest.fixture(scope="module")
def client(world):
    with TestClient(create_app(Ranker(world.paths))) as c:
        yield c


def test_rank_returns_sorted_scores_and_the_model_version(client, world):
    candidates = world.items[:100] + ["i:unknown"]
    response = client.post("/rank", json={"user_id": "u:1", "domain": "search_a", "query": "red running shoes",
                                          "items": candidates})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"].startswith("srf-")
    assert sorted(i["item_id"] for i in body["items"]) == sorted(candidates)
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s < 1 for s in scores)


def test_health_names_the_served_version_and_reload_keeps_it(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model_version"].startswith("srf-")
    reloaded = client.post("/reload").json()
    assert reloaded == {"model_version": body["model_version"], "changed": False}


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        ({"user_id": "u:1", "domain": 1, "items": []}, 400, "items is empty"),
        ({"user_id": "u:1", "domain": 1, "items": ["i:1", "i:1"]}, 400, "duplicate candidate ids"),
        ({"user_id": "u:1", "domain": "nope", "items": ["i:1"]}, 400, "unknown domain 'nope'"),
        ({"user_id": "u:1", "domain": 0, "items": ["i:1"]}, 400, "search domain"),
        ({"user_id": "u:1", "domain": 1, "items": [f"i:{k}" for k in range(1001)]}, 400, "at most 1000"),
        ({"user_id": "u:1", "domain": 1, "items": ["i:1", 5]}, 400, "string"),
        ({"user_id": 3, "domain": 1, "items": ["i:1"]}, 400, "user_id"),
        ({"domain": 1, "items": ["i:1"]}, 400, "user_id"),
        ({"user_id": "u:1", "domain": 1, "items": ["i:1"], "candidates": []}, 400, "candidates"),
    ],
)
def test_malformed_requests_get_a_clear_4xx(client, payload, status, fragment):
    response = client.post("/rank", json=payload)
    assert response.status_code == status, response.text
    assert fragment in response.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_by_a_real_uvicorn_process_on_loopback(world):
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEAST_USAGE": "False"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--var-dir", str(world.paths.root), "--dataset",
         world.paths.dataset, "--host", "127.0.0.1", "--port", str(port), "--no-warm-up"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not come up on {url}:\n{proc.stdout.read().decode()[-3000:]}")
            time.sleep(0.2)
        response = httpx.post(f"{url}/rank", json={"user_id": "u:cold", "domain": "rec_a",
                                                   "items": world.items[:20]}, timeout=10)
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == 20
        assert httpx.post(f"{url}/rank", json={"user_id": "u:1", "domain": 7, "items": ["i:1"]},
                          timeout=10).status_code == 400
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: only the server we started
        proc.wait(timeout=20)
