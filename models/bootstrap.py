"""Page-view bootstrap: 95 % confidence intervals of AUC, GAUC, domain AUC and PVCTR@k, and paired differences.

Impressions of one page view share a user, a moment and a candidate set, so they are not independent: the
bootstrap resamples **page views** with replacement and gives every impression its page view's draw count as
a weight. One `PageViewBootstrap` holds one set of draws; every metric and every model scored on the same rows
with it sees the same resamples, so the difference of two models' samples is a **paired** bootstrap.

Each metric is computed for all resamples at once: rows are sorted once by (group, score), and a resample is
only a weight vector, so the weighted Mann–Whitney statistic is a few cumulative sums per chunk of resamples.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models import metrics as M

LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A metric's point value on the rows as they are, its bootstrap samples [B] and percentile interval."""

    value: float
    samples: np.ndarray
    level: float = LEVEL

    @property
    def lo(self) -> float:
        return _quantile(self.samples, (1 - self.level) / 2)

    @property
    def hi(self) -> float:
        return _quantile(self.samples, 1 - (1 - self.level) / 2)

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def minus(self, other: "Estimate") -> "Estimate":
        """The paired difference self − other (both must come from the same `PageViewBootstrap`)."""
        if self.samples.shape != other.samples.shape:
            raise ValueError("a paired difference needs estimates from the same bootstrap draws")
        return Estimate(self.value - other.value, self.samples - other.samples, self.level)

    @property
    def significant(self) -> bool:
        """For a difference: whether the interval excludes 0."""
        return bool(self.lo > 0 or self.hi < 0)

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}

    def __str__(self) -> str:
        return format_ci(self.value, self.lo, self.hi)


def format_ci(value: float, lo: float, hi: float, signed: bool = False) -> str:
    """`0.7123 [0.6981, 0.7260]` (or `+0.0123 [...]` for differences); empty string for NaN."""
    if value is None or np.isnan(value):
        return ""
    fmt = "{:+.4f}" if signed else "{:.4f}"
    return f"{fmt.format(value)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _quantile(samples: np.ndarray, q: float) -> float:
    ok = samples[~np.isnan(samples)]
    return float(np.quantile(ok, q)) if ok.size else float("nan")


