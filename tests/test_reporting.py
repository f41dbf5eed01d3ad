"""The evaluation report renders tables, lifts and plots a person can read."""
import math

import pandas as pd
import pytest

from reporting.evaluation_report import add_lifts, relative_lift, write_evaluation_report
from reporting.plots import auc_by_model_and_domain, gating_weights_by_domain, training_curves


def test_relative_lift():
    assert relative_lift(0.6, 0.5) == pytest.approx(0.2)
    assert math.isnan(relative_lift(0.6, 0.0))


def test_report_has_tables_lifts_plots_and_gate(tmp_path):
    coldstart = pd.DataFrame(
        {"model": ["srf", "mmoe"], "auc": [0.71, 0.65], "pvctr@1": [0.30, 0.25], "pvctr@3": [0.5, 0.45]}
    )
    coldstart = add_lifts(coldstart, "srf")
    assert coldstart.loc[coldstart.model == "mmoe", "pvctr@1 lift of srf"].item() == pytest.approx(0.2)
    results = pd.DataFrame({"model": ["srf", "mmoe", "srf"], "domain": ["a", "a", "b"], "auc": [0.7, 0.6, 0.8]})
    plots = {
        "auc": auc_by_model_and_domain(results, tmp_path / "auc.png"),
        "gates": gating_weights_by_domain(
            pd.DataFrame({"id": [0.5, 0.2], "text": [0.3, 0.6], "sparse": [0.2, 0.2]}, index=["warm", "cold"]),
            tmp_path / "gates.png",
        ),
        "curves": training_curves({"srf": [{"epoch": 1, "loss": 0.6, "valid_auc": 0.7}]}, tmp_path / "c.png"),
    }
    for p in plots.values():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = write_evaluation_report(
        tmp_path / "report", title="t", ours="srf", coldstart=coldstart, plots=plots,
        decision={"promote": False, "reasons": ["AUC 0.70 < promoted 0.72 − 0.005"]}, lineage={"dbt manifest": "abc"},
    )
    md = out["md"].read_text()
    assert "+20.0%" in md and "offline proxy" in md and "< promoted" in md
    page = out["html"].read_text()
    assert page.count("data:image/png;base64,") == 3 and "class=\"ours\"" in page
