"""Offline ranking metrics, vectorised in numpy: AUC (ties averaged), per-domain AUC, GAUC, log-loss, PVCTR@k.

PVCTR@k is an offline proxy of the online page-view CTR: impressions are grouped into page views (the
`request_id`, i.e. same user, domain, query and request time), re-ranked by the model's score, and a page view
counts as clicked when one of its k top-scored impressions was clicked. Page views without any click stay in
the denominator (no model can win them), so the metric is comparable across models on the same data but its
absolute value is bounded by the share of page views that have a click.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _group_ids(groups: Sequence | np.ndarray) -> np.ndarray:
    """Any key array [N] -> dense int codes [N] (pandas factorize: hashing, no Python loop)."""
    arr = np.asarray(groups)
    if arr.dtype.kind in "iu" and arr.size and arr.min() >= 0 and arr.max() < 4 * arr.size + 64:
        return arr.astype(np.int64)
    return pd.factorize(pd.Series(arr), use_na_sentinel=False)[0].astype(np.int64)


def _within_group_ranks(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1-based ranks of scores [N] inside their group [N], ties get the average rank."""
    order = np.lexsort((scores, groups))
    g, s = groups[order], scores[order]
    n = len(order)
    new_group = np.r_[True, g[1:] != g[:-1]]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    # A tie run is a run of equal (group, score); its members share the mean of the positions they span.
    new_run = new_group | np.r_[True, s[1:] != s[:-1]]
    run_id = np.cumsum(new_run) - 1
    run_first = np.flatnonzero(new_run)
    run_len = np.diff(np.r_[run_first, n])
    avg_pos = run_first + (run_len - 1) / 2.0             # 0-based average position of each run
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = avg_pos[run_id] - group_start + 1.0
    return ranks


def grouped_auc(labels, scores, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group AUC: labels, scores, groups [N] -> (auc [G] NaN where one class only, n_rows [G], n_pos [G])."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    g = _group_ids(groups)
    ranks = _within_group_ranks(s, g)
    G = int(g.max()) + 1 if g.size else 0
    n = np.bincount(g, minlength=G).astype(np.float64)
    pos = np.bincount(g, weights=y, minlength=G)
    neg = n - pos
    rank_pos = np.bincount(g, weights=ranks * y, minlength=G)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_pos - pos * (pos + 1) / 2.0) / (pos * neg)
    auc[(pos == 0) | (neg == 0)] = np.nan
    return auc, n, pos


def auc(labels, scores) -> float:
    """ROC AUC by average ranks (ties count 1/2): labels {0,1} [N], scores [N] -> float, NaN if one class only."""
    y = np.asarray(labels)
    return float(grouped_auc(y, scores, np.zeros(len(y), dtype=np.int64))[0][0]) if len(y) else float("nan")


def domain_auc(labels, scores, domains) -> dict[int, float]:
    """AUC per domain id: {domain: auc} for the domains present (NaN where a domain has one class)."""
    d = np.asarray(domains).astype(np.int64)
    values, _, _ = grouped_auc(labels, scores, d)
    return {int(k): float(values[k]) for k in np.unique(d)}


def gauc(labels, scores, users) -> float:
    """Per-user AUC averaged with impression-count weights, over users that have both classes; NaN if none."""
    values, n, _ = grouped_auc(labels, scores, users)
    ok = ~np.isnan(values)
    return float((values[ok] * n[ok]).sum() / n[ok].sum()) if ok.any() else float("nan")


def logloss(labels, probs, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities [N] (clipped to [eps, 1-eps])."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean()) if len(y) else float("nan")


def page_view_hits(labels, scores, codes: np.ndarray, k: int) -> np.ndarray:
    """[G] bool per group code 0..G-1: a clicked impression is among the page view's k top-scored (ties keep
    input order). Codes with no rows are False."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if not len(y):
        return np.zeros(0, dtype=bool)
    order = np.lexsort((np.arange(len(y)), -s, codes))   # by page view, then score descending, then input order
    gs = codes[order]
    n = len(order)
    new_group = np.r_[True, gs[1:] != gs[:-1]]
    pos_in_group = np.arange(n) - np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    top = pos_in_group < k
    return np.bincount(gs[top], weights=y[order][top], minlength=int(codes.max()) + 1) > 0


def pvctr_at_k(labels, scores, page_views, k: int) -> float:
    """Share of page views with a click among their k top-scored impressions (ties keep input order); NaN if empty."""
    g = _group_ids(page_views)
    if not len(g):
        return float("nan")
    hit = page_view_hits(labels, scores, g, k)
    present = np.bincount(g, minlength=len(hit)) > 0
    return float(hit[present].mean())


def relative_lift(value: float, baseline: float) -> float:
    """(value - baseline) / baseline, e.g. +0.1754 for a +17.54 % PVCTR lift; NaN when baseline is 0."""
    return float((value - baseline) / baseline) if baseline else float("nan")


def all_metrics(labels, probs, domains, users=None, page_views=None, ks: Sequence[int] = (1, 3)) -> dict:
    """Every metric at once: auc, domain_auc, logloss, n, and gauc / pvctr@k when users / page views are given."""
    out: dict = {"auc": auc(labels, probs), "domain_auc": domain_auc(labels, probs, domains),
                 "logloss": logloss(labels, probs), "n": int(len(labels))}
    if users is not None:
        out["gauc"] = gauc(labels, probs, users)
    if page_views is not None:
        for k in ks:
            out[f"pvctr@{k}"] = pvctr_at_k(labels, probs, page_views, k)
    return out
