"""PLE baseline (Tang et al., RecSys 2020), one task per domain: CGC levels of shared + domain experts."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from models.base import MultiDomainModel
from models.layers.experts import CGCLayer
from models.layers.towers import DomainTowers
from models.spec import FeatureSpec


class PLE(MultiDomainModel):
    """batch -> {"logit": [B], "reg_loss": 0}. Levels: L0 encoder, L1 CGC experts + gates, L2 domain towers."""

    name = "ple"
    level_prefixes = {"L0": ("encoder.",), "L1": ("cgc.",), "L2": ("towers.",)}

    def __init__(self, spec: FeatureSpec, hidden: int = 64, use_id: bool = True, use_sparse: bool = True,
                 use_text: bool = True, n_levels: int = 1, n_shared: int = 2, n_specific: int = 1,
                 expert_hidden: Sequence[int] = (64,), tower_hidden: Sequence[int] = (32,), dropout: float = 0.1,
                 use_behaviour: bool = True):
        super().__init__(spec, hidden, use_id, use_sparse, use_text, dropout, use_behaviour)
        if n_levels < 1:
            raise ValueError(f"PLE: n_levels={n_levels}; use 1 or more")
        in_dim = len(self.aspect_names) * hidden
        self.cgc = nn.ModuleList()
        for level in range(n_levels):
            # Only levels that feed another level need the shared branch (its gate over all experts).
            layer = CGCLayer(spec.n_domains, in_dim, n_shared, n_specific, expert_hidden, dropout,
                             shared_out=level < n_levels - 1)
            self.cgc.append(layer)
            in_dim = layer.out_dim
        self.towers = DomainTowers(spec.n_domains, in_dim, tower_hidden, dropout)
        self._save_config(locals())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        domain = batch["domain"]
        x_shared = x_own = self.encode(batch)
        for layer in self.cgc:
            x_shared, x_own = layer(x_shared, x_own, domain)
        return self._out(self.towers(x_own, domain))
