"""Crash safety: a `kill -9` mid-training resumes from last.pt on the re-run, the same work always gets the same run
folder, old run folders are collected, a killed run_all's runs are marked FAILURE, and no child outlives a killed
parent (dbt through its wrapper, torchrun and its workers, anything started with popen_tied)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from dagster import (
    AssetExecutionContext,
    Config,
    DagsterInstance,
    DagsterRunStatus,
    MaterializeResult,
    asset,
    materialize,
)

from model_fixture import write_folders
from models import checkpoint as ckpt_io
from models.model_registry import ModelRegistry
from models.run_folders import WORK_FILE, collect_garbage, hold, registry_references, release, work_folder
from orchestration.assets.training import run_dir
from orchestration.dead_runs import fail_dead_runs
from orchestration.resources import TrainerResource, UnisrSettings
from unisr_data.child_processes import supported, write_exec_wrapper
from unisr_data.paths import REPO_ROOT

linux_only = pytest.mark.skipif(not supported(), reason="PR_SET_PDEATHSIG is Linux-only")
DEADLINE_S = 60.0


def _wait_for(predicate, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"process exited ({proc.returncode}) before {what}: {output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ------------------------------------------------------------------------------------------ resume after kill -9

def test_training_killed_with_sigkill_resumes_from_last_pt(tmp_path):
    folders = write_folders(tmp_path / "data", n_warm=300, n_cold=150)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "models.train", "--data", str(folders["pretrain"]), "--out", str(out),
           "--model", "dnn",
           "--epochs", "1000", "--patience", "0", "--batch-size", "32", "--checkpoint-every", "1",
           "--checkpoint-seconds", "0", "--device", "cpu", "--num-threads", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for((out / "last.pt").exists, "last.pt", proc)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = ckpt_io.load(out / "last.pt")["state"]["step"]
    assert killed_at >= 1

    rerun = subprocess.run(cmd + ["--max-steps", str(killed_at + 3)], cwd=REPO_ROOT, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resumed from {out / 'last.pt'}" in rerun.stderr and f"step {killed_at}" in rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["step"] == killed_at + 3  # continued, not restarted


class KnobConfig(Config):
    value: int = 0


@asset
def some_model(context: AssetExecutionContext, config: KnobConfig, settings: UnisrSettings,
               trainer: TrainerResource) -> MaterializeResult:
    """A training asset's use of run_dir, without the training."""
    return MaterializeResult(metadata={"out": str(run_dir(context, settings, "model"))})


def test_the_same_work_gets_the_same_run_folder_across_dagster_runs(tmp_path):
    settings = UnisrSettings(var_dir=str(tmp_path / "var"))
    training = settings.paths.training_dir / "coldstart"
    training.mkdir(parents=True)
    (training / "train.parquet").write_bytes(b"rows v1")
    instance = DagsterInstance.ephemeral()

    def out_dir(value: int = 0, trainer: TrainerResource | None = None) -> Path:
        trainer = trainer or TrainerResource()
        result = materialize([some_model], instance=instance, resources={"settings": settings, "trainer": trainer},
                             run_config={"ops": {"some_model": {"config": {"value": value}}}})
        mat = result.get_asset_materialization_events()[0].event_specific_data.materialization
        return Path(mat.metadata["out"].value)

    first = out_dir()
    assert first == out_dir()                                       # a re-run (new run id) finds the same last.pt
    assert first.parent.parent.name == "some_model" and (first.parent / WORK_FILE).exists()
    assert out_dir(value=1) != first                                # other asset config
    assert out_dir(trainer=TrainerResource(seed=1)) != first        # other trainer config
    assert out_dir(trainer=TrainerResource(run_folders_kept=5)) == first   # retention is not part of the work
    (training / "train.parquet").write_bytes(b"rows v2")
    assert out_dir() != first                                       # other data: never the old checkpoint


# ------------------------------------------------------------------------------------------------- retention

def _aged_folder(root: Path, group: str, inputs: dict, age_s: float) -> Path:
    folder = work_folder(root, group, inputs)
    (folder / "model").mkdir(exist_ok=True)
    (folder / "model" / "last.pt").write_bytes(b"x")
    when = time.time() - age_s
    os.utime(folder / WORK_FILE, (when, when))
    release(folder)  # as after the training process ended
    return folder


