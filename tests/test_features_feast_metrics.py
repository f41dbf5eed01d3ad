"""Feast's metric files stay in the project's var dir: no feast_metrics_* folder in the system temp dir, the
per-process folder goes at exit, and the folder of a killed process goes at the next start."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# "store": what an online read or materialization does (build the store; Feast then imports feast.metrics,
# which picks its folder), then die by SIGKILL. "import": only import the package, then exit cleanly.
SCRIPT = """
import json, os, sys
from pathlib import Path
import features
folder = os.environ["PROMETHEUS_MULTIPROCESS_DIR"]
if sys.argv[1] == "store":
    from features.store import feature_store
    from unisr_data.paths import Paths
    feature_store(Paths(Path(os.environ["UNISR_VAR_DIR"]), "synthetic"))
    import feast.metrics
    folder = feast.metrics._prometheus_mp_dir
print(json.dumps({"dir": folder, "pid": os.getpid()}), flush=True)
if sys.argv[1] == "store":
    os.kill(os.getpid(), 9)
"""


def _run(var_dir: Path, mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_MULTIPROC", "UNISR_FEAST_METRICS"))}
    env["UNISR_VAR_DIR"] = str(var_dir)
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.stdout, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_feast_metrics_live_in_the_var_dir_and_are_cleaned_up(tmp_path):
    var_dir = tmp_path / "var"
    killed = _run(var_dir, "store")
    folder = Path(killed["dir"])
    assert folder == var_dir / "feast" / "metrics" / str(killed["pid"])
    assert not folder.name.startswith("feast_metrics_") and folder.parent != Path(tempfile.gettempdir())
    assert folder.is_dir()  # killed: left behind until the next process starts
    clean = _run(var_dir, "import")
    assert Path(clean["dir"]).parent == folder.parent
    assert not folder.exists(), "the killed process's folder should be removed by the next start"
    assert not Path(clean["dir"]).exists(), "a clean exit removes its own folder"
