"""Named text encoders (embeddings/model_source.py) and the encoder comparison (reporting/encoder_comparison.py):
name -> packaged folder + pooling, a clear error naming `make install-encoders` for a missing package, split-zip
parts joined and unpacked once, and the comparison on tiny data: the default encoder and a planted-signal fake
scored with CIs and a paired difference, a missing encoder reported as skipped."""
from __future__ import annotations

import importlib.metadata
import io
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embeddings import model_source
from embeddings.model_source import (
    ENCODERS,
    EncoderNotInstalled,
    EncoderSpec,
    default_model_dir,
    encoder_status,
    resolve_encoder,
)


def test_the_default_name_is_the_packaged_minilm_with_mean_pooling():
    resolved = resolve_encoder()
    assert resolved.name == "minilm" == model_source.DEFAULT_ENCODER
    assert resolved.folder == default_model_dir() and resolved.pooling == "mean"
    assert (resolved.folder / "config.json").is_file()
    assert encoder_status("minilm") == "installed"


def test_poolings_follow_the_kind_of_model():
    assert ENCODERS["minilm"].pooling == ENCODERS["mpnet"].pooling == "mean"   # sentence-transformers models
    assert ENCODERS["smollm2"].pooling == "last-token"                        # a decoder LLM
    with pytest.raises(ValueError, match="mpnet"):
        resolve_encoder("bert-large")


def test_a_missing_package_names_the_make_target(monkeypatch):
    monkeypatch.setitem(ENCODERS, "ghost", EncoderSpec("ghost", "a ghost model", "mean", "split-zip",
                                                       ("unisr-no-such-encoder-part-001",), member="ghost"))
    with pytest.raises(EncoderNotInstalled, match="make install-encoders") as error:
        resolve_encoder("ghost")
    assert "unisr-no-such-encoder-part-001" in str(error.value)
    assert isinstance(error.value, FileNotFoundError)  # callers that catch FileNotFoundError see it too
    assert "make install-encoders" in encoder_status("ghost")


@pytest.mark.parametrize("name,dim", [("mpnet", 768), ("smollm2", 576)])
def test_installed_optional_encoders_resolve_to_model_folders(name, dim):
    if encoder_status(name) != "installed":
        pytest.skip(f"{name} is not installed here (make install-encoders)")
    resolved = resolve_encoder(name)
    config = json.loads((resolved.folder / "config.json").read_text())
    assert config["hidden_size"] == dim and resolved.pooling == ENCODERS[name].pooling
    assert (resolved.folder / "tokenizer.json").is_file() and (resolved.folder / "model.safetensors").is_file()
    assert json.loads((resolved.folder / "unisr_source.json").read_text())["encoder"] == name


class _FakeDistribution:
    """Just what model_source reads of an installed distribution: files, locate_file, version, metadata."""

    def __init__(self, root: Path, name: str, files: list[str]):
        self.root, self.version, self.metadata = root, "9.9.9", {"Name": name}
        self.files = [importlib.metadata.PackagePath(f) for f in files]

    def locate_file(self, path) -> Path:
        return self.root / str(path)


