"""The real-data pipeline tests' shared part (tests/test_real_data_movielens.py, tests/test_real_data_mind.py): user
subsets of the real MovieLens and MIND data in ../shared/data and one run of the whole pipeline on them, asserting that
every check passes, the evaluation report is written and a model serves. The report (with CIs, references, and the note
that real data has no Bayes ceiling) is printed so the CI log carries the real numbers.

MovieLens runs on an eighth of its users (every user id divisible by 8, all their ratings and tags, the movies they
rated): the same 22-year span (monthly partitions), the same adapter and gates, a fraction of the CI time. MIND runs
on a quarter of its users (`U<n>` with n divisible by 4: all their behaviors rows, the whole news.tsv): the same
week, about a quarter of its 189k impressions. README's numbers come from the whole file sets (`run_all --dataset ...`).
"""
from __future__ import annotations

import csv
import shutil
from argparse import Namespace
from pathlib import Path

import pytest
from dagster import instance_for_test

from orchestration.run_all import run_pipeline
from unisr_data.paths import REPO_ROOT, Paths

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
#: MovieLens users kept by the test: user ids divisible by this (76 of 610 users, 14,467 of 100,836 ratings).
MOVIELENS_USER_STRIDE = 8
#: MIND users kept by the test: `U<n>` with n divisible by this.
MIND_USER_STRIDE = 4


def _filter_csv(source: Path, target: Path, keep) -> set[str]:
    """Copy the rows of `source` that `keep(row)` accepts; returns their movieIds."""
    with open(source, newline="", encoding="utf-8") as f_in, open(target, "w", newline="", encoding="utf-8") as f_out:
        reader = csv.DictReader(f_in)
        writer = csv.DictWriter(f_out, fieldnames=reader.fieldnames, lineterminator="\n")
        writer.writeheader()
        movies = set()
        for row in reader:
            if keep(row):
                writer.writerow(row)
                movies.add(row["movieId"])
    return movies


def movielens_user_subset(source: Path, target: Path) -> Path:
    """A copy of the MovieLens folder with every user id divisible by MOVIELENS_USER_STRIDE, their ratings and tags,
    and the movies those rate or tag (real rows, unchanged)."""
    target.mkdir(parents=True)
    kept_user = lambda row: int(row["userId"]) % MOVIELENS_USER_STRIDE == 0  # noqa: E731
    movies = _filter_csv(source / "ratings.csv", target / "ratings.csv", kept_user)
    movies |= _filter_csv(source / "tags.csv", target / "tags.csv", kept_user)
    for name in ("movies.csv", "links.csv"):
        _filter_csv(source / name, target / name, lambda row: row["movieId"] in movies)
    return target


def mind_user_subset(source: Path, target: Path) -> Path:
    """A copy of the MIND folder with the behaviors rows of every user `U<n>`, n divisible by MIND_USER_STRIDE
    (real rows, unchanged), and the whole news.tsv."""
    target.mkdir(parents=True)
    with open(source / "behaviors.tsv", encoding="utf-8") as f_in, \
            open(target / "behaviors.tsv", "w", encoding="utf-8") as f_out:
        for line in f_in:
            user = line.split("\t", 2)[1]
            if user[1:].isdigit() and int(user[1:]) % MIND_USER_STRIDE == 0:
                f_out.write(line)
    shutil.copyfile(source / "news.tsv", target / "news.tsv")
    return target


def run_real_data_pipeline(dataset: str, folder: str, tmp_path: Path) -> None:
    """The whole pipeline (dbt, Feast, embeddings, six models trained, evaluation) on the user subset of `folder`."""
    source = SHARED_DATA / folder
    if not source.is_dir():
        pytest.skip(f"{source} is absent: the real-data tests need ../shared/data beside the repo (CI has it)")
    subset = movielens_user_subset if dataset == "movielens" else mind_user_subset
    source = subset(source, tmp_path / f"{dataset}-user-subset")
    # one epoch keeps CI short; README's numbers come from the default budget (`make run`-style runs)
    args = Namespace(dataset=dataset, source_path=str(source), var_dir=str(tmp_path), seed=7, tiny=False,
                     n_impressions=0, epochs=1)
    with instance_for_test() as instance:
        source_result, pipeline = run_pipeline(args, instance)
        assert source_result.success
        failed = [
            f"{e.asset_key.to_user_string()}:{e.check_name}: {e.description}"
            for e in pipeline.get_asset_check_evaluations()
            if not e.passed
        ]
        materialized = {e.asset_key.to_user_string() for e in pipeline.get_asset_materialization_events()}
    assert not failed, f"checks failed: {failed}"
    assert {"raw/impressions", "samples_pretrain", "training_sets", "coldstart_model", "evaluation_report",
            "promoted_model"} <= materialized
    report = (Paths(tmp_path, dataset).reports_dir / "latest" / "report.md").read_text()
    for model in ("srf (ours)", "shared_bottom", "mmoe", "ple", "star", "scratch_dnn", "ref: item age"):
        assert f"| {model} |" in report
    assert "no Bayes ceiling" in report
    print(f"\n===== {dataset} evaluation report =====\n{report}")
