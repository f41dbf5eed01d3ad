"""The daily refresh starts from the serving champion: which checkpoint, which frozen levels, refused when corrupt."""
from pathlib import Path

import pytest

from models.champion_refresh import refresh_start
from models.checkpoint import CorruptCheckpointError
from models.model_registry import ModelRegistry


def _register(registry: ModelRegistry, tmp_path: Path, name: str, payload: bytes, config: dict):
    path = tmp_path / f"{name}.pt"
    path.write_bytes(payload)
    return registry.register(path, name=name, config=config)


def test_no_champion_means_no_refresh_start(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    _register(registry, tmp_path, "srf", b"weights", {"freeze": "L0"})
    assert refresh_start(registry) is None


@pytest.mark.parametrize("freeze,kept", [("L0", "L0"), ("L0+L1", "L0+L1"), ("none", "none"), ("scratch", "none"),
                                         (None, "none")])
def test_the_champion_is_refreshed_with_its_own_frozen_levels(tmp_path, freeze, kept):
    registry = ModelRegistry(tmp_path / "registry")
    config = {"pretrained": "/models/pre.pt"} | ({"freeze": freeze} if freeze else {})
    champion = _register(registry, tmp_path, "star", b"star weights", config)
    _register(registry, tmp_path, "srf", b"srf weights", {"freeze": "L0"})   # newer, but not serving
    registry.promote(champion.version, ["significantly better"])
    start = refresh_start(registry)
    assert (start.name, start.version, start.checkpoint) == ("star", champion.version, Path(champion.checkpoint))
    assert start.freeze == kept
    card = start.registry_config(7)
    assert card == {"freeze": kept, "freeze_config": kept, "pretrained": "/models/pre.pt",
                    "refreshed_from": champion.version, "window_days": 7}


def test_a_corrupt_champion_is_never_trained_on(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    champion = _register(registry, tmp_path, "srf", b"weights", {"freeze": "L0"})
    registry.promote(champion.version, ["first"])
    Path(champion.checkpoint).write_bytes(b"flipped")
    with pytest.raises(CorruptCheckpointError):
        refresh_start(registry)


def test_latest_version_of_a_model(tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    assert registry.latest("srf") is None
    first = _register(registry, tmp_path, "srf", b"one", {})
    _register(registry, tmp_path, "mmoe", b"two", {})
    assert registry.latest("srf").version == first.version
    second = _register(registry, tmp_path, "srf", b"three", {})
    assert registry.latest("srf").version == second.version
