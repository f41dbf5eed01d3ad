"""The ablation study (its own job, so the default run stays short): text on/off, gating, divergence, freezing."""

import pandas as pd
from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset

from orchestration.assets.features import training_sets
from orchestration.assets.training import latest_checkpoint, pretrained_model, run_dir
from orchestration.resources import TrainerResource, UnisrSettings

GROUP = "ablations"
DEFAULT = {"gating": "domain", "divergence": "js", "use_text": True, "use_behaviour": True}
#: (study, variant label, SRF kwargs changed from the default)
MODEL_VARIANTS = [
    ("text", "no text", {"use_text": False}),
    ("behaviour", "no behaviour", {"use_behaviour": False}),
    ("gating", "mean", {"gating": "mean"}),
    ("gating", "cls", {"gating": "cls"}),
    ("divergence", "mmd", {"divergence": "mmd"}),
    ("divergence", "none", {"divergence": "none"}),
]


class AblationConfig(Config):
    epochs: int = 0  # 0 = the trainer resource's default


@asset(
    group_name=GROUP,
    deps=[training_sets, pretrained_model],
    description="Cold-start test metrics of SRF variants: no text; no behaviour; mean/cls/domain gating; js/mmd/none; "
                "freeze levels.",
)
def ablation_study(
    context: AssetExecutionContext, config: AblationConfig, settings: UnisrSettings, trainer: TrainerResource
) -> MaterializeResult:
    from models.evaluate import evaluate
    from reporting.evaluation_report import markdown_table

    paths = settings.paths
    pre_dir, cold_dir = paths.training_dir / "pretrain", paths.training_dir / "coldstart"
    default_pretrained = latest_checkpoint(context, pretrained_model.key)
    rows = []

    def record(study: str, variant: str, checkpoint) -> None:
        result = evaluate(checkpoint, cold_dir, split="test")
        rows.append({"study": study, "variant": variant,
                     **{k: result.get(k) for k in ("auc", "new_item_auc", "gauc", "pvctr@1")}})
        context.log.info(f"ablation {study}={variant}: AUC {result.get('auc'):.4f}")

    # freeze="auto" fine-tunes every level (the freeze study) and picks the default pipeline's level by valid AUC
    auto = trainer.finetune(context.log, cold_dir, default_pretrained, run_dir(context, settings, "ablation_freeze"),
                            "auto", config.epochs)
    for level, fine in auto["levels"].items():
        record("freeze", level, fine["checkpoint"])
    scratch = trainer.finetune(context.log, cold_dir, default_pretrained,
                               run_dir(context, settings, "ablation_freeze_scratch"), "scratch", config.epochs)
    record("freeze", "scratch", scratch["checkpoint"])
    # the other studies are compared to the level the default pipeline would pick
    default_row = next(r for r in rows if r["study"] == "freeze" and r["variant"] == auto["freeze"])
    rows.append({**default_row, "study": "gating", "variant": "domain (default)"})
    rows.append({**default_row, "study": "divergence", "variant": "js (default)"})
    rows.append({**default_row, "study": "text", "variant": "with text (default)"})
    rows.append({**default_row, "study": "behaviour", "variant": "with behaviour (default)"})
    for study, variant, change in MODEL_VARIANTS:
        name = f"ablation_{study}_{variant.replace(' ', '_')}"
        pre = trainer.train(context.log, pre_dir, run_dir(context, settings, name + "_pre"), "srf",
                            {**DEFAULT, **change}, config.epochs)
        fine = trainer.finetune(context.log, cold_dir, pre["checkpoint"], run_dir(context, settings, name), "auto",
                                config.epochs)
        record(study, variant, fine["checkpoint"])

    table = pd.DataFrame(rows).sort_values(["study", "variant"]).reset_index(drop=True)
    out_dir = paths.reports_dir / context.run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "ablations.csv", index=False)
    (out_dir / "ablations.md").write_text("# Ablations (cold-start test split)\n\n" + markdown_table(table) + "\n")
    return MaterializeResult(
        metadata={"table": MetadataValue.md(markdown_table(table)),
                  "csv": MetadataValue.path(str(out_dir / "ablations.csv"))}
    )
