"""Data and prediction drift with Evidently: the live window against the serving version's reference profile.

`measure_drift` runs in a worker process (Evidently takes seconds on a 50k-row window and holds the GIL
for much of it), so it takes and returns plain, picklable values and imports Evidently only there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SCORE_COLUMN = "score"
# Flags are categories: a distance between histograms suits them better than one between values.
CATEGORICAL_FEATURES = frozenset({"is_weekend", "is_night"})


@dataclass(frozen=True)
class DriftConfig:
    numerical_method: str
    categorical_method: str
    threshold: float
    dataset_drift_share: float
    sentinel_features: tuple[str, ...]


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    method: str
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftOutcome:
    rows: int
    reference_rows: int
    features: list[FeatureDrift]
    drift_share: float
    dataset_drifted: bool
    new_pattern_drift: bool
    prediction_score: float | None
    prediction_drifted: bool
    report_files: dict[str, str] = field(default_factory=dict)

    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "drift_share": self.drift_share,
            "dataset_drifted": self.dataset_drifted,
            "new_pattern_drift": self.new_pattern_drift,
            "prediction_score": self.prediction_score,
            "prediction_drifted": self.prediction_drifted,
            "features": [f.__dict__ for f in self.features],
        }


def measure_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig,
    report_path: Path | None = None,
) -> DriftOutcome:
    """Compare `current` with `reference` (same feature columns; SCORE_COLUMN optional in `current`).

    With `report_path`, the Evidently report is also written as `<report_path>.html` and `.json`.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    features = [c for c in reference.columns if c != SCORE_COLUMN and c in current.columns]
    with_scores = SCORE_COLUMN in reference.columns and SCORE_COLUMN in current.columns
    columns = features + ([SCORE_COLUMN] if with_scores else [])
    definition = DataDefinition(
        numerical_columns=[c for c in columns if c not in CATEGORICAL_FEATURES],
        categorical_columns=[c for c in features if c in CATEGORICAL_FEATURES],
    )
    # One ValueDrift per column rather than the DataDriftPreset: the same tests, half the time (no summaries).
    metrics = [
        ValueDrift(
            column=column,
            method=config.categorical_method if column in CATEGORICAL_FEATURES else config.numerical_method,
            threshold=config.threshold,
        )
        for column in columns
    ]
    snapshot = Report(metrics).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    values = _value_drifts(snapshot.dict())
    per_feature = [
        FeatureDrift(
            feature=name,
            method=values[name][0],
            score=values[name][1],
            drifted=values[name][1] >= config.threshold,
        )
        for name in features
        if name in values
    ]
    share = sum(f.drifted for f in per_feature) / len(per_feature) if per_feature else 0.0
    prediction = values.get(SCORE_COLUMN)
    files: dict[str, str] = {}
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        html, data = report_path.with_suffix(".html"), report_path.with_suffix(".json")
        snapshot.save_html(str(html))
        data.write_text(snapshot.json())
        files = {"html": html.name, "json": data.name}
    return DriftOutcome(
        rows=len(current),
        reference_rows=len(reference),
        features=per_feature,
        drift_share=share,
        dataset_drifted=share >= config.dataset_drift_share,
        new_pattern_drift=any(f.drifted for f in per_feature if f.feature in config.sentinel_features),
        prediction_score=prediction[1] if prediction else None,
        prediction_drifted=bool(prediction and prediction[1] >= config.threshold),
        report_files=files,
    )


def _value_drifts(report: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """column -> (method, drift score) of every ValueDrift metric in an Evidently report's dict."""
    found: dict[str, tuple[str, float]] = {}
    for metric in report.get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        value = metric.get("value")
        if isinstance(value, int | float) and np.isfinite(value):
            found[str(config["column"])] = (str(config.get("method")), float(value))
    return found


def warm_up() -> None:
    """Import Evidently in the worker process ahead of the first evaluation (it takes seconds)."""
    import evidently.metrics  # noqa: F401 - imported for its side effect: the module is loaded and cached
