"""The unisr Feast objects for the `feast` CLI, built from features.definitions for $UNISR_VAR_DIR/$UNISR_DATASET."""
import os

from features.definitions import build_definitions
from unisr_data.paths import Paths

# `feast apply` collects Feast objects from module globals, so each object gets a global named by kind and name
for _obj in build_definitions(Paths.default(os.environ.get("UNISR_DATASET", "synthetic"))):
    globals()[f"{type(_obj).__name__.lower()}_{_obj.name}"] = _obj
del _obj
