"""Shared-Bottom baseline: concatenated aspects -> shared MLP -> per-domain towers."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from models.base import MultiDomainModel
from models.layers.mlp import MLP
from models.layers.towers import DomainTowers
from models.spec import FeatureSpec


class SharedBottom(MultiDomainModel):
    """batch -> {"logit": [B], "reg_loss": 0}. Levels: L0 encoder, L1 bottom MLP, L2 domain towers."""

    name = "shared_bottom"
    level_prefixes = {"L0": ("encoder.",), "L1": ("bottom.",), "L2": ("towers.",)}

    def __init__(self, spec: FeatureSpec, hidden: int = 64, use_id: bool = True, use_sparse: bool = True,
                 use_text: bool = True, bottom_hidden: Sequence[int] = (128, 64),
                 tower_hidden: Sequence[int] = (32,), dropout: float = 0.1, use_behaviour: bool = True):
        super().__init__(spec, hidden, use_id, use_sparse, use_text, dropout, use_behaviour)
        self.bottom = MLP(len(self.aspect_names) * hidden, bottom_hidden, dropout=dropout)
        self.towers = DomainTowers(spec.n_domains, self.bottom.out_dim, tower_hidden, dropout)
        self._save_config(locals())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return self._out(self.towers(self.bottom(self.encode(batch)), batch["domain"]))
