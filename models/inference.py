"""Online scoring: `Scorer.from_checkpoint(path).score(frame, item_emb, query_emb, behaviour)` -> click probabilities.

Built for ranking ~100 candidates per request on CPU in a few ms: the vocabularies' hash indexes are built once
at load, lookups are vectorised (pandas Index.get_indexer), and the model runs in inference mode.
User behaviour (a model whose spec has sequences) comes as one `UserBehaviour` for the request's user, encoded once
as beh_* tensors with leading dimension 1, which the model broadcasts over the rows (the history-only work is done
once per request); the frame's num_beh_* columns are ordinary numeric features.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models import checkpoint as ckpt_io
from models.behaviour_inputs import UserBehaviour


class NonFiniteScoresError(RuntimeError):
    """The model produced NaN/inf scores: a fault of the served model or its features, never returned as a score."""


class Scorer:
    """A checkpoint's model + vocabularies, ready to score sample frames."""

    def __init__(self, model: torch.nn.Module, vocab, spec, device: str | torch.device = "cpu",
                 meta: dict | None = None):
        self.model = model.eval()
        self.vocab, self.spec, self.device, self.meta = vocab, spec, torch.device(device), meta or {}
        self._item_index: dict[str, int] | None = None   # item id -> vocabulary index, built on first use

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", expected_sha256: str | None = None) -> "Scorer":
        """Load CKPT (checkpoint.pt written by train/finetune) onto `device`, verified (see models.checkpoint.load);
        `expected_sha256` is the digest the model registry recorded for it."""
        ckpt = ckpt_io.load(path, expected_sha256=expected_sha256)
        model, spec, vocab = ckpt_io.build_from(ckpt, device, path)
        return cls(model, vocab, spec, device, ckpt.get("meta"))

    @property
    def uses_behaviour(self) -> bool:
        """True when the served model reads behaviour sequences (pass `behaviour` to score)."""
        return bool(getattr(self.model, "uses_behaviour", False))

    def behaviour_batch(self, behaviour: UserBehaviour | None) -> dict[str, torch.Tensor]:
        """One user's history -> the beh_* batch keys with leading dimension 1 (broadcast over the rows by the
        model: every row of a request has the same user).

        Sequences are cut to the spec's lengths (most recent first) and padded to at least one position; a model
        reads any length, so a short history costs only its own length."""
        beh = behaviour or UserBehaviour()
        D, dev, out = self.spec.text_dim, self.device, {}
        if self.spec.behaviour_length > 0:
            ids = list(beh.item_ids)[: self.spec.behaviour_length]
            emb = beh.item_matrix(D)[: self.spec.behaviour_length]
            length = max(len(ids), 1)
            index = np.zeros((1, length), np.int64)
            mask = np.zeros((1, length), np.float32)
            vectors = np.zeros((1, length, D), np.float32)
            if ids:
                index[0, : len(ids)] = self._item_indices(ids)
                mask[0, : len(ids)] = [i is not None for i in ids]
                vectors[0, : len(ids)] = emb
            out["beh_item"] = torch.from_numpy(index).to(dev)
            out["beh_mask"] = torch.from_numpy(mask).to(dev)
            out["beh_item_emb"] = torch.from_numpy(vectors).to(dev)
        if self.spec.behaviour_query_length > 0:
            emb = beh.query_matrix(D)[: self.spec.behaviour_query_length]
            length = max(len(emb), 1)
            mask = np.zeros((1, length), np.float32)
            mask[0, : len(emb)] = 1.0
            vectors = np.zeros((1, length, D), np.float32)
            vectors[0, : len(emb)] = emb
            out["beh_query_mask"] = torch.from_numpy(mask).to(dev)
            out["beh_query_emb"] = torch.from_numpy(vectors).to(dev)
        return out

    def _item_indices(self, ids: list) -> list[int]:
        """Item ids -> vocabulary indices (0 = unseen or missing), as Vocab.encode, by dict (a history is short:
        pandas' per-call overhead would be most of its cost)."""
        if self._item_index is None:
            self._item_index = {v: i + 1 for i, v in enumerate(self.vocab.item.values)}
        index = self._item_index
        return [index.get(v if isinstance(v, str) else str(v), 0) if v is not None else 0 for v in ids]

    def batch(self, frame: pd.DataFrame, item_emb: np.ndarray, query_emb: np.ndarray,
              behaviour: UserBehaviour | None = None) -> dict[str, torch.Tensor]:
        """Sample frame [N rows] + text vectors [N, D] (all-zero row = no text) + the user's history -> batch dict."""
        n, D = len(frame), self.spec.text_dim
        item_emb = np.asarray(item_emb, dtype=np.float32).reshape(n, D)
        query_emb = np.asarray(query_emb, dtype=np.float32).reshape(n, D)
        cols = self.vocab.encode(frame)
        dev = self.device
        domain = frame["domain_id"].to_numpy().astype(np.int64)
        if n and (domain.min() < 0 or domain.max() >= self.spec.n_domains):
            raise ValueError(f"Scorer.score: domain_id must be in 0..{self.spec.n_domains - 1}, "
                             f"got {sorted(set(domain))}")
        t = {k: torch.from_numpy(v).to(dev) for k, v in cols.items()}
        t["domain"] = torch.from_numpy(domain).to(dev)
        t["item_emb"] = torch.from_numpy(item_emb).to(dev)
        t["query_emb"] = torch.from_numpy(query_emb).to(dev)
        t["has_item_text"] = torch.from_numpy(np.abs(item_emb).sum(1) > 0).float().to(dev)
        t["has_query"] = torch.from_numpy(np.abs(query_emb).sum(1) > 0).float().to(dev)
        t["label"] = torch.zeros(n, device=dev)
        if self.uses_behaviour:
            t.update(self.behaviour_batch(behaviour))
        return t

    @torch.inference_mode()
    def score(self, frame: pd.DataFrame, item_emb: np.ndarray, query_emb: np.ndarray,
              behaviour: UserBehaviour | None = None) -> np.ndarray:
        """Click probabilities [N] float32 for the frame's rows (columns as in the training folder's samples).

        behaviour: the request user's history (ids + text vectors from the online store), None = no history;
        ignored by a model without behaviour sequences. The frame's beh_item_ids / beh_query_ids list columns,
        if any, are not read: the history comes through `behaviour`."""
        if len(frame) == 0:
            return np.zeros(0, np.float32)
        out = self.model(self.batch(frame, item_emb, query_emb, behaviour))
        scores = out["logit"].float().sigmoid().cpu().numpy()
        finite = np.isfinite(scores)
        if not finite.all():
            raise NonFiniteScoresError(
                f"the model scored {int((~finite).sum())} of {len(scores)} rows NaN/inf (first: row "
                f"{int(np.flatnonzero(~finite)[0])}); refusing to return them: check the served weights and the "
                f"numeric features of those rows")
        return scores
