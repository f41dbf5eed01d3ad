"""Training-loop throughput: our pre-tensorised device loop vs a reference loop written the common CTR-library way.

Reference (FuxiCTR / Scenario-Wise-Rec style): a torch Dataset whose __getitem__ returns one row as a dict of
tensors (text vectors looked up per row), a DataLoader with default collate, `.to(device)` per key each step,
and `loss.item()` every step. Ours (models/batches.py + models/engine.py): the whole split on the device, a
per-epoch permutation, batches by index gather, text vectors gathered from device tables, no per-step sync.
Same model, same synthetic data, same optimiser; random-initialised weights (throughput only).

    python benchmarks/bench_training_loop.py --device cuda --model srf --batch-size 4096
    python benchmarks/bench_training_loop.py --device cpu --rows 100000 --steps 10 --ref-steps 3

Needs only torch, numpy, pandas, pyarrow. The last line printed is one JSON object (machine-readable).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.architectures import build_model  # noqa: E402
from models.batches import DeviceData, epoch_permutation  # noqa: E402
from models.engine import TrainConfig, autocast, configure_precision, make_optimizer  # noqa: E402
from models.spec import FeatureSpec  # noqa: E402


def synthetic(rows: int, n_users: int, n_items: int, n_queries: int, n_cat: int, n_num: int, dim: int, seed: int = 0):
    """Random columns shaped like a training split (3 ids, n_cat categorical, n_num numeric, dim-d text tables)."""
    rng = np.random.default_rng(seed)
    domain = rng.integers(0, 4, rows)
    cols = {
        "domain": domain.astype(np.int64),
        "user": rng.integers(0, n_users, rows).astype(np.int64),
        "item": rng.integers(0, n_items, rows).astype(np.int64),
        "query": np.where(domain % 2 == 0, rng.integers(1, n_queries, rows), 0).astype(np.int64),
        "cat": rng.integers(0, 50, (rows, n_cat)).astype(np.int64),
        "num": rng.normal(size=(rows, n_num)).astype(np.float32),
        "num_mask": (rng.random((rows, n_num)) > 0.1).astype(np.float32),
        "label": (rng.random(rows) < 0.1).astype(np.float32),
    }
    cols["item_text"] = np.where(rng.random(rows) < 0.9, cols["item"], 0).astype(np.int64)
    cols["query_text"] = cols["query"].copy()
    item_matrix = rng.normal(size=(n_items, dim)).astype(np.float32)
    item_matrix[0] = 0
    query_matrix = rng.normal(size=(n_queries, dim)).astype(np.float32)
    query_matrix[0] = 0
    spec = FeatureSpec(n_domains=4, domain_tasks=["search", "rec", "search", "rec"], n_users=n_users, n_items=n_items,
                       n_queries=n_queries, cat_cardinalities=[50] * n_cat, n_num=n_num, text_dim=dim)
    return cols, item_matrix, query_matrix, spec


class RowDataset(torch.utils.data.Dataset):
    """The reference's per-row dataset: __getitem__ -> dict of tensors for one impression."""

    def __init__(self, cols, item_matrix, query_matrix):
        self.cols, self.item_matrix, self.query_matrix = cols, item_matrix, query_matrix

    def __len__(self):
        return len(self.cols["label"])

    def __getitem__(self, i):
        c = self.cols
        it, qt = c["item_text"][i], c["query_text"][i]
        return {
            "domain": torch.tensor(c["domain"][i]), "user": torch.tensor(c["user"][i]),
            "item": torch.tensor(c["item"][i]), "query": torch.tensor(c["query"][i]),
            "cat": torch.from_numpy(c["cat"][i]), "num": torch.from_numpy(c["num"][i]),
            "num_mask": torch.from_numpy(c["num_mask"][i]), "label": torch.tensor(c["label"][i]),
            "item_emb": torch.from_numpy(self.item_matrix[it]), "query_emb": torch.from_numpy(self.query_matrix[qt]),
            "has_item_text": torch.tensor(float(it > 0)), "has_query": torch.tensor(float(qt > 0)),
        }


