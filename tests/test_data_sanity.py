"""Data sanity gates in the adapters: implausible times, bad bytes, BOM/CRLF, empty files, out-of-scale ratings
and duplicates end as reject rows with a reason (or a ContractError naming the file), never silently."""
from __future__ import annotations

import json
import random
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from landing_assertions import assert_contract_rules, folder_digest, read_landing
from unisr_data.contract import ContractError
from unisr_data.mind import MindConfig
from unisr_data.mind import convert as convert_mind
from unisr_data.movielens import ML100K_GENRES, MovieLensConfig
from unisr_data.movielens import convert as convert_ml
from unisr_data.sanity import EventTimeWindow, share_breaches
from unisr_data.source_files import read_reject_summary

FIXTURE = Path(__file__).parent / "fixtures" / "ml-100k"
# 2100-01-01, one day before the epoch, and 1e13 s (which, scaled to microseconds, wraps int64 to 265698 BC).
BAD_TIMES = (4_102_444_800, -86_400, 10_000_000_000_000)
FIXTURE_LAST = pd.Timestamp(883_572_315, unit="s", tz="UTC")


def rejects(landing: Path, file: str) -> pd.DataFrame:
    return pq.read_table(landing / "_rejects" / f"{file}.parquet").to_pandas()


def write_latest(folder: Path, *, extra_ratings: list[str] = (), extra_tags: list[str] = (),
                 extra_movies: list[str] = (), newline: str = "\n", bom: bool = False) -> Path:
    """The ml-latest layout (ratings.csv, movies.csv, tags.csv) holding the ml-100k fixture's rows."""
    folder.mkdir(parents=True, exist_ok=True)
    ratings = pd.read_csv(FIXTURE / "u.data", sep="\t", names=["user", "movie", "rating", "ts"])
    movies = pd.read_csv(FIXTURE / "u.item", sep="|", header=None, encoding="latin-1")
    genres = ["|".join(g for g, flag in zip(ML100K_GENRES, row) if flag) for row in movies.iloc[:, 5:].to_numpy()]
    lines = {
        "ratings.csv": ["userId,movieId,rating,timestamp",
                        *(f"{r.user},{r.movie},{float(r.rating)},{r.ts}" for r in ratings.itertuples()),
                        *extra_ratings],
        "movies.csv": ["movieId,title,genres", *(f'{m},"{t}",{g}' for m, t, g in zip(movies[0], movies[1], genres)),
                       *extra_movies],
        "tags.csv": ["userId,movieId,tag,timestamp", "1,3,funny,875075500", "2,6,classic,876302200", *extra_tags],
    }
    for name, rows in lines.items():
        data = newline.join(rows) + newline
        (folder / name).write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf8"))
    return folder


def with_lines(folder: Path, name: str, *lines: bytes) -> None:
    """Append raw byte lines to a source file."""
    with open(folder / name, "ab") as handle:
        for line in lines:
            handle.write(line + b"\n")


@pytest.mark.parametrize("layout", ["ml-100k", "ml-latest"])
def test_out_of_range_times_are_rejected_before_any_overflow(tmp_path, layout):
    if layout == "ml-100k":
        src, rating_file, first_bad = tmp_path / "src", "u.data", 46
        shutil.copytree(FIXTURE, src)
        with_lines(src, "u.data", *(f"3\t{m}\t4\t{ts}".encode() for m, ts in zip((1, 2, 5), BAD_TIMES)))
    else:
        src, rating_file, first_bad = tmp_path / "src", "ratings.csv", 47
        write_latest(src, extra_ratings=[f"3,{m},4.0,{ts}" for m, ts in zip((1, 2, 5), BAD_TIMES)],
                     extra_tags=["3,4,future,4102444800"])
    counts = convert_ml(src, tmp_path / "landing", MovieLensConfig(seed=3))
    bad = rejects(tmp_path / "landing", rating_file)
    assert list(bad._row) == [first_bad, first_bad + 1, first_bad + 2]
    assert set(bad._reason) == {"time_out_of_range"}
    t = read_landing(tmp_path / "landing")
    assert_contract_rules(t)
    # Nothing implausible (or wrapped) reached landing, and the cold-start split is the clean fixture's.
    assert t["impressions"].event_time.min() >= pd.Timestamp("1997-01-01", tz="UTC")
    assert t["impressions"].event_time.max() <= FIXTURE_LAST
    assert counts["positives"] + counts["rated_negatives"] == 45 and counts["new_items"] == 4
    if layout == "ml-latest":
        assert list(rejects(tmp_path / "landing", "tags.csv")._reason) == ["time_out_of_range"]


