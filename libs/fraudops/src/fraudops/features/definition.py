"""The one definition of the model's features: names, windows and exact window boundaries.

Both evaluators (`offline.compute_features` over a dataset, `online.OnlineFeatureStore` one micro-batch
at a time) implement exactly these rules, and parity tests hold them to it:

- Times are whole milliseconds (the contracts' precision), UTC.
- Customer windows of width w cover the customer's transactions with time in (t - w, t], up to and
  including the current one in processing order (event time, then arrival order).
- `max_amount_to_customer_avg_30d_previous_7d` looks at the customer's EARLIER payments only: those with
  time in (t - 7d, t), applied before the current one. A payment of the same millisecond never counts,
  whether processed before or after it. Each of them contributes its own `amount_to_customer_avg_30d`
  (as of its own time); the feature is their largest (NaN ratios ignored), NaN when there is none.
- Terminal windows are shifted back by the label delay d: transactions with time in (t - d - w, t - d].
- A terminal's fraud count in that window counts only transactions whose fraud label is known at t
  (known_at <= t); risk = frauds / transactions, 0 for an empty window.
- Night is hours 0-6 (as in the Fraud Detection Handbook), weekend is Saturday and Sunday.
"""

from __future__ import annotations

from dataclasses import dataclass

# v2: + max_amount_to_customer_avg_30d_previous_7d. A model is served only with the version it was trained on.
FEATURE_VERSION = "v2"

MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

CUSTOMER_WINDOWS_DAYS = (1, 7, 30)
TERMINAL_WINDOWS_DAYS = (1, 7, 30)

BASELINE_FEATURES: tuple[str, ...] = (
    "amount",
    "is_weekend",
    "is_night",
    *(f"customer_nb_tx_{w}d" for w in CUSTOMER_WINDOWS_DAYS),
    *(f"customer_avg_amount_{w}d" for w in CUSTOMER_WINDOWS_DAYS),
    *(f"terminal_nb_tx_{w}d" for w in TERMINAL_WINDOWS_DAYS),
    *(f"terminal_risk_{w}d" for w in TERMINAL_WINDOWS_DAYS),
)
# Beyond the Handbook: velocity in the last hour, time since the customer's previous payment (hours, NaN
# for a first payment), the amount relative to the customer's 30-day mean, and the largest such ratio among
# the customer's payments of the previous 7 days (a card whose recent payments were already inflated: the
# simulator's third scenario multiplies a compromised card's payments by 5 for 14 days).
EARLIER_MAX_RATIO = "max_amount_to_customer_avg_30d_previous_7d"
EARLIER_RATIO_WINDOW_MS = 7 * MS_PER_DAY
EXTRA_FEATURES: tuple[str, ...] = (
    "customer_nb_tx_1h",
    "customer_hours_since_previous",
    "amount_to_customer_avg_30d",
    EARLIER_MAX_RATIO,
)
FEATURE_NAMES: tuple[str, ...] = BASELINE_FEATURES + EXTRA_FEATURES


@dataclass(frozen=True)
class FeatureConfig:
    """Parameters of the definition; stored with every model so the scorer computes the same thing."""

    label_delay_days: int = 7

    @property
    def label_delay_ms(self) -> int:
        return self.label_delay_days * MS_PER_DAY

    @property
    def customer_retention_ms(self) -> int:
        return max(CUSTOMER_WINDOWS_DAYS) * MS_PER_DAY

    @property
    def terminal_retention_ms(self) -> int:
        return self.label_delay_ms + max(TERMINAL_WINDOWS_DAYS) * MS_PER_DAY


def is_night_hour(hour: int) -> bool:
    return hour <= 6


def is_weekend_day(weekday: int) -> bool:
    return weekday >= 5
