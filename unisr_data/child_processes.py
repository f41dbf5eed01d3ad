"""Child processes that never outlive the process that started them (dbt, torchrun and its workers).

A `kill -9` of a pipeline run gives the run no chance to clean up, so the children themselves must notice: on
Linux each child asks the kernel for a signal when its parent dies (`prctl(PR_SET_PDEATHSIG)`), set between
fork and exec (`popen_tied`), or by a small launcher that then execs the real command (`exec` below, which the
generated dbt wrapper and torchrun's workers go through). Elsewhere (macOS) the request is a no-op and only the
clean-exit path (`tied_process` stops its child when the caller raises) applies.

Standard library only: torchrun's workers import this file before the trainer, and the dbt wrapper runs it as a
script (`python .../child_processes.py exec --parent PID -- dbt build ...`).

    python child_processes.py exec [--parent PID] [--signal KILL] -- CMD ARG...      # exec CMD, tied to PID
    python child_processes.py run-module [--signal TERM] MODULE ARG...               # run `python -m MODULE`, tied
"""
from __future__ import annotations

import argparse
import ctypes
import os
import runpy
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: Seconds a child gets to exit after SIGTERM before SIGKILL, when its parent stops it on an error.
STOP_TIMEOUT_S = 10.0


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved once in the parent: dlopen between fork and exec of a threaded process can deadlock.
_PRCTL = _load_prctl()


def supported() -> bool:
    """Whether this platform can tie a child to its parent (Linux)."""
    return _PRCTL is not None


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """In the calling process: have the kernel send `sig` when the parent dies (Linux; a no-op elsewhere).

    `parent` is the pid the caller expects as its parent: if that one is already gone (it died before the request
    was made, so no signal would ever come), the calling process signals itself at once.
    """
    if _PRCTL is None:
        return
    if _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}")
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def _tie_to(parent: int, sig: int):
    def preexec() -> None:  # runs in the child between fork and exec
        die_with_parent(sig, parent)

    return preexec


def popen_tied(cmd: Sequence[str], sig: int = signal.SIGKILL, **kwargs) -> subprocess.Popen:
    """`subprocess.Popen(cmd, **kwargs)` whose child receives `sig` when this process (or thread) dies.

    The signal comes when the *thread* that started the child ends, so start children from a thread that lives as
    long as they should (the op's own thread does).
    """
    if "preexec_fn" in kwargs:
        raise ValueError("popen_tied sets preexec_fn itself")
    preexec = _tie_to(os.getpid(), sig) if supported() else None
    return subprocess.Popen(list(cmd), preexec_fn=preexec, **kwargs)


def stop(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM, then SIGKILL after `timeout` s; returns the exit code (None if it could not be reaped)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
    return proc.returncode


@contextmanager
def tied_process(cmd: Sequence[str], sig: int = signal.SIGKILL, stop_timeout: float = STOP_TIMEOUT_S,
                 **kwargs) -> Iterator[subprocess.Popen]:
    """`popen_tied` as a context manager: if the body raises (a cancelled run, Ctrl-C) the child is stopped
    (`stop`) before the error propagates, instead of being waited for; on normal exit it is waited for."""
    proc = popen_tied(cmd, sig, **kwargs)
    try:
        with proc:
            try:
                yield proc
            except BaseException:
                stop(proc, stop_timeout)
                raise
    finally:
        if proc.poll() is None:  # Popen.__exit__ waits; only a second interrupt gets here
            stop(proc, stop_timeout)


def launcher_command(python: str | Path | None = None) -> list[str]:
    """The argv prefix that runs this file's CLI with `python` (default: this interpreter)."""
    return [str(python or sys.executable), str(Path(__file__).resolve())]


def write_exec_wrapper(path: str | Path, target: str | Path, sig: int = signal.SIGKILL,
                       python: str | Path | None = None) -> Path:
    """An executable `sh` script at `path` that runs `target "$@"` tied to whoever ran the script (its $PPID).

    For tools that spawn a child we cannot pass preexec_fn to (dagster-dbt's DbtCliResource takes only the path of
    the dbt executable). Rewritten only when its content changes, atomically.
    """
    path = Path(path)
    argv = [*launcher_command(python), "exec", "--signal", signal.Signals(sig).name, "--parent"]
    body = ("#!/bin/sh\n# Written by unisr_data/child_processes.py: runs the command below, killed when the process "
            "that started this script dies.\n"
            f'exec {shlex.join(argv)} "$PPID" -- {shlex.quote(str(target))} "$@"\n')
    if not path.exists() or path.read_text() != body:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(body)
        tmp.chmod(0o755)
        os.replace(tmp, path)
    return path


def _signal(name: str) -> int:
    try:
        return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
    except KeyError:
        raise argparse.ArgumentTypeError(f"unknown signal {name!r} (e.g. KILL, TERM)") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="child_processes.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    ex = sub.add_parser("exec", help="exec CMD, which then receives SIGNAL when the parent dies")
    ex.add_argument("--parent", type=int, default=None, help="pid expected as parent (signal at once if it is gone)")
    ex.add_argument("--signal", type=_signal, default=signal.SIGKILL)
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    mod = sub.add_parser("run-module", help="run `python -m MODULE ARG...` in this process, tied to the parent")
    mod.add_argument("--signal", type=_signal, default=signal.SIGTERM)
    mod.add_argument("module")
    mod.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.mode == "exec":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("exec: no command given (use: exec [--parent PID] -- CMD ARG...)")
        die_with_parent(args.signal, args.parent)
        os.execvp(cmd[0], cmd)  # the death signal request survives exec
    die_with_parent(args.signal, os.getppid())
    sys.argv = [args.module, *args.args]
    runpy.run_module(args.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
