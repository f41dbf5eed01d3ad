"""Keep Feast's Prometheus metric files inside the project's var dir, never in the system temp directory.

`feast.metrics` (imported lazily by online reads, materialization and retrieval) creates a
`feast_metrics_*` folder with `tempfile.mkdtemp` unless `PROMETHEUS_MULTIPROCESS_DIR` is set, and removes it
only at a clean interpreter exit: every killed process left one behind. This module points that variable at
`<var dir>/feast/metrics/<pid>` (before Feast can read it), removes the folder at exit, and removes the
folders of processes that are gone. A value the user set is left alone. Call `use_var_dir()` before any Feast
work: `features/__init__.py` does.
"""
from __future__ import annotations

import atexit
import os
import shutil
from pathlib import Path

from unisr_data.paths import default_var_dir

ENV_VARS = ("PROMETHEUS_MULTIPROCESS_DIR", "PROMETHEUS_MULTIPROC_DIR")  # prometheus_client reads the second
OWN_MARKER = "UNISR_FEAST_METRICS_DIR"  # the folder this module chose, so children can tell it from a user's


def metrics_root(var_dir: Path | None = None) -> Path:
    """`<var dir>/feast/metrics`: one sub-folder per live process."""
    return Path(var_dir or default_var_dir()) / "feast" / "metrics"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(root: Path) -> list[Path]:
    """Remove sub-folders of `root` named after processes that no longer run; returns them."""
    removed = []
    for folder in root.glob("*") if root.is_dir() else []:
        if folder.name.isdigit() and int(folder.name) != os.getpid() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def use_var_dir(var_dir: Path | None = None) -> Path | None:
    """Point Feast's metrics folder at `<var dir>/feast/metrics/<pid>`; returns it (None when the user set one).

    Each process gets its own folder (a child started from a unisr process does not reuse its parent's, which
    may be gone first) and removes it at exit; folders of killed processes go at the next start.
    """
    inherited = os.environ.get(OWN_MARKER)
    if any(name in os.environ for name in ENV_VARS) and os.environ.get(ENV_VARS[0]) != inherited:
        return None  # set by the user: theirs to manage
    root = metrics_root(var_dir)
    remove_stale(root)
    folder = root / str(os.getpid())
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*ENV_VARS, OWN_MARKER):
        os.environ[name] = str(folder)
    owner = os.getpid()
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(folder, ignore_errors=True))
    return folder
