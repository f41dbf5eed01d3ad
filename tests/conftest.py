"""Fixtures shared by several test modules (session-scoped: each is built once per pytest run).

pyproject's `pythonpath = ["tests", "."]` puts the fixture modules (model_fixture, feature_fixture, raw_fixture,
serving_fixture) and the repository root on sys.path for every test module: no test edits sys.path.
"""
from __future__ import annotations

import os

import pytest

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # `make test` runs pytest-xdist workers side by side: each gets its share of the cores as torch/OpenMP threads
    # (inherited by the pipelines it starts). Two workers with torch's default two threads each oversubscribed two
    # cores, and OpenMP's spin-waits made the MIND pipeline test 2.7x slower than alone (143 s -> 394 s).
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))


def pytest_sessionstart(session):
    """Parse the dbt project once, in the controlling process, before `make test`'s workers (pytest-xdist) load the
    Dagster definitions side by side: two first-time `dbt parse` runs would write the same manifest at once."""
    if not hasattr(session.config, "workerinput"):
        from orchestration.assets.warehouse import ensure_manifest

        ensure_manifest()


def pytest_collection_modifyitems(config, items):
    """Slow end-to-end modules first (a stable sort: modules stay whole, in file order), so that under `make test`'s
    `-n 2 --dist loadscope` both workers start on the pipelines and the many quick tests fill in behind them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def served_world(tmp_path_factory):
    """A materialized online store and a promoted tiny checkpoint (tests/serving_fixture.py), for serving tests."""
    from serving_fixture import build_world

    return build_world(tmp_path_factory.mktemp("served_world"))


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory):
    """(folders, checkpoint): tiny model folders (tests/model_fixture.py) and an SRF pretrained on them for two
    epochs, for fine-tuning tests."""
    from model_fixture import write_folders
    from models.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny_pretrained")
    folders = write_folders(root, n_warm=1500, n_cold=1200)
    result = train(TrainConfig(model_kwargs={"hidden": 16}, epochs=2, batch_size=256, num_threads=1, progress=False,
                               checkpoint_every=0), folders["pretrain"], root / "pre")
    return folders, result["checkpoint"]


@pytest.fixture(scope="session")
def raw(tmp_path_factory) -> dict:
    """The tiny synthetic data validated: clean raw tables as DataFrames (tests/quality_frames.py shapes marts)."""
    import pyarrow.parquet as pq

    from unisr_data.contract import TABLES, table_path
    from unisr_data.synthetic import SyntheticConfig, generate
    from unisr_data.validation import validate

    base = tmp_path_factory.mktemp("quality")
    generate(SyntheticConfig.tiny(), base / "landing")
    validate(base / "landing", base / "raw", base / "quarantine")
    return {t: pq.read_table(table_path(base / "raw", t)).to_pandas() for t in TABLES}
