"""Model architectures: shapes, gating, divergences, parameter levels, init_domain, ablations, learnability."""
import pytest
import torch
import torch.nn.functional as F

from models.architectures import MODEL_NAMES, build_model
from models.layers.divergence import domain_js, domain_mmd, js_divergence, mmd
from models.spec import FeatureSpec

K, B, D = 4, 32, 8
SPEC = FeatureSpec(n_domains=K, domain_tasks=["search", "rec", "rec", "search"], n_users=50, n_items=60,
                   n_queries=20, cat_cardinalities=[5, 7], n_num=3, text_dim=D)
SMALL = {"hidden": 16, "dropout": 0.0}


def make_batch(seed: int = 0, b: int = B) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    domain = torch.arange(b) % K  # every domain present
    return {
        "domain": domain,
        "user": torch.randint(0, 50, (b,), generator=g),
        "item": torch.randint(0, 60, (b,), generator=g),
        "query": torch.randint(0, 20, (b,), generator=g),
        "cat": torch.stack([torch.randint(0, 5, (b,), generator=g), torch.randint(0, 7, (b,), generator=g)], 1),
        "num": torch.randn(b, 3, generator=g),
        "num_mask": (torch.rand(b, 3, generator=g) > 0.3).float(),
        "item_emb": torch.randn(b, D, generator=g),
        "query_emb": torch.randn(b, D, generator=g),
        "has_item_text": (torch.rand(b, generator=g) > 0.2).float(),
        "has_query": (domain % 3 == 0).float(),
        "label": (torch.rand(b, generator=g) > 0.5).float(),
    }


