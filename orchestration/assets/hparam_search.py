"""The equal-budget hyper-parameter search (its own job, outside the default run): models/hparam_search.py."""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from orchestration.assets.features import training_sets
from orchestration.assets.training import run_dir
from orchestration.resources import TrainerResource, UnisrSettings

GROUP = "hparam_search"


class HparamSearchConfig(Config):
    """The budget every model gets alike (models.hparam_search.SearchConfig)."""

    trials_per_model: int = 8
    epochs: int = 2             # pretraining epochs per trial
    finetune_epochs: int = 3    # fine-tuning epochs per trial (objective "coldstart")
    objective: str = "coldstart"   # coldstart (cold-start valid AUC after fine-tuning) | pretrain (pretrain valid AUC)
    freeze: str = "none"        # the fine-tuning freeze level of every trial
    models: list[str] = ["srf", "shared_bottom", "mmoe", "ple", "star"]
    seed: int = 0


@asset(group_name=GROUP, deps=[training_sets],
       description="Equal-budget hyper-parameter search (Optuna TPE, the same trials for every model), chosen on "
                   "validation: all trials and the best per model.")
def equal_budget_hparam_search(context: AssetExecutionContext, config: HparamSearchConfig,
                               settings: UnisrSettings, trainer: TrainerResource) -> MaterializeResult:
    from models.hparam_search import SearchConfig, best_per_model, search, write_defaults, write_report
    from orchestration.training_launch import forward_logs

    paths = settings.paths
    cfg = SearchConfig(trials=config.trials_per_model, epochs=config.epochs, finetune_epochs=config.finetune_epochs,
                       finetune_batch_size=trainer.finetune_batch_size, objective=config.objective,
                       freeze=config.freeze, models=config.models, seed=config.seed, device=trainer.device,
                       num_threads=trainer.num_threads)
    # One run folder per search (asset config + trainer + data): a re-run resumes the studies and trials there.
    studies = run_dir(context, settings, "studies")
    with forward_logs(context.log):
        trials = search(paths.training_dir / "pretrain", paths.training_dir / "coldstart", studies, cfg)
    csv, md = write_report(trials, cfg, paths.reports_dir / "hparam_search")
    # The candidate defaults: adopted by copying to models/tuned_defaults.json in a commit (see that module).
    proposed = write_defaults(trials, cfg, paths.reports_dir / "hparam_search" / "tuned_defaults.json",
                              dataset=settings.dataset)
    best = best_per_model(trials)
    keep = ["model", "value", "lr", "weight_decay", "embedding_weight_decay", "dropout", "hidden", "batch_size"]
    return MaterializeResult(metadata={
        "objective": cfg.objective,
        "trials_per_model": cfg.trials,
        "trials": len(trials),
        "best_per_model": MetadataValue.json(
            {r["model"]: {k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in keep[1:]}
             for r in best.to_dict("records")}),
        "report": MetadataValue.md(md.read_text()),
        "csv": MetadataValue.path(str(csv)),
        "markdown": MetadataValue.path(str(md)),
        "studies": MetadataValue.path(str(studies)),
        "proposed_defaults": MetadataValue.path(str(proposed)),
        **{f"best_{r['model']}": float(r["value"]) for r in best.to_dict("records")},
    })
