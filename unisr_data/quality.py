"""Great Expectations suites for the raw tables and the dbt marts, run on pandas frames with an ephemeral context.

The context, data source and batch definition are built once per process and reused, so a Dagster asset check
pays only for the expectations themselves. Analytics and progress bars are off: checks must be quiet.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import great_expectations as gx  # noqa: E402
import great_expectations.expectations as gxe  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402

from unisr_data.contract import REQUIRED_ROLES, ROLES, TASKS  # noqa: E402

LABELS = [0, 1]
BOOLS = [True, False]


@dataclass
class QualityResult:
    """Outcome of one suite on one frame."""

    success: bool
    statistics: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # one readable line per failed expectation


def _not_null(*columns: str) -> list:
    return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]


def _key(column: str) -> list:
    return [gxe.ExpectColumnValuesToNotBeNull(column=column), gxe.ExpectColumnValuesToBeUnique(column=column)]


def _non_negative(*columns: str) -> list:
    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]


def _not_blank(column: str) -> gxe.Expectation:
    return gxe.ExpectColumnValuesToNotMatchRegex(column=column, regex=r"^\s*$")


def _columns(*columns: str) -> list:
    return [gxe.ExpectColumnToExist(column=c) for c in columns]


def _raw_domains(frame: pd.DataFrame) -> list:
    return [
        *_columns("domain_id", "name", "task", "role"),
        *_key("domain_id"), *_key("name"), _not_blank("name"),
        # Models index embeddings by domain id, so ids must be dense 0..K-1.
        gxe.ExpectColumnValuesToBeBetween(column="domain_id", min_value=0, max_value=max(len(frame) - 1, 0)),
        gxe.ExpectColumnValuesToBeInSet(column="task", value_set=list(TASKS)),
        gxe.ExpectColumnValuesToBeInSet(column="role", value_set=list(ROLES)),
        gxe.ExpectColumnDistinctValuesToContainSet(column="role", value_set=list(REQUIRED_ROLES)),
        *_not_null("task", "role"),
    ]


def _raw_users(frame: pd.DataFrame) -> list:
    return [*_columns("user_id", "age_bucket", "gender", "segment"), *_key("user_id")]


def _raw_items(frame: pd.DataFrame) -> list:
    return [*_columns("item_id", "text", "category", "subcategory", "created_at"), *_key("item_id"),
            _not_blank("text"), *_not_null("created_at")]


def _raw_queries(frame: pd.DataFrame) -> list:
    return [*_columns("query_id", "text"), *_key("query_id"), *_not_null("text"), _not_blank("text")]


def _raw_impressions(frame: pd.DataFrame) -> list:
    return [
        *_columns("impression_id", "event_time", "domain_id", "user_id", "query_id", "item_id", "request_id",
                  "position", "clicked"),
        *_key("impression_id"),
        *_not_null("event_time", "domain_id", "user_id", "item_id", "request_id", "position", "clicked"),
        *_non_negative("position", "domain_id"),
        gxe.ExpectColumnValuesToBeInSet(column="clicked", value_set=LABELS),
    ]


def _samples(splits: list[str]) -> Callable[[pd.DataFrame], list]:
    def build(frame: pd.DataFrame) -> list:
        return [
            *_columns("impression_id", "event_timestamp", "domain_id", "task", "user_id", "item_id", "query_id",
                      "request_id", "position", "label", "is_new_item", "split"),
            *_key("impression_id"),
            *_not_null("event_timestamp", "domain_id", "task", "user_id", "item_id", "request_id", "position",
                       "label", "is_new_item", "split"),
            *_non_negative("position", "domain_id"),
            gxe.ExpectColumnValuesToBeInSet(column="task", value_set=list(TASKS)),
            gxe.ExpectColumnValuesToBeInSet(column="label", value_set=LABELS),
            gxe.ExpectColumnValuesToBeInSet(column="is_new_item", value_set=BOOLS),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=splits),
        ]

    return build


def _features(entity: str, prefix: str, extra: tuple[str, ...] = ()) -> Callable[[pd.DataFrame], list]:
    counts = (f"{prefix}_impr_7d", f"{prefix}_clicks_7d")
    ctr = f"{prefix}_ctr_7d"

    def build(frame: pd.DataFrame) -> list:
        checks = [
            *_columns(entity, "event_timestamp", *counts, ctr, *extra),
            # One feature row per entity and day, else Feast's point-in-time join is ambiguous.
            gxe.ExpectCompoundColumnsToBeUnique(column_list=[entity, "event_timestamp"]),
            *_not_null(entity, "event_timestamp", *counts, ctr),
            *_non_negative(*counts),
            gxe.ExpectColumnValuesToBeBetween(column=ctr, min_value=0.0, max_value=1.0),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=counts[0], column_B=counts[1], or_equal=True),
        ]
        if "item_has_text" in extra:
            checks.append(gxe.ExpectColumnValuesToBeInSet(column="item_has_text", value_set=BOOLS))
        return checks

    return build


def _user_behaviour(frame: pd.DataFrame) -> list:
    lists = ("beh_item_ids", "beh_item_domains", "beh_click_times", "beh_query_ids", "beh_categories",
             "beh_category_clicks", "beh_domains", "beh_domain_clicks")
    return [
        *_columns("user_id", "event_timestamp", "beh_clicks", *lists),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "event_timestamp"]),
        *_not_null("user_id", "event_timestamp", "beh_clicks", *lists),
        *_non_negative("beh_clicks"),
    ]


_BUILDERS: dict[str, Callable[[pd.DataFrame], list]] = {
    "raw_domains": _raw_domains,
    "raw_users": _raw_users,
    "raw_items": _raw_items,
    "raw_queries": _raw_queries,
    "raw_impressions": _raw_impressions,
    "samples_pretrain": _samples(["train", "valid"]),
    "samples_coldstart_train": _samples(["train"]),
    "samples_coldstart_valid": _samples(["valid"]),
    "samples_coldstart_test": _samples(["test"]),
    "user_features": _features("user_id", "user", ("user_age_bucket", "user_gender", "user_segment")),
    "item_features": _features("item_id", "item",
                               ("item_category", "item_subcategory", "item_has_text", "item_age_days")),
    "query_features": _features("query_id", "query"),
    "user_behaviour": _user_behaviour,
}
#: Names accepted by `check_frame`: `raw_<table>` and the dbt mart names.
SUITES: tuple[str, ...] = tuple(_BUILDERS)

_lock = threading.Lock()
_batch_definition = None


def _whole_frame_batch_definition():
    """The cached ephemeral context's pandas batch definition (built on first use)."""
    global _batch_definition
    with _lock:
        if _batch_definition is None:
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            asset = context.data_sources.add_pandas("unisr_frames").add_dataframe_asset("frame")
            _batch_definition = asset.add_batch_definition_whole_dataframe("whole_frame")
        return _batch_definition


