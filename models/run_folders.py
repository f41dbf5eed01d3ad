"""Training output folders keyed by the work they hold, so that a re-run of the same work resumes it, and their
retention.

Layout under a `runs` root: `<group>/<key>/<model>/` (checkpoint.pt, last.pt, metrics.json), where `group` is what
trained it (a Dagster asset) and `key` is a digest of everything the training depends on: its configs, the content
of the training data (`tree_digest`), upstream checkpoints. The trainer resumes from `last.pt` only when its own
fingerprint (config and row count) matches; the key adds the data's content, so a checkpoint is never reused for
other data, and the same work after a crash finds its `last.pt` (models/engine.py).

Each key folder holds `work.json` (the inputs, for people; its mtime is the folder's last use) and `.lock`, held
(flock) by the process that trains in it. `collect_garbage` keeps the `keep` most recently used folders of each
group and deletes the others, except those in use and those `protected` (see `registry_references`). Folders of the
old layout (`runs/<Dagster run id>/<model>/`) form one more group.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models.file_digest import file_digest

KEY_HEX = 16
WORK_FILE = "work.json"
LOCK_FILE = ".lock"
#: The old layout: one folder per Dagster run id directly under the runs root.
_RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LEGACY_GROUP = "<dagster run ids>"

_held: dict[Path, int] = {}  # key folder -> fd of its .lock, held by this process


class FolderInUseError(RuntimeError):
    """Another live process is training in the same key folder."""


def work_key(inputs: dict[str, Any]) -> str:
    """KEY_HEX hex digits of the sha256 of `inputs` as canonical JSON (sorted keys)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_HEX]


def tree_digest(root: str | Path) -> str:
    """sha256 over the relative paths and contents of every file under `root` (hidden files excluded), hex.

    The content version of a training folder: equal for byte-identical rebuilds, different for any other data.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: nothing to key the training run by "
                                "(build the training sets first)")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        digest.update(f"{rel.as_posix()}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()


def hold(folder: Path) -> None:
    """Take `folder/.lock` for this process (kept until it exits; re-entrant within it).

    FolderInUseError if another live process holds it: two runs of the same work at once would share last.pt."""
    folder = Path(folder).resolve()
    if folder in _held:
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise FolderInUseError(f"{folder} is in use by another process (pid {holder}) training the same work; "
                               f"wait for that run to finish") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[folder] = fd


def release(folder: Path) -> None:
    """Let go of `folder/.lock` if this process holds it."""
    fd = _held.pop(Path(folder).resolve(), None)
    if fd is not None:
        os.close(fd)


def in_use(folder: Path) -> bool:
    """Whether a live process (this one included) holds `folder/.lock`."""
    folder = Path(folder).resolve()
    if folder in _held:
        return True
    lock = folder / LOCK_FILE
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the probe's lock
    return False


def work_folder(runs_root: str | Path, group: str, inputs: dict[str, Any]) -> Path:
    """`runs_root/group/<work_key(inputs)>`, created, held by this process (`hold`) and marked as used now."""
    folder = Path(runs_root) / group / work_key(inputs)
    folder.mkdir(parents=True, exist_ok=True)
    hold(folder)
    record = folder / WORK_FILE
    if record.exists():
        os.utime(record)
    else:
        tmp = folder / f".{WORK_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"group": group, "inputs": inputs}, indent=2, sort_keys=True, default=str))
        os.replace(tmp, record)
    return folder


def last_used(folder: Path) -> float:
    """When the folder was last used: the mtime of its work.json, else of the newest entry in it, else its own."""
    record = folder / WORK_FILE
    if record.exists():
        return record.stat().st_mtime
    times = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
    return max(times, default=folder.stat().st_mtime)


def _groups(runs_root: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for child in sorted(p for p in runs_root.iterdir() if p.is_dir()):
        if _RUN_ID.match(child.name):
            groups.setdefault(LEGACY_GROUP, []).append(child)
        else:
            groups[child.name] = sorted(p for p in child.iterdir() if p.is_dir())
    return groups


def collect_garbage(runs_root: str | Path, keep: int, protected: Iterable[str | Path] = ()) -> list[Path]:
    """Delete all but the `keep` most recently used folders of each group; returns what was deleted.

    Never deleted: a folder in use by a live process, or one that holds (or is inside) a `protected` path.
    """
    if keep < 1:
        raise ValueError(f"keep={keep}: keep at least the latest run folder of each group (the next asset reads it)")
    runs_root = Path(runs_root)
    if not runs_root.is_dir():
        return []
    guard = [Path(p).resolve() for p in protected]
    removed = []
    for members in _groups(runs_root).values():
        for folder in sorted(members, key=last_used, reverse=True)[keep:]:
            resolved = folder.resolve()
            if in_use(folder) or any(g == resolved or g.is_relative_to(resolved) for g in guard):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def registry_references(registry_root: str | Path) -> list[Path]:
    """Paths the model registry still needs: every version's checkpoint (copies inside the registry, normally) and
    the run outputs the promoted version was trained from (its `run_checkpoint` and `pretrained`), so the served
    model's lineage stays on disk. Other versions' lineage paths are history only: their checkpoints are copies."""
    from models.model_registry import ModelRegistry

    registry = ModelRegistry(Path(registry_root))
    paths = [Path(v.checkpoint) for v in registry.versions()]
    promoted = registry.promoted()
    if promoted is not None:
        paths += [Path(promoted.config[k]) for k in ("run_checkpoint", "pretrained")
                  if isinstance(promoted.config.get(k), str) and promoted.config[k]]
    return paths
