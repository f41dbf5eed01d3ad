"""SRF: the unified Search & Recommendation foundation model (arXiv 2309.08939), MMoE-DA-JS by default."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from models.base import MultiDomainModel
from models.layers.divergence import DIVERGENCES, domain_divergence
from models.layers.domain_adaptation import DomainAdaptiveLayer
from models.layers.experts import MMoELayer
from models.layers.fusion import AspectGatingFusion
from models.layers.towers import DomainTowers
from models.spec import FeatureSpec


class SRF(MultiDomainModel):
    """aspects (id, sparse, text) -> Aspect Gating Fusion -> Domain Adaptive Layer -> MMoE -> per-domain towers.

    forward(batch) -> {"logit": [B], "reg_loss": scalar (JS/MMD between the domains in the batch, on x_hat),
    "gate_weights": [B, A], "aspect_names": tuple of A names}.
    Levels: L0 = encoder (id/sparse embeddings, text projection, behaviour encoder), L1 = fusion,
    domain-adaptive layer, MMoE experts and gates, L2 = domain towers.
    """

    name = "srf"
    level_prefixes = {"L0": ("encoder.",), "L1": ("fusion.", "adapt.", "mmoe."), "L2": ("towers.",)}

    def __init__(self, spec: FeatureSpec, hidden: int = 64, gating: str = "domain", use_id: bool = True,
                 use_sparse: bool = True, use_text: bool = True, domain_adaptation: str = "linear",
                 divergence: str = "js", n_experts: int = 4, expert_hidden: Sequence[int] = (64,),
                 tower_hidden: Sequence[int] = (32,), dropout: float = 0.1, use_behaviour: bool = True):
        super().__init__(spec, hidden, use_id, use_sparse, use_text, dropout, use_behaviour)
        if divergence not in DIVERGENCES:
            raise ValueError(f"SRF: divergence={divergence!r}; use one of {DIVERGENCES}")
        self.divergence = divergence
        self.fusion = AspectGatingFusion(spec.n_domains, hidden, gating)
        self.adapt = DomainAdaptiveLayer(spec.n_domains, hidden, domain_adaptation)
        self.mmoe = MMoELayer(spec.n_domains, hidden, n_experts, expert_hidden, dropout)
        self.towers = DomainTowers(spec.n_domains, self.mmoe.out_dim, tower_hidden, dropout)
        self._save_config(locals())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        domain = batch["domain"]
        fused, gate_weights = self.fusion(self.encoder(batch), domain)
        x_hat = self.adapt(fused, domain)
        logit = self.towers(self.mmoe(x_hat, domain), domain)
        return {
            "logit": logit,
            "reg_loss": domain_divergence(self.divergence, x_hat, domain, self.n_domains),
            "gate_weights": gate_weights,
            "aspect_names": self.aspect_names,
        }
