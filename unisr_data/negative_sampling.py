"""Sample unclicked items that were live at an event's time, and lay out impressions on a page."""
from __future__ import annotations

import numpy as np


def sample_live_negatives(
    event_time: np.ndarray,
    event_user: np.ndarray,
    pool_items: np.ndarray,
    pool_created: np.ndarray,
    excluded_pairs: np.ndarray,
    n_items: int,
    per_event: int,
    rng: np.random.Generator,
    rounds: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw `per_event` items per event from `pool_items` created strictly before the event time.

    Inputs are aligned int64 arrays (times in any one unit, users/items as integer codes < n_items for items);
    `excluded_pairs` is the sorted array of `user * n_items + item` keys a user may not get as a negative
    (items they rated/tagged). Draws that hit an excluded pair are redrawn up to `rounds` times, then dropped;
    duplicate (event, item) draws are dropped. Returns (event index, item code), both int64, sorted by event.
    """
    if per_event <= 0 or len(event_time) == 0 or len(pool_items) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(pool_created, kind="stable")
    items_sorted = np.asarray(pool_items, np.int64)[order]
    created_sorted = np.asarray(pool_created, np.int64)[order]
    n_live = np.searchsorted(created_sorted, np.asarray(event_time, np.int64), side="left")
    event_idx = np.repeat(np.arange(len(event_time), dtype=np.int64), per_event)
    event_idx = event_idx[n_live[event_idx] > 0]
    users = np.asarray(event_user, np.int64)[event_idx]
    live = n_live[event_idx]
    chosen = np.full(len(event_idx), -1, np.int64)
    todo = np.arange(len(event_idx))
    for _ in range(rounds):
        if len(todo) == 0:
            break
        draw = items_sorted[(rng.random(len(todo)) * live[todo]).astype(np.int64)]
        keys = users[todo] * n_items + draw
        pos = np.searchsorted(excluded_pairs, keys)
        hit = (pos < len(excluded_pairs)) & (excluded_pairs[np.minimum(pos, len(excluded_pairs) - 1)] == keys)
        chosen[todo[~hit]] = draw[~hit]
        todo = todo[hit]
    keep = chosen >= 0
    event_idx, chosen = event_idx[keep], chosen[keep]
    _, first = np.unique(event_idx * n_items + chosen, return_index=True)
    first.sort()
    return event_idx[first], chosen[first]


def page_positions(request_codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle rows within each request and rank them: returns (row order grouped by request, position int32)."""
    request_codes = np.asarray(request_codes)
    shuffle_key = rng.random(len(request_codes))
    order = np.lexsort((shuffle_key, request_codes))
    grouped = request_codes[order]
    starts = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(grouped)]))
    position = (np.arange(len(grouped)) - run_start).astype(np.int32)
    return order, position
