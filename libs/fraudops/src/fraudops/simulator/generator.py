"""The Handbook's transaction generator and fraud scenarios, vectorised with numpy.

Reproduces the generator of Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud
Detection — Practical Handbook", chapter 3 "Simulated dataset": the same distributions and scenario rules,
not the same rows (the random draws are made in another order, from a `numpy.random.Generator`).
Two deliberate differences, both to keep every row valid for the platform's contracts:

- an amount that rounds to 0.00 becomes 0.01 (transactions must have positive amounts);
- a time of day is the floor of its normal draw and is kept when it lies in [0, 86400).

Each stage draws from its own random stream derived from the seed, so a drift scenario changes nothing
before its start day, and switching a scenario off leaves the other stages' draws unchanged.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudops.errors import InvalidInputError
from fraudops.simulator.config import SECONDS_PER_DAY, SimulatorConfig
from fraudops.simulator.drift import DRIFT_SCENARIOS, DriftScenario
from fraudops.simulator.model import Compromise, SimulationState, TransactionArrays, World
from fraudops.simulator.profiles import build_world

ProgressCallback = Callable[[str, float], None]
"""Called with the stage starting and the approximate fraction of the work already done."""

COLUMNS = (
    "transaction_id",
    "event_time",
    "customer_id",
    "terminal_id",
    "amount",
    "currency",
    "is_fraud",
    "fraud_scenario",
)
LABEL_COLUMNS = ("is_fraud", "fraud_scenario")
CURRENCY = "EUR"
MIN_AMOUNT = 0.01

# Random streams: one per stage, so stages never shift each other's draws.
_CUSTOMERS, _TERMINALS, _TRANSACTIONS, _SCENARIO_2, _SCENARIO_3, _DRIFT = 1, 2, 3, 4, 5, 6

PUBLISHED_STATISTICS: dict[str, int] = {
    "transactions": 1_754_155,
    "frauds": 14_681,
    "scenario_1": 978,
    "scenario_2": 9_099,
    "scenario_3": 4_604,
}
"""The Handbook's figures for its default dataset (5,000 customers, 10,000 terminals, 183 days)."""


