"""The monitor's reading of the transactions topic, without Kafka: records in, feature rows out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from aiokafka import ConsumerRecord
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from fraudops.contracts.messages import Transaction
from fraudops.features import FEATURE_NAMES
from fraudops_monitor.consumer import MonitorConsumer
from fraudops_monitor.evaluator import Evaluator
from fraudops_monitor.metrics import MonitorMetrics
from fraudops_monitor.settings import MonitorSettings
from fraudops_monitor.windows import FeatureWindow, ScoredLog


class _CountingEvaluator:
    def __init__(self) -> None:
        self.added = 0

    def transactions_added(self, count: int) -> None:
        self.added += count


NOW = datetime(2026, 11, 29, tzinfo=UTC)


def _record(offset: int, transaction: Transaction, written: datetime = NOW) -> ConsumerRecord[bytes, bytes]:
    value = transaction.to_avro()
    return ConsumerRecord(
        topic="transactions",
        partition=0,
        offset=offset,
        timestamp=int(written.timestamp() * 1000),
        timestamp_type=0,
        key=None,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=[],
    )


def _consumer(registry: CollectorRegistry) -> tuple[MonitorConsumer, FeatureWindow, _CountingEvaluator]:
    features = FeatureWindow(len(FEATURE_NAMES), max_rows=1_000, max_age_ms=30 * 86_400_000)
    evaluator = _CountingEvaluator()
    consumer = MonitorConsumer(
        MonitorSettings(tokens={"operator": SecretStr("Zq8vT1mB4xW7nR2kL9pC")}),
        MonitorMetrics(registry),
        features,
        ScoredLog(retention_ms=86_400_000, label_wait_ms=86_400_000, max_pending=1_000),
        cast(Evaluator, evaluator),
    )
    return consumer, features, evaluator


def _payments(times: list[datetime]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        _record(n, Transaction(transaction_id=f"m-{n}", event_time=t, customer_id="c-1", terminal_id="t-1", amount=9.5))
        for n, t in enumerate(times)
    ]


def _skipped(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("fraud_monitor_unreadable_messages_total", {"topic": "transactions"})


def test_a_payment_dated_decades_away_is_skipped_and_its_batch_kept() -> None:
    registry = CollectorRegistry()
    consumer, features, evaluator = _consumer(registry)
    consumer._transactions(_payments([NOW - timedelta(minutes=2), datetime(2000, 1, 1, tzinfo=UTC), NOW]))
    assert evaluator.added == 2
    assert len(features) == 2
    assert _skipped(registry) == 1


def test_a_payment_dated_after_its_message_was_written_is_skipped_and_its_batch_kept() -> None:
    registry = CollectorRegistry()
    consumer, features, evaluator = _consumer(registry)
    # Four minutes ahead is clock skew (300 s allowed); a day ahead would move the state's newest time.
    times = [NOW - timedelta(hours=1), NOW + timedelta(days=1), NOW + timedelta(minutes=4)]
    consumer._transactions(_payments(times))
    assert evaluator.added == 2
    assert len(features) == 2
    assert _skipped(registry) == 1
