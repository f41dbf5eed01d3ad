"""STAR layers (Sheng et al., CIKM 2021): partitioned normalisation and star-topology fully connected layers."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models.layers.mlp import gather_domain


class PartitionedNorm(nn.Module):
    """x [B, D], domain [B] -> [B, D]: `(gamma * gamma_d) * (x - mu_d) / sqrt(var_d + eps) + (beta + beta_d)`.

    Statistics are per domain: from the domain's rows of the batch in training (one-hot matmuls, no loop),
    from per-domain running averages in eval; only domains present in the batch update their averages.
    Under DDP each rank updates its own averages; `models.distributed.sync_running_stats` averages them over
    ranks (the trainer does so before every evaluation).
    """

    def __init__(self, n_domains: int, dim: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.n_domains, self.momentum, self.eps = n_domains, momentum, eps
        self.shared_gamma = nn.Parameter(torch.ones(dim))
        self.shared_beta = nn.Parameter(torch.zeros(dim))
        self.domain_gamma = nn.Parameter(torch.ones(n_domains, dim))
        self.domain_beta = nn.Parameter(torch.zeros(n_domains, dim))
        self.register_buffer("running_mean", torch.zeros(n_domains, dim))
        self.register_buffer("running_var", torch.ones(n_domains, dim))

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        # float32 throughout, autocast off: under bf16 autocast the statistics' matmuls would run in bf16, and
        # E[x^2] - mean^2 in bf16 loses the variance entirely once |mean| >> std. Output is float32.
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = x.float()
            if self.training:
                # [B, K]; a comparison, not F.one_hot, which range-checks with a host read on some devices
                onehot = (domain.unsqueeze(-1) == torch.arange(self.n_domains, device=x.device)).to(xf.dtype)
                count = onehot.sum(0)
                denom = count.clamp_min(1.0).unsqueeze(-1)
                mean = onehot.t() @ xf / denom                                       # [K, D]
                centred = xf - mean[domain]
                var = onehot.t() @ (centred * centred) / denom                       # two-pass: no cancellation
                with torch.no_grad():
                    upd = (count > 0).to(xf.dtype).unsqueeze(-1) * self.momentum     # absent domains keep theirs
                    self.running_mean.mul_(1 - upd).add_(upd * mean.detach())
                    self.running_var.mul_(1 - upd).add_(upd * var.detach())
            else:
                centred = xf - self.running_mean.float()[domain]
                var = self.running_var.float()
            x_norm = centred * torch.rsqrt(var[domain] + self.eps)
            gamma = self.shared_gamma * self.domain_gamma[domain]
            beta = self.shared_beta + self.domain_beta[domain]
            return gamma.float() * x_norm + beta.float()

    def domain_tensors(self) -> list[torch.Tensor]:
        """Tensors whose leading dimension is the domain (re-initialised by init_domain)."""
        return [self.domain_gamma, self.domain_beta, self.running_mean, self.running_var]


class StarMLP(nn.Module):
    """Star-topology MLP: layer weights `W * W_d`, biases `b + b_d`; x [B, in], domain [B] -> [B, out_dim]."""

    def __init__(self, n_domains: int, in_dim: int, hidden: Sequence[int], out_dim: int = 1, dropout: float = 0.0):
        super().__init__()
        dims = [in_dim, *hidden, out_dim]
        self.shared_weight = nn.ParameterList()
        self.shared_bias = nn.ParameterList()
        self.domain_weight = nn.ParameterList()
        self.domain_bias = nn.ParameterList()
        for a, b in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(a)
            self.shared_weight.append(nn.Parameter(torch.empty(a, b).uniform_(-bound, bound)))
            self.shared_bias.append(nn.Parameter(torch.zeros(b)))
            # Domain factors start at the identity of the element-wise product, as in the STAR paper.
            self.domain_weight.append(nn.Parameter(torch.ones(n_domains, a, b)))
            self.domain_bias.append(nn.Parameter(torch.zeros(n_domains, b)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        n_layers = len(self.shared_weight)
        h = x
        for i in range(n_layers):
            w = self.shared_weight[i] * self.domain_weight[i]                            # [K, in, out]
            b = self.shared_bias[i] + self.domain_bias[i]                               # [K, out]
            # All K domain networks run (K small) and each row keeps its own at the end.
            h = (torch.einsum("bi,kio->bko", h, w) if h.dim() == 2 else torch.einsum("bki,kio->bko", h, w)) + b
            if i < n_layers - 1:
                h = self.dropout(torch.relu(h))
        return gather_domain(h, domain)

    def domain_tensors(self) -> list[torch.Tensor]:
        """Tensors whose leading dimension is the domain (re-initialised by init_domain)."""
        return [*self.domain_weight, *self.domain_bias]