def test_retention_keeps_the_newest_per_asset_and_what_the_registry_needs(tmp_path):
    runs = tmp_path / "runs"
    pre = [_aged_folder(runs, "pretrained_model", {"n": i}, age_s=1000 - i) for i in range(5)]  # pre[4] newest
    cold = [_aged_folder(runs, "coldstart_model", {"n": i}, age_s=500 - i) for i in range(2)]
    legacy = []                                                # the old layout: runs/<Dagster run id>/<model>
    for i, run_id in enumerate(["3a1ec023-7855-43fd-8e18-e167bc73fb67", "454209fe-b0f6-4a10-bdb4-22c456084220",
                                "5b2c1f00-0000-4000-8000-000000000000"]):
        (runs / run_id / "pretrained_srf").mkdir(parents=True)
        (runs / run_id / "pretrained_srf" / "checkpoint.pt").write_bytes(b"x")
        os.utime(runs / run_id / "pretrained_srf" / "checkpoint.pt", (time.time() - 5000 + i,) * 2)
        legacy.append(runs / run_id)

    registry = ModelRegistry(tmp_path / "registry")
    checkpoint = pre[0] / "model" / "checkpoint.pt"
    checkpoint.write_bytes(b"a checkpoint")
    version = registry.register(checkpoint, name="srf", config={"pretrained": str(checkpoint)})
    registry.promote(version.version, ["test"])
    assert Path(registry_references(registry.root)[-1]) == checkpoint

    removed = collect_garbage(runs, keep=2, protected=registry_references(registry.root))
    assert sorted(removed) == sorted([pre[1], pre[2], legacy[0]])
    assert all(p.exists() for p in (pre[0], pre[3], pre[4], *cold, *legacy[1:]))   # pre[0]: the promoted lineage
    with pytest.raises(ValueError, match="keep"):
        collect_garbage(runs, keep=0)


def test_retention_never_deletes_a_folder_another_process_is_training_in(tmp_path):
    runs = tmp_path / "runs"
    busy = _aged_folder(runs, "baseline_mmoe", {"n": 0}, age_s=100)
    newer = [_aged_folder(runs, "baseline_mmoe", {"n": i}, age_s=10 - i) for i in (1, 2)]
    from models.run_folders import FolderInUseError

    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from models.run_folders import hold
        hold({str(busy)!r}); print("held", flush=True); time.sleep(60)""")],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert collect_garbage(runs, keep=1) == [newer[0]]
        assert busy.exists()
        with pytest.raises(FolderInUseError, match="in use by another process"):
            hold(busy)
    finally:
        holder.kill()
        holder.wait()
    assert collect_garbage(runs, keep=1) == [busy]


# ------------------------------------------------------------------------------------- dead runs of run_all

def test_run_all_marks_its_killed_runs_failed(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    started = tmp_path / "op_started"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import pathlib, time
        from dagster import DagsterInstance, job, op
        from orchestration.dead_runs import owner_tags

        @op
        def long_op():
            pathlib.Path({str(started)!r}).write_text("x")
            time.sleep(120)

        @job
        def long_job():
            long_op()

        long_job.execute_in_process(instance=DagsterInstance.get(), tags=owner_tags())""")],
        cwd=REPO_ROOT, env={**os.environ, "DAGSTER_HOME": str(home)})
    try:
        _wait_for(started.exists, "the op to start", child)
    finally:
        child.kill()
        child.wait()

    with DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert run.status == DagsterRunStatus.STARTED          # what a kill -9 leaves behind
        lines = fail_dead_runs(instance)
        assert len(lines) == 1 and run.run_id in lines[0] and "marked FAILURE" in lines[0]
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        assert fail_dead_runs(instance) == []


def test_runs_of_a_live_run_all_are_left_alone(tmp_path):
    from dagster import job, op

    from orchestration.dead_runs import owner_tags

    @op
    def noop():
        pass

    @job
    def tiny_job():
        noop()

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        run = instance.create_run_for_job(tiny_job, tags=owner_tags(), status=DagsterRunStatus.STARTED)
        assert fail_dead_runs(instance) == []
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTED


# ----------------------------------------------------------------------------------------- no child outlives

