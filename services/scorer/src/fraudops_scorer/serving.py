"""The models that score: loaded from MLflow's registry, checked before they serve, called once per batch."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xgboost
from numpy.typing import NDArray

from fraudops.features import FEATURE_NAMES, FEATURE_VERSION
from fraudops_scorer.direct_calls import DenseContributions, DensePredictor

Matrix = NDArray[np.float64]
Scores = NDArray[np.float64]

# Batches up to this many rows are scored on one thread. XGBoost's CPU predictor splits a batch into blocks
# of 64 rows, so a smaller one is a single block that one thread scores anyway; a second thread only adds
# the fork and join of an OpenMP region, and on a busy machine that join waits for the other thread to be
# scheduled: tens of milliseconds for one POST /v1/score. Up to 8 blocks the wait still costs more than the
# second thread saves: the Kafka batches of a steady 5,000 payments/s (~100 rows) scored on one thread gave
# latency p95/p99 55/82 ms against 107/225 ms with two (`fraudops bench scorer`, full dataset, idle 2-core
# machine). Larger batches (catching up on a backlog) keep SERVING_THREADS.
SINGLE_THREAD_ROWS = 512
# Contributions of up to this many rows are computed on one thread too. With OpenMP's threads sleeping
# while they wait (the package sets OMP_WAIT_POLICY=PASSIVE), waking the second one costs more than it
# saves for a few hundred rows: Saabas contributions of 8 rows took 106 us on one thread against 450 us on
# two, 64 rows 290 against 500 us, 512 rows 1.80 against 1.84 ms (2-core machine, best of 200). A batch's
# explained rows (the flagged ones, about 1 in 100) are fewer.
SINGLE_THREAD_CONTRIBUTION_ROWS = 512
SERVING_THREADS = 2
# Larger batches go through XGBoost's C function as well (`direct_calls`), checked at load on this many rows:
# the Python wrapper cost ~110 µs a call, 15% of predicting 1,000 rows on two threads.
LARGE_BATCH_PROBE_ROWS = 1024


class ModelRefused(Exception):
    """A version that must not serve; the message says why."""


@dataclass(frozen=True)
class ServingModel:
    """One registered version ready to score: the booster and what its tags promise."""

    name: str
    version: str
    alias: str
    booster: xgboost.Booster
    review_threshold: float
    decline_threshold: float
    label_delay_days: int
    # The same trees set to one thread, for small batches (SINGLE_THREAD_ROWS); made from `booster` when not
    # given, and carried along by dataclasses.replace.
    single_thread_booster: xgboost.Booster | None = field(default=None, repr=False, compare=False)
    _small_batches: DensePredictor | None = field(init=False, default=None, repr=False, compare=False)
    _batches: DensePredictor | None = field(init=False, default=None, repr=False, compare=False)
    _few_contributions: DenseContributions | None = field(init=False, default=None, repr=False, compare=False)
    _contributions: DenseContributions | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.single_thread_booster is None:
            single = self.booster.copy()
            single.set_param({"nthread": 1})
            object.__setattr__(self, "single_thread_booster", single)
        assert self.single_thread_booster is not None
        object.__setattr__(self, "_small_batches", DensePredictor.make(self.single_thread_booster, SINGLE_THREAD_ROWS))
        object.__setattr__(self, "_batches", DensePredictor.make(self.booster, LARGE_BATCH_PROBE_ROWS))
        object.__setattr__(self, "_few_contributions", DenseContributions.make(self.single_thread_booster, 1))
        object.__setattr__(self, "_contributions", DenseContributions.make(self.booster, -1))

    def _booster_for(self, rows: int, single_thread_rows: int) -> tuple[xgboost.Booster, int]:
        """The booster for a batch of `rows`, and the threads to build its DMatrix with (-1: all)."""
        if rows <= single_thread_rows and self.single_thread_booster is not None:
            return self.single_thread_booster, 1
        return self.booster, -1

    def predict(self, features: Matrix) -> Scores:
        """Fraud probabilities of a batch with one call of the booster (the trainer's own dtype and call)."""
        values = np.ascontiguousarray(features, dtype=np.float32)
        direct = self._small_batches if len(values) <= SINGLE_THREAD_ROWS else self._batches
        if direct is not None and len(values):
            return direct(values).astype(np.float64)
        booster, _ = self._booster_for(len(values), SINGLE_THREAD_ROWS)
        scores: Scores = booster.inplace_predict(values, validate_features=False)
        return scores.astype(np.float64, copy=False)

    def contributions(self, features: Matrix) -> Matrix:
        """Per-feature contributions to the log-odds (XGBoost's own output; the last column is the bias).

        Saabas' approximation: exact TreeSHAP costs ~1.5 ms per row, the approximation ~13 µs. The columns
        are FEATURE_NAMES in order (the smoke test checked the booster's width), so the DMatrix carries no
        names; it is made and predicted on through XGBoost's C functions (`direct_calls`), which halves the
        cost of a Kafka batch's few explained rows.
        """
        few = len(features) <= SINGLE_THREAD_CONTRIBUTION_ROWS
        direct = self._few_contributions if few else self._contributions
        if direct is not None and len(features):
            return direct(np.ascontiguousarray(features, dtype=np.float32)).astype(np.float64)
        booster, threads = self._booster_for(len(features), SINGLE_THREAD_CONTRIBUTION_ROWS)
        matrix = xgboost.DMatrix(features.astype(np.float32, copy=False), nthread=threads)
        values: Matrix = booster.predict(matrix, pred_contribs=True, approx_contribs=True, validate_features=False)
        return values.astype(np.float64, copy=False)


def _number(tags: Mapping[str, str], key: str) -> float:
    try:
        value = float(tags[key])
    except KeyError:
        raise ModelRefused(f"tag {key} is missing") from None
    except ValueError:
        raise ModelRefused(f"tag {key}={tags[key]!r} is not a number") from None
    if not math.isfinite(value):
        raise ModelRefused(f"tag {key} is not finite")
    return value


def check_tags(tags: Mapping[str, str]) -> tuple[float, float, int]:
    """(review threshold, decline threshold, label delay days) a version's tags promise, or why it cannot serve."""
    if tags.get("feature_version") != FEATURE_VERSION:
        raise ModelRefused(
            f"feature_version {tags.get('feature_version')!r} differs from this scorer's {FEATURE_VERSION!r}"
        )
    try:
        names = json.loads(tags.get("feature_names", "null"))
    except ValueError:
        names = None
    if names != list(FEATURE_NAMES):
        raise ModelRefused("feature_names differ from the features this scorer computes")
    review = _number(tags, "threshold_review")
    decline = _number(tags, "threshold_decline")
    if not 0.0 <= review <= decline <= 1.0:
        raise ModelRefused(f"thresholds must satisfy 0 <= review ({review}) <= decline ({decline}) <= 1")
    delay = _number(tags, "label_delay_days")
    if not delay.is_integer() or not 1 <= delay <= 90:
        raise ModelRefused(f"label_delay_days {delay} must be a whole number of days in [1, 90]")
    return review, decline, int(delay)


def smoke_test(booster: xgboost.Booster) -> None:
    """Refuse a booster that cannot score our feature vector: wrong width, non-probabilities, NaN."""
    if booster.num_features() != len(FEATURE_NAMES):
        raise ModelRefused(
            f"the booster expects {booster.num_features()} features, the scorer gives {len(FEATURE_NAMES)}"
        )
    probe = np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32)
    probe[1] = 1.0
    probe[2] = np.nan
    try:
        scores = booster.inplace_predict(probe, validate_features=False)
    except xgboost.core.XGBoostError as exc:
        raise ModelRefused(f"smoke prediction failed: {exc}") from exc
    if np.shape(scores) != (3,) or not np.all(np.isfinite(scores)) or np.any((scores < 0) | (scores > 1)):
        raise ModelRefused(f"smoke prediction gave {np.asarray(scores).tolist()}, not three probabilities")


