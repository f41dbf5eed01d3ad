"""Texts -> right-padded token id arrays, in-process or in worker processes (imports only numpy + tokenizers)."""
from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

_WORKER_TOKENIZER: Tokenizer | None = None


def build_tokenizer(serialized: str, max_length: int) -> Tokenizer:
    """A Rust tokenizer from its JSON, truncating at `max_length` tokens (special tokens included), never padding."""
    tokenizer = Tokenizer.from_str(serialized)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    return tokenizer


def tokenize_chunk(tokenizer: Tokenizer, texts: list[str], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids [n, Lmax] int64 right-padded with pad_id, lengths [n] int64) for one chunk of texts."""
    encodings = tokenizer.encode_batch(texts, add_special_tokens=True)
    id_lists = [encoding.ids for encoding in encodings]
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    ids = np.full((len(id_lists), int(lengths.max(initial=1))), pad_id, dtype=np.int64)
    for row, row_ids in enumerate(id_lists):
        ids[row, : len(row_ids)] = row_ids
    return ids, lengths


def init_worker(serialized: str, max_length: int) -> None:
    """Process-pool initializer: one single-threaded tokenizer per worker (the pool gives the parallelism)."""
    global _WORKER_TOKENIZER
    import os

    # the pool already uses every core: a thread pool inside each worker would only oversubscribe them
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    _WORKER_TOKENIZER = build_tokenizer(serialized, max_length)
    # a spawned pool worker would outlive a killed parent (blocked on its queue forever): die with it (Linux)
    import multiprocessing
    import signal

    from unisr_data.child_processes import die_with_parent  # standard library only

    parent = multiprocessing.parent_process()
    die_with_parent(signal.SIGKILL, parent.pid if parent is not None else None)


def worker_tokenize(texts: list[str], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """`tokenize_chunk` with the worker's tokenizer."""
    assert _WORKER_TOKENIZER is not None, "init_worker was not run in this process"
    return tokenize_chunk(_WORKER_TOKENIZER, texts, pad_id)
