"""User-behaviour encoder shared by every model: the user's last clicked items and issued queries, met by the candidate.

Inputs (batch keys, docs/model-api.md): beh_item [B, L] long (item vocabulary index, 0 = OOV), beh_mask [B, L]
(1 = an event), beh_item_emb [B, L, D] (frozen text vector of each clicked item, zeros = no text), beh_query_emb
[B, Lq, D] and beh_query_mask [B, Lq] (issued queries, text only). Sequences are most recent first; padding has
mask 0 and never changes the output (masked softmax / masked mean), so L itself is not a parameter.
The beh_* tensors may also have leading dimension 1: one history for every row (online ranking, one user per
request). Everything that depends on the history alone is then computed once, and only the candidate-dependent
attention runs per row.

Two sides, each feeding the aspect of its space (model-spec "User behaviour"):
- id side -> ID aspect: item-id embeddings of the clicked items, from the ID aspect's own item table (shared, not
  duplicated), DIN-style target attention from the candidate's item embedding, and their masked mean:
  `[attended_id; mean_id]` [B, 2E].
- text side -> text aspect: parameter-free target attention from the candidate's text vector t_i over the clicked
  items' frozen text vectors (softmax of TEXT_TEMPERATURE * cosine), the masked mean text profile of clicked items
  and of issued queries. The profile is met by the candidate as `sqrt(D) * p^ * t^` (unit vectors, elementwise)
  and `cos(p, t_i)`; the attended vector and the query profile by their cosine with t_i: [B, D + 3] with both
  sequences. This is the domain-invariant bridge: it scores an item never seen in training (OOV id) by its text
  against what the user clicked, in any domain.
  (*our choice*: unit vectors times sqrt(D) put the product's entries at the magnitude of a normalised D-dim text
  vector's entries, whatever the encoder's norm; raw products of two text vectors are ~1/D, too small to learn.)

Empty history (no event on a side, or no clicked item with text on the text side) = learned "no history" vectors in
place of the attended / mean vectors: never a NaN from an all-masked softmax, and "new user" is a signal of its own.

Attention (DIN, Zhou et al. KDD 2018): weight of key k for query q = MLP([q; k; q - k; q * k]) -> softmax over the
events (masked). The MLP's first layer is applied blockwise, `W [q; k; q-k; q*k] = (W_q + W_d) q + (W_k - W_d) k +
W_p (q*k)`, the same function and parameters as on the concatenation, without materialising [B, L, 4d].
The text attention has no parameters, so no gradient flows through the [B, L, D] sequence tensors: a learned
projection + DIN MLP there (and D-wide products for every text vector) made a CPU training step ~5x slower than without
behaviour; with this design the behaviour encoder costs about a third of a step more.

Levels: everything here lives under `encoder.behaviour.` and is L0, with the embeddings and text projection: it is
input encoding (like each aspect's own MLP, also L0), and the cold-start fine-tuning that freezes L0 keeps the
pretrained way of reading a history.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.spec import FeatureSpec

#: Text-side attention is parameter-free (*our choice*): weights softmax(TEXT_TEMPERATURE * cos) over the clicked items'
#: frozen text vectors, so no gradient flows through the [B, L, D] sequence tensors (a learned projection + DIN MLP
#: here made a CPU training step ~5x slower than without behaviour; the id side keeps the learned DIN attention).
TEXT_TEMPERATURE = 5.0


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B, L, d], mask [B, L] (0/1) -> [B, d]; 0 where a row has no event."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def weighted_sum(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """w [B, L], x [B or 1, L, d] -> [B, d] (a matmul: a shared x [1, L, d] is not copied per row)."""
    return torch.matmul(w.to(x.dtype).unsqueeze(1), x).squeeze(1)


class TargetAttention(nn.Module):
    """DIN target attention: query [B, d], keys [B or 1, L, d], mask [B or 1, L] -> weights [B, L] (float32, rows
    sum to 1 over the events, all 0 for a row without events; never NaN)."""

    def __init__(self, dim: int, hidden: int = 32):
        super().__init__()
        self.first = nn.Linear(4 * dim, hidden)    # on [q; k; q - k; q * k], applied blockwise (module docstring)
        self.out = nn.Linear(hidden, 1, bias=False)   # no bias: a softmax ignores a constant added to every score
        self.dim = dim

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        wq, wk, wd, wp = self.first.weight.split(self.dim, dim=1)
        hq = F.linear(query, wq + wd, self.first.bias)                         # [B, H]
        hk = F.linear(keys, wk - wd) + F.linear(query.unsqueeze(1) * keys, wp)  # [B, L, H] ([1, L, H] + [B, L, H])
        scores = self.out(torch.relu(hq.unsqueeze(1) + hk)).squeeze(-1).float()
        present = mask > 0
        # finfo.min, not -inf: a row without events gets a finite uniform softmax, zeroed by the mask below.
        scores = scores.masked_fill(~present, torch.finfo(torch.float32).min)
        return torch.softmax(scores, dim=-1) * present


class BehaviourEncoder(nn.Module):
    """id side [B, id_out] for the ID aspect, text side [B, text_out] for the text aspect (module docstring).

    id_dim: width E of the ID aspect's item embeddings (0 = no id side: no ID aspect); text: build the text side
    (the text aspect exists). Sides whose sequence the spec lacks (L or Lq = 0, text_dim = 0) are not built.
    """

    def __init__(self, spec: FeatureSpec, id_dim: int = 0, text: bool = True, att_hidden: int = 32):
        super().__init__()
        dims = self.output_dims(spec, id_dim, text)
        self.id_out, self.text_out = dims
        self.items_text, self.queries_text = self._text_parts(spec, text)
        self.text_dim = spec.text_dim
        if self.id_out:
            self.id_att = TargetAttention(id_dim, att_hidden)
            self.no_history_id = nn.Parameter(torch.randn(2 * id_dim) * 0.05)   # [attended; mean]
        if self.items_text:
            # text attention: softmax over the events of `TEXT_TEMPERATURE * cos(candidate text, clicked item text)`
            self.no_history_items = nn.Parameter(torch.randn(2, spec.text_dim) * 0.05)  # profile, attended
        if self.queries_text:
            self.no_history_queries = nn.Parameter(torch.randn(spec.text_dim) * 0.05)

    @staticmethod
    def _text_parts(spec: FeatureSpec, text: bool) -> tuple[bool, bool]:
        on = text and spec.text_dim > 0
        return on and spec.behaviour_length > 0, on and spec.behaviour_query_length > 0

    @classmethod
    def output_dims(cls, spec: FeatureSpec, id_dim: int = 0, text: bool = True) -> tuple[int, int]:
        """(id_out, text_out) the encoder built with these arguments adds to the ID / text aspect's MLP input."""
        items, queries = cls._text_parts(spec, text)
        id_out = 2 * id_dim if id_dim and spec.behaviour_length > 0 else 0
        return id_out, (spec.text_dim + 2 if items else 0) + (1 if queries else 0)

    @staticmethod
    def _need(batch: dict[str, torch.Tensor], *keys: str) -> None:
        missing = [k for k in keys if k not in batch]
        if missing:
            raise KeyError(f"the model reads user behaviour but the batch has no {missing}: encode the split with the "
                           f"spec's behaviour lengths (models.engine.load_split), or pass behaviour to Scorer.score")

    def id_side(self, batch: dict[str, torch.Tensor], item_table: nn.Embedding, candidate: torch.Tensor
                ) -> torch.Tensor:
        """candidate [B, E] (the row's item embedding) -> [attended_id; mean_id] [B, 2E]."""
        self._need(batch, "beh_item", "beh_mask")
        mask = batch["beh_mask"]
        seq = item_table(batch["beh_item"])                                         # [B or 1, L, E]
        attended = weighted_sum(self.id_att(candidate, seq, mask), seq)           # [B, E]
        out = torch.cat([attended, masked_mean(seq, mask).expand_as(attended)], dim=-1)
        has = mask.sum(1, keepdim=True) > 0
        return torch.where(has, out, self.no_history_id.to(out.dtype))

    @staticmethod
    def _cosine(v: torch.Tensor, t_unit: torch.Tensor) -> torch.Tensor:
        return (F.normalize(v, dim=-1) * t_unit).sum(-1, keepdim=True)

    def _affinity(self, v: torch.Tensor, t_unit: torch.Tensor) -> list[torch.Tensor]:
        prod = F.normalize(v, dim=-1) * t_unit
        return [prod * math.sqrt(self.text_dim), prod.sum(-1, keepdim=True)]

    def text_side(self, batch: dict[str, torch.Tensor], t_item: torch.Tensor) -> torch.Tensor:
        """t_item [B, D] (the candidate's text vector, or the learned "no text" one) -> [B, text_out]."""
        t_unit = F.normalize(t_item, dim=-1)
        parts: list[torch.Tensor] = []
        if self.items_text:
            self._need(batch, "beh_item_emb", "beh_mask")
            emb = batch["beh_item_emb"].to(t_item.dtype)                             # [B or 1, L, D]
            norms = torch.linalg.vector_norm(emb, dim=-1)                            # [B or 1, L]
            mask = batch["beh_mask"] * (norms > 0)                                   # events that have text
            # cosine of the candidate's text with each clicked item's: one matmul over [B, L, D], no copies of it
            cos = torch.matmul(emb, t_unit.unsqueeze(-1)).squeeze(-1) / norms.clamp_min(1e-12)   # [B, L]
            present = mask > 0
            scores = (TEXT_TEMPERATURE * cos.float()).masked_fill(~present, torch.finfo(torch.float32).min)
            w = torch.softmax(scores, dim=-1) * present                              # [B, L]
            uniform = mask / mask.sum(1, keepdim=True).clamp_min(1.0)                # masked mean weights
            # attended and mean profile in one matmul: [B, 2, L] x [B or 1, L, D]
            both = torch.matmul(torch.stack([uniform.expand_as(w).to(emb.dtype), w.to(emb.dtype)], dim=1), emb)
            has = mask.sum(1, keepdim=True) > 0
            has = has.expand(both.shape[0], 1)
            profile = torch.where(has, both[:, 0], self.no_history_items[0].to(emb.dtype))
            attended = torch.where(has, both[:, 1], self.no_history_items[1].to(emb.dtype))
            # the profile met elementwise (D features) and by cosine; the attended vector by cosine only (*our choice*:
            # D-wide products for the attended vector and the query profile too tripled the text aspect's MLP input,
            # which made a CPU training step ~5x slower than without behaviour)
            parts += self._affinity(profile, t_unit) + [self._cosine(attended, t_unit)]
        if self.queries_text:
            self._need(batch, "beh_query_emb", "beh_query_mask")
            emb = batch["beh_query_emb"].to(t_item.dtype)
            mask = batch["beh_query_mask"] * (torch.linalg.vector_norm(emb, dim=-1) > 0)
            has = mask.sum(1, keepdim=True) > 0
            profile = torch.where(has, masked_mean(emb, mask), self.no_history_queries.to(emb.dtype))
            parts += [self._cosine(profile, t_unit)]
        return torch.cat(parts, dim=-1)
