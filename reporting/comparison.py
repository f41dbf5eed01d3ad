"""Models, trivial references and the Bayes ceiling scored on the same rows, every metric with a 95 % CI.

A `Comparison` holds, for one split, each entry's metrics as bootstrap `Estimate`s drawn from one
`PageViewBootstrap`, so any two entries can be compared with a paired interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.bootstrap import Estimate, PageViewBootstrap, format_ci

METRICS = {"auc": "AUC", "new_item_auc": "new-item AUC", "gauc": "GAUC", "pvctr@1": "PVCTR@1", "pvctr@3": "PVCTR@3"}
CEILING = "Bayes ceiling (true click probability)"
MODEL, REFERENCE, CEILING_KIND = "model", "reference", "ceiling"


@dataclass(frozen=True)
class Rows:
    """The keys metrics group by, for the rows of one split (file order)."""

    labels: np.ndarray
    page_views: np.ndarray
    users: np.ndarray
    domains: np.ndarray
    is_new_item: np.ndarray | None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "Rows":
        new = frame["is_new_item"].fillna(False).to_numpy(dtype=bool) if "is_new_item" in frame else None
        return cls(frame["label"].to_numpy().astype(np.int64), frame["request_id"].astype(str).to_numpy(),
                   frame["user_id"].astype(str).to_numpy(), frame["domain_id"].to_numpy().astype(np.int64), new)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Comparison:
    """Every entry's metric estimates on one split; `kinds[entry]` is model, reference or ceiling."""

    split: str
    n_rows: int
    n_page_views: int
    estimates: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    domain_auc: dict[str, dict[int, Estimate]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    def auc(self, entry: str) -> Estimate:
        return self.estimates[entry]["auc"]

    def entries(self, kind: str) -> list[str]:
        return [e for e, k in self.kinds.items() if k == kind]

    def difference(self, a: str, b: str, metric: str = "auc") -> Estimate:
        """Paired bootstrap estimate of a − b."""
        return self.estimates[a][metric].minus(self.estimates[b][metric])

    @property
    def has_ceiling(self) -> bool:
        return CEILING in self.estimates

    def lift_share(self, entry: str, domain: int | None = None) -> Estimate | None:
        """(AUC − 0.5) / (ceiling − 0.5) with its paired interval; None without a ceiling."""
        if not self.has_ceiling:
            return None
        if domain is None:
            auc, ceiling = self.auc(entry), self.auc(CEILING)
        else:
            auc, ceiling = self.domain_auc[entry][domain], self.domain_auc[CEILING][domain]
        with np.errstate(invalid="ignore", divide="ignore"):
            return Estimate((auc.value - 0.5) / (ceiling.value - 0.5), (auc.samples - 0.5) / (ceiling.samples - 0.5))

    def table(self, versus: str | None = None) -> pd.DataFrame:
        """One row per entry: metric `value [lo, hi]` strings, share of lift, and the paired Δ AUC vs `versus`."""
        rows = []
        for entry, kind in self.kinds.items():
            row = {"model": entry, "kind": kind}
            for metric, title in METRICS.items():
                est = self.estimates[entry].get(metric)
                row[title] = format_ci(est.value, est.lo, est.hi) if est is not None else ""
            share = self.lift_share(entry) if kind != CEILING_KIND else None
            if self.has_ceiling:
                row["share of achievable lift"] = "" if share is None else _percent_ci(share)
            if versus is not None and versus in self.estimates:
                if entry == versus or kind == CEILING_KIND:
                    row[f"Δ AUC vs {versus}"] = "reference" if entry == versus else ""
                else:
                    diff = self.difference(entry, versus)
                    sig = "significant" if diff.significant else "not significant"
                    row[f"Δ AUC vs {versus}"] = f"{format_ci(diff.value, diff.lo, diff.hi, signed=True)} ({sig})"
            rows.append(row)
        return pd.DataFrame(rows)

    def domain_table(self, names: dict[int, str]) -> pd.DataFrame:
        """Domains × entries: per-domain AUC `value [lo, hi]` (plus the best model's share of lift)."""
        domains = sorted({d for per in self.domain_auc.values() for d in per})
        rows = []
        for d in domains:
            row = {"domain": names.get(d, str(d))}
            for entry in self.kinds:
                est = self.domain_auc.get(entry, {}).get(d)
                row[entry] = "" if est is None else format_ci(est.value, est.lo, est.hi)
            rows.append(row)
        return pd.DataFrame(rows)

    def plot_frame(self, domain_names: dict[int, str] | None = None, label: str = "cold-start") -> pd.DataFrame:
        """Long frame (model, domain, auc, lo, hi) for error-bar plots: overall AUC, or per domain."""
        out = []
        if domain_names is None:
            for entry in self.kinds:
                est = self.auc(entry)
                out.append({"model": entry, "domain": label, "auc": est.value, "lo": est.lo, "hi": est.hi})
        else:
            for entry, per in self.domain_auc.items():
                for d, est in per.items():
                    out.append({"model": entry, "domain": domain_names.get(d, str(d)), "auc": est.value,
                                "lo": est.lo, "hi": est.hi})
        return pd.DataFrame(out)

    def metadata(self) -> dict[str, float]:
        """Flat floats for Dagster metadata: `<split>/<entry>/<metric>` (+ `_lo`, `_hi`)."""
        out: dict[str, float] = {}
        for entry, metrics in self.estimates.items():
            for metric, est in metrics.items():
                key = f"{self.split}/{entry}/{metric}"
                out[key], out[f"{key}_lo"], out[f"{key}_hi"] = est.value, est.lo, est.hi
        return out


def _percent_ci(est: Estimate) -> str:
    if est.value != est.value:
        return ""
    return f"{est.value:.0%} [{est.lo:.0%}, {est.hi:.0%}]"


def compare(split: str, rows: Rows, scores: dict[str, np.ndarray], kinds: dict[str, str],
            truth: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0,
            per_domain: bool = False, metrics: tuple[str, ...] = tuple(METRICS)) -> Comparison:
    """Score every entry of `scores` (entry -> scores [N]) on `rows`, with the ceiling when `truth` is given.

    `metrics`: which of METRICS to estimate; `per_domain` adds the AUC of each domain."""
    scores = dict(scores)
    kinds = dict(kinds)
    if truth is not None and len(truth) and not np.isnan(truth).all():
        scores[CEILING] = np.nan_to_num(truth, nan=-1.0)
        kinds[CEILING] = CEILING_KIND
    boot = PageViewBootstrap(rows.page_views, n_boot=n_boot, seed=seed)
    out = Comparison(split, len(rows), boot.n_groups, kinds=kinds)
    y = rows.labels
    for entry, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if s.shape != y.shape:
            raise ValueError(f"{entry}: {s.shape[0]} scores for {len(y)} rows of {split}")
        est = {"auc": boot.auc(y, s)}
        if "gauc" in metrics:
            est["gauc"] = boot.gauc(y, s, rows.users)
        for k in (1, 3):
            if f"pvctr@{k}" in metrics:
                est[f"pvctr@{k}"] = boot.pvctr(y, s, k)
        if "new_item_auc" in metrics and rows.is_new_item is not None and rows.is_new_item.any():
            est["new_item_auc"] = boot.auc(y, s, rows.is_new_item)
        out.estimates[entry] = est
        if per_domain:
            out.domain_auc[entry] = boot.domain_auc(y, s, rows.domains)
    return out
