"""Aspect encoders (ID, sparse, text), each mapping a batch to one vector h_a [B, H] per row."""
from __future__ import annotations

import torch
from torch import nn

from models.layers.behaviour import BehaviourEncoder
from models.layers.mlp import MLP
from models.spec import FeatureSpec

ASPECTS = ("id", "sparse", "text")


class IdEncoder(nn.Module):
    """User, item and query id embeddings -> MLP: batch -> [B, hidden]; index 0 is the shared OOV/no-query row.

    With `behaviour_dim` > 0 the behaviour encoder's id side (attended + mean item embeddings of the user's clicks,
    read from this encoder's own item table) joins the MLP input: forward then needs `behaviour`.
    """

    def __init__(self, spec: FeatureSpec, hidden: int, emb_dim: int, dropout: float = 0.0, behaviour_dim: int = 0):
        super().__init__()
        self.user = nn.Embedding(spec.n_users, emb_dim)
        self.item = nn.Embedding(spec.n_items, emb_dim)
        self.query = nn.Embedding(spec.n_queries, emb_dim)
        for emb in (self.user, self.item, self.query):
            nn.init.normal_(emb.weight, std=0.05)  # small: N(0,1) rows would dominate the other aspects at init
        self.behaviour_dim = behaviour_dim
        self.mlp = MLP(3 * emb_dim + behaviour_dim, [hidden], hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor], behaviour: BehaviourEncoder | None = None) -> torch.Tensor:
        item = self.item(batch["item"])
        parts = [self.user(batch["user"]), item, self.query(batch["query"])]
        if self.behaviour_dim:
            if behaviour is None:
                raise ValueError("IdEncoder: built with a behaviour side, so forward needs the BehaviourEncoder")
            parts.append(behaviour.id_side(batch, self.item, item))
        return self.mlp(torch.cat(parts, dim=-1))


