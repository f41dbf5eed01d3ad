"""Convert a GroupLens MovieLens folder (ml-latest*, ml-25m or ml-100k layout) into the landing tables.

The mapping (domains, labels, sampled negatives, cold-start rule, page views) is documented in docs/datasets.md.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from unisr_data.contract import TS, ContractError, ImpressionWriter, write_table
from unisr_data.negative_sampling import page_positions, sample_live_negatives
from unisr_data.sanity import TIME_OUT_OF_RANGE, EventTimeWindow, top_reasons
from unisr_data.source_files import SourceRejects, read_strings, require_file

PREFIX = "ml"
ML100K_GENRES = (
    "(no genres listed)", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
    "Western",
)
DEFAULT_GENRE_GROUPS = {
    "action": ("Action", "Adventure", "Sci-Fi", "Fantasy", "War", "Western", "IMAX"),
    "comedy": ("Comedy", "Children", "Animation", "Musical"),
    "drama": ("Drama", "Romance", "Documentary", "Film-Noir", "(no genres listed)"),
    "thriller": ("Thriller", "Crime", "Horror", "Mystery"),
}
AGE_EDGES = (18, 25, 35, 45, 55)
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")


@dataclass(frozen=True)
class MovieLensConfig:
    """How ratings and tags become impressions; see docs/datasets.md for the rules these values drive."""

    seed: int = 7
    #: sampled unrated, live items added to the page of each rating (and each tag in search).
    negatives_per_positive: int = 4
    #: ratings >= this are clicks (label 1); lower ratings are shown-but-not-liked (label 0).
    positive_rating: float = 4.0
    #: items first seen at/after this time are new items (cold-start domain); None = use coldstart_share.
    coldstart_cut: datetime | None = None
    #: with no explicit cut, the cut is at (1 - share) of the rating time span.
    coldstart_share: float = 0.15
    #: recommendation domain name -> genres; a movie belongs to the group of its first listed genre.
    genre_groups: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_GENRE_GROUPS))
    #: group for genres no group lists.
    default_group: str = "drama"
    #: keep a seeded random subset of users whose ratings sum to at most this many (None = all).
    max_ratings: int | None = None
    #: ratings per impression chunk written (bounded memory on ml-25m).
    chunk_ratings: int = 500_000
    #: the dataset's rating scale (inclusive); other or non-finite ratings are rejected as rating_out_of_range.
    rating_scale: tuple[float, float] = (0.5, 5.0)
    #: rating/tag times outside this window are rejected as time_out_of_range (checked on the raw seconds).
    time_window: EventTimeWindow = field(default_factory=EventTimeWindow)


def convert(src_dir: Path, landing_dir: Path, config: MovieLensConfig = MovieLensConfig()) -> dict[str, int]:
    """Write the 5 landing tables from a MovieLens folder; returns row counts (+ rejected source rows)."""
    src_dir, landing_dir = Path(src_dir), Path(landing_dir)
    rejects = SourceRejects()
    if not (src_dir / "ratings.csv").is_file() and not (src_dir / "u.data").is_file():
        raise ContractError(
            f"no MovieLens layout found in {src_dir}: expected ratings.csv + movies.csv + tags.csv (ml-latest, "
            "ml-25m) or u.data + u.item + u.user (ml-100k); download one with python -m unisr_data.download",
            file=src_dir / "ratings.csv",
        )
    if (src_dir / "ratings.csv").is_file():
        movies, ratings, tags, users = _read_latest(src_dir, rejects)
        rating_file = "ratings.csv"
    else:
        movies, ratings, tags, users = _read_100k(src_dir, rejects)
        rating_file = "u.data"
    ratings, tags = _reject_implausible(ratings, tags, config, rejects, rating_file)
    ratings, tags = _drop_unknown_movies(ratings, tags, set(movies["movie"]), rejects, rating_file)
    ratings, tags = ratings.drop(columns="line"), tags.drop(columns="line")  # only needed for reject rows
    movies = movies.drop(columns="line")
    if config.max_ratings is not None and len(ratings) > config.max_ratings:
        ratings, tags = _subsample_users(ratings, tags, config.max_ratings, config.seed)
    if len(ratings) == 0:
        rejects.write(landing_dir)
        reasons = top_reasons(rejects.summary().get(rating_file, {}).get("by_reason", {}))
        raise ContractError(f"no usable ratings in {src_dir}: every row was rejected ({reasons}; see "
                            f"{landing_dir}/_rejects)", file=src_dir / rating_file)

    # Items: movies with at least one rating or tag; created_at = their first event.
    first_seen = pd.concat([ratings[["movie", "ts"]], tags[["movie", "ts"]]]).groupby("movie")["ts"].min()
    items = movies[movies["movie"].isin(first_seen.index)].sort_values("movie").reset_index(drop=True)
    items["created"] = first_seen.reindex(items["movie"]).to_numpy()
    n_items = len(items)
    code_of_movie = pd.Series(np.arange(n_items), index=items["movie"])

    cut = _cut_seconds(ratings["ts"].to_numpy(), config)
    is_new = items["created"].to_numpy() >= cut
    group_of_genre = {g: name for name, genres in config.genre_groups.items() for g in genres}
    primary = items["genres"].str.split("|").str[0].fillna("")
    group = primary.map(group_of_genre).fillna(config.default_group).to_numpy()
    if config.default_group not in config.genre_groups:
        raise ValueError(f"MovieLensConfig.default_group {config.default_group!r} is not a key of genre_groups")

    # Domains: genre groups that hold at least one established item, then search (tags), then cold-start.
    rec_names = [name for name in config.genre_groups if np.any((group == name) & ~is_new)]
    domain_rows = [(f"ml_{name}", "rec", "pretrain") for name in rec_names]
    if len(tags):
        domain_rows.append(("ml_search_tags", "search", "pretrain"))
    domain_rows.append(("ml_coldstart", "rec", "coldstart"))
    domains = pd.DataFrame(domain_rows, columns=["name", "task", "role"])
    domains.insert(0, "domain_id", np.arange(len(domains), dtype=np.int32))
    domain_id_of = dict(zip(domains["name"], domains["domain_id"]))
    item_domain = np.array(
        [domain_id_of["ml_coldstart"] if new else domain_id_of[f"ml_{g}"] for g, new in zip(group, is_new)],
        dtype=np.int32,
    ) if n_items else np.empty(0, np.int32)

    ratings["item"] = code_of_movie.reindex(ratings["movie"]).to_numpy()
    tags["item"] = code_of_movie.reindex(tags["movie"]).to_numpy()
    excluded = np.unique(np.r_[
        ratings["user"].to_numpy() * n_items + ratings["item"].to_numpy(),
        tags["user"].to_numpy() * n_items + tags["item"].to_numpy(),
    ])
    item_ids = (f"{PREFIX}:m:" + items["movie"].astype(str)).to_numpy()
    created = items["created"].to_numpy()

    writer = ImpressionWriter(landing_dir)
    counts = {"positives": 0, "rated_negatives": 0, "sampled_negatives": 0}
    ratings = ratings.sort_values(["user", "ts", "movie"], kind="stable").reset_index(drop=True)
    for chunk_no, chunk in enumerate(_user_chunks(ratings, config.chunk_ratings)):
        rng = np.random.default_rng([config.seed, 0, chunk_no])
        table = _rating_impressions(chunk, item_domain, item_ids, created, excluded, n_items, config, rng, counts)
        writer.write(table)
    queries = pd.DataFrame({"query_id": pd.Series(dtype=str), "text": pd.Series(dtype=str)})
    if len(tags):
        rng = np.random.default_rng([config.seed, 1])
        table, queries = _tag_impressions(
            tags, domain_id_of["ml_search_tags"], item_ids, created, excluded, n_items, config, rng, counts
        )
        writer.write(table)

    write_table(landing_dir, "domains", pa.Table.from_pandas(domains, preserve_index=False))
    write_table(landing_dir, "items", pa.table({
        "item_id": item_ids,
        "text": (items["title"].str.strip() + " | " + items["genres"].str.replace("|", ", ", regex=False)).to_numpy(),
        "category": primary.to_numpy(),
        "subcategory": items["genres"].to_numpy(),
        "created_at": pd.to_datetime(created, unit="s", utc=True),
    }))
    event_users = np.unique(np.r_[ratings["user"].to_numpy(), tags["user"].to_numpy()])
    users = users.set_index("user").reindex(event_users) if users is not None else pd.DataFrame(index=event_users)
    write_table(landing_dir, "users", pa.table({
        "user_id": [f"{PREFIX}:u:{u}" for u in event_users],
        "age_bucket": users.get("age_bucket", pd.Series(None, index=users.index, dtype=object)).to_numpy(),
        "gender": users.get("gender", pd.Series(None, index=users.index, dtype=object)).to_numpy(),
        "segment": users.get("segment", pd.Series(None, index=users.index, dtype=object)).to_numpy(),
    }))
    write_table(landing_dir, "queries", pa.Table.from_pandas(queries, preserve_index=False))
    return {
        "domains": len(domains),
        "users": len(event_users),
        "items": n_items,
        "new_items": int(is_new.sum()),
        "queries": len(queries),
        "impressions": writer.rows,
        **counts,
        "rejected_source_rows": rejects.write(landing_dir),
    }


def coldstart_cut_seconds(src_ts: np.ndarray, config: MovieLensConfig) -> int:
    """The cold-start cut as unix seconds for rating times `src_ts` (unix s) under `config`."""
    return _cut_seconds(np.asarray(src_ts, np.int64), config)


def _cut_seconds(ts: np.ndarray, config: MovieLensConfig) -> int:
    if config.coldstart_cut is not None:
        cut = config.coldstart_cut
        if cut.tzinfo is None:
            cut = cut.replace(tzinfo=timezone.utc)
        return int(cut.timestamp())
    lo, hi = int(ts.min()), int(ts.max())
    return lo + int(round((1.0 - config.coldstart_share) * (hi - lo)))


def _user_chunks(ratings: pd.DataFrame, size: int):
    """Yield slices of user-sorted ratings of about `size` rows that never split a user (so never a page)."""
    users = ratings["user"].to_numpy()
    start = 0
    while start < len(ratings):
        end = min(start + size, len(ratings))
        if end < len(ratings):
            end = int(np.searchsorted(users, users[end - 1], side="right"))
        yield ratings.iloc[start:end]
        start = end


def _rating_impressions(chunk, item_domain, item_ids, created, excluded, n_items, config, rng, counts) -> pa.Table:
    """Rated items plus sampled live unrated negatives from the same domain, laid out on (user, domain, ts) pages."""
    user = chunk["user"].to_numpy(np.int64)
    item = chunk["item"].to_numpy(np.int64)
    ts = chunk["ts"].to_numpy(np.int64)
    domain = item_domain[item]
    label = (chunk["rating"].to_numpy() >= config.positive_rating).astype(np.int8)
    neg_user, neg_item, neg_ts, neg_domain = [], [], [], []
    # Negatives come from the rated item's own domain so a page never mixes domains.
    for d in np.unique(domain):
        pool = np.flatnonzero(item_domain == d)
        rows = np.flatnonzero(domain == d)
        idx, cand = sample_live_negatives(
            ts[rows], user[rows], pool, created[pool], excluded, n_items, config.negatives_per_positive, rng
        )
        neg_user.append(user[rows][idx])
        neg_item.append(cand)
        neg_ts.append(ts[rows][idx])
        neg_domain.append(np.full(len(idx), d, np.int32))
    n_neg = sum(len(x) for x in neg_item)
    all_user = np.concatenate([user, *neg_user])
    all_item = np.concatenate([item, *neg_item])
    all_ts = np.concatenate([ts, *neg_ts])
    all_domain = np.concatenate([domain, *neg_domain]).astype(np.int32)
    all_label = np.concatenate([label, np.zeros(n_neg, np.int8)])
    # A movie sampled as a negative twice on one page (two ratings share a timestamp) is shown once.
    frame = pd.DataFrame({"u": all_user, "d": all_domain, "t": all_ts, "i": all_item, "y": all_label})
    frame = frame.drop_duplicates(["u", "d", "t", "i"], keep="first")
    counts["positives"] += int(label.sum())
    counts["rated_negatives"] += int(len(label) - label.sum())
    counts["sampled_negatives"] += int(len(frame) - len(label))
    return _layout(frame, item_ids, rng)


def _tag_impressions(tags, domain_id, item_ids, created, excluded, n_items, config, rng, counts):
    """Search pages: query = the tag text, the tagged movie clicked, live untouched movies as negatives."""
    tags = tags.sort_values(["user", "ts", "movie", "tag"], kind="stable").reset_index(drop=True)
    key = tags["tag"].str.strip().str.lower()
    query_id = key.map(lambda k: f"{PREFIX}:q:" + hashlib.sha1(k.encode("utf8")).hexdigest()[:16])
    # The query text is the tag as first written (earliest tag event), trimmed.
    first = tags.assign(qid=query_id, text=tags["tag"].str.strip()).sort_values(["ts", "user", "movie"], kind="stable")
    queries = first.drop_duplicates("qid")[["qid", "text"]].rename(columns={"qid": "query_id"})
    queries = queries.sort_values("query_id").reset_index(drop=True)
    user = tags["user"].to_numpy(np.int64)
    item = tags["item"].to_numpy(np.int64)
    ts = tags["ts"].to_numpy(np.int64)
    all_items = np.arange(n_items, dtype=np.int64)
    idx, cand = sample_live_negatives(ts, user, all_items, created, excluded, n_items,
                                      config.negatives_per_positive, rng)
    frame = pd.DataFrame({
        "u": np.r_[user, user[idx]], "d": np.int32(domain_id), "t": np.r_[ts, ts[idx]],
        "i": np.r_[item, cand], "y": np.r_[np.ones(len(item), np.int8), np.zeros(len(idx), np.int8)],
        "q": np.r_[query_id.to_numpy(), query_id.to_numpy()[idx]],
    })
    frame = frame.drop_duplicates(["u", "t", "q", "i"], keep="first")
    counts["search_positives"] = int(len(item))
    counts["search_sampled_negatives"] = int(len(frame) - len(item))
    return _layout(frame, item_ids, rng), queries


def _layout(frame: pd.DataFrame, item_ids: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Shuffle each page, number positions 0.., and build the contract impression columns.

    `frame` holds integer columns u (user), d (domain), t (unix s), i (item code), y (label) and, for search,
    q (query id). A page is (u, d, t) or (u, d, t, q); ids are built with Arrow kernels, not Python strings.
    """
    keys = ["u", "d", "t", "q"] if "q" in frame else ["u", "d", "t"]
    page = frame.groupby(keys, sort=True).ngroup().to_numpy()
    order, position = page_positions(page, rng)
    frame = frame.iloc[order]

    def text(values) -> pa.Array:
        return pa.array(values).cast(pa.string())

    parts = [text(np.full(len(frame), f"{PREFIX}:r")), text(frame["u"].to_numpy()), text(frame["d"].to_numpy()),
             text(frame["t"].to_numpy())]
    if "q" in frame:
        parts.append(pc.utf8_slice_codeunits(text(frame["q"].to_numpy()), len(f"{PREFIX}:q:")))
    request = pc.binary_join_element_wise(*parts, ":")
    return pa.table({
        "impression_id": pc.binary_join_element_wise(request, text(position), ":"),
        "event_time": pa.array(frame["t"].to_numpy() * 1_000_000, pa.int64()).cast(TS),
        "domain_id": frame["d"].to_numpy(np.int32),
        "user_id": pc.binary_join_element_wise(text(np.full(len(frame), f"{PREFIX}:u")), parts[1], ":"),
        "query_id": text(frame["q"].to_numpy()) if "q" in frame else pa.nulls(len(frame), pa.string()),
        "item_id": pa.array(item_ids).take(pa.array(frame["i"].to_numpy())),
        "request_id": request,
        "position": position,
        "clicked": frame["y"].to_numpy(np.int8),
    })


