"""Feast feature store of unisr: definitions, store construction, training folders and online reads."""
import os

# Feast releases with usage telemetry read this at import; the pipeline runs without network.
os.environ.setdefault("FEAST_USAGE", "False")
