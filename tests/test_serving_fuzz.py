"""Fuzz POST /rank over its request schema (hypothesis): whatever a client sends, the answer is a 2xx or 4xx with
strict JSON, never a 5xx. Derandomized and 100 examples, so it is fast and the same on every run."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving import Ranker
from serving.http import create_app
from serving.limits import ServingLimits

# any code point, lone surrogates included (JSON can carry them as \ud800 escapes)
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
LIMITS = ServingLimits(max_body_bytes=64 << 10, max_candidates=50, max_id_chars=64, max_query_chars=200)


@pytest.fixture(scope="module")
def client(served_world):
    with TestClient(create_app(Ranker(served_world.paths, limits=LIMITS))) as c:
        yield c


def _requests(users: list[str], items: list[str]):
    """A valid request with 0-2 of its fields replaced by hostile values, so most examples get past the schema
    into the ranker's own checks (domain lookup, Unicode, limits, query rules) and the feature read."""
    hostile_text = st.one_of(ANY_TEXT, st.sampled_from(["\ud800", "²", "١", "", " ", "\x00", "x" * 65, "x" * 201]))
    scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                       st.floats(allow_nan=False), hostile_text)
    domain_and_query = st.sampled_from([(0, "red running shoes"), ("search_a", "never seen query"), (1, None),
                                        ("rec_a", None), ("2", None), ("rec_cold", None)])
    valid = st.builds(
        lambda u, dq, i: {"user_id": u, "domain": dq[0], "query": dq[1], "items": i},
        st.sampled_from(users), domain_and_query,
        st.lists(st.sampled_from(items), min_size=1, max_size=20, unique=True))
    hostile = {
        "user_id": st.one_of(scalar, st.lists(hostile_text, max_size=2)),
        "domain": st.one_of(scalar, st.sampled_from([3, -1, 10 ** 30, "0x1", "1.0", "search_a ", "REC_A"])),
        "query": scalar,
        "items": st.one_of(scalar, st.lists(st.one_of(st.sampled_from(items), hostile_text, scalar), max_size=60)),
        "extra": scalar,
    }
    changes = st.lists(st.sampled_from(list(hostile)), max_size=2, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: hostile[k] for k in keys}))
    dropped = st.sets(st.sampled_from(["user_id", "domain", "query", "items"]), max_size=1)
    return st.builds(lambda v, c, d: {k: x for k, x in {**v, **c}.items() if k not in d}, valid, changes,
                     st.one_of(st.just(set()), dropped))


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_request_gets_a_5xx(client, served_world, data):
    requests = _requests(served_world.users + ["u:cold"], served_world.items[:40])
    payload = data.draw(st.one_of(requests.map(lambda p: json.dumps(p).encode()),  # surrogates travel as \u escapes
                                  st.binary(max_size=200)), label="body")
    response = client.post("/rank", content=payload, headers={"content-type": "application/json"})
    assert response.status_code < 500, (payload[:300], response.text[:500])
    body = json.loads(response.content)  # strict JSON: no NaN, valid UTF-8
    if response.status_code == 200:
        assert all(0 <= item["score"] <= 1 for item in body["items"])
    else:
        assert response.status_code in (400, 413) and body["detail"]
