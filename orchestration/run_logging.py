"""Quiet, informative runs: the full Dagster log goes to a file, the terminal gets one line per finished asset.

The `console` logger of every job is replaced by `progress_console_logger`. When `UNISR_RUN_LOG` names a file
(`python -m orchestration.run_all` sets it), every record goes there and the terminal shows only finished
assets (name, seconds, rows), failed steps and failed checks. Without it (e.g. runs launched from the UI) the
logger prints INFO and above to stderr like Dagster's default console logger.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

from dagster import Field, logger

ENV_RUN_LOG = "UNISR_RUN_LOG"
FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s"


class ProgressHandler(logging.Handler):
    """Prints `[assets done, elapsed] asset  seconds  rows` when a step that materialized assets finishes."""

    def __init__(self, stream: TextIO):
        super().__init__(level=logging.DEBUG)
        self.stream = stream
        self.started = time.monotonic()
        self.done = 0
        self.rows: dict[str, dict[str, int]] = {}
        self.assets: dict[str, list[str]] = {}

    def _print(self, text: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        self.stream.write(f"[{self.done:>3} assets {elapsed // 60:>2}m{elapsed % 60:02d}s] {text}\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "dagster_event", None)
        if event is None:
            return
        kind, step = event.event_type_value, event.step_key or ""
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            rows = mat.metadata.get("dagster/row_count")
            name = mat.asset_key.to_user_string()
            self.assets.setdefault(step, []).append(name)
            if rows is not None:  # partitions of one single-run backfill all carry the range's count: once per asset
                self.rows.setdefault(step, {})[name] = int(rows.value)
        elif kind == "STEP_SUCCESS" and step in self.assets:
            materialized = self.assets.pop(step)
            names = sorted(set(materialized))
            rows = self.rows.pop(step, {})
            self.done += len(names)
            label = names[0] if len(names) == 1 else f"{step} ({len(names)} assets)"
            if len(materialized) > len(names):
                label += f" ({len(materialized) // len(names)} partitions)"
            seconds = event.event_specific_data.duration_ms / 1000
            self._print(f"{label:<34} {seconds:>7.1f}s" + (f"  rows={sum(rows.values()):,}" if rows else ""))
        elif kind == "STEP_FAILURE":
            error = event.event_specific_data.error
            self._print(f"FAILED {step}: {error.message.strip().splitlines()[-1] if error else ''}")
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            if not evaluation.passed:
                self._print(f"check FAILED {evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                            + (f" — {evaluation.description}" if evaluation.description else ""))


#: The terminal stream progress lines go to (run_all redirects sys.stdout into the log file while a job runs).
TERMINAL: list[TextIO] = [sys.stdout]


@logger(
    config_schema={"log_level": Field(str, is_required=False, default_value="INFO"),
                   "name": Field(str, is_required=False, default_value="dagster")},
    description="Full log to $UNISR_RUN_LOG and one progress line per finished asset; else INFO to stderr.",
)
def progress_console_logger(init_context) -> logging.Logger:
    config = init_context.logger_config
    log = logging.Logger(config["name"], level=logging.DEBUG)
    path = os.environ.get(ENV_RUN_LOG)
    if path:
        file_handler = logging.FileHandler(path)
        file_handler.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(file_handler)
        log.addHandler(ProgressHandler(TERMINAL[0]))
    else:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(config["log_level"].upper())
        stream.setFormatter(logging.Formatter(FORMAT))
        log.addHandler(stream)
    return log
