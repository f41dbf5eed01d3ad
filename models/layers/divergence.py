"""Divergences between the domains present in a batch (the Domain Adaptive regulariser L_reg).

Precision: the maths runs in float32 with autocast switched off locally. Under bf16 autocast a `.float()` cast
alone is not enough (autocast lowers the following matmuls back to bf16), and bf16 kernel sums put the MMD of
near domains below its own rounding noise. No host sync: only fixed-shape ops (no boolean-mask indexing, no
`.item()`), so a training step that uses them never waits for the device.
"""
from __future__ import annotations

import math
from contextlib import AbstractContextManager

import torch

DIVERGENCES = ("js", "mmd", "none")


def full_precision(x: torch.Tensor) -> AbstractContextManager:
    """Autocast off on x's device: float32 tensors stay float32 through matmuls inside the block."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _js_from_log(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """JS(p||q) from log-probabilities [..., H] -> [...]; log-space so near-zero probabilities stay finite."""
    logm = torch.logaddexp(logp, logq) - math.log(2.0)
    kl_pm = (logp.exp() * (logp - logm)).sum(-1)
    kl_qm = (logq.exp() * (logq - logm)).sum(-1)
    return (0.5 * (kl_pm + kl_qm)).clamp_min(0.0)  # >= 0 in exact arithmetic; clamp float noise


def js_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Jensen-Shannon divergence (nats) between probability vectors p, q [..., H] -> [...]."""
    return _js_from_log(p.clamp_min(eps).log(), q.clamp_min(eps).log())


def _domain_onehot(domain: torch.Tensor, n_domains: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """domain [B] -> (one-hot [B, K], mask [K, K] of pairs i<j with both domains present in the batch)."""
    # a comparison, not F.one_hot: one_hot range-checks its input with a host read (.item()) on some devices
    onehot = (domain.unsqueeze(-1) == torch.arange(n_domains, device=domain.device)).to(dtype)
    present = onehot.sum(0) > 0
    pairs = torch.triu(present[:, None] & present[None, :], diagonal=1)
    return onehot, pairs


def _mean_over_pairs(values: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Average of values [K, K] over the masked pairs; 0 when fewer than two domains are present."""
    pf = pairs.to(values.dtype)
    return (values * pf).sum() / pf.sum().clamp_min(1.0)


def domain_js(x: torch.Tensor, domain: torch.Tensor, n_domains: int) -> torch.Tensor:
    """Mean JS over present domain pairs of p_k = softmax(mean of x over rows of domain k): x [B, H] -> scalar.

    Averaged (not summed, as the paper's formula reads) over pairs so the scale of alpha does not depend
    on how many domains a batch happens to contain. Computed with batched ops, no host sync.
    """
    with full_precision(x):
        x = x.float()
        onehot, pairs = _domain_onehot(domain, n_domains, x.dtype)
        means = onehot.t() @ x / onehot.sum(0).clamp_min(1.0).unsqueeze(-1)              # [K, H]
        logp = torch.log_softmax(means, dim=-1)
        js = _js_from_log(logp[:, None, :], logp[None, :, :])                            # [K, K]
        return _mean_over_pairs(js, pairs)


def _gaussian_kernel(z: torch.Tensor) -> torch.Tensor:
    """Gaussian kernel matrix of rows z [N, H] -> [N, N], bandwidth by the median heuristic."""
    sq = (z * z).sum(-1)
    # Squared distances without a sqrt: cdist's sqrt has an infinite slope at the zero diagonal.
    d2 = (sq[:, None] + sq[None, :] - 2.0 * z @ z.t()).clamp_min(0.0)
    n = z.shape[0]
    if n < 2:
        return torch.exp(-d2 / 2.0)
    # The n(n-1) off-diagonal entries as a view (drop the first element, rows of n+1 hold the diagonal last):
    # a fixed shape, unlike boolean-mask indexing, whose output size the host must read from the device.
    off = d2.detach().flatten()[1:].view(n - 1, n + 1)[:, :-1]
    # sigma = median pairwise distance (detached: the bandwidth is a statistic, not something to optimise).
    sigma2 = off.median().clamp_min(1e-12)
    return torch.exp(-d2 / (2.0 * sigma2))


def domain_mmd(x: torch.Tensor, domain: torch.Tensor, n_domains: int) -> torch.Tensor:
    """Mean biased Gaussian-kernel MMD^2 over present domain pairs: x [B, H] -> scalar.

    One kernel matrix over the whole batch (one shared median bandwidth), then per-domain mean kernels
    S = A^T K A with A the row-normalised one-hot, MMD^2_ij = S_ii + S_jj - 2 S_ij. Memory is B^2.
    """
    with full_precision(x):
        x = x.float()
        onehot, pairs = _domain_onehot(domain, n_domains, x.dtype)
        a = onehot / onehot.sum(0).clamp_min(1.0)                                         # [B, K]
        s = a.t() @ _gaussian_kernel(x) @ a                                               # [K, K]
        diag = s.diagonal()
        mmd2 = (diag[:, None] + diag[None, :] - 2.0 * s).clamp_min(0.0)
        return _mean_over_pairs(mmd2, pairs)


def mmd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Biased Gaussian-kernel MMD^2 between row sets x [N, H] and y [M, H] (median bandwidth) -> scalar."""
    z = torch.cat([x, y], dim=0)
    domain = torch.cat([x.new_zeros(x.shape[0], dtype=torch.long), x.new_ones(y.shape[0], dtype=torch.long)])
    return domain_mmd(z, domain, 2)


def domain_divergence(name: str, x: torch.Tensor, domain: torch.Tensor, n_domains: int) -> torch.Tensor:
    """The regulariser named by `name` ("js" | "mmd" | "none") on x [B, H] -> scalar."""
    if name == "js":
        return domain_js(x, domain, n_domains)
    if name == "mmd":
        return domain_mmd(x, domain, n_domains)
    if name == "none":
        return x.new_zeros((), dtype=torch.float32)
    raise ValueError(f"domain_divergence: unknown divergence {name!r}; use one of {DIVERGENCES}")
