"""The rules fallback: scores when no model can (none loadable, or the fallback switched on in the registry).

Two rules, both read from the same features the model gets: the amount, and the card's payments in the last
hour. A result's score says how close the payment came to the decline rules (1.0 = a decline rule fired,
0.5 = a review rule fired, below 0.5 = the largest fraction of a review threshold reached), and its reasons
name the rules that fired, each with value / threshold.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from fraudops.features import FEATURE_NAMES
from fraudops_scorer.settings import FallbackRules

RULES_MODEL_NAME = "rules"
APPROVE, REVIEW, DECLINE = 0, 1, 2

_AMOUNT = FEATURE_NAMES.index("amount")
_VELOCITY = FEATURE_NAMES.index("customer_nb_tx_1h")


def rule_decisions(rules: FallbackRules, features: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """(scores, decision codes) of a batch under the rules."""
    amount = features[:, _AMOUNT]
    velocity = features[:, _VELOCITY]
    decline = (amount >= rules.decline_amount) | (velocity >= rules.decline_payments_per_hour)
    review = (amount >= rules.review_amount) | (velocity >= rules.review_payments_per_hour)
    decisions = np.where(decline, DECLINE, np.where(review, REVIEW, APPROVE)).astype(np.int8)
    closeness = np.maximum(amount / rules.review_amount, velocity / rules.review_payments_per_hour)
    scores = np.where(decline, 1.0, np.where(review, 0.5, np.minimum(closeness, 0.99) * 0.5))
    return scores, decisions


def rule_reasons(rules: FallbackRules, features: NDArray[np.float64], row: int) -> list[tuple[str, float]]:
    """The rules a row's payment fired, the strongest first."""
    amount = float(features[row, _AMOUNT])
    velocity = float(features[row, _VELOCITY])
    fired = []
    if amount >= rules.review_amount:
        fired.append(("amount", amount / rules.review_amount))
    if velocity >= rules.review_payments_per_hour:
        fired.append(("customer_nb_tx_1h", velocity / rules.review_payments_per_hour))
    return sorted(fired, key=lambda reason: -reason[1])