def _reduce(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of `values` [b, N] over the segments beginning at `starts` (a no-op when every segment is one row)."""
    return values if len(starts) == values.shape[1] else np.add.reduceat(values, starts, axis=1)


class _SortedGroups:
    """Rows sorted by (group, score) with their tie runs: the structure every weighted AUC reuses."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, groups: np.ndarray):
        self.order = np.lexsort((scores, groups))
        g, s = groups[self.order], scores[self.order]
        n = len(self.order)
        new_group = np.r_[True, g[1:] != g[:-1]] if n else np.zeros(0, bool)
        new_run = new_group | (np.r_[True, s[1:] != s[:-1]] if n else np.zeros(0, bool))
        self.run_start = np.flatnonzero(new_run)
        run_new_group = new_group[self.run_start]
        self.group_first_run = np.flatnonzero(run_new_group)      # index of each group's first run
        self.run_group = np.cumsum(run_new_group) - 1               # group index of each run
        self.y = labels[self.order].astype(np.float64)
        self.group_keys = g[new_group]

    def auc(self, weights: np.ndarray) -> np.ndarray:
        """Weighted AUC per group for each row of `weights` [b, N] (input row order) -> [b, G]; NaN: one class."""
        return self.auc_sorted(weights[:, self.order])

    def auc_sorted(self, w: np.ndarray) -> np.ndarray:
        """`auc` for weights already in sorted order."""
        pos_run = _reduce(w * self.y, self.run_start)
        neg_run = _reduce(w * (1.0 - self.y), self.run_start)
        cum_neg = np.cumsum(neg_run, axis=1)
        # negatives strictly below a run inside its group = cumulative negatives before the run − group offset
        before = cum_neg - neg_run
        offset = before[:, self.group_first_run][:, self.run_group]
        num_run = pos_run * (before - offset + 0.5 * neg_run)
        num = np.add.reduceat(num_run, self.group_first_run, axis=1)
        pos = np.add.reduceat(pos_run, self.group_first_run, axis=1)
        neg = np.add.reduceat(neg_run, self.group_first_run, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / (pos * neg)
        out[(pos <= 0) | (neg <= 0)] = np.nan
        return out

    def weight_sums(self, weights: np.ndarray) -> np.ndarray:
        return np.add.reduceat(weights[:, self.order], self.run_start[self.group_first_run], axis=1)


class PageViewBootstrap:
    """`n_boot` resamples of the page views of a set of rows; metrics over them with 95 % percentile intervals.

    `page_views` [N]: any key per row (the request id). Rows of the same page view move together.
    """

    def __init__(self, page_views: Sequence | np.ndarray, n_boot: int = 1000, seed: int = 0, chunk: int = 100):
        self.codes = pd.factorize(pd.Series(np.asarray(page_views)), use_na_sentinel=False)[0].astype(np.int64)
        self.n_rows = len(self.codes)
        self.n_groups = int(self.codes.max()) + 1 if self.n_rows else 0
        rng = np.random.default_rng(seed)
        # counts[b, g]: how often page view g was drawn in resample b (multinomial = draws with replacement)
        self.counts = rng.multinomial(self.n_groups, np.full(self.n_groups, 1.0 / max(self.n_groups, 1)),
                                      size=n_boot).astype(np.float64) if self.n_groups else np.zeros((n_boot, 0))
        self.n_boot = n_boot
        self.chunk = chunk

    def _chunks(self):
        """Page-view draw counts [b, G], chunk by chunk (bounded memory: b × rows weights at a time)."""
        for start in range(0, self.n_boot, self.chunk):
            yield self.counts[start:start + self.chunk]

    def _grouped_auc(self, labels, scores, groups, rows) -> tuple[np.ndarray, np.ndarray, _SortedGroups]:
        y = np.asarray(labels, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        g = np.asarray(groups)
        if rows is not None:
            y, s, g = y[rows], s[rows], g[rows]
        sg = _SortedGroups(y, s, M._group_ids(g))
        point = sg.auc(np.ones((1, len(y))))[0]
        codes = (self.codes if rows is None else self.codes[rows])[sg.order]
        samples = np.concatenate([sg.auc_sorted(c[:, codes]) for c in self._chunks()], axis=0)
        return point, samples, sg

    def auc(self, labels, scores, rows: np.ndarray | None = None) -> Estimate:
        """AUC (ties count 1/2) of all rows, or of `rows` (index or boolean mask, e.g. new items)."""
        selected = None if rows is None else np.asarray(rows)
        n = len(labels) if selected is None else int(selected.sum() if selected.dtype == bool else len(selected))
        if n == 0:
            return Estimate(float("nan"), np.full(self.n_boot, np.nan))
        point, samples, _ = self._grouped_auc(labels, scores, np.zeros(len(labels), np.int64), rows)
        return Estimate(float(point[0]), samples[:, 0])

    def domain_auc(self, labels, scores, domains) -> dict[int, Estimate]:
        """AUC per domain id present."""
        point, samples, sg = self._grouped_auc(labels, scores, np.asarray(domains).astype(np.int64), None)
        keys = np.unique(np.asarray(domains).astype(np.int64))
        return {int(k): Estimate(float(point[i]), samples[:, i]) for i, k in enumerate(keys)}

    def gauc(self, labels, scores, users) -> Estimate:
        """Per-user AUC averaged with (resampled) impression-count weights over users with both classes."""
        codes = M._group_ids(users)
        sg = _SortedGroups(np.asarray(labels, np.float64), np.asarray(scores, np.float64), codes)

        def gauc_of(w: np.ndarray) -> np.ndarray:
            per_user, n = sg.auc(w), sg.weight_sums(w)
            ok = ~np.isnan(per_user)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(ok, per_user * n, 0.0).sum(1) / np.where(ok, n, 0.0).sum(1)

        point = float(gauc_of(np.ones((1, len(codes))))[0])
        return Estimate(point, np.concatenate([gauc_of(c[:, self.codes]) for c in self._chunks()]))

    def pvctr(self, labels, scores, k: int) -> Estimate:
        """PVCTR@k: share of page views with a click in their top k (models.metrics.pvctr_at_k), resampled."""
        hit = M.page_view_hits(labels, scores, self.codes, k).astype(np.float64)
        point = float(hit.mean()) if hit.size else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = self.counts @ hit / self.counts.sum(1)
        return Estimate(point, samples)

