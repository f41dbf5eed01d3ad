"""One entry point that writes any supported dataset into a source/ folder in contract layout."""
from __future__ import annotations

from pathlib import Path

from unisr_data.sanity import EventTimeWindow

SOURCES = ("synthetic", "movielens", "mind")


def write_source(
    dataset: str,
    source_dir: Path,
    *,
    source_path: str | Path | None = None,
    seed: int = 7,
    n_impressions: int | None = None,
    n_days: int | None = None,
    tiny: bool = False,
    time_window: EventTimeWindow | None = None,
) -> dict[str, int]:
    """Generate (synthetic) or convert (movielens, mind from `source_path`) into `source_dir`; returns row counts.

    Real datasets reject rows dated outside `time_window` (default: 1990-01-01 to load time + 1 day)."""
    if dataset == "synthetic":
        from dataclasses import replace

        from unisr_data.synthetic import SyntheticConfig, generate

        config = SyntheticConfig.tiny() if tiny else SyntheticConfig.default()
        overrides = {"seed": seed}
        if n_impressions:
            overrides["n_impressions"] = n_impressions
        if n_days:
            overrides["n_days"] = n_days
        return generate(replace(config, **overrides), source_dir)
    if dataset not in SOURCES:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {SOURCES}")
    if not source_path:
        raise ValueError(f"dataset {dataset!r} needs source_path: the folder holding its original files")
    source_path = Path(source_path)
    if not source_path.is_dir():
        raise FileNotFoundError(f"{dataset} source folder not found: {source_path}")
    if dataset == "movielens":
        from unisr_data.movielens import MovieLensConfig, convert

        return convert(source_path, source_dir,
                       MovieLensConfig(seed=seed, time_window=time_window or EventTimeWindow()))
    from unisr_data.mind import MindConfig, convert

    # MIND spans ~6 days: news first seen in the last 3 days form the cold-start domain, so that it has
    # train, valid and test days (the last day is test, the one before valid).
    return convert(source_path, source_dir,
                   MindConfig(seed=seed, coldstart_days=3.0, time_window=time_window or EventTimeWindow()))
