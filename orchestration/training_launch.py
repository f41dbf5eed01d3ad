"""Run the models/ trainer from Dagster: in-process (CPU or one GPU) or `torchrun` (DDP), logs into the run log."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
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


def _budget(settings, epochs: int, small_data: bool) -> dict:
    """Epochs, batch size and patience: the cold-start-sized data gets small batches and more epochs."""
    return {
        "epochs": epochs or (settings.finetune_epochs if small_data else settings.epochs),
        "batch_size": settings.finetune_batch_size if small_data else settings.batch_size,
        "patience": settings.patience,
    }


def _cli_args(mode: str, data_dir: Path, out_dir: Path, settings, budget: dict, model, model_kwargs, pretrained,
              freeze) -> list[str]:
    args = ["--data", str(data_dir), "--out", str(out_dir), "--epochs", str(budget["epochs"]),
            "--batch-size", str(budget["batch_size"]), "--patience", str(budget["patience"]), "--device", settings.device]
    if mode == "train":
        args += ["--model", model] + [a for k, v in model_kwargs.items() for a in ("--model-arg", f"{k}={v}")]
    else:
        args += ["--pretrained", str(pretrained), "--freeze", freeze]
    return args


def _torchrun(settings, dagster_log, mode: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={settings.nproc_per_node}",
           "-m", f"models.{mode}", *args]
    dagster_log.info("launching: " + " ".join(cmd))
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            dagster_log.info(line.rstrip())
    if proc.returncode:
        raise RuntimeError(f"torchrun exited with {proc.returncode}: {' '.join(cmd)}")


def run_training(settings, dagster_log, mode: str, data_dir: Path, out_dir: Path, *, model: str = "srf",
                 model_kwargs: dict | None = None, pretrained: Path | None = None, freeze: str = "L0",
                 epochs: int = 0, small_data: bool = False) -> dict:
    """Train (`mode="train"`) or fine-tune; returns {"checkpoint": Path, "metrics": dict with "curve"}."""
    model_kwargs = model_kwargs or {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    budget = _budget(settings, epochs, small_data)
    if settings.nproc_per_node > 1:
        _torchrun(settings, dagster_log, mode, _cli_args(mode, data_dir, out_dir, settings, budget, model,
                                                         model_kwargs, pretrained, freeze))
        metrics = json.loads((out_dir / "metrics.json").read_text())
        return {"checkpoint": out_dir / "checkpoint.pt", "metrics": metrics}
    common = dict(**budget, device=settings.device, num_threads=settings.num_threads, progress=False)
    with forward_logs(dagster_log):
        if mode == "train":
            from models.train import TrainConfig, train

            result = train(TrainConfig(model=model, model_kwargs=model_kwargs, **common), data_dir, out_dir)
        else:
            from models.finetune import FinetuneConfig, finetune

            result = finetune(FinetuneConfig(freeze=freeze, **common), data_dir, pretrained, out_dir)
    metrics = dict(result["metrics"])
    metrics.setdefault("curve", result.get("curve", []))
    return {"checkpoint": Path(result["checkpoint"]), "metrics": metrics}
