"""Training: pretrain the S&R foundation model on all pretrain domains, fine-tune it for the cold-start domain,
and train the multi-domain baselines on the same data; every model version goes to the registry."""

from pathlib import Path
from typing import Literal

from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, MetadataValue, asset

from models.model_registry import ModelRegistry, file_digest
from orchestration.assets.features import training_sets
from orchestration.lineage import code_version, data_version
from orchestration.materializations import recorded_path
from orchestration.resources import TrainerResource, UnisrSettings

GROUP = "training"
BASELINES = ("shared_bottom", "mmoe", "ple", "star")


class ModelConfig(Config):
    """The S&R foundation model's switches (the ablation study varies them)."""

    gating: str = "domain"  # mean | cls | domain
    divergence: str = "js"  # js | mmd | none
    use_text: bool = True
    use_behaviour: bool = True  # user behaviour sequences (every baseline reads them too)
    epochs: int = 0  # 0 = the trainer resource's default


class FinetuneAssetConfig(Config):
    """Cold-start fine-tuning: which levels stay frozen (auto | L0 | L0+L1 | none) and for how long.

    `auto` picks the level by validation AUC for each model alike (the paper found L0/L1 frozen best on Alipay;
    on our synthetic data full fine-tuning wins on validation, so the choice is made per run, not assumed).
    """

    freeze: str = "auto"
    epochs: int = 0


class ColdstartConfig(FinetuneAssetConfig):
    """Where the cold-start fine-tune starts. `pretrained` (the pipeline and the weekly full retrain): the latest
    pretrained model, every freeze level tried. `champion` (the daily fine-tune): the serving version, whichever model
    it is, continues training with its own frozen levels on the last `window_days` days of the cold-start train split
    (models/champion_refresh.py); before the first promotion it falls back to `pretrained`."""

    start_from: Literal["pretrained", "champion"] = "pretrained"
    window_days: int = 7


#: TrainerResource fields that do not change what is trained (left out of the run folder's key).
KEY_FREE_TRAINER_FIELDS = ("run_folders_kept",)


def runs_root(settings: UnisrSettings) -> Path:
    return settings.paths.models_dir / "runs"


def run_dir(context: AssetExecutionContext, settings: UnisrSettings, name: str, extra: dict | None = None) -> Path:
    """`models/<dataset>/runs/<asset>/<key>/<name>`: the same work (asset, partition, its config, the trainer's
    config, the training folders' content and `extra` inputs such as an upstream checkpoint's digest) always gets
    the same folder, so a re-run after a crash resumes from its last.pt (models/run_folders.py)."""
    from models.run_folders import tree_digest, work_folder
    from models.tuned_defaults import digest as tuned_digest

    trainer = getattr(context.resources, "trainer", None)
    inputs = {
        "asset": context.asset_key.to_user_string(),
        "partition": context.partition_key if context.has_partition_key else None,
        "config": context.op_execution_context.op_config or {},
        "trainer": ({k: v for k, v in trainer.model_dump().items() if k not in KEY_FREE_TRAINER_FIELDS}
                    if trainer else {}),
        "training_data": tree_digest(settings.paths.training_dir),
        "tuned_defaults": tuned_digest(),
        **(extra or {}),
    }
    return work_folder(runs_root(settings), context.asset_key.to_user_string(), inputs) / name


def collect_run_folders(context: AssetExecutionContext, settings: UnisrSettings, trainer: TrainerResource) -> None:
    """Retention: keep the `trainer.run_folders_kept` most recently used run folders of each asset, and any the
    model registry needs (models/run_folders.py); log what was deleted."""
    from models.run_folders import collect_garbage, registry_references

    removed = collect_garbage(runs_root(settings), trainer.run_folders_kept,
                              registry_references(settings.paths.registry_dir))
    if removed:
        context.log.info(f"deleted {len(removed)} old run folder(s) (keeping {trainer.run_folders_kept} per asset): "
                         + ", ".join(str(p) for p in removed))


