"""MMoE baseline (Ma et al., KDD 2018), one task per domain: shared experts, per-domain gates and towers."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from models.base import MultiDomainModel
from models.layers.experts import MMoELayer
from models.layers.towers import DomainTowers
from models.spec import FeatureSpec


class MMoE(MultiDomainModel):
    """batch -> {"logit": [B], "reg_loss": 0}. Levels: L0 encoder, L1 experts + gates, L2 domain towers."""

    name = "mmoe"
    level_prefixes = {"L0": ("encoder.",), "L1": ("mmoe.",), "L2": ("towers.",)}

    def __init__(self, spec: FeatureSpec, hidden: int = 64, use_id: bool = True, use_sparse: bool = True,
                 use_text: bool = True, n_experts: int = 4, expert_hidden: Sequence[int] = (64,),
                 tower_hidden: Sequence[int] = (32,), dropout: float = 0.1, use_behaviour: bool = True):
        super().__init__(spec, hidden, use_id, use_sparse, use_text, dropout, use_behaviour)
        self.mmoe = MMoELayer(spec.n_domains, len(self.aspect_names) * hidden, n_experts, expert_hidden, dropout)
        self.towers = DomainTowers(spec.n_domains, self.mmoe.out_dim, tower_hidden, dropout)
        self._save_config(locals())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        domain = batch["domain"]
        return self._out(self.towers(self.mmoe(self.encode(batch), domain), domain))
