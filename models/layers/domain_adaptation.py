"""Domain Adaptive Layer: map each domain's representation into a common space (linear | film | none)."""
from __future__ import annotations

import torch
from torch import nn

MODES = ("linear", "film", "none")


class DomainAdaptiveLayer(nn.Module):
    """x [B, H], domain [B] -> x_hat [B, H].

    linear: `x_hat = W_d x + b_d`, W_d initialised to the identity so training starts from the shared space;
    all K transforms are applied and each row keeps its own (K is small), so every W_d is in the graph.
    film: `x_hat = (1 + gamma_d) * x + beta_d` with (gamma_d, beta_d) = Linear(E_d) from a domain embedding.
    none: identity.
    """

    def __init__(self, n_domains: int, hidden: int, mode: str = "linear"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"DomainAdaptiveLayer: mode={mode!r}; use one of {MODES}")
        self.mode = mode
        if mode == "linear":
            self.weight = nn.Parameter(torch.eye(hidden).repeat(n_domains, 1, 1))   # [K, H_in, H_out]
            self.bias = nn.Parameter(torch.zeros(n_domains, hidden))
        elif mode == "film":
            self.domain_emb = nn.Parameter(torch.randn(n_domains, hidden))
            self.film = nn.Linear(hidden, 2 * hidden)
            # Small weights: near-identity at init, but not zero, so E_d gets a gradient from the first step.
            nn.init.normal_(self.film.weight, std=0.02)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        if self.mode == "linear":
            all_k = torch.einsum("bi,kio->bko", x, self.weight) + self.bias             # [B, K, H]
            return all_k.gather(1, domain.view(-1, 1, 1).expand(-1, 1, x.shape[1])).squeeze(1)
        if self.mode == "film":
            gamma, beta = self.film(self.domain_emb[domain]).chunk(2, dim=-1)
            return (1 + gamma) * x + beta
        return x

    def domain_tensors(self) -> list[torch.Tensor]:
        """Tensors whose leading dimension is the domain (re-initialised by init_domain)."""
        if self.mode == "linear":
            return [self.weight, self.bias]
        return [self.domain_emb] if self.mode == "film" else []