def latest_checkpoint(context: AssetExecutionContext, key: AssetKey) -> Path:
    """The checkpoint recorded by the latest materialization of `key` (lineage through Dagster's event log)."""
    return recorded_path(context.instance, key, "checkpoint")


def register(settings: UnisrSettings, name: str, checkpoint: Path, metrics: dict, config: dict):
    """Register a trained candidate (every model is a challenger for serving); returns its ModelVersion."""
    paths = settings.paths
    return ModelRegistry(paths.registry_dir).register(
        checkpoint, name=name, config={**config, "run_checkpoint": str(checkpoint)}, data_version=data_version(paths),
        code_version=code_version(),
        metrics={"coldstart_valid_auc": metrics.get("auc")},
    )


def metrics_metadata(metrics: dict, prefix: str = "") -> dict:
    """Flat float metadata for every scalar metric (Dagster plots these across materializations)."""
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _srf_kwargs(config: ModelConfig) -> dict:
    return {"gating": config.gating, "divergence": config.divergence, "use_text": config.use_text,
            "use_behaviour": config.use_behaviour}


@asset(group_name=GROUP, deps=[training_sets],
       description="The S&R foundation model pretrained on all pretrain domains.")
def pretrained_model(
    context: AssetExecutionContext, config: ModelConfig, settings: UnisrSettings, trainer: TrainerResource
) -> MaterializeResult:
    paths = settings.paths
    out = run_dir(context, settings, "pretrained_srf")
    result = trainer.train(context.log, paths.training_dir / "pretrain", out, "srf", _srf_kwargs(config), config.epochs)
    collect_run_folders(context, settings, trainer)
    return MaterializeResult(
        metadata={
            "checkpoint": MetadataValue.path(str(result["checkpoint"])),
            "model_config": MetadataValue.json(_srf_kwargs(config)),
            "device": MetadataValue.json(result.get("device", {})),
            **metrics_metadata(result["metrics"], "valid_"),
            "samples_per_s": (float(result["metrics"]["curve"][-1]["samples_per_s"])
                              if result["metrics"]["curve"] else 0.0),
        }
    )


def _from_pretrained(context, settings: UnisrSettings, trainer: TrainerResource, config: ColdstartConfig):
    """SRF fine-tuned from the latest pretrained model: (registry name, result, card config, metadata)."""
    pretrained = latest_checkpoint(context, pretrained_model.key)
    out = run_dir(context, settings, "coldstart_srf",
                  {"pretrained": str(pretrained), "pretrained_sha256": file_digest(pretrained)})
    result = trainer.finetune(context.log, settings.paths.training_dir / "coldstart", pretrained, out, config.freeze,
                              config.epochs)
    card = {"freeze": result["freeze"], "freeze_config": config.freeze, "pretrained": str(pretrained)}
    return "srf", result, card, {"pretrained_from": MetadataValue.path(str(pretrained)), "started_from": "pretrained"}


def _from_champion(context, settings: UnisrSettings, trainer: TrainerResource, config: ColdstartConfig, start):
    """The champion (a models.champion_refresh.RefreshStart) trained on the trailing window."""
    out = run_dir(context, settings, f"refresh_{start.name}", {"champion": start.version})
    context.log.info(f"refreshing the champion {start.version} on the last {config.window_days} day(s), "
                     f"frozen: {start.freeze}")
    result = trainer.finetune(context.log, settings.paths.training_dir / "coldstart", start.checkpoint, out,
                              start.freeze, config.epochs, init_from="keep", window_days=config.window_days)
    extra = {"started_from": start.version, "window_days": config.window_days}
    if start.pretrained:
        extra["pretrained_from"] = MetadataValue.path(start.pretrained)
    return start.name, result, start.registry_config(config.window_days), extra


