"""Fixtures shared by several test modules (session-scoped: each is built once per pytest run).

pyproject's `pythonpath = ["tests", "."]` puts the fixture modules (model_fixture, feature_fixture, raw_fixture,
serving_fixture) and the repository root on sys.path for every test module: no test edits sys.path.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def served_world(tmp_path_factory):
    """A materialized online store and a promoted tiny checkpoint (tests/serving_fixture.py), for serving tests."""
    from serving_fixture import build_world

    return build_world(tmp_path_factory.mktemp("served_world"))
