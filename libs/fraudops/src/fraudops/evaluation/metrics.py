"""Model quality figures: threshold-free (AUC, AP), per-day card precision, and at an operating point."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: the chance a random fraud outranks a random genuine payment (ties count half)."""
    truth = np.asarray(labels).astype(bool)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = pd.Series(np.asarray(scores, dtype=np.float64)).rank(method="average").to_numpy()
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision: precision at each distinct score threshold, weighted by the recall it adds."""
    truth = np.asarray(labels).astype(bool)
    positives = int(truth.sum())
    if positives == 0:
        return float("nan")
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="stable")
    sorted_values = values[order]
    hits = np.cumsum(truth[order])
    # Only the last position of each run of equal scores is a threshold.
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_values)), values.size - 1]
    true_positives = hits[last_of_tie]
    precision = true_positives / (last_of_tie + 1)
    recall_gain = np.diff(np.r_[0, true_positives]) / positives
    return float(np.sum(precision * recall_gain))


def card_precision_at_k(
    frame: pd.DataFrame,
    k: int = 100,
    score: str = "score",
    label: str = "is_fraud",
    card: str = "customer_id",
    time: str = "event_time",
) -> float:
    """Card Precision@k per day, averaged over days (Fraud Detection Handbook, chapter 4).

    Each day, every card gets the highest score of its payments that day; of the k cards ranked first,
    the share that had at least one fraud that day. Days without payments are skipped. A card found
    compromised in a day's top k is blocked after investigation, so it leaves the following days' rankings
    (the Handbook's definition): an investigator's k checks a day go to cards not yet caught.
    """
    if frame.empty:
        return float("nan")
    day = pd.to_datetime(frame[time], utc=True).dt.floor("D")
    per_card = (
        frame.assign(_day=day)
        .groupby(["_day", card], observed=True)
        .agg(score=(score, "max"), fraud=(label, "max"))
        .reset_index()
    )
    caught: set[object] = set()
    precisions = []
    for _, cards in per_card.groupby("_day"):
        top = cards[~cards[card].isin(caught)].nlargest(k, "score")
        found = top.loc[top["fraud"] > 0, card]
        caught.update(found)
        precisions.append(len(found) / k)
    return float(np.mean(precisions))


@dataclass(frozen=True)
class QualityReport:
    roc_auc: float
    average_precision: float
    card_precision_at_100: float
    precision_at_review: float
    recall_at_review: float
    precision_at_decline: float
    recall_at_decline: float
    alerts_per_day: float
    fraud_amount_caught: float
    fraud_amount_total: float
    review_cost: float
    net_savings: float

    def as_dict(self) -> dict[str, float]:
        return {key: round(float(value), 6) for key, value in asdict(self).items()}


def _precision_recall(labels: np.ndarray, flagged: np.ndarray) -> tuple[float, float]:
    hits = float(np.sum(labels & flagged))
    precision = hits / float(flagged.sum()) if flagged.any() else 0.0
    recall = hits / float(labels.sum()) if labels.any() else 0.0
    return precision, recall


def quality_report(
    frame: pd.DataFrame,
    scores: ArrayLike,
    review_threshold: float,
    decline_threshold: float,
    review_cost_per_alert: float = 5.0,
) -> QualityReport:
    """Everything the registry gate, the trainer and the benchmarks report for one scored period.

    `frame` has is_fraud, amount, event_time and customer_id. Cost: each alert (score >= review threshold)
    costs `review_cost_per_alert`; a caught fraud saves its amount.
    """
    labels = frame["is_fraud"].to_numpy().astype(bool)
    values = np.asarray(scores, dtype=np.float64)
    two_classes = labels.any() and not labels.all()
    review = values >= review_threshold
    decline = values >= decline_threshold
    precision_review, recall_review = _precision_recall(labels, review)
    precision_decline, recall_decline = _precision_recall(labels, decline)
    amounts = frame["amount"].to_numpy(dtype=np.float64)
    days = max(1, pd.to_datetime(frame["event_time"], utc=True).dt.floor("D").nunique())
    caught = float(amounts[labels & review].sum())
    cost = float(review.sum()) * review_cost_per_alert
    return QualityReport(
        roc_auc=roc_auc(labels, values) if two_classes else float("nan"),
        average_precision=average_precision(labels, values) if two_classes else float("nan"),
        card_precision_at_100=card_precision_at_k(frame.assign(score=values)),
        precision_at_review=precision_review,
        recall_at_review=recall_review,
        precision_at_decline=precision_decline,
        recall_at_decline=recall_decline,
        alerts_per_day=float(review.sum()) / days,
        fraud_amount_caught=caught,
        fraud_amount_total=float(amounts[labels].sum()),
        review_cost=cost,
        net_savings=caught - cost,
    )


def threshold_for_daily_budget(scores: ArrayLike, days: int, alerts_per_day: float) -> float:
    """The score above which, on this validation period, about `alerts_per_day` payments a day would alert."""
    values = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    budget = round(alerts_per_day * max(days, 1))
    if budget <= 0 or values.size == 0:
        return 1.0
    if budget >= values.size:
        return float(values[-1])
    return float(values[budget - 1])
