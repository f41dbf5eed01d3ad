"""GPU / multi-process correctness that CPU can check (issue 12): each test names the defect it guards against.

- bf16 autocast must not defeat the float32 maths of the regularisers and of STAR's partitioned norm;
- evaluation (predict) runs in float32 even inside an autocast region;
- the MMD/JS regularisers and the partitioned norm dispatch no op that makes the host wait for the device;
- loading a split pins no host memory;
- torchrun (gloo, 2 processes) returns the same metrics shape and AUC as one process;
- STAR's running statistics are averaged over DDP ranks;
- device checks: `--device cuda` without CUDA is one line and exit code 2, `auto` warns when a GPU is visible
  but unusable, nproc_per_node is checked before launching;
- checkpoints: by wall time, written in the background from a snapshot.
"""
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

from model_fixture import write_folders
from models.architectures import build_model
from models.batches import DeviceData
from models.checkpoint_writer import BackgroundCheckpointWriter, CheckpointSchedule
from models.distributed import (
    DeviceUnavailableError,
    DistContext,
    device_info,
    resolve_device,
    sync_running_stats,
    unused_gpu_warning,
)
from models.engine import load_split, predict
from models.layers.divergence import domain_js, domain_mmd
from models.layers.star import PartitionedNorm
from models.training_data import TrainingFolder, feature_spec
from models.vocab import Vocabularies

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour of a machine without CUDA")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_folders(tmp_path_factory.mktemp("gpu"), n_warm=1000, n_cold=300)


