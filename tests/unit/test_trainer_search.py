"""The trainer's Optuna search: scored on validation folds before the test period, on the metric asked for."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from fraudops.errors import InvalidInputError
from fraudops.evaluation.metrics import average_precision, card_precision_at_k
from fraudops.evaluation.protocol import HANDBOOK_SPLIT, Split, split_frames
from fraudops.simulator import SimulatorConfig, simulate
from fraudops_trainer.pipeline import (
    NO_SEARCH,
    SearchPlan,
    TrainedModel,
    fit,
    predict,
    search_splits,
    train_model,
    validation_split,
    with_features,
)
from fraudops_trainer.spec import ModelParameters, ProtocolParameters, SearchMetric

# 47 days from 2018-04-01: the default split trains on 04-27..05-03 and tests 05-11..17, its validation split
# tests 04-27..05-03 (training from 04-13), and only one earlier fold (training from 04-06) fits; the next
# one would train from 03-30.
TINY_WORLD = SimulatorConfig(n_customers=50, n_terminals=100, n_days=47, seed=4)


def _test_end(split: Split) -> date:
    return split.test_start + timedelta(days=split.test_days)


@pytest.fixture(scope="module")
def tiny() -> pd.DataFrame:
    return simulate(TINY_WORLD).transactions


def _train(frame: pd.DataFrame, plan: SearchPlan, stages: list[str] | None = None) -> TrainedModel:
    def progress(stage: str, _fraction: float) -> None:
        if stages is not None:
            stages.append(stage)

    return train_model(frame, ModelParameters(n_estimators=5), ProtocolParameters(), plan, progress)


def test_search_folds_step_back_from_the_validation_split_and_never_reach_the_test() -> None:
    validation = validation_split(HANDBOOK_SPLIT)
    folds = search_splits(validation, 4, first_day=date(2018, 4, 1))
    assert folds[0] == validation
    # The validation split tests on the final model's training week: all its labels are known by the time the
    # test period starts, none of the delay period's is used.
    train_end = HANDBOOK_SPLIT.train_start + timedelta(days=HANDBOOK_SPLIT.train_days)
    assert validation.test_start == HANDBOOK_SPLIT.train_start
    assert [_test_end(fold) for fold in folds] == [train_end - timedelta(days=7 * back) for back in range(4)]
    assert all(fold.train_days == 7 and fold.delay_days == 7 for fold in folds)


def test_short_data_keeps_only_the_folds_whose_training_it_holds() -> None:
    validation = validation_split(HANDBOOK_SPLIT)
    one_week_earlier = validation.train_start - timedelta(days=7)
    assert search_splits(validation, 4, first_day=one_week_earlier) == [
        validation,
        Split(one_week_earlier, 7, 7, 7),
    ]
    # The validation split itself is kept, as for the thresholds; too short a one fails later, clearly.
    assert search_splits(validation, 4, first_day=validation.train_start + timedelta(days=1)) == [validation]
    assert len(search_splits(validation, 1, first_day=date(2000, 1, 1))) == 1


@pytest.mark.parametrize("metric", list(SearchMetric))
def test_a_trial_scores_the_chosen_metric_averaged_over_the_folds(tiny: pd.DataFrame, metric: SearchMetric) -> None:
    stages: list[str] = []
    model = _train(tiny, SearchPlan(trials=1, folds=4, metric=metric), stages)
    assert model.search is not None
    assert model.search.folds == [model.validation_split, Split(date(2018, 4, 6), 7, 7, 7)]
    final_train_end = model.split.train_start + timedelta(days=model.split.train_days)
    assert all(_test_end(fold) <= final_train_end for fold in model.search.folds)
    assert "search trial 1/1 on 2 validation folds" in stages

    data = with_features(tiny, ProtocolParameters().label_delay_days)
    per_fold = []
    for fold in model.search.folds:
        train, test = split_frames(data, fold)
        scores = predict(fit(train, model.search.parameters), test)
        per_fold.append((average_precision(test["is_fraud"], scores), card_precision_at_k(test.assign(score=scores))))
    ap, cp = np.mean(per_fold, axis=0)
    assert ap != pytest.approx(cp)
    assert model.search.best_value == pytest.approx(ap if metric is SearchMetric.AVERAGE_PRECISION else cp)


def test_a_search_with_no_fold_to_score_it_is_refused(tiny: pd.DataFrame) -> None:
    # Frauds only from 04-20: the final split's training week holds some, no validation fold's does.
    late = pd.to_datetime(tiny["event_time"], utc=True) >= pd.Timestamp("2018-04-20", tz="UTC")
    with pytest.raises(InvalidInputError, match="no validation fold"):
        _train(
            tiny.assign(is_fraud=np.where(late, tiny["is_fraud"], 0)),
            SearchPlan(trials=1, folds=4, metric=SearchMetric.AVERAGE_PRECISION),
        )


def test_no_trials_means_no_search(tiny: pd.DataFrame) -> None:
    assert _train(tiny, NO_SEARCH).search is None
