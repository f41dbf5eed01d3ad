"""Trainer: outputs, CLI, kill-and-resume, 2-process DDP == 1 process, evaluate/Scorer, planted text signal."""
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from model_fixture import write_folders
from models import checkpoint as ckpt_io
from models.architectures import build_model
from models.engine import TrainConfig, domain_loss_weights
from models.evaluate import evaluate
from models.inference import Scorer
from models.train import main, train
from models.training_data import TrainingFolder

SMALL = {"hidden": 16}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_folders(tmp_path_factory.mktemp("mf"))


def cfg(**kw):
    base = dict(model="srf", model_kwargs=dict(SMALL), epochs=2, batch_size=256, num_threads=1,
                checkpoint_every=0, progress=False)
    return TrainConfig(**{**base, **kw})


def test_domain_loss_weights():
    lam = domain_loss_weights(np.array([100, 400, 0]))
    assert lam[2] == 0 and lam[0] == pytest.approx(2 * lam[1])      # ∝ frequency^-1/2
    assert (lam * [100, 400, 0]).sum() == pytest.approx(500)        # mean row weight 1


def test_vocab_oov_min_count_numeric_stats_roundtrip():
    from models.vocab import Vocabularies
    train_frame = pd.DataFrame({"domain_id": [0, 0, 1, 1], "user_id": ["a", "a", "b", None],
                                "item_id": ["x", "y", "x", "x"], "query_id": [None, None, "q", "q"],
                                "cat_c": ["k", None, "k", "m"], "num_n": [1.0, 3.0, None, 2.0], "label": [0, 1, 0, 1]})
    v = Vocabularies.build(train_frame, min_count=2)
    assert v.user.values == ["a"] and v.item.values == ["x"] and v.cat[0].values == ["k"]
    enc = v.encode(pd.DataFrame({"user_id": ["a", "zz", None], "item_id": ["x", "y", "x"],
                                 "query_id": ["q", None, "new"], "cat_c": ["k", "m", None], "num_n": [2.0, None, 5.0],
                                 "domain_id": [0, 0, 0]}))
    assert enc["user"].tolist() == [1, 0, 0] and enc["item"].tolist() == [1, 0, 1]
    assert enc["query"].tolist() == [1, 0, 0]
    assert enc["cat"][:, 0].tolist() == [1, 0, 0]
    assert enc["num_mask"][:, 0].tolist() == [1, 0, 1] and enc["num"][1, 0] == 0
    assert enc["num"][0, 0] == pytest.approx(0.0) and enc["num"][2, 0] == pytest.approx(3 / np.std([1, 3, 2]))
    w = Vocabularies.from_dict(v.to_dict())
    assert all((w.encode(train_frame)[k] == v.encode(train_frame)[k]).all() for k in ("user", "item", "cat", "num"))


def test_train_outputs_and_learns(folders, tmp_path):
    seen = []
    res = train(cfg(epochs=3), folders["joint"], tmp_path, on_epoch_end=seen.append)
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "last.pt").exists()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert len(m["curve"]) == len(seen) == 3 and m["curve"][0]["train_loss"] > m["curve"][-1]["train_loss"]
    assert res["metrics"]["auc"] > 0.75 and set(res["metrics"]["domain_auc"]) == {0, 1, 2}
    ck = ckpt_io.load(res["checkpoint"])
    assert ck["model_config"]["name"] == "srf" and ck["feature_spec"]["n_domains"] == 3
    assert ck["vocab"]["cat_columns"] == ["cat_user_segment"] and ck["train_config"]["batch_size"] == 256


def test_cli_flags_and_mmoe(folders, tmp_path):
    main(["--data", str(folders["pretrain"]), "--out", str(tmp_path), "--model", "mmoe", "--model-arg", "hidden=8",
          "--model-arg", "expert_hidden=[16]", "--epochs", "1", "--batch-size", "512", "--no-progress",
          "--domain-weights", "1,2,1", "--num-threads", "1"])
    ck = ckpt_io.load(tmp_path / "checkpoint.pt")
    assert ck["model_config"]["name"] == "mmoe" and ck["model_config"]["hidden"] == 8
    assert ck["model_config"]["expert_hidden"] == [16] and ck["train_config"]["domain_weights"] == [1, 2, 1]


