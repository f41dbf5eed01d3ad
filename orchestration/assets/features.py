"""Features: Feast apply, online materialization, and point-in-time training sets."""

from datetime import datetime, timedelta, timezone

from dagster import AssetCheckResult, AssetExecutionContext, MaterializeResult, MetadataValue, asset, asset_check

from orchestration.assets.embeddings import text_embeddings
from orchestration.assets.warehouse import mart_exports
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
    description="Feature values materialized into the Feast online store for ranking.",
)
def online_features(context: AssetExecutionContext, settings: UnisrSettings, feast: FeastResource) -> MaterializeResult:
    from features.store import materialize

    paths = settings.paths
    store = feast.store(paths)
    end = latest_feature_time(paths)
    written = materialize(store, end=end)
    context.log.info(f"materialized up to {end}: {written}")
    return MaterializeResult(
        metadata={"end": end.isoformat(), "online_store": feast.online, "written": MetadataValue.json(written)}
    )


@asset(
    group_name=GROUP,
    deps=[feast_registry],
    description="Training folders (pretrain; cold-start train/valid/test) from Feast point-in-time historical "
                "retrieval.",
)
def training_sets(context: AssetExecutionContext, settings: UnisrSettings, feast: FeastResource) -> MaterializeResult:
    from features.training_set import build_training_folder

    paths = settings.paths
    store = feast.store(paths)
    counts = {
        name: build_training_folder(store, paths, name, paths.training_dir / name) for name in ("pretrain", "coldstart")
    }
    context.log.info(f"training sets: {counts}")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(paths.training_dir)),
            **{f"rows_{name}_{split}": int(n) for name, splits in counts.items() for split, n in splits.items()},
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
