"""Cost of the platform's message codecs against bare fastavro: the typed models with single-object framing,
and the scorer's hot path (a batch of Transactions read, a batch of ScoreResults written, in C)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
from fastavro import schemaless_reader, schemaless_writer

from bench.harness import Figure, best_of
from fraudops.contracts.avro import HEADER_LENGTH, default_codec
from fraudops.contracts.hotpath import DECISION_INDEX, ScoreResultEncoder, TransactionDecoder, _without_logical_types
from fraudops.contracts.messages import Decision, ScoreResult, Transaction

MESSAGES = 20_000


def run() -> list[Figure]:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    models = [
        Transaction(
            transaction_id=f"tx-{i}",
            event_time=start + timedelta(seconds=i),
            customer_id=f"c-{i % 5000}",
            terminal_id=f"t-{i % 10000}",
            amount=10 + i % 300,
        )
        for i in range(MESSAGES)
    ]
    records = [m.model_dump() for m in models]
    schema = default_codec().catalog.latest(Transaction.avro_name).parsed

    def bare_round_trip() -> None:
        for record in records:
            buffer = io.BytesIO()
            schemaless_writer(buffer, schema, record)
            buffer.seek(0)
            schemaless_reader(buffer, schema, schema)

    def platform_round_trip() -> None:
        for model in models:
            Transaction.from_avro(model.to_avro())

    baseline = best_of(5, bare_round_trip) / MESSAGES * 1e6
    ours = best_of(5, platform_round_trip) / MESSAGES * 1e6
    return [
        *_hot_path(models),
        Figure(
            benchmark="avro_codec",
            metric="encode+decode per Transaction",
            unit="µs",
            value=round(ours, 2),
            baseline_name="bare fastavro schemaless write+read of a dict",
            baseline=round(baseline, 2),
            target="informational: validation and framing overhead",
        ),
    ]


HOT_PATH_BATCH = 2_000  # the scorer's batch


def _hot_path(models: list[Transaction]) -> list[Figure]:
    """The scorer's batch reader and writer against fastavro one message at a time (timestamps as longs, as the
    hot path keeps them), on batches of the scorer's size."""
    payloads = [model.to_avro() for model in models]
    catalog = default_codec().catalog
    transaction_schema = _without_logical_types(catalog.latest(Transaction.avro_name).parsed)
    result_schema = _without_logical_types(catalog.latest(ScoreResult.avro_name).parsed)
    batches = [payloads[i : i + HOT_PATH_BATCH] for i in range(0, len(payloads), HOT_PATH_BATCH)]
    decoder = TransactionDecoder()

    def bare_read() -> None:
        for payload in payloads:
            body = io.BytesIO(payload)
            body.seek(HEADER_LENGTH)
            schemaless_reader(body, transaction_schema, None)

    def hot_read() -> None:
        for batch in batches:
            decoder.decode(batch)

    ids = [model.transaction_id for model in models]
    customers = [model.customer_id for model in models]
    scores = np.linspace(0.0, 1.0, len(models))
    decisions = np.full(len(models), DECISION_INDEX[Decision.APPROVE], dtype=np.uint8)
    events = np.arange(len(models), dtype=np.int64) + 1_714_521_600_000
    reasons: list[list[tuple[str, float]]] = [[] for _ in models]
    records = [
        {
            "transaction_id": transaction_id,
            "customer_id": customer,
            "score": float(score),
            "decision": Decision.APPROVE.value,
            "reasons": [],
            "model_name": "fraud-detector",
            "model_version": "3",
            "feature_version": "v2",
            "fallback": False,
            "event_time": int(event),
            "received_time": 1_714_521_600_000,
            "scored_time": 1_714_521_600_003,
        }
        for transaction_id, customer, score, event in zip(ids, customers, scores, events, strict=True)
    ]
    encoder = ScoreResultEncoder(
        model_name="fraud-detector",
        model_version="3",
        feature_version="v2",
        fallback=False,
        received_ms=1_714_521_600_000,
        scored_ms=1_714_521_600_003,
    )

    def bare_write() -> None:
        for record in records:
            schemaless_writer(io.BytesIO(), result_schema, record)

    def hot_write() -> None:
        for start in range(0, len(models), HOT_PATH_BATCH):
            rows = slice(start, start + HOT_PATH_BATCH)
            encoder.encode_many(ids[rows], customers[rows], scores[rows], decisions[rows], events[rows], reasons[rows])

    figures = []
    for metric, bare, hot, bare_name in (
        ("scorer's Transaction batch reader, per message", bare_read, hot_read, "fastavro schemaless_reader"),
        ("scorer's ScoreResult batch writer, per message", bare_write, hot_write, "fastavro schemaless_writer"),
    ):
        baseline = best_of(5, bare) / len(models) * 1e6
        value = best_of(5, hot) / len(models) * 1e6
        figures.append(
            Figure(
                benchmark="avro_codec",
                metric=f"{metric} (batches of {HOT_PATH_BATCH:,}, validated)",
                unit="µs",
                value=round(value, 3),
                baseline_name=f"{bare_name}, one message at a time",
                baseline=round(baseline, 3),
                target="informational: the scorer's own cost per payment",
            )
        )
    return figures
