"""Read back the scores of the streamed payments from the `scores` topic."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

import pandas as pd

from fraudops.contracts.messages import ScoreResult
from fraudops.kafka import make_consumer, start_client
from fraudops.settings import KafkaSettings

SCORES_TOPIC = "scores"


async def _collect(bootstrap: str, wanted: Collection[str], timeout_s: float) -> dict[str, ScoreResult]:
    consumer = make_consumer(KafkaSettings(bootstrap_servers=bootstrap), f"demo-{uuid.uuid4().hex[:8]}", SCORES_TOPIC)
    await start_client(consumer, bootstrap)
    keys = {transaction_id.encode() for transaction_id in wanted}
    found: dict[str, ScoreResult] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        while len(found) < len(keys) and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=20_000)).values():
                for record in batch:
                    # The key is the transaction id: only the demo's payments are decoded. The last score wins,
                    # as for any reader of `scores` (a payment scored twice gets the same verdict).
                    if record.key in keys and record.value is not None:
                        result = ScoreResult.from_avro(record.value)
                        found[result.transaction_id] = result
    finally:
        await consumer.stop()
    return found


def collect_scores(bootstrap: str, transactions: pd.DataFrame, timeout_s: float = 300) -> pd.DataFrame:
    """One row per scored payment of `transactions`: score, decision, model version, fallback, is_fraud."""
    found = asyncio.run(_collect(bootstrap, transactions["transaction_id"].astype(str).tolist(), timeout_s))
    rows = [
        {
            "transaction_id": r.transaction_id,
            "score": r.score,
            "decision": str(r.decision.value),
            "model_version": r.model_version,
            "fallback": r.fallback,
        }
        for r in found.values()
    ]
    scores = pd.DataFrame(rows, columns=["transaction_id", "score", "decision", "model_version", "fallback"])
    truth = transactions[["transaction_id", "event_time", "is_fraud", "amount"]].astype({"transaction_id": str})
    return truth.merge(scores, on="transaction_id", how="left")