def test_kill_and_resume_reproduces_uninterrupted_run(folders, tmp_path):
    # Dropout on (default 0.1) so the RNG state must be restored too; the kill lands mid-epoch 1.
    c = cfg(epochs=3, checkpoint_every=4, model_kwargs={"hidden": 16, "dropout": 0.1})
    full = train(c, folders["pretrain"], tmp_path / "full")
    killed = train(replace(c, max_steps=23), folders["pretrain"], tmp_path / "resumed")
    assert killed["stopped"] == "max_steps" and killed["step"] == 23
    resumed = train(c, folders["pretrain"], tmp_path / "resumed")
    assert resumed["step"] == full["step"] and resumed["metrics"]["auc"] == full["metrics"]["auc"]
    assert ([r["train_loss"] for r in resumed["curve"]]
            == pytest.approx([r["train_loss"] for r in full["curve"]], abs=1e-9))
    a, b = (ckpt_io.load(p / "checkpoint.pt")["state_dict"] for p in (tmp_path / "full", tmp_path / "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = train(c, folders["pretrain"], tmp_path / "resumed")             # rerun of a finished run: no-op
    assert again["step"] == full["step"] and again["metrics"]["auc"] == full["metrics"]["auc"]
    with pytest.raises(ValueError, match="different configuration"):
        train(replace(c, lr=0.5), folders["pretrain"], tmp_path / "resumed")


def test_ddp_two_processes_match_one(folders, tmp_path):
    """Same global batch (each rank gathers rows rank::2 of it), loss scaled by world/|batch| and DDP's gradient
    averaging => identical summed gradient, so parameters agree to float-summation error. Dropout off and
    alpha=0 because dropout streams and the per-shard regulariser legitimately differ between the two runs."""
    args = ["--data", str(folders["pretrain"]), "--model-arg", "hidden=8", "--model-arg", "dropout=0.0",
            "--alpha", "0", "--epochs", "1", "--batch-size", "400", "--no-progress", "--num-threads", "1",
            "--checkpoint-every", "0"]
    main(args + ["--out", str(tmp_path / "one")])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29533", "-m", "models.train", *args, "--out", str(tmp_path / "two")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = (ckpt_io.load(tmp_path / p / "checkpoint.pt") for p in ("one", "two"))
    assert a["step"] == b["step"] == 10
    torch.manual_seed(0)  # the initial weights both runs started from: training must have moved them
    mc = dict(a["model_config"])
    init = build_model(mc.pop("name"), a["feature_spec"], **mc).state_dict()
    assert max((a["state_dict"][k].float() - init[k].float()).abs().max() for k in init) > 1e-3
    assert "world 2" in proc.stderr
    diff = max((a["state_dict"][k].float() - b["state_dict"][k].float()).abs().max() for k in a["state_dict"])
    assert diff < 1e-5, diff
    assert a["metrics"]["auc"] == pytest.approx(b["metrics"]["auc"], abs=1e-4)


def test_evaluate_and_scorer_agree(folders, tmp_path):
    res = train(cfg(epochs=1), folders["joint"], tmp_path)
    out = evaluate(res["checkpoint"], folders["joint"], split="test", device="cpu")
    assert {"auc", "domain_auc", "gauc", "logloss", "pvctr@1", "pvctr@3", "n", "new_item_auc"} <= set(out)
    assert out["n"] == 500 and out["pvctr@3"] >= out["pvctr@1"]
    scorer = Scorer.from_checkpoint(res["checkpoint"])
    folder = TrainingFolder.open(folders["joint"])
    frame = folder.read("test").head(100)
    item_emb = folder.item_text.matrix[folder.item_text.lookup(frame["item_id"])]
    query_emb = folder.query_text.matrix[folder.query_text.lookup(frame["query_id"])]
    p = scorer.score(frame, item_emb, query_emb)
    assert p.shape == (100,) and ((p > 0) & (p < 1)).all()
    from models.metrics import auc
    ref = evaluate(res["checkpoint"], folders["joint"], split="test", device="cpu")
    assert ref["auc"] == out["auc"]
    # Scorer must reproduce the batch path: score the full test set and compare AUC with evaluate().
    full = folder.read("test")
    pf = scorer.score(full, folder.item_text.matrix[folder.item_text.lookup(full["item_id"])],
                      folder.query_text.matrix[folder.query_text.lookup(full["query_id"])])
    assert auc(full["label"], pf) == pytest.approx(out["auc"], abs=1e-9)
    t0 = time.perf_counter()
    for _ in range(20):
        scorer.score(frame, item_emb, query_emb)
    assert (time.perf_counter() - t0) / 20 < 0.05                     # 100 candidates well under 50 ms


def test_planted_text_signal_and_domain_gating(folders, tmp_path):
    """Cold-start clicks follow item text and its test items are all new: text must carry the prediction."""
    c = cfg(epochs=4, model_kwargs={"hidden": 16, "dropout": 0.0})
    with_text = train(c, folders["joint"], tmp_path / "text")
    no_text = train(replace(c, model_kwargs={**c.model_kwargs, "use_text": False}), folders["joint"], tmp_path / "none")
    a = evaluate(with_text["checkpoint"], folders["joint"], "test", device="cpu")
    b = evaluate(no_text["checkpoint"], folders["joint"], "test", device="cpu")
    assert a["new_item_auc"] >= b["new_item_auc"] + 0.1, (a["new_item_auc"], b["new_item_auc"])
    gates = evaluate(with_text["checkpoint"], folders["joint"], "valid", device="cpu")["gate_weights_by_domain"]
    assert gates[2]["text"] > gates[0]["text"] + 0.05, gates              # cold-start domain leans on text
