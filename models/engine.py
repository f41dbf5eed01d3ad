"""The training engine: `TrainConfig`, the fit loop, batched prediction and split metrics.

`models.train` (`train()` and the `python -m models.train` CLI) and `models.finetune` build a model and call `fit`;
`models.evaluate` scores a split with `load_split`, `predict` and `split_metrics`.

One plain loop, the same on CPU, one GPU (bf16 autocast) or many under torchrun (DDP; gloo on CPU, nccl on GPU):
the whole split lives on the device, each epoch is a seeded permutation, a batch is an index gather, and the
loss is accumulated on the device (no per-step `.item()`), read once per validation (`evals_per_epoch` evenly spaced
validations an epoch, the last at its end; each may keep a new best checkpoint or end the run early).

Regularisation against id memorisation: the embedding tables get their own AdamW weight decay
(`embedding_weight_decay`), optional id dropout (`id_dropout`); measurements in TrainConfig's docstring.

Loss: `Σ_i λ_{d_i} · BCE_i / B + α · reg_loss`, i.e. the spec's `Σ_d λ_d · BCE_d` with each domain's BCE summed
over its rows of the batch (weight λ_d per row). Per-row weights, unlike per-domain means, make the loss a sum
over rows, so a DDP shard's gradient sums exactly to the single-process gradient of the same global batch.
λ_d defaults to frequency^-1/2, normalised so that the average row weight over the training set is 1.

Resume: `OUT/last.pt` (model, optimiser, RNG states, epoch, position in the epoch's permutation, best-so-far
state) is written every `checkpoint_seconds` of wall time (and/or every `checkpoint_every` steps) and after every
validation; rerunning the same command resumes from it and, on CPU, reaches bit-identical metrics (the permutation
is a pure function of seed and epoch). Checkpoints are snapshotted to host memory and written by a background
thread, off the training loop.

On CUDA: bf16 autocast for training (evaluation always runs in float32, so CPU and GPU metrics are comparable),
fused AdamW, and `--compile` (opt-in) for torch.compile of the training forward.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from models import checkpoint as ckpt_io
from models import metrics as M
from models.batches import DeviceData, epoch_permutation, n_batches
from models.checkpoint_writer import BackgroundCheckpointWriter, CheckpointSchedule
from models.distributed import (
    DistContext,
    all_reduce_sum,
    broadcast_object,
    device_info,
    gather_objects,
    sync_running_stats,
)
from models.spec import FeatureSpec
from models.training_data import TrainingFolder, encode_frame
from models.vocab import Vocabularies

log = logging.getLogger("models.engine")

# Fields that may change between a killed run and its resumption without invalidating last.pt.
RESUME_FREE = ("max_steps", "resume", "progress", "device", "num_threads", "checkpoint_every", "checkpoint_seconds",
               "eval_batch_size", "compile")
# Under DDP the ranks agree on a wall-time checkpoint by rank 0's clock, consulted every this many steps.
CHECKPOINT_POLL_STEPS = 50
# float32 matmuls stay IEEE float32 (no TF32): the float32 islands (divergences, partitioned norm, evaluation)
# exist for their precision. benchmarks/bench_training_loop.py applies the same setting.
FLOAT32_MATMUL_PRECISION = "highest"


@dataclass
class TrainConfig:
    """Training hyper-parameters; every field is also a CLI flag (`--batch-size`, `--model-arg k=v`, ...).

    Regularisation of the id embeddings (`embedding_weight_decay`, default 30), measured on the synthetic default
    pretraining folder (3,000 users, 300k training rows; SRF with behaviour, batch 2048, lr 2e-3, 3 epochs;
    best valid AUC overall / rec_coupons):
      decay 0:  0.816 / 0.518 (train loss 0.503 -> 0.302: the user/item tables memorise the rows after epoch 1,
                and valid AUC dips each time an epoch revisits them: 0.813, 0.816, 0.802 at the epoch ends);
      decay 30: 0.844 / 0.625 (train loss -> 0.382; 0.825, 0.843, 0.844 at the epoch ends).
    With the earlier behaviour encoder (before its parameter-free attention), 4 validations an epoch: decay 0 /
    10 / 30 / 100 gave 0.821 / 0.842 / 0.845 / 0.844 overall and 0.563 / 0.618 / 0.648 / 0.648 on rec_coupons.
    Shared-Bottom with behaviour, 2 epochs: 0.808 / 0.538 -> 0.836 / 0.645 at 30. On the former default (20,000
    users, 200k rows; SRF without behaviour): 0.671 / 0.510 -> 0.747 / 0.590 (loss 0.557 -> 0.264 vs 0.432).
    Fine-tuning (FinetuneConfig inherits the default) SRF on the cold-start folder, freeze none, 3 epochs: best
    valid AUC 0.835 without decay (loss 0.37 -> 0.11, 0.786 by epoch 3), 0.839 with 30 (0.828 by epoch 3).
    `id_dropout` (ids replaced by the OOV row) also helped (Shared-Bottom, former default: 0.649 -> 0.702 at 0.6)
    but less than the decay (0.723 at 10, 0.744 at 100), so it stays off by default.
    AdamW's decay is decoupled: a row shrinks by lr * decay (6 % at 2e-3 * 30) every step whether or not it is in
    the batch, so rarely seen ids fade toward zero unless their gradient keeps them, which stops them memorising
    single rows; categorical values are in nearly every batch and keep their signal.

    `evals_per_epoch` (validation, best checkpoint and early stopping several times an epoch): in the 4-validation
    runs above the best validation was at an epoch end in 3 of 4 SRF runs and the mid-epoch best beat the epoch-end
    one by at most 0.002 (Shared-Bottom without behaviour: 0.001 to 0.003); with 2 validations an epoch both SRF
    runs peaked at an epoch end. So the default stays 1 (no extra cost); raise it for long epochs (large data, GPU)
    where a peak inside an epoch matters. `patience` counts validations.
    """

    model: str = "srf"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 3
    batch_size: int = 4096          # global batch (split across DDP ranks)
    lr: float = 2e-3
    weight_decay: float = 0.0
    alpha: float = 0.01             # weight of the model's regulariser (reg_loss)
    domain_weights: list[float] | None = None   # λ_d per domain id; None = frequency^-1/2, normalised
    patience: int = 2               # validations without a better valid AUC before stopping; 0 = never stop early
    evals_per_epoch: int = 1        # validations per epoch, evenly spaced by step (early stopping / best checkpoint)
    embedding_weight_decay: float = 30.0  # decoupled (AdamW) weight decay of the embedding tables (nn.Embedding)
    id_dropout: float = 0.0         # training rows' user / item id replaced by the OOV row with this probability
    checkpoint_every: int = 0       # steps between last.pt writes (0 = by wall time / epoch ends only)
    checkpoint_seconds: float = 300.0   # wall time between last.pt writes (0 = off); written in the background
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda
    num_threads: int = 0            # torch CPU threads; 0 = torch's default
    max_steps: int = 0              # stop after this many optimiser steps in total (0 = no limit)
    min_count: int = 2              # vocabulary: values with fewer training rows share the OOV row
    eval_batch_size: int = 16384
    resume: bool = True             # resume from OUT/last.pt when it exists
    progress: bool = True           # tqdm bar when stderr is a terminal
    compile: bool = False           # torch.compile the training forward (pays on GPU for long runs)


# ----------------------------------------------------------------------------------------------- helpers

def domain_loss_weights(counts: np.ndarray, given: list[float] | None = None) -> np.ndarray:
    """λ [K]: `given`, or counts^-1/2 scaled so Σ_d counts_d λ_d = Σ_d counts_d (0 for domains with no rows)."""
    counts = np.asarray(counts, dtype=np.float64)
    if given is not None:
        if len(given) != len(counts):
            raise ValueError(f"domain_weights has {len(given)} values but meta.json has {len(counts)} domains")
        return np.asarray(given, dtype=np.float64)
    lam = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
    return lam * counts.sum() / max((lam * counts).sum(), 1e-12)


def train_mode(model: nn.Module) -> None:
    """model.train(), but submodules whose parameters are all frozen stay in eval mode (no dropout noise there)."""
    model.train()
    for m in model.modules():
        ps = list(m.parameters())
        if ps and not any(p.requires_grad for p in ps):
            m.eval()


def autocast(device: torch.device):
    """Training precision: bf16 autocast on CUDA; nothing on CPU (fp32 there keeps runs bit-reproducible)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def no_autocast(device: torch.device):
    """Evaluation precision: float32, autocast off even inside an enclosing autocast region."""
    return torch.autocast(device_type=device.type, enabled=False)


