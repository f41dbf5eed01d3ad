"""The whole asset graph on tiny synthetic data, run the way a user does: through the Dagster webserver.

One module-scoped run of the pipeline over every day but the last, then the daily tick (the `finetune` job the
`daily_finetune` schedule launches) for the last day (CI time matters); the tests then read what a user sees in the
UI through GraphQL, and check the data itself: row conservation, a point-in-time join, an online lookup, the report,
and that the tick validated only its day, left marts equal to a from-scratch build and joined only its day.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from unisr_data.paths import REPO_ROOT, Paths

# the module fixture runs the pipeline and the daily tick through the webserver (minutes; more on a loaded machine)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

DAGSTER_YAML = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""

ASSET_STATE = """
query {
  assetNodes {
    assetKey { path }
    isPartitioned
    assetMaterializations(limit: 1) { runId }
    assetChecksOrError {
      ... on AssetChecks { checks { name executionForLatestMaterialization { status } } }
    }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        payload = json.loads(resp.read())
    assert "errors" not in payload, payload.get("errors")
    return payload["data"]


def _wait_run(client, run_id: str, timeout: float) -> str:
    from dagster import DagsterRunStatus

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            return status.value
        time.sleep(3)
    raise TimeoutError(f"run {run_id} did not finish within {timeout}s")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Start dagster-webserver on loopback, launch `source`, `pipeline` over all days but the last, then the daily
    tick `finetune` for the last day; yield what the tests read."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from dagster_graphql import DagsterGraphQLClient

    from models.model_registry import ModelRegistry
    from orchestration.jobs import DAILY_REFRESH_RUN_CONFIG
    from unisr_data.landing import source_days

    root = tmp_path_factory.mktemp("e2e")
    home, var = root / "dagster_home", root / "var"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {**os.environ, "DAGSTER_HOME": str(home), "UNISR_VAR_DIR": str(var), "HF_HUB_OFFLINE": "1"}
    port = _free_port()
    log = open(root / "webserver.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGTERM to the group stops the code server too
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", timeout=240)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_config = {"ops": {"source_data": {"config": {"tiny": True}}}}
        source_run = client.submit_job_execution("source", run_config=run_config)
        assert _wait_run(client, source_run, timeout=300) == "SUCCESS", (root / "webserver.log").read_text()[-3000:]
        paths = Paths(var, "synthetic")
        days = source_days(paths.source_dir)
        # one epoch per model: the graph and the data are under test here, not the models (CI time)
        short = {"resources": {"trainer": {"config": {"epochs": 1, "finetune_epochs": 1}}}}
        history_run = client.submit_job_execution(
            "pipeline", run_config=short,
            tags={ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-2]},
        )
        status = _wait_run(client, history_run, timeout=1200)
        assert status == "SUCCESS", (root / "webserver.log").read_text()[-5000:]
        champion = ModelRegistry(paths.registry_dir).promoted()
        # the daily tick, as the schedule requests it: the job `finetune` for one partition, refreshing the champion
        run_id = client.submit_job_execution("finetune", run_config={**short, **DAILY_REFRESH_RUN_CONFIG},
                                             tags={"dagster/partition": days[-1]})
        status = _wait_run(client, run_id, timeout=900)
        yield {"port": port, "paths": paths, "status": status, "run_id": run_id, "log": root / "webserver.log",
               "home": home, "days": days, "champion": champion}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


def test_every_asset_materialized_and_every_check_passed(pipeline):
    nodes = _graphql(pipeline["port"], ASSET_STATE)["assetNodes"]
    assert pipeline["status"] == "SUCCESS", pipeline["log"].read_text()[-5000:]
    # the assets of the jobs outside the pipeline (ablations, seed benchmark, encoder / behaviour comparisons, search)
    outside = {"ablation_study", "seed_benchmark", "text_encoder_comparison", "with_and_without_behaviour",
               "equal_budget_hparam_search"}
    in_pipeline = [n for n in nodes if not outside & set(n["assetKey"]["path"])]
    missing = ["/".join(n["assetKey"]["path"]) for n in in_pipeline if not n["assetMaterializations"]]
    assert not missing, f"never materialized: {missing}"
    checks = [
        ("/".join(n["assetKey"]["path"]), c["name"], (c["executionForLatestMaterialization"] or {}).get("status"))
        for n in in_pipeline
        for c in (n["assetChecksOrError"] or {}).get("checks", [])
    ]
    assert len(checks) >= 20 and any(c[1] == "promotion_gate" for c in checks)
    failed = [c for c in checks if c[2] != "SUCCEEDED"]
    assert not failed, f"checks not passed: {failed}"


def test_rows_conserved_from_raw_to_samples(pipeline):
    paths: Paths = pipeline["paths"]
    raw = pq.read_table(paths.raw_dir / "impressions").num_rows
    samples = sum(
        pq.read_table(paths.marts_dir / f"{m}.parquet", columns=["impression_id"]).num_rows
        for m in ("samples_pretrain", "samples_coldstart_train", "samples_coldstart_valid", "samples_coldstart_test")
    )
    assert samples == raw > 1000


def test_point_in_time_join_matches_hand_computation(pipeline):
    """A cold-start test sample's item counts equal a recount of that item's impressions in [D−7d, D)."""
    paths: Paths = pipeline["paths"]
    test = pd.read_parquet(paths.training_dir / "coldstart" / "test.parquet")
    impressions = pd.read_parquet(paths.raw_dir / "impressions")
    sample = test[test["num_item_impr_7d"].fillna(0) > 0].iloc[0]
    day = pd.Timestamp(sample["event_timestamp"]).tz_convert("UTC").normalize()
    window = impressions[
        (impressions.item_id == sample["item_id"])
        & (impressions.event_time >= day - pd.Timedelta(days=7))
        & (impressions.event_time < day)
    ]
    assert sample["num_item_impr_7d"] == len(window)
    assert sample["num_item_clicks_7d"] == window["clicked"].sum()


def test_online_lookup_known_and_unknown(pipeline):
    from features.online import OnlineFeatureReader
    from features.store import feature_store

    paths: Paths = pipeline["paths"]
    items = pd.read_parquet(paths.marts_dir / "item_features.parquet")
    latest = items.sort_values("event_timestamp").iloc[-1]
    reader = OnlineFeatureReader(feature_store(paths))
    result = reader.read("nobody", [latest["item_id"], "no-such-item"])
    assert list(result.known_items) == [True, False]
    assert not result.known_user
    assert result.frame["num_item_impr_7d"].iloc[0] == latest["item_impr_7d"]


def test_report_and_promoted_model(pipeline):
    from models.model_registry import ModelRegistry

    paths: Paths = pipeline["paths"]
    report = (paths.reports_dir / "latest" / "report.md").read_text()
    for section in ("Which model serves, and why", "Cold-start domain — test split", "ref: item age",
                    "Bayes ceiling", "share of achievable lift", "resamples page views"):
        assert section in report, section
    registry = ModelRegistry(paths.registry_dir)
    names = sorted(v.name for v in registry.versions())
    # every candidate registered by the full run, and the tick's refreshed champion (no model pretrained daily)
    full_run = ["mmoe", "ple", "scratch_dnn", "shared_bottom", "srf", "star"]
    assert names == sorted(full_run + [pipeline["champion"].name])
    promoted = registry.promoted()       # a fresh run always ends with a model serving (champion / challenger)
    assert promoted is not None and Path(promoted.checkpoint).exists()
    # chosen by validation AUC, not test: the best, or the champion kept because the best did not beat it enough
    best = max(registry.versions(), key=lambda v: v.metrics["coldstart_valid_auc"])
    decision = _latest_metadata(pipeline, "promoted_model")
    assert promoted.version == best.version or not decision["newly_promoted"], decision["why"]


def test_readme_rank_command_works_verbatim(pipeline):
    """README's online-ranking command, pasted as is after a run, prints ranked candidates."""
    readme = (REPO_ROOT / "README.md").read_text()
    line = next(text.strip() for text in readme.splitlines() if "-m serving.cli rank " in text)
    command = line.split("#")[0].replace(".venv/bin/python", sys.executable, 1)
    env = {**os.environ, "UNISR_VAR_DIR": str(pipeline["paths"].root)}
    out = subprocess.run(command, shell=True, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    items = [c["item_id"] for c in json.loads(out.stdout)["items"]]
    assert sorted(items) == sorted(line.split("--items")[1].split()[0].split(","))


def test_truth_table_is_unreachable_from_training_and_serving(pipeline):
    """The generator's true click probabilities are written, but no training folder or Feast view has them."""
    from features.store import feature_store

    paths: Paths = pipeline["paths"]
    assert any((paths.truth_dir / "click_probability").glob("*.parquet"))
    for folder in (paths.training_dir / "pretrain", paths.training_dir / "coldstart"):
        for part in (p for p in folder.rglob("*.parquet") if p.is_file()):  # splits are folders of day parts
            assert "click_probability" not in pq.read_schema(part).names, part
    store = feature_store(paths)
    for view in store.list_feature_views():
        assert "click_probability" not in [f.name for f in view.features]
        assert "_truth" not in str(view.batch_source.path)
    for source in store.list_data_sources():
        assert "_truth" not in str(getattr(source, "path", "")), source.name
    for package in ("models", "features", "serving", "embeddings"):
        for module in (REPO_ROOT / package).rglob("*.py"):
            assert "unisr_data.truth" not in module.read_text(), f"{module} may not read the truth table"


def _latest_metadata(pipeline, key) -> dict:
    from dagster import AssetKey, DagsterInstance

    from orchestration.materializations import latest_metadata

    with DagsterInstance.from_config(str(pipeline["home"])) as instance:
        return latest_metadata(instance, AssetKey(key))


def test_the_daily_tick_validated_only_its_day(pipeline):
    assert pipeline["status"] == "SUCCESS", pipeline["log"].read_text()[-5000:]
    raw = _latest_metadata(pipeline, ["raw", "impressions"])
    assert not raw["full_validation"] and raw["validated_day_list"] == [pipeline["days"][-1]]


def test_the_daily_ticks_marts_equal_a_from_scratch_build(pipeline, tmp_path):
    import duckdb

    from unisr_data.validation import validate
    from unisr_data.warehouse import MARTS, dbt_vars, run_dbt

    paths: Paths = pipeline["paths"]
    scratch = Paths(tmp_path, "synthetic")
    validate(paths.landing_dir, scratch.raw_dir, scratch.quarantine_dir)
    assert run_dbt(["build", "--full-refresh"], scratch, vars=dbt_vars(scratch)).success
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{paths.warehouse}' AS tick (READ_ONLY)")
        con.execute(f"ATTACH '{scratch.warehouse}' AS scratch (READ_ONLY)")
        for mart in MARTS:
            only = [con.execute(f"SELECT count(*) FROM (FROM {a}.main.{mart} EXCEPT ALL FROM {b}.main.{mart})")
                    .fetchone()[0] for a, b in (("tick", "scratch"), ("scratch", "tick"))]
            rows = con.execute(f"SELECT count(*) FROM tick.main.{mart}").fetchone()[0]
            assert rows > 0 and only == [0, 0], f"{mart}: rows only in the tick's / the scratch build: {only}"


def test_the_daily_tick_joined_only_its_day_and_reports_its_wall_time(pipeline):
    training = _latest_metadata(pipeline, "training_sets")
    joined = {k: v for k, v in training.items() if k.startswith("days_joined")}
    assert joined and all(v == 1 for v in joined.values()), training
    promoted = _latest_metadata(pipeline, "promoted_model")
    assert promoted["run_wall_seconds"] > 0 and promoted["run_partitions"] == [pipeline["days"][-1]]


def test_the_daily_tick_refreshed_the_champion_on_the_last_week(pipeline):
    """The daily fine-tune continued training the version that served after the history run, whichever model it
    is, on a trailing window, and registered it under that model's name as a challenger."""
    from models.model_registry import ModelRegistry
    from orchestration.jobs import DAILY_REFRESH

    champion = pipeline["champion"]
    assert champion is not None, "the history run promoted nothing"
    cold = _latest_metadata(pipeline, "coldstart_model")
    assert cold["started_from"] == champion.version and cold["model"] == champion.name, cold
    assert cold["window_days"] == DAILY_REFRESH["window_days"]
    refreshed = ModelRegistry(pipeline["paths"].registry_dir).get(cold["version"])
    assert refreshed.config["refreshed_from"] == champion.version
    assert "coldstart_test_auc" in refreshed.metrics       # a candidate of the tick's evaluation
