"""Mixture-of-experts bodies: MMoE (shared experts, per-domain gates) and PLE's CGC level."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from models.layers.mlp import StackedLinear, StackedMLP, gather_domain


class DomainGates(nn.Module):
    """One softmax gate per domain, stacked: x [B, in], domain [B] -> weights [B, n_out] for the row's domain."""

    def __init__(self, n_domains: int, in_dim: int, n_out: int):
        super().__init__()
        self.gates = StackedLinear(n_domains, in_dim, n_out)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        # All K gates run (K small) and each row keeps its own: every gate is in the graph, no row loop.
        return torch.softmax(gather_domain(self.gates(x), domain), dim=-1)

    def domain_tensors(self) -> list[torch.Tensor]:
        """Tensors whose leading dimension is the domain (re-initialised by init_domain)."""
        return [self.gates.weight, self.gates.bias]


class MMoELayer(nn.Module):
    """MMoE: x [B, in], domain [B] -> [B, expert_hidden[-1]], shared experts mixed by the row's domain gate."""

    def __init__(self, n_domains: int, in_dim: int, n_experts: int = 4, expert_hidden: Sequence[int] = (64,),
                 dropout: float = 0.0):
        super().__init__()
        self.experts = StackedMLP(n_experts, in_dim, expert_hidden, dropout=dropout)
        self.gates = DomainGates(n_domains, in_dim, n_experts)
        self.out_dim = self.experts.out_dim

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        experts = self.experts(x)                                     # [B, E, out]
        return torch.einsum("be,beo->bo", self.gates(x, domain), experts)


class DomainExperts(nn.Module):
    """n_per_domain experts for each of K domains, stacked: x [B, in] -> [B, K, n_per_domain, out]."""

    def __init__(self, n_domains: int, n_per_domain: int, in_dim: int, expert_hidden: Sequence[int],
                 dropout: float = 0.0):
        super().__init__()
        self.n_domains, self.n_per_domain = n_domains, n_per_domain
        self.experts = StackedMLP(n_domains * n_per_domain, in_dim, expert_hidden, dropout=dropout)
        self.out_dim = self.experts.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.experts(x)
        return out.view(out.shape[0], self.n_domains, self.n_per_domain, -1)

    def domain_tensors(self) -> list[torch.Tensor]:
        """Leading dimension K * n_per_domain, domain-major, so `.view(K, -1)[d]` is domain d's experts."""
        return [p for layer in self.experts.layers for p in (layer.weight, layer.bias)]


class CGCLayer(nn.Module):
    """One PLE extraction level: (x_shared [B, in], x_own [B, in], domain) -> (y_shared or None, y_own) [B, out].

    Shared experts read x_shared, the domain experts read x_own (the row's domain branch); the row's domain
    gate (on x_own) and, for levels that feed another level, the shared gate (on x_shared) both mix the
    shared experts with the row's own domain experts. Original PLE's shared gate also mixes the other
    tasks' experts; with one domain per row those would read an input the row does not have, so we leave
    them out (our choice).
    """

    def __init__(self, n_domains: int, in_dim: int, n_shared: int = 2, n_specific: int = 1,
                 expert_hidden: Sequence[int] = (64,), dropout: float = 0.0, shared_out: bool = False):
        super().__init__()
        self.shared = StackedMLP(n_shared, in_dim, expert_hidden, dropout=dropout)
        self.specific = DomainExperts(n_domains, n_specific, in_dim, expert_hidden, dropout)
        self.gates = DomainGates(n_domains, in_dim, n_shared + n_specific)
        self.shared_gate = nn.Linear(in_dim, n_shared + n_specific) if shared_out else None
        self.out_dim = self.shared.out_dim

    def forward(self, x_shared: torch.Tensor, x_own: torch.Tensor, domain: torch.Tensor):
        pool = torch.cat([self.shared(x_shared), gather_domain(self.specific(x_own), domain)], dim=1)  # [B, S+P, out]
        y_own = torch.einsum("be,beo->bo", self.gates(x_own, domain), pool)
        if self.shared_gate is None:
            return None, y_own
        w = torch.softmax(self.shared_gate(x_shared), dim=-1)
        return torch.einsum("be,beo->bo", w, pool), y_own