def bf16_autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def near_domains(batch: int = 2048, dim: int = 32, shift: float = 0.05, seed: int = 0):
    """Rows of 4 domains whose distributions differ a little (the regime where MMD is small and noise matters)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, dim, generator=g)
    domain = torch.randint(0, 4, (batch,), generator=g)
    return x + shift * domain.unsqueeze(-1).float(), domain


# ------------------------------------------------------------------ bf16 autocast vs the float32 islands

def test_regularisers_under_bf16_autocast_match_float32():
    x, domain = near_domains()
    for fn, scale in ((domain_mmd, 1.0), (domain_js, 3.0)):
        ref = fn(x * scale, domain, 4)
        with bf16_autocast():
            low = fn(x * scale, domain, 4)
        assert low.dtype == torch.float32
        assert float(low) == pytest.approx(float(ref), rel=0.01), (fn.__name__, float(low), float(ref))


def test_partitioned_norm_under_bf16_autocast_matches_float32():
    # |mean| / std = 30 per feature: E[x^2] - mean^2 in bf16 loses the variance entirely
    g = torch.Generator().manual_seed(1)
    domain = torch.randint(0, 3, (1024,), generator=g)
    x = 30.0 + torch.randn(1024, 16, generator=g) + domain.unsqueeze(-1).float()
    ref, low = PartitionedNorm(3, 16), PartitionedNorm(3, 16)
    y_ref = ref(x, domain)
    with bf16_autocast():
        y_low = low(x, domain)
    torch.testing.assert_close(low.running_var, ref.running_var, rtol=0.01, atol=0.0)
    torch.testing.assert_close(low.running_mean, ref.running_mean, rtol=0.01, atol=0.0)
    assert (y_low - y_ref).abs().max() <= 0.01 * y_ref.abs().max()
    ref.eval(), low.eval()
    with bf16_autocast():
        y_low = low(x, domain)
    assert (y_low - ref(x, domain)).abs().max() <= 0.01 * y_ref.abs().max()


# -------------------------------------------------------------------------- evaluation precision

def test_predict_is_float32_inside_autocast(folders):
    folder = TrainingFolder.open(folders["joint"])
    train_frame = folder.read("train")
    vocab = Vocabularies.build(train_frame, 2)
    spec = feature_spec(folder.meta, vocab, folder.text_dim)
    valid = load_split(folder, "valid", vocab, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model("srf", spec, hidden=16)
    dtypes = []
    model.towers.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    ref, _, _ = predict(model, valid.data, 256)
    with bf16_autocast():                      # e.g. an evaluation called from inside a training step's region
        inside, _, _ = predict(model, valid.data, 256)
    assert set(dtypes) == {torch.float32}
    np.testing.assert_array_equal(inside, ref)
    assert len(np.unique(ref)) > 0.95 * len(ref)   # no bf16 ties


# ----------------------------------------------------------------------------------- no host syncs

SYNC_OPS = ("nonzero", "masked_select", "_local_scalar_dense", "item", "is_nonzero", "equal", "unique")


class RecordOps(TorchDispatchMode):
    """Every aten op dispatched, and whether any indexing used a boolean mask (a data-dependent output shape)."""

    def __init__(self):
        super().__init__()
        self.names, self.bool_index = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.names.append(name)
        if name in ("index", "index_put", "index_put_"):
            indices = args[1] if len(args) > 1 else []
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices):
                self.bool_index.append(name)
        return func(*args, **(kwargs or {}))

    def syncing(self):
        return sorted({n for n in self.names if n.rstrip("_") in SYNC_OPS}) + self.bool_index


def test_regularisers_and_partitioned_norm_dispatch_no_host_sync():
    x, domain = near_domains(batch=256)
    x.requires_grad_(True)
    norm = PartitionedNorm(4, x.shape[1])
    with RecordOps() as ops:
        loss = domain_mmd(x, domain, 4) + domain_js(x, domain, 4) + norm(x, domain).square().mean()
        loss.backward()
    assert {"median", "mm"} <= set(ops.names)      # the mode did see the maths
    assert ops.syncing() == [], ops.syncing()


# ----------------------------------------------------------------------------- loading pins nothing

def test_loading_a_split_pins_no_host_memory(folders):
    folder = TrainingFolder.open(folders["pretrain"])
    vocab = Vocabularies.build(folder.read("train"), 2)
    split = load_split(folder, "train", vocab, torch.device("cpu"))
    tensors = [*split.data.cols.values(), split.data.item_text, split.data.query_text, split.data.item_matrix,
               split.data.query_matrix]
    assert not any(t.is_pinned() for t in tensors)
    # A non-CPU device (meta stands in for CUDA here): one plain copy per column, no pinning on the way.
    cols = {k: v.numpy() for k, v in split.data.cols.items()}
    cols.update(item_text=split.data.item_text.numpy(), query_text=split.data.query_text.numpy())
    with RecordOps() as ops:
        on_meta = DeviceData(cols, folder.item_text.matrix, folder.query_text.matrix, "meta")
    assert on_meta.cols["label"].device.type == "meta"
    assert not [n for n in ops.names if "pin" in n], ops.names


# ------------------------------------------------------------------------ torchrun == in-process

def _shape(value):
    """The structure of a metrics dict: keys (with their types) and nesting, not the numbers."""
    if isinstance(value, dict):
        return {(type(k).__name__, k if isinstance(k, str) else "#"): _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return "value"


def test_torchrun_returns_the_in_process_metrics_shape_and_auc(folders, tmp_path):
    from orchestration.resources import TrainerResource
    from orchestration.training_launch import run_training

    log = logging.getLogger("test.torchrun")
    kwargs = {"hidden": 8, "dropout": 0.0, "divergence": "none"}   # no per-shard regulariser, no dropout streams
    results = {}
    for nproc in (1, 2):
        settings = TrainerResource(device="cpu", nproc_per_node=nproc, epochs=1, batch_size=400, patience=0,
                                   num_threads=1)
        results[nproc] = run_training(settings, log, "train", folders["pretrain"], tmp_path / str(nproc),
                                      model="srf", model_kwargs=kwargs)
    one, two = results[1], results[2]
    assert set(one) == set(two) == {"checkpoint", "metrics", "device"}
    assert _shape(two["metrics"]) == _shape(one["metrics"])
    assert isinstance(two["metrics"]["auc"], float) and 0.5 < one["metrics"]["auc"] < 1.0
    assert two["metrics"]["auc"] == pytest.approx(one["metrics"]["auc"], abs=1e-4)
    assert two["metrics"]["domain_auc"].keys() == one["metrics"]["domain_auc"].keys() == {0, 1}
    assert two["checkpoint"].exists() and two["device"]["device"] == "cpu"


@NO_CUDA
def test_nproc_per_node_is_checked_before_launching(folders, tmp_path):
    from orchestration.resources import TrainerResource
    from orchestration.training_launch import run_training

    settings = TrainerResource(device="cuda", nproc_per_node=2)
    with pytest.raises(DeviceUnavailableError, match="CPU-only|no usable GPU"):
        run_training(settings, logging.getLogger("test"), "train", folders["pretrain"], tmp_path)
    assert not (tmp_path / "metrics.json").exists()


# ------------------------------------------------------------------ STAR statistics under DDP

def _sync_worker(rank: int, world: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world)
    try:
        norm = PartitionedNorm(2, 3)
        norm.running_mean.fill_(float(rank))            # each rank saw a different shard
        norm.running_var.fill_(1.0 + 2.0 * rank)
        sync_running_stats(torch.nn.Sequential(norm), DistContext(rank=rank, world=world))
        torch.save({"mean": norm.running_mean, "var": norm.running_var}, f"{folder}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_star_running_statistics_are_averaged_over_ranks(tmp_path):
    torch.multiprocessing.spawn(_sync_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        stats = torch.load(tmp_path / f"rank{rank}.pt")
        torch.testing.assert_close(stats["mean"], torch.full((2, 3), 0.5))
        torch.testing.assert_close(stats["var"], torch.full((2, 3), 2.0))


def test_running_statistics_sync_is_a_no_op_on_one_process():
    norm = PartitionedNorm(2, 3)
    norm.running_mean.fill_(4.0)
    sync_running_stats(norm, DistContext())
    assert torch.equal(norm.running_mean, torch.full((2, 3), 4.0))


# ------------------------------------------------------------------------------------ device checks

@NO_CUDA
def test_train_cli_with_cuda_on_a_machine_without_it_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "models.train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                           "--device", "cuda"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "--device cuda" in lines[0] and "make install ACCEL=cuda" in lines[0]


@NO_CUDA
def test_auto_device_warns_when_a_gpu_is_visible_but_unusable(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (tmp_path / "nvidia0").touch()                    # what a GPU host has in /dev
    with caplog.at_level(logging.WARNING, logger="models.distributed"):
        assert resolve_device("auto", dev_dir=tmp_path) == torch.device("cpu")
    assert "GPU is visible" in caplog.text and "make install ACCEL=cuda" in caplog.text
    info = device_info("auto", torch.device("cpu"), dev_dir=tmp_path)
    assert info["device"] == "cpu" and "nvidia0" in info["warning"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")   # GPUs hidden on purpose: no warning
    assert unused_gpu_warning(tmp_path) is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))   # no nvidia-smi on PATH, no device node: no GPU, no warning
    empty = tmp_path / "empty"
    empty.mkdir()
    assert unused_gpu_warning(empty) is None and "warning" not in device_info("auto", torch.device("cpu"), empty)
    with pytest.raises(DeviceUnavailableError, match="CPU-only|no usable GPU"):
        resolve_device("cuda")


# --------------------------------------------------------------------------------------- checkpoints

def test_checkpoint_schedule_by_wall_time_and_steps():
    now = [0.0]
    every_10s = CheckpointSchedule(every_seconds=10.0, clock=lambda: now[0])
    assert not every_10s.due(1)
    now[0] = 10.5
    assert every_10s.due(2)
    every_10s.saved()
    now[0] = 15.0
    assert not every_10s.due(3)
    polled = CheckpointSchedule(every_seconds=10.0, poll_steps=50, agree=lambda flag: False, clock=lambda: now[0])
    now[0] = 100.0
    assert not polled.due(49) and not polled.due(50)   # rank 0 said no: every rank says no
    assert CheckpointSchedule(every_steps=4).due(8) and not CheckpointSchedule().due(8)


def test_background_writer_saves_a_snapshot_and_surfaces_errors(tmp_path):
    weights = torch.zeros(4)
    writer = BackgroundCheckpointWriter()
    writer.save(tmp_path / "a.pt", {"w": weights, "nested": {"steps": [1, 2]}})
    weights += 1                                   # the next optimiser step, while the write may be in flight
    writer.join()
    saved = torch.load(tmp_path / "a.pt")
    assert torch.equal(saved["w"], torch.zeros(4)) and saved["nested"] == {"steps": [1, 2]}
    (tmp_path / "file").write_text("not a folder")
    writer.save(tmp_path / "file" / "b.pt", {"w": weights})
    with pytest.raises(RuntimeError, match="writing a checkpoint failed"):
        writer.join()


def test_cuda_batch_scaling_keeps_enough_steps_and_scales_lr_by_sqrt():
    from models.engine import scaled_for_batch
    from orchestration.training_launch import MIN_STEPS_PER_EPOCH, cuda_batch_factor

    assert cuda_batch_factor(317_000, 2048) == 1                    # the synthetic default: already ~155 steps/epoch
    assert cuda_batch_factor(3_000_000, 2048) == 8
    assert cuda_batch_factor(2048 * 4 * MIN_STEPS_PER_EPOCH, 2048) == 4
    batch, lr = scaled_for_batch(2048, 2e-3, 4)
    assert batch == 8192 and lr == pytest.approx(4e-3)
