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
from fraudops.evaluation.metrics import (
    QualityReport,
    average_precision,
    card_precision_at_k,
    quality_report,
    threshold_for_daily_budget,
)
from fraudops.evaluation.protocol import Split, prequential_splits, split_frames
from fraudops.features import FEATURE_NAMES, FeatureConfig
from fraudops.features.offline import compute_features
from fraudops_trainer.spec import ModelParameters, ProtocolParameters, SearchMetric

Progress = Callable[[str, float], None]

_SEARCH_METRICS: dict[SearchMetric, Callable[[pd.DataFrame, np.ndarray], float]] = {
    SearchMetric.AVERAGE_PRECISION: lambda test, scores: average_precision(test["is_fraud"], scores),
    SearchMetric.CARD_PRECISION_AT_100: lambda test, scores: card_precision_at_k(test.assign(score=scores), k=100),
}


@dataclass(frozen=True)
class SearchPlan:
    """An Optuna search asked for with a job: its trials, the validation folds a trial is scored on, the metric."""

    trials: int
    folds: int
    metric: SearchMetric


NO_SEARCH = SearchPlan(trials=0, folds=1, metric=SearchMetric.AVERAGE_PRECISION)


@dataclass(frozen=True)
class SearchOutcome:
    parameters: ModelParameters
    folds: list[Split]
    best_value: float


@dataclass
class TrainedModel:
    booster: xgb.Booster
    parameters: ModelParameters
    split: Split
    validation_split: Split
    search: SearchOutcome | None
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


def _days(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["event_time"], utc=True).dt.tz_convert(None).dt.normalize()


def default_split(frame: pd.DataFrame, protocol: ProtocolParameters) -> Split:
    """The latest split the data allows: test on its last days, train on what precedes the delay."""
    days = _days(frame)
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
        "gamma": parameters.gamma,
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


def validation_split(split: Split) -> Split:
    """The same protocol moved back by the delay and the test length (the Handbook's model selection):
    thresholds and the search come from it, never the test.

    Its test period is then the final model's training period, whose labels are all known when the test
    period starts. Moved back by the test length only, it would be the delay period, whose labels arrive
    during the test: knowledge the deployed model could not have had.
    """
    back = timedelta(days=split.delay_days + split.test_days)
    return Split(split.train_start - back, split.train_days, split.delay_days, split.test_days)


def search_splits(validation: Split, folds: int, first_day: date) -> list[Split]:
    """The validation split and up to `folds - 1` earlier ones, one test length apart, within the data.

    Each is `validation` moved back, so none reaches past the validation test period (which ends where the
    final model's training period does). The validation split itself always comes first, as for the thresholds; an
    earlier fold is kept only if its whole training period lies inside the data.
    """
    splits = prequential_splits(validation, folds)
    return splits[:1] + [split for split in splits[1:] if split.train_start >= first_day]


def search(
    data: pd.DataFrame, validation: Split, base: ModelParameters, plan: SearchPlan, progress: Progress
) -> SearchOutcome:
    """Optuna search of the booster's parameters; a trial's score is the plan's metric averaged over folds."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds: list[tuple[Split, pd.DataFrame, pd.DataFrame]] = []
    for split in search_splits(validation, plan.folds, _days(data).min().date()):
        train, test = split_frames(data, split)
        # A fold without both classes to learn from, or without a fraud to find, cannot rank a trial.
        if train["is_fraud"].nunique() == 2 and test["is_fraud"].sum() > 0:
            folds.append((split, train, test))
    if not folds:
        raise InvalidInputError(
            f"no validation fold before the test period holds frauds to learn from and to find: "
            f"the search ({plan.trials} trials) cannot score its trials on this dataset"
        )
    score = _SEARCH_METRICS[plan.metric]

    def objective(trial: optuna.Trial) -> float:
        candidate = base.model_copy(
            update={
                "max_depth": trial.suggest_int("max_depth", 2, 8),
                "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
                "n_estimators": trial.suggest_int("n_estimators", 50, 400, step=50),
                "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 10, log=True),
                "gamma": trial.suggest_float("gamma", 0.0, 5.0),
                "subsample": trial.suggest_float("subsample", 0.6, 1.0),
                "colsample_bytree": trial.suggest_float("colsample_bytree", 0.6, 1.0),
            }
        )
        progress(
            f"search trial {trial.number + 1}/{plan.trials} on {len(folds)} validation folds",
            0.3 + 0.3 * trial.number / plan.trials,
        )
        return float(np.mean([score(test, predict(fit(train, candidate), test)) for _, train, test in folds]))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=plan.trials)
    return SearchOutcome(
        parameters=base.model_copy(update=study.best_params),
        folds=[split for split, _, _ in folds],
        best_value=float(study.best_value),
    )


def train_model(
    frame: pd.DataFrame,
    parameters: ModelParameters,
    protocol: ProtocolParameters,
    search_plan: SearchPlan,
    progress: Progress,
    split: Split | None = None,
) -> TrainedModel:
    """Features, split, optional search, thresholds from a validation split, final model and test report."""
    progress("features", 0.1)
    data = with_features(frame, protocol.label_delay_days)
    split = split or default_split(data, protocol)
    validation = validation_split(split)
    outcome = None
    if search_plan.trials:
        outcome = search(data, validation, parameters, search_plan, progress)
        parameters = outcome.parameters
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
        search=outcome,
        thresholds=thresholds,
        report=report,
        train=train,
        test=test.assign(score=scores),
    )
