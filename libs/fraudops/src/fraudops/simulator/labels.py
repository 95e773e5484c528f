"""Late labels: when each simulated verdict becomes known, as rows shaped like the `Label` contract.

Frauds are confirmed late (chargebacks, mostly about a week after the payment, up to a month); genuine
transactions get a verdict only when an analyst happens to review them, so only a sample has one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fraudops.contracts.messages import LabelSource
from fraudops.errors import InvalidInputError

LABEL_FRAME_COLUMNS = ("transaction_id", "is_fraud", "source", "known_at")
_NS_PER_DAY = 86_400 * 1_000_000_000


class DelayDistribution(Protocol):
    """Draws delays in days (>= 0) between a transaction and the moment its label is known."""

    def __call__(self, rng: np.random.Generator, size: int) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class TriangularDelay:
    """Delays in days from a triangular distribution: never below `low`, never above `high`, most around `mode`."""

    low: float
    mode: float
    high: float

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.mode <= self.high or self.low == self.high:
            raise InvalidInputError(f"a delay needs 0 <= low <= mode <= high and low < high, got {self}")

    def __call__(self, rng: np.random.Generator, size: int) -> NDArray[np.float64]:
        return rng.triangular(self.low, self.mode, self.high, size)


@dataclass(frozen=True)
class LabelDelayConfig:
    """How late, and for which transactions, verdicts arrive."""

    fraud_delay: DelayDistribution = field(default_factory=lambda: TriangularDelay(1.0, 7.0, 30.0))
    """Delay of a fraud's chargeback."""
    fraud_analyst_share: float = 0.0
    """Share of frauds an analyst confirms first (source ANALYST, with `analyst_delay`) instead of a chargeback."""
    genuine_sample_rate: float = 0.02
    """Share of genuine transactions an analyst reviews; the others never get a label."""
    analyst_delay: DelayDistribution = field(default_factory=lambda: TriangularDelay(0.5, 2.0, 10.0))
    """Delay of an analyst's verdict."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("fraud_analyst_share", "genuine_sample_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise InvalidInputError(f"{name} must be within [0, 1], got {value}")


def derive_labels(transactions: pd.DataFrame, config: LabelDelayConfig | None = None) -> pd.DataFrame:
    """Label rows (transaction_id, is_fraud, source, known_at) for `transactions`, sorted by known_at.

    `transactions` needs transaction_id, event_time (tz-aware) and is_fraud (0/1). known_at is never before
    the transaction's event_time and is rounded up to the millisecond (the contract's precision). Labels may
    become known after the last transaction; filter on known_at to feed them up to a given time.
    """
    config = config or LabelDelayConfig()
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 7]))
    missing = sorted(set(("transaction_id", "event_time", "is_fraud")) - set(transactions.columns))
    if missing:
        raise InvalidInputError(f"transactions lack column(s) {missing}")
    is_fraud = transactions["is_fraud"].to_numpy().astype(bool)
    n = is_fraud.shape[0]

    # Draw for every row (whatever it turns out to need), so one row's draws do not depend on the others.
    analyst_first = rng.random(n) < config.fraud_analyst_share
    reviewed = rng.random(n) < config.genuine_sample_rate
    fraud_delay = config.fraud_delay(rng, n)
    analyst_delay = config.analyst_delay(rng, n)

    labelled = is_fraud | reviewed
    by_analyst = np.where(is_fraud, analyst_first, True)[labelled]
    delay_days = np.where(by_analyst, analyst_delay[labelled], fraud_delay[labelled])
    if np.any(delay_days < 0) or not np.all(np.isfinite(delay_days)):
        raise InvalidInputError("a delay distribution drew a negative or non-finite delay")

    rows = np.flatnonzero(labelled)
    event_time = pd.DatetimeIndex(transactions["event_time"].iloc[rows])
    if event_time.tz is None:
        event_time = event_time.tz_localize("UTC")
    known_at = (event_time + pd.to_timedelta(np.round(delay_days * _NS_PER_DAY).astype(np.int64), unit="ns")).ceil("ms")
    labels = pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"].to_numpy()[rows],
            "is_fraud": is_fraud[labelled],
            "source": np.where(by_analyst, LabelSource.ANALYST.value, LabelSource.CHARGEBACK.value).astype(object),
            "known_at": known_at,
        }
    )
    return labels.sort_values(["known_at", "transaction_id"], kind="stable", ignore_index=True)
