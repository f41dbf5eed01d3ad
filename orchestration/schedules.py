"""`daily_retrain`: ingest yesterday's impressions, refresh dbt, features and embeddings, fine-tune, evaluate, promote.

Daily ticks fine-tune from the latest pretrained checkpoint; on the configured weekday the tick retrains
everything (pretraining and baselines included). Both the cron and the weekday are read from the
environment at load time (Dagster fixes a schedule's cron when the code location loads):
`UNISR_RETRAIN_CRON` (default `0 3 * * *`, UTC) and `UNISR_FULL_RETRAIN_WEEKDAY` (0 = Monday … 6; -1 = never).
"""

import os
from datetime import timedelta

from dagster import AssetSelection, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from orchestration.assets.ingest import impression_days
from orchestration.assets.training import BASELINE_KEYS, pretrained_model
from orchestration.jobs import pipeline_job

RETRAIN_CRON = os.environ.get("UNISR_RETRAIN_CRON", "0 3 * * *")
FULL_RETRAIN_WEEKDAY = int(os.environ.get("UNISR_FULL_RETRAIN_WEEKDAY", "6"))

#: Assets a daily (fine-tune only) tick skips: they are rebuilt on the weekly full retrain.
WEEKLY_ONLY = AssetSelection.assets(pretrained_model, *BASELINE_KEYS)


@schedule(job=pipeline_job, cron_schedule=RETRAIN_CRON, execution_timezone="UTC", name="daily_retrain")
def daily_retrain(context: ScheduleEvaluationContext):
    """Run the pipeline for the day before the tick; a full retrain on the weekly day, else fine-tune only."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    if not context.instance.has_dynamic_partition(impression_days.name, day):
        return SkipReason(f"no impressions for {day} in the source yet (materialize `source_data` to register days)")
    full = context.scheduled_execution_time.weekday() == FULL_RETRAIN_WEEKDAY
    selection = None if full else (pipeline_job.selection - WEEKLY_ONLY)
    return RunRequest(
        run_key=f"daily_retrain-{day}",
        partition_key=day,
        asset_selection=None if selection is None else list(selection.resolve(_asset_graph(context))),
        tags={"unisr/retrain": "full" if full else "finetune"},
    )


def _asset_graph(context: ScheduleEvaluationContext):
    from orchestration.definitions import defs

    return defs.resolve_asset_graph()