def configure_precision() -> None:
    """The trainer's float32 matmul precision (FLOAT32_MATMUL_PRECISION), also used by the training benchmark."""
    torch.set_float32_matmul_precision(FLOAT32_MATMUL_PRECISION)


@contextlib.contextmanager
def deterministic_kernels(device: torch.device):
    """On CPU, torch's deterministic kernels for the duration (the previous setting is restored after).

    With more than one intra-op thread, the backward of `weight[index]` (index_put_ with accumulate, as in the
    models' per-domain parameters) sums rows in a thread-dependent order, so two runs with the same data and
    seed differed (STAR's pretrained weights by 1e-3 after one epoch on the tiny data). CUDA runs are left as
    they are (bf16 autocast and atomics make them reproducible only to a tolerance anyway).
    """
    if device.type != "cpu":
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def make_optimizer(params: list, cfg: "TrainConfig", device: torch.device) -> torch.optim.Optimizer:
    """AdamW over `params` (tensors, or groups from `parameter_groups`); fused (one kernel) on CUDA, where the
    per-parameter loop is launch-bound."""
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")


def parameter_groups(model: nn.Module, cfg: "TrainConfig") -> list[dict[str, Any]]:
    """The trainable parameters as AdamW groups: embedding tables (every nn.Embedding weight) decay with
    `cfg.embedding_weight_decay`, everything else with `cfg.weight_decay`. Empty groups are left out."""
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if id(p) not in tables], "weight_decay": cfg.weight_decay},
              {"params": [p for p in trainable if id(p) in tables], "weight_decay": cfg.embedding_weight_decay}]
    return [g for g in groups if g["params"]]


