"""Partition keys that fit the source's span: days for daily data, months for long-span sources."""
from datetime import date, timedelta

import pytest

from unisr_data.partitions import MAX_DAILY_SPAN_DAYS, days_of, granularity, partition_key_of, partition_keys


def _days(first: str, n: int, step: int = 1) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=i * step)).isoformat() for i in range(n)]


def test_short_sources_get_one_partition_per_day():
    days = _days("2024-03-01", 30)
    assert granularity(days) == "day" and partition_keys(days) == days
    assert granularity(_days("2024-01-01", MAX_DAILY_SPAN_DAYS)) == "day"


def test_long_span_sources_get_one_partition_per_month():
    """MovieLens-like: 22 years of ratings on every 2nd day → 264 monthly partitions, not ~4,000 daily ones."""
    days = _days("1996-01-01", 4018, step=2)
    keys = partition_keys(days)
    assert granularity(days) == "month" and len(keys) == 264
    assert keys[0] == "1996-01" and keys == sorted(keys)
    assert granularity(_days("2024-01-01", MAX_DAILY_SPAN_DAYS + 1)) == "month"


def test_month_keys_stand_for_their_days_with_impressions():
    available = ["2001-01-31", "2001-02-01", "2001-02-15", "2001-03-01"]
    assert days_of(["2001-02"], available) == ["2001-02-01", "2001-02-15"]
    assert days_of(["2001-01", "2001-03-01"], available) == ["2001-01-31", "2001-03-01"]
    assert days_of([], available) == []
    with pytest.raises(ValueError, match="neither a day"):
        days_of(["2001"], available)


def test_day_keys_do_not_list_the_source():
    listed = []

    def available():
        listed.append(True)
        return ["2001-02-01", "2001-02-15"]

    assert days_of(["2001-02-01", "2001-02-02"], available) == ["2001-02-01", "2001-02-02"] and not listed
    assert days_of(["2001-02"], available) == ["2001-02-01", "2001-02-15"] and listed == [True]


def test_the_partition_holding_a_day():
    assert partition_key_of("2026-03-02", ["2026-03-02"]) == "2026-03-02"
    assert partition_key_of("2026-03-02", ["2026-02", "2026-03"]) == "2026-03"
    assert partition_key_of("2026-03-02", ["2026-02-28"]) is None
