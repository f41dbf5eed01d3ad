"""Where every stage keeps its files: the one place storage paths come from."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_var_dir() -> Path:
    """`$UNISR_VAR_DIR`, else `<repo>/var`."""
    return Path(os.environ.get("UNISR_VAR_DIR", REPO_ROOT / "var"))


@dataclass(frozen=True)
class Paths:
    """All storage locations of one pipeline instance, derived from a root folder and a dataset name."""

    root: Path
    dataset: str = "synthetic"

    @classmethod
    def default(cls, dataset: str = "synthetic") -> "Paths":
        return cls(default_var_dir(), dataset)

    @property
    def dataset_dir(self) -> Path:
        return self.root / "data" / self.dataset

    @property
    def source_dir(self) -> Path:
        """The upstream system of record in contract layout (generator/adapter output); ingest copies days from it."""
        return self.dataset_dir / "source"

    @property
    def truth_dir(self) -> Path:
        """Evaluation-only ground truth of synthetic data (true click probabilities); never a training input."""
        return self.dataset_dir / "_truth"

    @property
    def landing_dir(self) -> Path:
        return self.dataset_dir / "landing"

    @property
    def raw_dir(self) -> Path:
        return self.dataset_dir / "raw"

    @property
    def quarantine_dir(self) -> Path:
        return self.dataset_dir / "quarantine"

    @property
    def warehouse(self) -> Path:
        """The DuckDB file dbt builds into."""
        return self.root / "warehouse" / f"{self.dataset}.duckdb"

    @property
    def marts_dir(self) -> Path:
        """Parquet exports of the dbt marts (Feast's file sources read these)."""
        return self.root / "marts" / self.dataset

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings" / self.dataset

    @property
    def feast_dir(self) -> Path:
        """Feast registry and SQLite online store."""
        return self.root / "feast" / self.dataset

    @property
    def training_dir(self) -> Path:
        """Training folders (the models/ input contract), one per training set."""
        return self.root / "training" / self.dataset

    @property
    def models_dir(self) -> Path:
        """Checkpoints, metrics and the model registry."""
        return self.root / "models" / self.dataset

    @property
    def registry_dir(self) -> Path:
        """The file-based model registry (versions, cards, the promoted pointer)."""
        return self.models_dir / "registry"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports" / self.dataset
