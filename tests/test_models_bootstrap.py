"""Page-view bootstrap CIs against a brute-force bootstrap that materialises every resample."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models import metrics as M
from models.bootstrap import Estimate, PageViewBootstrap


@pytest.fixture
def rows():
    rng = np.random.default_rng(1)
    n_pv, k = 120, 5
    pv = np.repeat(np.arange(n_pv), k)
    y = (rng.random(n_pv * k) < 0.25).astype(int)
    s = np.round(rng.random(n_pv * k) + 0.4 * y, 1)          # rounding makes ties
    users = rng.integers(0, 30, n_pv)[pv]
    domains = rng.integers(0, 3, n_pv)[pv]
    return pv, y, s, users, domains


def _resample(pv: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Row indices of one bootstrap resample: every row of page view g repeated counts[g] times."""
    return np.concatenate([np.flatnonzero(pv == g) for g in np.repeat(np.arange(len(counts)), counts.astype(int))])


def test_every_metric_matches_brute_force_resamples(rows):
    pv, y, s, users, domains = rows
    boot = PageViewBootstrap(pv, n_boot=20, seed=3, chunk=7)
    auc, gauc = boot.auc(y, s), boot.gauc(y, s, users)
    dom, p1 = boot.domain_auc(y, s, domains), boot.pvctr(y, s, 1)
    new = np.arange(len(y)) % 3 == 0
    new_auc = boot.auc(y, s, new)
    for b in range(20):
        idx = _resample(pv, boot.counts[b])
        assert auc.samples[b] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)
        assert gauc.samples[b] == pytest.approx(M.gauc(y[idx], s[idx], users[idx]), abs=1e-12)
        sub = idx[new[idx]]
        assert new_auc.samples[b] == pytest.approx(roc_auc_score(y[sub], s[sub]), abs=1e-12)
        brute_dom = M.domain_auc(y[idx], s[idx], domains[idx])
        assert {d: e.samples[b] for d, e in dom.items()} == pytest.approx(brute_dom, abs=1e-12)
        # PVCTR: a resampled page view counts once per draw
        hits = [M.pvctr_at_k(y[pv == g], s[pv == g], np.zeros(5), 1) for g in range(pv.max() + 1)]
        assert p1.samples[b] == pytest.approx(np.dot(boot.counts[b], hits) / boot.counts[b].sum())
    # point estimates are the plain metrics on the rows as they are
    assert auc.value == pytest.approx(M.auc(y, s)) and gauc.value == pytest.approx(M.gauc(y, s, users))
    assert p1.value == pytest.approx(M.pvctr_at_k(y, s, pv, 1))


def test_interval_covers_the_truth_at_about_the_nominal_rate():
    """On data with a known population AUC, the 95 % interval covers it in most replications."""
    rng = np.random.default_rng(0)
    covered = 0
    for rep in range(40):
        n_pv = 200
        pv = np.repeat(np.arange(n_pv), 4)
        y = rng.random(len(pv)) < 0.3
        s = rng.normal(size=len(pv)) + 1.0 * y                # population AUC = Φ(1/√2) ≈ 0.760
        est = PageViewBootstrap(pv, n_boot=300, seed=rep).auc(y, s)
        covered += est.lo <= 0.7602 <= est.hi
    assert covered >= 33                                     # ~95 % nominal; 33/40 leaves room for noise


def test_paired_difference_is_narrower_than_unpaired_and_flags_significance(rows):
    pv, y, _, _, _ = rows
    rng = np.random.default_rng(5)
    s = rng.random(len(y)) + 0.4 * y
    better = s + 0.5 * y                                      # strictly more separating
    twin = rng.random(len(y)) + 0.4 * y                       # another model of the same strength
    close = s + rng.normal(0, 0.1, len(y))                    # a correlated variant of the same model
    boot = PageViewBootstrap(pv, n_boot=400, seed=0)
    a, b = boot.auc(y, better), boot.auc(y, s)
    diff = a.minus(b)
    assert diff.value == pytest.approx(a.value - b.value)
    assert diff.significant and diff.lo > 0
    assert not boot.auc(y, twin).minus(b).significant
    paired = boot.auc(y, close).minus(b)
    assert paired.hi - paired.lo < (b.hi - b.lo) / 2          # pairing removes the shared page-view noise
    with pytest.raises(ValueError):
        a.minus(Estimate(0.5, np.zeros(3)))


def test_one_class_gives_nan_not_an_error():
    pv = np.repeat(np.arange(10), 2)
    est = PageViewBootstrap(pv, n_boot=10).auc(np.zeros(20), np.arange(20.0))
    assert np.isnan(est.value) and np.isnan(est.lo)
