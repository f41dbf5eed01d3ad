"""Jobs are asset selections: the pipeline for a range of days, the daily fine-tune and weekly full retrain that the
schedules (orchestration/schedules.py) run, the source, the slower ablation study, the seed benchmark and the
text-encoder comparison."""
from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from orchestration.assets.ingest import source_data
from orchestration.assets.training import BASELINE_KEYS, pretrained_model
from orchestration.partitions import impression_days

#: Everything downstream of the source, for the partition's day(s).
PIPELINE = (AssetSelection.all() - AssetSelection.assets(source_data)
            - AssetSelection.groups("ablations", "benchmark", "encoders", "behaviour",
                                    "hparam_search"))
#: What only the full retrain rebuilds: pretraining and the baselines (the fine-tune reuses their latest versions).
FULL_RETRAIN_ONLY = AssetSelection.assets(pretrained_model, *BASELINE_KEYS)

#: The pipeline for the partition's day(s): `make run` (a single-run backfill of every day) and UI backfills.
pipeline_job = define_asset_job(
    "pipeline",
    selection=PIPELINE,
    partitions_def=impression_days,
    description="Ingest the partition's day(s), rebuild dbt, features and embeddings, train, evaluate and promote.",
)

#: The daily fine-tune's start: the serving champion on the last week of the cold-start train split (editable in
#: the launchpad; `start_from: pretrained` fine-tunes the latest pretrained model instead).
DAILY_REFRESH = {"start_from": "champion", "window_days": 7}
#: Its run config: the schedule and `run_all --daily` pass it explicitly (a partitioned job's `config` only prefills
#: runs launched without any run config).
DAILY_REFRESH_RUN_CONFIG = {"ops": {"coldstart_model": {"config": DAILY_REFRESH}}}

#: The daily run: the day's data, then refresh the champion on the latest days; no pretraining, no baselines.
finetune_job = define_asset_job(
    "finetune",
    selection=PIPELINE - FULL_RETRAIN_ONLY,
    partitions_def=impression_days,
    config=DAILY_REFRESH_RUN_CONFIG,
    description="Ingest the partition's day, refresh dbt, features and embeddings, continue training the champion on "
                "the last week of cold-start data, evaluate and promote (reuses the pretrained model and baselines).",
)

#: The weekly run: everything in the pipeline, pretraining and baselines included.
full_retrain_job = define_asset_job(
    "full_retrain",
    selection=PIPELINE,
    partitions_def=impression_days,
    description="Ingest the partition's day, then pretrain, fine-tune and train every baseline; evaluate and promote.",
)

#: Writes (or refreshes) the system of record and registers its days as partitions.
source_job = define_asset_job("source", selection=AssetSelection.assets(source_data))

#: The ablation study: trains about a dozen SRF variants, so it is kept out of the default run.
ablations_job = define_asset_job("ablations", selection=AssetSelection.groups("ablations"))

#: Every candidate trained with several seeds (mean ± sd per model and domain): README's results table.
benchmark_job = define_asset_job("benchmark", selection=AssetSelection.groups("benchmark"))

#: SRF on the vectors of each frozen text encoder (MiniLM, MPNet, a decoder LLM): cold-start AUC with CIs per encoder.
encoder_comparison_job = define_asset_job("encoder_comparison", selection=AssetSelection.groups("encoders"))

#: Every model retrained without behaviour sequences, compared with the pipeline's (with) on the cold-start test split.
behaviour_comparison_job = define_asset_job("behaviour_comparison", selection=AssetSelection.groups("behaviour"))

#: The equal-budget hyper-parameter search: the same Optuna trials for every multi-domain model, chosen on validation.
hparam_search_job = define_asset_job("hparam_search", selection=AssetSelection.groups("hparam_search"))