def eval_positions(steps: int, evals_per_epoch: int) -> tuple[int, ...]:
    """Positions in an epoch (steps done, 1..steps) after which validation runs: `evals_per_epoch` evenly spaced,
    the last at the epoch's end; never more than one per step."""
    k = max(1, min(int(evals_per_epoch), steps))
    return tuple(sorted({max(1, round(steps * (i + 1) / k)) for i in range(k)}))


def drop_ids(batch: dict[str, torch.Tensor], rate: float, seed: int, epoch: int, step_in_epoch: int,
             global_rows: int, rank: int = 0, world: int = 1) -> None:
    """ID dropout: each training row's user and item index is replaced by the OOV row 0 with probability `rate`,
    independently (in place on `batch`).

    The mask is a pure function of (seed, epoch, step) drawn over the *global* batch and sharded like it, so a
    resumed run and any number of DDP ranks see the same mask as one uninterrupted process (no RNG state used).
    The OOV row is what serving uses for an id never seen in training; dropout trains it as "an unknown user /
    item of this context", and keeps the id tables from memorising single rows.
    """
    if rate <= 0:
        return
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(step_in_epoch))
    drop = (torch.rand(global_rows, 2, generator=g) < rate)[rank::world].to(batch["user"].device)
    batch["user"] = batch["user"].masked_fill(drop[:, 0], 0)
    batch["item"] = batch["item"].masked_fill(drop[:, 1], 0)


def scaled_for_batch(batch_size: int, lr: float, factor: int) -> tuple[int, float]:
    """(batch_size * factor, lr * sqrt(factor)): the square-root scaling rule, the one that holds for Adam-type
    optimisers. (Linear scaling, lr * 8 for batch * 8, cost 0.07 cold-start valid AUC on the synthetic default
    data, 0.686 -> 0.616; square-root scaling kept it, 0.694.)"""
    return int(batch_size) * int(factor), float(lr) * math.sqrt(int(factor))


@dataclass
class Split:
    """One split ready for training/evaluation: device tensors plus the numpy keys metrics group by."""

    data: DeviceData
    labels: np.ndarray
    domains: np.ndarray
    users: np.ndarray
    page_views: np.ndarray | None
    is_new_item: np.ndarray | None


def load_split(folder: TrainingFolder, split: str, vocab: Vocabularies, device: torch.device,
               frame: pd.DataFrame | None = None, behaviour: tuple[int, int] | None = None) -> Split:
    """Read (unless `frame` is given), encode and move one split of a training folder to `device`.

    behaviour: the (L, Lq) lengths to encode the behaviour sequences to, (0, 0) for none (see
    `behaviour_lengths`); None = the folder's meta.json. A model reads any length (padding is masked)."""
    frame = folder.read(split) if frame is None else frame
    length, query_length = folder.behaviour_lengths if behaviour is None else behaviour
    cols = encode_frame(frame, vocab, folder.item_text, folder.query_text, len(folder.meta["domains"]),
                        behaviour_length=length, behaviour_query_length=query_length)
    data = DeviceData(cols, folder.item_text.matrix, folder.query_text.matrix, device)
    users = pd.factorize(frame["user_id"])[0]
    pv = pd.factorize(frame["request_id"])[0] if "request_id" in frame else None
    new = frame["is_new_item"].fillna(False).to_numpy(dtype=bool) if "is_new_item" in frame else None
    return Split(data, cols["label"], cols["domain"], users, pv, new)


