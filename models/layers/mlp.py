"""Dense blocks: a plain MLP and K stacked copies of one (experts, per-domain towers) run as batched matmuls."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def gather_domain(x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """Pick each row's own copy: x [B, K, ...], domain [B] long -> [B, ...]."""
    index = domain.view(-1, *([1] * (x.dim() - 1))).expand(-1, 1, *x.shape[2:])
    return x.gather(1, index).squeeze(1)


class MLP(nn.Sequential):
    """Linear-ReLU-Dropout blocks then an optional output Linear: [B, in_dim] -> [B, out_dim or hidden[-1]]."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int | None = None, dropout: float = 0.0):
        layers: list[nn.Module] = []
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
            d = h
        if out_dim is not None:
            layers.append(nn.Linear(d, out_dim))
            d = out_dim
        super().__init__(*layers)
        self.out_dim = d


class StackedLinear(nn.Module):
    """n independent Linear layers in one tensor: x [B, in] (shared) or [B, n, in] -> [B, n, out]."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        # Same init as nn.Linear per copy, so a stack of n behaves like n separately built layers.
        bound = 1.0 / math.sqrt(in_dim) if in_dim > 0 else 0.0
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.einsum("bi,nio->bno", x, self.weight) + self.bias
        return torch.einsum("bni,nio->bno", x, self.weight) + self.bias


class StackedMLP(nn.Module):
    """n independent MLPs run together: x [B, in] or [B, n, in] -> [B, n, out_dim or hidden[-1]]."""

    def __init__(self, n: int, in_dim: int, hidden: Sequence[int], out_dim: int | None = None,
                 dropout: float = 0.0):
        super().__init__()
        dims = [in_dim, *hidden] + ([out_dim] if out_dim is not None else [])
        self.layers = nn.ModuleList(StackedLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.n_hidden = len(hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = dims[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.n_hidden:  # hidden blocks get ReLU+dropout; the optional output layer stays linear
                x = self.dropout(torch.relu(x))
        return x
