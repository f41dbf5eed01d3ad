"""Features: Feast apply, online materialization, and point-in-time training sets."""

import time
from datetime import datetime, timedelta, timezone

from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult, MetadataValue, asset, asset_check

from orchestration.assets.embeddings import text_embeddings
from orchestration.assets.warehouse import mart_exports
from orchestration.partitions import run_landed_days
from orchestration.resources import FeastResource, UnisrSettings

GROUP = "features"


def latest_feature_time(paths) -> datetime:
    """Just after the newest feature row, so materialization loads every row the marts hold."""
    import duckdb

    tables = [paths.marts_dir / f"{t}_features.parquet" for t in ("user", "item", "query")]
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        stamps = [con.execute("SELECT max(event_timestamp) FROM read_parquet(?)", [str(t)]).fetchone()[0]
                  for t in tables]
    stamps = [s if s.tzinfo else s.replace(tzinfo=timezone.utc) for s in stamps if s is not None]  # empty views: None
    if not stamps:
        raise ValueError(f"no feature rows in {paths.marts_dir}: nothing to materialize")
    return max(stamps) + timedelta(seconds=1)


@asset(
    group_name=GROUP,
    deps=[mart_exports, text_embeddings],
    description="`feast apply`: entities user/item/query and their ID, sparse and text-embedding feature views.",
)
def feast_registry(context: AssetExecutionContext, settings: UnisrSettings, feast: FeastResource) -> MaterializeResult:
    from features.store import apply

    paths = settings.paths
    store = feast.store(paths)
    applied = apply(store, paths)
    return MaterializeResult(
        metadata={
            "registry": MetadataValue.path(str(paths.feast_dir / "registry.db")),
            "online_store": feast.online,
            "objects": MetadataValue.json(sorted(applied)),
        }
    )


@asset(
    group_name=GROUP,
    deps=[feast_registry],
    description="Feature values materialized into the Feast online store for ranking: each view from where its "
                "last materialization ended (from the run's first day if that is earlier); all history the first "
                "time and outside a partitioned run.",
)
def online_features(context: AssetExecutionContext, settings: UnisrSettings, feast: FeastResource) -> MaterializeResult:
    from features.store import EPOCH, materialize, materialize_incremental

    paths = settings.paths
    store = feast.store(paths)
    end = latest_feature_time(paths)
    days = run_landed_days(context, paths)
    if days is None:  # a run outside the partitioned jobs may follow a full dbt build: reload everything
        loaded = {view: {"mode": "full", "start": EPOCH.isoformat(), "end": end.isoformat(), "entities": n}
                  for view, n in materialize(store, end=end).items()}
    else:
        since = datetime.fromisoformat(days[0]).replace(tzinfo=timezone.utc) if days else None
        loaded = materialize_incremental(store, end=end, since=since)
    context.log.info(f"materialized up to {end}: {loaded}")
    return MaterializeResult(
        metadata={"end": end.isoformat(), "online_store": feast.online, "loaded": MetadataValue.json(loaded),
                  "written": MetadataValue.json({view: v["entities"] for view, v in loaded.items()})}
    )


@asset(
    group_name=GROUP,
    deps=[feast_registry, online_features],
    # After online_features, not beside it: Feast (0.67) marks a view MATERIALIZING while it loads the online store
    # and refuses historical retrieval from it meanwhile (a race the daily tick's end-to-end test hit).
    description="Training folders (pretrain; cold-start train/valid/test) from Feast point-in-time historical "
                "retrieval, joined per impression day: a partitioned run joins its days (and any later), reuses "
                "the others from the day cache, and rewrites only the changed day parts of each split folder; a "
                "run outside the partitioned jobs rebuilds all.",
)
def training_sets(context: AssetExecutionContext, settings: UnisrSettings, feast: FeastResource) -> MaterializeResult:
    from features.training_set import build_training_folder

    paths = settings.paths
    store = feast.store(paths)
    days = run_landed_days(context, paths)
    started = time.perf_counter()
    counts = {
        name: build_training_folder(store, paths, name, paths.training_dir / name, days=days, refresh=days is None)
        for name in ("pretrain", "coldstart")
    }
    context.log.info(f"training sets: {counts}; joined days: { {n: c.days.joined for n, c in counts.items()} }")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(paths.training_dir)),
            **{f"rows_{name}_{split}": int(n) for name, splits in counts.items() for split, n in splits.items()},
            **{f"days_joined_{name}": len(c.days.joined) for name, c in counts.items()},
            **{f"days_reused_{name}": len(c.days.reused) for name, c in counts.items()},
            **{f"day_parts_written_{name}": int(sum(c.days.parts_written.values())) for name, c in counts.items()},
            "seconds": round(time.perf_counter() - started, 2),
        }
    )


@asset_check(
    asset=training_sets,
    name="splits_trainable",
    blocking=True,
    description="Every split of every training folder has rows and both labels, so no model trains on nothing.",
)
def splits_trainable(settings: UnisrSettings) -> AssetCheckResult:
    from features.training_set import split_label_counts

    problems, stats = [], {}
    for folder in ("pretrain", "coldstart"):
        for split in ("train", "valid", "test") if folder == "coldstart" else ("train", "valid"):
            rows, positives = split_label_counts(settings.paths.training_dir / folder / f"{split}.parquet")
            stats[f"{folder}_{split}_rows"] = rows
            stats[f"{folder}_{split}_positives"] = positives
            if rows < settings.min_split_rows or positives < settings.min_split_clicks or positives == rows:
                problems.append(f"{folder}/{split}: {rows} rows, {positives} clicks (need ≥ {settings.min_split_rows} "
                                f"rows, ≥ {settings.min_split_clicks} clicks and some non-clicks)")
    return AssetCheckResult(
        passed=not problems,
        description="; ".join(problems) or None,
        metadata=stats,
    )
