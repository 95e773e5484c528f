"""The training pipeline run in a worker process: data, features, time-aware split, model, evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from fraudops.errors import InvalidInputError
from fraudops.evaluation.metrics import QualityReport, average_precision, quality_report, threshold_for_daily_budget
from fraudops.evaluation.protocol import Split, split_frames
from fraudops.features import FEATURE_NAMES, FeatureConfig
from fraudops.features.offline import compute_features
from fraudops_trainer.spec import ModelParameters, ProtocolParameters

Progress = Callable[[str, float], None]


@dataclass
class TrainedModel:
    booster: xgb.Booster
    parameters: ModelParameters
    split: Split
    validation_split: Split
    thresholds: dict[str, float]
    report: QualityReport
    train: pd.DataFrame
    test: pd.DataFrame  # features, labels and the model's score


def fraud_labels(frame: pd.DataFrame, label_delay_days: int) -> pd.DataFrame:
    """Labels as the Handbook assumes them: every fraud known `label_delay_days` after it happened."""
    frauds = frame[frame["is_fraud"] == 1]
    return pd.DataFrame(
        {
            "transaction_id": frauds["transaction_id"],
            "is_fraud": 1,
            "known_at": pd.to_datetime(frauds["event_time"], utc=True) + pd.Timedelta(days=label_delay_days),
        }
    )


def with_features(frame: pd.DataFrame, label_delay_days: int) -> pd.DataFrame:
    """The dataset with every feature column added (only labels known at each payment's time are used)."""
    if "is_fraud" not in frame.columns:
        raise InvalidInputError("the dataset has no is_fraud column: there is nothing to learn from")
    if frame.empty:
        raise InvalidInputError("the dataset has no valid rows")
    features = compute_features(frame, fraud_labels(frame, label_delay_days), FeatureConfig(label_delay_days))
    return pd.concat([frame.drop(columns=[c for c in FEATURE_NAMES if c in frame.columns]), features], axis=1)


def default_split(frame: pd.DataFrame, protocol: ProtocolParameters) -> Split:
    """The latest split the data allows: test on its last days, train on what precedes the delay."""
    days = pd.to_datetime(frame["event_time"], utc=True).dt.tz_convert(None).dt.normalize()
    first: date = days.min().date()
    last: date = days.max().date()
    test_start = last - timedelta(days=protocol.test_days - 1)
    train_end = test_start - timedelta(days=protocol.delay_days)
    available = (train_end - first).days
    train_days = protocol.train_days
    if available < 1 or train_days > available:
        raise InvalidInputError(
            f"the dataset covers {(last - first).days + 1} days; it needs train ({protocol.train_days}) + "
            f"delay ({protocol.delay_days}) + test ({protocol.test_days}) days"
        )
    return Split(train_end - timedelta(days=train_days), train_days, protocol.delay_days, protocol.test_days)


def _matrix(frame: pd.DataFrame, with_label: bool = True) -> xgb.DMatrix:
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    label = frame["is_fraud"].to_numpy() if with_label else None
    return xgb.DMatrix(values, label=label, feature_names=list(FEATURE_NAMES), nthread=-1)


def fit(train: pd.DataFrame, parameters: ModelParameters, seed: int = 0) -> xgb.Booster:
    labels = train["is_fraud"].to_numpy()
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise InvalidInputError("the training period holds a single class (no fraud, or only frauds)")
    booster_params: dict[str, Any] = {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "eval_metric": "aucpr",
        "max_depth": parameters.max_depth,
        "eta": parameters.learning_rate,
        "min_child_weight": parameters.min_child_weight,
        "max_bin": parameters.max_bin,
        "subsample": parameters.subsample,
        "colsample_bytree": parameters.colsample_bytree,
        "seed": seed,
        "nthread": 0,
    }
    if parameters.imbalance == "weight":
        booster_params["scale_pos_weight"] = (len(labels) - positives) / positives
    return xgb.train(booster_params, _matrix(train), num_boost_round=parameters.n_estimators)


def predict(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    values = frame[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    scores: np.ndarray = booster.inplace_predict(values, validate_features=False)
    return scores.astype(np.float64)


def search(
    data: pd.DataFrame, validation: Split, base: ModelParameters, trials: int, progress: Progress
) -> ModelParameters:
    """Optuna search of the booster's parameters on the validation split (average precision)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train, test = split_frames(data, validation)
    if test.empty or test["is_fraud"].sum() == 0:
        return base

    def objective(trial: optuna.Trial) -> float:
        candidate = base.model_copy(
            update={
                "max_depth": trial.suggest_int("max_depth", 2, 8),
                "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
                "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
                "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 10, log=True),
                "subsample": trial.suggest_float("subsample", 0.6, 1.0),
                "colsample_bytree": trial.suggest_float("colsample_bytree", 0.6, 1.0),
            }
        )
        progress(f"search trial {trial.number + 1}/{trials}", 0.3 + 0.3 * trial.number / trials)
        return average_precision(test["is_fraud"], predict(fit(train, candidate), test))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=trials)
    return base.model_copy(update=study.best_params)


def train_model(
    frame: pd.DataFrame,
    parameters: ModelParameters,
    protocol: ProtocolParameters,
    search_trials: int,
    progress: Progress,
    split: Split | None = None,
) -> TrainedModel:
    """Features, split, optional search, thresholds from a validation split, final model and test report."""
    progress("features", 0.1)
    data = with_features(frame, protocol.label_delay_days)
    split = split or default_split(data, protocol)
    # Thresholds (and the search) come from the same protocol moved back by the test length: never the test.
    validation = Split(
        split.train_start - timedelta(days=split.test_days), split.train_days, split.delay_days, split.test_days
    )
    if search_trials:
        parameters = search(data, validation, parameters, search_trials, progress)
    progress("validation model", 0.6)
    val_train, val_test = split_frames(data, validation)
    if val_test.empty or val_train.empty:
        raise InvalidInputError("the dataset is too short for a validation period before the test period")
    val_scores = predict(fit(val_train, parameters), val_test)
    thresholds = {
        "review": threshold_for_daily_budget(val_scores, validation.test_days, protocol.review_alerts_per_day),
        "decline": threshold_for_daily_budget(val_scores, validation.test_days, protocol.decline_alerts_per_day),
    }
    thresholds["decline"] = max(thresholds["decline"], thresholds["review"])
    progress("final model", 0.75)
    train, test = split_frames(data, split)
    if test.empty:
        raise InvalidInputError("the test period holds no transaction")
    booster = fit(train, parameters)
    scores = predict(booster, test)
    report = quality_report(test, scores, thresholds["review"], thresholds["decline"])
    return TrainedModel(
        booster=booster,
        parameters=parameters,
        split=split,
        validation_split=validation,
        thresholds=thresholds,
        report=report,
        train=train,
        test=test.assign(score=scores),
    )
