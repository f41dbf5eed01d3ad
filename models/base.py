"""MultiDomainModel: what every model shares (input encoding, parameter levels, init_domain, config)."""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from models.layers.encoders import InputEncoder
from models.spec import FeatureSpec

LEVELS = ("L0", "L1", "L2")


def _plain(value: Any) -> Any:
    """Tuples -> lists so a config survives a JSON round trip unchanged."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


class MultiDomainModel(nn.Module):
    """Base of all models: batch dict -> {"logit": [B], "reg_loss": scalar, ...}.

    Subclasses set `name`, `level_prefixes` (parameter-name prefixes of L0/L1/L2) and call `_save_config`.
    Per-domain parameters are found through the `domain_tensors()` method of submodules: each returns
    tensors whose leading dimension is K (or K * m, domain-major), which `init_domain` rewrites.
    """

    name = "base"
    level_prefixes: dict[str, tuple[str, ...]] = {"L0": ("encoder.",), "L1": (), "L2": ()}

    def __init__(self, spec: FeatureSpec, hidden: int, use_id: bool, use_sparse: bool, use_text: bool,
                 dropout: float, use_behaviour: bool = True):
        super().__init__()
        self.spec = spec
        self.n_domains = spec.n_domains
        # use_behaviour: read the user's behaviour sequences and num_beh_* aggregates (see InputEncoder); without
        # sequences in the spec only the aggregates are affected. Its parameters live under encoder.behaviour (L0).
        self.encoder = InputEncoder(spec, hidden, use_id=use_id, use_sparse=use_sparse, use_text=use_text,
                                    dropout=dropout, use_behaviour=use_behaviour)
        self.aspect_names = self.encoder.aspect_names
        self._config: dict[str, Any] = {}

    def _save_config(self, local_vars: dict[str, Any]) -> None:
        """Record the constructor keywords (from the subclass's own signature) for config()."""
        params = inspect.signature(type(self).__init__).parameters
        self._config = {k: _plain(local_vars[k]) for k in params if k not in ("self", "spec")}

    @property
    def uses_behaviour(self) -> bool:
        """True when forward reads the behaviour sequence keys (beh_*) of the batch."""
        return self.encoder.uses_behaviour

    def config(self) -> dict[str, Any]:
        """Constructor keywords plus `name`: `build_model(cfg.pop("name"), spec, **cfg)` rebuilds the model."""
        return {"name": self.name, **self._config}

    def named_parameter_levels(self) -> dict[str, list[str]]:
        """Parameter names per freezing level; raises if a parameter matches no level or more than one."""
        out: dict[str, list[str]] = {lv: [] for lv in LEVELS}
        for pname, _ in self.named_parameters():
            hits = [lv for lv in LEVELS if pname.startswith(self.level_prefixes.get(lv, ()))]
            if len(hits) != 1:
                raise RuntimeError(f"{type(self).__name__}: parameter {pname!r} matches levels {hits}; "
                                   f"fix level_prefixes so it is in exactly one")
            out[hits[0]].append(pname)
        return out

    def parameter_levels(self) -> dict[str, list[nn.Parameter]]:
        """{"L0": embeddings + text projection, "L1": fusion/adaptation/experts/gates/bottom, "L2": towers}."""
        params = dict(self.named_parameters())
        return {lv: [params[n] for n in names] for lv, names in self.named_parameter_levels().items()}

    def domain_tensors(self) -> list[torch.Tensor]:
        """Every per-domain tensor (parameters and buffers) of the submodules, leading dim K * m."""
        seen: dict[int, torch.Tensor] = {}
        for m in self.modules():
            if m is not self and hasattr(m, "domain_tensors"):
                for t in m.domain_tensors():
                    seen.setdefault(id(t), t)
        return list(seen.values())

    @torch.no_grad()
    def init_domain(self, domain: int, init_from: int | list[int] | None = None) -> None:
        """Set domain `domain`'s own parameters to a copy of `init_from`'s, or the mean over a list (None = all
        others)."""
        K = self.n_domains
        if not 0 <= domain < K:
            raise ValueError(f"init_domain: domain {domain} is outside 0..{K - 1}")
        src = [k for k in range(K) if k != domain] if init_from is None else (
            [int(init_from)] if isinstance(init_from, int) else [int(k) for k in init_from])
        if not src or any(not 0 <= k < K for k in src) or domain in src:
            raise ValueError(f"init_domain: init_from={init_from!r} must name domains in 0..{K - 1} other than "
                             f"{domain}")
        for t in self.domain_tensors():
            rows = t.data.view(K, -1)  # leading dim is K or K*m (domain-major), so this is domain by row
            rows[domain] = rows[src].mean(0) if len(src) > 1 else rows[src[0]]

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Aspect vectors concatenated: batch -> [B, A * hidden] (the baselines' input)."""
        return self.encoder(batch).flatten(1)

    def _out(self, logit: torch.Tensor, **extra: Any) -> dict[str, Any]:
        return {"logit": logit, "reg_loss": logit.new_zeros((), dtype=torch.float32), **extra}
