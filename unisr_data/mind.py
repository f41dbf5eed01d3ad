"""Convert a Microsoft News (MIND) folder (behaviors.tsv, news.tsv) into the landing tables.

Real impressions and clicks; no queries (so no search domain). Mapping documented in docs/datasets.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from unisr_data.contract import SCHEMAS, TS, ContractError, ImpressionWriter, write_table
from unisr_data.sanity import TIME_OUT_OF_RANGE, EventTimeWindow, top_reasons
from unisr_data.source_files import SourceRejects, read_strings, require_file

PREFIX = "mind"
BEHAVIOR_COLUMNS = ["impression_id", "user_id", "time", "history", "impressions"]
#: History clicks (dated by order only) end this long before the first impression of the log.
HISTORY_LEAD_US = 86_400 * 1_000_000
NEWS_COLUMNS = ["news_id", "category", "subcategory", "title", "abstract", "url", "title_entities",
                "abstract_entities"]
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
DEFAULT_CATEGORY_GROUPS = {
    "news": ("news", "finance", "weather", "video"),
    "sports": ("sports",),
    "lifestyle": ("lifestyle", "foodanddrink", "travel", "health", "autos", "kids", "middleeast"),
    "entertainment": ("entertainment", "music", "tv", "movies", "games"),
}


@dataclass(frozen=True)
class MindConfig:
    """How MIND impressions are split into domains; see docs/datasets.md."""

    seed: int = 7
    #: recommendation domain name -> MIND categories; an impression's domain is its item's group.
    category_groups: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_CATEGORY_GROUPS))
    #: domain for items whose category is unknown (not in news.tsv) or in no group.
    uncategorised_group: str = "uncategorised"
    #: items first impressed within this many days before the last impression are new items (cold-start).
    coldstart_days: float = 1.0
    #: impressions per written part (bounded memory while writing).
    chunk_impressions: int = 1_000_000
    #: impressions dated outside this window are rejected as time_out_of_range.
    time_window: EventTimeWindow = field(default_factory=EventTimeWindow)


def convert(src_dir: Path, landing_dir: Path, config: MindConfig = MindConfig()) -> dict[str, int]:
    """Write the 5 landing tables from a MIND folder; returns row counts, items_without_text, rejected rows."""
    src_dir, landing_dir = Path(src_dir), Path(landing_dir)
    rejects = SourceRejects()
    behaviors = _read_behaviors(src_dir, rejects, config.time_window)
    news = _read_news(src_dir, rejects)
    shown = _explode(behaviors, rejects)
    if shown.num_rows == 0:
        rejects.write(landing_dir)
        reasons = top_reasons(rejects.summary().get("behaviors.tsv", {}).get("by_reason", {}))
        raise ContractError(f"no usable impressions in {src_dir}/behaviors.tsv ({reasons}; see "
                            f"{landing_dir}/_rejects)", file=src_dir / "behaviors.tsv")

    # Impressed ids as integer codes, so per-item work never touches Python strings per impression.
    encoded = shown.column("item").combine_chunks().dictionary_encode()
    item_code = encoded.indices.to_numpy()
    shown_ids = encoded.dictionary.to_numpy(zero_copy_only=False)
    event_us = shown.column("time_us").to_numpy()
    first_shown = pd.Series(event_us).groupby(item_code).min()
    first_by_id = pd.Series(first_shown.to_numpy(), index=shown_ids[first_shown.index.to_numpy()])

    history = _history_clicks(behaviors, int(event_us.min()) - HISTORY_LEAD_US, rejects)

    # Items: every article in news.tsv plus every impressed or history id; created_at = first impression, or the
    # earliest impression time of the data set for articles never impressed (they were live from the start).
    item_ids = np.union1d(np.union1d(news["news_id"].to_numpy(dtype=object), shown_ids.astype(object)),
                          np.unique(history["item"].to_numpy(zero_copy_only=False)).astype(object))
    items = news.set_index("news_id").reindex(item_ids)
    created_us = first_by_id.reindex(item_ids).fillna(event_us.min()).to_numpy(np.int64)
    # an article known from a history was live before its history click
    created_us = np.minimum(created_us, _first_history_click(history, item_ids))
    cut_us = event_us.max() - int(config.coldstart_days * 86_400 * 1_000_000)
    is_new = created_us > cut_us
    group_of_category = {c: g for g, cats in config.category_groups.items() for c in cats}
    group = items["category"].map(group_of_category).fillna(config.uncategorised_group).to_numpy()
    item_group = np.where(is_new, "coldstart", group)
    position_of_id = pd.Series(np.arange(len(item_ids)), index=item_ids)
    shown_group = item_group[position_of_id.reindex(shown_ids).to_numpy()][item_code]

    ordered = [*config.category_groups, config.uncategorised_group]
    rec_names = [g for g in ordered if np.any(shown_group == g)]
    domains = pd.DataFrame(
        [(f"mind_{g}", "rec", "pretrain") for g in rec_names] + [("mind_coldstart", "rec", "coldstart")]
        + ([("mind_history", "rec", "history")] if history.num_rows else []),
        columns=["name", "task", "role"],
    )
    domains.insert(0, "domain_id", np.arange(len(domains), dtype=np.int32))
    domain_of_group = {g: i for i, g in enumerate([*rec_names, "coldstart"])}
    shown_domain = pd.Series(shown_group).map(domain_of_group).to_numpy(np.int32)

    writer = ImpressionWriter(landing_dir)
    for start in range(0, shown.num_rows, config.chunk_impressions):
        part = shown.slice(start, config.chunk_impressions)
        request = pc.binary_join_element_wise(pa.scalar(f"{PREFIX}:i"), part.column("request"), ":")
        writer.write(pa.table({
            "impression_id": pc.binary_join_element_wise(request, part.column("position").cast(pa.string()), ":"),
            "event_time": part.column("time_us").cast(TS),
            "domain_id": shown_domain[start:start + part.num_rows],
            "user_id": pc.binary_join_element_wise(pa.scalar(PREFIX), part.column("user"), ":"),
            "query_id": pa.nulls(part.num_rows, pa.string()),
            "item_id": pc.binary_join_element_wise(pa.scalar(PREFIX), part.column("item"), ":"),
            "request_id": request,
            "position": part.column("position"),
            "clicked": part.column("clicked"),
        }))

    if history.num_rows:
        history_domain = len(domains) - 1
        # one page per history click (its own instant), shown at position 0
        request = pc.binary_join_element_wise(pa.scalar(f"{PREFIX}:h"), history.column("user"),
                                              history.column("position").cast(pa.string()), ":")
        writer.write(pa.table({
            "impression_id": pc.binary_join_element_wise(request, pa.scalar("0"), ":"),
            "event_time": history.column("time_us").cast(TS),
            "domain_id": np.full(history.num_rows, history_domain, np.int32),
            "user_id": pc.binary_join_element_wise(pa.scalar(PREFIX), history.column("user"), ":"),
            "query_id": pa.nulls(history.num_rows, pa.string()),
            "item_id": pc.binary_join_element_wise(pa.scalar(PREFIX), history.column("item"), ":"),
            "request_id": request,
            "position": np.zeros(history.num_rows, np.int32),
            "clicked": np.ones(history.num_rows, np.int8),
        }))

    text = _item_text(items)
    write_table(landing_dir, "domains", pa.Table.from_pandas(domains, preserve_index=False))
    write_table(landing_dir, "items", pa.table({
        "item_id": [f"{PREFIX}:{i}" for i in item_ids],
        "text": pa.array(text, pa.string(), from_pandas=True),
        "category": pa.array(items["category"], pa.string(), from_pandas=True),
        "subcategory": pa.array(items["subcategory"], pa.string(), from_pandas=True),
        "created_at": pa.array(created_us, pa.int64()).cast(TS),
    }))
    users = np.unique(behaviors["user"].to_numpy(dtype=object))
    write_table(landing_dir, "users", pa.table({
        "user_id": [f"{PREFIX}:{u}" for u in users],
        "age_bucket": pa.nulls(len(users), pa.string()),
        "gender": pa.nulls(len(users), pa.string()),
        "segment": pa.nulls(len(users), pa.string()),
    }))
    write_table(landing_dir, "queries", SCHEMAS["queries"].empty_table())
    return {
        "domains": len(domains),
        "users": len(users),
        "items": len(item_ids),
        "items_without_text": int(text.isna().sum()),
        "new_items": int(is_new.sum()),
        "queries": 0,
        "impressions": writer.rows - history.num_rows,
        "history_clicks": history.num_rows,
        "clicks": int(pc.sum(shown.column("clicked")).as_py()),
        "rejected_source_rows": rejects.write(landing_dir),
    }


def _read_behaviors(src_dir: Path, rejects: SourceRejects, window: EventTimeWindow) -> pd.DataFrame:
    """behaviors.tsv rows with a parsable, plausible time and non-empty, unrepeated ids; the rest go to rejects."""
    path = require_file(src_dir, "behaviors.tsv", "MIND")
    table, lines = read_strings(path, BEHAVIOR_COLUMNS, rejects, header=False, delimiter="\t", quoted=False)
    frame = table.to_pandas()
    frame["line"] = lines
    frame["parsed"] = pd.to_datetime(frame["time"].str.strip(), format=TIME_FORMAT, errors="coerce")
    lo, hi = (pd.Timestamp(t).tz_convert(None) for t in window.bounds())  # MIND times are naive UTC

    def blank(column: str) -> pd.Series:
        return frame[column].isna() | frame[column].astype(str).str.strip().eq("")

    rules = (
        ("null_key", lambda: blank("impression_id") | blank("user_id")),
        ("unparsable_timestamp", lambda: frame["parsed"].isna()),
        (TIME_OUT_OF_RANGE, lambda: (frame["parsed"] < lo) | (frame["parsed"] > hi)),
        ("duplicate_row", lambda: frame.duplicated(BEHAVIOR_COLUMNS, keep="first")),
        ("duplicate_id", lambda: frame["impression_id"].str.strip().duplicated(keep="first")),
    )
    for reason, rule in rules:
        bad = rule().to_numpy(bool)
        for row in frame[bad].itertuples(index=False):  # rejected rows only
            rejects.add(path.name, row.line, reason, "\t".join(str(getattr(row, c)) for c in BEHAVIOR_COLUMNS))
        frame = frame[~bad]
    return pd.DataFrame({"request": frame["impression_id"].str.strip(), "user": frame["user_id"].str.strip(),
                         "time": frame["parsed"], "impressions": frame["impressions"], "history": frame["history"],
                         "line": frame["line"]})


def _explode(behaviors: pd.DataFrame, rejects: SourceRejects) -> pa.Table:
    """One row per `N123-1` token (Arrow kernels, no per-token Python); malformed tokens go to rejects.

    Returns columns request, user (string), time_us (int64 UTC microseconds), item (string), position (int32,
    order in the list), clicked (int8).
    """
    tokens, parent, position, _ = _split_tokens(behaviors["impressions"])
    ok = pc.match_substring_regex(tokens, r"^N\w+-[01]$").to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~ok):  # rejected tokens only
        row = behaviors.iloc[parent[i]]
        rejects.add("behaviors.tsv", row["line"], "bad_value", f"impression {row['request']}: token "
                    f"{tokens[i].as_py()!r} at position {position[i]} is not <news id>-<0|1>")
    keep = np.flatnonzero(ok)
    tokens, parent = tokens.take(pa.array(keep)), parent[keep]
    time_us = behaviors["time"].to_numpy("datetime64[us]").astype(np.int64)
    return pa.table({
        "request": pa.array(behaviors["request"], pa.string()).take(pa.array(parent)),
        "user": pa.array(behaviors["user"], pa.string()).take(pa.array(parent)),
        "time_us": time_us[parent],
        "item": pc.utf8_slice_codeunits(tokens, 0, -2),
        "position": position[keep],
        "clicked": pc.equal(pc.utf8_slice_codeunits(tokens, -1), "1").cast(pa.int8()),
    })


def _split_tokens(column: pd.Series) -> tuple[pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Whitespace-separated tokens of a string column: (tokens, parent row [n], position in its row [n] int32,
    tokens per row [rows]), with Arrow kernels (no Python object per token)."""
    lists = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(pa.array(column, pa.string())))
    tokens = pc.list_flatten(lists)
    parent = pc.list_parent_indices(lists).to_numpy()
    offsets = lists.offsets.to_numpy()
    return tokens, parent, (np.arange(len(tokens)) - offsets[parent]).astype(np.int32), np.diff(offsets)


