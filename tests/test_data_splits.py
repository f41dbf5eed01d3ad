"""Split windows come from each dataset's own time span: MovieLens over weeks and over years (both layouts)
and MIND all get non-empty train / valid / test splits with clicks, through the adapters, validation and dbt."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from unisr_data.paths import Paths
from unisr_data.validation import validate
from unisr_data.warehouse import read_mart, run_dbt

DAY = 86_400
GENRES = ["Action", "Comedy", "Drama", "Thriller"]


def _ratings(span_days: float, n_users: int = 50, n_movies: int = 48, seed: int = 0):
    """(user, movie, rating, ts) rows: movie m goes live at m/n of the span; users rate live movies after that."""
    rng = np.random.default_rng(seed)
    t0, span = 880_000_000, span_days * DAY
    release = t0 + (np.arange(n_movies) / n_movies * 0.97 * span).astype(np.int64)
    rows = []
    for user in range(1, n_users + 1):
        for movie in rng.choice(n_movies, size=20, replace=False):
            ts = int(release[movie] + rng.random() * (t0 + span - release[movie]))
            rows.append((user, int(movie) + 1, int(rng.integers(2, 6)), ts))
    # each movie's first rating at its release, so items go live across the whole span
    rows += [(1 + m % n_users, m + 1, 5, int(release[m])) for m in range(n_movies)]
    return rows, n_users, n_movies


def _write_latest(folder: Path, span_days: float) -> Path:
    rows, _, n_movies = _ratings(span_days)
    folder.mkdir(parents=True)
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},{r}.0,{t}\n" for u, m, r, t in rows))
    (folder / "movies.csv").write_text("movieId,title,genres\n" + "".join(
        f"{m},Movie {m} ({1990 + m % 20}),{GENRES[m % 4]}|{GENRES[(m + 1) % 4]}\n" for m in range(1, n_movies + 1)))
    (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n" + "".join(
        f"{u},{m},tag {m % 5},{t + 1}\n" for u, m, _, t in rows[::7]))
    return folder


def _write_100k(folder: Path, span_days: float) -> Path:
    rows, n_users, n_movies = _ratings(span_days, seed=1)
    folder.mkdir(parents=True)
    (folder / "u.data").write_text("".join(f"{u}\t{m}\t{r}\t{t}\n" for u, m, r, t in rows))
    flags = lambda m: "|".join("1" if g == 1 + m % 18 else "0" for g in range(19))  # noqa: E731
    (folder / "u.item").write_text("".join(
        f"{m}|Movie {m} (1995)|01-Jan-1995||http://x|{flags(m)}\n" for m in range(1, n_movies + 1)))
    (folder / "u.user").write_text("".join(f"{u}|{20 + u}|{'MF'[u % 2]}|writer|0000{u}\n"
                                           for u in range(1, n_users + 1)))
    return folder


def _write_mind(folder: Path, n_days: int = 6, seed: int = 2) -> Path:
    """MIND layout: 40 news, news n first shown on day n·days/40, 300 impressions over the days."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    n_news = 40
    (folder / "news.tsv").write_text("".join(
        f"N{n}\tcat{n % 4}\tsub{n % 7}\tTitle about topic {n % 9}\tAbstract {n}\thttp://x\t[]\t[]\n"
        for n in range(n_news)))
    start = datetime(2019, 11, 9, tzinfo=timezone.utc)
    lines = []
    for i in range(300):
        at = start + timedelta(seconds=float(rng.random()) * n_days * DAY)
        live = [n for n in range(n_news) if n * n_days * DAY / n_news <= (at - start).total_seconds()]
        shown = rng.choice(live, size=min(5, len(live)), replace=False)
        clicked = {int(shown[0])} if rng.random() < 0.7 else set()
        tokens = " ".join(f"N{n}-{int(n in clicked)}" for n in shown)
        stamp = at.strftime("%m/%d/%Y %I:%M:%S %p").lstrip("0").replace("/0", "/")
        lines.append(f"{i + 1}\tU{int(rng.integers(0, 25))}\t{stamp}\tN0\t{tokens}\n")
    (folder / "behaviors.tsv").write_text("".join(lines))
    return folder


def _build(tmp_path: Path, dataset: str, source: Path) -> Paths:
    from unisr_data.sources import write_source

    paths = Paths(tmp_path / "var", dataset)
    write_source(dataset, paths.landing_dir, source_path=source)
    validate(paths.landing_dir, paths.raw_dir, paths.quarantine_dir)
    result = run_dbt(["build"], paths)
    failed = {n.node.name: str(n.status) for n in result.result if str(n.status) not in ("pass", "success")}
    assert result.success, failed
    return paths


def _assert_splits_trainable(paths: Paths) -> dict[str, int]:
    sizes = {}
    for mart in ("samples_coldstart_train", "samples_coldstart_valid", "samples_coldstart_test"):
        frame = read_mart(paths, mart)
        assert len(frame) > 0 and frame.label.sum() > 0, f"{mart} is empty or has no clicks"
        sizes[mart] = len(frame)
    pretrain = read_mart(paths, "samples_pretrain")
    assert set(pretrain.split) == {"train", "valid"}
    return sizes


@pytest.mark.parametrize("layout", ["latest", "100k"])
@pytest.mark.parametrize("span_days", [42, 3650], ids=["weeks", "years"])
def test_movielens_splits_are_non_empty_for_any_span(tmp_path, layout, span_days):
    writer = _write_latest if layout == "latest" else _write_100k
    paths = _build(tmp_path, "movielens", writer(tmp_path / "src", span_days))
    sizes = _assert_splits_trainable(paths)
    # the windows are shares of the cold-start rows, whatever the span: test ≈ 45 %, valid ≈ 15 %
    total = sum(sizes.values())
    assert 0.25 < sizes["samples_coldstart_test"] / total < 0.55
    assert 0.05 < sizes["samples_coldstart_valid"] / total < 0.3


def test_mind_splits_are_non_empty(tmp_path):
    paths = _build(tmp_path, "mind", _write_mind(tmp_path / "src"))
    _assert_splits_trainable(paths)
