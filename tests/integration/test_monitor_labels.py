"""Late labels through Kafka: out of order, before their score, for unknown transactions, and in a flood.
The monitor joins every one it can, counts every one it cannot, keeps bounded memory and stays ready."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from fraudops.contracts.messages import Decision, Label, LabelSource, ScoreResult
from fraudops.kafka import make_producer
from fraudops.settings import KafkaSettings
from tests.support.monitor import MonitorProcess
from tests.support.scorer import ScorerRun, wait_for
from tests.support.stack import RunningStack

pytestmark = pytest.mark.timeout(300)

START = datetime(2026, 6, 1, tzinfo=UTC)
MAX_PENDING = 2_000


@pytest.fixture
def run(running_stack: RunningStack, tmp_path: Path) -> Iterator[ScorerRun]:
    scorer_run = ScorerRun(running_stack, tmp_path)
    yield scorer_run
    scorer_run.close()


def score(transaction_id: str, at: datetime) -> ScoreResult:
    return ScoreResult(
        transaction_id=transaction_id,
        customer_id="c-" + transaction_id[-2:],
        score=0.9 if transaction_id.endswith("7") else 0.1,
        decision=Decision.REVIEW if transaction_id.endswith("7") else Decision.APPROVE,
        model_name="m",
        model_version="1",
        feature_version="v1",
        event_time=at,
        received_time=at,
        scored_time=at,
    )


def label(transaction_id: str, fraud: bool, known_at: datetime) -> Label:
    return Label(transaction_id=transaction_id, is_fraud=fraud, source=LabelSource.CHARGEBACK, known_at=known_at)


async def produce(kafka: KafkaSettings, topic: str, messages: list[ScoreResult] | list[Label]) -> None:
    producer = make_producer(kafka, "test-labels")
    await producer.start()
    try:
        sends = [await producer.send(topic, m.to_avro(), key=m.transaction_id.encode()) for m in messages]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def test_labels_in_any_order_unknown_or_flooding_are_joined_or_counted(run: ScorerRun, tmp_path: Path) -> None:
    monitor = MonitorProcess(run, tmp_path, WINDOW__MAX_PENDING_LABELS=str(MAX_PENDING))
    run.processes.append(monitor)
    monitor.start()
    ids = [f"tx-{i:04d}" for i in range(1_000)]
    scores_topic, labels_topic = run.topics.name("scores"), run.topics.name("labels")
    # Half the labels come before their scores, newest verdict first (a reversal known later wins).
    early = ids[:500]
    asyncio.run(
        produce(
            run.kafka,
            labels_topic,
            [label(t, True, START + timedelta(days=9)) for t in early]
            + [label(t, False, START + timedelta(days=8)) for t in early],
        )
    )
    asyncio.run(produce(run.kafka, scores_topic, [score(t, START + timedelta(minutes=i)) for i, t in enumerate(ids)]))
    # The other half after, shuffled in time, some delivered twice.
    late = [label(t, t.endswith("7"), START + timedelta(days=3, hours=-i % 48)) for i, t in enumerate(ids[500:])]
    asyncio.run(produce(run.kafka, labels_topic, late + late[:100]))
    # A flood of labels for payments the monitor never saw: more than it may keep waiting.
    asyncio.run(produce(run.kafka, labels_topic, [label(f"ghost-{i}", True, START) for i in range(10_000)]))

    wait_for(lambda: monitor.metric("fraud_labels_matched_total") >= 1_000, 120, "every known label to join")
    assert monitor.metric("fraud_labels_matched_total") == 1_000
    wait_for(lambda: monitor.metric("fraud_labels_unmatched_total") >= 10_000 - MAX_PENDING, 60, "the flood's overflow")
    assert monitor.metric("fraud_labels_pending") == MAX_PENDING
    assert monitor.metric("fraud_label_delay_seconds_count") == 1_000

    # Two days of event time later, the labels still waiting for a score are given up on, and counted.
    asyncio.run(produce(run.kafka, scores_topic, [score("tx-later", START + timedelta(days=2))]))
    wait_for(lambda: monitor.metric("fraud_labels_unmatched_total") == 10_000, 60, "waiting labels to expire")
    assert monitor.metric("fraud_labels_pending") == 0
    assert httpx.get(f"{monitor.url}/readyz", timeout=5).status_code == 200
    status = httpx.get(f"{monitor.url}/v1/status", timeout=5).json()
    assert status["scored_transactions"] == 1_001
    assert status["labels_unmatched"] == 10_000
    assert monitor.metric("fraud_monitor_messages_total", f'topic="{labels_topic}"') == 1_000 + 500 + 100 + 10_000
