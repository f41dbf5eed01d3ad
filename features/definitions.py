"""Entities, sources, feature views and feature services of unisr, built for any `Paths`."""
from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.data_format import ParquetFormat
from feast.types import Array, Bool, Float32, Float64, Int64, String
from feast.value_type import ValueType

from unisr_data.paths import Paths

PROJECT = "unisr"

# Sparse rows are written daily while an entity is active and stop 7 days after its last impression; the
# categoricals stay true for far longer, so a dormant entity keeps them (its 7-day counts are then stale).
SPARSE_TTL = timedelta(days=30)
# Frozen text embeddings never expire (timedelta(0) = no TTL in Feast).
EMBEDDING_TTL = timedelta(0)

USER_FEATURES = {
    "user_age_bucket": String, "user_gender": String, "user_segment": String,
    "user_impr_7d": Int64, "user_clicks_7d": Int64, "user_ctr_7d": Float64,
}
ITEM_FEATURES = {
    "item_category": String, "item_subcategory": String, "item_has_text": Bool, "item_age_days": Float64,
    "item_impr_7d": Int64, "item_clicks_7d": Int64, "item_ctr_7d": Float64,
}
QUERY_FEATURES = {"query_impr_7d": Int64, "query_clicks_7d": Int64, "query_ctr_7d": Float64}
#: The user's behaviour before the day of the row (dbt mart user_behaviour): list-typed, most recent first.
BEHAVIOUR_FEATURES = {
    "beh_item_ids": Array(String), "beh_item_domains": Array(Int64), "beh_click_times": Array(Int64),
    "beh_query_ids": Array(String), "beh_clicks": Int64,
    "beh_categories": Array(String), "beh_category_clicks": Array(Int64),
    "beh_domains": Array(Int64), "beh_domain_clicks": Array(Int64),
}
BEHAVIOUR_VIEW = "user_behaviour"
# The mart writes a snapshot at 00:00 of every day the user has an impression (and of the window + 1 days after), so
# every sample finds its exact snapshot at most a day back: a one-day TTL. It bounds Feast's point-in-time join, which
# pairs each sample with every row of its user inside the TTL (no TTL: every earlier row, O(rows x days)). Offline, a
# time more than a day after a dormant user's last row gets no snapshot; online reads do not apply the TTL (Feast
# checks it only offline), so `rank()` keeps serving a dormant user's last snapshot, which is exact: nothing happened.
BEHAVIOUR_TTL = timedelta(days=1)

# view name -> (entity name, join key, {feature: feast type})
SPARSE_VIEWS = {
    "user_features": ("user", "user_id", USER_FEATURES),
    "item_features": ("item", "item_id", ITEM_FEATURES),
    "query_features": ("query", "query_id", QUERY_FEATURES),
}
# view name -> (entity name, join key, embedding file stem = feature name); the files' `embedding` column is
# renamed to the stem so the ranking service can serve both vectors without full feature names
EMBEDDING_VIEWS = {
    "item_text_embedding": ("item", "item_id", "item_text_emb"),
    "query_text_embedding": ("query", "query_id", "query_text_emb"),
}
TRAINING_SERVICE = "training"
RANKING_SERVICE = "online_ranking"


def _parquet_source(name: str, path, field_mapping: dict[str, str] | None = None) -> FileSource:
    return FileSource(
        name=name, path=str(path), file_format=ParquetFormat(), timestamp_field="event_timestamp",
        field_mapping=field_mapping,
    )


def build_definitions(paths: Paths) -> list:
    """Every Feast object of the repo (entities, sources, views, services) reading from `paths`."""
    entities = {
        name: Entity(name=name, join_keys=[f"{name}_id"], value_type=ValueType.STRING,
                     description=f"a {name}, by its contract id string")
        for name in ("user", "item", "query")
    }
    objects: list = list(entities.values())
    views: dict[str, FeatureView] = {}
    for view, (entity, _key, features) in SPARSE_VIEWS.items():
        source = _parquet_source(f"{view}_source", paths.marts_dir / f"{view}.parquet")
        views[view] = FeatureView(
            name=view, entities=[entities[entity]], ttl=SPARSE_TTL, source=source, online=True,
            schema=[Field(name=f, dtype=t) for f, t in features.items()],
        )
        objects.append(source)
    for view, (entity, _key, stem) in EMBEDDING_VIEWS.items():
        source = _parquet_source(f"{view}_source", paths.embeddings_dir / f"{stem}.parquet", {"embedding": stem})
        views[view] = FeatureView(
            name=view, entities=[entities[entity]], ttl=EMBEDDING_TTL, source=source, online=True,
            schema=[Field(name=stem, dtype=Array(Float32))],
        )
        objects.append(source)
    behaviour_source = _parquet_source(f"{BEHAVIOUR_VIEW}_source", paths.marts_dir / f"{BEHAVIOUR_VIEW}.parquet")
    views[BEHAVIOUR_VIEW] = FeatureView(
        name=BEHAVIOUR_VIEW, entities=[entities["user"]], ttl=BEHAVIOUR_TTL, source=behaviour_source, online=True,
        schema=[Field(name=f, dtype=t) for f, t in BEHAVIOUR_FEATURES.items()],
        description="the user's last clicks and queries and recent clicks per category/domain, before the row's day",
    )
    objects.append(behaviour_source)
    objects.extend(views.values())
    sparse = [views[v] for v in SPARSE_VIEWS] + [views[BEHAVIOUR_VIEW]]
    objects.append(FeatureService(name=TRAINING_SERVICE, features=sparse,
                                  description="point-in-time sparse and behaviour features for training folders"))
    objects.append(FeatureService(name=RANKING_SERVICE, features=list(views.values()),
                                  description="everything rank() reads online: sparse, behaviour and text embeddings"))
    return objects


def feature_columns() -> dict[str, str]:
    """Feast feature name -> training-folder / ranking-frame column: `cat_*` for strings, `num_*` otherwise."""
    return {
        feature: ("cat_" if dtype == String else "num_") + feature
        for _, _, features in SPARSE_VIEWS.values()
        for feature, dtype in features.items()
    }
