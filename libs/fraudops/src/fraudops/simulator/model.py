"""Column arrays shared by the generator, the Handbook's fraud scenarios and the drift scenarios.

Everything is indexed by position (customer `i`, terminal `j`, day `d` counted from the start date) until
the final frames are built; ids as strings exist only in the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from fraudops.simulator.config import SECONDS_PER_DAY, SimulatorConfig

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Flags = NDArray[np.int8]


@dataclass(frozen=True)
class World:
    """Customer and terminal profiles, and each customer's available terminals as a CSR list."""

    config: SimulatorConfig
    customer_x: Floats
    customer_y: Floats
    mean_amount: Floats
    std_amount: Floats
    mean_nb_tx_per_day: Floats
    terminal_x: Floats
    terminal_y: Floats
    available_indptr: Ints
    """Customer `i` may use terminals `available_indices[available_indptr[i]:available_indptr[i + 1]]`."""
    available_indices: Ints

    @property
    def n_customers(self) -> int:
        return int(self.customer_x.shape[0])

    @property
    def n_terminals(self) -> int:
        return int(self.terminal_x.shape[0])

    @property
    def n_days(self) -> int:
        return self.config.n_days

    @property
    def n_available(self) -> Ints:
        """Number of available terminals per customer."""
        return np.diff(self.available_indptr)

    def within_radius(self, customers: Ints, terminals: Ints) -> NDArray[np.bool_]:
        """Whether each terminal is among its customer's available ones (closer than the radius)."""
        dx = self.customer_x[customers] - self.terminal_x[terminals]
        dy = self.customer_y[customers] - self.terminal_y[terminals]
        return np.asarray(dx * dx + dy * dy < self.config.radius**2)


def _empty_ints() -> Ints:
    return np.zeros(0, dtype=np.int64)


@dataclass
class TransactionArrays:
    """Transactions as parallel arrays; `seconds` counts from midnight UTC of the start date."""

    seconds: Ints = field(default_factory=_empty_ints)
    customer: Ints = field(default_factory=_empty_ints)
    terminal: Ints = field(default_factory=_empty_ints)
    amount: Floats = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    is_fraud: Flags = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    fraud_scenario: Flags = field(default_factory=lambda: np.zeros(0, dtype=np.int8))

    def __len__(self) -> int:
        return int(self.seconds.shape[0])

    @property
    def day(self) -> Ints:
        return self.seconds // SECONDS_PER_DAY

    def extend(self, other: TransactionArrays) -> None:
        """Append `other`'s rows after these (rows already here keep their positions)."""
        self.seconds = np.concatenate([self.seconds, other.seconds])
        self.customer = np.concatenate([self.customer, other.customer])
        self.terminal = np.concatenate([self.terminal, other.terminal])
        self.amount = np.concatenate([self.amount, other.amount])
        self.is_fraud = np.concatenate([self.is_fraud, other.is_fraud])
        self.fraud_scenario = np.concatenate([self.fraud_scenario, other.fraud_scenario])


@dataclass(frozen=True)
class Compromise:
    """One compromised customer or terminal: its transactions on days [start_day, end_day) may be frauds."""

    fraud_scenario: int
    kind: str  # "customer" or "terminal"
    entity: int
    start_day: int
    end_day: int


@dataclass
class SimulationState:
    """What the stages of a simulation read and change: the world, the transactions so far, the compromises."""

    world: World
    transactions: TransactionArrays
    compromises: list[Compromise] = field(default_factory=list)
