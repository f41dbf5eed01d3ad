"""FeatureSpec: the input sizes every model is built from (saved in checkpoints as a plain dict)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

TASKS = ("search", "rec")


@dataclass
class FeatureSpec:
    """Sizes of the model inputs; every index-0 row is the OOV / missing bucket."""

    n_domains: int                 # K; domain ids are 0..K-1
    domain_tasks: list[str]        # "search" | "rec", one per domain
    n_users: int
    n_items: int
    n_queries: int
    cat_cardinalities: list[int] = field(default_factory=list)  # one per categorical field (incl. index 0)
    n_num: int = 0                 # numeric fields
    text_dim: int = 0              # frozen text-embedding width D
    # User behaviour (docs/model-api.md "Behaviour"): sequence lengths L / Lq of the clicked-item and issued-query
    # histories (0 = none: no behaviour encoder is built), and the indices into the numeric fields of the
    # behaviour aggregates (`num_beh_*`), which a model built with use_behaviour=False masks out.
    behaviour_length: int = 0
    behaviour_query_length: int = 0
    behaviour_num_fields: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.domain_tasks = [str(t) for t in self.domain_tasks]
        self.cat_cardinalities = [int(c) for c in self.cat_cardinalities]
        self.behaviour_num_fields = [int(j) for j in self.behaviour_num_fields]
        if self.n_domains < 1 or len(self.domain_tasks) != self.n_domains:
            raise ValueError(f"FeatureSpec: n_domains={self.n_domains} but {len(self.domain_tasks)} domain_tasks "
                             f"were given; give one task per domain id 0..K-1")
        bad = [t for t in self.domain_tasks if t not in TASKS]
        if bad:
            raise ValueError(f"FeatureSpec: unknown domain task(s) {bad}; use one of {TASKS}")
        for name in ("n_users", "n_items", "n_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"FeatureSpec: {name} must be >= 1 (row 0 is the OOV bucket)")
        if any(c < 1 for c in self.cat_cardinalities):
            raise ValueError(f"FeatureSpec: cat_cardinalities {self.cat_cardinalities} must all be >= 1")
        if self.n_num < 0 or self.text_dim < 0:
            raise ValueError("FeatureSpec: n_num and text_dim must be >= 0")
        if self.behaviour_length < 0 or self.behaviour_query_length < 0:
            raise ValueError("FeatureSpec: behaviour_length and behaviour_query_length must be >= 0")
        if any(not 0 <= j < self.n_num for j in self.behaviour_num_fields):
            raise ValueError(f"FeatureSpec: behaviour_num_fields {self.behaviour_num_fields} must index the "
                             f"{self.n_num} numeric fields")

    @property
    def has_behaviour(self) -> bool:
        """True when the inputs carry a clicked-item or issued-query sequence."""
        return self.behaviour_length > 0 or self.behaviour_query_length > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for checkpoints)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureSpec":
        """Inverse of to_dict; unknown keys are ignored so newer checkpoints still load, and keys an older
        checkpoint lacks (e.g. the behaviour fields) take their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
