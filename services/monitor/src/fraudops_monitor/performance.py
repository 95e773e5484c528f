"""Live accuracy of one model version, from its logged scores and the labels known so far.

Genuine verdicts come from a random sample of reviewed payments, frauds from chargebacks: threshold-free
figures (average precision) and precision/recall are computed over the labelled payments only, so a
payment nobody has judged yet never counts as genuine. Card Precision@100 ranks every scored card of a
day and counts those with a known fraud, as the Handbook defines it; its recent days rise as labels come in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraudops.evaluation.metrics import average_precision, card_precision_at_k
from fraudops_monitor.windows import NO_LABEL, ScoredSnapshot


@dataclass(frozen=True)
class LivePerformance:
    scored: int
    labelled: int
    frauds: int
    average_precision: float
    precision: float
    recall: float
    card_precision_at_100: float
    fraud_rate: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def live_performance(log: ScoredSnapshot, model_version: str) -> LivePerformance:
    """Figures over the rows `model_version` scored; NaN where they are undefined (no label, no fraud)."""
    mine = log.model_versions == model_version
    scores, labels, flagged = log.scores[mine], log.labels[mine], log.flagged[mine]
    known = labels != NO_LABEL
    truth = labels[known] == 1
    frauds = int(truth.sum())
    caught = int((flagged[known] & truth).sum())
    raised = int(flagged[known].sum())
    per_card = pd.DataFrame(
        {
            "customer_id": log.customer_ids[mine],
            "event_time": pd.to_datetime(log.event_ms[mine], unit="ms", utc=True),
            "score": scores,
            "is_fraud": (labels == 1).astype(np.int8),
        }
    )
    return LivePerformance(
        scored=int(mine.sum()),
        labelled=int(known.sum()),
        frauds=frauds,
        average_precision=average_precision(truth, scores[known]) if known.any() else float("nan"),
        precision=caught / raised if raised else float("nan"),
        recall=caught / frauds if frauds else float("nan"),
        card_precision_at_100=card_precision_at_k(per_card, 100) if len(per_card) else float("nan"),
        fraud_rate=frauds / int(known.sum()) if known.any() else float("nan"),
    )
