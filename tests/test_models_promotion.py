"""Champion / challenger: keep the champion unless a challenger is significantly better on validation."""
from __future__ import annotations

import numpy as np
import pytest

from models.bootstrap import PageViewBootstrap
from models.promotion import champion_challenger


@pytest.fixture
def validation():
    rng = np.random.default_rng(0)
    pv = np.repeat(np.arange(800), 5)
    y = rng.random(len(pv)) < 0.25
    signal = rng.normal(size=len(pv)) + 1.0 * y
    return PageViewBootstrap(pv, n_boot=300, seed=1), y, signal, rng


def test_no_champion_promotes_the_best_challenger(validation):
    boot, y, signal, rng = validation
    challengers = {"a-1": boot.auc(y, signal), "b-1": boot.auc(y, signal + rng.normal(0, 2, len(y)))}
    decision = champion_challenger(challengers, None, None)
    assert decision.promote and decision.serving == "a-1" and decision.challenger == "a-1"
    assert "no champion" in " ".join(decision.reasons)


def test_worse_or_not_significantly_better_challenger_keeps_the_champion(validation):
    boot, y, signal, rng = validation
    champion = boot.auc(y, signal)
    worse = {"new": boot.auc(y, signal + rng.normal(0, 1.5, len(y)))}
    decision = champion_challenger(worse, "old", champion)
    assert not decision.promote and decision.serving == "old"
    same = {"new": boot.auc(y, signal + rng.normal(0, 0.02, len(y)))}
    decision = champion_challenger(same, "old", champion)
    assert not decision.promote and decision.serving == "old"
    assert decision.difference["lo"] <= 0 <= decision.difference["hi"]
    assert "keeps serving" in decision.reasons[-1]


def test_significantly_better_challenger_replaces_the_champion(validation):
    boot, y, signal, rng = validation
    champion = boot.auc(y, signal + rng.normal(0, 1.5, len(y)))
    decision = champion_challenger({"new": boot.auc(y, signal)}, "old", champion)
    assert decision.promote and decision.serving == "new"
    assert decision.difference["lo"] > 0
    # a tolerance above the whole interval keeps the champion even so
    kept = champion_challenger({"new": boot.auc(y, signal)}, "old", champion, tolerance=1.0)
    assert not kept.promote and kept.serving == "old"
