"""Aspect Gating Fusion: weight the aspect vectors per row and sum them (mean | cls | domain gating)."""
from __future__ import annotations

import math

import torch
from torch import nn

GATINGS = ("mean", "cls", "domain")


class AspectGatingFusion(nn.Module):
    """aspects [B, A, H], domain [B] -> (fused [B, H], weights [B, A]); weights are a softmax over aspects.

    domain: `w_a = softmax_a(E_d . h_a / sqrt(H))` with a learned domain embedding E_d (the paper's best
    strategy; the 1/sqrt(H) scale is our choice, as in attention, so the softmax does not saturate when H
    grows). cls: `w_a = softmax_a(c . h_a / sqrt(H))` with one learned vector c. mean: `w_a = 1/A`.
    """

    def __init__(self, n_domains: int, hidden: int, gating: str = "domain"):
        super().__init__()
        if gating not in GATINGS:
            raise ValueError(f"AspectGatingFusion: gating={gating!r}; use one of {GATINGS}")
        self.gating = gating
        self.scale = 1.0 / math.sqrt(hidden)
        if gating == "domain":
            self.domain_emb = nn.Parameter(torch.randn(n_domains, hidden))
        elif gating == "cls":
            self.cls = nn.Parameter(torch.randn(hidden))

    def forward(self, aspects: torch.Tensor, domain: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, A, _ = aspects.shape
        if self.gating == "mean":
            weights = aspects.new_full((B, A), 1.0 / A)
        else:
            query = self.domain_emb[domain] if self.gating == "domain" else self.cls.expand(B, -1)  # [B, H]
            scores = torch.einsum("bah,bh->ba", aspects, query) * self.scale
            weights = torch.softmax(scores.float(), dim=-1).to(aspects.dtype)
        return torch.einsum("ba,bah->bh", weights, aspects), weights

    def domain_tensors(self) -> list[torch.Tensor]:
        """Tensors whose leading dimension is the domain (re-initialised by init_domain)."""
        return [self.domain_emb] if self.gating == "domain" else []
