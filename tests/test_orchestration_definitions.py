"""The Dagster code location loads, groups read as the pipeline, jobs are selections with a schedule each, and
orchestration/ has no import cycle."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from dagster import AssetKey, RunRequest, SkipReason, build_schedule_context, instance_for_test

from orchestration.assets.ingest import impression_days
from orchestration.assets.training import BASELINE_KEYS
from orchestration.definitions import defs
from orchestration.schedules import daily_finetune, weekly_full_retrain


def test_definitions_load_with_lineage_from_raw_to_report():
    defs.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    for expected in ("source_data", "landing_data", "raw/impressions", "samples_pretrain", "mart_exports",
                     "text_embeddings", "feast_registry", "online_features", "training_sets",
                     "pretrained_model", "coldstart_model", "evaluation_report", "promoted_model"):
        assert expected in keys
    # lineage: the report depends (transitively) on the raw impressions and the dbt marts
    upstream = graph.get(AssetKey("evaluation_report")).parent_keys
    assert AssetKey("coldstart_model") in upstream
    assert AssetKey(["raw", "impressions"]) in graph.get(AssetKey("stg_impressions")).parent_keys


def test_finetune_job_is_the_pipeline_less_pretraining_and_baselines():
    finetune = {k.to_user_string() for k in defs.resolve_job_def("finetune").asset_layer.selected_asset_keys}
    full = {k.to_user_string() for k in defs.resolve_job_def("full_retrain").asset_layer.selected_asset_keys}
    pipeline = {k.to_user_string() for k in defs.resolve_job_def("pipeline").asset_layer.selected_asset_keys}
    skipped = {"pretrained_model", *(k.to_user_string() for k in BASELINE_KEYS)}
    assert full == pipeline and "source_data" not in full and "ablation_study" not in full
    assert finetune == full - skipped
    assert {"landing_data", "training_sets", "coldstart_model", "evaluation_report", "promoted_model"} <= finetune
    for name in ("finetune", "full_retrain"):
        assert defs.resolve_job_def(name).partitions_def == impression_days


def test_the_daily_job_trains_only_after_the_new_days_data():
    """Within each job the day's landing is the only root: nothing (the cold-start fine-tune above all, whose
    pretrained parent the daily job leaves out) starts before the new day's training sets exist."""
    graph = defs.resolve_asset_graph()
    for name in ("finetune", "full_retrain", "pipeline"):
        selected = defs.resolve_job_def(name).asset_layer.selected_asset_keys
        roots = {k.to_user_string() for k in selected if not graph.get(k).parent_keys & selected}
        assert roots == {"landing_data"}, (name, roots)


def test_each_schedule_requests_yesterdays_partition_of_its_job():
    tuesday = datetime(2026, 3, 3, 3, 0, tzinfo=timezone.utc)  # ingests Monday 2026-03-02
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(impression_days.name, ["2026-03-02", "2026-03-03"])
        with build_schedule_context(instance=instance, scheduled_execution_time=tuesday) as context:
            daily = daily_finetune(context)
        with build_schedule_context(instance=instance, scheduled_execution_time=tuesday) as context:
            weekly = weekly_full_retrain(context)
    assert isinstance(daily, RunRequest) and isinstance(weekly, RunRequest)
    assert daily.partition_key == weekly.partition_key == "2026-03-02"
    assert daily.tags["unisr/retrain"] == "finetune" and weekly.tags["unisr/retrain"] == "full"
    assert daily.run_key != weekly.run_key
    # the daily run refreshes the serving champion on the last week; the weekly one fine-tunes the new pretraining
    assert daily.run_config["ops"]["coldstart_model"]["config"] == {"start_from": "champion", "window_days": 7}
    assert "ops" not in (weekly.run_config or {})
    assert daily_finetune.job_name == "finetune" and weekly_full_retrain.job_name == "full_retrain"
    assert daily_finetune.cron_schedule == "0 3 * * *" and weekly_full_retrain.cron_schedule == "0 4 * * 0"


def test_schedules_skip_days_without_data():
    later = datetime(2026, 4, 1, 3, tzinfo=timezone.utc)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(impression_days.name, ["2026-03-07"])
        for tick in (daily_finetune, weekly_full_retrain):
            with build_schedule_context(instance=instance, scheduled_execution_time=later) as context:
                skipped = tick(context)
            assert isinstance(skipped, SkipReason) and "2026-03-31" in skipped.skip_message



def test_schedules_request_the_month_of_a_monthly_source():
    """A long-span source is partitioned by month: the tick for 2026-03-02 runs the partition 2026-03."""
    tuesday = datetime(2026, 3, 3, 3, 0, tzinfo=timezone.utc)
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(impression_days.name, ["2026-02", "2026-03"])
        with build_schedule_context(instance=instance, scheduled_execution_time=tuesday) as context:
            daily = daily_finetune(context)
    assert isinstance(daily, RunRequest) and daily.partition_key == "2026-03"


ORCHESTRATION = Path(__file__).resolve().parents[1] / "orchestration"
#: Entry points: the only modules that may import the Definitions.
ENTRY_POINTS = {"orchestration.definitions", "orchestration.run_all"}


def _orchestration_modules() -> list[str]:
    root = ORCHESTRATION.parent
    names = [".".join(p.relative_to(root).with_suffix("").parts) for p in sorted(ORCHESTRATION.rglob("*.py"))]
    return [n.removesuffix(".__init__") for n in names]


def _imported_modules(path: Path) -> set[str]:
    """Every module an orchestration file imports, at top level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_no_orchestration_module_imports_the_definitions_except_entry_points():
    offenders = []
    for path in sorted(ORCHESTRATION.rglob("*.py")):
        module = ".".join(path.relative_to(ORCHESTRATION.parent).with_suffix("").parts)
        if module not in ENTRY_POINTS and "orchestration.definitions" in _imported_modules(path):
            offenders.append(module)
    assert not offenders, f"import orchestration.definitions only from entry points {sorted(ENTRY_POINTS)}: {offenders}"


# Imports each orchestration module alone, in a child forked from one interpreter that has loaded the third-party
# libraries but none of the project's modules (a fresh `python -c "import orchestration.X"` per module costs seconds
# of Dagster start-up each): a cycle between orchestration modules fails the import.
_IMPORT_EACH_ALONE = """
import importlib, os, sys, traceback
import dagster, dagster_dbt, pandas, pyarrow
project = ("orchestration", "models", "unisr_data", "features", "embeddings", "reporting", "serving")
assert not [m for m in sys.modules if m.split(".")[0] in project], "the parent must not import project modules"
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
print("FAILED", failed)
sys.exit(1 if failed else 0)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks one child per module")
def test_each_orchestration_module_imports_alone():
    modules = _orchestration_modules()
    assert "orchestration.schedules" in modules and "orchestration.jobs" in modules
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", _IMPORT_EACH_ALONE, *modules],
                          cwd=ORCHESTRATION.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
