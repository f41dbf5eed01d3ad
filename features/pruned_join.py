"""Feast point-in-time joins that read only the source parts the entity rows can match (partition pruning).

Feast's DuckDB offline store joins a view's whole file source: its join predicates (`feature time <= entity time`,
`feature time + ttl >= entity time`) are not pushed into the scan, so joining one day's impressions read every day
part of the mart folders, and a daily tick's join grew with the history. The mart folders hold one part per day (or
month, `.parts.json` says which; unisr_data/warehouse.py export_marts), so the parts a join of entity rows stamped in
[start, end] can match are those from `start - ttl` to `end`. `historical_features` hands Feast copies of the views
whose source is a folder of links to those parts; Feast's join itself (its point-in-time semantics, TTL and
de-duplication) is unchanged, and so is its result (tests/test_pruned_join.py compares it with the unpruned join).
"""
from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import FeatureStore, FeatureView
from feast.utils import make_df_tzaware

from unisr_data.warehouse import EMPTY_PART, PART_STAMPS, part_start

#: Parts are cut at UTC day (month) boundaries; one more period on each side costs little and forgives a source
#: whose parts were cut in another zone.
_MARGIN = timedelta(days=1)


def _part_end(start: datetime, period: str) -> datetime:
    if period == "%Y-%m":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def parts_to_read(folder: Path, start: datetime, end: datetime, ttl: timedelta | None) -> list[Path] | None:
    """The parts of the mart folder `folder` holding rows a join of entity rows stamped in [start, end] can match
    (feature rows stamped in [start - ttl, end]; no lower bound without a TTL); None when `folder` is not a part
    folder (no `.parts.json`): read it whole."""
    return parts_between(folder, start - ttl if ttl else None, end)


def parts_between(folder: Path, low: datetime | None, high: datetime) -> list[Path] | None:
    """The parts of the mart folder `folder` that can hold rows stamped in [low, high] (no lower bound for None),
    a period of margin on each side; None when `folder` is not a part folder (no `.parts.json`)."""
    stamps = folder / PART_STAMPS
    if not folder.is_dir() or not stamps.exists():
        return None
    period = json.loads(stamps.read_text()).get("period", "%Y-%m-%d")
    low = low - _MARGIN if low is not None else None
    high = high + _MARGIN
    keep, every = [], sorted(folder.glob("*.parquet"))
    for part in every:
        try:
            begins = part_start(part.stem, period)
        except ValueError:  # EMPTY_PART or a part named otherwise: keep, it costs nothing or is unknown
            keep.append(part)
            continue
        if begins <= high and (low is None or _part_end(begins, period) > low):
            keep.append(part)
    if not keep and every:  # nothing in range: one part still gives the source its schema; no row of it matches
        keep = [folder / EMPTY_PART] if (folder / EMPTY_PART).exists() else every[:1]
    return keep


@contextmanager
def pruned_views(store: FeatureStore, views: list[str], start: datetime, end: datetime) -> Iterator[list[FeatureView]]:
    """Copies of the feature views `views` whose batch sources read only `parts_to_read`, valid inside the block."""
    with tempfile.TemporaryDirectory(prefix="feast-pruned-") as tmp:
        out = []
        for name in views:
            view = store.get_feature_view(name)
            folder = Path(view.batch_source.path)
            if not folder.is_absolute():
                folder = Path(store.config.repo_path) / folder
            parts = parts_to_read(folder, start, end, view.ttl)
            if parts is not None:
                links = Path(tmp) / name / folder.name
                links.mkdir(parents=True)
                for part in parts:
                    (links / part.name).symlink_to(part.resolve())
                view = copy.deepcopy(view)
                view.batch_source.file_options.uri = str(links)
            out.append(view)
        yield out


def historical_features(store: FeatureStore, entity_df: pd.DataFrame, views: list[str],
                        refs: list[str]) -> pd.DataFrame:
    """`store.get_historical_features(entity_df, refs).to_df()` for feature refs `refs` of `views`, reading only
    the source parts the entity rows' timestamps can match. Goes through the store's provider (as
    FeatureStore.get_historical_features does once it has resolved the views) with the pruned view copies."""
    if store.config.coerce_tz_aware:
        entity_df = make_df_tzaware(entity_df)
    stamps = pd.to_datetime(entity_df["event_timestamp"], utc=True)
    with pruned_views(store, views, stamps.min().to_pydatetime(), stamps.max().to_pydatetime()) as feature_views:
        job = store._get_provider().get_historical_features(
            store.config, feature_views, refs, entity_df, store.registry, store.project, False)
        return job.to_df()
