"""A checkpoint that is damaged, empty, non-finite or built for another dataset is refused on every load path
(checkpoint.load, the registry, fine-tuning, evaluation, the serving CLI, HTTP /reload) with one clear error."""
from __future__ import annotations

import json
import math
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from models import checkpoint as ckpt_io
from models.checkpoint import CorruptCheckpointError
from models.file_digest import file_digest, read_sidecar, sidecar_path
from models.inference import NonFiniteScoresError, Scorer
from models.model_registry import ModelRegistry
from serving import Ranker
from serving.http import create_app, rank_body
from serving.ranker import RankedItem


def flip_tensor_bytes(path: Path, count: int = 4) -> None:
    """Overwrite `count` bytes inside the largest tensor storage of a torch.save archive with 0xFF (a NaN pattern),
    leaving the zip structure intact: what a bad disk block does."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    data[start: start + count] = b"\xff" * count
    path.write_bytes(bytes(data))


@pytest.fixture
def good(served_world, tmp_path) -> Path:
    """A private copy of the promoted checkpoint, with its sidecar."""
    target = tmp_path / "good" / "checkpoint.pt"
    target.parent.mkdir()
    shutil.copy2(served_world.checkpoint, target)
    shutil.copy2(sidecar_path(served_world.checkpoint), sidecar_path(target))
    return target


def _resave(source: Path, target: Path, edit) -> Path:
    """Load, edit the dict, save properly (valid digest and CRCs): only the content is wrong."""
    ckpt = torch.load(source, weights_only=True)
    edit(ckpt)
    ckpt_io.save(target, ckpt)
    return target


def test_a_saved_checkpoint_records_its_sha256_and_loads(good):
    assert read_sidecar(good) == file_digest(good)
    assert "state_dict" in ckpt_io.load(good)


@pytest.mark.parametrize("sidecar", [True, False], ids=["sha256-sidecar", "zip-crc-only"])
def test_flipped_bytes_inside_a_tensor_are_refused(good, sidecar):
    if not sidecar:
        sidecar_path(good).unlink()
    flip_tensor_bytes(good)
    # what torch.load alone does with the same file: loads it, NaN inside
    loaded = torch.load(good, weights_only=True)["state_dict"]
    assert not all(torch.isfinite(t).all() for t in loaded.values() if t.is_floating_point())
    with pytest.raises(CorruptCheckpointError, match="sha256" if sidecar else "CRC mismatch") as err:
        ckpt_io.load(good)
    assert err.value.path == good and str(good) in str(err.value)


def test_empty_and_truncated_checkpoints_name_the_file_and_reason(good, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="empty file"):
        ckpt_io.load(empty)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptCheckpointError, match="truncated") as err:
        ckpt_io.load(truncated)
    assert str(truncated) in str(err.value)


def test_nan_weights_are_refused_even_with_a_valid_digest(good, tmp_path):
    def poison(ckpt):
        name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
        ckpt["state_dict"][name].view(-1)[1] = math.nan

    path = _resave(good, tmp_path / "nan" / "checkpoint.pt", poison)
    with pytest.raises(CorruptCheckpointError, match="non-finite"):
        ckpt_io.load(path)


def test_registry_records_the_sha256_and_refuses_a_changed_file(good, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    entry = registry.register(good, name="srf")
    assert entry.sha256 == file_digest(good) and entry.version.endswith(entry.sha256[:8])
    assert json.loads((Path(entry.checkpoint).parent / "card.json").read_text())["sha256"] == entry.sha256
    registry.load_checkpoint(entry.version)
    # replaced by another valid checkpoint (not corrupt, just not the registered bytes): refused too
    other = _resave(good, tmp_path / "other.pt", lambda c: c["meta"].update(note="other"))
    shutil.copy2(other, entry.checkpoint)
    sidecar_path(entry.checkpoint).unlink()
    with pytest.raises(CorruptCheckpointError, match="recorded in the model registry"):
        registry.load_checkpoint(entry.version)


def test_a_legacy_card_without_sha256_is_checked_against_its_version_name(good, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    entry = registry.register(good, name="srf")
    card = Path(entry.checkpoint).parent / "card.json"
    card.write_text(json.dumps({k: v for k, v in json.loads(card.read_text()).items() if k != "sha256"}))
    sidecar_path(entry.checkpoint).unlink()
    assert registry.get(entry.version).expected_sha256 == entry.sha256[:8]
    registry.load_checkpoint(entry.version)
    flip_tensor_bytes(Path(entry.checkpoint))
    with pytest.raises(CorruptCheckpointError, match="sha256"):
        registry.load_checkpoint(entry.version)


def test_register_refuses_a_file_that_changed_since_it_was_written(good, tmp_path):
    flip_tensor_bytes(good)
    with pytest.raises(CorruptCheckpointError, match="changed on disk"):
        ModelRegistry(tmp_path / "registry").register(good, name="srf")


def test_finetune_and_evaluate_refuse_a_corrupt_checkpoint(good, tmp_path):
    from models.evaluate import evaluate
    from models.finetune import FinetuneConfig, finetune

    flip_tensor_bytes(good)
    with pytest.raises(CorruptCheckpointError):
        finetune(FinetuneConfig(device="cpu", progress=False), tmp_path, good, tmp_path / "out")
    with pytest.raises(CorruptCheckpointError):
        evaluate(good, tmp_path, device="cpu")


def test_serving_refuses_a_checkpoint_of_another_dataset(served_world, good, tmp_path):
    def rename_domains(ckpt):
        for d in ckpt["meta"]["domains"]:
            d["name"] = f"other_{d['name']}"

    def swap_tasks(ckpt):  # no domain table in meta, and the model's tasks differ from the dataset's
        ckpt["meta"].pop("domains")
        tasks = ckpt["feature_spec"]["domain_tasks"]
        ckpt["feature_spec"]["domain_tasks"] = ["rec" if t == "search" else "search" for t in tasks]

    def rename_feature(ckpt):
        ckpt["vocab"]["num_columns"][0] = "num_not_served_anywhere"

    for edit, message in ((rename_domains, "differ from"), (swap_tasks, "tasks"),
                          (rename_feature, "num_not_served_anywhere")):
        path = _resave(good, tmp_path / edit.__name__ / "checkpoint.pt", edit)
        with pytest.raises(CorruptCheckpointError, match=message) as err:
            Ranker(served_world.paths, checkpoint=path)
        assert str(path) in str(err.value)


def test_cli_rank_exits_nonzero_with_one_line_on_a_corrupt_checkpoint(served_world, good, capsys):
    from serving.cli import main

    flip_tensor_bytes(good)
    code = main(["rank", "--var-dir", str(served_world.paths.root), "--dataset", served_world.paths.dataset,
                 "--checkpoint", str(good), "--user", "u:1", "--domain", "rec_a", "--items", "i:1,i:2"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and str(good) in captured.err and "sha256" in captured.err


def test_reload_of_a_bad_file_keeps_the_old_model_and_answers_409(served_world, good):
    client = TestClient(create_app(Ranker(served_world.paths, checkpoint=good)))
    before = client.get("/health").json()["model_version"]
    flip_tensor_bytes(good)
    response = client.post("/reload")
    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "sha256" in detail["error"] and detail["model_version"] == before
    assert client.get("/health").json()["model_version"] == before
    ranked = client.post("/rank", json={"user_id": "u:1", "domain": "rec_a", "items": served_world.items[:5]})
    assert ranked.status_code == 200 and all(0 < i["score"] < 1 for i in ranked.json()["items"])


def test_reload_of_a_corrupt_promoted_version_keeps_the_old_model(served_world):
    registry = ModelRegistry(served_world.paths.models_dir / "registry")
    client = TestClient(create_app(Ranker(served_world.paths)))
    old = registry.promoted().version
    bad = registry.register(served_world.second_checkpoint, name="srf")
    flip_tensor_bytes(Path(bad.checkpoint))
    registry.promote(bad.version, ["test: a corrupt promotion"])
    try:
        response = client.post("/reload")
        assert response.status_code == 409 and bad.checkpoint in response.json()["detail"]["error"]
        assert client.get("/health").json()["model_version"] == old
    finally:
        registry.promote(old, ["test: restore"])


def test_non_finite_scores_are_an_error_never_nan_in_json(served_world):
    with pytest.raises(ValueError):
        rank_body("v", [RankedItem("i:1", math.nan)])
    ranker = Ranker(served_world.paths)
    with torch.no_grad():  # the served weights go bad in memory, after the load checks
        for p in ranker._model.scorer.model.parameters():
            p.fill_(math.nan)
    with pytest.raises(NonFiniteScoresError, match="NaN/inf"):
        ranker.rank("u:1", "rec_a", None, served_world.items[:3])
    response = TestClient(create_app(ranker)).post(
        "/rank", json={"user_id": "u:1", "domain": "rec_a", "items": served_world.items[:3]})
    assert response.status_code == 500 and "NaN" in response.json()["detail"]
    assert "NaN" not in response.text.replace("NaN/inf", "")


def test_scorer_from_checkpoint_checks_the_expected_digest(good):
    Scorer.from_checkpoint(good, expected_sha256=file_digest(good))
    with pytest.raises(CorruptCheckpointError, match="recorded in the model registry"):
        Scorer.from_checkpoint(good, expected_sha256="0" * 64)


def test_cli_serve_refuses_a_corrupt_checkpoint_before_starting(served_world, good, capsys):
    from serving.cli import main

    flip_tensor_bytes(good)
    code = main(["serve", "--var-dir", str(served_world.paths.root), "--dataset", served_world.paths.dataset,
                 "--checkpoint", str(good), "--port", "1"])  # never bound: refused before uvicorn starts
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "refused" in err
