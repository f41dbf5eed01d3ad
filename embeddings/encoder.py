"""A frozen transformer that turns texts into unit vectors, fast: parallel tokenisation pipelined with
length-sorted batches."""
from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import torch

from embeddings.model_source import model_fingerprint, resolve_model_source
from embeddings.tokenization import build_tokenizer, init_worker, tokenize_chunk, worker_tokenize

Pooling = Literal["mean", "cls", "last-token"]
POOLINGS = ("mean", "cls", "last-token")


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for but torch sees no CUDA GPU: use device='cpu' or 'auto'")
    return torch.device(device)


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in names:
        raise ValueError(f"dtype={dtype!r} is not one of 'auto', {sorted(names)}")
    return names[dtype]


def _resolve_workers(tokenizer_workers: int | str, device: torch.device) -> int:
    """0 = tokenise in a background thread of this process; N > 0 = a pool of N single-threaded processes."""
    if tokenizer_workers != "auto":
        return int(tokenizer_workers)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # on CPU the forward needs the cores; on a GPU one process cannot tokenise as fast as the GPU encodes
    return min(cores - 2, 12) if device.type == "cuda" and cores >= 6 else 0


class TextEncoder:
    """Frozen AutoModel + fast tokenizer; `.encode(texts)` -> [N, dim] float32 (unit rows when normalize)."""

    def __init__(
        self,
        model: str | Path | None = None,
        pooling: Pooling = "mean",
        max_length: int = 128,
        batch_size: int = 256,
        device: str = "auto",
        dtype: str | torch.dtype = "auto",
        normalize: bool = True,
        tokenizer_workers: int | Literal["auto"] = "auto",
        random_init: bool = False,
        chunk_size: int | None = None,
    ):
        from transformers import AutoConfig, AutoModel, AutoTokenizer  # late: transformers takes seconds to import

        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not one of {POOLINGS}")
        self.source = resolve_model_source(model)
        self.pooling, self.normalize = pooling, normalize
        self.max_length, self.batch_size = int(max_length), int(batch_size)
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.workers = _resolve_workers(tokenizer_workers, self.device)
        # enough texts per chunk that length sorting groups similar lengths, few enough that the first batch starts soon
        self.chunk_size = int(chunk_size or max(self.batch_size * 32, 4096))
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(self.source, local_files_only=True)
            if random_init:
                config = AutoConfig.from_pretrained(self.source, local_files_only=True)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(0)  # the same random model every run, so cached vectors stay valid
                    self.model = AutoModel.from_config(config)
            else:
                self.model = AutoModel.from_pretrained(self.source, local_files_only=True)
        except OSError as error:
            raise FileNotFoundError(
                f"could not load the text encoder from {self.source!r} without network: {error}. Pass a local folder "
                "with config.json, tokenizer files and weights (or use random_init with config + tokenizer only)"
            ) from error
        if not getattr(hf_tokenizer, "is_fast", False):
            raise ValueError(f"{self.source} has no fast (Rust) tokenizer: add a tokenizer.json to the model folder")
        self.model = self.model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.pad_left = hf_tokenizer.padding_side == "left"
        pad_id = hf_tokenizer.pad_token_id
        if pad_id is None:  # decoder LLMs often have no pad token; masked positions never reach the pooled vector
            pad_id = hf_tokenizer.eos_token_id if hf_tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad_id)
        self._serialized_tokenizer = hf_tokenizer.backend_tokenizer.to_str()
        self._tokenizer = build_tokenizer(self._serialized_tokenizer, self.max_length)
        self._pool: ProcessPoolExecutor | None = None
        self.dim = int(self.model.config.hidden_size)
        # the folder's last two parts, not its absolute path: the same model in another venv keeps its cache
        source_name = "/".join(Path(self.source).parts[-2:]) if Path(self.source).is_dir() else self.source
        self.model_id = (
            f"{source_name}|pooling={self.pooling}|max_length={self.max_length}|"
            f"{'random-init-seed0' if random_init else 'weights'}-{model_fingerprint(self.source)}"
        )

    # ---- tokenisation (runs off the critical path) -------------------------------------------------------------
    def _chunks(self, texts: list[str]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(start row, ids [n, L], lengths [n]) per chunk, in order; a process pool tokenises ahead when workers > 0."""
        starts = range(0, len(texts), self.chunk_size)
        if self.workers <= 0:
            for start in starts:
                yield (start, *tokenize_chunk(self._tokenizer, texts[start : start + self.chunk_size], self.pad_id))
            return
        if self._pool is None:
            # spawn, not fork: forking a process that holds CUDA and Rust thread pools can deadlock
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(self._serialized_tokenizer, self.max_length),
            )
        in_flight, window = [], 2 * self.workers  # bounded read-ahead keeps memory flat for huge inputs
        start_iter = iter(starts)
        for start in start_iter:
            chunk = texts[start : start + self.chunk_size]
            in_flight.append((start, self._pool.submit(worker_tokenize, chunk, self.pad_id)))
            if len(in_flight) >= window:
                break
        while in_flight:
            start, future = in_flight.pop(0)
            next_start = next(start_iter, None)
            if next_start is not None:
                in_flight.append((next_start, self._pool.submit(
                    worker_tokenize, texts[next_start : next_start + self.chunk_size], self.pad_id)))
            yield (start, *future.result())

    def _batches(self, texts: list[str]
                 ) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """(rows [B], ids [B, L], mask [B, L], position ids or None) per length-sorted batch, host tensors (pinned
        on CUDA)."""
        pin = self.device.type == "cuda"
        for start, ids, lengths in self._chunks(texts):
            order = np.argsort(-lengths, kind="stable")  # longest first: an out-of-memory shows on the first batch
            for b in range(0, len(order), self.batch_size):
                rows = order[b : b + self.batch_size]
                row_lengths = lengths[rows]
                width = int(row_lengths.max())
                columns = np.arange(width)
                if self.pad_left:  # shift each row right so its last real token sits in the last column
                    source_cols = columns[None, :] - (width - row_lengths)[:, None]
                    mask = source_cols >= 0
                    batch_ids = np.where(mask, ids[rows[:, None], np.clip(source_cols, 0, None)], self.pad_id)
                    positions = torch.from_numpy(np.clip(np.cumsum(mask, axis=1) - 1, 0, None))
                else:
                    batch_ids = ids[rows, :width]
                    mask = columns[None, :] < row_lengths[:, None]
                    positions = None
                tensors = [torch.from_numpy(np.ascontiguousarray(batch_ids)), torch.from_numpy(mask.astype(np.int64))]
                if positions is not None:
                    tensors.append(positions)
                if pin:
                    tensors = [t.pin_memory() for t in tensors]
                yield start + rows, tensors[0], tensors[1], (tensors[2] if positions is not None else None)

    # ---- forward ------------------------------------------------------------------------------------------------
    def _pool_hidden(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, L, H] hidden states + [B, L] mask -> [B, H] float32."""
        if self.pooling == "cls":
            return hidden[:, 0].float()
        if self.pooling == "last-token":
            # the last position whose mask is 1: works for left padding (always L-1) and right padding alike
            width = mask.shape[1]
            last = width - 1 - mask.flip(1).argmax(dim=1)
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].float()
        weights = mask.unsqueeze(-1).to(torch.float32)
        return (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """[N, dim] float32 vectors of `texts`, in input order (an empty string gives the vector of the bare special
        tokens)."""
        texts = list(texts)
        if any(not isinstance(t, str) for t in texts):
            bad = next(i for i, t in enumerate(texts) if not isinstance(t, str))
            raise TypeError(f"texts[{bad}] is {type(texts[bad]).__name__}, not str: drop or fill missing texts first")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="embedding texts", unit="text")
        produced: queue.Queue = queue.Queue(maxsize=8)
        done = object()
        failure: list[BaseException] = []
        stop = threading.Event()  # set by the consumer when it ends, normally or not: the producer then quits

        def put(item) -> bool:
            """Queue an item unless the consumer has stopped (never blocks forever on a full queue)."""
            while not stop.is_set():
                try:
                    produced.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            batches = self._batches(texts)
            try:
                for item in batches:
                    if not put(item):
                        return
            except BaseException as error:  # re-raised in the caller's thread
                failure.append(error)
            finally:
                batches.close()
                put(done)

        producer = threading.Thread(target=produce, name="tokenize", daemon=True)
        producer.start()
        try:
            self._consume(produced, done, out, bar)
        finally:
            stop.set()          # a failed forward must not leave the producer blocked on the full queue
            producer.join()
            if bar is not None:
                bar.close()
        if failure:
            raise failure[0]
        return out

    def _consume(self, produced: queue.Queue, done: object, out: np.ndarray, bar) -> None:
        """Run the model on queued batches until `done`, writing the vectors into `out` rows."""
        pending_rows, pending_vectors = [], []

        def flush() -> None:
            if pending_vectors:
                out[np.concatenate(pending_rows)] = torch.cat(pending_vectors).cpu().numpy()
                if bar is not None:
                    bar.update(sum(len(r) for r in pending_rows))
                pending_rows.clear()
                pending_vectors.clear()

        with torch.inference_mode():
            while (item := produced.get()) is not done:
                rows, ids, mask, positions = item
                ids = ids.to(self.device, non_blocking=True)
                mask = mask.to(self.device, non_blocking=True)
                kwargs = {"input_ids": ids, "attention_mask": mask}
                if positions is not None:
                    kwargs["position_ids"] = positions.to(self.device, non_blocking=True)
                hidden = self.model(**kwargs).last_hidden_state
                vectors = self._pool_hidden(hidden, mask)
                if self.normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
                pending_rows.append(rows)
                pending_vectors.append(vectors)
                if len(pending_vectors) >= 16:  # one device->host sync per 16 batches, not per batch
                    flush()
            flush()

    def close(self) -> None:
        """Stop the tokenizer worker processes (if any)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # Workers die with the thread that spawned them (PR_SET_PDEATHSIG fires on the creating *thread*'s exit,
            # e.g. the tokenisation read-ahead thread): one killed while holding the call queue's lock left the
            # others blocked on it and shutdown() joining them for ever (seen as a hung test). The work is done when
            # close() runs, so the workers are killed first; shutdown then only reaps them.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.kill()
            pool.shutdown(wait=True, cancel_futures=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
