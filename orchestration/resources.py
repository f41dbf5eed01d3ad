"""Dagster resources: where data lives, the Feast store, the text encoder and the trainer settings."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from dagster import ConfigurableResource

from unisr_data.paths import Paths, default_var_dir

Dataset = Literal["synthetic", "movielens", "mind"]


class UnisrSettings(ConfigurableResource):
    """Which dataset the pipeline runs on and where it keeps its files (the one source of storage paths)."""

    dataset: Dataset = "synthetic"
    #: Source folder for real datasets (MovieLens or MIND layout); ignored for synthetic.
    source_path: Optional[str] = None
    #: Root of all pipeline files; default `$UNISR_VAR_DIR` or `<repo>/var`.
    var_dir: Optional[str] = None
    #: Share of quarantined rows in any raw table above which the blocking check fails.
    max_quarantine_share: float = 0.05
    #: Share of rejected rows in any one source file of a real dataset above which the blocking check fails.
    max_rejected_share: float = 0.01
    #: Share of items without text above which the blocking check fails; None = the dataset's default
    #: (unisr_data.sanity.MAX_ITEMS_WITHOUT_TEXT).
    max_items_without_text_share: Optional[float] = None
    #: Event times before this ISO date, or later than load time + `max_future_days`, are time_out_of_range.
    earliest_event_time: str = "1990-01-01"
    max_future_days: float = 1.0
    #: A challenger replaces the champion only when the lower bound of the paired 95 % CI of
    #: (challenger − champion) validation AUC is above this (0 = significantly better).
    promotion_tolerance: float = 0.0
    #: `splits_trainable` fails a training split with fewer rows or clicks than these.
    min_split_rows: int = 50
    min_split_clicks: int = 5

    @property
    def paths(self) -> Paths:
        return Paths(Path(self.var_dir) if self.var_dir else default_var_dir(), self.dataset)

    def time_window(self):
        """The plausible event-time window (unisr_data.sanity.EventTimeWindow), evaluated at load time."""
        from unisr_data.sanity import EventTimeWindow

        return EventTimeWindow.from_settings(self.earliest_event_time, self.max_future_days)


class WarehouseResource(ConfigurableResource):
    """The embedded DuckDB warehouse dbt builds into (one file per dataset, from `UnisrSettings.paths`)."""

    threads: int = 2
    memory_limit: str = "4GB"

    def connect(self, paths: Paths, read_only: bool = True):
        import duckdb

        if not paths.warehouse.exists():
            raise FileNotFoundError(f"warehouse {paths.warehouse} does not exist yet: materialize the dbt assets first")
        return duckdb.connect(
            str(paths.warehouse),
            read_only=read_only,
            config={"threads": self.threads, "memory_limit": self.memory_limit},
        )


class FeastResource(ConfigurableResource):
    """The Feast feature store of the current dataset: SQLite online store by default, Redis by switch."""

    online: Literal["sqlite", "redis"] = "sqlite"
    #: `host:port[,db=N][,password=…]` when `online == "redis"`.
    redis_connection: Optional[str] = None

    def store(self, paths: Paths):
        from features.store import feature_store

        return feature_store(paths, online=self.online, redis_connection=self.redis_connection)


class TextEncoderResource(ConfigurableResource):
    """The frozen language model that embeds item and query texts (MiniLM-L6 from a local package by default)."""

    model: Optional[str] = None
    pooling: Literal["mean", "cls", "last-token"] = "mean"
    #: A named encoder (embeddings.model_source.ENCODERS: minilm, mpnet, smollm2) instead of `model` + `pooling`;
    #: mpnet and smollm2 need `make install-encoders`.
    encoder_name: Optional[str] = None
    max_length: int = 128
    batch_size: int = 256
    device: str = "auto"

    def encoder(self):
        if self.encoder_name:
            return self.named_encoder(self.encoder_name)
        from embeddings.encoder import TextEncoder

        return TextEncoder(
            self.model, pooling=self.pooling, max_length=self.max_length, batch_size=self.batch_size, device=self.device
        )

    def named_encoder(self, name: str):
        """The named encoder `name` (its packaged folder and pooling) with this resource's max_length, batch_size and
        device; embeddings.model_source.EncoderNotInstalled when its package is missing."""
        from embeddings.encoder import TextEncoder
        from embeddings.model_source import resolve_encoder

        resolved = resolve_encoder(name)
        return TextEncoder(resolved.folder, pooling=resolved.pooling, max_length=self.max_length,
                           batch_size=self.batch_size, device=self.device)


class TrainerResource(ConfigurableResource):
    """How training runs: device, multi-GPU launch with torchrun, and the default budget."""

    device: str = "auto"
    #: >1 launches `torchrun --nproc_per_node N` (DDP) instead of training in-process.
    nproc_per_node: int = 1
    #: Pretraining epochs: with the trainer's embedding weight decay (models.engine.TrainConfig) SRF's validation AUC
    #: on the synthetic default is 0.825 / 0.843 / 0.844 after epochs 1 / 2 / 3, so the 3rd buys little; early
    #: stopping keeps the best validation.
    epochs: int = 2
    batch_size: int = 2048
    #: The cold-start data is small: smaller batches and more epochs (with early stopping on valid AUC).
    finetune_epochs: int = 8
    finetune_batch_size: int = 256
    patience: int = 2
    num_threads: int = 0
    #: Seed of initialisation and batch order (the seed benchmark trains with several).
    seed: int = 0
    #: Retention: run folders (checkpoints, last.pt) kept per training asset, most recently used first; older ones
    #: are deleted after each training asset, except those the model registry needs (models/run_folders.py).
    run_folders_kept: int = 3

    def train(self, log, data_dir: Path, out_dir: Path, model: str, model_kwargs: dict, epochs: int = 0,
              small_data: bool = False) -> dict:
        """Train `model` on a training folder; returns {"checkpoint": Path, "metrics": dict}."""
        from orchestration.training_launch import run_training

        return run_training(self, log, "train", data_dir, out_dir, model=model, model_kwargs=model_kwargs,
                            epochs=epochs, small_data=small_data)

    def finetune(self, log, data_dir: Path, pretrained: Path, out_dir: Path, freeze: str, epochs: int = 0,
                 init_from: str = "closest", window_days: float = 0.0) -> dict:
        """Fine-tune a pretrained checkpoint for the cold-start domain; returns {"checkpoint", "metrics", "freeze",
        "levels", "device"}.

        `freeze="auto"` fine-tunes each of models.finetune.AUTO_FREEZE_LEVELS into OUT/<level>/ and keeps the best
        by *validation* AUC (models.finetune.best_freeze_level; model selection never looks at the test split);
        the metrics record every level's validation AUC, "levels" every level's result.
        `init_from="keep"` with `window_days=W` is the daily refresh: continue training an already fine-tuned
        checkpoint (the champion) on the last W days of the cold-start train split.
        """
        from orchestration.training_launch import run_training

        return run_training(self, log, "finetune", data_dir, out_dir, pretrained=pretrained, freeze=freeze,
                            epochs=epochs, small_data=True, init_from=init_from, window_days=window_days)
