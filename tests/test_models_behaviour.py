"""User behaviour: encoder shapes and masking, encode_frame, the use_behaviour switch, training, Scorer, checkpoints."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from model_fixture import write_folders
from models import checkpoint as ckpt_io
from models.architectures import MODEL_NAMES, build_model
from models.batches import DeviceData
from models.behaviour_inputs import UserBehaviour
from models.engine import TrainConfig, behaviour_lengths, load_split, predict
from models.finetune import FinetuneConfig, finetune
from models.inference import Scorer
from models.layers.behaviour import BehaviourEncoder, TargetAttention
from models.spec import FeatureSpec
from models.train import train
from models.training_data import TextTable, TrainingFolder, encode_frame, feature_spec
from models.vocab import Vocabularies

K, B, D, L, LQ, E = 3, 12, 8, 5, 3, 16
SPEC = FeatureSpec(n_domains=K, domain_tasks=["search", "rec", "rec"], n_users=30, n_items=40, n_queries=10,
                   cat_cardinalities=[4], n_num=3, text_dim=D, behaviour_length=L, behaviour_query_length=LQ,
                   behaviour_num_fields=[1, 2])
SMALL = {"hidden": E, "dropout": 0.0}


def make_batch(seed: int = 0, b: int = B, length: int = L, query_length: int = LQ) -> dict[str, torch.Tensor]:
    """Rows 0..2 have no history at all; the others 1..length clicked items / 0..query_length queries."""
    g = torch.Generator().manual_seed(seed)
    domain = torch.arange(b) % K
    n_items = torch.randint(1, length + 1, (b,), generator=g)
    n_items[:3] = 0
    n_queries = torch.randint(0, query_length + 1, (b,), generator=g)
    n_queries[:3] = 0
    mask = (torch.arange(length)[None] < n_items[:, None]).float()
    qmask = (torch.arange(query_length)[None] < n_queries[:, None]).float()
    return {
        "domain": domain,
        "user": torch.randint(0, 30, (b,), generator=g),
        "item": torch.randint(0, 40, (b,), generator=g),
        "query": torch.randint(0, 10, (b,), generator=g),
        "cat": torch.randint(0, 4, (b, 1), generator=g),
        "num": torch.randn(b, 3, generator=g),
        "num_mask": torch.ones(b, 3),
        "item_emb": torch.randn(b, D, generator=g),
        "query_emb": torch.randn(b, D, generator=g),
        "has_item_text": torch.ones(b),
        "has_query": (domain == 0).float(),
        "label": (torch.rand(b, generator=g) > 0.5).float(),
        "beh_item": torch.randint(0, 40, (b, length), generator=g) * mask.long(),
        "beh_mask": mask,
        "beh_item_emb": torch.randn(b, length, D, generator=g) * mask[..., None],
        "beh_query_emb": torch.randn(b, query_length, D, generator=g) * qmask[..., None],
        "beh_query_mask": qmask,
    }


def build(name="srf", spec=SPEC, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(name, spec, **{**SMALL, **kw}).eval()


def garbage_padding(batch, seed=5):
    """The same histories with random content at every padded position."""
    g = torch.Generator().manual_seed(seed)
    pad, qpad = batch["beh_mask"] == 0, batch["beh_query_mask"] == 0
    return dict(batch,
                beh_item=torch.where(pad, torch.randint(0, 40, pad.shape, generator=g), batch["beh_item"]),
                beh_item_emb=torch.where(pad[..., None], torch.randn(*pad.shape, D, generator=g) * 50,
                                         batch["beh_item_emb"]),
                beh_query_emb=torch.where(qpad[..., None], torch.randn(*qpad.shape, D, generator=g) * 50,
                                          batch["beh_query_emb"]))


# ------------------------------------------------------------------------------------------- spec and encoder

def test_spec_behaviour_fields_roundtrip_and_old_checkpoints():
    assert FeatureSpec.from_dict(SPEC.to_dict()) == SPEC and SPEC.has_behaviour
    old = {k: v for k, v in SPEC.to_dict().items() if not k.startswith("behaviour")}
    spec = FeatureSpec.from_dict(old)
    assert (spec.behaviour_length, spec.behaviour_query_length, spec.behaviour_num_fields) == (0, 0, [])
    assert not spec.has_behaviour
    with pytest.raises(ValueError, match="behaviour_num_fields"):
        dataclasses.replace(SPEC, behaviour_num_fields=[3])
    with pytest.raises(ValueError, match="behaviour_length"):
        dataclasses.replace(SPEC, behaviour_length=-1)


def test_behaviour_encoder_shapes():
    torch.manual_seed(0)
    enc = BehaviourEncoder(SPEC, id_dim=E, text=True)
    assert (enc.id_out, enc.text_out) == BehaviourEncoder.output_dims(SPEC, E, True) == (2 * E, D + 3)
    batch = make_batch()
    table = torch.nn.Embedding(40, E)
    assert enc.id_side(batch, table, table(batch["item"])).shape == (B, 2 * E)
    assert enc.text_side(batch, batch["item_emb"]).shape == (B, D + 3)
    # Sides are built only where there is a sequence / an aspect for them.
    assert BehaviourEncoder.output_dims(SPEC, 0, True) == (0, D + 3)
    assert BehaviourEncoder.output_dims(SPEC, E, False) == (2 * E, 0)
    assert BehaviourEncoder.output_dims(dataclasses.replace(SPEC, behaviour_query_length=0), E, True) == (
        2 * E, D + 2)
    assert BehaviourEncoder.output_dims(dataclasses.replace(SPEC, behaviour_length=0), E, True) == (0, 1)


def test_target_attention_masked_softmax_never_nan():
    torch.manual_seed(0)
    att = TargetAttention(D, 8)
    q, k = torch.randn(4, D), torch.randn(4, 6, D)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]]).float()
    w = att(q, k, mask)
    assert torch.isfinite(w).all() and (w[mask == 0] == 0).all()
    torch.testing.assert_close(w.sum(-1), torch.tensor([1.0, 1.0, 0.0, 1.0]))
    assert w[3, 2] == 1
    # The blockwise first layer is exactly the MLP on the concatenation [q; k; q - k; q * k].
    cat = torch.cat([q[:, None].expand_as(k), k, q[:, None] - k, q[:, None] * k], -1)
    ref = torch.softmax(att.out(torch.relu(att.first(cat))).squeeze(-1), -1)
    torch.testing.assert_close(w[1], ref[1])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_padding_and_length_do_not_change_the_output(name):
    model = build(name)
    batch = make_batch()
    ref = model(batch)["logit"]
    torch.testing.assert_close(model(garbage_padding(batch))["logit"], ref)
    longer = dict(batch)   # three more padded positions on both sequences
    for key, extra in (("beh_item", 3), ("beh_mask", 3), ("beh_item_emb", 3), ("beh_query_emb", 3),
                       ("beh_query_mask", 3)):
        t = batch[key]
        longer[key] = torch.cat([t, torch.zeros(t.shape[0], extra, *t.shape[2:], dtype=t.dtype)], 1)
    torch.testing.assert_close(model(garbage_padding(longer))["logit"], ref)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_one_history_broadcast_equals_it_repeated_per_row(name):
    # Online ranking passes one user's history with leading dimension 1; the model broadcasts it over the rows.
    model = build(name)
    batch = make_batch()
    one = {k: (v[5:6] if k.startswith("beh_") else v) for k, v in batch.items()}
    repeated = {k: (v.expand(B, *v.shape[1:]) if k.startswith("beh_") else v) for k, v in one.items()}
    torch.testing.assert_close(model(one)["logit"], model(repeated)["logit"])


def test_empty_history_is_the_learned_no_history_path():
    model = build("srf")
    enc = model.encoder.behaviour
    batch = make_batch()
    empty = torch.zeros(B, dtype=torch.bool)
    empty[:3] = True
    # All-masked rows: the id side is exactly the learned vector, whatever the padding holds; no NaN anywhere.
    table = model.encoder.aspects["id"].item
    ids = enc.id_side(garbage_padding(batch), table, table(batch["item"]))
    assert torch.isfinite(ids).all()
    torch.testing.assert_close(ids[:3], enc.no_history_id.expand(3, -1))
    out = model(garbage_padding(batch))["logit"]
    assert torch.isfinite(out).all()
    # Zero-length sequences (a model reads any length) give the same as all-padding ones.
    none = {**batch, "beh_item": batch["beh_item"][:, :0], "beh_mask": batch["beh_mask"][:, :0],
            "beh_item_emb": batch["beh_item_emb"][:, :0], "beh_query_emb": batch["beh_query_emb"][:, :0],
            "beh_query_mask": batch["beh_query_mask"][:, :0]}
    torch.testing.assert_close(model(none)["logit"][:3], out[:3])
    # Items clicked but none with text: the text side falls back to its learned vectors too.
    t_item = model.encoder.aspects["text"].no_item_text.expand(B, -1)
    no_text = dict(batch, beh_item_emb=torch.zeros_like(batch["beh_item_emb"]),
                   beh_query_mask=torch.zeros_like(batch["beh_query_mask"]))
    torch.testing.assert_close(enc.text_side(no_text, t_item), enc.text_side(dict(no_text, beh_mask=torch.zeros(
        B, L)), t_item))
    # Gradients through an all-empty batch are finite (the masked softmax has no -inf).
    model.train()
    all_empty = dict(batch, beh_mask=torch.zeros(B, L), beh_query_mask=torch.zeros(B, LQ))
    model(all_empty)["logit"].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---------------------------------------------------------------------------------------- the use_behaviour switch

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_use_behaviour_false_builds_nothing_and_ignores_behaviour(name):
    model = build(name, use_behaviour=False)
    assert model.config()["use_behaviour"] is False and not model.uses_behaviour
    assert not any("behaviour" in n for n, _ in model.named_parameters())
    batch = make_batch()
    ref = model(batch)["logit"]
    without = {k: v for k, v in batch.items() if not k.startswith("beh_")}
    torch.testing.assert_close(model(without)["logit"], ref)
    num = batch["num"].clone()
    num[:, [1, 2]] = torch.randn(B, 2) * 10   # the num_beh_* fields
    torch.testing.assert_close(model(dict(batch, num=num))["logit"], ref)
    num[:, 0] += 1                            # an ordinary numeric field still counts
    assert not torch.allclose(model(dict(batch, num=num))["logit"], ref)
    # With behaviour the same inputs matter (and the parameter-level partition still holds).
    on = build(name)
    assert on.uses_behaviour and on.config()["use_behaviour"] is True
    names = on.named_parameter_levels()
    assert {n for n, _ in on.named_parameters() if ".behaviour." in n} <= set(names["L0"])
    assert not torch.allclose(on(dict(batch, num=num))["logit"], on(batch)["logit"])
    shuffled = dict(batch, beh_item_emb=batch["beh_item_emb"].flip(0), beh_mask=batch["beh_mask"].flip(0),
                    beh_item=batch["beh_item"].flip(0))
    assert not torch.allclose(on(shuffled)["logit"], on(batch)["logit"])


def test_spec_without_sequences_builds_no_behaviour_encoder():
    spec = dataclasses.replace(SPEC, behaviour_length=0, behaviour_query_length=0, behaviour_num_fields=[])
    on, off = build("srf", spec), build("srf", spec, use_behaviour=False)
    assert on.encoder.behaviour is None and not on.uses_behaviour
    assert [n for n, _ in on.named_parameters()] == [n for n, _ in off.named_parameters()]
    batch = {k: v for k, v in make_batch().items() if not k.startswith("beh_")}
    off.load_state_dict(on.state_dict())
    torch.testing.assert_close(on(batch)["logit"], off(batch)["logit"])


def test_missing_behaviour_keys_raise_a_clear_error():
    batch = {k: v for k, v in make_batch().items() if not k.startswith("beh_")}
    with pytest.raises(KeyError, match="behaviour"):
        build("srf")(batch)


# ---------------------------------------------------------------------------------------------- encode_frame

def test_encode_frame_padding_truncation_and_oov():
    train_frame = pd.DataFrame({"domain_id": [0, 0, 1], "user_id": ["u1", "u2", "u1"], "item_id": ["a", "b", "c"],
                                "label": [0, 1, 0]})
    vocab = Vocabularies.build(train_frame)
    items = TextTable(pd.Index(["a", "c", "x"], dtype=object), np.arange(4 * 2, dtype=np.float32).reshape(4, 2))
    queries = TextTable(pd.Index(["q1", "q2"], dtype=object), np.ones((3, 2), np.float32))
    frame = train_frame.assign(
        beh_item_ids=[["a", "zz", "b"], None, np.array(["c", None, "a", "b", "x", "a"], dtype=object)],
        beh_query_ids=[[], ["q2", "q9"], ["q1", "q2", "q1", "q2"]])
    cols = encode_frame(frame, vocab, items, queries, 2, behaviour_length=4, behaviour_query_length=3)
    a, b, c = (int(vocab.item.encode(pd.Series([v]))[0]) for v in "abc")
    assert min(a, b, c) > 0
    assert cols["beh_item"].tolist() == [[a, 0, b, 0], [0, 0, 0, 0], [c, 0, a, b]]   # "zz", "x" OOV; cut at 4
    assert cols["beh_mask"].tolist() == [[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1]]  # a null element is no event
    assert cols["beh_item_text"].tolist() == [[1, 0, 0, 0], [0, 0, 0, 0], [2, 0, 1, 0]]
    assert cols["beh_query_text"].tolist() == [[0, 0, 0], [2, 0, 0], [1, 2, 1]]
    assert cols["beh_query_mask"].tolist() == [[0, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert cols["beh_item"].dtype == np.int64 and cols["beh_mask"].dtype == np.float32
    assert "beh_item" not in encode_frame(frame, vocab, items, queries, 2)   # lengths 0: nothing encoded
    with pytest.raises(ValueError, match="beh_item_ids"):
        encode_frame(train_frame, vocab, items, queries, 2, behaviour_length=4)
    # The device batch gathers the text vectors of the sequences; behaviour=False leaves them out.
    data = DeviceData(cols, items.matrix, queries.matrix)
    batch = data.batch(torch.arange(3))
    assert batch["beh_item_emb"].shape == (3, 4, 2) and batch["beh_query_emb"].shape == (3, 3, 2)
    torch.testing.assert_close(batch["beh_item_emb"][2, 2], torch.from_numpy(items.matrix[1]))
    assert not any(k.startswith("beh_") for k in data.batch(torch.arange(3), behaviour=False))


# ------------------------------------------------------------------------------- training on behaviour folders

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_folders(tmp_path_factory.mktemp("beh"), n_warm=600, n_cold=2000, behaviour=6,
                         behaviour_strength=6.0)


def test_fixture_folders_carry_behaviour(folders):
    folder = TrainingFolder.open(folders["coldstart"])
    assert folder.behaviour_lengths == (6, 4)
    frame = folder.read("train")
    vocab = Vocabularies.build(frame)
    spec = feature_spec(folder.meta, vocab, folder.text_dim)
    assert (spec.behaviour_length, spec.behaviour_query_length) == (6, 4)
    assert [vocab.num_columns[j] for j in spec.behaviour_num_fields] == [
        "num_beh_category_share", "num_beh_clicks", "num_beh_domain_share"]
    lengths = frame["beh_item_ids"].map(lambda v: 0 if v is None else len(v))
    assert frame["beh_item_ids"].isna().any() and (lengths > 6).any() and (lengths == 0).any()


@pytest.fixture(scope="module")
def joint(folders):
    folder = TrainingFolder.open(folders["joint"])
    frame = folder.read("train")
    vocab = Vocabularies.build(frame)
    spec = feature_spec(folder.meta, vocab, folder.text_dim)
    return spec, load_split(folder, "train", vocab, torch.device("cpu"), frame, behaviour_lengths(spec))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_a_step_with_behaviour(joint, name):
    spec, split = joint
    torch.manual_seed(0)
    model = build_model(name, spec, hidden=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = split.data.batch(torch.arange(256))
    out = model(batch)
    loss = F.binary_cross_entropy_with_logits(out["logit"], batch["label"]) + 0.01 * out["reg_loss"]
    before = {n: p.detach().clone() for n, p in model.named_parameters() if ".behaviour." in n}
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert before and torch.isfinite(loss)
    for n, p in model.named_parameters():
        if ".behaviour." in n:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
    unchanged = [n for n, p in model.named_parameters() if n in before and torch.equal(before[n], p)]
    assert not unchanged


def _cfg(**kw):
    base = dict(model="srf", model_kwargs={"hidden": 16}, epochs=8, batch_size=256, num_threads=1, checkpoint_every=0,
                checkpoint_seconds=0, progress=False, patience=0)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("beh_runs")
    with_beh = train(_cfg(), folders["coldstart"], out / "with")
    without = train(_cfg(model_kwargs={"hidden": 16, "use_behaviour": False}), folders["coldstart"], out / "without")
    return with_beh, without


def test_behaviour_beats_no_behaviour_on_held_out_rows(trained):
    # The cold-start items are all new: the text side of the history (profile . candidate text) is what transfers.
    with_beh, without = trained
    assert with_beh["metrics"]["auc"] > without["metrics"]["auc"] + 0.02, (with_beh["metrics"], without["metrics"])


def test_checkpoint_round_trip(trained, folders):
    ckpt = ckpt_io.load(trained[0]["checkpoint"])
    model, spec, vocab = ckpt_io.build_from(ckpt)
    assert spec.behaviour_length == 6 and spec.behaviour_query_length == 4 and len(spec.behaviour_num_fields) == 3
    assert ckpt["model_config"]["use_behaviour"] is True and model.uses_behaviour
    off, off_spec, _ = ckpt_io.build_from(ckpt_io.load(trained[1]["checkpoint"]))
    assert not off.uses_behaviour and off_spec.behaviour_num_fields == spec.behaviour_num_fields
    folder = TrainingFolder.open(folders["coldstart"])
    split = load_split(folder, "valid", vocab, torch.device("cpu"))
    probs = predict(model, split.data, 1024)[0]
    assert np.isfinite(probs).all()
    cfg = dict(ckpt["model_config"])
    rebuilt = build_model(cfg.pop("name"), spec.to_dict(), **cfg)
    rebuilt.load_state_dict(ckpt["state_dict"])
    np.testing.assert_allclose(predict(rebuilt, split.data, 1024)[0], probs)
    # Saved and loaded again (model_payload -> save -> load -> build_from): the same scores.
    path = trained[0]["checkpoint"].parent / "copy.pt"
    ckpt_io.save(path, ckpt_io.model_payload(model, spec, vocab, ckpt["meta"]))
    again, again_spec, _ = ckpt_io.build_from(ckpt_io.load(path))
    assert again_spec == spec
    np.testing.assert_allclose(predict(again, split.data, 1024)[0], probs)


def _user_rows(folder: TrainingFolder, frame: pd.DataFrame, user: str):
    rows = frame[frame["user_id"] == user]
    ids = rows["beh_item_ids"].iloc[0]
    ids = [] if ids is None else list(ids)
    qids = rows["beh_query_ids"].iloc[0]
    qids = [] if qids is None else list(qids)
    beh = UserBehaviour(item_ids=ids, item_emb=folder.item_text.matrix[folder.item_text.lookup(ids)],
                        query_emb=folder.query_text.matrix[folder.query_text.lookup(qids)])
    item_emb = folder.item_text.matrix[folder.item_text.lookup(rows["item_id"])]
    query_emb = folder.query_text.matrix[folder.query_text.lookup(rows["query_id"])]
    return rows, beh, item_emb, query_emb


def test_scorer_with_and_without_behaviour(trained, folders):
    scorer = Scorer.from_checkpoint(trained[0]["checkpoint"])
    assert scorer.uses_behaviour
    folder = TrainingFolder.open(folders["coldstart"])
    frame = folder.read("valid")
    split = load_split(folder, "valid", scorer.vocab, torch.device("cpu"), frame)
    probs = predict(scorer.model, split.data, 1024)[0]
    lengths = frame["beh_item_ids"].map(lambda v: 0 if v is None else len(v))
    checked = 0
    for user in frame.loc[lengths > 6, "user_id"].unique()[:3].tolist() + frame.loc[lengths == 0, "user_id"].unique(
            )[:2].tolist():
        rows, beh, item_emb, query_emb = _user_rows(folder, frame, user)
        # The online path (one history broadcast to the rows, cut to L) reproduces the batch path.
        got = scorer.score(rows, item_emb, query_emb, beh)
        np.testing.assert_allclose(got, probs[rows.index.to_numpy()], rtol=1e-5, atol=1e-6)
        checked += 1
    assert checked == 5
    rows, beh, item_emb, query_emb = _user_rows(folder, frame, frame.loc[lengths > 2, "user_id"].iloc[0])
    with_beh = scorer.score(rows, item_emb, query_emb, beh)
    none = scorer.score(rows, item_emb, query_emb)
    assert not np.allclose(with_beh, none)
    np.testing.assert_allclose(scorer.score(rows, item_emb, query_emb, UserBehaviour()), none, rtol=1e-6)
    np.testing.assert_allclose(scorer.score(rows, item_emb, query_emb, UserBehaviour(item_ids=beh.item_ids)),
                               scorer.score(rows, item_emb, query_emb, dataclasses.replace(
                                   beh, item_emb=np.zeros_like(beh.item_emb), query_emb=None)), rtol=1e-6)
    with pytest.raises(ValueError, match="item_emb"):
        scorer.score(rows, item_emb, query_emb, UserBehaviour(item_ids=["a", "b"], item_emb=np.zeros((1, 16))))
    # A model without behaviour ignores the argument.
    off = Scorer.from_checkpoint(trained[1]["checkpoint"])
    assert not off.uses_behaviour
    np.testing.assert_allclose(off.score(rows, item_emb, query_emb, beh), off.score(rows, item_emb, query_emb))


def test_finetune_keeps_working_with_behaviour(folders, tmp_path):
    pretrained = train(_cfg(epochs=1), folders["pretrain"], tmp_path / "pre")["checkpoint"]
    pre = ckpt_io.load(pretrained)
    cfg = FinetuneConfig(model_kwargs={}, epochs=1, batch_size=256, num_threads=1, checkpoint_every=0,
                         checkpoint_seconds=0, progress=False, freeze="L0")
    res = finetune(cfg, folders["coldstart"], pretrained, tmp_path / "ft")
    tuned = ckpt_io.load(res["checkpoint"])
    assert np.isfinite(res["metrics"]["auc"])
    beh = [k for k in pre["state_dict"] if ".behaviour." in k]
    assert beh and all(torch.equal(pre["state_dict"][k], tuned["state_dict"][k]) for k in beh)   # L0 frozen
    assert FeatureSpec.from_dict(tuned["feature_spec"]).behaviour_length == 6
