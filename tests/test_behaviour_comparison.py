"""reporting.behaviour_comparison: every model trained with and without behaviour, compared on the same test rows."""
from __future__ import annotations

import logging

import pytest

from model_fixture import DirectTrainer, write_folders
from reporting.behaviour_comparison import compare_pairs, label, pairs_table, train_pairs


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    folders = write_folders(root / "data", n_warm=600, n_cold=2000, behaviour=6)
    checkpoints = train_pairs(DirectTrainer(), root / "data", lambda name: root / "runs" / name,
                              logging.getLogger("test"), ("srf", "dnn"), freeze="none", epochs=4)
    return folders, checkpoints


def test_every_model_is_trained_with_and_without_behaviour(pairs):
    _, checkpoints = pairs
    assert set(checkpoints) == {label(m, b) for m in ("srf", "dnn") for b in (True, False)}
    assert all(path.exists() for path in checkpoints.values())


def test_paired_table_shows_the_gain_of_behaviour_on_a_history_signal(pairs):
    folders, checkpoints = pairs
    comparison = compare_pairs(checkpoints, folders["coldstart"], None, n_boot=200)
    table = pairs_table(comparison, ("srf", "dnn"))
    assert list(table["model"]) == ["srf", "dnn"]
    for model in ("srf", "dnn"):
        a, b = comparison.auc(label(model, True)), comparison.auc(label(model, False))
        diff = comparison.difference(label(model, True), label(model, False))
        assert diff.value == pytest.approx(a.value - b.value) and diff.lo <= diff.value <= diff.hi
    # the fixture's clicks follow the history's text profile: the pretrained SRF gains from reading it
    assert comparison.difference(label("srf", True), label("srf", False)).value > 0.005
    assert set(table.columns) >= {"AUC with behaviour", "AUC without behaviour", "with − without", "significant"}
