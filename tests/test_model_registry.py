"""The model registry keeps every version, its metrics and the promotion history (decisions: test_models_promotion)."""
from pathlib import Path

import pytest

from models.model_registry import ModelRegistry


def _checkpoint(tmp_path: Path, payload: bytes) -> Path:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(payload)
    return path


def test_register_and_promote_roundtrip(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.promoted() is None
    v1 = registry.register(_checkpoint(tmp_path, b"one"), name="srf", metrics={"coldstart_valid_auc": 0.7})
    assert Path(v1.checkpoint).read_bytes() == b"one"
    registry.promote(v1.version, ["first"])
    assert registry.promoted().version == v1.version
    assert registry.promoted().metrics["coldstart_valid_auc"] == pytest.approx(0.7)
    registry.update_metrics(v1.version, {"coldstart_test_auc": 0.69})
    assert registry.get(v1.version).metrics == pytest.approx({"coldstart_valid_auc": 0.7, "coldstart_test_auc": 0.69})


def test_promotions_keep_their_history(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    first = registry.register(_checkpoint(tmp_path, b"good"), name="srf")
    second = registry.register(_checkpoint(tmp_path, b"better"), name="mmoe")
    registry.promote(first.version, ["no champion"])
    registry.promote(second.version, ["significantly better"])
    state = (tmp_path / "registry" / "promoted.json").read_text()
    assert registry.promoted().version == second.version and first.version in state
    assert len(registry.versions()) == 2


def test_unknown_version_is_a_clear_error(tmp_path):
    with pytest.raises(KeyError, match="not in the registry"):
        ModelRegistry(tmp_path).promote("nope", [])