@torch.no_grad()
def predict(model: nn.Module, data: DeviceData, batch_size: int, ctx: DistContext | None = None
            ) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Probabilities [N] (each rank scores rows rank::world, gathered), and gate-weight sums [K, A] if the model gates.

    Always float32 with autocast off (also inside an enclosing autocast region): bf16 logits collapse into ties,
    which changes AUC/PVCTR and would make GPU and CPU metrics incomparable.
    """
    rank, world = (ctx.rank, ctx.world) if ctx else (0, 1)
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    K = model.spec.n_domains if hasattr(model, "spec") else int(data.cols["domain"].max()) + 1
    behaviour = reads_behaviour(model)
    logits, gate_sum, names = [], None, ()
    for idx in data.ranges(batch_size, rank, world):
        batch = data.batch(idx, behaviour)
        with no_autocast(data.device):
            out = model(batch)
        logits.append(out["logit"].float())
        gw = out.get("gate_weights")
        if gw is not None:
            gate_sum = gw.new_zeros(K, gw.shape[1]).float() if gate_sum is None else gate_sum
            gate_sum.index_add_(0, batch["domain"], gw.float())
            names = tuple(out.get("aspect_names", ()))
    local = torch.cat(logits).sigmoid().cpu().numpy() if logits else np.zeros(0, np.float32)
    gs = gate_sum.cpu().numpy() if gate_sum is not None else None
    parts = gather_objects((local, gs), ctx) if ctx else [(local, gs)]
    probs = np.empty(data.n, dtype=np.float64)
    for r, (p, _) in enumerate(parts):
        probs[r::world] = p
    sums = [g for _, g in parts if g is not None]
    model.train(was_training)
    return probs, (np.sum(sums, axis=0) if sums else None), names


def behaviour_lengths(spec: FeatureSpec, use_behaviour: bool = True) -> tuple[int, int]:
    """The (L, Lq) to encode a split to for a model of `spec`: the spec's, or (0, 0) when it does not read them."""
    return (spec.behaviour_length, spec.behaviour_query_length) if use_behaviour else (0, 0)


def reads_behaviour(model: nn.Module) -> bool:
    """Whether batches for `model` need the behaviour sequences (False skips gathering them; unknown -> True)."""
    return bool(getattr(getattr(model, "module", model), "uses_behaviour", True))


def split_metrics(split: Split, probs: np.ndarray) -> dict[str, Any]:
    """auc, domain_auc, gauc, logloss, pvctr@1/@3, n (+ new_item_auc when is_new_item is known)."""
    out = M.all_metrics(split.labels, probs, split.domains, split.users, split.page_views)
    if split.is_new_item is not None and split.is_new_item.any():
        out["new_item_auc"] = M.auc(split.labels[split.is_new_item], probs[split.is_new_item])
        out["n_new_item"] = int(split.is_new_item.sum())
    return out


def gate_by_domain(gate_sum: np.ndarray | None, names: tuple[str, ...], domains: np.ndarray) -> dict:
    """{domain: {aspect: mean gate weight}} for the domains present."""
    if gate_sum is None:
        return {}
    counts = np.bincount(domains, minlength=gate_sum.shape[0])
    return {int(d): {a: float(gate_sum[d, j] / counts[d]) for j, a in enumerate(names)}
            for d in range(gate_sum.shape[0]) if counts[d]}


def _progress(it, enabled: bool, desc: str):
    if enabled and sys.stderr.isatty():
        try:
            from tqdm import tqdm
            return tqdm(it, desc=desc, leave=False)
        except ImportError:
            pass
    return it


def _fingerprint(cfg: TrainConfig, n_train: int) -> dict:
    """What last.pt must match to be resumed: the config (less RESUME_FREE) and the training-set size."""
    return {**{k: v for k, v in asdict(cfg).items() if k not in RESUME_FREE}, "n_train": int(n_train)}


# ------------------------------------------------------------------------------------------ the training loop

