"""A file-based model registry: versions with config, data/code versions and metrics, and one promoted version."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from models.file_digest import file_digest, is_digest_prefix, read_sidecar, write_sidecar

__all__ = ["ModelRegistry", "ModelVersion", "file_digest"]


@dataclass
class ModelVersion:
    """One registered model: where its checkpoint is and everything needed to trace it back."""

    version: str
    name: str
    checkpoint: str
    created_at: str
    config: dict[str, Any] = field(default_factory=dict)
    data_version: dict[str, Any] = field(default_factory=dict)
    code_version: str = "unknown"
    metrics: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""  # of the checkpoint, recorded at registration; every load through the registry checks it

    @property
    def expected_sha256(self) -> str:
        """The digest a load must match: the recorded one, or (cards written before it was recorded) the
        8-hex prefix the version name carries."""
        prefix = self.version.rsplit("-", 1)[-1]
        return self.sha256 or (prefix if is_digest_prefix(prefix) else "")


def _atomic_write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)


def _version_from_card(card: dict[str, Any]) -> ModelVersion:
    known = ModelVersion.__dataclass_fields__
    return ModelVersion(**{k: v for k, v in card.items() if k in known})  # newer cards may carry more


class ModelRegistry:
    """Versions under `root/versions/<version>/`, the promoted pointer and its history in `root/promoted.json`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _card_path(self, version: str) -> Path:
        return self.root / "versions" / version / "card.json"

    def register(
        self,
        checkpoint: Path,
        *,
        name: str,
        config: dict[str, Any] | None = None,
        data_version: dict[str, Any] | None = None,
        code_version: str = "unknown",
        metrics: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Copy a checkpoint into the registry as a new immutable version, recording its sha256.

        Refused (CorruptCheckpointError) if the file differs from its own `.sha256` sidecar, or the copy from the
        original; an empty file is refused too."""
        from models.checkpoint import CorruptCheckpointError  # torch only when registering

        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            raise FileNotFoundError(f"checkpoint to register not found: {checkpoint}")
        if checkpoint.stat().st_size == 0:
            raise CorruptCheckpointError(checkpoint, "empty file (0 bytes): nothing to register")
        digest = file_digest(checkpoint)
        try:
            recorded = read_sidecar(checkpoint)
        except ValueError as err:
            raise CorruptCheckpointError(checkpoint, str(err)) from err
        if recorded is not None and recorded != digest:
            raise CorruptCheckpointError(
                checkpoint, f"sha256 {digest[:16]}… differs from {recorded[:16]}… recorded when it was written: "
                            f"it changed on disk since; re-train it rather than register it")
        now = datetime.now(timezone.utc)
        version = f"{name}-{now:%Y%m%dT%H%M%S%f}-{digest[:8]}"
        target_dir = self.root / "versions" / version
        target_dir.mkdir(parents=True, exist_ok=False)
        target = target_dir / checkpoint.name
        shutil.copy2(checkpoint, target)
        if file_digest(target) != digest:
            shutil.rmtree(target_dir, ignore_errors=True)
            raise CorruptCheckpointError(target, f"the copy of {checkpoint} differs from it: disk trouble under "
                                                 f"{self.root}; nothing was registered")
        write_sidecar(target, digest)
        entry = ModelVersion(
            version=version,
            name=name,
            checkpoint=str(target),
            created_at=now.isoformat(),
            config=config or {},
            data_version=data_version or {},
            code_version=code_version,
            metrics=metrics or {},
            sha256=digest,
        )
        _atomic_write_json(self._card_path(version), asdict(entry))
        return entry

    def load_checkpoint(self, version: str, map_location: str = "cpu") -> dict[str, Any]:
        """The checkpoint dict of `version`, verified against the sha256 recorded at registration."""
        from models import checkpoint as ckpt_io

        entry = self.get(version)
        return ckpt_io.load(entry.checkpoint, map_location, expected_sha256=entry.expected_sha256)

    def update_metrics(self, version: str, metrics: dict[str, Any]) -> ModelVersion:
        """Add evaluation metrics to a version's card (the checkpoint itself never changes)."""
        entry = self.get(version)
        entry.metrics.update(metrics)
        _atomic_write_json(self._card_path(version), asdict(entry))
        return entry

    def get(self, version: str) -> ModelVersion:
        path = self._card_path(version)
        if not path.exists():
            raise KeyError(f"model version {version!r} is not in the registry at {self.root}")
        return _version_from_card(json.loads(path.read_text()))

    def versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        cards = sorted((self.root / "versions").glob("*/card.json"))
        entries = [_version_from_card(json.loads(p.read_text())) for p in cards]
        return sorted(entries, key=lambda v: v.created_at)

    def latest(self, name: str) -> ModelVersion | None:
        """The most recently registered version of model `name`, or None."""
        named = [v for v in self.versions() if v.name == name]
        return named[-1] if named else None

    def _promoted_state(self) -> dict[str, Any]:
        path = self.root / "promoted.json"
        return json.loads(path.read_text()) if path.exists() else {"version": None, "history": []}

    def promoted(self) -> ModelVersion | None:
        """The version online ranking serves, or None before the first promotion."""
        version = self._promoted_state()["version"]
        return self.get(version) if version else None

    def promote(self, version: str, reasons: list[str]) -> None:
        """Point online ranking at `version`, keeping the history of promotions."""
        self.get(version)  # must exist
        state = self._promoted_state()
        state["history"].append(
            {"version": version, "previous": state["version"], "at": datetime.now(timezone.utc).isoformat(),
             "reasons": reasons}
        )
        state["version"] = version
        _atomic_write_json(self.root / "promoted.json", state)
