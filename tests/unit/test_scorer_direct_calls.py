"""The scorer's direct calls of XGBoost's C functions give exactly what the public Python calls give."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost

from fraudops.features import FEATURE_NAMES
from fraudops_scorer import direct_calls
from fraudops_scorer.direct_calls import DenseContributions, DensePredictor
from fraudops_scorer.scoring import NO_REASONS, model_verdicts
from fraudops_scorer.serving import SINGLE_THREAD_ROWS, ServingModel
from tests.support.models import train_booster


@pytest.fixture(scope="module")
def booster() -> xgboost.Booster:
    return train_booster(seed=3)


def _rows(booster: xgboost.Booster, count: int) -> np.ndarray:
    chance = np.random.default_rng(count)
    values = chance.normal(0, 50, size=(count, booster.num_features())).astype(np.float32)
    values[chance.random(values.shape) < 0.1] = np.nan
    return values


def _public_contributions(booster: xgboost.Booster, values: np.ndarray, threads: int) -> np.ndarray:
    matrix = xgboost.DMatrix(values, nthread=threads)
    return np.asarray(booster.predict(matrix, pred_contribs=True, approx_contribs=True, validate_features=False))


@pytest.mark.parametrize("count", [1, 7, 300])
def test_direct_calls_equal_the_public_ones(booster: xgboost.Booster, count: int) -> None:
    values = _rows(booster, count)
    predictor = DensePredictor.make(booster, 512)
    contributions = DenseContributions.make(booster, -1)
    assert predictor is not None
    assert contributions is not None
    np.testing.assert_array_equal(predictor(values), booster.inplace_predict(values, validate_features=False))
    np.testing.assert_array_equal(contributions(values), _public_contributions(booster, values, -1))


@pytest.mark.parametrize("count", [1, SINGLE_THREAD_ROWS, SINGLE_THREAD_ROWS + 1, 2_000])
def test_serving_predictions_are_the_public_calls(booster: xgboost.Booster, count: int) -> None:
    """Small batches on the one-thread copy, larger ones on the booster itself: both through the fast path."""
    model = ServingModel("m", "1", "champion", booster, review_threshold=0.5, decline_threshold=0.9, label_delay_days=7)
    assert model._small_batches is not None, "the one-thread fast path serves"
    assert model._batches is not None, "the fast path serves larger batches too"
    values = _rows(booster, count)
    expected = booster.inplace_predict(values, validate_features=False)
    np.testing.assert_array_equal(model.predict(values.astype(np.float64)), expected.astype(np.float64))


def test_a_fast_path_that_answers_differently_is_not_used(
    booster: xgboost.Booster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Exact TreeSHAP instead of Saabas' contributions: same shape, other numbers.
    monkeypatch.setattr(direct_calls, "_APPROX_CONTRIBUTIONS", 2)
    assert DenseContributions.make(booster, 1) is None
    assert DenseContributions(booster, 1)(_rows(booster, 5)).shape == (5, booster.num_features() + 1)


def test_wrong_input_is_refused(booster: xgboost.Booster) -> None:
    contributions = DenseContributions.make(booster, 1)
    assert contributions is not None
    with pytest.raises(ValueError, match="C-contiguous float32"):
        contributions(_rows(booster, 3).astype(np.float64))
    with pytest.raises(ValueError, match="C-contiguous float32"):
        contributions(_rows(booster, 3)[:, :-1])
    with pytest.raises(ValueError, match="C-contiguous float32"):
        contributions(np.asfortranarray(_rows(booster, 3)))
    with pytest.raises(ValueError, match="C-contiguous float32"):
        contributions(_rows(booster, 1)[0])


def test_verdicts_explain_flagged_rows_with_the_public_contributions(booster: xgboost.Booster) -> None:
    model = ServingModel("m", "1", "champion", booster, review_threshold=0.5, decline_threshold=0.9, label_delay_days=7)
    assert model._contributions is not None, "the fast path serves"
    assert model._few_contributions is not None, "the fast path serves a single row too"
    values = _rows(booster, 200).astype(np.float64)
    verdicts = model_verdicts(model, values, reason_count=2, for_approved=False)
    flagged = np.flatnonzero(verdicts.decisions != 0)
    assert 0 < flagged.size < len(values), "the probe rows should hold both approved and flagged payments"
    public = _public_contributions(booster, values[flagged].astype(np.float32), -1)
    for row, expected in zip(flagged.tolist(), public, strict=True):
        best = np.argsort(-expected[:-1], kind="stable")[:2]
        assert [name for name, _ in verdicts.reasons[row]] == [FEATURE_NAMES[c] for c in best.tolist()]
        assert [value for _, value in verdicts.reasons[row]] == [float(expected[c]) for c in best.tolist()]
    approved = np.flatnonzero(verdicts.decisions == 0)
    assert all(verdicts.reasons[row] is NO_REASONS for row in approved.tolist())
