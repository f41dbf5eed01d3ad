"""`UserBehaviour`: one user's recent history for online scoring (`Scorer.score(..., behaviour=...)`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class UserBehaviour:
    """The history of the ONE user of a ranking request, shared by all its candidate rows.

    item_ids: the last clicked item ids, most recent first (the training folders' `beh_item_ids`);
    item_emb: [len(item_ids), D] their frozen text vectors from the online store (an all-zero row = no text);
    query_emb: [lq, D] the text vectors of the last issued queries, most recent first (`beh_query_ids`).
    Longer histories are cut to the model's lengths (FeatureSpec.behaviour_length / behaviour_query_length).
    An empty history (or `behaviour=None`) is the model's learned "no history".
    """

    item_ids: list[str] = field(default_factory=list)
    item_emb: np.ndarray | None = None
    query_emb: np.ndarray | None = None

    def item_matrix(self, dim: int) -> np.ndarray:
        """item_emb as float32 [len(item_ids), dim] (zeros = no text when item_emb is None)."""
        n = len(self.item_ids)
        emb = None if self.item_emb is None else np.asarray(self.item_emb, dtype=np.float32)
        if emb is None or (n == 0 and emb.size == 0):
            return np.zeros((n, dim), np.float32)
        if emb.ndim != 2 or emb.shape != (n, dim):
            raise ValueError(f"UserBehaviour: item_emb has shape {emb.shape}, expected ({n}, {dim}): one text vector "
                             f"per item id (zeros where an item has none)")
        return emb

    def query_matrix(self, dim: int) -> np.ndarray:
        """query_emb as float32 [lq, dim] (no rows when query_emb is None)."""
        emb = None if self.query_emb is None else np.asarray(self.query_emb, dtype=np.float32)
        if emb is None or emb.size == 0:
            return np.zeros((0, dim), np.float32)
        if emb.ndim != 2 or emb.shape[1] != dim:
            raise ValueError(f"UserBehaviour: query_emb has shape {emb.shape}, expected (lq, {dim})")
        return emb
