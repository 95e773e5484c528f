"""The demo's simulated world: a history to train on, then a live stream in which a new fraud pattern starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd

from fraudops.simulator import SimulatorConfig, derive_labels, simulate
from fraudops.simulator.config import DriftSpec
from fraudops.simulator.labels import LabelDelayConfig, TriangularDelay

# Features look back 30 days, after the 7-day label delay of terminal risk, and a day of slack: the history a
# payment's features need, whether the scorer computes them online or the trainer offline.
FEATURE_HORIZON_DAYS = 38
DRIFT_SCENARIO = "card_testing"
# The demo's bank learns of a fraud within four days, a day for most (the simulator's default is chargebacks
# after a week, up to a month): a retraining started by the alert then finds the recent frauds labelled,
# which a model needs both to learn from and to be judged on.
DEMO_LABEL_DELAYS = LabelDelayConfig(fraud_delay=TriangularDelay(0.25, 1.0, 4.0))


@dataclass(frozen=True)
class DemoSize:
    name: str
    customers: int
    history_days: int
    stream_days: int
    drift_day: int
    """Day of the stream on which the drift scenario starts."""
    rate: float
    """Transactions per second of the live stream."""


FULL = DemoSize("full", customers=3_000, history_days=120, stream_days=36, drift_day=12, rate=1_000)
# The gate's card precision@100 needs a few dozen frauds a day: 1,500 customers is about the least that has them.
SMALL = DemoSize("small", customers=1_500, history_days=60, stream_days=14, drift_day=5, rate=1_000)


@dataclass(frozen=True)
class DemoWorld:
    size: DemoSize
    transactions: pd.DataFrame
    labels: pd.DataFrame
    start: datetime
    seed: int
    today: date
    """The day the world was made for: its stream ends the day before."""
    tag: str
    """Prefix of every id of this world: a second demo on the same stack meets none of the first one's cards."""

    def day(self, n: int) -> datetime:
        return self.start + timedelta(days=n)

    @property
    def stream_start(self) -> datetime:
        return self.day(self.size.history_days)

    @property
    def drift_start(self) -> datetime:
        return self.day(self.size.history_days + self.size.drift_day)

    @property
    def stream_end(self) -> datetime:
        return self.day(self.size.history_days + self.size.stream_days)

    def between(self, start: datetime, end: datetime) -> pd.DataFrame:
        times = self.transactions["event_time"]
        return self.transactions[(times >= start) & (times < end)]

    def history(self) -> pd.DataFrame:
        """What the bank has on file: every transaction before the stream, chargebacks settled."""
        return self.between(self.start, self.stream_start)

    def labels_of(self, transactions: pd.DataFrame) -> pd.DataFrame:
        return self.labels[self.labels["transaction_id"].isin(set(transactions["transaction_id"]))]


def simulate_world(size: DemoSize, tag: str, today: date, seed: int = 7) -> DemoWorld:
    """A world whose stream ends yesterday: ingest accepts no dataset rows from the future."""
    days = size.history_days + size.stream_days
    config = SimulatorConfig(
        n_customers=size.customers,
        n_terminals=2 * size.customers,
        n_days=days,
        start_date=today - timedelta(days=days + 1),
        seed=seed,
        drifts=(DriftSpec(DRIFT_SCENARIO, size.history_days + size.drift_day),),
    )
    transactions = simulate(config).transactions.sort_values("event_time", kind="stable").reset_index(drop=True)
    for column in ("transaction_id", "customer_id", "terminal_id"):
        transactions[column] = tag + "-" + transactions[column].astype(str)
    start = datetime.combine(config.start_date, time.min, UTC)
    return DemoWorld(size, transactions, derive_labels(transactions, DEMO_LABEL_DELAYS), start, seed, today, tag)
