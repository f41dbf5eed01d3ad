"""Run the models/ trainer from Dagster: in-process (CPU or one GPU) or `torchrun` (DDP), logs into the run log.

Both launches return the same shape: {"checkpoint": Path, "metrics": the best epoch's metrics + "curve",
"device": what the run used (and a warning when a GPU was visible but unusable)}.
"""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections import deque
from contextlib import contextmanager
from pathlib import Path


class _DagsterLogHandler(logging.Handler):
    """Forwards the trainer's per-epoch lines (logger `models`) to the Dagster run log."""

    def __init__(self, dagster_log):
        super().__init__(logging.INFO)
        self.dagster_log = dagster_log

    def emit(self, record: logging.LogRecord) -> None:
        self.dagster_log.info(self.format(record))


@contextmanager
def forward_logs(dagster_log):
    logger = logging.getLogger("models")
    handler = _DagsterLogHandler(dagster_log)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


#: On CUDA, pretraining-sized runs use up to this many times the configured (CPU-sized) batch, which leaves a GPU
#: mostly idle, with the learning rate scaled by the square root (models.engine.scaled_for_batch) ...
CUDA_BATCH_SCALE = 8
#: ... but only as far as an epoch keeps this many optimiser steps: at ×8 with 3 epochs the synthetic default
#: (317k rows: 20 steps/epoch instead of 155) lost 0.07 pretrain valid AUC. Cold-start fine-tuning (small data)
#: keeps its batch. CPU runs are unchanged.
MIN_STEPS_PER_EPOCH = 100


#: A tuned batch size is used only while an epoch keeps this many steps with it (the synthetic default: 73 at 4096).
MIN_TUNED_STEPS_PER_EPOCH = 50
#: TrainConfig fields a budget may set besides epochs / batch size / patience (tuned defaults, CUDA lr scaling).
OPTIMISER_KEYS = ("lr", "weight_decay", "embedding_weight_decay")
#: Lines of torchrun's output a failed launch quotes in its error (all of it goes to the run log).
TORCHRUN_ERROR_LINES = 40


def _uses_cuda(settings) -> bool:
    import torch

    return str(settings.device).startswith("cuda") or (settings.device == "auto" and torch.cuda.is_available())


def cuda_batch_factor(n_rows: int, batch_size: int, max_factor: int = CUDA_BATCH_SCALE,
                      min_steps: int = MIN_STEPS_PER_EPOCH) -> int:
    """The largest power of two <= max_factor that keeps n_rows / (batch_size * factor) >= min_steps (at least 1)."""
    factor = 1
    while factor * 2 <= max_factor and n_rows / (batch_size * factor * 2) >= min_steps:
        factor *= 2
    return factor


def _budget(settings, epochs: int, small_data: bool, mode: str, data_dir: Path, tuned: dict | None = None) -> dict:
    """Epochs, batch size, patience (and lr when scaled): the cold-start-sized data gets small batches and more
    epochs; pretraining takes the model's adopted tuned defaults (`tuned`: models/tuned_defaults.py); on CUDA the
    other runs get a larger batch when the training split is large enough (cuda_batch_factor)."""
    budget = {
        "epochs": epochs or (settings.finetune_epochs if small_data else settings.epochs),
        "batch_size": settings.finetune_batch_size if small_data else settings.batch_size,
        "patience": settings.patience,
    }
    train_file = Path(data_dir) / "train.parquet"
    if mode == "train" and not small_data and tuned:
        _apply_tuned(budget, dict(tuned), train_file)
    if not small_data and _uses_cuda(settings) and train_file.exists():
        from models.engine import TrainConfig, scaled_for_batch
        from models.finetune import FinetuneConfig
        from unisr_data.contract import parquet_rows

        factor = cuda_batch_factor(parquet_rows(train_file), budget["batch_size"])
        if factor > 1:
            base_lr = budget.get("lr", (TrainConfig if mode == "train" else FinetuneConfig).lr)
            budget["batch_size"], budget["lr"] = scaled_for_batch(budget["batch_size"], base_lr, factor)
    return budget


def _apply_tuned(budget: dict, tuned: dict, train_file: Path) -> None:
    """The tuned defaults' optimiser settings, and their batch size where the training split still gives an epoch
    MIN_TUNED_STEPS_PER_EPOCH steps with it; otherwise the configured batch with the tuned learning rate moved to
    it by the square-root rule (a search on 300k rows says little about a batch for 3k)."""
    import math

    from unisr_data.contract import parquet_rows

    batch = tuned.pop("batch_size", None)
    budget.update(tuned)
    if not batch or batch == budget["batch_size"]:
        return
    rows = parquet_rows(train_file) if train_file.exists() else 0
    if rows / batch >= MIN_TUNED_STEPS_PER_EPOCH:
        budget["batch_size"] = batch
    elif "lr" in budget:
        budget["lr"] = budget["lr"] * math.sqrt(budget["batch_size"] / batch)


def check_nproc(settings) -> None:
    """Clear errors before launching: the device must be usable, and on GPUs one process per visible GPU at most."""
    from models.distributed import resolve_device

    resolve_device(settings.device)           # DeviceUnavailableError when e.g. "cuda" is asked of a CPU-only torch
    if settings.nproc_per_node > 1 and _uses_cuda(settings):
        import torch

        gpus = torch.cuda.device_count()
        if settings.nproc_per_node > gpus:
            raise ValueError(f"nproc_per_node={settings.nproc_per_node} but only {gpus} GPU(s) are visible: set "
                             f"TrainerResource.nproc_per_node to at most {gpus} (one process per GPU)")


