"""Validation of one ranking request: candidate ids, query text, and the domain (by id or name)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from serving.limits import ServingLimits

_DEFAULT_LIMITS = ServingLimits()
MAX_CANDIDATES = _DEFAULT_LIMITS.max_candidates  # the default; a Ranker's `limits` may set another


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
    def load(cls, domains_parquet: Path, checkpoint_domains: list[dict], model_tasks: list[str],
             checkpoint: Path | str = "checkpoint") -> "DomainCatalog":
        """The dataset's raw/domains.parquet, which must agree with the checkpoint's own domain table (meta.domains)
        and its per-domain tasks; without the file, the checkpoint's table. A disagreement means the checkpoint
        was trained on another dataset: CorruptCheckpointError naming both, never a silent override."""
        from models.checkpoint import CorruptCheckpointError

        model = [Domain(int(r["domain_id"]), str(r["name"]), str(r["task"])) for r in checkpoint_domains]
        if Path(domains_parquet).exists():
            rows = pd.read_parquet(domains_parquet, columns=["domain_id", "name", "task"]).to_dict("records")
            dataset = [Domain(int(r["domain_id"]), str(r["name"]), str(r["task"])) for r in rows]
        else:
            dataset = model
        if not dataset:
            raise FileNotFoundError(
                f"no domains known: {domains_parquet} is missing and the checkpoint has no domains in its meta; "
                f"run ingest (it writes raw/domains.parquet) or use a checkpoint trained from a training folder"
            )
        by_model_task = [Domain(k, "", t) for k, t in enumerate(model_tasks)]
        problems = []
        if model and sorted(model, key=_key) != sorted(dataset, key=_key):
            problems.append(f"its domains {_table(model)} differ from {domains_parquet}'s {_table(dataset)}")
        mismatched = [d for d in dataset if d.domain_id >= len(model_tasks) or model_tasks[d.domain_id] != d.task]
        if mismatched or len(dataset) != len(model_tasks):
            problems.append(f"its model has {len(model_tasks)} domain(s) with tasks {_table(by_model_task)}, the "
                            f"dataset {_table(dataset)}")
        if problems:
            raise CorruptCheckpointError(
                checkpoint, "built for another dataset: " + "; ".join(problems) + ": serve a checkpoint trained on "
                            "this dataset, or the dataset it was trained on")
        return cls(dataset, len(model_tasks))

    def resolve(self, domain: object) -> Domain:
        """A domain id (int or digit string) or name -> Domain; RankingRequestError if unknown."""
        if isinstance(domain, bool):  # bool is an int subclass: True is not domain 1
            found = None
        elif isinstance(domain, int):
            found = self._by_id.get(domain)
        elif isinstance(domain, str):
            # isdecimal() alone is not enough: "²" is a digit to Python but not to int()
            digits = domain.isascii() and domain.isdecimal() and len(domain) <= 18
            found = self._by_name.get(domain) or (self._by_id.get(int(domain)) if digits else None)
        else:
            found = None
        if found is None:
            known = ", ".join(f"{d.domain_id}={d.name}" for d in self._by_id.values())
            raise RankingRequestError(f"unknown domain {_show(domain)}: use one of the ids or names {known}")
        return found

    def __iter__(self):
        return iter(self._by_id.values())


def _key(domain: Domain) -> tuple:
    return domain.domain_id, domain.name, domain.task


def _table(domains: list[Domain]) -> str:
    return "[" + ", ".join(f"{d.domain_id}={d.name + ':' if d.name else ''}{d.task}"
                           for d in sorted(domains, key=_key)) + "]"


def _show(value: object, limit: int = 60) -> str:
    """repr of a caller's value, cut to `limit` characters: error messages never echo a megabyte back."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(value) if isinstance(value, str) else '?'} chars)"


def check_text(field: str, value: object, max_chars: int) -> str:
    """A non-empty string of at most `max_chars` characters that is valid Unicode (no lone surrogates such as
    "\\ud800", which JSON can carry but UTF-8, SQLite and the tokenizer cannot)."""
    if not isinstance(value, str) or not value:
        raise RankingRequestError(f"{field} must be a non-empty string, got {_show(value)}")
    if len(value) > max_chars:
        raise RankingRequestError(f"{field} has {len(value)} characters: at most {max_chars}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise RankingRequestError(
            f"{field} is not valid Unicode: lone surrogate {value[err.start]!r} at character {err.start}"
        ) from None
    return value


def check_user(user_id: object, limits: ServingLimits = _DEFAULT_LIMITS) -> str:
    """The user id, which must be a non-empty string."""
    return check_text("user_id", user_id, limits.max_id_chars)


def check_candidates(item_ids: object, limits: ServingLimits = _DEFAULT_LIMITS) -> list[str]:
    """1..max_candidates distinct non-empty string item ids, in the caller's order."""
    if not isinstance(item_ids, (list, tuple)):
        raise RankingRequestError(f"items must be a list of item id strings, got {type(item_ids).__name__}")
    most = limits.max_candidates
    if not item_ids:
        raise RankingRequestError(f"items is empty: send between 1 and {most} candidate item ids")
    if len(item_ids) > most:
        raise RankingRequestError(
            f"{len(item_ids)} candidates: at most {most} per request; split them over several requests"
        )
    bad = [(k, i) for k, i in enumerate(item_ids) if not isinstance(i, str) or not i]
    if bad:
        k, i = bad[0]
        raise RankingRequestError(f"items[{k}] = {_show(i)}: item ids must be non-empty strings ({len(bad)} bad)")
    for k, i in enumerate(item_ids):
        check_text(f"items[{k}]", i, limits.max_id_chars)
    # a duplicate would get two rows and two scores for one item: the caller's list is wrong, say so
    duplicates = [i for i, n in Counter(item_ids).items() if n > 1]
    if duplicates:
        raise RankingRequestError(f"duplicate candidate ids {_show(duplicates[:5], 200)}: send each item once")
    return list(item_ids)


def normalize_query(query: object, limits: ServingLimits = _DEFAULT_LIMITS) -> str | None:
    """Query text with whitespace collapsed; None for no query (None, "" or blanks)."""
    if query is None:
        return None
    if not isinstance(query, str):
        raise RankingRequestError(f"query must be a string or null, got {type(query).__name__}")
    if not query:
        return None
    text = " ".join(check_text("query", query, limits.max_query_chars).split())
    return text or None


def check_query_for_task(domain: Domain, query: str | None) -> None:
    """Search domains need a query; rec domains take none (the model was trained that way)."""
    if domain.task == "search" and query is None:
        raise RankingRequestError(f"domain {domain.name!r} is a search domain: send the query text in 'query'")
    if domain.task != "search" and query is not None:
        raise RankingRequestError(
            f"domain {domain.name!r} is a recommendation domain: send no query (null), or use a search domain"
        )
