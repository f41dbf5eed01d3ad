"""Validation of one ranking request: candidate ids, query text, and the domain (by id or name)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

MAX_CANDIDATES = 1000  # one request's features and scores stay well inside the 20 ms budget up to here


class RankingRequestError(ValueError):
    """A malformed ranking request (the caller's mistake; HTTP 400). The message says what to fix."""


@dataclass(frozen=True)
class Domain:
    """One domain as the model knows it."""

    domain_id: int
    name: str
    task: str  # "search" | "rec"


class DomainCatalog:
    """Domain ids and names a request may name; ids must also exist in the checkpoint."""

    def __init__(self, domains: list[Domain], n_model_domains: int):
        self._by_id = {d.domain_id: d for d in domains if d.domain_id < n_model_domains}
        self._by_name = {d.name: d for d in self._by_id.values()}

    @classmethod
    def load(cls, domains_parquet: Path, checkpoint_domains: list[dict], n_model_domains: int) -> "DomainCatalog":
        """From raw/domains.parquet when present, else the domains the checkpoint was trained with."""
        if Path(domains_parquet).exists():
            rows = pd.read_parquet(domains_parquet, columns=["domain_id", "name", "task"]).to_dict("records")
        else:
            rows = checkpoint_domains
        if not rows:
            raise FileNotFoundError(
                f"no domains known: {domains_parquet} is missing and the checkpoint has no domains in its meta; "
                f"run ingest (it writes raw/domains.parquet) or use a checkpoint trained from a training folder"
            )
        return cls([Domain(int(r["domain_id"]), str(r["name"]), str(r["task"])) for r in rows], n_model_domains)

    def resolve(self, domain: object) -> Domain:
        """A domain id (int or digit string) or name -> Domain; RankingRequestError if unknown."""
        if isinstance(domain, bool):  # bool is an int subclass: True is not domain 1
            found = None
        elif isinstance(domain, int):
            found = self._by_id.get(domain)
        elif isinstance(domain, str):
            found = self._by_name.get(domain) or (self._by_id.get(int(domain)) if domain.isdigit() else None)
        else:
            found = None
        if found is None:
            known = ", ".join(f"{d.domain_id}={d.name}" for d in self._by_id.values())
            raise RankingRequestError(f"unknown domain {domain!r}: use one of the ids or names {known}")
        return found

    def __iter__(self):
        return iter(self._by_id.values())


def check_user(user_id: object) -> str:
    """The user id, which must be a non-empty string."""
    if not isinstance(user_id, str) or not user_id:
        raise RankingRequestError(f"user_id must be a non-empty string, got {user_id!r}")
    return user_id


def check_candidates(item_ids: object) -> list[str]:
    """1..MAX_CANDIDATES distinct non-empty string item ids, in the caller's order."""
    if not isinstance(item_ids, (list, tuple)):
        raise RankingRequestError(f"items must be a list of item id strings, got {type(item_ids).__name__}")
    if not item_ids:
        raise RankingRequestError("items is empty: send between 1 and 1000 candidate item ids")
    if len(item_ids) > MAX_CANDIDATES:
        raise RankingRequestError(
            f"{len(item_ids)} candidates: at most {MAX_CANDIDATES} per request; split them over several requests"
        )
    bad = [(k, i) for k, i in enumerate(item_ids) if not isinstance(i, str) or not i]
    if bad:
        k, i = bad[0]
        raise RankingRequestError(f"items[{k}] = {i!r}: item ids must be non-empty strings ({len(bad)} bad)")
    # a duplicate would get two rows and two scores for one item: the caller's list is wrong, say so
    duplicates = [i for i, n in Counter(item_ids).items() if n > 1]
    if duplicates:
        raise RankingRequestError(f"duplicate candidate ids {duplicates[:5]}: send each item once")
    return list(item_ids)


def normalize_query(query: object) -> str | None:
    """Query text with whitespace collapsed; None for no query (None, "" or blanks)."""
    if query is None:
        return None
    if not isinstance(query, str):
        raise RankingRequestError(f"query must be a string or null, got {type(query).__name__}")
    text = " ".join(query.split())
    return text or None


def check_query_for_task(domain: Domain, query: str | None) -> None:
    """Search domains need a query; rec domains take none (the model was trained that way)."""
    if domain.task == "search" and query is None:
        raise RankingRequestError(f"domain {domain.name!r} is a search domain: send the query text in 'query'")
    if domain.task != "search" and query is not None:
        raise RankingRequestError(
            f"domain {domain.name!r} is a recommendation domain: send no query (null), or use a search domain"
        )