def _cli_args(mode: str, data_dir: Path, out_dir: Path, settings, budget: dict, model, model_kwargs, pretrained,
              freeze, warm: dict) -> list[str]:
    args = ["--data", str(data_dir), "--out", str(out_dir), "--epochs", str(budget["epochs"]),
            "--batch-size", str(budget["batch_size"]), "--patience", str(budget["patience"]),
            "--device", settings.device, "--no-progress"]
    for key in OPTIMISER_KEYS:
        if key in budget:
            args += [f"--{key.replace('_', '-')}", repr(budget[key])]
    if settings.num_threads:
        args += ["--num-threads", str(settings.num_threads)]
    args += ["--seed", str(settings.seed)]
    if mode == "train":
        args += ["--model", model] + [a for k, v in model_kwargs.items() for a in ("--model-arg", f"{k}={v}")]
    else:
        args += ["--pretrained", str(pretrained), "--freeze", freeze, "--init-from", warm["init_from"],
                 "--window-days", repr(float(warm["window_days"]))]
    return args


def _torchrun(settings, dagster_log, mode: str, args: list[str]) -> None:
    from unisr_data.child_processes import tied_process

    # Tied: torchrun gets SIGTERM when this process dies (and then stops its workers), each worker when torchrun
    # dies (`run-module`), and an error here (a cancelled run) stops torchrun instead of waiting for it.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={settings.nproc_per_node}",
           "-m", "unisr_data.child_processes", "run-module", f"models.{mode}", *args]
    dagster_log.info("launching: " + " ".join(cmd))
    tail: deque[str] = deque(maxlen=TORCHRUN_ERROR_LINES)
    with tied_process(cmd, signal.SIGTERM, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            dagster_log.info(line.rstrip())
            tail.append(line.rstrip())
    if proc.returncode:
        output = "\n".join(tail) or "(no output)"
        raise RuntimeError(f"torchrun exited with {proc.returncode}: {' '.join(cmd)}\nits last output:\n{output}")


def _int_keys(value):
    """JSON turned int dict keys (domain ids) into strings: turn them back, recursively."""
    if isinstance(value, dict):
        return {(int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k): _int_keys(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_int_keys(v) for v in value]
    return value


def read_run_result(out_dir: Path) -> dict:
    """{"checkpoint", "metrics", "device"} from the metrics.json a torchrun-launched trainer wrote (rank 0)."""
    path = Path(out_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the torchrun-launched trainer finished without writing it")
    written = _int_keys(json.loads(path.read_text()))
    metrics = dict(written["metrics"])
    metrics.setdefault("curve", written.get("curve", []))
    return {"checkpoint": Path(written["checkpoint"]), "metrics": metrics, "device": written.get("device", {})}


def run_training(settings, dagster_log, mode: str, data_dir: Path, out_dir: Path, *, model: str = "srf",
                 model_kwargs: dict | None = None, pretrained: Path | None = None, freeze: str = "L0",
                 epochs: int = 0, small_data: bool = False, init_from: str = "closest",
                 window_days: float = 0.0) -> dict:
    """Train (`mode="train"`) or fine-tune; returns {"checkpoint": Path, "metrics": dict with "curve", "device": dict}
    (the same shape in-process and under torchrun); fine-tuning adds "freeze" (the level kept) and "levels".
    Pretraining uses the model's adopted tuned defaults (models/tuned_defaults.json) under explicit keywords.

    Fine-tuning goes through models.finetune.best_freeze_level: freeze="auto" fine-tunes each level into
    OUT/<level>/ (one torchrun per level when nproc_per_node > 1) and keeps the best by validation AUC.
    init_from / window_days: models.finetune.FinetuneConfig's (the daily refresh of a fine-tuned champion)."""
    from models.tuned_defaults import split, tuned_params

    tuned_kwargs, tuned_train = split(tuned_params(model)) if mode == "train" else ({}, {})
    model_kwargs = {**tuned_kwargs, **(model_kwargs or {})}   # explicit keywords win over the tuned defaults
    warm = {"init_from": init_from, "window_days": window_days}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_nproc(settings)
    budget = _budget(settings, epochs, small_data, mode, data_dir, tuned_train)

    def run_once(level: str, out: Path) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        if settings.nproc_per_node > 1:
            _torchrun(settings, dagster_log, mode, _cli_args(mode, data_dir, out, settings, budget, model,
                                                             model_kwargs, pretrained, level, warm))
            return read_run_result(out)
        return _in_process(settings, mode, data_dir, out, budget, model, model_kwargs, pretrained, level, warm)

    with forward_logs(dagster_log):
        if mode == "train":
            result = run_once(freeze, out_dir)
        else:
            from models.finetune import best_freeze_level

            result = best_freeze_level(freeze, out_dir, run_once)
    warning = result["device"].get("warning")
    if warning:
        dagster_log.warning(warning)
    return result


def _in_process(settings, mode: str, data_dir: Path, out_dir: Path, budget: dict, model: str, model_kwargs: dict,
                pretrained: Path | None, freeze: str, warm: dict) -> dict:
    common = dict(**budget, device=settings.device, num_threads=settings.num_threads, seed=settings.seed,
                  progress=False)
    if mode == "train":
        from models.train import TrainConfig, train

        result = train(TrainConfig(model=model, model_kwargs=model_kwargs, **common), data_dir, out_dir)
    else:
        from models.finetune import FinetuneConfig, finetune

        result = finetune(FinetuneConfig(freeze=freeze, **warm, **common), data_dir, pretrained, out_dir)
    metrics = dict(result["metrics"])
    metrics.setdefault("curve", result.get("curve", []))
    return {"checkpoint": Path(result["checkpoint"]), "metrics": metrics, "device": result.get("device", {})}
