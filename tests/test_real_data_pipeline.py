"""The whole pipeline on the real MovieLens and MIND data in ../shared/data produces the evaluation report
and ends with a model serving. Every check passes; the report (with CIs, references, and the note that real
data has no Bayes ceiling) is printed so the CI log carries the real numbers.
"""
from __future__ import annotations

from argparse import Namespace

import pytest
from dagster import instance_for_test

from orchestration.run_all import run_pipeline
from unisr_data.paths import REPO_ROOT, Paths

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "dataset, folder", [("movielens", "movielens-latest-small"), ("mind", "mind-small-subset")]
)
def test_pipeline_produces_the_report_on_real_data(dataset, folder, tmp_path):
    source = SHARED_DATA / folder
    if not source.is_dir():
        pytest.skip(f"{source} is absent: the real-data tests need ../shared/data beside the repo (CI has it)")
    # one epoch keeps CI short; README's numbers come from the default budget (`make run`-style runs)
    args = Namespace(dataset=dataset, source_path=str(source), var_dir=str(tmp_path), seed=7, tiny=False,
                     n_impressions=0, epochs=1)
    with instance_for_test() as instance:
        source_result, pipeline = run_pipeline(args, instance)
        assert source_result.success
        failed = [
            f"{e.asset_key.to_user_string()}:{e.check_name}: {e.description}"
            for e in pipeline.get_asset_check_evaluations()
            if not e.passed
        ]
        materialized = {e.asset_key.to_user_string() for e in pipeline.get_asset_materialization_events()}
    assert not failed, f"checks failed: {failed}"
    assert {"raw/impressions", "samples_pretrain", "training_sets", "coldstart_model", "evaluation_report",
            "promoted_model"} <= materialized
    report = (Paths(tmp_path, dataset).reports_dir / "latest" / "report.md").read_text()
    for model in ("srf (ours)", "shared_bottom", "mmoe", "ple", "star", "scratch_dnn", "ref: item age"):
        assert f"| {model} |" in report
    assert "no Bayes ceiling" in report
    print(f"\n===== {dataset} evaluation report =====\n{report}")