class GpuSampler:
    """Mean GPU utilisation (%) while the block runs, sampled in a thread without disturbing the measured loop.

    NVML (torch.cuda.utilization, needs the nvidia-ml-py bindings) every 0.5 s when available; else one long-lived
    `nvidia-smi --loop-ms 1000` process whose lines are read as they come (no process spawned per sample); else
    nothing (gpu_util is then null).
    """

    NVML_PERIOD_S = 0.5
    SMI_PERIOD_MS = 1000

    def __init__(self, device: torch.device):
        self.device, self.samples, self._stop = device, [], threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    def _nvml_available(self) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.cuda.utilization(self.device)
            return True
        except Exception:
            return False

    def _run_nvml(self):
        while not self._stop.wait(self.NVML_PERIOD_S):
            self.samples.append(float(torch.cuda.utilization(self.device)))

    def _run_smi(self):
        for line in self._proc.stdout:
            try:
                self.samples.append(float(line.strip()))
            except ValueError:
                pass

    def __enter__(self):
        if self.device.type != "cuda":
            return self
        if self._nvml_available():
            self._thread = threading.Thread(target=self._run_nvml, daemon=True)
        elif shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                 f"--loop-ms={self.SMI_PERIOD_MS}", "-i", str(self.device.index or 0)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._thread = threading.Thread(target=self._run_smi, daemon=True)
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def mean(self):
        return float(np.mean(self.samples)) if self.samples else None


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_fn(model, opt, device):
    def step(batch):
        with autocast(device):
            out = model(batch)
        loss = F.binary_cross_entropy_with_logits(out["logit"].float(), batch["label"]) + 0.01 * out["reg_loss"].float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss
    return step


def run_ours(model, opt, data: DeviceData, batch_size: int, warmup: int, steps: int, device) -> float:
    """Samples/s of our loop over `steps` timed steps (after `warmup`)."""
    step = step_fn(model, opt, device)
    perm = epoch_permutation(data.n, 0, 0, device)
    loss_sum = torch.zeros((), device=device)
    nb = data.n // batch_size
    for s in range(warmup):
        loss_sum += step(data.batch(perm[(s % nb) * batch_size:(s % nb + 1) * batch_size])).detach()
    _sync(device)
    t0 = time.perf_counter()
    for s in range(warmup, warmup + steps):
        loss_sum += step(data.batch(perm[(s % nb) * batch_size:(s % nb + 1) * batch_size])).detach()
    _sync(device)
    loss_sum.item()  # the one sync per "epoch"
    return steps * batch_size / (time.perf_counter() - t0)


def run_reference(model, opt, dataset, batch_size: int, warmup: int, steps: int, device, workers: int) -> float:
    """Samples/s of the reference DataLoader loop over `steps` timed steps (after `warmup`)."""
    step = step_fn(model, opt, device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                         drop_last=True, pin_memory=device.type == "cuda")
    it = iter(loader)
    for _ in range(warmup):
        batch = {k: v.to(device) for k, v in next(it).items()}
        step(batch).item()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        batch = {k: v.to(device) for k, v in next(it).items()}
        step(batch).item()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