def _run_parent(tmp_path: Path, script: str, *argv: str) -> subprocess.Popen:
    path = tmp_path / "parent.py"
    path.write_text(script)
    return subprocess.Popen([sys.executable, str(path), *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)


def _kill_parent_and_assert_no_descendant_survives(parent: subprocess.Popen, expected_descendants: int,
                                                   first_child_runs: str | None = None) -> None:
    """`first_child_runs`: the program the first child becomes once its wrapper is done (a wrapper reads its parent's
    pid when it starts: a parent killed before that is a race no wrapper can see, so the kill waits for it)."""
    first_child = int(parent.stdout.readline())
    ancestor = psutil.Process(parent.pid)
    _wait_for(lambda: len(ancestor.children(recursive=True)) >= expected_descendants, "the children to start")
    if first_child_runs is not None:
        _wait_for(lambda: psutil.Process(first_child).name() == first_child_runs,
                  f"the child to run {first_child_runs}")
    descendants = [p.pid for p in ancestor.children(recursive=True)]
    assert first_child in descendants
    parent.kill()
    parent.wait()
    _wait_for(lambda: all(_gone(pid) for pid in descendants), f"children {descendants} of the killed parent to die")


@linux_only
def test_a_child_started_with_popen_tied_dies_with_its_killed_parent(tmp_path):
    script = textwrap.dedent("""
        import time
        from unisr_data.child_processes import popen_tied
        print(popen_tied(["sleep", "120"]).pid, flush=True)
        time.sleep(120)""")
    _kill_parent_and_assert_no_descendant_survives(_run_parent(tmp_path, script), 1)


@linux_only
def test_the_dbt_wrapper_runs_dbt_and_ties_it_to_the_parent(tmp_path):
    from dagster_dbt import DbtCliResource

    from orchestration.assets.warehouse import dbt_project, tied_dbt
    from unisr_data.paths import Paths

    dbt = DbtCliResource(project_dir=dbt_project, dbt_executable=str(Path(sys.executable).parent / "dbt"))
    tied = tied_dbt(dbt, Paths(tmp_path / "var", "synthetic"))
    assert Path(tied.dbt_executable).parent == tmp_path / "var" / "bin"
    version = subprocess.run([tied.dbt_executable, "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and "duckdb" in version.stdout      # the real dbt runs through the wrapper

    # the same wrapper around a long command, started with a plain Popen as dagster-dbt does
    wrapper = write_exec_wrapper(tmp_path / "bin" / "sleeper", "sleep")
    script = textwrap.dedent(f"""
        import subprocess, time
        print(subprocess.Popen([{str(wrapper)!r}, "120"]).pid, flush=True)
        time.sleep(120)""")
    _kill_parent_and_assert_no_descendant_survives(_run_parent(tmp_path, script), 1, first_child_runs="sleep")


@linux_only
def test_torchrun_and_its_workers_die_with_their_killed_parent(tmp_path):
    # the command orchestration.training_launch._torchrun builds, with a worker module that just sleeps
    script = textwrap.dedent("""
        import signal, subprocess, sys, time
        from unisr_data.child_processes import popen_tied
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "unisr_data.child_processes", "run-module", "timeit", "-n", "1", "-r", "1",
               "import time; time.sleep(120)"]
        print(popen_tied(cmd, signal.SIGTERM, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid, flush=True)
        time.sleep(120)""")
    _kill_parent_and_assert_no_descendant_survives(_run_parent(tmp_path, script), 3)  # torchrun + 2 workers


@linux_only
def test_tokenizer_pool_workers_die_with_their_killed_parent(tmp_path):
    # the text encoder's spawn pool (used on GPU hosts): a worker blocked on its queue would wait forever
    script = textwrap.dedent("""
        import multiprocessing, os, time
        from concurrent.futures import ProcessPoolExecutor
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from embeddings.tokenization import init_worker

        if __name__ == "__main__":
            tokenizer = Tokenizer(WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).to_str()
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker,
                                       initargs=(tokenizer, 8))
            print(pool.submit(os.getpid).result(), flush=True)
            time.sleep(120)""")
    _kill_parent_and_assert_no_descendant_survives(_run_parent(tmp_path, script), 1)