def _history_clicks(behaviors: pd.DataFrame, end_us: int, rejects: SourceRejects) -> pa.Table:
    """Each user's click history (the `history` column: news clicked before the log, oldest first), taken from the
    user's earliest behaviors row, as clicks one second apart ending at `end_us` (MIND gives their order, not their
    times). Columns user, item, position (int32, order in the history), time_us. Malformed ids go to rejects."""
    first = behaviors.sort_values(["time", "request"], kind="stable").drop_duplicates("user", keep="first")
    first = first[first["history"].notna() & first["history"].astype(str).str.strip().ne("")]
    tokens, parent, position, lengths = _split_tokens(first["history"])
    ok = pc.match_substring_regex(tokens, r"^N\w+$").to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(~ok):  # rejected tokens only
        row = first.iloc[parent[i]]
        rejects.add("behaviors.tsv", row["line"], "bad_value", f"history of {row['user']}: token "
                    f"{tokens[i].as_py()!r} at position {position[i]} is not a news id")
    keep = np.flatnonzero(ok)
    # the newest history click is one second before end_us, the one before it two seconds, ...
    time_us = end_us - (lengths[parent] - position).astype(np.int64) * 1_000_000
    return pa.table({
        "user": pa.array(first["user"], pa.string()).take(pa.array(parent[keep])),
        "item": tokens.take(pa.array(keep)),
        "position": position[keep],
        "time_us": time_us[keep],
    })


