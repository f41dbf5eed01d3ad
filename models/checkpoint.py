"""Checkpoint files: atomic save with a sha256 sidecar, verified load, and rebuilding a model + vocabularies.

Every load refuses (with `CorruptCheckpointError`, naming the file and the reason) a checkpoint that is empty or
truncated, whose bytes differ from the sha256 recorded when it was written (`<file>.sha256`) or registered, whose
zip CRCs fail (when no digest is recorded: `torch.load` itself never checks them), or that holds a non-finite
tensor. Such a file would otherwise load silently and score NaN.
"""
from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from models.architectures import build_model
from models.file_digest import file_digest, read_sidecar, sidecar_path, write_sidecar
from models.spec import FeatureSpec
from models.vocab import Vocabularies

FORMAT_VERSION = 1
MODEL_KEYS = ("model_config", "state_dict", "feature_spec", "vocab")


class CorruptCheckpointError(ValueError):
    """A checkpoint that must not be used: damaged, truncated, non-finite, or built for another dataset."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"checkpoint {path} refused: {reason}")


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file then rename, so a kill mid-write never leaves a truncated checkpoint;
    `<path>.sha256` records its digest (removed first, so a kill between the renames leaves no stale digest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format_version": FORMAT_VERSION, **payload}, tmp)
    digest = file_digest(tmp)
    sidecar_path(path).unlink(missing_ok=True)
    os.replace(tmp, path)
    write_sidecar(path, digest)


def verify_file(path: str | Path, expected_sha256: str | None = None) -> None:
    """Refuse an empty file, a sha256 differing from `expected_sha256` (full or a prefix of >= 8 hex) or from the
    sidecar, or -- with no digest to compare -- a zip archive whose CRCs fail. CorruptCheckpointError otherwise."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(path, "empty file (0 bytes): the write never finished; train or register it again")
    try:
        recorded = read_sidecar(path)
    except ValueError as err:
        raise CorruptCheckpointError(path, str(err)) from err
    expected = [(d.lower(), source) for d, source in ((expected_sha256, "the model registry"),
                                                     (recorded, sidecar_path(path).name)) if d]
    if not expected:
        _check_archive(path)
        return
    actual = file_digest(path)
    for want, source in expected:
        if not actual.startswith(want):
            raise CorruptCheckpointError(
                path, f"sha256 {actual[:16]}… differs from {want[:16]}… recorded in {source}: the file changed "
                      f"after it was written (disk corruption or an overwrite); restore or re-train it")
    # the bytes are the ones written: the archive's CRCs hold as well


def _check_archive(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as err:  # BadZipFile, EOFError, zlib/struct errors: all mean a damaged or foreign file
        raise CorruptCheckpointError(
            path, f"not a complete torch.save archive ({type(err).__name__}: {err}): truncated or not a checkpoint"
        ) from err
    if bad is not None:
        raise CorruptCheckpointError(path, f"CRC mismatch in archive member {bad}: its bytes changed on disk")


def _tensors(value: Any, name: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{name}.{k}" if name else str(k))
    elif isinstance(value, (list, tuple)):
        for k, v in enumerate(value):
            yield from _tensors(v, f"{name}[{k}]")


def check_finite(path: str | Path, ckpt: dict[str, Any]) -> None:
    """CorruptCheckpointError if any floating tensor (weights, optimizer state) or numeric statistic is NaN/inf."""
    for name, tensor in _tensors(ckpt):
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CorruptCheckpointError(path, f"tensor {name} has {bad} non-finite value(s) of {tensor.numel()}")
    vocab = ckpt.get("vocab")
    if isinstance(vocab, dict):
        for key in ("num_mean", "num_std"):
            if any(not math.isfinite(float(x)) for x in vocab.get(key, [])):
                raise CorruptCheckpointError(path, f"vocab.{key} holds a non-finite value")


def load(path: str | Path, map_location: str | torch.device = "cpu",
         expected_sha256: str | None = None) -> dict[str, Any]:
    """Load a verified checkpoint dict (tensors and plain Python values only, so weights_only loading is safe).

    `expected_sha256`: the digest the model registry recorded (full or a prefix of >= 8 hex characters)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train a model first (python -m models.train)")
    verify_file(path, expected_sha256)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # EOFError, UnpicklingError, RuntimeError from the zip reader: all unreadable
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        raise CorruptCheckpointError(path, f"unreadable ({type(err).__name__}: {first_line})") from err
    if not isinstance(ckpt, dict):
        raise CorruptCheckpointError(path, f"holds a {type(ckpt).__name__}, not a checkpoint dict")
    check_finite(path, ckpt)
    return ckpt


def model_payload(model: torch.nn.Module, spec: FeatureSpec, vocab: Vocabularies, meta: dict) -> dict[str, Any]:
    """What evaluation and serving need: model config + weights, FeatureSpec, vocabularies, domains."""
    inner = getattr(model, "module", model)
    state = {k: v.detach().to("cpu", copy=True) for k, v in inner.state_dict().items()}
    return {"model_config": inner.config(), "state_dict": state, "feature_spec": spec.to_dict(),
            "vocab": vocab.to_dict(), "meta": meta}


def build_from(ckpt: dict[str, Any], device: str | torch.device = "cpu",
               path: str | Path = "<in memory>") -> tuple[torch.nn.Module, FeatureSpec, Vocabularies]:
    """(model with the checkpoint's weights on `device`, its FeatureSpec, its Vocabularies) from a loaded checkpoint."""
    missing = [k for k in MODEL_KEYS if k not in ckpt]
    if missing:
        raise CorruptCheckpointError(path, f"no {missing} in it: not a model checkpoint (a trainer's last.pt?)")
    try:
        spec = FeatureSpec.from_dict(ckpt["feature_spec"])
        cfg = dict(ckpt["model_config"])
        model = build_model(cfg.pop("name"), spec, **cfg)
        model.load_state_dict(ckpt["state_dict"])
        vocab = Vocabularies.from_dict(ckpt["vocab"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # wrong shapes/keys, unknown model, bad spec
        first_line = (str(err).strip().splitlines() or [""])[0][:300]
        raise CorruptCheckpointError(path, f"its weights do not fit its own config ({type(err).__name__}: "
                                           f"{first_line})") from err
    return model.to(device), spec, vocab
