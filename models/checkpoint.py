"""Checkpoint files: atomic save, load, and rebuilding a model + vocabularies from a checkpoint."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from models.registry import build_model
from models.spec import FeatureSpec
from models.vocab import Vocabularies

FORMAT_VERSION = 1


def save(path: str | Path, payload: dict[str, Any]) -> None:
    """torch.save to a temporary file then rename, so a kill mid-write never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format_version": FORMAT_VERSION, **payload}, tmp)
    os.replace(tmp, path)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict (tensors and plain Python values only, so weights_only loading is safe)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train a model first (python -m models.train)")
    return torch.load(path, map_location=map_location, weights_only=True)


def model_payload(model: torch.nn.Module, spec: FeatureSpec, vocab: Vocabularies, meta: dict) -> dict[str, Any]:
    """What evaluation and serving need: model config + weights, FeatureSpec, vocabularies, domains."""
    inner = getattr(model, "module", model)
    state = {k: v.detach().to("cpu", copy=True) for k, v in inner.state_dict().items()}
    return {"model_config": inner.config(), "state_dict": state, "feature_spec": spec.to_dict(),
            "vocab": vocab.to_dict(), "meta": meta}


def build_from(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> tuple[torch.nn.Module, FeatureSpec, Vocabularies]:
    """(model with the checkpoint's weights on `device`, its FeatureSpec, its Vocabularies) from a loaded checkpoint."""
    spec = FeatureSpec.from_dict(ckpt["feature_spec"])
    cfg = dict(ckpt["model_config"])
    model = build_model(cfg.pop("name"), spec, **cfg)
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device), spec, Vocabularies.from_dict(ckpt["vocab"])
