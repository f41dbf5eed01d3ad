"""Versions that trace a model or report back to its code and data: git commit, dbt manifest, row counts."""
from __future__ import annotations

import subprocess
from functools import lru_cache

from models.model_registry import file_digest
from unisr_data.contract import parquet_rows
from unisr_data.paths import REPO_ROOT, Paths


@lru_cache(maxsize=1)
def code_version() -> str:
    """`<git commit>[-dirty]`, or `unknown` outside a git checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
        return commit + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def data_version(paths: Paths) -> dict:
    """The dbt manifest hash and the training folders' row counts the model was trained on."""
    from orchestration.assets.warehouse import dbt_project

    version: dict = {"dataset": paths.dataset}
    if dbt_project.manifest_path.exists():
        version["dbt_manifest_sha256"] = file_digest(dbt_project.manifest_path)[:16]
    for folder in sorted(paths.training_dir.glob("*")):
        for split in sorted(folder.glob("*.parquet")):  # a split is a parquet file or a folder of day parts
            if split.stem in ("train", "valid", "test"):
                version[f"rows_{folder.name}_{split.stem}"] = parquet_rows(split)
    return version
