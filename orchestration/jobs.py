"""Jobs are asset selections: the full pipeline for a range of days, the slower ablation study and seed benchmark."""
from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from orchestration.assets.ingest import impression_days, source_data

#: Everything downstream of the source, for the partition's day(s): the daily retrain and backfills.
pipeline_job = define_asset_job(
    "pipeline",
    selection=AssetSelection.all() - AssetSelection.assets(source_data) - AssetSelection.groups("ablations", "benchmark"),
    partitions_def=impression_days,
    description="Ingest the partition's day(s), rebuild dbt, features and embeddings, train, evaluate and promote.",
)

#: Writes (or refreshes) the system of record and registers its days as partitions.
source_job = define_asset_job("source", selection=AssetSelection.assets(source_data))

#: The ablation study: trains about a dozen SRF variants, so it is kept out of the default run.
ablations_job = define_asset_job("ablations", selection=AssetSelection.groups("ablations"))

#: Every candidate trained with several seeds (mean ± sd per model and domain): README's results table.
benchmark_job = define_asset_job("benchmark", selection=AssetSelection.groups("benchmark"))
