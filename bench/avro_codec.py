"""Cost of the platform's message codec (typed models + single-object framing) against bare fastavro."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from fastavro import schemaless_reader, schemaless_writer

from bench.harness import Figure, best_of
from fraudops.contracts.avro import default_codec
from fraudops.contracts.messages import Transaction

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
        Figure(
            benchmark="avro_codec",
            metric="encode+decode per Transaction",
            unit="µs",
            value=round(ours, 2),
            baseline_name="bare fastavro schemaless write+read of a dict",
            baseline=round(baseline, 2),
            target="informational: validation and framing overhead",
        )
    ]
