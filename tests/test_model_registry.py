"""The model registry keeps every version and the promotion gate refuses worse models."""
from pathlib import Path

import pytest

from models.model_registry import ModelRegistry, gate_decision


def _checkpoint(tmp_path: Path, payload: bytes) -> Path:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(payload)
    return path


def test_register_and_promote_roundtrip(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.promoted() is None
    v1 = registry.register(_checkpoint(tmp_path, b"one"), name="srf", metrics={"coldstart_auc": 0.7})
    assert Path(v1.checkpoint).read_bytes() == b"one"
    registry.promote(v1.version, ["first"])
    assert registry.promoted().version == v1.version
    assert registry.promoted().coldstart_auc == pytest.approx(0.7)


def test_gate_refuses_a_worse_model_and_keeps_the_old_one(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    good = registry.register(_checkpoint(tmp_path, b"good"), name="srf", metrics={"coldstart_auc": 0.80})
    registry.promote(good.version, ["first"])
    worse = registry.register(_checkpoint(tmp_path, b"worse"), name="srf", metrics={"coldstart_auc": 0.70})

    decision = gate_decision(worse.coldstart_auc, registry.promoted().coldstart_auc, 0.65, tolerance=0.005)
    assert not decision.promote
    assert any("< promoted" in r for r in decision.reasons)
    assert registry.promoted().version == good.version
    assert len(registry.versions()) == 2


def test_gate_requires_beating_the_best_baseline():
    assert not gate_decision(0.75, None, 0.76, tolerance=0.01).promote
    assert gate_decision(0.77, None, 0.76, tolerance=0.01).promote
    # within tolerance of the promoted model is still accepted
    assert gate_decision(0.795, 0.80, 0.70, tolerance=0.01).promote


def test_unknown_version_is_a_clear_error(tmp_path):
    with pytest.raises(KeyError, match="not in the registry"):
        ModelRegistry(tmp_path).promote("nope", [])
