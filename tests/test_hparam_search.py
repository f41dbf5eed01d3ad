"""Equal-budget hyper-parameter search: the Dagster asset on tiny folders (2 trials per model), resume of a study."""
import json

import pandas as pd
import pytest
from dagster import DagsterInstance, materialize

from model_fixture import write_folders
from models.hparam_search import CODE_DEFAULTS, MODELS, SEARCH_SPACE, SearchConfig, adoption, current_point, search
from models.tuned_defaults import tuned_params
from orchestration.assets.hparam_search import equal_budget_hparam_search
from orchestration.resources import TrainerResource, UnisrSettings


def test_hparam_search_asset_gives_every_model_the_same_trials(tmp_path):
    settings = UnisrSettings(var_dir=str(tmp_path / "var"))
    write_folders(settings.paths.training_dir, n_warm=600, n_cold=400)
    trainer = TrainerResource(device="cpu", num_threads=1)
    search = {"trials_per_model": 2, "epochs": 1, "finetune_epochs": 1}
    result = materialize([equal_budget_hparam_search], instance=DagsterInstance.ephemeral(),
                         resources={"settings": settings, "trainer": trainer},
                         run_config={"ops": {"equal_budget_hparam_search": {"config": search}}})
    assert result.success
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    out = settings.paths.reports_dir / "hparam_search"
    trials = pd.read_csv(out / "hparam_search.csv")
    assert meta["csv"].value == str(out / "hparam_search.csv") and (out / "hparam_search.md").exists()
    assert trials.groupby("model").size().to_dict() == {m: 2 for m in MODELS}        # equal budget
    assert trials.groupby("model")["best"].sum().to_dict() == {m: 1 for m in MODELS}
    assert trials["coldstart_valid_auc"].between(0, 1).all()
    assert (trials["value"] == trials["coldstart_valid_auc"]).all()
    # the same sampler seed: after each model's own default (trial 0) every model is tried at the same points
    searched = trials[trials["trial"] > 0]
    points = searched.sort_values(["model", "trial"]).groupby("model")[list(SEARCH_SPACE)].apply(
        lambda f: json.dumps(f.to_numpy().tolist()))
    assert points.nunique() == 1
    assert set(meta["best_per_model"].value) == set(MODELS) and meta["trials"].value == 10
    assert "# Hyper-parameter search" in meta["report"].value
    # trial 0 of every model is the point the pipeline trains today (code defaults + adopted tuned defaults)
    first = trials[trials["trial"] == 0].set_index("model")
    assert first["current_default"].all() and not trials[trials["trial"] > 0]["current_default"].any()
    for model in MODELS:
        assert current_point(model) == {**CODE_DEFAULTS, **tuned_params(model)}
        assert all(first.loc[model, k] == pytest.approx(v) for k, v in current_point(model).items())
    # the proposed defaults, in the format the pipeline reads: the best point where the adoption rule accepts it,
    # else the current adopted point
    proposed = out / "tuned_defaults.json"
    assert meta["proposed_defaults"].value == str(proposed)
    best = trials[trials["best"]].set_index("model")
    decisions = json.loads(proposed.read_text())["source"]["decisions"]
    assert set(decisions) == set(MODELS) and "## Adoption" in meta["report"].value
    for model in MODELS:
        params = tuned_params(model, proposed)
        if decisions[model]["adopt"]:
            assert params["hidden"] == best.loc[model, "hidden"]
            assert params["lr"] == pytest.approx(best.loc[model, "lr"], rel=1e-3)      # rounded to 4 digits
        else:
            assert params == tuned_params(model)


def _trial(model, trial, value, pretrain, current=False):
    return {"model": model, "trial": trial, "value": value, "pretrain_valid_auc": pretrain,
            "current_default": current}


def test_adoption_needs_a_gain_above_noise_that_does_not_cost_the_pretrain_domains():
    trials = pd.DataFrame([
        _trial("noise", 0, 0.830, 0.82, True), _trial("noise", 1, 0.834, 0.82),           # +0.004: noise
        _trial("costly", 0, 0.830, 0.82, True), _trial("costly", 1, 0.840, 0.81),        # pretrain -0.01
        _trial("better", 0, 0.830, 0.82, True), _trial("better", 1, 0.840, 0.819),       # +0.01, pretrain -0.001
        _trial("kept", 0, 0.850, 0.82, True), _trial("kept", 1, 0.840, 0.83),            # the default is best
    ])
    decisions = adoption(trials)
    assert {m: d["adopt"] for m, d in decisions.items()} == {"noise": False, "costly": False, "better": True,
                                                              "kept": False}
    assert "noise" in decisions["noise"]["why"] and "pretrain" in decisions["costly"]["why"]
    assert decisions["better"]["best_trial"] == 1 and decisions["better"]["best"] == 0.84


def test_rerun_resumes_the_study_and_extends_it(tmp_path):
    folders = write_folders(tmp_path / "data", n_warm=600, n_cold=400)
    cfg = SearchConfig(trials=2, epochs=1, objective="pretrain", models=("shared_bottom",), device="cpu",
                       num_threads=1, model_kwargs={"use_behaviour": False})
    first = search(folders["pretrain"], None, tmp_path / "out", cfg)
    again = search(folders["pretrain"], None, tmp_path / "out", cfg)            # finished: nothing re-trained
    pd.testing.assert_frame_equal(first, again)
    more = search(folders["pretrain"], None, tmp_path / "out", SearchConfig(**{**cfg.__dict__, "trials": 3}))
    assert len(more) == 3 and more["lr"].nunique() == 3                        # new points, not the first ones again
    assert (more["value"] == more["pretrain_valid_auc"]).all()
    with pytest.raises(ValueError, match="another budget"):
        search(folders["pretrain"], None, tmp_path / "out", SearchConfig(**{**cfg.__dict__, "epochs": 2}))
