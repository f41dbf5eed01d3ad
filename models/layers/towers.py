"""Per-domain prediction towers as K stacked MLPs; each row is scored by its own domain's tower."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.layers.mlp import StackedMLP, gather_domain


class DomainTowers(nn.Module):
    """x [B, in] (or [B, K, in]), domain [B] -> logit [B] from the row's domain tower."""

    def __init__(self, n_domains: int, in_dim: int, hidden: Sequence[int] = (32,), dropout: float = 0.0):
        super().__init__()
        self.towers = StackedMLP(n_domains, in_dim, hidden, out_dim=1, dropout=dropout)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        # All K towers run on every row and the row's own is gathered: batched matmuls instead of a loop
        # over domains, and every tower is part of the graph each step (DDP needs no find_unused_parameters).
        return gather_domain(self.towers(x), domain).squeeze(-1)

    def domain_tensors(self) -> list[torch.Tensor]:
        """Tensors whose leading dimension is the domain (re-initialised by init_domain)."""
        return [p for layer in self.towers.layers for p in (layer.weight, layer.bias)]
