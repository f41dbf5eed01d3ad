"""The evaluation report renders tables, decisions and plots (with CI error bars) a person can read."""
import pandas as pd

from reporting.evaluation_report import write_evaluation_report
from reporting.plots import auc_by_model_and_domain, gating_weights_by_domain, training_curves


def test_report_has_tables_decision_plots_and_notes(tmp_path):
    coldstart = pd.DataFrame({"model": ["srf", "mmoe"], "AUC": ["0.7100 [0.7000, 0.7200]", "0.6500 [0.6400, 0.6600]"]})
    results = pd.DataFrame({"model": ["srf", "mmoe", "srf"], "domain": ["a", "a", "b"], "auc": [0.7, 0.6, 0.8],
                            "lo": [0.68, 0.58, 0.77], "hi": [0.72, 0.62, 0.83]})
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
        tmp_path / "report", title="t", ours="srf", sections=[("Cold-start test", coldstart, "reported only")],
        plots=plots, decision={"serving": "mmoe-1", "promote": False, "reasons": ["champion keeps serving"]},
        lineage={"dbt manifest": "abc"},
    )
    md = out["md"].read_text()
    assert "0.7100 [0.7000, 0.7200]" in md and "offline proxy" in md and "champion keeps serving" in md
    assert "Serving: **mmoe-1** (kept)" in md and "validation split only" in md
    page = out["html"].read_text()
    assert page.count("data:image/png;base64,") == 3 and "class=\"ours\"" in page