def _numbers(table: pa.Table, lines: np.ndarray, columns: dict[str, str], file: str, rejects: SourceRejects):
    """Parse string columns to numbers ({column: 'int'|'float'}); unparsable/empty rows go to rejects.

    Fast path: an Arrow cast of the whole column (no Python objects, so ml-25m stays memory-sane); only when
    it fails does the row-by-row pandas parse run, to find which rows are bad.
    """
    try:
        parsed = {name: pc.cast(pc.utf8_trim_whitespace(table.column(name)),
                                pa.int64() if kind == "int" else pa.float32()).to_numpy(zero_copy_only=False)
                  for name, kind in columns.items()}
        return pd.DataFrame(parsed), np.ones(table.num_rows, bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out = {}
    bad = np.zeros(table.num_rows, bool)
    for name, kind in columns.items():
        values = pd.to_numeric(pd.Series(table.column(name).to_numpy(zero_copy_only=False)).str.strip(),
                               errors="coerce")
        if kind == "int":
            # |v| < 2**63 before the int64 cast: a huge value must be a reject, never a wrapped number.
            fits = values.notna() & (values.astype(float).abs() < 9.2e18)
            bad |= ~(fits & (values == values.round())).to_numpy()
        else:
            bad |= values.isna().to_numpy()
        out[name] = values
    if bad.any():
        raw = table.filter(pa.array(bad)).to_pandas()
        for line, (_, row) in zip(lines[bad], raw.iterrows()):  # loop over rejected rows only
            rejects.add(file, line, "bad_value", ",".join(str(v) for v in row.to_numpy()))
    keep = ~bad
    return pd.DataFrame({name: (v[keep].astype(np.int64) if columns[name] == "int" else v[keep].astype(np.float32))
                         for name, v in out.items()}), keep


def _read_latest(src_dir: Path, rejects: SourceRejects):
    """ratings.csv / movies.csv / tags.csv (ml-latest, ml-latest-small, ml-25m)."""
    path = require_file(src_dir, "ratings.csv", "MovieLens")
    table, lines = read_strings(path, ["userId", "movieId", "rating", "timestamp"], rejects)
    nums, keep = _numbers(table, lines, {"userId": "int", "movieId": "int", "rating": "float", "timestamp": "int"},
                          path.name, rejects)
    ratings = nums.rename(columns={"userId": "user", "movieId": "movie", "timestamp": "ts"})
    ratings["line"] = lines[keep]
    path = require_file(src_dir, "movies.csv", "MovieLens")
    table, lines = read_strings(path, ["movieId", "title", "genres"], rejects)
    nums, keep = _numbers(table, lines, {"movieId": "int"}, path.name, rejects)
    movies = pd.DataFrame({"movie": nums["movieId"].to_numpy(),
                           "title": table.column("title").to_numpy(zero_copy_only=False)[keep],
                           "genres": table.column("genres").to_numpy(zero_copy_only=False)[keep],
                           "line": lines[keep]})
    movies = _reject_duplicates(_reject_blank(movies, "title", path.name, rejects), ["movie"], path.name, rejects)
    path = require_file(src_dir, "tags.csv", "MovieLens")
    table, lines = read_strings(path, ["userId", "movieId", "tag", "timestamp"], rejects)
    nums, keep = _numbers(table, lines, {"userId": "int", "movieId": "int", "timestamp": "int"}, path.name, rejects)
    tags = pd.DataFrame({"user": nums["userId"].to_numpy(), "movie": nums["movieId"].to_numpy(),
                         "tag": table.column("tag").to_numpy(zero_copy_only=False)[keep],
                         "ts": nums["timestamp"].to_numpy(), "line": lines[keep]})
    tags = _reject_blank(tags, "tag", path.name, rejects)
    return movies, ratings, tags, None


def _read_100k(src_dir: Path, rejects: SourceRejects):
    """u.data / u.item / u.user (ml-100k): no tags, so no search domain."""
    path = require_file(src_dir, "u.data", "MovieLens ml-100k")
    table, lines = read_strings(path, ["user", "movie", "rating", "ts"], rejects, header=False, delimiter="\t")
    ratings, keep = _numbers(table, lines, {"user": "int", "movie": "int", "rating": "float", "ts": "int"},
                             path.name, rejects)
    ratings["line"] = lines[keep]
    path = require_file(src_dir, "u.item", "MovieLens ml-100k")
    columns = ["movie", "title", "release", "video_release", "url", *ML100K_GENRES]
    table, lines = read_strings(path, columns, rejects, header=False, delimiter="|", quoted=False, encoding="latin-1")
    nums, keep = _numbers(table, lines, {"movie": "int"}, path.name, rejects)
    flags = np.stack([table.column(g).to_numpy(zero_copy_only=False)[keep] == "1" for g in ML100K_GENRES], axis=1)
    genre_names = np.array(ML100K_GENRES, dtype=object)
    genres = ["|".join(genre_names[row]) or "(no genres listed)" for row in flags]  # ~1.7k movies, not ratings
    movies = pd.DataFrame({"movie": nums["movie"].to_numpy(),
                           "title": table.column("title").to_numpy(zero_copy_only=False)[keep], "genres": genres,
                           "line": lines[keep]})
    movies = _reject_duplicates(_reject_blank(movies, "title", path.name, rejects), ["movie"], path.name, rejects)
    path = require_file(src_dir, "u.user", "MovieLens ml-100k")
    table, lines = read_strings(path, ["user", "age", "gender", "occupation", "zip"], rejects,
                                header=False, delimiter="|", quoted=False, encoding="latin-1")
    nums, keep = _numbers(table, lines, {"user": "int", "age": "int"}, path.name, rejects)
    age_bucket = np.array(AGE_LABELS, dtype=object)[np.searchsorted(AGE_EDGES, nums["age"].to_numpy(), side="right")]
    users = pd.DataFrame({
        "user": nums["user"].to_numpy(), "age_bucket": age_bucket,
        "gender": table.column("gender").to_numpy(zero_copy_only=False)[keep],
        "segment": table.column("occupation").to_numpy(zero_copy_only=False)[keep],
        "line": lines[keep],
    })
    users = _reject_duplicates(users, ["user"], path.name, rejects).drop(columns="line")
    tags = pd.DataFrame({"user": pd.Series(dtype=np.int64), "movie": pd.Series(dtype=np.int64),
                         "tag": pd.Series(dtype=object), "ts": pd.Series(dtype=np.int64),
                         "line": pd.Series(dtype=np.int64)})
    return movies, ratings, tags, users


def _reject(frame: pd.DataFrame, bad: np.ndarray, reason: str, file: str, rejects: SourceRejects) -> pd.DataFrame:
    """Rows of `frame` (which has a `line` column) where `bad` holds go to rejects as `reason`; returns the rest."""
    bad = np.asarray(bad, bool)
    if not bad.any():
        return frame
    columns = [c for c in frame.columns if c != "line"]
    for row in frame.loc[bad, ["line", *columns]].itertuples(index=False):  # rejected rows only
        rejects.add(file, row[0], reason, ",".join(str(v) for v in row[1:]))
    return frame[~bad].reset_index(drop=True)


def _reject_blank(frame: pd.DataFrame, column: str, file: str, rejects: SourceRejects):
    """Rows whose `column` is blank cannot be used (a title or tag is the text): reject them as empty_text."""
    return _reject(frame, frame[column].astype(str).str.strip().eq("").to_numpy(), "empty_text", file, rejects)


def _reject_duplicates(frame: pd.DataFrame, key: list[str], file: str, rejects: SourceRejects) -> pd.DataFrame:
    """Keep the first row per `key`: a later identical row is a duplicate_row, a later different row with the
    same key a duplicate_id."""
    columns = [c for c in frame.columns if c != "line"]
    frame = _reject(frame, frame.duplicated(columns, keep="first").to_numpy(), "duplicate_row", file, rejects)
    return _reject(frame, frame.duplicated(key, keep="first").to_numpy(), "duplicate_id", file, rejects)


def _reject_implausible(ratings, tags, config: MovieLensConfig, rejects: SourceRejects, rating_file: str):
    """Times outside the window (checked on raw seconds, so nothing overflows later), ratings outside the
    scale or non-finite, and repeated ratings/tags of one user, movie and time go to rejects."""
    lo_s, hi_s = config.time_window.bounds_seconds()
    lo_r, hi_r = config.rating_scale
    out = []
    for frame, file in ((ratings, rating_file), (tags, "tags.csv")):
        ts = frame["ts"].to_numpy(np.int64)
        frame = _reject(frame, (ts < lo_s) | (ts > hi_s), TIME_OUT_OF_RANGE, file, rejects)
        if "rating" in frame:
            rating = frame["rating"].to_numpy(np.float64)
            in_scale = np.isfinite(rating) & (rating >= lo_r) & (rating <= hi_r)
            frame = _reject(frame, ~in_scale, "rating_out_of_range", file, rejects)
            repeated = frame.duplicated(["user", "movie", "ts"], keep="first").to_numpy()
        else:
            key = frame["tag"].astype(str).str.strip().str.lower()
            repeated = frame.assign(_key=key).duplicated(["user", "movie", "ts", "_key"], keep="first").to_numpy()
        out.append(_reject(frame, repeated, "duplicate_row", file, rejects))
    return out[0], out[1]


def _drop_unknown_movies(ratings, tags, known: set, rejects: SourceRejects, rating_file: str):
    """Ratings/tags of movies absent from the movie file have no item row: reject them as unknown_item."""
    out = []
    for frame, file in ((ratings, rating_file), (tags, "tags.csv")):
        unknown = ~frame["movie"].isin(known).to_numpy()
        for row in frame[unknown].itertuples(index=False):  # rejected rows only
            rejects.add(file, row.line, "unknown_item", f"user={row.user} movie={row.movie} (not in the movie file)")
        out.append(frame[~unknown].reset_index(drop=True))
    return out[0], out[1]


def _subsample_users(ratings, tags, max_ratings: int, seed: int):
    """Keep a seeded random subset of whole users (pages stay intact) whose ratings total <= max_ratings."""
    per_user = ratings.groupby("user").size()
    order = np.random.default_rng([seed, 2]).permutation(len(per_user))
    shuffled = per_user.iloc[order]
    kept = shuffled.index[np.cumsum(shuffled.to_numpy()) <= max_ratings]
    return (ratings[ratings["user"].isin(kept)].reset_index(drop=True),
            tags[tags["user"].isin(kept)].reset_index(drop=True))