def build(name, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(name, SPEC, **{**SMALL, **kw})


def test_spec_roundtrip_and_validation():
    assert FeatureSpec.from_dict({**SPEC.to_dict(), "future_field": 1}) == SPEC
    with pytest.raises(ValueError, match="domain_tasks"):
        FeatureSpec(2, ["rec"], 5, 5, 5)
    with pytest.raises(ValueError, match="unknown domain task"):
        FeatureSpec(1, ["ads"], 5, 5, 5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes_config_roundtrip_and_levels(name):
    model = build(name)
    out = model(make_batch())
    assert out["logit"].shape == (B,) and torch.isfinite(out["logit"]).all()
    assert out["reg_loss"].shape == () and torch.isfinite(out["reg_loss"])
    # config() rebuilds the same architecture: the state dict loads strictly and gives the same logits.
    cfg = model.config()
    assert cfg["name"] == name
    clone = build_model(cfg.pop("name"), SPEC.to_dict(), **cfg)
    clone.load_state_dict(model.state_dict())
    model.eval(), clone.eval()
    torch.testing.assert_close(clone(make_batch())["logit"], model(make_batch())["logit"])
    # Levels partition the parameters: each exactly once, none left out.
    levels = model.parameter_levels()
    ids = [id(p) for ps in levels.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert all(levels[lv] for lv in ("L0", "L1", "L2"))
    names = model.named_parameter_levels()
    assert all(n.startswith("encoder.") for n in names["L0"])
    assert not any(n.startswith("encoder.") for n in names["L1"] + names["L2"])


def test_srf_levels_follow_spec():
    names = build("srf").named_parameter_levels()
    assert any(n.startswith("encoder.aspects.text.") for n in names["L0"])
    assert {n.split(".")[0] for n in names["L1"]} == {"fusion", "adapt", "mmoe"}
    assert {n.split(".")[0] for n in names["L2"]} == {"towers"}


def test_domain_gating_sums_to_one_and_depends_on_domain():
    model = build("srf", gating="domain").eval()
    batch = make_batch()
    w = model(batch)["gate_weights"]
    assert w.shape == (B, 3) and model(batch)["aspect_names"] == ("id", "sparse", "text")
    torch.testing.assert_close(w.sum(-1), torch.ones(B))
    other = dict(batch, domain=(batch["domain"] + 1) % K)  # same rows, other domain
    assert not torch.allclose(model(other)["gate_weights"], w, atol=1e-4)


def test_mean_gating_uniform_and_cls_gating_domain_free():
    batch = make_batch()
    w = build("srf", gating="mean")(batch)["gate_weights"]
    torch.testing.assert_close(w, torch.full((B, 3), 1 / 3))
    cls = build("srf", gating="cls").eval()
    w = cls(batch)["gate_weights"]
    torch.testing.assert_close(w.sum(-1), torch.ones(B))
    assert w.std(0).max() > 1e-4  # depends on the row's aspects ...
    torch.testing.assert_close(cls(dict(batch, domain=(batch["domain"] + 1) % K))["gate_weights"], w)  # not domain


def test_js_divergence_properties():
    g = torch.Generator().manual_seed(1)
    p = torch.softmax(torch.randn(5, 8, generator=g), -1)
    q = torch.softmax(torch.randn(5, 8, generator=g), -1)
    js = js_divergence(p, q)
    assert (js >= 0).all() and (js > 1e-4).all() and (js <= torch.log(torch.tensor(2.0)) + 1e-6).all()
    torch.testing.assert_close(js, js_divergence(q, p))
    torch.testing.assert_close(js_divergence(p, p), torch.zeros(5), atol=1e-6, rtol=0)
    x = torch.randn(B, 8, generator=g)
    domain = torch.arange(B) % K
    assert domain_js(x, domain, K) > 0
    # Two domains with the same per-domain mean -> 0; a single domain in the batch -> 0.
    assert domain_js(x.repeat(2, 1), torch.cat([torch.zeros(B), torch.ones(B)]).long(), K) < 1e-7
    assert domain_js(x, torch.zeros(B, dtype=torch.long), K) == 0


def test_mmd_properties():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 8, generator=g)
    y = torch.randn(24, 8, generator=g) + 1.5
    assert mmd(x, y) > 0.05
    torch.testing.assert_close(mmd(x, y), mmd(y, x))
    assert abs(float(mmd(x, x))) < 1e-6
    assert mmd(x, y) > mmd(x, torch.randn(24, 8, generator=g))  # shifted set is farther than a same-law set
    assert domain_mmd(x, torch.zeros(20, dtype=torch.long), K) == 0


def test_reg_loss_options():
    batch = make_batch()
    assert build("srf", divergence="none")(batch)["reg_loss"] == 0
    assert build("srf", divergence="js")(batch)["reg_loss"] > 0
    assert build("srf", divergence="mmd")(batch)["reg_loss"] > 0
    one_domain = dict(batch, domain=torch.full((B,), 2))
    assert build("srf", divergence="mmd")(one_domain)["reg_loss"] == 0


@pytest.mark.parametrize("name", ["srf", "shared_bottom", "mmoe", "ple", "star"])
def test_init_domain_copies_and_means_exactly(name):
    model = build(name, **({"n_levels": 2} if name == "ple" else {}))
    model.train()(make_batch())  # give STAR's per-domain running statistics distinct values
    before = [t.detach().clone().view(K, -1) for t in model.domain_tensors()]
    assert before
    model.init_domain(3, 1)
    for old, t in zip(before, model.domain_tensors()):
        new = t.detach().view(K, -1)
        assert torch.equal(new[3], old[1]) and torch.equal(new[:3], old[:3])
    # Every domain-specific part was copied: domain 3 now scores any row exactly like domain 1.
    model.eval()
    batch = make_batch()
    torch.testing.assert_close(model(dict(batch, domain=torch.full((B,), 3)))["logit"],
                               model(dict(batch, domain=torch.full((B,), 1)))["logit"])
    model.init_domain(2, [0, 1])
    for old, t in zip(before, model.domain_tensors()):
        torch.testing.assert_close(t.detach().view(K, -1)[2], (old[0] + old[1]) / 2)
    model.init_domain(0, None)
    for t in model.domain_tensors():
        v = t.detach().view(K, -1)
        torch.testing.assert_close(v[0], v[1:].mean(0))
    with pytest.raises(ValueError):
        model.init_domain(1, 1)


def test_dnn_ignores_domain_and_init_domain_is_noop():
    model = build("dnn").eval()
    batch = make_batch()
    torch.testing.assert_close(model(dict(batch, domain=torch.zeros(B, dtype=torch.long)))["logit"],
                               model(batch)["logit"])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.init_domain(3, 0)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_ablations_remove_aspects():
    batch = make_batch()
    for kw, names in [({"use_text": False}, ("id", "sparse")), ({"use_id": False, "use_sparse": False}, ("text",)),
                      ({"use_sparse": False}, ("id", "text"))]:
        model = build("srf", **kw)
        out = model(batch)
        assert out["aspect_names"] == names and out["gate_weights"].shape == (B, len(names))
        pnames = [n for n, _ in model.named_parameters()]
        for aspect in {"id", "sparse", "text"} - set(names):
            assert not any(n.startswith(f"encoder.aspects.{aspect}.") for n in pnames)
    # Without text the text inputs no longer matter.
    model = build("srf", use_text=False).eval()
    torch.testing.assert_close(model(dict(batch, item_emb=torch.randn(B, D)))["logit"], model(batch)["logit"])
    with pytest.raises(ValueError, match="at least one"):
        build("mmoe", use_id=False, use_sparse=False, use_text=False)


def test_masked_numeric_fields_and_absent_text_contribute_nothing():
    model = build("srf").eval()
    batch = make_batch()
    ref = model(batch)["logit"]
    noisy_num = torch.where(batch["num_mask"].bool(), batch["num"], torch.randn(B, 3) * 100)
    noisy_item = torch.where(batch["has_item_text"].bool()[:, None], batch["item_emb"], torch.randn(B, D))
    noisy_query = torch.where(batch["has_query"].bool()[:, None], batch["query_emb"], torch.randn(B, D))
    noisy = model(dict(batch, num=noisy_num, item_emb=noisy_item, query_emb=noisy_query))
    torch.testing.assert_close(noisy["logit"], ref)
    assert not torch.allclose(model(dict(batch, num=batch["num"] + 1))["logit"], ref)  # present fields do matter


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_unseen_ids_and_missing_everything(name):
    batch = make_batch()
    for key in ("user", "item", "query"):
        batch[key] = torch.zeros(B, dtype=torch.long)
    batch.update(cat=torch.zeros(B, 2, dtype=torch.long), num_mask=torch.zeros(B, 3), has_query=torch.zeros(B),
                 has_item_text=torch.zeros(B), item_emb=torch.zeros(B, D), query_emb=torch.zeros(B, D))
    out = build(name)(batch)
    assert torch.isfinite(out["logit"]).all() and torch.isfinite(out["reg_loss"])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_few_steps_reduce_loss(name):
    model = build(name)
    batch = make_batch()
    batch["label"] = (batch["item"] % 2).float()  # learnable from the item id
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        out = model(batch)
        loss = F.binary_cross_entropy_with_logits(out["logit"], batch["label"]) + 0.1 * out["reg_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize("kw", [{}, {"divergence": "mmd"}, {"gating": "cls", "domain_adaptation": "film"},
                                {"gating": "mean", "domain_adaptation": "none", "divergence": "none"}])
def test_srf_every_parameter_gets_a_gradient(kw):
    model = build("srf", **kw)
    out = model(make_batch())
    (out["logit"].sum() + out["reg_loss"]).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_baselines_use_every_parameter(name):
    model = build(name, **({"n_levels": 2} if name == "ple" else {}))
    model(make_batch())["logit"].sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # DDP needs no find_unused_parameters


def test_deterministic_under_manual_seed():
    outs = []
    for _ in range(2):
        model = build("srf", seed=7, dropout=0.3).train()
        torch.manual_seed(11)
        outs.append(model(make_batch())["logit"])
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("wide_deep", SPEC)
    with pytest.raises(ValueError, match="gating"):
        build("srf", gating="attention")
    with pytest.raises(ValueError, match="divergence"):
        build("srf", divergence="kl")