@asset(
    group_name=GROUP,
    # training_sets too: the daily `finetune` job leaves pretrained_model out, and must still train on the new day
    deps=[pretrained_model, training_sets],
    description="The cold-start model: the pretrained model fine-tuned with the configured levels frozen, or (daily) "
                "the champion refreshed on the latest days; registered.",
)
def coldstart_model(
    context: AssetExecutionContext, config: ColdstartConfig, settings: UnisrSettings, trainer: TrainerResource
) -> MaterializeResult:
    from models.champion_refresh import refresh_start

    start = refresh_start(ModelRegistry(settings.paths.registry_dir)) if config.start_from == "champion" else None
    if config.start_from == "champion" and start is None:
        context.log.info("no champion yet: fine-tuning the latest pretrained model instead")
    name, result, card, extra = (_from_champion(context, settings, trainer, config, start) if start
                                 else _from_pretrained(context, settings, trainer, config))
    version = register(settings, name, result["checkpoint"], result["metrics"], card)
    collect_run_folders(context, settings, trainer)
    return MaterializeResult(
        metadata={
            "checkpoint": MetadataValue.path(version.checkpoint),
            "version": version.version,
            "model": name,
            "freeze": result["freeze"],
            "device": MetadataValue.json(result.get("device", {})),
            **extra,
            **metrics_metadata(result["metrics"], "valid_"),
        }
    )


def _baseline_asset(name: str):
    @asset(
        name=f"baseline_{name}",
        group_name=GROUP,
        deps=[training_sets],
        description=f"Baseline {name}: pretrained on the pretrain domains, fine-tuned on the cold-start domain.",
    )
    def baseline(
        context: AssetExecutionContext, config: FinetuneAssetConfig, settings: UnisrSettings, trainer: TrainerResource
    ) -> MaterializeResult:
        paths = settings.paths
        pre = trainer.train(
            context.log, paths.training_dir / "pretrain", run_dir(context, settings, f"pretrained_{name}"), name, {}, 0
        )
        fine = trainer.finetune(
            context.log, paths.training_dir / "coldstart", pre["checkpoint"],
            run_dir(context, settings, f"coldstart_{name}"), config.freeze, config.epochs,
        )
        version = register(settings, name, fine["checkpoint"], fine["metrics"],
                           {"freeze": fine["freeze"], "freeze_config": config.freeze,
                            "pretrained": str(pre["checkpoint"])})
        collect_run_folders(context, settings, trainer)
        return MaterializeResult(
            metadata={
                "checkpoint": MetadataValue.path(version.checkpoint),
                "version": version.version,
                "pretrained_checkpoint": MetadataValue.path(str(pre["checkpoint"])),
                "freeze": fine["freeze"],
                "device": MetadataValue.json(fine.get("device", {})),
                **metrics_metadata(fine["metrics"], "valid_"),
            }
        )

    return baseline


@asset(
    group_name=GROUP,
    deps=[training_sets],
    description="Single-domain DNN trained from scratch on the cold-start data only (the no-transfer reference).",
)
def baseline_scratch_dnn(
    context: AssetExecutionContext, settings: UnisrSettings, trainer: TrainerResource
) -> MaterializeResult:
    paths = settings.paths
    result = trainer.train(
        context.log, paths.training_dir / "coldstart", run_dir(context, settings, "scratch_dnn"), "dnn", {}, 0,
        small_data=True,
    )
    version = register(settings, "scratch_dnn", result["checkpoint"], result["metrics"], {"freeze": "scratch"})
    collect_run_folders(context, settings, trainer)
    return MaterializeResult(
        metadata={"checkpoint": MetadataValue.path(version.checkpoint), "version": version.version,
                  **metrics_metadata(result["metrics"], "valid_")}
    )


baseline_assets = [_baseline_asset(name) for name in BASELINES]
BASELINE_KEYS = [a.key for a in baseline_assets] + [baseline_scratch_dnn.key]

