"""One evaluation of a set of trained candidates: selection on validation, reporting on test.

- validation split: every candidate, the serving champion (re-scored on the same rows) and the trivial
  references; the champion / challenger decision (models/promotion.py) and the best baseline are chosen here;
- test split: the same entries plus the Bayes ceiling (synthetic data), reported only — nothing is chosen on it;
- pretrain domains (validation split): each candidate's pretrained checkpoint per domain, beside the
  per-domain category click-rate rule and the ceiling.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models import references
from models.evaluate import score_splits
from models.promotion import PromotionDecision, best_by_validation, champion_challenger
from models.training_data import TrainingFolder
from reporting.comparison import CEILING, MODEL, REFERENCE, Comparison, Rows, compare
from unisr_data.truth import click_probability

log = logging.getLogger("reporting.evaluation")
CHAMPION = "champion"


@dataclass(frozen=True)
class Candidate:
    """A trained model version: its display label, registry version, fine-tuned and pretrained checkpoints."""

    label: str
    version: str
    checkpoint: Path
    pretrained: Path | None = None


@dataclass
class EvaluationResult:
    valid: Comparison
    test: Comparison
    pretrain: Comparison | None
    decision: PromotionDecision
    ours: str                       # label of the S&R model
    best_baseline: str              # label of the best other candidate by validation AUC
    labels: dict[str, str]          # version -> label
    domain_names: dict[int, str]
    gate_weights: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def serving_label(self) -> str:
        return self.labels.get(self.decision.serving, self.decision.serving)


def _domain_names(folder: TrainingFolder) -> dict[int, str]:
    return {int(d["domain_id"]): d["name"] for d in folder.meta["domains"]}


def evaluate_candidates(
    candidates: list[Candidate],
    champion: Candidate | None,
    coldstart_dir: Path,
    pretrain_dir: Path | None,
    truth_dir: Path | None,
    ours: str,
    tolerance: float = 0.0,
    n_boot: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] = log.info,
) -> EvaluationResult:
    """Score every candidate on the cold-start valid and test splits; decide what serves on validation."""
    if not candidates:
        raise ValueError("nothing to evaluate: no candidates")
    folder = TrainingFolder.open(coldstart_dir)
    frames = {split: folder.read(split) for split in ("train", "valid", "test")}
    labels = {c.version: c.label for c in candidates}
    scores: dict[str, dict[str, np.ndarray]] = {"valid": {}, "test": {}}
    kinds = {c.label: MODEL for c in candidates}
    gate_weights: dict = {}
    for cand in candidates:
        scored = score_splits(cand.checkpoint, coldstart_dir, {split: frames[split] for split in scores})
        for split, (probs, _, gates) in scored.items():
            scores[split][cand.label] = probs
            if cand.label == ours and split == "test":
                gate_weights.update(gates)
        progress(f"scored {cand.label} on cold-start valid and test")
    notes = []
    champion_label = None
    if champion is not None and champion.version not in labels:
        try:
            scores["valid"][CHAMPION] = score_splits(champion.checkpoint, coldstart_dir,
                                                     {"valid": frames["valid"]})["valid"][0]
            champion_label = CHAMPION
            labels[champion.version] = f"{CHAMPION} ({champion.label})"
        except (OSError, ValueError, RuntimeError, KeyError) as err:  # unreadable / other dataset: not comparable
            notes.append(f"the serving champion {champion.version} could not be scored on this data ({err}); "
                         f"it is treated as absent")
            champion = None
    for split in scores:
        scores[split].update(references.reference_scores(frames["train"], frames["valid"], frames[split]))
    kinds.update({name: REFERENCE for name in references.REFERENCES})

    valid = compare("valid", Rows.from_frame(frames["valid"]), scores["valid"],
                    {**kinds, **({CHAMPION: MODEL} if champion_label else {})}, n_boot=n_boot, seed=seed)
    progress(f"validation: {valid.n_rows} rows in {valid.n_page_views} page views")
    truth = click_probability(truth_dir, frames["test"]["impression_id"]) if truth_dir else None
    test = compare("test", Rows.from_frame(frames["test"]), scores["test"], kinds, truth=truth,
                   n_boot=n_boot, seed=seed + 1)
    progress(f"test: {test.n_rows} rows in {test.n_page_views} page views")

    challengers = {c.version: valid.auc(c.label) for c in candidates}
    decision = champion_challenger(
        challengers, champion.version if champion else None,
        valid.auc(CHAMPION) if champion_label else None, tolerance, labels)
    others = {c.label: valid.auc(c.label) for c in candidates if c.label != ours}
    best_baseline = best_by_validation(others) if others else ours
    pretrain = _pretrain_comparison(candidates, pretrain_dir, truth_dir, n_boot, seed + 2) if pretrain_dir else None
    if truth is None:
        notes.append("real data has no known click probabilities, so there is no Bayes ceiling or share of lift")
    return EvaluationResult(valid, test, pretrain, decision, ours, best_baseline, labels,
                            _domain_names(folder), gate_weights, notes)


def _pretrain_comparison(candidates: list[Candidate], pretrain_dir: Path, truth_dir: Path | None,
                         n_boot: int, seed: int) -> Comparison | None:
    folder = TrainingFolder.open(pretrain_dir)
    with_ckpt = [c for c in candidates if c.pretrained is not None]
    if not with_ckpt:
        return None
    train, valid = folder.read("train"), folder.read("valid")
    scores = {c.label: score_splits(c.pretrained, pretrain_dir, {"valid": valid})["valid"][0] for c in with_ckpt}
    scores[references.CATEGORY_CTR] = references.category_click_rate(train, valid)
    kinds = {**{c.label: MODEL for c in with_ckpt}, references.CATEGORY_CTR: REFERENCE}
    truth = click_probability(truth_dir, valid["impression_id"]) if truth_dir else None
    return compare("pretrain_valid", Rows.from_frame(valid), scores, kinds, truth=truth, n_boot=n_boot,
                   seed=seed, per_domain=True, metrics=("auc",))


def headline(result: EvaluationResult) -> dict[str, str]:
    """The report's cards: what serves, our test AUC, the best baseline, their paired difference, the ceiling."""
    test = result.test
    ours, best = result.ours, result.best_baseline
    cards = {"serving": result.serving_label, f"{ours} test AUC": str(test.auc(ours))}
    if best != ours:
        diff = test.difference(ours, best)
        cards[f"best baseline by valid ({best}) test AUC"] = str(test.auc(best))
        cards[f"{ours} − {best}"] = f"{diff.value:+.4f} [{diff.lo:+.4f}, {diff.hi:+.4f}]" + (
            " significant" if diff.significant else " not significant")
    if test.has_ceiling:
        cards["Bayes ceiling AUC"] = f"{test.auc(CEILING).value:.4f}"
        served = result.serving_label if result.serving_label in test.estimates else ours  # chosen on validation
        share = test.lift_share(served)
        cards[f"share of achievable lift ({served})"] = f"{share.value:.0%} [{share.lo:.0%}, {share.hi:.0%}]"
    return cards


def per_model_metadata(result: EvaluationResult) -> dict[str, float]:
    """Flat float metadata of every entry's metrics and interval bounds, valid and test."""
    return {**result.valid.metadata(), **result.test.metadata()}
