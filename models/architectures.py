"""build_model(name, spec, **kwargs): the one place that maps a model name to its class."""
from __future__ import annotations

from typing import Any

from torch import nn

from models.spec import FeatureSpec


def _classes() -> dict[str, type[nn.Module]]:
    from models.dnn import DNN
    from models.mmoe import MMoE
    from models.ple import PLE
    from models.shared_bottom import SharedBottom
    from models.srf import SRF
    from models.star import STAR

    return {c.name: c for c in (SRF, SharedBottom, MMoE, PLE, STAR, DNN)}


MODEL_NAMES: tuple[str, ...] = ("srf", "shared_bottom", "mmoe", "ple", "star", "dnn")


def build_model(name: str, spec: FeatureSpec | dict[str, Any], **kwargs: Any) -> nn.Module:
    """Build model `name` from a FeatureSpec (or its dict) and its constructor keywords; inverse of model.config()."""
    classes = _classes()
    if name not in classes:
        raise ValueError(f"build_model: unknown model {name!r}; use one of {MODEL_NAMES}")
    if isinstance(spec, dict):
        spec = FeatureSpec.from_dict(spec)
    kwargs.pop("name", None)  # tolerate build_model(cfg["name"], spec, **cfg)
    return classes[name](spec, **kwargs)