def fit(cfg: TrainConfig, ctx: DistContext, model: nn.Module, spec: FeatureSpec, vocab: Vocabularies,
        meta: dict, train_split: Split, valid_split: Split, out_dir: Path,
        on_epoch_end: Callable[[dict], None] | None = None, extra: dict | None = None) -> dict:
    """Train `model` (its requires_grad flags decide what trains); write checkpoint.pt, last.pt, metrics.json."""
    out_dir = Path(out_dir)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    device, B, world = ctx.device, cfg.batch_size, ctx.world
    configure_precision()
    dev_info = device_info(cfg.device, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(parameter_groups(model, cfg), cfg, device)
    counts = np.bincount(train_split.domains, minlength=spec.n_domains)
    lam = torch.tensor(domain_loss_weights(counts, cfg.domain_weights), dtype=torch.float32, device=device)
    state = {"epoch": 0, "pos": 0, "step": 0, "best_auc": -math.inf, "best_epoch": -1, "best_step": -1, "bad": 0,
             "curve": [], "best_metrics": {}, "loss_sum": 0.0, "rows": 0}
    last_path, best_path = out_dir / "last.pt", out_dir / "checkpoint.pt"
    base = {**ckpt_io.model_payload(model, spec, vocab, meta), "train_config": asdict(cfg),
            "domain_counts": counts.tolist(), **(extra or {})}
    base.pop("state_dict")

    if cfg.resume and last_path.exists():
        last = ckpt_io.load(last_path, map_location="cpu")
        if last["fingerprint"] != _fingerprint(cfg, train_split.data.n):
            raise ValueError(f"{last_path} was written with a different configuration "
                             f"({last['fingerprint']}); delete it or pass --no-resume to start over")
        model.load_state_dict(last["state_dict"])
        opt.load_state_dict(last["optimizer"])
        rng = last["rng"]
        torch.set_rng_state(rng[ctx.rank % len(rng)])
        if device.type == "cuda" and last.get("cuda_rng"):
            torch.cuda.set_rng_state(last["cuda_rng"][ctx.rank % len(last["cuda_rng"])], device)
        state.update(last["state"])
        log.info("resumed from %s at epoch %d, step %d", last_path, state["epoch"], state["step"])

    ddp_model = model
    if ctx.ddp:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    step_model = torch.compile(ddp_model) if cfg.compile else ddp_model

    loss_sum = torch.tensor(state["loss_sum"], dtype=torch.float64, device=device)  # this epoch so far, all ranks
    writer = BackgroundCheckpointWriter()
    schedule = CheckpointSchedule(cfg.checkpoint_every, cfg.checkpoint_seconds,
                                  poll_steps=CHECKPOINT_POLL_STEPS if ctx.ddp else 1,
                                  agree=(lambda flag: broadcast_object(flag, ctx)) if ctx.ddp else None)

    def save_last() -> None:
        # Collectives first (every rank reaches this at the same step), then rank 0 snapshots; a thread writes.
        ls = all_reduce_sum(loss_sum.clone(), ctx) if ctx.ddp else loss_sum
        rngs = gather_objects(torch.get_rng_state(), ctx)
        cuda_rngs = gather_objects(torch.cuda.get_rng_state(device), ctx) if device.type == "cuda" else []
        if ctx.is_main:
            writer.save(last_path, {"fingerprint": _fingerprint(cfg, train_split.data.n),
                                    "state_dict": model.state_dict(),
                                    "optimizer": opt.state_dict(), "rng": rngs, "cuda_rng": cuda_rngs,
                                    "state": {**state, "loss_sum": float(ls) / (world if ctx.ddp else 1)}})
        schedule.saved()

    steps = n_batches(train_split.data.n, B)
    checks = eval_positions(steps, cfg.evals_per_epoch)
    behaviour = reads_behaviour(model)
    if ctx.is_main:
        log.info("training %s on %s, world %d: %d rows, %d steps/epoch, validation after steps %s, %d trainable "
                 "tensors", type(model).__name__, device, world, train_split.data.n, steps, list(checks), len(params))
    clock = {"t0": time.perf_counter(), "rows0": state["rows"]}   # throughput of this process's share of a segment

    def validate(epoch: int) -> None:
        """Score valid (all ranks score a shard; gathered, so all agree on early stopping), keep the best weights,
        start the next segment of the training-loss average, write last.pt."""
        seconds = time.perf_counter() - clock["t0"]
        total_loss = float(all_reduce_sum(loss_sum.clone(), ctx)) / max(state["rows"], 1)
        sync_running_stats(model, ctx)   # every rank evaluates (and rank 0 saves) the same normalisation statistics
        probs, gates, names = predict(model, valid_split.data, cfg.eval_batch_size, ctx)
        train_mode(model)                # predict() restored plain train mode; frozen levels go back to eval
        metrics = split_metrics(valid_split, probs)
        gbd = gate_by_domain(gates, names, valid_split.domains)
        if gbd:
            metrics["gate_weights_by_domain"] = gbd
        record = {"epoch": epoch, "step": state["step"], "epoch_progress": round(epoch + state["pos"] / steps, 4),
                  "train_loss": total_loss, "valid_auc": metrics["auc"], "valid_logloss": metrics["logloss"],
                  "valid_domain_auc": metrics["domain_auc"],
                  "samples_per_s": (state["rows"] - clock["rows0"]) / max(seconds, 1e-9)}
        state["curve"].append(record)
        auc = metrics["auc"] if not math.isnan(metrics["auc"]) else -math.inf
        if auc > state["best_auc"] or state["best_epoch"] < 0:
            state.update(best_auc=auc, best_epoch=epoch, best_step=state["step"], bad=0, best_metrics=metrics)
            if ctx.is_main:
                writer.save(best_path, {**base, "state_dict": model.state_dict(), "metrics": metrics,
                                        "step": state["step"], "epoch": epoch})
        else:
            state["bad"] += 1
        if state["pos"] >= steps:
            state["epoch"], state["pos"] = epoch + 1, 0
        loss_sum.zero_()
        state["rows"] = 0
        save_last()
        clock.update(t0=time.perf_counter(), rows0=0)
        if ctx.is_main:
            dom = " ".join(f"d{d}={a:.4f}" for d, a in metrics["domain_auc"].items())
            log.info("epoch %d step %d (%.2f epochs) loss %.4f valid auc %.4f [%s] %.0f samples/s", epoch,
                     state["step"], record["epoch_progress"], total_loss, metrics["auc"], dom, record["samples_per_s"])
            if on_epoch_end is not None:
                on_epoch_end(dict(record))

    stopped = "epochs"
    try:
        while state["epoch"] < cfg.epochs:
            if cfg.patience and state["bad"] >= cfg.patience:   # also when resuming a run that already stopped
                stopped = "early_stop"
                break
            epoch = state["epoch"]
            perm = epoch_permutation(train_split.data.n, cfg.seed, epoch, device)
            train_mode(model)
            for s in _progress(range(state["pos"], steps), cfg.progress and ctx.is_main, f"epoch {epoch}"):
                idx = perm[s * B:(s + 1) * B]
                local = idx[ctx.rank::world]                     # this rank's shard of the global batch
                batch = train_split.data.batch(local, behaviour)
                drop_ids(batch, cfg.id_dropout, cfg.seed, epoch, s, len(idx), ctx.rank, world)
                with autocast(device):
                    out = step_model(batch)
                bce = F.binary_cross_entropy_with_logits(out["logit"].float(), batch["label"], reduction="none")
                weighted = (lam[batch["domain"]] * bce).sum()
                # world / |global batch|: DDP averages gradients over ranks, so this yields Σ_global / B exactly.
                loss = weighted * (world / len(idx)) + cfg.alpha * out["reg_loss"].float()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += weighted.detach()
                state["rows"] += len(idx)
                state["step"] += 1
                state["pos"] = s + 1
                if state["pos"] in checks:
                    validate(epoch)                             # writes last.pt (and advances the epoch at its end)
                    if cfg.patience and state["bad"] >= cfg.patience:
                        break                                   # the while loop's check records early_stop
                elif schedule.due(state["step"]):
                    save_last()
                if cfg.max_steps and state["step"] >= cfg.max_steps:
                    stopped = "max_steps"
                    break
            if stopped == "max_steps":
                save_last()
                break
    except BaseException:
        with contextlib.suppress(Exception):   # the loop's own error is the one to report
            writer.join()
        raise
    writer.join()   # the last write in flight completes (or its error surfaces) before the run ends

    result = {"checkpoint": best_path, "metrics": state["best_metrics"], "curve": state["curve"],
              "step": state["step"], "best_epoch": state["best_epoch"], "best_step": state["best_step"],
              "stopped": stopped, "device": dev_info}
    if ctx.is_main:
        (out_dir / "metrics.json").write_text(json.dumps(
            {**{k: v for k, v in result.items() if k != "checkpoint"}, "checkpoint": str(best_path),
             "train_config": asdict(cfg), **(extra or {})}, indent=2, default=str))
    return result
