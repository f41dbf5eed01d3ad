"""Synthetic multi-domain search & recommendation logs standing in for the paper's seven Alipay domains.

Latent topics drive both the words of item/query texts and the clicks, so text carries signal for item ids
never seen in training; each domain shifts topic preferences its own way (so negative transfer is possible);
one cold-start domain ("service card") mostly shows items that went live in the last few days.
Impressions are generated chunk by chunk with vectorised numpy and streamed to parquet parts.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from unisr_data.contract import ImpressionWriter, write_table
from unisr_data.topic_vocabulary import CATEGORIES, ITEM_ADJECTIVES, QUERY_PREFIXES, TOPIC_NAMES, TOPICS

DAY_US = 86_400 * 1_000_000
#: Folder (beside the source folder) of the generator's evaluation-only truth: true click probabilities.
TRUTH_DIR_NAME = "_truth"


@dataclass(frozen=True)
class DomainSpec:
    """One synthetic domain: its task, role, traffic share and click-model shape."""

    name: str
    task: str
    role: str
    share: float  # share of requests (= of impressions)
    affinity_weight: float  # how much the user's topic preference drives clicks here (< 0: inverted)
    bias: float  # base click logit
    new_item_share: float  # share of candidates drawn from items younger than `new_item_days`


#: Seven domains like the paper's: 2 search, 5 rec, one of them the cold-start "service card".
#: Largest/smallest traffic share is 0.40/0.006 ≈ 67×. The cold-start domain gets 16 % of the traffic so that
#: its test split (the last 45 % of its impressions, ~30k rows) bounds an AUC's 95 % CI to ±0.01.
DOMAINS: tuple[DomainSpec, ...] = (
    DomainSpec("search_mall", "search", "pretrain", 0.26, 0.5, -3.4, 0.05),
    DomainSpec("search_services", "search", "pretrain", 0.08, 0.5, -3.2, 0.05),
    DomainSpec("rec_homefeed", "rec", "pretrain", 0.40, 1.0, -2.3, 0.10),
    DomainSpec("rec_video", "rec", "pretrain", 0.12, 0.8, -2.0, 0.10),
    DomainSpec("rec_coupons", "rec", "pretrain", 0.084, -0.4, -2.2, 0.05),
    DomainSpec("rec_minishop", "rec", "pretrain", 0.006, 0.9, -2.1, 0.20),
    DomainSpec("rec_service_card", "rec", "coldstart", 0.19, 1.2, -2.2, 0.80),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size, seed and time span of a synthetic dataset."""

    seed: int = 7
    # 3,000 users over 400k impressions: the median cold-start test impression's user has 20 prior clicks (13 per
    # distinct test user before the test window), so behaviour sequences carry a history; 20,000 users gave 3 (2).
    n_users: int = 3_000
    n_items: int = 8_000  # initial catalogue, live before `start`
    new_items_per_day: int = 300
    n_queries: int = 2_000
    n_days: int = 21
    n_impressions: int = 400_000
    items_per_request: int = 10
    chunk_rows: int = 100_000
    start: str = "2024-03-01"  # first event day (UTC)
    new_item_days: int = 3  # "new" for candidate sampling of the cold-start domain
    missing_text_share: float = 0.02  # items without text (allowed by the contract)

    @classmethod
    def default(cls) -> "SyntheticConfig":
        """The `make run` size: ~400k impressions (a cold-start test split of ~30k), minutes end to end on 2 cores."""
        return cls()

    @classmethod
    def tiny(cls) -> "SyntheticConfig":
        """~20k impressions over 14 days, for tests."""
        return cls(n_users=1_500, n_items=1_200, new_items_per_day=60, n_queries=400, n_days=14,
                   n_impressions=20_000, chunk_rows=5_000)

    def __post_init__(self) -> None:
        if self.n_days < 14:
            raise ValueError(f"n_days must be >= 14 (new items appear day by day over >= 14 days), got {self.n_days}")
        if self.items_per_request < 1 or self.chunk_rows < self.items_per_request:
            raise ValueError("chunk_rows must be >= items_per_request >= 1")
        for name in ("n_users", "n_items", "n_queries", "n_impressions", "new_items_per_day"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _start_us(config: SyntheticConfig) -> int:
    start = datetime.fromisoformat(config.start).replace(tzinfo=timezone.utc)
    return int(start.timestamp()) * 1_000_000


def _ids(prefix: str, n: int, offset: int = 0) -> pa.Array:
    """`prefix0`, `prefix1`, … as an arrow string array, vectorised."""
    numbers = pc.cast(pa.array(np.arange(offset, offset + n, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.scalar(prefix), numbers, "")


def _topic_words() -> tuple[np.ndarray, np.ndarray]:
    """(words per topic as a 2-D str array [T, W], category index per topic [T])."""
    words = np.array([TOPICS[t][1] for t in TOPIC_NAMES], dtype=object)
    cats = np.array([CATEGORIES.index(TOPICS[t][0]) for t in TOPIC_NAMES])
    return words, cats


def _join_words(columns: list[np.ndarray]) -> np.ndarray:
    """Join equal-length str arrays with spaces, dropping empty pieces."""
    out = columns[0].astype(object)
    for col in columns[1:]:
        out = out + " " + col.astype(object)
    return np.char.strip(np.char.replace(out.astype(str), "  ", " "))


@dataclass
class _World:
    """The latent state clicks are drawn from (kept in memory: sizes are users + items, not impressions)."""

    user_pref_cdf: np.ndarray  # [U, T] cumulative topic preference
    user_affinity: np.ndarray  # [U, T] click-logit contribution of each topic, float32
    item_topic: np.ndarray  # [I] items ordered by created_at
    item_quality: np.ndarray  # [I]
    item_created_us: np.ndarray  # [I] sorted
    topic_item_key: np.ndarray  # [I] sorted key topic * 2**50 + created, for live-items-per-topic lookups
    topic_item_index: np.ndarray  # [I] item index in the order of topic_item_key
    topic_item_start: np.ndarray  # [T+1] offsets into topic_item_key
    query_topic_start: np.ndarray  # [T+1] offsets of queries grouped by topic
    domain_shift: np.ndarray  # [K, T] domain-specific topic preference shift


def _build_world(config: SyntheticConfig, rng: np.random.Generator, dims: dict) -> tuple[_World, dict[str, pa.Table]]:
    n_topics = len(TOPIC_NAMES)
    words, topic_category = _topic_words()
    n_words = words.shape[1]

    # Users: concentrated topic preferences (Dirichlet α < 1) and attributes loosely tied to them.
    pref = rng.dirichlet(np.full(n_topics, 0.25), size=config.n_users)
    affinity = (2.5 * (np.sqrt(n_topics * pref) - 1.0)).astype(np.float32)
    ages = np.array(["18-24", "25-34", "35-44", "45-54", "55+"])
    age_idx = rng.integers(0, len(ages), config.n_users)
    genders = np.where(rng.random(config.n_users) < 0.05, None, np.where(rng.random(config.n_users) < 0.5, "f", "m"))
    segments = np.array(["student", "office", "family", "retired", "creator"])
    seg_idx = np.where(rng.random(config.n_users) < 0.6, np.minimum(age_idx, 3), rng.integers(0, 5, config.n_users))
    users = pa.table({
        "user_id": _ids("u", config.n_users),
        "age_bucket": pa.array(ages[age_idx]),
        "gender": pa.array(genders.tolist(), pa.string()),
        "segment": pa.array(segments[seg_idx]),
    })

    # Items: initial catalogue live during the 30 days before start, then new items every day.
    start = _start_us(config)
    n_new = config.new_items_per_day * config.n_days
    n_items = config.n_items + n_new
    created = np.concatenate([
        start - rng.integers(1, 30 * DAY_US, config.n_items),
        start + np.repeat(np.arange(config.n_days, dtype=np.int64), config.new_items_per_day) * DAY_US
        + rng.integers(0, DAY_US, n_new),
    ])
    created.sort()
    topic_popularity = rng.dirichlet(np.full(n_topics, 3.0))
    item_topic = rng.choice(n_topics, size=n_items, p=topic_popularity)
    pick = rng.integers(0, n_words, size=(n_items, 3))
    texts = _join_words([
        np.array(ITEM_ADJECTIVES)[rng.integers(0, len(ITEM_ADJECTIVES), n_items)],
        words[item_topic, pick[:, 0]], words[item_topic, pick[:, 1]], words[item_topic, pick[:, 2]],
    ])
    texts = np.where(rng.random(n_items) < config.missing_text_share, None, texts.astype(object))
    # Category follows the topic 90% of the time, so category alone is a weaker signal than text.
    noisy = rng.random(n_items) < 0.1
    category_idx = np.where(noisy, rng.integers(0, len(CATEGORIES), n_items), topic_category[item_topic])
    subcategory = np.where(noisy, np.array(TOPIC_NAMES)[rng.integers(0, n_topics, n_items)],
                           np.array(TOPIC_NAMES)[item_topic])
    items = pa.table({
        "item_id": _ids("it", n_items),
        "text": pa.array(texts.tolist(), pa.string()),
        "category": pa.array(np.array(CATEGORIES)[category_idx]),
        "subcategory": pa.array(subcategory),
        "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
    })
    key = item_topic.astype(np.int64) * (1 << 50) + (created - created[0])
    order = np.argsort(key, kind="stable")

    # Queries: grouped by topic so a search request can pick one of its topic by offset arithmetic.
    query_topic = np.sort(rng.choice(n_topics, size=config.n_queries, p=topic_popularity))
    qpick = rng.integers(0, n_words, size=(config.n_queries, 2))
    second = np.where(rng.random(config.n_queries) < 0.5, words[query_topic, qpick[:, 1]], "")
    qtext = _join_words([np.array(QUERY_PREFIXES)[rng.integers(0, len(QUERY_PREFIXES), config.n_queries)],
                         words[query_topic, qpick[:, 0]], second])
    queries = pa.table({"query_id": _ids("q", config.n_queries), "text": pa.array(qtext)})

    domains = pa.table({
        "domain_id": pa.array(np.arange(len(DOMAINS), dtype=np.int32)),
        "name": [d.name for d in DOMAINS],
        "task": [d.task for d in DOMAINS],
        "role": [d.role for d in DOMAINS],
    })
    world = _World(
        user_pref_cdf=np.cumsum(pref, axis=1),
        user_affinity=affinity,
        item_topic=item_topic,
        item_quality=rng.normal(0.0, 0.4, n_items).astype(np.float32),
        item_created_us=created,
        topic_item_key=key[order],
        topic_item_index=order,
        topic_item_start=np.searchsorted(key[order], np.arange(n_topics + 1, dtype=np.int64) * (1 << 50)),
        query_topic_start=np.searchsorted(query_topic, np.arange(n_topics + 1)),
        domain_shift=rng.normal(0.0, 0.6, size=(len(DOMAINS), n_topics)).astype(np.float32),
    )
    dims.update(n_items=n_items, start=start, first_created=created[0])
    return world, {"domains": domains, "users": users, "items": items, "queries": queries}


def _sample_topic(cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One topic per row from per-row cumulative distributions [N, T]."""
    r = rng.random(len(cdf))[:, None]
    return np.minimum((cdf < r).sum(axis=1), cdf.shape[1] - 1)


def _impression_chunk(config: SyntheticConfig, world: _World, dims: dict, tables: dict[str, pa.Table],
                      chunk: int, n_chunks: int, first_request: int, n_requests: int) -> tuple[pa.Table, pa.Table]:
    """All impressions of `n_requests` page views in the chunk's time slice, and their true click probabilities."""
    rng = np.random.default_rng([config.seed, 1, chunk])
    k = config.items_per_request
    specs = DOMAINS
    span = config.n_days * DAY_US
    # Chunk c covers the time slice [c/C, (c+1)/C) of the period, so parts are in time order.
    frac = np.sort(rng.random(n_requests))
    t_req = dims["start"] + ((chunk + frac) / n_chunks * span).astype(np.int64)
    # Domain counts follow the shares exactly (remainder drawn at random), so the imbalance is planted, not luck.
    share = np.array([d.share for d in specs]) / sum(d.share for d in specs)
    per_domain = np.floor(share * n_requests).astype(np.int64)
    per_domain += np.bincount(rng.choice(len(specs), n_requests - per_domain.sum(), p=share), minlength=len(specs))
    domain = rng.permutation(np.repeat(np.arange(len(specs)), per_domain))
    user = np.minimum((config.n_users * rng.random(n_requests) ** 1.6).astype(np.int64), config.n_users - 1)
    is_search = np.array([d.task == "search" for d in specs])[domain]
    req_topic = _sample_topic(world.user_pref_cdf[user], rng)
    # Search: the query's topic is the user's intent; a query of that topic is picked.
    q_lo, q_hi = world.query_topic_start[req_topic], world.query_topic_start[req_topic + 1]
    has_query = is_search & (q_hi > q_lo)
    query = np.where(has_query, q_lo + (rng.random(n_requests) * (q_hi - q_lo)).astype(np.int64), -1)

    # Candidates: [R, k]. Per slot: from the request topic (retrieval), a new item, or any live item.
    t = np.repeat(t_req, k)
    topic = np.repeat(req_topic, k)
    dom = np.repeat(domain, k)
    n_live = np.searchsorted(world.item_created_us, t, side="right")
    n_new_lo = np.searchsorted(world.item_created_us, t - config.new_item_days * DAY_US, side="right")
    topical_share = np.where(np.repeat(is_search, k), 0.6, 0.35)
    new_share = np.array([d.new_item_share for d in specs])[dom]
    r = rng.random(len(t))
    u = rng.random(len(t))
    any_live = np.minimum((u * n_live).astype(np.int64), n_live - 1)
    new_item = n_new_lo + np.minimum((u * (n_live - n_new_lo)).astype(np.int64), np.maximum(n_live - n_new_lo - 1, 0))
    t_lo = world.topic_item_start[topic]
    t_live = np.searchsorted(world.topic_item_key, topic.astype(np.int64) * (1 << 50) + (t - dims["first_created"]),
                             side="right")
    topical = world.topic_item_index[t_lo + np.minimum((u * (t_live - t_lo)).astype(np.int64),
                                                       np.maximum(t_live - t_lo - 1, 0))]
    item = np.where(r < new_share, new_item,
                    np.where((r < new_share + topical_share) & (t_live > t_lo), topical, any_live))
    item = np.where(n_live > 0, item, 0)

    # Clicks: logistic of domain bias + weighted user-topic affinity + domain shift + quality + position bias.
    it_topic = world.item_topic[item]
    uu = np.repeat(user, k)
    w_aff = np.array([d.affinity_weight for d in specs], dtype=np.float32)[dom]
    logit = (np.array([d.bias for d in specs], dtype=np.float32)[dom]
             + w_aff * world.user_affinity[uu, it_topic]
             + world.domain_shift[dom, it_topic]
             + world.item_quality[item]
             - 0.12 * np.tile(np.arange(k, dtype=np.float32), n_requests))
    relevant = np.repeat(is_search, k) & (it_topic == topic)
    logit = logit + np.where(relevant, 2.5, np.where(np.repeat(is_search, k), -1.0, 0.0)).astype(np.float32)
    click_prob = 1.0 / (1.0 + np.exp(-logit))
    clicked = (rng.random(len(t)) < click_prob).astype(np.int8)

    first = first_request * k
    q_rep = np.repeat(query, k)
    impressions = pa.table({
        "impression_id": _ids("imp", len(t), first),
        # Within a request, impressions share its time; a few ms apart keeps order stable downstream.
        "event_time": pa.array(t + np.tile(np.arange(k, dtype=np.int64), n_requests), pa.timestamp("us", tz="UTC")),
        "domain_id": pa.array(dom.astype(np.int32)),
        "user_id": pc.take(tables["users"].column("user_id"), pa.array(uu)),
        "query_id": pc.take(tables["queries"].column("query_id"),
                            pa.array(np.where(q_rep >= 0, q_rep, 0), mask=q_rep < 0)),
        "item_id": pc.take(tables["items"].column("item_id"), pa.array(item)),
        "request_id": _ids("r", n_requests, first_request).take(pa.array(np.repeat(np.arange(n_requests), k))),
        "position": pa.array(np.tile(np.arange(k, dtype=np.int32), n_requests)),
        "clicked": pa.array(clicked),
    })
    truth = pa.table({"impression_id": impressions.column("impression_id"),
                      "click_probability": pa.array(click_prob.astype(np.float32))})
    return impressions, truth


def truth_dir_for(landing_dir: Path) -> Path:
    """Where `generate(config, landing_dir)` puts the evaluation-only truth: beside, never inside, the source."""
    return Path(landing_dir).parent / TRUTH_DIR_NAME


def generate(config: SyntheticConfig, landing_dir: Path) -> dict[str, int]:
    """Write domains/users/items/queries and chunked impressions under `landing_dir`; returns rows per table.

    Each impression's true click probability goes to `truth_dir_for(landing_dir)/click_probability/` — an
    evaluation-only table (the Bayes ceiling of the report) that no ingest, training or serving path reads.
    """
    landing_dir = Path(landing_dir)
    truth_dir = truth_dir_for(landing_dir) / "click_probability"
    truth_dir.mkdir(parents=True, exist_ok=True)
    for old in truth_dir.glob("part-*.parquet"):
        old.unlink()
    rng = np.random.default_rng([config.seed, 0])
    dims: dict = {}
    world, tables = _build_world(config, rng, dims)
    counts = {}
    for name, table in tables.items():
        write_table(landing_dir, name, table)
        counts[name] = table.num_rows
    k = config.items_per_request
    n_requests = config.n_impressions // k
    per_chunk = max(1, config.chunk_rows // k)
    n_chunks = -(-n_requests // per_chunk)
    writer = ImpressionWriter(landing_dir)
    for chunk in range(n_chunks):
        first = chunk * per_chunk
        impressions, truth = _impression_chunk(config, world, dims, tables, chunk, n_chunks, first,
                                               min(per_chunk, n_requests - first))
        writer.write(impressions)
        pq.write_table(truth, truth_dir / f"part-{chunk:05d}.parquet")
    counts["impressions"] = writer.rows
    return counts
