"""One evaluation of trained candidates: CIs everywhere, references and ceiling, selection on validation only,
champion / challenger across two evaluations, and the report a person reads."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model_fixture import write_folders
from models.model_registry import ModelRegistry
from models.train import TrainConfig, train
from reporting.comparison import CEILING
from reporting.evaluation import Candidate, evaluate_candidates
from reporting.report_files import write_report


def _cfg(model: str, **kw) -> TrainConfig:
    return TrainConfig(model=model, model_kwargs={"hidden": 16}, epochs=1, batch_size=256, num_threads=1,
                       progress=False, checkpoint_every=0, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    folders = write_folders(root, n_warm=600, n_cold=900)
    pre = train(_cfg("srf"), folders["pretrain"], root / "pre")["checkpoint"]
    srf = train(_cfg("srf"), folders["coldstart"], root / "srf")["checkpoint"]
    dnn = train(_cfg("dnn", seed=3), folders["coldstart"], root / "dnn")["checkpoint"]
    registry = ModelRegistry(root / "registry")
    versions = {name: registry.register(ckpt, name=name, config={"run_checkpoint": str(ckpt)})
                for name, ckpt in (("srf", srf), ("dnn", dnn))}
    candidates = [Candidate("srf (ours)", versions["srf"].version, srf, pre),
                  Candidate("dnn", versions["dnn"].version, dnn)]
    return root, folders, registry, candidates


def _truth(root, folders):
    """A truth table in the generator's layout: the fixture's own click probabilities stand-in (label + noise)."""
    test = pd.read_parquet(folders["coldstart"] / "test.parquet")
    rng = np.random.default_rng(0)
    prob = np.clip(0.2 + 0.6 * test["label"].to_numpy() + rng.normal(0, 0.1, len(test)), 0, 1)
    out = root / "_truth" / "click_probability"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"impression_id": test["impression_id"], "click_probability": prob.astype("float32")}),
                   out / "part-00000.parquet")
    return root / "_truth"


def test_first_evaluation_promotes_the_best_by_validation_with_cis(trained, tmp_path):
    root, folders, registry, candidates = trained
    result = evaluate_candidates(candidates, None, folders["coldstart"], folders["pretrain"], _truth(root, folders),
                                 "srf (ours)", n_boot=200)
    valid_best = max(candidates, key=lambda c: result.valid.auc(c.label).value)
    assert result.decision.promote and result.decision.serving == valid_best.version
    for entry in ("srf (ours)", "dnn", "ref: popularity", "ref: item age", "ref: category click rate", CEILING):
        est = result.test.auc(entry)
        assert est.lo <= est.value <= est.hi
    for entry in ("srf (ours)", "dnn", CEILING):     # (the fixture has no popularity or age: those refs are 0.5)
        assert result.test.auc(entry).hi - result.test.auc(entry).lo > 0
    assert result.test.lift_share("srf (ours)").value < 1.0
    assert CEILING not in result.valid.estimates            # the ceiling is only reported on test
    table = result.test.table(versus=result.best_baseline)
    assert {"AUC", "GAUC", "PVCTR@1", "share of achievable lift", "Δ AUC vs dnn"} <= set(table.columns)
    assert table["AUC"].str.match(r"[01]\.\d{4} \[[01]\.\d{4}, [01]\.\d{4}\]").all()
    assert result.pretrain is not None and result.pretrain.domain_auc["srf (ours)"]
    files = write_report(result, registry, tmp_path / "report", "t", {"code": "x"})
    md = files["md"].read_text()
    assert "Which model serves, and why" in md and "resamples page views" in md and "Bayes ceiling" in md
    assert files["html"].read_text().count("data:image/png;base64,") >= 2


def test_second_evaluation_keeps_a_champion_that_is_not_beaten(trained):
    root, folders, registry, candidates = trained
    first = evaluate_candidates(candidates, None, folders["coldstart"], None, None, "srf (ours)", n_boot=200)
    served = registry.get(first.decision.serving)
    champion = Candidate(served.name, served.version, served.checkpoint)
    # the same models again as new versions: not significantly better than themselves, so the champion stays
    again = [Candidate(c.label, c.version + "-retrained", c.checkpoint, c.pretrained) for c in candidates]
    second = evaluate_candidates(again, champion, folders["coldstart"], None, None, "srf (ours)", n_boot=200)
    assert not second.decision.promote and second.decision.serving == champion.version
    assert second.decision.difference["lo"] <= 0.0
    assert any("no Bayes ceiling" in n for n in second.notes)
