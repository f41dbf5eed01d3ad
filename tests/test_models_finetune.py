"""Cold-start fine-tuning: frozen levels stay bit-identical, others move; tower init; scratch; CLI."""
import json

import pyarrow.parquet as pq
import pytest
import torch

from model_fixture import DOMAINS
from models import checkpoint as ckpt_io
from models.evaluate import evaluate
from models.finetune import FinetuneConfig, closest_domain, finetune, level_dir, main


def _levels(ckpt_path, init_domain=None):
    model, _, _ = ckpt_io.build_from(ckpt_io.load(ckpt_path))
    if init_domain is not None:          # what finetune starts from: domain 2's slots copied from domain 1
        model.init_domain(*init_domain)
    names = model.named_parameter_levels()
    state = dict(model.named_parameters())
    return {lv: {n: state[n].detach().clone() for n in ns} for lv, ns in names.items()}


def fcfg(**kw):
    return FinetuneConfig(**{"epochs": 2, "batch_size": 256, "num_threads": 1, "progress": False,
                             "checkpoint_every": 0, **kw})


@pytest.mark.parametrize("freeze,frozen", [("L0", {"L0"}), ("L0+L1", {"L0", "L1"}), ("none", set())])
def test_frozen_levels_bit_identical_others_move(tiny_pretrained, tmp_path, freeze, frozen):
    folders, pre = tiny_pretrained
    res = finetune(fcfg(freeze=freeze), folders["coldstart"], pre, tmp_path)
    before, after = _levels(pre, (2, 1)), _levels(res["checkpoint"])
    for lv in ("L0", "L1", "L2"):
        same = [torch.equal(before[lv][n], after[lv][n]) for n in before[lv]]
        if lv in frozen:
            assert all(same), f"{lv} changed although frozen"
        else:
            assert not all(same), f"{lv} did not train"
    ck = ckpt_io.load(res["checkpoint"])
    assert ck["finetune"]["freeze"] == freeze and ck["finetune"]["target_domains"] == [2]
    assert ck["vocab"]["item"] == ckpt_io.load(pre)["vocab"]["item"]     # pretrained vocab reused
    assert res["metrics"]["auc"] > 0.55 and set(res["metrics"]["domain_auc"]) == {2}


def test_new_tower_initialised_from_closest_domain(tiny_pretrained, tmp_path):
    folders, pre = tiny_pretrained
    meta = {"domains": DOMAINS}
    assert closest_domain(2, meta, [100, 50, 0]) == 1          # same task (rec) beats more rows
    assert closest_domain(1, {"domains": DOMAINS[:1] + [{**DOMAINS[1], "role": "coldstart"}] + DOMAINS[2:]},
                          [100, 0, 0]) == 0                    # no same-task domain: any pretrain domain
    res = finetune(fcfg(epochs=1, max_steps=1, lr=0.0), folders["coldstart"], pre, tmp_path)
    state = ckpt_io.load(tmp_path / "last.pt")["state_dict"]
    tower = [k for k in state if k.startswith("towers.") and k.endswith("weight")][0]
    assert torch.equal(state[tower][2], state[tower][1])        # lr 0: still the copy of domain 1's tower
    assert res["stopped"] == "max_steps"


def test_scratch_trains_own_vocab_and_cli(tiny_pretrained, tmp_path):
    folders, pre = tiny_pretrained
    main(["--data", str(folders["coldstart"]), "--pretrained", str(pre), "--freeze", "scratch", "--scratch-model",
          "dnn", "--model-arg", "hidden=8", "--out", str(tmp_path), "--epochs", "1", "--batch-size", "256",
          "--no-progress", "--num-threads", "1"])
    ck = ckpt_io.load(tmp_path / "checkpoint.pt")
    assert ck["model_config"]["name"] == "dnn" and ck["vocab"]["item"] != ckpt_io.load(pre)["vocab"]["item"]
    out = evaluate(tmp_path / "checkpoint.pt", folders["coldstart"], "test", device="cpu")
    assert 0 <= out["auc"] <= 1 and json.loads((tmp_path / "metrics.json").read_text())["curve"]


def test_cli_freeze_auto_keeps_the_level_with_the_best_valid_auc(tiny_pretrained, tmp_path, capsys):
    folders, pre = tiny_pretrained
    main(["--data", str(folders["coldstart"]), "--pretrained", str(pre), "--freeze", "auto", "--out", str(tmp_path),
          "--epochs", "1", "--batch-size", "256", "--no-progress", "--num-threads", "1"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    valid_auc = {level: json.loads((tmp_path / folder / "metrics.json").read_text())["metrics"]["auc"]
                 for level, folder in (("L0", "L0"), ("L0+L1", "L0_L1"), ("none", "none"))}
    assert len(set(valid_auc.values())) == 3, valid_auc          # the levels really differ, so the choice matters
    best = max(valid_auc, key=valid_auc.get)
    assert summary["freeze"] == best and summary["valid_auc_by_freeze"] == valid_auc
    assert summary["checkpoint"] == str(level_dir(tmp_path, best) / "checkpoint.pt")
    assert ckpt_io.load(summary["checkpoint"])["finetune"]["freeze"] == best
    assert not (tmp_path / "checkpoint.pt").exists()


def test_unknown_freeze_level_is_refused_before_training(tiny_pretrained, tmp_path):
    folders, pre = tiny_pretrained
    with pytest.raises(ValueError, match="freeze='L9'"):
        finetune(fcfg(freeze="L9"), folders["coldstart"], pre, tmp_path)


def test_trailing_window_keeps_the_last_days_and_refuses_an_empty_or_undated_split():
    import pandas as pd

    from models.finetune import trailing_window

    days = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta([0, 1, 2, 5, 6, 6], unit="D")
    frame = pd.DataFrame({"event_timestamp": days, "label": [0, 1, 0, 1, 0, 1]})
    assert len(trailing_window(frame, 0)) == 6                     # no window: every row
    assert trailing_window(frame, 2)["event_timestamp"].dt.day.tolist() == [6, 7, 7]
    assert len(trailing_window(frame, 7)) == 6
    with pytest.raises(ValueError, match="event_timestamp"):
        trailing_window(frame.drop(columns="event_timestamp"), 3)
    with pytest.raises(ValueError, match="no training rows"):
        trailing_window(frame.iloc[:0], 3)


def test_warm_start_keeps_the_fine_tuned_checkpoint_and_trains_only_the_window(tiny_pretrained, tmp_path):
    """The daily refresh (init_from=keep) starts from the champion's own cold-start parameters (the default,
    closest, re-initialises the cold-start tower: test_new_tower_initialised_from_closest_domain)."""
    folders, pre = tiny_pretrained
    champion = finetune(fcfg(freeze="none"), folders["coldstart"], pre, tmp_path / "champion")["checkpoint"]
    before = ckpt_io.load(champion)["state_dict"]
    finetune(fcfg(freeze="none", init_from="keep", window_days=1, epochs=1, max_steps=1, lr=0.0),
                    folders["coldstart"], champion, tmp_path / "refresh")
    after = ckpt_io.load(tmp_path / "refresh" / "last.pt")["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before), "lr 0 warm start changed the champion's weights"
    info = json.loads((tmp_path / "refresh" / "metrics.json").read_text())["finetune"]
    n_train = pq.read_metadata(folders["coldstart"] / "train.parquet").num_rows      # the fixture's train: one day
    assert info["init_from"] == "keep" and info["window_days"] == 1 and info["train_rows"] == n_train
