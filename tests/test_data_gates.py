"""The blocking Dagster checks on bad source data: a MIND news.tsv with one extra column (every news row
rejected) fails the run at the reject-share check, and, with that check opened up, at item-text coverage."""
from __future__ import annotations

from pathlib import Path

from dagster import instance_for_test, materialize

from orchestration.assets.ingest import impression_days, landing_data, raw_tables, source_data
from orchestration.checks.ingest import item_text_coverage, source_rejects_share
from orchestration.resources import UnisrSettings

NEWS_EXTRA_COLUMN = "".join(
    f"N{i}\tsports\tfootball\tTitle {i}\tAbstract {i}\thttp://x\t[]\t[]\textra\n" for i in range(1, 6))
BEHAVIORS = (
    "1\tU1\t11/10/2019 8:55:22 AM\tN1\tN1-1 N2-0 N3-0\n"
    "2\tU2\t11/11/2019 9:00:00 PM\t\tN2-1 N4-0\n"
    "3\tU1\t11/12/2019 10:00:00 AM\tN1\tN5-0 N1-1\n"
)


def _mind_source(folder: Path, news: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "news.tsv").write_text(news)
    (folder / "behaviors.tsv").write_text(BEHAVIORS)
    return folder


def _evaluations(result) -> dict[str, tuple[bool, str | None]]:
    return {e.check_name: (e.passed, e.description) for e in result.get_asset_check_evaluations()}


def test_extra_column_news_fails_the_run_at_the_reject_share(tmp_path):
    clean_news = "".join(line.rsplit("\t", 1)[0] + "\n" for line in NEWS_EXTRA_COLUMN.splitlines())
    clean = UnisrSettings(dataset="mind", source_path=str(_mind_source(tmp_path / "clean", clean_news)),
                          var_dir=str(tmp_path / "clean_var"))
    result = materialize([source_data, source_rejects_share], resources={"settings": clean})
    assert result.success and _evaluations(result)["source_rejects_share"] == (True, None)
    settings = UnisrSettings(dataset="mind", source_path=str(_mind_source(tmp_path / "src", NEWS_EXTRA_COLUMN)),
                             var_dir=str(tmp_path / "var"))
    result = materialize([source_data, source_rejects_share], resources={"settings": settings}, raise_on_error=False)
    assert not result.success
    passed, description = _evaluations(result)["source_rejects_share"]
    assert not passed
    assert "news.tsv: 5 of 5 rows rejected (100.00%); top reasons: bad_value (5)" in description


def test_items_without_text_fail_the_run_even_when_rejects_are_allowed(tmp_path):
    settings = UnisrSettings(dataset="mind", source_path=str(_mind_source(tmp_path / "src", NEWS_EXTRA_COLUMN)),
                             var_dir=str(tmp_path / "var"), max_rejected_share=1.0)
    resources = {"settings": settings}
    with instance_for_test() as instance:
        assert materialize([source_data, source_rejects_share], resources=resources, instance=instance).success
        days = instance.get_dynamic_partitions(impression_days.name)
        materialize([landing_data], resources=resources, instance=instance, tags={
            "dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]})
        result = materialize([raw_tables, item_text_coverage], resources=resources, instance=instance,
                             raise_on_error=False)
    assert not result.success
    passed, description = _evaluations(result)["item_text_coverage"]
    assert not passed and description.startswith("5 of 5 items (100.00%) have no text, above 95.00%")