def load_booster(model_uri: str) -> xgboost.Booster:
    """Download a logged model and read its native booster (no pyfunc wrapper on the scoring path)."""
    import mlflow.artifacts
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="fraudops-scorer-") as scratch:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=scratch))
        description = Model.load(str(local / "MLmodel"))
        flavor = description.flavors.get("xgboost")
        if flavor is None:
            raise ModelRefused(f"the model has no xgboost flavour ({', '.join(sorted(description.flavors))})")
        if flavor.get("model_class", "xgboost.core.Booster") != "xgboost.core.Booster":
            raise ModelRefused(f"the model is a {flavor.get('model_class')}, not a native xgboost Booster")
        booster = xgboost.Booster()
        booster.load_model(str(local / flavor["data"]))
    booster.set_param({"nthread": SERVING_THREADS})
    return booster


@dataclass(frozen=True)
class Serving:
    """What scores right now: a snapshot swapped whole, so every batch is scored by one consistent set."""

    champion: ServingModel | None = None
    challenger: ServingModel | None = None
    fallback_switched_on: bool = False
    # Why there is no champion (registry unreachable, no version, refused...), for logs and /readyz.
    problem: str | None = "no model loaded yet"

    @property
    def rules_score(self) -> bool:
        return self.fallback_switched_on or self.champion is None

    @property
    def label_delay_days(self) -> int | None:
        return self.champion.label_delay_days if self.champion is not None else None
