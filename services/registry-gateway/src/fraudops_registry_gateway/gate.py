"""The quality gate's arithmetic: score a booster on evaluation data and judge the numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost

from fraudops.evaluation.metrics import average_precision, card_precision_at_k, roc_auc
from fraudops.features import FEATURE_NAMES
from fraudops_registry_gateway.contract import CARD_COLUMN, LABEL_COLUMN, TIME_COLUMN
from fraudops_registry_gateway.settings import GateSettings

# The Handbook's investigators check 100 cards a day; the gate's minimum is stated for that capacity.
CARDS_CHECKED_PER_DAY = 100


@dataclass(frozen=True)
class Scores:
    average_precision: float
    roc_auc: float
    card_precision_at_k: float
    k: int

    def as_dict(self) -> dict[str, float]:
        return {
            "average_precision": round(self.average_precision, 6),
            "roc_auc": round(self.roc_auc, 6),
            f"card_precision_at_{self.k}": round(self.card_precision_at_k, 6),
        }


def predict(booster: xgboost.Booster, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Fraud probabilities; xgboost refuses a booster whose feature names differ from the data's."""
    features = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    matrix = xgboost.DMatrix(features, feature_names=list(FEATURE_NAMES))
    return np.asarray(booster.predict(matrix, validate_features=True), dtype=np.float64)


def measure(frame: pd.DataFrame, predictions: npt.NDArray[np.float64], k: int = CARDS_CHECKED_PER_DAY) -> Scores:
    labels = frame[LABEL_COLUMN].to_numpy(dtype=np.float64)
    return Scores(
        average_precision=average_precision(labels, predictions),
        roc_auc=roc_auc(labels, predictions),
        card_precision_at_k=card_precision_at_k(
            frame.assign(score=predictions), k, label=LABEL_COLUMN, card=CARD_COLUMN, time=TIME_COLUMN
        ),
        k=k,
    )


def minimum_problems(scores: Scores, gate: GateSettings) -> list[str]:
    checks = (
        ("average precision", scores.average_precision, gate.min_average_precision),
        ("ROC AUC", scores.roc_auc, gate.min_roc_auc),
        (f"card precision@{scores.k}", scores.card_precision_at_k, gate.min_card_precision_at_100),
    )
    return [
        f"{name} {value:.4f} is below the minimum {minimum:.4f}" for name, value, minimum in checks if value < minimum
    ]


def regression_problems(candidate: Scores, champion: Scores, champion_version: str, gate: GateSettings) -> list[str]:
    drop = champion.average_precision - candidate.average_precision
    if drop > gate.max_average_precision_drop:
        return [
            f"average precision {candidate.average_precision:.4f} is {drop:.4f} below champion version "
            f"{champion_version} ({champion.average_precision:.4f}) on the same evaluation data; "
            f"at most {gate.max_average_precision_drop:.4f} is allowed"
        ]
    return []
