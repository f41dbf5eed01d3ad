"""Query text -> frozen text vector, through an LRU cache in front of a lazily loaded encoder."""
from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import numpy as np


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_encoder() -> Encoder:
    """The pipeline's text encoder (all-MiniLM-L6-v2 from the local package), as the embeddings stage uses it."""
    from embeddings.encoder import TextEncoder  # imported late: loading transformers costs seconds

    # one query at a time: tokenise in-process (no worker pool) and run on the serving CPU
    return TextEncoder(device="cpu", tokenizer_workers=0)


def entry_bytes(text: str, vector: np.ndarray) -> int:
    """What one cached entry holds: the text object, the vector's buffer and the dict slot (approximate)."""
    return sys.getsizeof(text) + vector.nbytes + 200


class QueryEmbeddingCache:
    """Thread-safe LRU of query vectors, bounded by entries and by bytes; the encoder is built once, on the first
    miss (or `warm_up`)."""

    def __init__(self, encoder: Encoder | Callable[[], Encoder] | None = None, dim: int | None = None,
                 maxsize: int = 50_000, max_bytes: int = 64 << 20):
        # an encoder object, or a factory so the model is only loaded when a query actually needs it
        self._encoder = encoder if encoder is not None and hasattr(encoder, "encode") else None
        self._factory = None if self._encoder is not None else (encoder or default_encoder)
        self.dim, self.maxsize, self.max_bytes = dim, maxsize, max_bytes
        self.nbytes = 0
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.hits = self.misses = 0

    def _get_encoder(self) -> Encoder:
        if self._encoder is None:
            with self._load_lock:
                if self._encoder is None:
                    self._encoder = self._factory()
        return self._encoder

    def warm_up(self) -> None:
        """Load the encoder now and check its width (so a mismatch fails at startup, not on a request)."""
        self.get("warm up")

    def get(self, text: str) -> np.ndarray:
        """The [D] float32 vector of `text` (already normalised by the caller); read-only, shared."""
        with self._lock:
            vector = self._cache.get(text)
            if vector is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return vector
        vector = np.asarray(self._get_encoder().encode([text]), dtype=np.float32).reshape(-1)
        if self.dim is not None and vector.shape[0] != self.dim:
            raise RuntimeError(
                f"the query encoder gives {vector.shape[0]}-dim vectors but the model expects {self.dim}: "
                f"serve a checkpoint trained on this encoder's embeddings, or pass the matching text_encoder"
            )
        vector.setflags(write=False)
        with self._lock:
            self.misses += 1
            if text not in self._cache:  # two threads may have encoded the same text: count it once
                self._cache[text] = vector
                self.nbytes += entry_bytes(text, vector)
            while self._cache and (len(self._cache) > self.maxsize or self.nbytes > self.max_bytes):
                old_text, old_vector = self._cache.popitem(last=False)
                self.nbytes -= entry_bytes(old_text, old_vector)
        return vector

    def __len__(self) -> int:
        return len(self._cache)