def _describe_failure(result) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    where = kwargs.pop("column", None) or kwargs.pop("column_list", None) or ""
    if result.exception_info and result.exception_info.get("raised_exception"):
        return f"{config.type} on {where}: raised {result.exception_info.get('exception_message')}"
    detail = result.result or {}
    if "unexpected_count" in detail:
        examples = detail.get("partial_unexpected_list", [])[:5]
        return (f"{config.type} on {where} {kwargs or ''}: {detail['unexpected_count']} of "
                f"{detail.get('element_count')} rows unexpected, e.g. {examples}").replace(" : ", ": ")
    if "observed_value" in detail:
        return f"{config.type} on {where} {kwargs}: observed {detail['observed_value']}"
    return f"{config.type} on {where} {kwargs or ''}: failed".replace(" : ", ": ")


def suite_expectations(suite: str, df: pd.DataFrame) -> list[gxe.Expectation]:
    """The expectations of suite `suite` (one of SUITES) for the frame `df` (some bounds depend on its length)."""
    if suite not in _BUILDERS:
        raise KeyError(f"unknown quality suite {suite!r}; expected one of {SUITES}")
    return _BUILDERS[suite](df)


def check_frame(df: pd.DataFrame, suite: str) -> QualityResult:
    """Run the expectation suite `suite` (one of SUITES) on `df`; failures are readable one-liners."""
    expectations = suite_expectations(suite, df)
    # A missing column makes column expectations raise: report it once, clearly, instead.
    missing = [e.column for e in expectations if isinstance(e, gxe.ExpectColumnToExist) and e.column not in df.columns]
    if missing:
        return QualityResult(False, {"evaluated_expectations": 0, "missing_columns": missing},
                             [f"{suite}: missing column {c!r} (have {list(df.columns)})" for c in missing])
    batch = _whole_frame_batch_definition().get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(gx.ExpectationSuite(name=suite, expectations=expectations), result_format="SUMMARY")
    statistics = {k: (float(v) if isinstance(v, float) else int(v) if v is not None else None)
                  for k, v in dict(result.statistics).items()}
    statistics["rows"] = len(df)
    failures = [_describe_failure(r) for r in result.results if not r.success]
    return QualityResult(bool(result.success), statistics, failures)
