"""`feature_repo/` through the Feast CLI in a subprocess, the way Feast's own test_workflow.py drives it: `feast
apply` and `feast materialize`, in a copy of the folder beside a tiny var dir,
with the unisr variables unset (the defaults) and set (feature_store.env.yaml)."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from feature_fixture import write_feature_fixture
from unisr_data.paths import Paths

FEATURE_REPO = Path(__file__).resolve().parents[1] / "feature_repo"
FEAST = str(Path(sys.executable).parent / "feast")
UNISR_VARS = ("UNISR_VAR_DIR", "UNISR_DATASET", "FEAST_FS_YAML_FILE_PATH", "FEATURE_REPO_DIR_ENV_VAR")


def _feast(args: list[str], repo: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in UNISR_VARS}
    clean.update(FEAST_USAGE="False", PROMETHEUS_MULTIPROCESS_DIR=str(repo.parent / "metrics"), **env)
    Path(clean["PROMETHEUS_MULTIPROCESS_DIR"]).mkdir(exist_ok=True)
    proc = subprocess.run([FEAST, *args], cwd=repo, env=clean, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"feast {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _copy_repo(root: Path) -> Path:
    repo = root / "feature_repo"
    shutil.copytree(FEATURE_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    return repo


def _no_literal_variables(root: Path) -> None:
    assert not [p for p in root.rglob("*") if "$" in p.name]
    assert not [p for p in FEATURE_REPO.iterdir() if "$" in p.name], "a `${...}` folder was created in feature_repo/"


def test_plain_feast_apply_uses_the_var_dir_beside_the_repo(tmp_path):
    repo = _copy_repo(tmp_path)
    fx = write_feature_fixture(Paths(tmp_path / "var", "synthetic"), n_days=3)
    applied = _feast(["apply"], repo)
    assert "item_features" in applied
    # `materialize` over the fixture's 2024 days (`materialize-incremental` would start at now - ttl)
    _feast(["materialize", "1970-01-01T00:00:00", fx.end.strftime("%Y-%m-%dT%H:%M:%S")], repo)
    feast_dir = tmp_path / "var" / "feast" / "synthetic"
    assert (feast_dir / "registry.db").stat().st_size > 0
    with sqlite3.connect(feast_dir / "online_store.db") as con:   # one table per view, a row per entity
        users = con.execute("SELECT count(DISTINCT entity_key) FROM unisr_user_features").fetchone()[0]
    assert users == len(fx.users)
    _no_literal_variables(tmp_path)


def test_env_yaml_follows_unisr_var_dir_and_dataset(tmp_path):
    repo = _copy_repo(tmp_path / "checkout")
    write_feature_fixture(Paths(tmp_path / "elsewhere", "fx"), n_days=3)
    views = _feast(["apply"], repo, FEAST_FS_YAML_FILE_PATH="feature_store.env.yaml",
                   UNISR_VAR_DIR=str(tmp_path / "elsewhere"), UNISR_DATASET="fx")
    assert "item_features" in views
    assert (tmp_path / "elsewhere" / "feast" / "fx" / "registry.db").exists()
    assert not (tmp_path / "checkout" / "var").exists()
    _no_literal_variables(tmp_path)
