"""sha256 of a file and its `<file>.sha256` sidecar (`sha256sum` format, so `sha256sum -c` checks it too)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

SIDECAR_SUFFIX = ".sha256"
_HEX = re.compile(r"[0-9a-f]{8,64}")


def file_digest(path: str | Path) -> str:
    """sha256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(path: str | Path) -> Path:
    """Where the recorded digest of `path` lives: `<path>.sha256`."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: str | Path, digest: str, name: str | None = None) -> None:
    """Record `digest` for `path` (atomically: a reader sees the old or the new line, never half of one)."""
    target = sidecar_path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{digest}  {name or Path(path).name}\n")
    os.replace(tmp, target)


def read_sidecar(path: str | Path) -> str | None:
    """The digest recorded for `path`, or None when it has no sidecar; ValueError if the sidecar is garbled."""
    target = sidecar_path(path)
    if not target.exists():
        return None
    text = target.read_text(errors="replace").strip()
    digest = text.split()[0].lower() if text else ""
    if len(digest) != 64 or not _HEX.fullmatch(digest):
        raise ValueError(f"{target} does not hold a sha256 (expected '<64 hex>  <name>', got {text[:80]!r})")
    return digest


def is_digest_prefix(value: str) -> bool:
    """True for 8..64 lowercase hex characters (a full sha256 or the prefix a registry version name carries)."""
    return bool(_HEX.fullmatch(value))
