"""benchmarks/bench_pipeline_scale.py's arithmetic on made-up timings (nothing is run or timed)."""
import pytest

from benchmarks.bench_pipeline_scale import growth_exponent, n_days_for, parse_size, tables


def test_growth_exponent_recovers_the_power_of_a_power_law():
    sizes = [300_000, 1_000_000, 3_000_000]
    assert growth_exponent(sizes, [2.0 * (n / 1e5) for n in sizes]) == pytest.approx(1.0)
    assert growth_exponent(sizes, [0.1 * (n / 1e5) ** 1.5 for n in sizes]) == pytest.approx(1.5)
    assert growth_exponent(sizes[:1], [1.0]) is None  # one point: no slope


def test_sizes_and_days():
    assert [parse_size(s) for s in ("0.3M", "1M", "40k", "1000")] == [300_000, 1_000_000, 40_000, 1000]
    assert n_days_for(4_000_000, "volume", 400_000 / 21) == 21
    assert n_days_for(4_000_000, "days", 400_000 / 21) == 210
    assert n_days_for(100_000, "days", 400_000 / 21) == 14  # the generator's minimum


def test_tables_flag_a_super_linear_stage_and_report_tick_ratios():
    def run(n, tick_share):
        linear, quadratic = n / 1e5, (n / 1e5) ** 2
        full = {"source": {"seconds": linear, "peak_mib": 100.0},
                "dbt_build": {"seconds": quadratic, "peak_mib": 400.0, "mode": "full"}}
        tick = {"dbt_build": {"seconds": quadratic * tick_share, "peak_mib": 300.0, "mode": "incremental"}}
        return {"full": full, "tick": tick}

    markdown, summary = tables({300_000: run(300_000, 0.1), 1_000_000: run(1_000_000, 0.05)},
                               {300_000: 21, 1_000_000: 21}, "volume")
    assert summary["exponents"]["full:source"] == pytest.approx(1.0)
    assert summary["super_linear"] == {"full:dbt_build": 2.0, "tick:dbt_build": pytest.approx(1.42, abs=0.01)}
    assert summary["tick_ratio"] == {"0.3M": 0.1, "1M": 0.05}  # over the stages both ran: dbt_build only
    assert "**super-linear**" in markdown and "| 1M (21 d) s / MiB" in markdown
