"""Drift scenarios layered on the Handbook's generator, one registered function each.

A scenario is `fn(state, start_day, rng)`: it changes `state.transactions` (in place, or by appending rows)
only on days >= `start_day`, drawing from `rng` alone. Its stage says when it runs:

- "before_frauds": on the genuine transactions, before the Handbook's scenarios label them (so, e.g.,
  scenario 1's fixed threshold applies to shifted amounts);
- "after_frauds": after the Handbook's scenarios, typically to add a new kind of fraud.

Add a scenario by decorating a function with `@drift_scenario(...)`; the CLI's `--drift NAME` finds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fraudops.simulator.config import SECONDS_PER_DAY
from fraudops.simulator.model import Compromise, SimulationState, TransactionArrays

DriftFunction = Callable[[SimulationState, int, np.random.Generator], None]
Stage = Literal["before_frauds", "after_frauds"]

CARD_TESTING = 4
"""fraud_scenario code of the card-testing frauds."""


@dataclass(frozen=True)
class DriftScenario:
    name: str
    stage: Stage
    description: str
    apply: DriftFunction


DRIFT_SCENARIOS: dict[str, DriftScenario] = {}


def drift_scenario(name: str, *, stage: Stage, description: str) -> Callable[[DriftFunction], DriftFunction]:
    """Register a drift scenario under `name`."""

    def register(fn: DriftFunction) -> DriftFunction:
        if name in DRIFT_SCENARIOS:
            raise ValueError(f"drift scenario {name!r} is registered twice")
        DRIFT_SCENARIOS[name] = DriftScenario(name, stage, description, fn)
        return fn

    return register


@drift_scenario(
    "card_testing",
    stage="after_frauds",
    description="new fraud (scenario 4): bursts of small amounts on stolen cards at terminals the card never uses",
)
def card_testing(
    state: SimulationState,
    start_day: int,
    rng: np.random.Generator,
    *,
    cards_per_day: int = 10,
    burst_size: tuple[int, int] = (4, 12),
    amount_range: tuple[float, float] = (1.0, 10.0),
    burst_seconds: int = 3_600,
) -> None:
    """Each day from `start_day`, stolen cards are tested with a burst of small payments at one terminal.

    Every burst is `burst_size` transactions (inclusive range) within `burst_seconds`, amounts uniform in
    `amount_range`, at one terminal outside the card's usual ones, at any time of day. The rows are added
    (the card's genuine transactions are untouched) and are fraud with scenario code 4. Features built
    from amounts, night/weekend flags, customer averages and delayed terminal risk see little: the amounts
    are small, the terminal has no fraud history, and only the one-day count per customer moves.
    """
    world = state.world
    days = np.arange(start_day, world.n_days, dtype=np.int64)
    per_day = min(cards_per_day, world.n_customers)
    if days.shape[0] == 0 or per_day == 0:
        return
    cards = np.concatenate([rng.choice(world.n_customers, per_day, replace=False) for _ in days]).astype(np.int64)
    burst_day = np.repeat(days, per_day)
    n_bursts = int(cards.shape[0])

    terminals = rng.integers(0, world.n_terminals, size=n_bursts)
    for _ in range(100):  # redraw terminals that are among the card's usual ones
        usual = np.flatnonzero(world.within_radius(cards, terminals))
        if usual.shape[0] == 0:
            break
        terminals[usual] = rng.integers(0, world.n_terminals, usual.shape[0])

    sizes = rng.integers(burst_size[0], burst_size[1] + 1, n_bursts)
    burst_start = burst_day * SECONDS_PER_DAY + rng.integers(0, SECONDS_PER_DAY - burst_seconds, n_bursts)
    n = int(sizes.sum())
    amount = np.maximum(np.round(rng.uniform(*amount_range, n), 2), 0.01)
    state.transactions.extend(
        TransactionArrays(
            seconds=np.repeat(burst_start, sizes) + rng.integers(0, burst_seconds, n),
            customer=np.repeat(cards, sizes),
            terminal=np.repeat(terminals, sizes),
            amount=amount,
            is_fraud=np.ones(n, dtype=np.int8),
            fraud_scenario=np.full(n, CARD_TESTING, dtype=np.int8),
        )
    )
    state.compromises.extend(
        Compromise(CARD_TESTING, "customer", int(c), int(d), int(d) + 1) for c, d in zip(cards, burst_day, strict=True)
    )


@drift_scenario(
    "population_shift",
    stage="before_frauds",
    description="no new fraud: amounts rise (x1.2, never across the scenario-1 threshold) and a fifth of the transactions move to the night",
)
def population_shift(
    state: SimulationState,
    start_day: int,
    rng: np.random.Generator,
    *,
    amount_factor: float = 1.2,
    night_share: float = 0.2,
    night_end_seconds: int = 6 * 3_600,
) -> None:
    """From `start_day`, amounts are multiplied by `amount_factor` and a `night_share` of the transactions
    gets a new time of day uniform in [00:00, `night_end_seconds`) of the same day.

    No new fraud: an amount the rise would lift above scenario 1's threshold keeps its old value, so the
    Handbook's scenarios (run afterwards, unchanged) label exactly the payments they would have labelled.
    This is data drift that should not cost accuracy, the counterpart of a new fraud pattern.
    """
    tx = state.transactions
    after = np.flatnonzero(tx.day >= start_day)
    risen = np.maximum(np.round(tx.amount[after] * amount_factor, 2), 0.01)
    threshold = state.world.config.handbook.fraud_amount_threshold
    tx.amount[after] = np.where(risen > threshold, tx.amount[after], risen)
    moved = after[rng.random(after.shape[0]) < night_share]
    midnight = tx.seconds[moved] - tx.seconds[moved] % SECONDS_PER_DAY
    tx.seconds[moved] = midnight + rng.integers(0, night_end_seconds, moved.shape[0])
