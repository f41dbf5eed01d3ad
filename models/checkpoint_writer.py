"""Checkpoints off the training loop: when (by wall time, or every N steps) and how (snapshot to host memory now,
`torch.save` in a background thread)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models import checkpoint as ckpt_io


def host_snapshot(value: Any) -> Any:
    """A deep copy of `value` whose tensors are detached host copies (later optimiser steps cannot change it)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: host_snapshot(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(host_snapshot(v) for v in value)
    return value


class BackgroundCheckpointWriter:
    """`save(path, payload)` snapshots now and writes in a thread; one write in flight at a time.

    `join()` waits for the write in flight and re-raises its error, if any; call it before the run ends.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, path: str | Path, payload: dict[str, Any]) -> None:
        snapshot = host_snapshot(payload)
        self.join()
        self._thread = threading.Thread(target=self._write, args=(Path(path), snapshot), name="checkpoint-writer")
        self._thread.start()

    def _write(self, path: Path, snapshot: dict[str, Any]) -> None:
        try:
            ckpt_io.save(path, snapshot)
        except BaseException as error:  # re-raised by join() in the training thread
            self._error = error

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing a checkpoint failed: {error}") from error


class CheckpointSchedule:
    """`due(step)`: every `every_steps` steps, or once `every_seconds` of wall time passed since the last `saved()`.

    `agree(flag) -> flag` makes ranks agree (rank 0's decision broadcast under DDP); it is consulted only every
    `poll_steps` steps, so a multi-process run pays one tiny collective per `poll_steps` steps, not per step.
    """

    def __init__(self, every_steps: int = 0, every_seconds: float = 0.0, poll_steps: int = 1,
                 agree: Callable[[bool], bool] | None = None, clock: Callable[[], float] = time.monotonic):
        self.every_steps, self.every_seconds, self.poll_steps = int(every_steps), float(every_seconds), int(poll_steps)
        self.agree, self.clock = agree, clock
        self.last = clock()

    def due(self, step: int) -> bool:
        if self.every_steps and step % self.every_steps == 0:
            return True
        if not self.every_seconds or step % self.poll_steps:
            return False
        flag = self.clock() - self.last >= self.every_seconds
        return bool(self.agree(flag)) if self.agree is not None else flag

    def saved(self) -> None:
        self.last = self.clock()
