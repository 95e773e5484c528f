"""Online evaluation of the feature definition: per-customer and per-terminal state, one transaction at a time."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from fraudops.features.definition import (
    CUSTOMER_WINDOWS_DAYS,
    FEATURE_NAMES,
    MS_PER_DAY,
    MS_PER_HOUR,
    TERMINAL_WINDOWS_DAYS,
    FeatureConfig,
    is_night_hour,
    is_weekend_day,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_millis(moment: datetime) -> int:
    """Whole milliseconds since the epoch, floored, without float rounding."""
    return (moment - _EPOCH) // _MILLISECOND


@dataclass
class _CustomerHistory:
    times: deque[int] = field(default_factory=deque)
    amounts: deque[float] = field(default_factory=deque)


@dataclass
class _TerminalHistory:
    times: deque[int] = field(default_factory=deque)
    # transaction id -> (transaction time, known_at) of the terminal's transactions labelled fraud
    frauds: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Seen:
    terminal_id: str
    time_ms: int


class OnlineFeatureState:
    """What the scorer remembers between transactions; `features` gives exactly the offline values."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        self.config = config or FeatureConfig()
        self.customers: dict[str, _CustomerHistory] = {}
        self.terminals: dict[str, _TerminalHistory] = {}
        # Labels name only a transaction; this maps recent ones to the terminal whose risk they change.
        self.recent: dict[str, _Seen] = {}
        self._recent_order: deque[tuple[int, str]] = deque()
        self.labels_ignored = 0

    def features(
        self, transaction_id: str, event_time: datetime, customer_id: str, terminal_id: str, amount: float
    ) -> NDArray[np.float64]:
        """Feature vector (FEATURE_NAMES order) of this transaction, then remember it."""
        t = epoch_millis(event_time)
        values: dict[str, float] = {"amount": amount}
        moment = datetime.fromtimestamp(t / 1000, UTC)
        values["is_weekend"] = float(is_weekend_day(moment.weekday()))
        values["is_night"] = float(is_night_hour(moment.hour))

        customer = self.customers.setdefault(customer_id, _CustomerHistory())
        previous = customer.times[-1] if customer.times else None
        customer.times.append(t)
        customer.amounts.append(amount)
        horizon = t - self.config.customer_retention_ms
        while customer.times and customer.times[0] <= horizon:
            customer.times.popleft()
            customer.amounts.popleft()
        times = list(customer.times)
        amounts = list(customer.amounts)
        for days in CUSTOMER_WINDOWS_DAYS:
            first = bisect_right(times, t - days * MS_PER_DAY)
            window = amounts[first:]
            values[f"customer_nb_tx_{days}d"] = float(len(window))
            values[f"customer_avg_amount_{days}d"] = math.fsum(window) / len(window)
        values["customer_nb_tx_1h"] = float(len(times) - bisect_right(times, t - MS_PER_HOUR))
        values["customer_hours_since_previous"] = (t - previous) / MS_PER_HOUR if previous is not None else math.nan
        values["amount_to_customer_avg_30d"] = amount / values["customer_avg_amount_30d"]

        terminal = self.terminals.setdefault(terminal_id, _TerminalHistory())
        delay = self.config.label_delay_ms
        terminal_times = list(terminal.times)
        up_to_delay = bisect_right(terminal_times, t - delay)
        for days in TERMINAL_WINDOWS_DAYS:
            width = days * MS_PER_DAY
            count = up_to_delay - bisect_right(terminal_times, t - delay - width)
            frauds = sum(
                1 for s, known in terminal.frauds.values() if t - delay - width < s <= t - delay and known <= t
            )
            values[f"terminal_nb_tx_{days}d"] = float(count)
            values[f"terminal_risk_{days}d"] = frauds / count if count else 0.0
        self._remember_terminal(terminal, t)
        self._remember_transaction(transaction_id, terminal_id, t)
        return np.array([values[name] for name in FEATURE_NAMES], dtype=np.float64)

    def _remember_terminal(self, terminal: _TerminalHistory, t: int) -> None:
        # Appends stay sorted when transactions arrive in time order; a late one is inserted in place.
        if not terminal.times or terminal.times[-1] <= t:
            terminal.times.append(t)
        else:
            position = bisect_right(list(terminal.times), t)
            terminal.times.insert(position, t)
        horizon = t - self.config.terminal_retention_ms
        while terminal.times and terminal.times[0] <= horizon:
            terminal.times.popleft()
        expired = [tid for tid, (s, _) in terminal.frauds.items() if s <= horizon]
        for transaction_id in expired:
            del terminal.frauds[transaction_id]

    def _remember_transaction(self, transaction_id: str, terminal_id: str, t: int) -> None:
        self.recent[transaction_id] = _Seen(terminal_id, t)
        self._recent_order.append((t, transaction_id))
        horizon = t - self.config.terminal_retention_ms
        while self._recent_order and self._recent_order[0][0] <= horizon:
            _, old = self._recent_order.popleft()
            seen = self.recent.get(old)
            if seen is not None and seen.time_ms <= horizon:
                del self.recent[old]

    def observe_label(self, transaction_id: str, is_fraud: bool, known_at: datetime) -> bool:
        """Record a verdict; returns False when its transaction is unknown (too old, or never seen)."""
        seen = self.recent.get(transaction_id)
        if seen is None:
            self.labels_ignored += 1
            return False
        terminal = self.terminals.setdefault(seen.terminal_id, _TerminalHistory())
        if is_fraud:
            terminal.frauds[transaction_id] = (seen.time_ms, epoch_millis(known_at))
        else:
            # A reversed verdict stops counting from now on.
            terminal.frauds.pop(transaction_id, None)
        return True