@dataclass(frozen=True)
class SimulationResult:
    """A simulated dataset: transactions with their labels, the profiles behind them, the compromises."""

    config: SimulatorConfig
    transactions: pd.DataFrame
    """Columns `COLUMNS`, sorted by event_time; the label columns are `LABEL_COLUMNS`."""
    customers: pd.DataFrame
    """customer_id, x, y, mean_amount, std_amount, mean_nb_tx_per_day, n_terminals, available_terminals."""
    terminals: pd.DataFrame
    """terminal_id, x, y."""
    compromises: pd.DataFrame
    """fraud_scenario, kind ("customer"/"terminal"), entity_id, start_day, end_day (exclusive)."""

    def scenario_counts(self) -> dict[int, int]:
        """Transactions per fraud scenario (0 = genuine), as the scenario code finally recorded."""
        codes, counts = np.unique(self.transactions["fraud_scenario"].to_numpy(), return_counts=True)
        return {int(code): int(n) for code, n in zip(codes, counts, strict=True)}

    def summary(self) -> str:
        rows = len(self.transactions)
        frauds = int(self.transactions["is_fraud"].sum())
        rate = frauds / rows if rows else 0.0
        scenarios = ", ".join(f"{code}={n:,}" for code, n in self.scenario_counts().items() if code)
        return f"{rows:,} transactions, {frauds:,} frauds ({rate:.3%}), per scenario {scenarios or 'none'}"


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """An independent generator for one stage of the simulation with `seed`."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def drift_stream(name: str) -> int:
    return zlib.crc32(name.encode())


def _resolve_drifts(config: SimulatorConfig) -> list[tuple[int, DriftScenario]]:
    resolved = []
    for spec in config.drifts:
        scenario = DRIFT_SCENARIOS.get(spec.name)
        if scenario is None:
            raise InvalidInputError(
                f"unknown drift scenario {spec.name!r}; known: {', '.join(sorted(DRIFT_SCENARIOS))}"
            )
        resolved.append((spec.start_day, scenario))
    return resolved


def generate_transactions(world: World, rng: np.random.Generator) -> TransactionArrays:
    """Genuine transactions for every customer and day (Handbook 3.2.4), ordered by customer then day."""
    hb = world.config.handbook
    n_days = world.n_days
    n_available = world.n_available
    # A customer without terminals draws no transactions (the Handbook draws them, then drops them all).
    rate = np.where(n_available > 0, world.mean_nb_tx_per_day, 0.0)
    per_customer_day = rng.poisson(rate[:, None], size=(world.n_customers, n_days)).ravel()
    slot = np.repeat(np.arange(per_customer_day.shape[0], dtype=np.int64), per_customer_day)
    customer, day = np.divmod(slot, n_days)

    time_of_day = np.floor(rng.normal(hb.time_of_day_mean, hb.time_of_day_std, slot.shape[0])).astype(np.int64)
    keep = (time_of_day >= 0) & (time_of_day < SECONDS_PER_DAY)
    customer, day, time_of_day = customer[keep], day[keep], time_of_day[keep]

    mean, std = world.mean_amount[customer], world.std_amount[customer]
    amount = rng.normal(mean, std)
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    amount = np.maximum(np.round(amount, 2), MIN_AMOUNT)

    offset = rng.integers(0, n_available[customer])
    terminal = world.available_indices[world.available_indptr[customer] + offset]
    n = customer.shape[0]
    return TransactionArrays(
        seconds=day * SECONDS_PER_DAY + time_of_day,
        customer=customer,
        terminal=terminal,
        amount=amount,
        is_fraud=np.zeros(n, dtype=np.int8),
        fraud_scenario=np.zeros(n, dtype=np.int8),
    )


def apply_scenario_1(state: SimulationState) -> None:
    """Every amount above the threshold is a fraud."""
    tx = state.transactions
    high = tx.amount > state.world.config.handbook.fraud_amount_threshold
    tx.is_fraud[high] = 1
    tx.fraud_scenario[high] = 1


def apply_scenario_2(state: SimulationState, rng: np.random.Generator) -> None:
    """Each day, terminals are compromised; all their transactions in the window are frauds.

    As in the Handbook, compromises start on days 0 .. n_days - 2 and windows include their first day.
    """
    world, tx = state.world, state.transactions
    hb = world.config.handbook
    n_days = world.n_days
    per_day = min(hb.compromised_terminals_per_day, world.n_terminals)
    compromised = np.zeros((world.n_terminals, n_days), dtype=bool)
    for day in range(n_days - 1):
        end = min(day + hb.terminal_compromise_days, n_days)
        for terminal in rng.choice(world.n_terminals, per_day, replace=False):
            compromised[terminal, day:end] = True
            state.compromises.append(Compromise(2, "terminal", int(terminal), day, end))
    hit = compromised[tx.terminal, tx.day]
    tx.is_fraud[hit] = 1
    tx.fraud_scenario[hit] = 2


def apply_scenario_3(state: SimulationState, rng: np.random.Generator) -> None:
    """Each day, customers are compromised; a share of their transactions in the window is multiplied and fraud.

    Days are applied in order, so a transaction picked on two days (overlapping windows of one customer) is
    multiplied twice, as in the Handbook.
    """
    world, tx = state.world, state.transactions
    hb = world.config.handbook
    n_days = world.n_days
    per_day = min(hb.compromised_customers_per_day, world.n_customers)
    key = tx.customer * n_days + tx.day
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    for day in range(n_days - 1):
        end = min(day + hb.customer_compromise_days, n_days)
        customers = rng.choice(world.n_customers, per_day, replace=False)
        lo = np.searchsorted(sorted_key, customers * n_days + day, side="left")
        hi = np.searchsorted(sorted_key, customers * n_days + end, side="left")
        rows = np.concatenate([order[a:b] for a, b in zip(lo, hi, strict=True)])
        chosen = rng.choice(rows, int(rows.shape[0] * hb.customer_fraud_share), replace=False)
        tx.amount[chosen] = np.round(tx.amount[chosen] * hb.customer_fraud_amount_factor, 2)
        tx.is_fraud[chosen] = 1
        tx.fraud_scenario[chosen] = 3
        state.compromises.extend(Compromise(3, "customer", int(c), day, end) for c in customers)


def _ids(n: int, width: int) -> np.ndarray[tuple[int], np.dtype[np.object_]]:
    digits = max(width, len(str(max(n - 1, 0))))
    return np.array([f"{i:0{digits}d}" for i in range(n)], dtype=object)


def _frames(state: SimulationState) -> SimulationResult:
    world, tx = state.world, state.transactions
    config = world.config
    customer_ids, terminal_ids = _ids(world.n_customers, 5), _ids(world.n_terminals, 5)
    order = np.argsort(tx.seconds, kind="stable")
    start_ns = pd.Timestamp(config.start_date).tz_localize("UTC").value
    n = len(tx)
    transactions = pd.DataFrame(
        {
            "transaction_id": _ids(n, 9),
            "event_time": pd.to_datetime(start_ns + tx.seconds[order] * 1_000_000_000, unit="ns", utc=True),
            "customer_id": customer_ids[tx.customer[order]],
            "terminal_id": terminal_ids[tx.terminal[order]],
            "amount": tx.amount[order],
            "currency": np.full(n, CURRENCY, dtype=object),
            "is_fraud": tx.is_fraud[order],
            "fraud_scenario": tx.fraud_scenario[order],
        }
    )
    indptr, indices = world.available_indptr, world.available_indices
    customers = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "x": world.customer_x,
            "y": world.customer_y,
            "mean_amount": world.mean_amount,
            "std_amount": world.std_amount,
            "mean_nb_tx_per_day": world.mean_nb_tx_per_day,
            "n_terminals": world.n_available,
            "available_terminals": [list(terminal_ids[indices[a:b]]) for a, b in itertools.pairwise(indptr)],
        }
    )
    terminals = pd.DataFrame({"terminal_id": terminal_ids, "x": world.terminal_x, "y": world.terminal_y})
    entity_ids = {"customer": customer_ids, "terminal": terminal_ids}
    compromises = pd.DataFrame(
        {
            "fraud_scenario": np.array([c.fraud_scenario for c in state.compromises], dtype=np.int8),
            "kind": [c.kind for c in state.compromises],
            "entity_id": [entity_ids[c.kind][c.entity] for c in state.compromises],
            "start_day": np.array([c.start_day for c in state.compromises], dtype=np.int64),
            "end_day": np.array([c.end_day for c in state.compromises], dtype=np.int64),
        }
    )
    return SimulationResult(config, transactions, customers, terminals, compromises)


def simulate(config: SimulatorConfig | None = None, progress: ProgressCallback | None = None) -> SimulationResult:
    """Simulate transactions with the Handbook's fraud scenarios and the configured drift scenarios."""
    config = config or SimulatorConfig()
    drifts = _resolve_drifts(config)

    def report(stage: str, done: float) -> None:
        if progress is not None:
            progress(stage, done)

    seed = config.seed
    report("customer and terminal profiles", 0.0)
    world = build_world(config, rng_for(seed, _CUSTOMERS), rng_for(seed, _TERMINALS))
    report("transactions", 0.1)
    state = SimulationState(world, generate_transactions(world, rng_for(seed, _TRANSACTIONS)))

    def run_drifts(stage: str) -> None:
        for start_day, scenario in drifts:
            if scenario.stage == stage:
                report(f"drift: {scenario.name}", 0.5 if stage == "before_frauds" else 0.75)
                scenario.apply(state, start_day, rng_for(seed, _DRIFT, drift_stream(scenario.name), start_day))

    run_drifts("before_frauds")
    if 1 in config.handbook_scenarios:
        report("fraud scenario 1 (amount)", 0.55)
        apply_scenario_1(state)
    if 2 in config.handbook_scenarios:
        report("fraud scenario 2 (compromised terminals)", 0.6)
        apply_scenario_2(state, rng_for(seed, _SCENARIO_2))
    if 3 in config.handbook_scenarios:
        report("fraud scenario 3 (compromised customers)", 0.65)
        apply_scenario_3(state, rng_for(seed, _SCENARIO_3))
    run_drifts("after_frauds")
    report("data frames", 0.8)
    result = _frames(state)
    report("done", 1.0)
    return result
