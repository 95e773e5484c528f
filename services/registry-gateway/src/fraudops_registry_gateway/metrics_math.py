"""Ranking metrics of the quality gate, in numpy so the gateway needs no machine-learning toolkit.

Definitions follow scikit-learn (average precision, ROC AUC) and the Fraud Detection Handbook
(card precision top-k per day), so numbers match what a data scientist computes in a notebook.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]


def _as_arrays(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def average_precision(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the precision-recall curve as a step sum: sum over thresholds of (R_n - R_n-1) * P_n.

    Tied scores form one threshold, as in scikit-learn; undefined (ValueError) without a positive.
    """
    y, s = _as_arrays(labels, scores)
    positives = y.sum()
    if positives == 0:
        raise ValueError("average precision needs at least one positive label")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    # The last index of each run of equal scores is where that threshold's counts are read.
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), y.size - 1]
    true_positives = np.cumsum(y)[last_of_tie]
    predicted = last_of_tie + 1.0
    precision = true_positives / predicted
    recall = true_positives / positives
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Probability that a random fraud outranks a random genuine payment (ties count half): Mann-Whitney U."""
    y, s = _as_arrays(labels, scores)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both positive and negative labels")
    ranks = pd.Series(s).rank(method="average").to_numpy(dtype=np.float64)
    rank_sum = float(ranks[y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def card_precision_top_k(
    event_times: pd.Series[pd.Timestamp],
    customers: pd.Series[str],
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    k: int = 100,
) -> float:
    """Mean over days of the share of compromised cards among the k cards an investigator checks that day.

    A card's score on a day is its highest transaction score, and it is compromised if any of its
    transactions that day is a fraud. Days with fewer than k cards still divide by k: the investigators'
    capacity is fixed, unused checks find nothing.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    y, s = _as_arrays(labels, scores)
    times = pd.to_datetime(pd.Series(event_times).reset_index(drop=True), utc=True)
    if len(times) != y.size or len(customers) != y.size:
        raise ValueError("event times, customers, labels and scores must have the same length")
    frame = pd.DataFrame(
        {"day": times.dt.floor("D"), "card": pd.Series(customers).reset_index(drop=True), "label": y, "score": s}
    )
    if frame.empty:
        raise ValueError("card precision needs at least one transaction")
    cards = frame.groupby(["day", "card"], sort=False).agg(label=("label", "max"), score=("score", "max"))
    per_day = []
    for _, day in cards.groupby(level="day", sort=True):
        top = day.sort_values("score", ascending=False, kind="mergesort").head(k)
        per_day.append(float(top["label"].sum()) / k)
    return float(np.mean(per_day))
