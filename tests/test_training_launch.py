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


def test_pretraining_takes_the_adopted_tuned_defaults_under_explicit_keywords(tmp_path, monkeypatch):
    import json

    import models.tuned_defaults as tuned
    from model_fixture import write_folders
    from models.checkpoint import load
    from orchestration.training_launch import _budget, run_training

    file = tmp_path / "tuned_defaults.json"
    file.write_text(json.dumps({"models": {"mmoe": {"hidden": 32, "dropout": 0.0, "lr": 0.005, "batch_size": 1024,
                                                    "weight_decay": 1e-4, "embedding_weight_decay": 10.0}}}))
    before = tuned.digest()
    monkeypatch.setattr(tuned, "DEFAULTS_FILE", file)
    assert tuned.digest() != before                        # adopting new defaults changes the run folders' key
    assert tuned.tuned_params("srf") == {}                 # a model the file does not name keeps the code defaults
    folders = write_folders(tmp_path / "data", n_warm=600, n_cold=400)
    trainer = TrainerResource(device="cpu", epochs=1, num_threads=1)
    _, train_fields = tuned.split(tuned.tuned_params("mmoe"))
    # the tiny folder gives an epoch too few steps at the tuned batch: the configured one, lr moved by sqrt(2048/1024)
    budget = _budget(trainer, 0, False, "train", folders["pretrain"], train_fields)
    assert budget["batch_size"] == 2048 and budget["lr"] == pytest.approx(0.005 * 2 ** 0.5)
    assert budget["embedding_weight_decay"] == 10.0 and budget["weight_decay"] == 1e-4
    monkeypatch.setattr("orchestration.training_launch.MIN_TUNED_STEPS_PER_EPOCH", 1)
    budget = _budget(trainer, 0, False, "train", folders["pretrain"], train_fields)
    assert budget["lr"] == 0.005 and budget["batch_size"] == 1024
    assert _budget(trainer, 0, True, "train", folders["coldstart"], train_fields)["batch_size"] == 256  # small data
    result = run_training(trainer, logging.getLogger("test.launch"), "train", folders["pretrain"], tmp_path / "out",
                          model="mmoe", model_kwargs={"dropout": 0.2, "use_behaviour": False})
    config = load(result["checkpoint"])["model_config"]
    assert config["hidden"] == 32 and config["dropout"] == 0.2  # tuned width; the explicit keyword wins
    file.write_text("{\"models\": []}")
    tuned._load.cache_clear()
    with pytest.raises(ValueError, match="'models' mapping"):
        tuned.tuned_params("mmoe")
