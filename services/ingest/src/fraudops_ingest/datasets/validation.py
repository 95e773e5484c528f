"""The Great Expectations suite for transaction datasets and per-row attribution of its failures."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fraudops.contracts.messages import ID_PATTERN
from fraudops.datasets import LABEL_COLUMNS


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


@dataclass
class ValidationOutcome:
    failures: dict[int, list[str]]  # row position -> failed expectations
    report: dict[str, Any]
    data_docs: Path  # folder with index.html; the caller removes it


def _expectations(frame: pd.DataFrame, period: Period, max_amount: float) -> list[Any]:
    import great_expectations as gx

    e = gx.expectations
    expectations: list[Any] = [
        e.ExpectColumnValuesToBeUnique(column="transaction_id"),
        e.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$"),
        e.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=max_amount, strict_min=True),
        e.ExpectColumnValuesToBeBetween(column="event_time", min_value=period.start, max_value=period.end),
    ]
    for column in ("transaction_id", "customer_id", "terminal_id"):
        expectations.append(e.ExpectColumnValuesToMatchRegex(column=column, regex=ID_PATTERN))
    for column in ("transaction_id", "event_time", "customer_id", "terminal_id", "amount", "currency"):
        expectations.append(e.ExpectColumnValuesToNotBeNull(column=column))
    if "is_fraud" in frame.columns:
        expectations.append(e.ExpectColumnValuesToBeInSet(column="is_fraud", value_set=[0, 1]))
        expectations.append(e.ExpectColumnValuesToNotBeNull(column="is_fraud"))
    if "fraud_scenario" in frame.columns:
        expectations.append(e.ExpectColumnValuesToBeBetween(column="fraud_scenario", min_value=0, max_value=99))
    return expectations


def _describe(config: Any) -> str:
    kwargs = config.kwargs
    return f"{config.type}({kwargs['column']})" if "column" in kwargs else str(config.type)


def validate(frame: pd.DataFrame, period: Period, max_amount: float) -> ValidationOutcome:
    """Run the suite over the whole frame; every failing row is attributed the expectations it broke."""
    import great_expectations as gx

    project = Path(tempfile.mkdtemp(prefix="gx-"))
    context = gx.get_context(mode="file", project_root_dir=str(project))
    context.variables.progress_bars = {"globally": False}
    batch_definition = (
        context.data_sources.add_pandas("upload")
        .add_dataframe_asset("transactions")
        .add_batch_definition_whole_dataframe("all")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="transactions"))
    for expectation in _expectations(frame, period, max_amount):
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="transactions", data=batch_definition, suite=suite)
    )
    # GE's pandas engine reports positions through the index; keep it a plain range.
    frame = frame.reset_index(drop=True)
    result = definition.run(batch_parameters={"dataframe": frame}, result_format="COMPLETE")
    failures: dict[int, list[str]] = {}
    for item in result.results:
        if item.success:
            continue
        for position in item.result.get("unexpected_index_list") or []:
            failures.setdefault(int(position), []).append(_describe(item.expectation_config))
    context.build_data_docs()
    docs = project / "gx" / "uncommitted" / "data_docs" / "local_site"
    report = _summarised(result.to_json_dict())
    kept = Path(tempfile.mkdtemp(prefix="gx-docs-"))
    shutil.copytree(docs, kept, dirs_exist_ok=True)
    shutil.rmtree(project, ignore_errors=True)
    return ValidationOutcome(failures=failures, report=report, data_docs=kept)


def _summarised(report: dict[str, Any]) -> dict[str, Any]:
    """Drop the full lists of failing values and positions (the quarantine holds the rows themselves)."""
    for item in report.get("results", []):
        outcome = item.get("result") or {}
        for key in ("unexpected_list", "unexpected_index_list", "unexpected_index_query"):
            outcome.pop(key, None)
    return report


def label_columns_present(frame: pd.DataFrame) -> list[str]:
    return [c for c in LABEL_COLUMNS if c in frame.columns]