def _first_history_click(history: pa.Table, item_ids: np.ndarray) -> np.ndarray:
    """Per item id: its earliest history click time in microseconds (int64 max when none)."""
    out = pd.Series(np.iinfo(np.int64).max, index=pd.Index(item_ids, dtype=object))
    if history.num_rows:
        first = pd.Series(history.column("time_us").to_numpy()).groupby(
            history.column("item").to_numpy(zero_copy_only=False)).min()
        out.loc[first.index] = first.to_numpy()
    return out.to_numpy(np.int64)


def _read_news(src_dir: Path, rejects: SourceRejects) -> pd.DataFrame:
    """news.tsv: id, category, subcategory, title, abstract (the other columns are not used)."""
    path = require_file(src_dir, "news.tsv", "MIND")
    table, lines = read_strings(path, NEWS_COLUMNS, rejects, header=False, delimiter="\t", quoted=False)
    frame = table.select(NEWS_COLUMNS[:5]).to_pandas()
    frame["news_id"] = frame["news_id"].str.strip()
    frame["line"] = lines
    rules = (
        ("null_key", lambda: frame["news_id"].eq("")),
        ("duplicate_row", lambda: frame.duplicated(NEWS_COLUMNS[:5], keep="first")),
        ("duplicate_id", lambda: frame["news_id"].duplicated(keep="first")),
    )
    for reason, rule in rules:
        bad = rule().to_numpy(bool)
        for row in frame[bad].itertuples(index=False):  # rejected rows only
            rejects.add(path.name, row.line, reason, "\t".join(str(getattr(row, c)) for c in NEWS_COLUMNS[:5]))
        frame = frame[~bad]
    frame = frame.drop(columns="line")
    for column in ("category", "subcategory"):
        frame[column] = frame[column].str.strip().replace("", None)
    return frame


def _item_text(items: pd.DataFrame) -> pd.Series:
    """Title, newline, abstract; null when the item is not in news.tsv or both are blank."""
    title = items["title"].fillna("").str.strip()
    abstract = items["abstract"].fillna("").str.strip()
    text = (title + "\n" + abstract).str.strip()
    return text.where(text != "", None)
