"""Fine-tuned checkpoints beside the trivial references on the cold-start test split, every metric with a 95 % CI:
the shared scoring step of the behaviour comparison and the ablation study."""
from __future__ import annotations

from pathlib import Path

from models import references
from models.evaluate import score_splits
from models.training_data import TrainingFolder
from reporting.comparison import MODEL, REFERENCE, Comparison, Rows, compare
from unisr_data.truth import click_probability


def compare_checkpoints(checkpoints: dict[str, Path], coldstart_dir: Path, truth_dir: Path | None,
                        n_boot: int = 1000, seed: int = 0) -> Comparison:
    """Every checkpoint (entry -> path) and the trivial references on the test split (the ceiling where known)."""
    folder = TrainingFolder.open(coldstart_dir)
    frames = {split: folder.read(split) for split in ("train", "valid", "test")}
    scores = {name: score_splits(path, coldstart_dir, {"test": frames["test"]})["test"][0]
              for name, path in checkpoints.items()}
    scores.update(references.reference_scores(frames["train"], frames["valid"], frames["test"]))
    kinds = {**{name: MODEL for name in checkpoints}, **{name: REFERENCE for name in references.REFERENCES}}
    truth = click_probability(truth_dir, frames["test"]["impression_id"]) if truth_dir else None
    return compare("test", Rows.from_frame(frames["test"]), scores, kinds, truth=truth, n_boot=n_boot, seed=seed)
