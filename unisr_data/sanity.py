"""Data sanity gates shared by the adapters, validation and the blocking checks (docs/reliability.md, "Data").

- `EventTimeWindow`: event times before `earliest` or after load time + `max_future` are `time_out_of_range`.
- `ShareBreach` / `share_breaches`: per file (or table), bad rows over a share threshold, with the top reasons.
- `items_without_text`: how many items lack the text the model embeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

EARLIEST_EVENT_TIME = datetime(1990, 1, 1, tzinfo=timezone.utc)
TIME_OUT_OF_RANGE = "time_out_of_range"
#: Share of items without text above which the item-text check fails, per dataset. MIND's news.tsv covers only
#: part of the impressed news (the real mind-small subset: ~78% of items have no text), the others have text
#: for (almost) every item. An unknown dataset gets the strictest default. MIND's click histories add the articles
#: users clicked before the log, most of them not in the subset's news.tsv either (91.6 % of items without text).
MAX_ITEMS_WITHOUT_TEXT = {"synthetic": 0.05, "movielens": 0.01, "mind": 0.95}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class EventTimeWindow:
    """The plausible span of event times: [earliest, load time + max_future]; anything else is quarantined."""

    earliest: datetime = EARLIEST_EVENT_TIME
    max_future: timedelta = timedelta(days=1)
    #: the load time; None = the wall clock when `bounds()` is called.
    now: datetime | None = None

    @classmethod
    def from_settings(cls, earliest: str, max_future_days: float) -> "EventTimeWindow":
        """From config values: an ISO date/time (UTC when naive) and a number of days."""
        try:
            start = datetime.fromisoformat(earliest)
        except ValueError as error:
            raise ValueError(f"earliest event time {earliest!r} is not an ISO date (e.g. 1990-01-01)") from error
        if max_future_days < 0:
            raise ValueError(f"max_future_days must be >= 0, got {max_future_days}")
        return cls(_utc(start), timedelta(days=max_future_days))

    def bounds(self) -> tuple[datetime, datetime]:
        """(earliest, latest) allowed event time, both inclusive and UTC."""
        now = _utc(self.now) if self.now is not None else datetime.now(timezone.utc)
        return _utc(self.earliest), now + self.max_future

    def bounds_seconds(self) -> tuple[int, int]:
        """`bounds()` as unix seconds: check raw seconds against these *before* scaling to micro/nanoseconds,
        so that a value such as 1e13 s is rejected instead of overflowing int64."""
        lo, hi = self.bounds()
        return int(lo.timestamp()), int(hi.timestamp())

    def describe(self) -> str:
        lo, hi = self.bounds()
        return f"[{lo:%Y-%m-%d %H:%M:%S}, {hi:%Y-%m-%d %H:%M:%S}] UTC"


def top_reasons(by_reason: dict[str, int], k: int = 3) -> str:
    """`reason (n), …` for the `k` most frequent reasons."""
    ranked = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return ", ".join(f"{reason} ({n:,})" for reason, n in ranked) or "none"


@dataclass(frozen=True)
class ShareBreach:
    """One file/table whose share of bad rows is above the threshold."""

    name: str
    rows: int
    bad: int
    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.bad / self.rows if self.rows else (1.0 if self.bad else 0.0)

    def describe(self, verb: str = "rejected") -> str:
        return (f"{self.name}: {self.bad:,} of {self.rows:,} rows {verb} ({self.share:.2%}); "
                f"top reasons: {top_reasons(self.by_reason)}")


def share_breaches(counts: dict[str, tuple[int, int, dict[str, int]]], max_share: float) -> list[ShareBreach]:
    """Entries of `{name: (rows, bad rows, {reason: n})}` whose bad share exceeds `max_share`, worst first."""
    found = [ShareBreach(name, rows, bad, dict(reasons)) for name, (rows, bad, reasons) in counts.items()]
    return sorted((b for b in found if b.share > max_share), key=lambda b: (-b.share, b.name))


def items_without_text(items_path: Path) -> tuple[int, int]:
    """(items whose text is null or blank, all items) of an items parquet file."""
    text = pq.read_table(items_path, columns=["text"]).column("text")
    missing = text.null_count + int(pc.sum(pc.equal(pc.utf8_trim_whitespace(text), "")).as_py() or 0)
    return missing, len(text)


def max_items_without_text(dataset: str, configured: float | None = None) -> float:
    """The configured limit, else the dataset's default (`MAX_ITEMS_WITHOUT_TEXT`)."""
    if configured is not None:
        return configured
    return MAX_ITEMS_WITHOUT_TEXT.get(dataset, min(MAX_ITEMS_WITHOUT_TEXT.values()))
