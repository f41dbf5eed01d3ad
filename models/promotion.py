"""Champion / challenger promotion on the validation split (the test split is only ever reported).

Every freshly trained candidate (the S&R model and each baseline) is a challenger. The best challenger by
validation AUC is compared with the serving champion on the **same validation rows**: it replaces the champion
only when the lower bound of the paired-bootstrap 95 % interval of (challenger − champion) AUC is above
`tolerance`. With no champion the best challenger is promoted. A worse or not significantly better challenger
leaves the champion serving — a decision, not a failure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from models.bootstrap import Estimate, format_ci


@dataclass
class PromotionDecision:
    """Which version serves after this evaluation, and why (shown by the gate and the report)."""

    serving: str                  # the version that serves after the decision
    promote: bool                 # True when `serving` is new (it replaces the champion, or there was none)
    challenger: str               # the best challenger by validation AUC
    champion: str | None          # the version serving before the decision
    reasons: list[str] = field(default_factory=list)
    difference: dict[str, float] | None = None   # challenger − champion validation AUC: value, lo, hi

    def as_dict(self) -> dict:
        return {"serving": self.serving, "promote": self.promote, "challenger": self.challenger,
                "champion": self.champion, "reasons": list(self.reasons), "difference": self.difference}


def best_by_validation(valid_auc: dict[str, Estimate]) -> str:
    """The candidate with the highest validation AUC (ties: the first listed)."""
    scored = {name: est for name, est in valid_auc.items() if est.value == est.value}  # drop NaN
    if not scored:
        raise ValueError(f"no candidate has a validation AUC: {sorted(valid_auc)}")
    return max(scored, key=lambda name: scored[name].value)


def champion_challenger(challengers: dict[str, Estimate], champion: str | None,
                        champion_auc: Estimate | None, tolerance: float = 0.0,
                        labels: dict[str, str] | None = None) -> PromotionDecision:
    """Decide what serves. `challengers`: version -> validation AUC estimate (all from one bootstrap, so
    differences are paired); `champion_auc`: the champion re-scored on the same rows (None if no champion)."""
    labels = labels or {}
    challenger = best_by_validation(challengers)
    chal = challengers[challenger]
    name = labels.get(challenger, challenger)
    reasons = [f"best challenger by validation AUC: {name} {chal}"]
    if champion is None or champion_auc is None:
        reasons.append("no champion serving yet: the best challenger is promoted")
        return PromotionDecision(challenger, True, challenger, champion, reasons)
    diff = chal.minus(champion_auc)
    text = format_ci(diff.value, diff.lo, diff.hi, signed=True)
    champ_name = labels.get(champion, champion)
    if diff.lo > tolerance:
        reasons.append(f"{name} − champion {champ_name} validation AUC {text}: lower bound above tolerance "
                       f"{tolerance:+.4f}, so the challenger replaces the champion")
        return PromotionDecision(challenger, True, challenger, champion, reasons, diff.as_dict())
    reasons.append(f"{name} − champion {champ_name} validation AUC {text}: lower bound not above tolerance "
                   f"{tolerance:+.4f}, so the champion keeps serving")
    return PromotionDecision(champion, False, challenger, champion, reasons, diff.as_dict())
