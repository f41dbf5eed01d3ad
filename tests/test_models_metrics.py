"""models.metrics against scikit-learn and brute-force references, on random data with many ties."""
import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from models import metrics as M


def _data(seed, n=400, levels=7, groups=25):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, n) / levels          # few distinct values: ties everywhere
    labels = (rng.random(n) < 0.2 + 0.6 * scores).astype(int)
    users = rng.integers(0, groups, n)
    return labels, scores, users


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed):
    y, s, _ = _data(seed)
    assert M.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.auc(y, s + np.random.default_rng(seed).normal(size=len(s))) != pytest.approx(roc_auc_score(y, s), abs=1e-6)


def test_auc_edge_cases():
    assert np.isnan(M.auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert M.auc([0, 1], [0.5, 0.5]) == 0.5
    assert M.auc([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]) == 1.0


def test_domain_auc_and_gauc_vs_brute_force():
    y, s, u = _data(1, n=600)
    d = u % 3
    got = M.domain_auc(y, s, d)
    assert got == {k: pytest.approx(roc_auc_score(y[d == k], s[d == k])) for k in range(3)}
    num = den = 0.0
    for g in np.unique(u):
        m = u == g
        if 0 < y[m].sum() < m.sum():                       # users with both classes only
            num += roc_auc_score(y[m], s[m]) * m.sum()
            den += m.sum()
    assert M.gauc(y, s, u) == pytest.approx(num / den, abs=1e-12)
    # string user ids give the same answer as ints
    assert M.gauc(y, s, np.array([f"u{x}" for x in u], dtype=object)) == pytest.approx(num / den, abs=1e-12)


def test_logloss_matches_sklearn():
    rng = np.random.default_rng(0)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    assert M.logloss(y, p) == pytest.approx(log_loss(y, p), abs=1e-9)


def _pvctr_brute(y, s, pages, k):
    hits = []
    for g in dict.fromkeys(pages):                          # every page view, clicked or not
        idx = [i for i in range(len(y)) if pages[i] == g]
        idx.sort(key=lambda i: (-s[i], i))                  # score desc, ties in input order
        hits.append(any(y[i] for i in idx[:k]))
    return float(np.mean(hits))


@pytest.mark.parametrize("k", [1, 3])
def test_pvctr_vs_brute_force(k):
    rng = np.random.default_rng(k)
    n = 300
    pages = [f"r{p}" for p in rng.integers(0, 60, n)]
    s = rng.integers(0, 5, n) / 5.0
    y = (rng.random(n) < 0.15).astype(int)
    assert M.pvctr_at_k(y, s, pages, k) == pytest.approx(_pvctr_brute(y, s, pages, k), abs=1e-12)


def test_pvctr_perfect_ranking_and_unclicked_pages():
    # Two page views: one with a click at the bottom, one without clicks (stays in the denominator).
    y = np.array([0, 0, 1, 0, 0])
    pages = np.array(["a", "a", "a", "b", "b"])
    assert M.pvctr_at_k(y, [0.9, 0.8, 0.1, 0.5, 0.4], pages, 1) == 0.0
    assert M.pvctr_at_k(y, [0.1, 0.2, 0.9, 0.5, 0.4], pages, 1) == 0.5
    assert M.pvctr_at_k(y, [0.9, 0.8, 0.1, 0.5, 0.4], pages, 3) == 0.5


def test_relative_lift_and_all_metrics():
    assert M.relative_lift(0.11754, 0.1) == pytest.approx(0.1754)
    y, s, u = _data(3)
    out = M.all_metrics(y, s, u % 2, users=u, page_views=u)
    assert set(out) >= {"auc", "domain_auc", "gauc", "logloss", "pvctr@1", "pvctr@3", "n"}
    assert out["n"] == len(y)
