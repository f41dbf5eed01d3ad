"""Single-domain DNN: concatenated aspects -> MLP -> one output (the "scratch on the cold-start domain" baseline)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from models.base import MultiDomainModel
from models.layers.mlp import MLP
from models.spec import FeatureSpec


class DNN(MultiDomainModel):
    """batch -> {"logit": [B], "reg_loss": 0}; ignores `domain`. Levels: L0 encoder, L1 body MLP, L2 output layer.

    It has no per-domain parameters, so init_domain only validates its arguments.
    """

    name = "dnn"
    level_prefixes = {"L0": ("encoder.",), "L1": ("body.",), "L2": ("head.",)}

    def __init__(self, spec: FeatureSpec, hidden: int = 64, use_id: bool = True, use_sparse: bool = True,
                 use_text: bool = True, mlp_hidden: Sequence[int] = (128, 64), dropout: float = 0.1,
                 use_behaviour: bool = True):
        super().__init__(spec, hidden, use_id, use_sparse, use_text, dropout, use_behaviour)
        self.body = MLP(len(self.aspect_names) * hidden, mlp_hidden, dropout=dropout)
        self.head = nn.Linear(self.body.out_dim, 1)
        self._save_config(locals())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        return self._out(self.head(self.body(self.encode(batch))).squeeze(-1))
