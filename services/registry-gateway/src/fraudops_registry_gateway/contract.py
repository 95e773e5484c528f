"""What the trainer promises about a version (tags, signature, booster, evaluation data), checked as data.

A version that breaks the contract would make the scorer compute the wrong features or thresholds, so
each broken promise is a reason the version fails validation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import xgboost

from fraudops.features import FEATURE_NAMES, FEATURE_VERSION

EVALUATION_ARTIFACT = "evaluation/test.parquet"
LABEL_COLUMN = "is_fraud"
TIME_COLUMN = "event_time"
CARD_COLUMN = "customer_id"
EXPECTED_OBJECTIVE = "binary:logistic"
METRIC_TAG_PREFIX = "metric."


@dataclass(frozen=True)
class ServingParameters:
    """What a scorer needs besides the model itself, read from the version's tags."""

    threshold_review: float | None
    threshold_decline: float | None
    feature_version: str | None
    feature_names: list[str] | None
    label_delay_days: int | None
    dataset_id: str | None


def _float_tag(tags: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(tags[key])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _feature_names_tag(tags: Mapping[str, str]) -> list[str] | None:
    try:
        names = json.loads(tags["feature_names"])
    except (KeyError, ValueError):
        return None
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return names
    return None


def serving_parameters(tags: Mapping[str, str]) -> ServingParameters:
    delay = _float_tag(tags, "label_delay_days")
    return ServingParameters(
        threshold_review=_float_tag(tags, "threshold_review"),
        threshold_decline=_float_tag(tags, "threshold_decline"),
        feature_version=tags.get("feature_version"),
        feature_names=_feature_names_tag(tags),
        label_delay_days=int(delay) if delay is not None and delay.is_integer() else None,
        dataset_id=tags.get("dataset_id"),
    )


def recorded_metrics(tags: Mapping[str, str]) -> dict[str, float]:
    """The trainer's `metric.*` tags as numbers (unparseable ones are left out)."""
    metrics = {}
    for key in tags:
        if key.startswith(METRIC_TAG_PREFIX):
            value = _float_tag(tags, key)
            if value is not None:
                metrics[key[len(METRIC_TAG_PREFIX) :]] = value
    return metrics


def _names_problem(what: str, names: Sequence[str] | None) -> str | None:
    if names is None:
        return f"{what} is missing"
    if list(names) != list(FEATURE_NAMES):
        missing = [n for n in FEATURE_NAMES if n not in names]
        extra = [n for n in names if n not in FEATURE_NAMES]
        if missing or extra:
            return f"{what} does not match feature version {FEATURE_VERSION} (missing {missing}, unexpected {extra})"
        return f"{what} lists the features of {FEATURE_VERSION} in another order"
    return None


def tag_problems(tags: Mapping[str, str]) -> list[str]:
    params = serving_parameters(tags)
    problems = []
    if params.feature_version != FEATURE_VERSION:
        problems.append(f"tag feature_version is {params.feature_version!r}, the platform computes {FEATURE_VERSION!r}")
    if problem := _names_problem("tag feature_names", params.feature_names):
        problems.append(problem)
    for key in ("threshold_review", "threshold_decline"):
        value = getattr(params, key)
        if value is None or not 0 <= value <= 1:
            problems.append(f"tag {key} must be a number between 0 and 1")
    review, decline = params.threshold_review, params.threshold_decline
    if review is not None and decline is not None and review > decline:
        problems.append("tag threshold_review is above threshold_decline")
    if params.label_delay_days is None or params.label_delay_days < 0:
        problems.append("tag label_delay_days must be a whole number of days")
    return problems


def model_problems(booster: xgboost.Booster, signature_inputs: Sequence[str] | None) -> list[str]:
    problems = []
    if problem := _names_problem("the model signature's inputs", signature_inputs):
        problems.append(problem)
    if problem := _names_problem("the booster's feature names", booster.feature_names):
        problems.append(problem)
    config: dict[str, Any] = json.loads(booster.save_config())
    objective = config.get("learner", {}).get("objective", {}).get("name")
    if objective != EXPECTED_OBJECTIVE:
        problems.append(f"the booster's objective is {objective!r}, expected {EXPECTED_OBJECTIVE}")
    return problems


def evaluation_problems(frame: pd.DataFrame) -> list[str]:
    """Whether the evaluation data can measure a model: columns, labels, and both classes present."""
    required = [*FEATURE_NAMES, LABEL_COLUMN, TIME_COLUMN, CARD_COLUMN]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        return [f"{EVALUATION_ARTIFACT} lacks columns {missing}"]
    if frame.empty:
        return [f"{EVALUATION_ARTIFACT} has no rows"]
    problems = []
    labels = pd.to_numeric(frame[LABEL_COLUMN], errors="coerce")
    if not labels.isin((0, 1)).all():
        problems.append(f"{EVALUATION_ARTIFACT}: {LABEL_COLUMN} must be 0 or 1")
    elif labels.nunique() < 2:
        problems.append(f"{EVALUATION_ARTIFACT} needs both frauds and genuine payments to measure a model")
    non_numeric = [n for n in FEATURE_NAMES if not pd.api.types.is_numeric_dtype(frame[n])]
    if non_numeric:
        problems.append(f"{EVALUATION_ARTIFACT}: features {non_numeric} are not numeric")
    if pd.to_datetime(frame[TIME_COLUMN], utc=True, errors="coerce").isna().any():
        problems.append(f"{EVALUATION_ARTIFACT}: {TIME_COLUMN} has missing or unreadable times")
    return problems