class SparseEncoder(nn.Module):
    """Categorical + numeric field embeddings, mean over present fields -> MLP: batch -> [B, hidden].

    A numeric field f embeds as `num_f * v_f + u_f`; fields with num_mask 0 are left out of the mean (not
    zero-imputed), so a domain that lacks a field is encoded exactly as if the field did not exist.
    Categorical index 0 (unseen/missing) has its own learned row, as the FeatureSpec defines it.
    `ignore_fields` (numeric field indices, e.g. the behaviour aggregates num_beh_* for use_behaviour=False) are
    masked like missing values in every row: the output does not depend on them.
    """

    def __init__(self, spec: FeatureSpec, hidden: int, emb_dim: int, dropout: float = 0.0,
                 ignore_fields: list[int] | tuple[int, ...] = ()):
        super().__init__()
        cards = list(spec.cat_cardinalities)
        self.n_cat, self.n_num = len(cards), spec.n_num
        # One table with per-field offsets: a single lookup for all categorical fields. Parts a spec lacks
        # (no categorical / no numeric fields) are not built, so no parameter sits unused (DDP-safe).
        self.cat = nn.Embedding(sum(cards), emb_dim) if cards else None
        if self.cat is not None:
            nn.init.normal_(self.cat.weight, std=0.05)
        offsets = torch.tensor([0] + cards[:-1], dtype=torch.long).cumsum(0)
        self.register_buffer("cat_offsets", offsets[: len(cards)], persistent=False)
        if self.n_num:
            self.num_scale = nn.Parameter(torch.randn(self.n_num, emb_dim) * 0.05)
            self.num_bias = nn.Parameter(torch.randn(self.n_num, emb_dim) * 0.05)
        keep = torch.ones(self.n_num)
        keep[list(ignore_fields)] = 0.0
        self.ignores_fields = bool(len(ignore_fields))
        self.register_buffer("num_keep", keep, persistent=False)   # not in the state dict: old checkpoints load
        self.emb_dim = emb_dim
        self.mlp = MLP(emb_dim, [hidden], hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ref = self.mlp[0].weight
        B = batch["domain"].shape[0]
        total = ref.new_zeros(B, self.emb_dim)
        count = ref.new_zeros(B, 1)
        if self.n_cat:
            total = total + self.cat(batch["cat"] + self.cat_offsets).sum(1)
            count = count + self.n_cat
        if self.n_num:
            mask = batch["num_mask"].to(ref.dtype)
            if self.ignores_fields:
                mask = mask * self.num_keep.to(ref.dtype)
            mask = mask.unsqueeze(-1)                                                # [B, F, 1]
            field = batch["num"].to(ref.dtype).unsqueeze(-1) * self.num_scale + self.num_bias
            total = total + (field * mask).sum(1)
            count = count + mask.sum(1)
        # Rows with no present field at all get a zero mean; the MLP bias still gives them a learned vector.
        return self.mlp(total / count.clamp_min(1.0))


class TextEncoder(nn.Module):
    """Frozen text vectors, met by the user: batch -> [B, hidden]; learned vectors replace absent text.

    `h_text = MLP([t_q; t_i; t_q * t_i; u * t_i; u * t_q])` with `u = P(e_u)`, a learned linear projection
    (L0, no bias) of the user's ID embedding into the D-dim text space (*our choice*, the spec's "User-Query-Item
    encoding from three aspects": each aspect encodes the user). Without the user term the user meets the item
    text only through the fused sum of aspect vectors, so a user's topic preference cannot be applied to an item
    whose ID was never trained (cold start); with it, `1 . (u * t_i) = u . t_i` is a user-item-text affinity a
    single linear unit of the MLP reads off, and it transfers to any item that has text.
    The user embedding `e_u` is the ID aspect's own table (shared, not duplicated): with `use_id=False` there is
    no user term and the text aspect is the pure content `[t_q; t_i; t_q * t_i]` (no ID feature anywhere).
    With `behaviour_dim` > 0 the behaviour encoder's text side (the user's clicked-item / issued-query text profiles
    and the candidate-attended clicks, each met by t_i) joins the MLP input: forward then needs `behaviour`.
    """

    def __init__(self, spec: FeatureSpec, hidden: int, dropout: float = 0.0, user_dim: int = 0,
                 behaviour_dim: int = 0):
        super().__init__()
        d = spec.text_dim
        # Learned "no query" (rec domains) / "no item text" vectors instead of zeros, so absence is a signal
        # of its own rather than a point the projection confuses with a short text.
        self.no_query = nn.Parameter(torch.randn(d) * 0.05)
        self.no_item_text = nn.Parameter(torch.randn(d) * 0.05)
        self.user_proj = nn.Linear(user_dim, d, bias=False) if user_dim else None
        # P's default init gives u entries ~0.03 (e_u has std 0.05) against text entries ~1/sqrt(D): unscaled, the
        # u * t terms start ~50x smaller than t_i and were not learned (measured: no gain). 4 sqrt(D) puts them at
        # the magnitude of t_i (*our choice*, picked on pretrain/cold-start valid AUC).
        self.u_scale = float(d) ** 0.5 * 4.0
        self.behaviour_dim = behaviour_dim
        self.mlp = MLP((5 if user_dim else 3) * d + behaviour_dim, [hidden], hidden, dropout)

    def forward(self, batch: dict[str, torch.Tensor], user_emb: torch.Tensor | None = None,
                behaviour: BehaviourEncoder | None = None) -> torch.Tensor:
        dtype = self.no_query.dtype
        hq = batch["has_query"].to(dtype).unsqueeze(-1)
        hi = batch["has_item_text"].to(dtype).unsqueeze(-1)
        tq = hq * batch["query_emb"].to(dtype) + (1 - hq) * self.no_query
        ti = hi * batch["item_emb"].to(dtype) + (1 - hi) * self.no_item_text
        parts = [tq, ti, tq * ti]
        if self.user_proj is not None:
            if user_emb is None:
                raise ValueError("TextEncoder: built with a user term, so forward needs user_emb [B, user_dim]")
            u = self.user_proj(user_emb) * self.u_scale
            parts += [u * ti, u * tq]
        if self.behaviour_dim:
            if behaviour is None:
                raise ValueError("TextEncoder: built with a behaviour side, so forward needs the BehaviourEncoder")
            parts.append(behaviour.text_side(batch, ti))
        return self.mlp(torch.cat(parts, dim=-1))


class InputEncoder(nn.Module):
    """The shared input encoding of every model: batch -> aspects [B, A, hidden] in `aspect_names` order.

    use_behaviour: read the user's behaviour (models/layers/behaviour.py): the sequences through `behaviour` (a
    BehaviourEncoder, built only when the spec has sequences; its id side feeds the ID aspect, its text side the text
    aspect) and the num_beh_* aggregates through the sparse aspect. use_behaviour=False builds no behaviour part and
    masks the num_beh_* fields (spec.behaviour_num_fields), so the output carries no behaviour information at all.
    """

    def __init__(self, spec: FeatureSpec, hidden: int = 64, emb_dim: int | None = None, use_id: bool = True,
                 use_sparse: bool = True, use_text: bool = True, dropout: float = 0.0, use_behaviour: bool = True):
        super().__init__()
        emb_dim = emb_dim or hidden
        # An aspect the spec has no inputs for (no sparse fields, no text) is dropped like a switched-off one.
        has_sparse = bool(spec.cat_cardinalities) or spec.n_num > 0
        use = {"id": use_id, "sparse": use_sparse and has_sparse, "text": use_text and spec.text_dim > 0}
        if not any(use.values()):
            raise ValueError("InputEncoder: every aspect is switched off (use_id/use_sparse/use_text); "
                             "keep at least one")
        beh = use_behaviour and spec.has_behaviour
        beh_args = {"id_dim": emb_dim if beh and use["id"] else 0, "text": beh and use["text"]}
        beh_id, beh_text = BehaviourEncoder.output_dims(spec, **beh_args)
        ignore = () if use_behaviour else tuple(spec.behaviour_num_fields)
        build = {
            "id": lambda: IdEncoder(spec, hidden, emb_dim, dropout, behaviour_dim=beh_id),
            "sparse": lambda: SparseEncoder(spec, hidden, emb_dim, dropout, ignore_fields=ignore),
            # The text aspect meets the user through the ID aspect's user table (see TextEncoder).
            "text": lambda: TextEncoder(spec, hidden, dropout, user_dim=emb_dim if use["id"] else 0,
                                        behaviour_dim=beh_text),
        }
        # Switched-off aspects are not built at all: no unused parameters, and they vanish from the fusion.
        self.aspects = nn.ModuleDict({a: build[a]() for a in ASPECTS if use[a]})
        # None when use_behaviour=False or the spec has no sequences: no parameter, no random draw, no batch key read.
        self.behaviour = BehaviourEncoder(spec, **beh_args) if beh_id or beh_text else None
        self.aspect_names: tuple[str, ...] = tuple(self.aspects.keys())
        self.hidden = hidden

    @property
    def uses_behaviour(self) -> bool:
        """True when the encoder reads the behaviour sequences (the batch must carry them)."""
        return self.behaviour is not None

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = []
        for name, enc in self.aspects.items():
            if name == "text":
                user = self.aspects["id"].user(batch["user"]) if enc.user_proj is not None else None
                out.append(enc(batch, user, self.behaviour))
            elif name == "id":
                out.append(enc(batch, self.behaviour))
            else:
                out.append(enc(batch))
        return torch.stack(out, dim=1)