def data_only(cols, item_matrix, query_matrix, batch_size: int, steps: int, device, workers: int) -> dict:
    """Samples/s of batch assembly alone (no model): the part of the loop this design changes."""
    data = DeviceData(cols, item_matrix, query_matrix, device)
    perm = epoch_permutation(data.n, 0, 0, device)
    nb = data.n // batch_size
    _sync(device)
    t0 = time.perf_counter()
    for s in range(steps):
        b = data.batch(perm[(s % nb) * batch_size:(s % nb + 1) * batch_size])
    _sync(device)
    ours = steps * batch_size / (time.perf_counter() - t0)
    del data, b
    loader = iter(torch.utils.data.DataLoader(RowDataset(cols, item_matrix, query_matrix), batch_size=batch_size,
                                              shuffle=True, num_workers=workers, drop_last=True))
    ref_steps = max(1, steps // 10)
    t0 = time.perf_counter()
    for _ in range(ref_steps):
        _ = {k: v.to(device) for k, v in next(loader).items()}   # the reference's per-step host-to-device copy
    _sync(device)
    return {"ours_data_samples_per_s": round(ours, 1),
            "reference_data_samples_per_s": round(ref_steps * batch_size / (time.perf_counter() - t0), 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--model", default="srf", choices=["srf", "mmoe"])
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=20_000)
    p.add_argument("--cat", type=int, default=6)
    p.add_argument("--num", type=int, default=6)
    p.add_argument("--text-dim", type=int, default=384)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=50, help="timed steps of our loop")
    p.add_argument("--ref-steps", type=int, default=10, help="timed steps of the reference loop")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--data-steps", type=int, default=50, help="batches timed for batch assembly alone (ref: 1/10)")
    p.add_argument("--ref-workers", type=int, default=0, help="DataLoader workers of the reference loop")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile our loop's model (the trainer's --compile)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    configure_precision()  # the trainer's float32 matmul precision (no TF32), so the loop measured is the trainer's
    t = time.perf_counter()
    cols, item_matrix, query_matrix, spec = synthetic(a.rows, a.users, a.items, a.queries, a.cat, a.num, a.text_dim)
    print(f"synthetic data: {a.rows} rows, {time.perf_counter() - t:.1f}s", file=sys.stderr)

    results = {}
    for name in ("ours", "reference"):
        torch.manual_seed(0)
        model = build_model(a.model, spec, hidden=a.hidden).to(device)
        opt = make_optimizer(list(model.parameters()), TrainConfig(lr=1e-3), device)  # fused on CUDA, as in training
        with GpuSampler(device) as gpu:
            if name == "ours":
                step_model = torch.compile(model) if a.compile else model
                t = time.perf_counter()
                data = DeviceData(cols, item_matrix, query_matrix, device)
                _sync(device)
                setup_s = time.perf_counter() - t
                sps = run_ours(step_model, opt, data, a.batch_size, a.warmup, a.steps, device)
                del data
            else:
                setup_s = 0.0
                sps = run_reference(model, opt, RowDataset(cols, item_matrix, query_matrix), a.batch_size,
                                    a.warmup, a.ref_steps, device, a.ref_workers)
        results[name] = {"samples_per_s": sps, "gpu_util_mean": gpu.mean, "setup_s": setup_s}
        print(f"{name:9s}: {sps:12,.0f} samples/s" + (f"  GPU util {gpu.mean:.0f}%" if gpu.mean is not None else ""),
              file=sys.stderr)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    ratio = results["ours"]["samples_per_s"] / results["reference"]["samples_per_s"]
    data_rates = data_only(cols, item_matrix, query_matrix, a.batch_size, a.data_steps, device, a.ref_workers)
    print(f"batch assembly only: ours {data_rates['ours_data_samples_per_s']:,.0f} vs reference "
          f"{data_rates['reference_data_samples_per_s']:,.0f} samples/s", file=sys.stderr)
    print(f"ratio ours/reference: {ratio:.1f}x", file=sys.stderr)
    print(json.dumps({"bench": "training_loop", "device": a.device,
                      "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                      "model": a.model, "batch_size": a.batch_size, "compile": a.compile, "rows": a.rows,
                      "text_dim": a.text_dim,
                      "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "ours_samples_per_s": round(results["ours"]["samples_per_s"], 1),
                      "reference_samples_per_s": round(results["reference"]["samples_per_s"], 1),
                      "ratio": round(ratio, 2), "ours_gpu_util": results["ours"]["gpu_util_mean"],
                      "reference_gpu_util": results["reference"]["gpu_util_mean"],
                      "ours_setup_s": round(results["ours"]["setup_s"], 2), **data_rates}))


if __name__ == "__main__":
    main()
