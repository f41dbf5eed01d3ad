"""The ranking HTTP API: in-process through FastAPI's TestClient, and once through a real uvicorn process."""
from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def loopback_url(world):
    """`serving.cli serve` in a real uvicorn process on a free loopback port (its own session), stopped after."""
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
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: only the server we started
        proc.wait(timeout=20)


def test_served_by_a_real_uvicorn_process_on_loopback(loopback_url, world):
    url = loopback_url
    response = httpx.post(f"{url}/rank", json={"user_id": "u:cold", "domain": "rec_a",
                                               "items": world.items[:20]}, timeout=10)
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 20
    assert httpx.post(f"{url}/rank", json={"user_id": "u:1", "domain": 7, "items": ["i:1"]},
                      timeout=10).status_code == 400


def test_one_abusive_client_is_refused_and_the_others_see_no_errors(loopback_url, world):
    """benchmarks/load_test_abusive_client.py in miniature: its refusals and zero errors for the normal clients.
    How much the abuser slows the others is measured by the benchmark (README), never asserted here."""
    from benchmarks.load_test_abusive_client import abusive_bodies, measure

    normal = [json.dumps({"user_id": f"u:{k % 5}", "domain": "rec_a", "items": world.items[k % 7: k % 7 + 100]}
                         ).encode() for k in range(20)]
    abusive = abusive_bodies(world.items, n_unique=4)
    result = measure(f"{loopback_url}/rank", normal, abusive, concurrency=2, duration=1.0, max_requests=200,
                     abuser_min_requests=len(abusive))
    assert result["unloaded"]["ok"] > 0 and not result["unloaded"]["errors"]
    assert result["loaded"]["ok"] > 0 and not result["loaded"]["errors"], result["loaded"]["errors"]
    assert set(result["abuser"]) == {"200", "400", "413"}, result["abuser"]  # no 5xx, no reset connections
    assert result["abuser"]["413"] >= 1 and result["abuser"]["400"] >= 3 and result["abuser"]["200"] >= 8
    assert result["p99_ratio"] > 0


def _raw(client, body: bytes, **headers):
    return client.post("/rank", content=body, headers={"content-type": "application/json", **headers})


@pytest.mark.parametrize(
    "body, fragment",
    [
        # JSON may carry a lone surrogate; UTF-8, SQLite and the tokenizer cannot: 400, not 500
        (b'{"user_id": "\\ud800", "domain": 1, "items": ["i:1"]}', "user_id is not valid Unicode"),
        (b'{"user_id": "u:1", "domain": 1, "items": ["i:1", "i:\\udfff"]}', "items[1] is not valid Unicode"),
        (b'{"user_id": "u:1", "domain": "search_a", "query": "shoes \\ud800", "items": ["i:1"]}',
         "query is not valid Unicode"),
        (b'{"user_id": "u:1", "domain": "\\ud800", "items": ["i:1"]}', "unknown domain"),
        # a wrong type next to a lone surrogate: the field error must not echo the input back
        (b'{"user_id": "\\ud800", "domain": 1.5, "items": ["i:1"]}', "domain"),
        ('{"user_id": "u:1", "domain": "²", "items": ["i:1"]}'.encode(), "unknown domain '²'"),
        (b'{"user_id": "u:1", "domain": 1, "items": ["i:1"]', "invalid request"),  # truncated JSON
        (b'[1, 2, 3]', "invalid request"),
        (b'\xff\xfe not json', "error parsing the body"),  # not UTF-8
        (b'{"user_id": "u:1", "domain": 1, "items": ["i:1"], "query": {"$gt": ""}}', "query"),
    ],
)
def test_malformed_bytes_and_unicode_get_400_never_500(client, body, fragment):
    response = _raw(client, body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]


def test_request_limits_answer_413_and_400(client):
    from serving.limits import ServingLimits

    defaults = ServingLimits()
    huge = (b'{"user_id": "u:1", "domain": "search_a", "query": "' + b"a" * defaults.max_body_bytes
            + b'", "items": ["i:1"]}')
    response = _raw(client, huge)
    assert response.status_code == 413 and "at most" in response.json()["detail"]
    # the same body without a Content-Length (chunked): read up to the limit, then refused
    chunked = client.post("/rank", content=iter([huge[:1000], huge[1000:]]),
                          headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert _raw(client, b"{}", **{"content-length": "abc"}).status_code == 400
    long_query = {"user_id": "u:1", "domain": "search_a", "query": "q" * (defaults.max_query_chars + 1),
                  "items": ["i:1"]}
    long_user = {"user_id": "u" * (defaults.max_id_chars + 1), "domain": 1, "items": ["i:1"]}
    long_item = {"user_id": "u:1", "domain": 1, "items": ["i:1", "i" * (defaults.max_id_chars + 1)]}
    for payload, fragment in ((long_query, "query has"), (long_user, "user_id has"), (long_item, "items[1] has")):
        response = client.post("/rank", json=payload)
        assert response.status_code == 400 and fragment in response.json()["detail"], response.text
        assert len(response.content) < 1000, "the error echoed the oversized input"


def test_limits_come_from_the_environment(world):
    from serving.limits import ServingLimits

    limits = ServingLimits.from_env({"UNISR_SERVING_MAX_CANDIDATES": "3", "UNISR_SERVING_MAX_BODY_BYTES": "400"})
    assert (limits.max_candidates, limits.max_body_bytes, limits.max_id_chars) == (3, 400, ServingLimits().max_id_chars)
    with pytest.raises(ValueError, match="UNISR_SERVING_MAX_QUERY_CHARS"):
        ServingLimits.from_env({"UNISR_SERVING_MAX_QUERY_CHARS": "-1"})
    small = TestClient(create_app(Ranker(world.paths, limits=limits)))
    ok = small.post("/rank", json={"user_id": "u:1", "domain": 1, "items": world.items[:3]})
    assert ok.status_code == 200, ok.text
    assert small.post("/rank", json={"user_id": "u:1", "domain": 1, "items": world.items[:4]}).status_code == 400
    assert small.post("/rank", json={"user_id": "u:1", "domain": 1, "items": world.items[:3],
                                     "query": "x" * 400}).status_code == 413


def test_rank_runs_in_the_thread_pool_not_on_the_event_loop(client):
    import inspect

    route = next(r for r in client.app.routes if getattr(r, "path", "") == "/rank")
    assert not inspect.iscoroutinefunction(route.endpoint), "a CPU-bound async handler stalls every other request"
