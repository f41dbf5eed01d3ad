"""Quiet runs: the terminal gets one line per finished asset, the file gets the whole Dagster log."""
from __future__ import annotations

import io

from dagster import (
    AssetCheckResult,
    Definitions,
    MaterializeResult,
    asset,
    asset_check,
    define_asset_job,
    instance_for_test,
)

from orchestration import run_logging


@asset
def upstream() -> MaterializeResult:
    return MaterializeResult(metadata={"dagster/row_count": 42})


@asset(deps=[upstream])
def downstream() -> None:
    return None


@asset_check(asset=upstream)
def upstream_is_bad() -> AssetCheckResult:
    return AssetCheckResult(passed=False, description="three rows out of range")


def test_progress_lines_and_full_log_file(tmp_path, monkeypatch):
    log_file = tmp_path / "run.log"
    monkeypatch.setenv(run_logging.ENV_RUN_LOG, str(log_file))
    terminal = io.StringIO()
    monkeypatch.setattr(run_logging, "TERMINAL", [terminal])
    defs = Definitions(assets=[upstream, downstream], asset_checks=[upstream_is_bad],
                       jobs=[define_asset_job("all")], loggers={"console": run_logging.progress_console_logger})
    with instance_for_test() as instance:
        result = defs.get_job_def("all").execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {}}}})
    assert result.success
    lines = terminal.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "upstream" in lines[0] and "rows=42" in lines[0] and lines[0].startswith("[  1 assets")
    assert "check FAILED upstream:upstream_is_bad — three rows out of range" in terminal.getvalue()
    assert any("downstream" in line and "rows=" not in line for line in lines)
    full = log_file.read_text()
    assert "STEP_SUCCESS" in full and "RUN_SUCCESS" in full and full.count("\n") > 10


@asset_check(asset=upstream, blocking=True)
def upstream_blocks() -> AssetCheckResult:
    return AssetCheckResult(passed=False, description="blocked")


def test_run_all_status_is_dagsters_run_status():
    """A run Dagster records as FAILURE (a blocking check failed) is not reported as SUCCESS by run_all."""
    from orchestration.run_all import summarize

    defs = Definitions(assets=[upstream, downstream], asset_checks=[upstream_blocks], jobs=[define_asset_job("all")])
    with instance_for_test() as instance:
        result = defs.get_job_def("all").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    lines, ok, _ = summarize([result])
    assert not ok and any("check FAILED upstream:upstream_blocks — blocked" in line for line in lines)
