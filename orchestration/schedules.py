"""One schedule per retrain job, each for the day before its tick: `daily_finetune` (finetune_job) and
`weekly_full_retrain` (full_retrain_job, pretraining and baselines included).

The crons are read from the environment at load time (Dagster fixes a schedule's cron when the code location
loads), both in UTC: `UNISR_RETRAIN_CRON` (default `0 3 * * *`) and `UNISR_FULL_RETRAIN_CRON` (default
`0 4 * * 0`, Sundays, an hour after that day's fine-tune). A tick whose day has no impressions in the source
yet is skipped with the reason.
"""
from __future__ import annotations

import os
from datetime import timedelta

from dagster import RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from orchestration.jobs import DAILY_REFRESH_RUN_CONFIG, finetune_job, full_retrain_job
from orchestration.partitions import impression_days
from unisr_data.partitions import partition_key_of

RETRAIN_CRON = os.environ.get("UNISR_RETRAIN_CRON", "0 3 * * *")
FULL_RETRAIN_CRON = os.environ.get("UNISR_FULL_RETRAIN_CRON", "0 4 * * 0")


def previous_day_request(context: ScheduleEvaluationContext, kind: str,
                         run_config: dict | None = None) -> RunRequest | SkipReason:
    """A run of the tick's job for the partition holding the day before the tick (the day, or its month for a
    long-span source), or a SkipReason when no partition holds it yet."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    key = partition_key_of(day, [k for k in (day, day[:7])
                                 if context.instance.has_dynamic_partition(impression_days.name, k)])
    if key is None:
        return SkipReason(f"no impressions for {day} in the source yet (materialize `source_data` to register days)")
    return RunRequest(run_key=f"{kind}-{day}", partition_key=key, tags={"unisr/retrain": kind},
                      run_config=run_config or {})


@schedule(job=finetune_job, cron_schedule=RETRAIN_CRON, execution_timezone="UTC", name="daily_finetune")
def daily_finetune(context: ScheduleEvaluationContext):
    """Yesterday's partition: ingest, refresh, continue training the champion on the last week, evaluate, promote."""
    return previous_day_request(context, "finetune", DAILY_REFRESH_RUN_CONFIG)


@schedule(job=full_retrain_job, cron_schedule=FULL_RETRAIN_CRON, execution_timezone="UTC", name="weekly_full_retrain")
def weekly_full_retrain(context: ScheduleEvaluationContext):
    """Yesterday's partition with everything retrained: pretraining, fine-tuning and the baselines."""
    return previous_day_request(context, "full")
