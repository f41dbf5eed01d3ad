"""Runs whose process died (`kill -9`, OOM, power loss) are marked FAILURE instead of staying STARTED forever.

`run_all` executes its jobs in its own process (`execute_in_process`), which no Dagster daemon can watch, so it
tags each run with its host, pid and process start time (`owner_tags`) and, at start-up, fails the runs it owns
whose process no longer exists (`fail_dead_runs`). Runs launched from the UI are the daemon's: the instance's
`run_monitoring` (dagster.yaml, written by `make run`/`make ui`) times out runs stuck STARTING or CANCELING.
"""
from __future__ import annotations

import os
import socket

import psutil
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

HOST_TAG = "unisr/host"
PID_TAG = "unisr/pid"
PID_STARTED_TAG = "unisr/pid_started"
#: Statuses of a run that is not over yet.
UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
              DagsterRunStatus.CANCELING]
#: psutil's process start times agree to the clock tick; a different process reusing the pid starts later.
_START_TOLERANCE_S = 1.0


def _started(pid: int) -> float:
    return psutil.Process(pid).create_time()


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """Tags naming the process that executes a run in-process (this one by default)."""
    pid = os.getpid() if pid is None else pid
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PID_STARTED_TAG: repr(_started(pid))}


def process_alive(pid: int, started: float) -> bool:
    """Whether process `pid` exists and is the one that started at `started` (not a later reuse of the pid)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < _START_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def fail_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark FAILURE every unfinished run tagged by `owner_tags` on this host whose process is gone; returns one
    line per run marked."""
    host = socket.gethostname()
    lines = []
    for record in instance.get_run_records(RunsFilter(statuses=UNFINISHED, tags={HOST_TAG: host})):
        run = record.dagster_run
        try:
            pid, started = int(run.tags[PID_TAG]), float(run.tags[PID_STARTED_TAG])
        except (KeyError, ValueError):
            continue
        if process_alive(pid, started):
            continue
        message = (f"the process that executed this run (pid {pid} on {host}) is gone (killed?) while the run was "
                   f"{run.status.value}; marked FAILURE by orchestration.run_all at start-up")
        instance.report_run_failed(run, message)
        lines.append(f"run {run.run_id} ({run.job_name}) was {run.status.value} but its process {pid} is gone: "
                     f"marked FAILURE")
    return lines
