"""`ServingLimits`: what one request may send and how much memory the serving caches may hold.

Every field can be set through the environment as `UNISR_SERVING_<FIELD>` (e.g. `UNISR_SERVING_MAX_QUERY_CHARS=512`),
which is how `serving.cli serve` configures its uvicorn workers; docs/reliability.md lists the defaults.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

ENV_PREFIX = "UNISR_SERVING_"


@dataclass(frozen=True)
class ServingLimits:
    """Request limits (violations: HTTP 413 for the body, 400 for the rest) and cache bounds."""

    max_body_bytes: int = 1 << 20      # a 1000-candidate request with 256-char ids is ~270 KB
    max_candidates: int = 1000         # one request's features and scores stay well inside the 20 ms budget
    max_id_chars: int = 256            # user and item ids
    max_query_chars: int = 1024        # longer than the encoder reads (256 tokens); a 1 MB query cost ~1 s
    query_cache_entries: int = 50_000  # never-seen query texts -> vectors (LRU)
    query_cache_bytes: int = 64 << 20  # the same LRU, bounded by the bytes of its texts and vectors
    key_cache_bytes: int = 32 << 20    # online reader: id -> serialized entity key (SQLite store)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ServingLimits.{f.name} must be a positive integer, got {value!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ServingLimits":
        """Defaults, overridden by `UNISR_SERVING_<FIELD>` variables; ValueError naming a malformed one."""
        environ = os.environ if environ is None else environ
        overrides = {}
        for f in fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name in environ:
                raw = environ[name].strip().replace("_", "")
                if not raw.isascii() or not raw.isdigit():
                    raise ValueError(f"${name}={environ[name]!r}: expected a positive integer")
                overrides[f.name] = int(raw)
        return replace(cls(), **overrides)
