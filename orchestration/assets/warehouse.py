"""Warehouse: the dbt-duckdb project as Dagster assets (dbt tests become asset checks), and the mart exports."""

import json
import os
from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.partitions import covers_all, run_partition_keys
from orchestration.resources import UnisrSettings
from unisr_data.child_processes import write_exec_wrapper
from unisr_data.paths import REPO_ROOT, Paths

GROUP = "warehouse"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _project_files_newer_than(path) -> bool:
    stamp = path.stat().st_mtime
    files = [DBT_PROJECT_DIR / "dbt_project.yml", *(f for d in ("models", "tests", "macros")
                                                     for f in (DBT_PROJECT_DIR / d).rglob("*") if f.is_file())]
    return any(f.stat().st_mtime > stamp for f in files)


def ensure_manifest() -> None:
    """Parse the dbt project if its manifest is missing or older than a project file: dagster-dbt builds the asset
    graph from it, and a stale one names tests that no longer exist (a KeyError when dbt runs the renamed one)."""
    if dbt_project.manifest_path.exists() and not _project_files_newer_than(dbt_project.manifest_path):
        return
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"]
    )
    if not result.success:
        raise RuntimeError(f"`dbt parse` failed in {DBT_PROJECT_DIR}: {result.exception}")


ensure_manifest()


class UnisrDbtTranslator(DagsterDbtTranslator):
    """dbt models land in the `warehouse` group; the `raw` source maps to the ingest stage's `raw/<table>` assets."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey(["raw", dbt_resource_props["name"]])
        return AssetKey(dbt_resource_props["name"])


def tied_dbt(dbt: DbtCliResource, paths: Paths) -> DbtCliResource:
    """`dbt` whose subprocess dies with this process: its executable goes through a wrapper that asks the kernel
    for SIGKILL when the run dies (unisr_data/child_processes.py), so a `kill -9` leaves no `dbt build` behind."""
    wrapper = write_exec_wrapper(paths.root / "bin" / "dbt", dbt.dbt_executable)
    return dbt.model_copy(update={"dbt_executable": str(wrapper)})


#: Jobs whose window builds still test every row (the weekly full retrain); other window builds test the rows they
#: rebuilt (dbt_project/macros/tested_rows.sql).
TEST_EVERY_ROW_JOBS = ("full_retrain",)


def dbt_build_args(paths: Paths, keys: list[str] | None, test_every_row: bool = False) -> list[str]:
    """The `dbt build` arguments of a run over partition `keys` (days or months; None: an unpartitioned run):
    the keys' day window when they leave out some landed day, else a `--full-refresh` build over every day.
    A window build's data tests read the rows it rebuilt, or every row with `test_every_row`."""
    from unisr_data.landing import landed_days
    from unisr_data.partitions import days_of
    from unisr_data.warehouse import dbt_vars

    raw_days = landed_days(paths.raw_dir)
    if covers_all(None if keys is None else days_of(keys, raw_days), raw_days):
        return ["build", "--full-refresh", "--vars", json.dumps(dbt_vars(paths))]
    scope = {"test_scope": "all"} if test_every_row else {}
    return ["build", "--vars", json.dumps(dbt_vars(paths, days=keys, **scope))]


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=UnisrDbtTranslator())
def warehouse_models(context: AssetExecutionContext, dbt: DbtCliResource, settings: UnisrSettings):
    """`dbt build`: staging and marts in DuckDB, with their YAML and row-conservation tests.

    A run over some of the landed days (a daily tick, a range backfill) rebuilds the incremental models for its
    day window only (dbt_project/macros/day_window.sql) and tests the rows it rebuilt, except in the weekly full
    retrain, which tests every row; a run over every landed day, or an unpartitioned one, rebuilds everything with
    `--full-refresh`.
    """
    paths = settings.paths
    paths.warehouse.parent.mkdir(parents=True, exist_ok=True)
    # This multi-asset is unpartitioned inside a partitioned job: the run's tags name its partition keys.
    args = dbt_build_args(paths, run_partition_keys(context), context.run.job_name in TEST_EVERY_ROW_JOBS)
    context.log.info(f"dbt {' '.join(args)}")
    # The dbt subprocess reads the warehouse file from the environment (profiles.yml).
    os.environ["UNISR_WAREHOUSE"] = str(paths.warehouse)
    yield from tied_dbt(dbt, paths).cli(args, context=context).stream()


def mart_keys() -> list[AssetKey]:
    from unisr_data.warehouse import MARTS

    return [AssetKey(name) for name in MARTS]


@asset(
    group_name=GROUP,
    deps=mart_keys(),
    description="The dbt marts exported to parquet: the files Feast's sources and the embedding stage read.",
)
def mart_exports(context: AssetExecutionContext, settings: UnisrSettings) -> MaterializeResult:
    from unisr_data.warehouse import export_marts

    paths = settings.paths
    counts = export_marts(paths)
    context.log.info(f"exported marts: {counts}")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(paths.marts_dir)),
            "dagster/row_count": int(sum(counts.values())),
            **{f"rows_{name}": int(n) for name, n in counts.items()},
        }
    )
