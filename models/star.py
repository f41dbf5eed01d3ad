"""STAR baseline (Sheng et al., CIKM 2021): partitioned normalisation, star-topology FCN, auxiliary network."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from models.base import MultiDomainModel
from models.layers.mlp import MLP
from models.layers.star import PartitionedNorm, StarMLP
from models.spec import FeatureSpec


class STAR(MultiDomainModel):
    """batch -> {"logit": [B] = star FCN logit + auxiliary logit, "reg_loss": 0}.

    Levels: L0 encoder; L1 the shared parts (shared FC weights, shared PN scale/shift, auxiliary network
    with its domain embedding); L2 the domain-specific FC weights and PN scale/shift (STAR's per-domain
    "towers"). PN is applied to the concatenated aspect vectors, the star FCN's input.
    """

    name = "star"
    level_prefixes = {"L0": ("encoder.",), "L1": ("norm.shared_", "star.shared_", "aux."),
                      "L2": ("norm.domain_", "star.domain_")}

    def __init__(self, spec: FeatureSpec, hidden: int = 64, use_id: bool = True, use_sparse: bool = True,
                 use_text: bool = True, star_hidden: Sequence[int] = (64, 32), aux_hidden: Sequence[int] = (32,),
                 domain_emb_dim: int = 8, dropout: float = 0.1, use_behaviour: bool = True):
        super().__init__(spec, hidden, use_id, use_sparse, use_text, dropout, use_behaviour)
        in_dim = len(self.aspect_names) * hidden
        self.norm = PartitionedNorm(spec.n_domains, in_dim)
        self.star = StarMLP(spec.n_domains, in_dim, star_hidden, out_dim=1, dropout=dropout)
        self.aux = _AuxNet(spec.n_domains, in_dim, domain_emb_dim, aux_hidden, dropout)
        self._save_config(locals())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        domain = batch["domain"]
        z = self.encode(batch)
        logit = self.star(self.norm(z, domain), domain).squeeze(-1) + self.aux(z, domain)
        return self._out(logit)


class _AuxNet(nn.Module):
    """STAR's auxiliary network: [domain embedding; z] -> MLP -> logit [B], so the domain steers the output directly."""

    def __init__(self, n_domains: int, in_dim: int, emb_dim: int, hidden: Sequence[int], dropout: float):
        super().__init__()
        self.domain_emb = nn.Parameter(torch.randn(n_domains, emb_dim) * 0.1)
        self.mlp = MLP(in_dim + emb_dim, hidden, 1, dropout)

    def forward(self, z: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.domain_emb[domain].to(z.dtype), z], dim=-1)).squeeze(-1)

    def domain_tensors(self) -> list[torch.Tensor]:
        """Tensors whose leading dimension is the domain (re-initialised by init_domain)."""
        return [self.domain_emb]
