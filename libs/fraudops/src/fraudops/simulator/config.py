"""What to simulate: the Handbook's parameters, the size of the world and the drift scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from fraudops.errors import InvalidInputError

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class HandbookParameters:
    """Constants of the generator in the Fraud Detection Handbook (Le Borgne et al., chapter 3)."""

    grid_size: float = 100.0
    """Customers and terminals lie uniformly on a `grid_size` x `grid_size` square."""
    mean_amount_range: tuple[float, float] = (5.0, 100.0)
    """A customer's mean amount is uniform on this range; its standard deviation is half the mean."""
    mean_nb_tx_per_day_range: tuple[float, float] = (0.0, 4.0)
    """A customer's mean number of transactions per day is uniform on this range."""
    time_of_day_mean: float = SECONDS_PER_DAY / 2
    time_of_day_std: float = 20_000.0
    """A transaction's second of the day is normal; draws outside the day are dropped."""
    fraud_amount_threshold: float = 220.0
    """Scenario 1: every amount above this is a fraud."""
    compromised_terminals_per_day: int = 2
    terminal_compromise_days: int = 28
    """Scenario 2: terminals compromised each day, and for how many days all their transactions are frauds."""
    compromised_customers_per_day: int = 3
    customer_compromise_days: int = 14
    customer_fraud_share: float = 1 / 3
    customer_fraud_amount_factor: float = 5.0
    """Scenario 3: customers compromised each day; over the window, this share of their transactions is
    multiplied by the factor and is fraud."""


@dataclass(frozen=True)
class DriftSpec:
    """A drift scenario from the registry (`fraudops.simulator.drift.DRIFT_SCENARIOS`) and its first day."""

    name: str
    start_day: int

    def __post_init__(self) -> None:
        if self.start_day < 0:
            raise InvalidInputError(f"drift {self.name!r}: start day must be >= 0, got {self.start_day}")


@dataclass(frozen=True)
class SimulatorConfig:
    """The size and seed of a simulation; the defaults are the Handbook's published dataset."""

    n_customers: int = 5_000
    n_terminals: int = 10_000
    n_days: int = 183
    start_date: date = date(2018, 4, 1)
    radius: float = 5.0
    """A customer uses the terminals strictly closer than this."""
    seed: int = 0
    drifts: tuple[DriftSpec, ...] = ()
    handbook_scenarios: tuple[int, ...] = (1, 2, 3)
    """Which of the Handbook's fraud scenarios to apply (all by default; fewer for ablations and tests)."""
    handbook: HandbookParameters = field(default_factory=HandbookParameters)

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_terminals", "n_days"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.radius > 0:
            raise InvalidInputError(f"radius must be > 0, got {self.radius}")
        if self.seed < 0:
            raise InvalidInputError(f"seed must be >= 0, got {self.seed}")
        unknown = sorted(set(self.handbook_scenarios) - {1, 2, 3})
        if unknown:
            raise InvalidInputError(f"unknown Handbook scenario(s) {unknown}; known: 1, 2, 3")
        for drift in self.drifts:
            if drift.start_day >= self.n_days:
                raise InvalidInputError(
                    f"drift {drift.name!r} starts on day {drift.start_day}, after the last day ({self.n_days - 1})"
                )