def test_split_zip_parts_are_joined_and_unpacked_once(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tiny/config.json", '{"hidden_size": 4}')
        archive.writestr("tiny/tokenizer.json", "{}")
        archive.writestr("tiny/1_Pooling/config.json", "{}")
        archive.writestr("tiny/desktop.ini", "junk")
        archive.writestr("tiny/model.safetensors", np.random.default_rng(0).bytes(50_000))  # spans every part
    data = buffer.getvalue()
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    dists = {}
    for i in range(1, 4):
        rel = f"tiny_part_{i:03d}/input/tiny.zip.{i:03d}"
        (tmp_path / rel).parent.mkdir(parents=True)
        (tmp_path / rel).write_bytes(data[cut[i - 1]:cut[i]])
        name = f"tiny-part-{i:03d}"
        dists[name] = _FakeDistribution(tmp_path, name, [rel, f"tiny_part_{i:03d}/__init__.py"])
    real = importlib.metadata.distribution
    monkeypatch.setattr(model_source.importlib.metadata, "distribution", lambda n: dists[n] if n in dists else real(n))
    monkeypatch.setenv(model_source.ENCODERS_DIR_ENV, str(tmp_path / "unpacked"))
    monkeypatch.setitem(ENCODERS, "tiny", EncoderSpec("tiny", "a tiny model", "cls", "split-zip", tuple(dists),
                                                      member="tiny"))

    resolved = resolve_encoder("tiny")
    assert resolved.folder == tmp_path / "unpacked" / "tiny-9.9.9" and resolved.pooling == "cls"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert (resolved.folder / "model.safetensors").read_bytes() == archive.read("tiny/model.safetensors")
    assert (resolved.folder / "1_Pooling" / "config.json").is_file()
    assert not (resolved.folder / "desktop.ini").exists()
    assert json.loads((resolved.folder / "unisr_source.json").read_text())["packages"]["tiny-part-001"] == "9.9.9"
    stamp = (resolved.folder / "config.json").stat().st_mtime_ns
    assert resolve_encoder("tiny").folder == resolved.folder  # already unpacked: not again
    assert (resolved.folder / "config.json").stat().st_mtime_ns == stamp
    assert not [p for p in (tmp_path / "unpacked").iterdir() if p.name.startswith(".")]  # no temporary folder left


# ---- the comparison on tiny data ----------------------------------------------------------------------------------

class _PlantedEncoder:
    """Gives each text the fixture's planted vector of its id (the signal the cold-start clicks follow)."""

    pooling, dtype = "planted", "float32"

    def __init__(self, vectors: dict[str, np.ndarray]):
        self.vectors = vectors
        self.dim = len(next(iter(vectors.values())))
        self.model_id = f"planted-fixture-d{self.dim}"

    def encode(self, texts, progress=False):
        return np.stack([self.vectors[t.split(" ")[1]] for t in texts]).astype(np.float32)


def _tiny_dataset(tmp_path: Path):
    """Training folders of tests/model_fixture.py under a Paths root, plus raw item/query texts for their ids."""
    from model_fixture import write_folders
    from unisr_data.paths import Paths

    paths = Paths(tmp_path / "var", "synthetic")
    write_folders(paths.training_dir, n_warm=600, n_cold=600)
    vectors = {}
    for stem, key in (("item_text_emb", "item_id"), ("query_text_emb", "query_id")):
        table = pq.read_table(paths.training_dir / "coldstart" / f"{stem}.parquet").to_pydict()
        vectors.update({i: np.asarray(v, np.float32) for i, v in zip(table[key], table["embedding"])})
    items = [i for i in vectors if i.startswith("i:")]
    queries = [q for q in vectors if q.startswith("q:")]
    paths.raw_dir.mkdir(parents=True)
    pq.write_table(pa.table({"item_id": items, "text": [f"item {i} for sale" for i in items],
                             "created_at": pa.array(np.full(len(items), np.datetime64("2026-01-01", "us")))}),
                   paths.raw_dir / "items.parquet")
    pq.write_table(pa.table({"query_id": queries, "text": [f"query {q} typed" for q in queries]}),
                   paths.raw_dir / "queries.parquet")
    return paths, vectors


def test_comparison_scores_each_encoder_and_reports_a_missing_one_as_skipped(tmp_path):
    from orchestration.resources import TextEncoderResource, TrainerResource
    from reporting.encoder_comparison import encoders_root, run_encoder_comparison

    paths, vectors = _tiny_dataset(tmp_path)
    default_vectors = (paths.training_dir / "coldstart" / "item_text_emb.parquet").read_bytes()
    texts = TextEncoderResource(device="cpu", batch_size=64)

    def make_encoder(name):
        if name == "planted":
            return _PlantedEncoder(vectors)
        if name == "ghost":
            raise EncoderNotInstalled("text encoder 'ghost' needs ghost-part-001: run `make install-encoders`")
        return texts.named_encoder(name)

    trainer = TrainerResource(device="cpu", epochs=2, finetune_epochs=2, batch_size=256, finetune_batch_size=128,
                              num_threads=1, patience=1)
    result = run_encoder_comparison(
        paths, ["planted", "ghost"], make_encoder, trainer, logging.getLogger("test"), tmp_path / "report",
        lambda name, inputs: tmp_path / "runs" / name, freeze="L0", model_kwargs={"hidden": 16}, n_boot=200)

    table = result.table.set_index("encoder")
    assert list(table.index) == ["minilm", "planted", "ghost"]  # the reference first
    assert table.loc["ghost", "status"] == "skipped" and "make install-encoders" in table.loc["ghost", "reason"]
    assert result.not_run() == {"ghost": "skipped: " + table.loc["ghost", "reason"]}
    for name, dim in (("minilm", 384), ("planted", 16)):
        row = table.loc[name]
        assert row["status"] == "ok" and row["dim"] == dim
        assert row["auc_lo"] <= row["auc"] <= row["auc_hi"]
        meta = json.loads((encoders_root(paths) / name / "coldstart" / "meta.json").read_text())
        assert meta["emb_dim"] == dim and meta["emb_model"] == row["model_id"]
        # only the text vectors differ from the default folders
        for split in ("train", "valid", "test"):
            assert ((encoders_root(paths) / name / "coldstart" / f"{split}.parquet").read_bytes()
                    == (paths.training_dir / "coldstart" / f"{split}.parquet").read_bytes())
    # the planted vectors carry the cold-start signal, MiniLM's vectors of "item i:c7 for sale" do not
    assert table.loc["planted", "auc"] > table.loc["minilm", "auc"]
    assert table.loc["planted", "delta_auc"] == pytest.approx(table.loc["planted", "auc"] - table.loc["minilm", "auc"])
    assert table.loc["planted", "delta_lo"] <= table.loc["planted", "delta_auc"] <= table.loc["planted", "delta_hi"]
    assert pd.isna(table.loc["minilm", "delta_auc"]) and result.reference == "minilm"
    # the default pipeline's files are untouched
    assert (paths.training_dir / "coldstart" / "item_text_emb.parquet").read_bytes() == default_vectors
    assert not (paths.embeddings_dir / "item_text_emb.parquet").exists()
    report = (tmp_path / "report" / "encoders.md").read_text()
    assert "Δ AUC vs minilm" in report and "skipped: text encoder 'ghost'" in report and "reference" in report
    assert pd.read_csv(tmp_path / "report" / "encoders.csv")["encoder"].tolist() == ["minilm", "planted", "ghost"]
    assert result.metadata()["ghost/status"].startswith("skipped") and "planted/delta_auc" in result.metadata()


def test_the_comparison_is_its_own_job_outside_the_pipeline():
    from orchestration.definitions import defs

    job = {k.to_user_string() for k in defs.resolve_job_def("encoder_comparison").asset_layer.selected_asset_keys}
    pipeline = {k.to_user_string() for k in defs.resolve_job_def("pipeline").asset_layer.selected_asset_keys}
    assert job == {"text_encoder_comparison"} and "text_encoder_comparison" not in pipeline