def test_time_window_is_configurable(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    window = EventTimeWindow(earliest=datetime(1997, 12, 1, tzinfo=timezone.utc))
    counts = convert_ml(src, tmp_path / "landing", MovieLensConfig(time_window=window))
    early = pd.read_csv(FIXTURE / "u.data", sep="\t", names=["u", "m", "r", "ts"]).ts
    assert counts["rejected_source_rows"] == int((early < window.bounds_seconds()[0]).sum()) > 0
    with pytest.raises(ValueError, match="ISO date"):
        EventTimeWindow.from_settings("last tuesday", 1.0)
    window = EventTimeWindow.from_settings("2000-01-01", 2.0)
    assert window.earliest == datetime(2000, 1, 1, tzinfo=timezone.utc)
    now = datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert EventTimeWindow(now=now).bounds() == (datetime(1990, 1, 1, tzinfo=timezone.utc),
                                                 datetime(2020, 1, 2, tzinfo=timezone.utc))


def test_out_of_scale_ratings_and_duplicates_become_rejects(tmp_path):
    src = write_latest(
        tmp_path / "src",
        extra_ratings=["3,1,inf,875000000", "3,2,-3,875000000", "3,5,99,875000000", "3,7,nan,875000000",
                       "1,3,5.0,875075461"],  # the last repeats line 2 (user 1, movie 3, same time)
        extra_movies=['1,"Toy Story (1995)",Animation|Children|Comedy', '2,"Another GoldenEye",Action'],
        extra_tags=["1,3,Funny,875075500"],  # same user, movie and time as "funny"
    )
    counts = convert_ml(src, tmp_path / "landing")
    landing = tmp_path / "landing"
    ratings = rejects(landing, "ratings.csv")
    assert list(zip(ratings._row, ratings._reason)) == [
        (47, "rating_out_of_range"), (48, "rating_out_of_range"), (49, "rating_out_of_range"),
        (50, "rating_out_of_range"), (51, "duplicate_row")]
    movies = rejects(landing, "movies.csv")
    assert list(zip(movies._row, movies._reason)) == [(16, "duplicate_row"), (17, "duplicate_id")]
    assert list(rejects(landing, "tags.csv")._reason) == ["duplicate_row"]
    assert counts["rejected_source_rows"] == 8
    t = read_landing(landing)
    assert t["items"].set_index("item_id").loc["ml:m:2", "text"].startswith("GoldenEye")  # first row kept
    assert set(t["impressions"].clicked) == {0, 1} and counts["positives"] + counts["rated_negatives"] == 45
    users = tmp_path / "users"
    shutil.copytree(FIXTURE, users)
    with_lines(users, "u.user", b"2|53|F|other|94043", b"3|40|F|artist|10001")
    convert_ml(users, tmp_path / "landing2")
    assert list(rejects(tmp_path / "landing2", "u.user")._reason) == ["duplicate_row", "duplicate_id"]


def test_bad_bytes_become_invalid_utf8_rejects_with_file_and_line(tmp_path):
    src = write_latest(tmp_path / "src")
    with_lines(src, "ratings.csv", b"3,1,4.0,87500\xe90000")  # one latin-1 byte: line 47
    with_lines(src, "tags.csv", b"3,4,caf\xe9,875000000")  # line 4
    rng = random.Random(11)
    with_lines(src, "ratings.csv", bytes(rng.randrange(256) for _ in range(400)))  # random bytes at the end
    counts = convert_ml(src, tmp_path / "landing")
    ratings = rejects(tmp_path / "landing", "ratings.csv")
    first = ratings.iloc[0]
    assert (first._row, first._reason, first.raw) == (47, "invalid_utf8", "3,1,4.0,87500\\xe90000")
    assert set(ratings._reason) <= {"invalid_utf8", "bad_value"} and (ratings._row[1:] > 47).all()
    tags = rejects(tmp_path / "landing", "tags.csv")
    assert list(zip(tags._row, tags._reason)) == [(4, "invalid_utf8")]
    assert counts["positives"] + counts["rated_negatives"] == 45 and counts["search_positives"] == 2
    # ml-100k's u.data is read as UTF-8 too.
    src100 = tmp_path / "src100"
    shutil.copytree(FIXTURE, src100)
    with_lines(src100, "u.data", b"3\t\xff1\t4\t875000000")
    convert_ml(src100, tmp_path / "landing100")
    assert list(rejects(tmp_path / "landing100", "u.data")._reason) == ["invalid_utf8"]


def test_bom_and_crlf_are_accepted(tmp_path):
    plain = convert_ml(write_latest(tmp_path / "plain"), tmp_path / "a")
    windows = convert_ml(write_latest(tmp_path / "windows", newline="\r\n", bom=True), tmp_path / "b")
    assert plain == windows and plain["rejected_source_rows"] == 0
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    src = tmp_path / "src100"
    shutil.copytree(FIXTURE, src)
    data = (src / "u.data").read_bytes()
    (src / "u.data").write_bytes(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"))
    assert convert_ml(src, tmp_path / "c")["rejected_source_rows"] == 0


@pytest.mark.parametrize("file", ["ratings.csv", "movies.csv", "tags.csv", "u.data"])
def test_empty_file_raises_contract_error_naming_it(tmp_path, file):
    src = tmp_path / "src"
    if file == "u.data":
        shutil.copytree(FIXTURE, src)
    else:
        write_latest(src)
    (src / file).write_bytes(b"" if file != "tags.csv" else b"\xef\xbb\xbf\r\n")
    with pytest.raises(ContractError, match=rf"{file} is empty") as error:
        convert_ml(src, tmp_path / "landing")
    assert error.value.file.endswith(file)


NEWS = (
    "N1\tsports\tfootball_nfl\tBig game tonight\tTeams meet.\thttp://x\t[]\t[]\n"
    "N2\tnews\tnewsus\tElection news\t\thttp://x\t[]\t[]\n"
    "N3\tlifestyle\tlifestyleroyals\tRoyal visit\tA visit.\thttp://x\t[]\t[]\n"
)
BEHAVIORS = (
    "1\tU1\t11/10/2019 8:55:22 AM\tN1 N2\tN1-1 N2-0 N9-0\n"
    "2\tU2\t11/11/2019 9:00:00 PM\t\tN2-1 N9-1\n"
    "3\tU1\t11/12/2019 10:00:00 AM\tN1\tN5-0 N1-1\n"
)


def write_mind(folder: Path, behaviors: bytes = BEHAVIORS.encode(), news: bytes = NEWS.encode()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "behaviors.tsv").write_bytes(behaviors)
    (folder / "news.tsv").write_bytes(news)
    return folder


def test_mind_impression_dated_2099_is_time_out_of_range(tmp_path):
    baseline = convert_mind(write_mind(tmp_path / "a"), tmp_path / "la", MindConfig())
    future = BEHAVIORS + "4\tU3\t01/01/2099 10:00:00 AM\t\tN3-1 N2-0\n"
    counts = convert_mind(write_mind(tmp_path / "b", future.encode()), tmp_path / "lb", MindConfig())
    bad = rejects(tmp_path / "lb", "behaviors.tsv")
    assert list(zip(bad._row, bad._reason)) == [(4, "time_out_of_range")]
    # Without the gate the 2099 row moved the cold-start cut to 2099: new_items = 0.
    assert counts["new_items"] == baseline["new_items"] == 1
    assert {k: v for k, v in counts.items() if k != "rejected_source_rows"} == {
        k: v for k, v in baseline.items() if k != "rejected_source_rows"}


def test_mind_bad_bytes_duplicates_bom_and_crlf(tmp_path):
    news = (b"\xef\xbb\xbf" + NEWS.encode().replace(b"\n", b"\r\n")
            + b"N4\tnews\tnewsus\tCaf\xe9 opens\t\thttp://x\t[]\t[]\r\n"  # latin-1 byte: line 4
            + b"N1\tsports\tfootball_nfl\tBig game tonight\tTeams meet.\thttp://x\t[]\t[]\r\n"  # repeats line 1
            + b"N2\tnews\tnewsus\tA different N2\t\thttp://x\t[]\t[]\r\n")  # repeats the id of line 2
    behaviors = (BEHAVIORS.encode() + b"4\tU3\t11/12/2019 10:00:00 AM\t\tN1-\xff1\n"
                 + b"1\tU9\t11/12/2019 11:00:00 AM\t\tN3-1\n")  # impression id 1 again
    counts = convert_mind(write_mind(tmp_path / "src", behaviors, news), tmp_path / "landing")
    landing = tmp_path / "landing"
    assert list(zip(rejects(landing, "news.tsv")._row, rejects(landing, "news.tsv")._reason)) == [
        (4, "invalid_utf8"), (5, "duplicate_row"), (6, "duplicate_id")]
    assert list(zip(rejects(landing, "behaviors.tsv")._row, rejects(landing, "behaviors.tsv")._reason)) == [
        (4, "invalid_utf8"), (5, "duplicate_id")]
    assert rejects(landing, "news.tsv").raw[0] == "N4\tnews\tnewsus\tCaf\\xe9 opens\t\thttp://x\t[]\t[]"
    t = read_landing(landing)
    assert_contract_rules(t, single_domain_pages=False)
    items = t["items"].set_index("item_id")
    assert items.loc["mind:N1", "text"] == "Big game tonight\nTeams meet."
    assert items.loc["mind:N2", "text"] == "Election news"
    assert counts["impressions"] == 7


@pytest.mark.parametrize("file", ["news.tsv", "behaviors.tsv"])
def test_mind_empty_file_raises_contract_error_naming_it(tmp_path, file):
    src = write_mind(tmp_path / "src")
    (src / file).write_bytes(b"")
    with pytest.raises(ContractError, match=rf"{file} is empty"):
        convert_mind(src, tmp_path / "landing")


def test_reject_summary_counts_rows_per_file_and_flags_an_extra_column(tmp_path):
    extra = "".join(line + "\textra\n" for line in NEWS.splitlines())
    counts = convert_mind(write_mind(tmp_path / "src", news=extra.encode()), tmp_path / "landing")
    assert counts["items_without_text"] == counts["items"]  # every news row rejected: no text at all
    summary = read_reject_summary(tmp_path / "landing")
    assert summary == {
        "behaviors.tsv": {"rows": 3, "rejected": 0, "by_reason": {}},
        "news.tsv": {"rows": 3, "rejected": 3, "by_reason": {"bad_value": 3}},
    }
    on_disk = json.loads((tmp_path / "landing" / "_rejects" / "summary.json").read_text())
    assert on_disk == summary
    breaches = share_breaches({f: (s["rows"], s["rejected"], s["by_reason"]) for f, s in summary.items()}, 0.01)
    assert [b.name for b in breaches] == ["news.tsv"]
    assert breaches[0].describe() == "news.tsv: 3 of 3 rows rejected (100.00%); top reasons: bad_value (3)"
    assert read_reject_summary(tmp_path / "nowhere") is None


def test_movies_file_cut_inside_a_quoted_title_breaches_the_ratings_reject_share(tmp_path):
    src = write_latest(tmp_path / "src")
    movies = (src / "movies.csv").read_bytes()
    cut = movies.index(b'"Four Rooms') + 5  # the quote opened here swallows every later movie
    (src / "movies.csv").write_bytes(movies[:cut])
    convert_ml(src, tmp_path / "landing")
    summary = read_reject_summary(tmp_path / "landing")
    assert set(summary["ratings.csv"]["by_reason"]) == {"unknown_item"}
    breaches = share_breaches({f: (s["rows"], s["rejected"], s["by_reason"]) for f, s in summary.items()}, 0.01)
    assert "ratings.csv" in [b.name for b in breaches]
    assert summary["ratings.csv"]["rejected"] / summary["ratings.csv"]["rows"] > 0.2
