"""Monitor processes on a test's own topics, and champions trained on a simulated stream with a real profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import xgboost
from mlflow import MlflowClient

from fraudops.features import FEATURE_NAMES
from fraudops.features.offline import compute_features
from tests.support.models import contract_tags, register_version
from tests.support.scorer import ScorerRun
from tests.support.service_process import ServiceProcess

FEATURES = list(FEATURE_NAMES)


class MonitorProcess(ServiceProcess):
    """`python -m fraudops_monitor` reading a ScorerRun's topics, evaluating every `every` transactions."""

    def __init__(self, run: ScorerRun, workdir: Path, **settings: str) -> None:
        topics = run.topics
        super().__init__(
            "monitor",
            run.stack,
            workdir,
            {
                "TOPICS__TRANSACTIONS": topics.name("transactions"),
                "TOPICS__SCORES": topics.name("scores"),
                "TOPICS__LABELS": topics.name("labels"),
                "MODEL_NAME": run.model_name,
                "DATA_DIR": str(workdir / f"monitor-{topics.prefix}"),
                "GATEWAY_URL": run.stack.url("registry-gateway"),
                "EVALUATION_INTERVAL_S": "3600",
                **settings,
            },
        )


@dataclass(frozen=True)
class TrainedChampion:
    version: str
    review_threshold: float
    reference: pd.DataFrame


def simulated_features(transactions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The stream's rows with their (offline) features, `day` from the first day, in event-time order."""
    frame = transactions.sort_values("event_time", kind="stable").reset_index(drop=True)
    features = compute_features(frame, labels)
    out = pd.concat([frame.drop(columns=[c for c in FEATURES if c in frame.columns]), features[FEATURES]], axis=1)
    first = out["event_time"].min().floor("D")
    out["day"] = (out["event_time"] - first).dt.days
    return out


def train_champion(run: ScorerRun, rows: pd.DataFrame, train_days: range, reference_days: range) -> TrainedChampion:
    """Train on `train_days`, profile `reference_days` (out of sample), register and alias it champion."""
    train = rows[rows["day"].isin(train_days)]
    matrix = xgboost.DMatrix(train[FEATURES].to_numpy(np.float32), label=train["is_fraud"], feature_names=FEATURES)
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 0}
    booster = xgboost.train(params, matrix, num_boost_round=60)
    held_out = rows[rows["day"].isin(reference_days)]
    scores = booster.inplace_predict(held_out[FEATURES].to_numpy(np.float32))
    reference = held_out[FEATURES].assign(score=scores).reset_index(drop=True)
    # About a hundred reviews a day on a stream of a few thousand payments.
    review = float(np.quantile(scores, 0.97))
    decline = float(np.quantile(scores, 0.995))
    tags = contract_tags(threshold_review=repr(review), threshold_decline=repr(max(decline, review)))
    mlflow.set_tracking_uri(run.stack.settings.mlflow_url)
    evaluation = held_out[[*FEATURES, "is_fraud", "event_time", "customer_id"]].assign(score=scores)
    version = register_version(run.model_name, booster, evaluation=evaluation, tags=tags, reference=reference)
    MlflowClient().set_registered_model_alias(run.model_name, "champion", version)
    return TrainedChampion(version, review, reference)
