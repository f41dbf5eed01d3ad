"""The one Dagster `Definitions` of unisr."""
from __future__ import annotations

import sys
from pathlib import Path

from dagster import Definitions, load_assets_from_modules, multiprocess_executor
from dagster_dbt import DbtCliResource

from orchestration.assets import (
    ablations,
    behaviour,
    benchmark,
    embeddings,
    encoders,
    evaluation,
    features,
    hparam_search,
    ingest,
    training,
    warehouse,
)
from orchestration.checks.ingest import raw_checks
from orchestration.checks.warehouse import mart_checks
from orchestration.jobs import (
    ablations_job,
    behaviour_comparison_job,
    benchmark_job,
    encoder_comparison_job,
    finetune_job,
    full_retrain_job,
    hparam_search_job,
    pipeline_job,
    source_job,
)
from orchestration.resources import (
    FeastResource,
    TextEncoderResource,
    TrainerResource,
    UnisrSettings,
    WarehouseResource,
)
from orchestration.run_logging import progress_console_logger
from orchestration.schedules import daily_finetune, weekly_full_retrain

#: Modules the step processes of webserver / daemon runs (the daily tick, UI launches) fork from, imported once per
#: run instead of once per step: every step re-imported the code location (~6 s here), and the Feast (~8 s), Great
#: Expectations (~4.5 s) and torch (~2 s) steps their library, for steps whose work is often under a second.
#: Dagster's forkserver start method (multiprocess executor); `make run` executes in process and is unaffected.
FORKSERVER_PRELOAD = ["orchestration.definitions", "pandas", "pyarrow.parquet", "duckdb", "torch", "feast",
                      "great_expectations"]

defs = Definitions(
    assets=load_assets_from_modules([ingest, warehouse, embeddings, features, training, evaluation, ablations,
                                     benchmark, encoders, behaviour, hparam_search]),
    asset_checks=[*raw_checks, *mart_checks(), features.splits_trainable, evaluation.promotion_gate],
    jobs=[source_job, pipeline_job, finetune_job, full_retrain_job, ablations_job, benchmark_job,
          encoder_comparison_job, behaviour_comparison_job, hparam_search_job],
    schedules=[daily_finetune, weekly_full_retrain],
    loggers={"console": progress_console_logger},
    executor=multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": FORKSERVER_PRELOAD}}}),
    resources={
        "settings": UnisrSettings(),
        "warehouse": WarehouseResource(),
        # dbt from this interpreter's environment, whether or not the venv is on PATH.
        "dbt": DbtCliResource(project_dir=warehouse.dbt_project,
                              dbt_executable=str(Path(sys.executable).parent / "dbt")),
        "feast": FeastResource(),
        "text_encoder": TextEncoderResource(),
        "trainer": TrainerResource(),
    },
)
