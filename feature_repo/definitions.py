"""The unisr Feast objects for the `feast` CLI, built from features.definitions.

Data under `$UNISR_VAR_DIR` (default: the `var` folder beside this repo folder, as in feature_store.yaml) for
`$UNISR_DATASET` (default synthetic).
"""
import os
from pathlib import Path

from features.definitions import build_definitions
from unisr_data.paths import Paths

VAR_DIR = Path(os.environ.get("UNISR_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
DATASET = os.environ.get("UNISR_DATASET") or "synthetic"

PATHS = Paths(VAR_DIR, DATASET)
PATHS.feast_dir.mkdir(parents=True, exist_ok=True)  # Feast does not create the registry's folder

# `feast apply` collects Feast objects from module globals, so each object gets a global named by kind and name
for _obj in build_definitions(PATHS):
    globals()[f"{type(_obj).__name__.lower()}_{_obj.name}"] = _obj
del _obj
