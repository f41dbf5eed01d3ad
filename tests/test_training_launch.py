"""The pipeline's training launcher (orchestration/training_launch.py) fine-tunes through models.finetune: one loop
over freeze levels, the same result shape the training and ablation assets read."""
from __future__ import annotations

import logging

import pytest

from models.finetune import AUTO_FREEZE_LEVELS, level_dir
from orchestration.resources import TrainerResource


def test_trainer_finetune_auto_returns_every_level_and_the_best(tiny_pretrained, tmp_path):
    folders, pre = tiny_pretrained
    trainer = TrainerResource(device="cpu", finetune_epochs=1, finetune_batch_size=256, num_threads=1)
    result = trainer.finetune(logging.getLogger("test.launch"), folders["coldstart"], pre, tmp_path, "auto")
    assert set(result["levels"]) == set(AUTO_FREEZE_LEVELS)
    aucs = {level: r["metrics"]["auc"] for level, r in result["levels"].items()}
    assert result["freeze"] == max(aucs, key=aucs.get)
    assert result["checkpoint"] == level_dir(tmp_path, result["freeze"]) / "checkpoint.pt"
    assert {result["metrics"][f"valid_auc_freeze_{level}"] for level in AUTO_FREEZE_LEVELS} == set(aucs.values())
    assert result["metrics"]["auc"] == aucs[result["freeze"]] and result["metrics"]["curve"]


def test_trainer_finetune_one_level_writes_into_out(tiny_pretrained, tmp_path):
    folders, pre = tiny_pretrained
    trainer = TrainerResource(device="cpu", finetune_epochs=1, finetune_batch_size=256, num_threads=1)
    result = trainer.finetune(logging.getLogger("test.launch"), folders["coldstart"], pre, tmp_path, "L0+L1")
    assert result["freeze"] == "L0+L1" and result["checkpoint"] == tmp_path / "checkpoint.pt"
    assert list(result["levels"]) == ["L0+L1"]
    with pytest.raises(ValueError, match="freeze='L7'"):
        trainer.finetune(logging.getLogger("test.launch"), folders["coldstart"], pre, tmp_path / "bad", "L7")
