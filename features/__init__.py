"""Feast feature store of unisr: definitions, store construction, training folders and online reads."""
import os

# Feast releases with usage telemetry read this at import; the pipeline runs without network.
os.environ.setdefault("FEAST_USAGE", "False")

# Feast's metric files go to <var dir>/feast/metrics/<pid>, not a feast_metrics_* folder in the system temp dir.
from features.feast_metrics import use_var_dir  # noqa: E402

use_var_dir()
