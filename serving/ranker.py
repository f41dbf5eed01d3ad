"""`Ranker.rank()`: score N candidate items for a user (and query) in a domain with the served checkpoint.

Per request: one batched online read per view (user, items, item vectors, query, query vector) through
`features.online.OnlineFeatureReader`, a query vector from the LRU cache when the store has none, and one
forward pass of the checkpoint over the N rows. Defaults for what the store does not know:
- unknown user / item / query id: the model's OOV id row, categoricals missing (index 0), numerics masked;
- item without a text vector: the model's learned "no text" vector (all-zero row);
- query text never seen by the pipeline: no query id (OOV), its vector computed by the text encoder;
- user without a behaviour snapshot online: the model's learned "no history" (empty sequences).
The user's latest behaviour snapshot (last clicks and queries) and the text vectors of its items and queries come
in the same batched read as the candidates' (features.online).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from features.behaviour import NUMERIC_COLUMNS as BEHAVIOUR_NUMERIC
from features.definitions import feature_columns
from features.online import OnlineFeatureReader
from features.store import feature_store
from models.behaviour_inputs import UserBehaviour
from models.checkpoint import CorruptCheckpointError
from models.inference import Scorer
from models.model_registry import ModelRegistry, file_digest
from serving.dict_vocabularies import DictVocabularies
from serving.known_queries import KnownQueries
from serving.limits import ServingLimits
from serving.query_embedding_cache import Encoder, QueryEmbeddingCache
from serving.ranking_request import DomainCatalog, check_candidates, check_query_for_task, check_user, normalize_query
from unisr_data.paths import Paths


@dataclass(frozen=True)
class RankedItem:
    """One candidate and its predicted click probability."""

    item_id: str
    score: float


@dataclass(frozen=True)
class _ServedModel:
    # swapped as one object on reload, so a request never mixes one version's scorer with another's domains
    version: str
    checkpoint: Path
    scorer: Scorer
    domains: DomainCatalog


class Ranker:
    """Ranks candidates with a checkpoint (default: the registry's promoted version) over Feast online features.

    A checkpoint is refused (models.checkpoint.CorruptCheckpointError, at construction or by `reload`, which then
    keeps the served model) when its bytes differ from the sha256 recorded for it, it is empty/truncated, holds a
    non-finite tensor, or was built for another dataset (domain table, features or text width differ)."""

    def __init__(self, paths: Paths, checkpoint: Path | None = None, feature_reader: OnlineFeatureReader | None = None,
                 text_encoder: Encoder | None = None, *, online: str = "sqlite", redis_connection: str | None = None,
                 query_cache_size: int | None = None, limits: ServingLimits | None = None):
        self.paths = paths
        self.limits = limits or ServingLimits()
        self._pinned = Path(checkpoint) if checkpoint is not None else None
        self._reload_lock = threading.Lock()
        self._model = self._load(*self._resolve_checkpoint())
        self.text_dim = self._model.scorer.spec.text_dim
        self._reader = feature_reader or _default_reader(paths, online, redis_connection, self.text_dim,
                                                         self.limits.key_cache_bytes)
        if self._reader.emb_dim != self.text_dim:
            raise CorruptCheckpointError(
                self._model.checkpoint, f"it expects {self.text_dim}-dim text vectors but the online store holds "
                                        f"{self._reader.emb_dim}-dim ones: serve a model trained on the same embeddings"
            )
        self.known_queries = KnownQueries.load(paths.raw_dir / "queries.parquet")
        self.query_cache = QueryEmbeddingCache(text_encoder, dim=self.text_dim,
                                               maxsize=query_cache_size or self.limits.query_cache_entries,
                                               max_bytes=self.limits.query_cache_bytes)

    @property
    def model_version(self) -> str:
        """The registry version served (or `file:<path>#<sha8>` for a pinned checkpoint)."""
        return self._model.version

    def _resolve_checkpoint(self) -> tuple[str, Path, str | None]:
        """(version, checkpoint file, the sha256 recorded for it by the registry or None for a pinned file)."""
        if self._pinned is not None:
            if not self._pinned.exists():
                raise FileNotFoundError(f"checkpoint {self._pinned} does not exist")
            # a pinned file is checked against its own .sha256 sidecar (written with it) by the load
            return f"file:{self._pinned}#{file_digest(self._pinned)[:8]}", self._pinned, None
        registry = ModelRegistry(self.paths.models_dir / "registry")
        promoted = registry.promoted()
        if promoted is None:
            raise FileNotFoundError(
                f"no model is promoted in {registry.root}: run the training pipeline (its promotion gate "
                f"promotes one), or pass an explicit checkpoint (Ranker(paths, checkpoint=...), --checkpoint)"
            )
        return promoted.version, Path(promoted.checkpoint), promoted.expected_sha256

    def _load(self, version: str, checkpoint: Path, expected_sha256: str | None) -> _ServedModel:
        scorer = Scorer.from_checkpoint(checkpoint, device="cpu", expected_sha256=expected_sha256)
        served = set(feature_columns().values()) | set(BEHAVIOUR_NUMERIC)
        missing = [c for c in [*scorer.vocab.cat_columns, *scorer.vocab.num_columns] if c not in served]
        if missing:
            raise CorruptCheckpointError(
                checkpoint, f"it was trained with features {missing} that the online store does not serve "
                            f"(features.definitions): serve a checkpoint trained on this feature set")
        scorer.vocab = DictVocabularies(scorer.vocab)
        domains = DomainCatalog.load(self.paths.raw_dir / "domains.parquet", scorer.meta.get("domains", []),
                                     scorer.spec.domain_tasks, checkpoint)
        return _ServedModel(version, checkpoint, scorer, domains)

    def reload(self) -> bool:
        """Serve the newly promoted version (or the re-written pinned file); True if the model changed.

        On any error (CorruptCheckpointError, FileNotFoundError) the served model stays as it was."""
        with self._reload_lock:
            version, checkpoint, expected_sha256 = self._resolve_checkpoint()
            if version == self._model.version:
                return False
            model = self._load(version, checkpoint, expected_sha256)
            if model.scorer.spec.text_dim != self.text_dim:
                raise CorruptCheckpointError(
                    checkpoint, f"{version} expects {model.scorer.spec.text_dim}-dim text vectors, the online store "
                                f"and the served model use {self.text_dim}: restart the server to switch"
                )
            self._model = model
            return True

    def warm_up(self) -> None:
        """Load the query encoder now, so the first unseen query does not pay for it."""
        self.query_cache.warm_up()

    def rank(self, user_id: str, domain: int | str, query_text: str | None,
             candidate_item_ids: list[str]) -> list[RankedItem]:
        """Candidates sorted by predicted click probability, highest first (ties keep the caller's order)."""
        return self.rank_with_version(user_id, domain, query_text, candidate_item_ids)[1]

    def rank_with_version(self, user_id: str, domain: int | str, query_text: str | None,
                          candidate_item_ids: list[str]) -> tuple[str, list[RankedItem]]:
        """(model version that scored, ranked items): the version is read once, so it matches the scores."""
        model, limits = self._model, self.limits
        user_id = check_user(user_id, limits)
        items = check_candidates(candidate_item_ids, limits)
        resolved = model.domains.resolve(domain)
        query = normalize_query(query_text, limits)
        check_query_for_task(resolved, query)

        query_id = self.known_queries.id_of(query) if query is not None else None
        features = self._reader.read(user_id, items, query_id, resolved.domain_id)
        query_emb = features.query_emb
        if query is not None and not features.has_query_text:
            query_emb = np.tile(self.query_cache.get(query), (len(items), 1))
        frame = features.frame
        frame["domain_id"] = resolved.domain_id
        history = features.behaviour
        behaviour = UserBehaviour(history.item_ids, history.item_emb, history.query_emb) if history.known else None
        scores = model.scorer.score(frame, features.item_emb, query_emb, behaviour)
        order = np.argsort(-scores, kind="stable")
        return model.version, [RankedItem(items[k], float(scores[k])) for k in order]


def _default_reader(paths: Paths, online: str, redis_connection: str | None, text_dim: int,
                    key_cache_bytes: int) -> OnlineFeatureReader:
    store = feature_store(paths, online, redis_connection)
    try:
        return OnlineFeatureReader(store, key_cache_bytes=key_cache_bytes)
    except FileNotFoundError:
        # the embedding parquet is not on this serving host: trust the checkpoint's width
        return OnlineFeatureReader(store, emb_dim=text_dim, key_cache_bytes=key_cache_bytes)
