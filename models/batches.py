"""Pre-tensorised in-memory batching: a whole split on the device, batches by index gather (no per-row Python).

Why not a DataLoader: per-row `__getitem__` dicts + default collate cost Python time per row and starve a GPU;
here a batch is ~12 `index_select`s on tensors that already live on the device, and text vectors are gathered
from the embedding tables (kept once on the device) instead of being copied per row.

Loading copies each column to the device once, from pageable host memory: nothing is pinned. (Pinning the whole
split would keep a page-locked host copy, rounded up to a power of two by the caching host allocator, for the
life of the process on every rank, to speed up a copy that happens once.)
"""
from __future__ import annotations

import numpy as np
import torch

INDEX_KEYS = ("domain", "user", "item", "query", "cat", "num", "num_mask", "label")
#: Behaviour columns of encode_frame, kept on the device when present (clicked items, issued queries).
BEH_ITEM_KEYS = ("beh_item", "beh_item_text", "beh_mask")
BEH_QUERY_KEYS = ("beh_query_text", "beh_query_mask")


class DeviceData:
    """A split as device tensors; `batch(idx [B] long on device)` -> the model's batch dict (docs/model-api.md)."""

    def __init__(self, cols: dict[str, np.ndarray], item_matrix: np.ndarray, query_matrix: np.ndarray,
                 device: torch.device | str = "cpu"):
        self.device = torch.device(device)

        def put(a: np.ndarray) -> torch.Tensor:
            return to_device(np.ascontiguousarray(a), self.device)

        self.cols = {k: put(cols[k]) for k in INDEX_KEYS}
        self.item_text = put(cols["item_text"])
        self.query_text = put(cols["query_text"])
        self.item_matrix = put(item_matrix.astype(np.float32, copy=False))
        self.query_matrix = put(query_matrix.astype(np.float32, copy=False))
        # Behaviour sequences only when encoded (the spec has them): a folder without them costs nothing.
        self.beh_item = {k: put(cols[k]) for k in BEH_ITEM_KEYS} if "beh_item" in cols else None
        self.beh_query = {k: put(cols[k]) for k in BEH_QUERY_KEYS} if "beh_query_text" in cols else None
        self.n = int(len(cols["label"]))

    def __len__(self) -> int:
        return self.n

    @property
    def has_behaviour(self) -> bool:
        return self.beh_item is not None or self.beh_query is not None

    def batch(self, idx: torch.Tensor, behaviour: bool = True) -> dict[str, torch.Tensor]:
        """idx [B] long (on self.device) -> batch dict; item_emb/query_emb [B, D] gathered from the text tables.

        With behaviour sequences (and `behaviour`, False for a model that does not read them) also beh_item,
        beh_mask [B, L], beh_item_emb [B, L, D], beh_query_emb [B, Lq, D] and beh_query_mask [B, Lq]."""
        out = {k: v.index_select(0, idx) for k, v in self.cols.items()}
        it, qt = self.item_text.index_select(0, idx), self.query_text.index_select(0, idx)
        out["item_emb"] = self.item_matrix.index_select(0, it)
        out["query_emb"] = self.query_matrix.index_select(0, qt)
        out["has_item_text"] = (it > 0).float()
        out["has_query"] = (qt > 0).float()
        if behaviour and self.beh_item is not None:
            text = self.beh_item["beh_item_text"].index_select(0, idx)                       # [B, L]
            out["beh_item"] = self.beh_item["beh_item"].index_select(0, idx)
            out["beh_mask"] = self.beh_item["beh_mask"].index_select(0, idx)
            out["beh_item_emb"] = self.item_matrix.index_select(0, text.reshape(-1)).view(*text.shape, -1)
        if behaviour and self.beh_query is not None:
            text = self.beh_query["beh_query_text"].index_select(0, idx)
            out["beh_query_mask"] = self.beh_query["beh_query_mask"].index_select(0, idx)
            out["beh_query_emb"] = self.query_matrix.index_select(0, text.reshape(-1)).view(*text.shape, -1)
        return out

    def ranges(self, batch_size: int, rank: int = 0, world: int = 1):
        """Contiguous evaluation batches of this rank's rows (rows rank, rank+world, ...): yields idx [B] on device."""
        rows = torch.arange(rank, self.n, world, device=self.device)
        for s in range(0, len(rows), batch_size):
            yield rows[s:s + batch_size]


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on `device`: the array itself on CPU (no copy), else one synchronous pageable copy."""
    t = torch.from_numpy(array)
    return t if device.type == "cpu" else t.to(device)


def epoch_permutation(n: int, seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The shuffled row order [n] of one epoch, a pure function of (seed, epoch) so a resumed run replays it."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g).to(device)


def n_batches(n: int, batch_size: int) -> int:
    """Steps per epoch (the last batch may be smaller)."""
    return (n + batch_size - 1) // batch_size
