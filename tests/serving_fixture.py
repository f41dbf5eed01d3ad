"""A served world for serving tests: a tiny materialized Feast store, a training folder built through Feast, two
1-epoch checkpoints (the first registered and promoted). Built once per session (`served_world` in conftest.py);
tests that promote or corrupt something restore it or work on copies."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from feature_fixture import write_feature_fixture
from features.store import apply, feature_store, materialize
from features.training_set import build_training_folder
from models.model_registry import ModelRegistry
from models.train import TrainConfig, train
from unisr_data.paths import Paths

EMB_DIM = 384  # the real query encoder's width, so unseen query texts go through all-MiniLM-L6-v2
QUERY_TEXTS = {"q:0": "red running shoes", "q:1": "cheap flights to lisbon", "q:2": "banana bread recipe"}


@dataclass
class ServedWorld:
    """A materialized store and a promoted checkpoint under `paths`, plus a second checkpoint to promote later."""

    paths: Paths
    items: list[str]
    users: list[str]
    checkpoint: Path
    second_checkpoint: Path


def build_world(root: Path) -> ServedWorld:
    """Feature fixture -> Feast apply/materialize -> training folder -> two tiny checkpoints, the first promoted."""
    paths = Paths(root, "fx")
    fx = write_feature_fixture(paths, n_users=10, n_items=120, n_queries=3, n_days=3, n_samples=300, emb_dim=EMB_DIM)
    pd.DataFrame({"query_id": list(QUERY_TEXTS), "text": list(QUERY_TEXTS.values())}).to_parquet(
        paths.raw_dir / "queries.parquet")
    store = feature_store(paths)
    apply(store, paths)
    materialize(store, end=fx.end)
    folder = paths.training_dir / "pretrain"
    build_training_folder(store, paths, "pretrain", folder)
    checkpoints = []
    for seed in (0, 1):
        cfg = TrainConfig(epochs=1, batch_size=64, seed=seed, device="cpu", progress=False, min_count=1)
        checkpoints.append(Path(train(cfg, folder, root / f"model{seed}")["checkpoint"]))
    registry = ModelRegistry(paths.models_dir / "registry")
    first = registry.register(checkpoints[0], name="srf")
    registry.promote(first.version, ["test fixture"])
    return ServedWorld(paths, fx.items, fx.users, Path(first.checkpoint), checkpoints[1])
