"""The scorer through crashes, a broker restart, a second instance and a promotion, with the stream running.

The standard is Kafka's own copy tests: compare the input and output sets exactly. Every transaction has a
score; a transaction scored twice (at least once delivery) got the same verdict both times, because the
feature state is rebuilt from the log before scoring resumes.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from aiokafka.errors import KafkaError
from mlflow import MlflowClient

from fraudops.contracts.messages import ScoreResult
from fraudops.errors import DependencyUnavailableError
from fraudops.replay import replay
from tests.integration.test_scorer import expected_scores
from tests.support.models import contract_tags, register_version, train_booster
from tests.support.scorer import ScorerRun, by_transaction, simulated_stream, wait_for
from tests.support.stack import RunningStack

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

VOLATILE = {"received_time", "scored_time"}


@pytest.fixture(scope="module")
def big_stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    """100,000 payments (about 530 cards over 100 days) and their labels."""
    transactions, labels = simulated_stream(customers=530, terminals=1_000, days=100, seed=21)
    transactions = transactions.sort_values("event_time", kind="stable").head(100_000).reset_index(drop=True)
    labels = labels[labels["transaction_id"].isin(set(transactions["transaction_id"]))]
    return transactions, labels


@pytest.fixture
def scorer_run(running_stack: RunningStack, tmp_path: Path) -> Iterator[ScorerRun]:
    run = ScorerRun(running_stack, tmp_path)
    yield run
    run.close()


def _replay_in_background(
    run: ScorerRun, transactions: pd.DataFrame, labels: pd.DataFrame | None, rate: float
) -> threading.Thread:
    """Replay in chunks; a chunk the broker did not acknowledge is sent again, as a producer would."""
    errors: list[BaseException] = []

    def produce() -> None:
        known = pd.to_datetime(labels["known_at"], utc=True) if labels is not None else None
        previous_end = None
        for start in range(0, len(transactions), 5_000):
            chunk = transactions.iloc[start : start + 5_000]
            chunk_labels = None
            if labels is not None and known is not None:
                # A label goes with the chunk during which it became known.
                end = chunk["event_time"].iloc[-1]
                in_chunk = known <= end if previous_end is None else (known > previous_end) & (known <= end)
                chunk_labels = labels[in_chunk]
                previous_end = end
            for _ in range(20):
                try:
                    asyncio.run(
                        replay(chunk, run.kafka, rate=rate, labels=chunk_labels, topic_names=run.topics.replay_names())
                    )
                    break
                except (KafkaError, DependencyUnavailableError, OSError) as exc:
                    errors.append(exc)
                    time.sleep(2)
            else:
                raise AssertionError(f"chunk at {start} never acknowledged: {errors[-3:]}")

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    return thread


def _assert_one_verdict_each(results: list[ScoreResult], transactions: pd.DataFrame) -> dict[str, ScoreResult]:
    expected_ids = set(transactions["transaction_id"].astype(str))
    final: dict[str, ScoreResult] = {}
    for transaction_id, copies in by_transaction(results):
        first = copies[0].model_dump(exclude=VOLATILE)
        for copy in copies[1:]:
            assert copy.model_dump(exclude=VOLATILE) == first, f"{transaction_id} scored differently when scored again"
        final[transaction_id] = copies[-1]
    assert set(final) == expected_ids, (
        f"missing: {len(expected_ids - set(final))}, unexpected: {len(set(final) - expected_ids)}"
    )
    return final


def test_kill_nine_five_times_while_100k_payments_stream_in(
    scorer_run: ScorerRun, big_stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions, labels = big_stream
    version = scorer_run.register_champion(seed=1)
    scorer = scorer_run.scorer()
    scorer.start()
    producer = _replay_in_background(scorer_run, transactions, labels, rate=3_000)
    chance = random.Random(7)
    for _ in range(5):
        time.sleep(chance.uniform(2.0, 6.0))
        scorer.kill()
        scorer.start(wait=False)
    producer.join(300)
    assert not producer.is_alive()
    scorer.wait_ready()
    wait_for(
        lambda: (
            scorer.metric("fraud_scorer_consumer_lag_messages") == 0
            and scorer.metric("fraud_scorer_messages_in_total") > 0
        ),
        300,
        "the scorer to catch up",
        interval_s=2,
    )

    results = scorer_run.scores(idle_s=5, timeout_s=300, covering=transactions)
    final = _assert_one_verdict_each(results, transactions)
    assert {r.model_version for r in final.values()} == {version}
    # Restarts did not cost correct features: every score equals the offline definition's.
    expected = expected_scores(transactions, labels)
    actual = np.array([final[tid].score for tid in expected.index])
    np.testing.assert_allclose(actual, expected.to_numpy(), rtol=0, atol=1e-6)
    assert scorer.starts == 6


def test_scoring_resumes_after_a_broker_restart(
    scorer_run: ScorerRun, big_stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions = big_stream[0].head(30_000)
    scorer_run.register_champion(seed=1)
    scorer = scorer_run.scorer()
    scorer.start()
    producer = _replay_in_background(scorer_run, transactions, None, rate=3_000)
    time.sleep(4)
    kafka = scorer_run.stack.stack.component("kafka")
    measured = "fraud_scorer_lag_measured_timestamp_seconds"
    killed_at = time.time()
    assert scorer.metric(measured) > killed_at - 5, "the scorer reports when it last heard from the broker"
    kafka.process.kill()
    time.sleep(3)
    # Cut off, it stops claiming to have measured (an answer read just before the kill may land a bit late).
    assert scorer.metric(measured) < killed_at + 1
    kafka.start()
    restarted_at = time.time()
    wait_for(lambda: scorer.metric(measured) > restarted_at, 120, "the scorer to hear from the broker again")
    producer.join(300)
    assert not producer.is_alive()
    wait_for(
        lambda: scorer.metric("fraud_scorer_consumer_lag_messages") == 0, 180, "the scorer to catch up", interval_s=2
    )
    _assert_one_verdict_each(scorer_run.scores(idle_s=5, timeout_s=300, covering=transactions), transactions)


def test_two_instances_in_one_group_give_the_results_of_one(
    running_stack: RunningStack, tmp_path: Path, big_stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions, labels = big_stream
    transactions = transactions.head(40_000)
    labels = labels[labels["transaction_id"].isin(set(transactions["transaction_id"]))]
    alone, pair = ScorerRun(running_stack, tmp_path / "one"), ScorerRun(running_stack, tmp_path / "two")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    try:
        outcomes = []
        for run, instances in ((alone, 1), (pair, 2)):
            run.register_champion(seed=1)
            scorers = [run.scorer() for _ in range(instances)]
            for scorer in scorers:
                scorer.start()
            wait_for(
                lambda scorers=scorers: all(s.metric("fraud_scorer_assigned_partitions") > 0 for s in scorers),
                60,
                "every instance to own partitions",
            )
            producer = _replay_in_background(run, transactions, labels, rate=0)
            producer.join(300)
            wait_for(
                lambda scorers=scorers: (
                    sum(s.metric("fraud_scorer_messages_in_total") for s in scorers) >= len(transactions)
                    and all(s.metric("fraud_scorer_consumer_lag_messages") == 0 for s in scorers)
                ),
                180,
                "all scores",
                interval_s=2,
            )
            if instances == 2:
                assert all(s.metric("fraud_scorer_results_out_total") > 0 for s in scorers), (
                    "one instance did all the work"
                )
            outcomes.append(
                _assert_one_verdict_each(run.scores(idle_s=5, timeout_s=300, covering=transactions), transactions)
            )
        one, two = outcomes
        # Both against the offline definition first, so a failure says which run went wrong and where.
        expected = expected_scores(transactions, labels)
        times = transactions.set_index(transactions["transaction_id"].astype(str))["event_time"]
        for name, final in (("one instance", one), ("two instances", two)):
            actual = pd.Series({tid: final[tid].score for tid in expected.index})
            wrong = actual[(actual - expected).abs() > 1e-6]
            first = ", ".join(f"{tid} ({times[tid]})" for tid in wrong.index[:5])
            assert wrong.empty, f"{name}: {len(wrong)} scores differ from the offline features', first at {first}"
        for transaction_id, result in one.items():
            other = two[transaction_id]
            assert (other.score, other.decision, other.reasons) == (result.score, result.decision, result.reasons)
    finally:
        alone.close()
        pair.close()


def test_a_promotion_mid_stream_leaves_no_gap(
    scorer_run: ScorerRun, big_stream: tuple[pd.DataFrame, pd.DataFrame], running_stack: RunningStack
) -> None:
    transactions = big_stream[0].head(30_000)
    first = scorer_run.register_champion(seed=1)
    scorer = scorer_run.scorer()
    scorer.start()
    # The same booster again: it passes the gateway's gate against the champion by construction.
    second = register_version(scorer_run.model_name, train_booster(1), tags=contract_tags())
    producer = _replay_in_background(scorer_run, transactions, None, rate=3_000)
    time.sleep(4)
    with running_stack.client("registry-gateway") as gateway:
        verdict = gateway.post(f"/v1/models/{scorer_run.model_name}/versions/{second}/validate")
        assert verdict.status_code == 200, verdict.text
        promoted_at = time.time()
        response = gateway.post(
            f"/v1/models/{scorer_run.model_name}/versions/{second}/promote",
            json={"target": "champion", "reason": "mid-stream promotion test"},
        )
        assert response.status_code == 200, response.text
    assert (
        MlflowClient(running_stack.settings.mlflow_url)
        .get_model_version_by_alias(scorer_run.model_name, "champion")
        .version
        == second
    )
    producer.join(300)
    wait_for(
        lambda: (
            scorer.metric("fraud_scorer_consumer_lag_messages") == 0
            and scorer.metric("fraud_scorer_messages_in_total") >= len(transactions)
        ),
        120,
        "all scores",
        interval_s=2,
    )

    final = _assert_one_verdict_each(scorer_run.scores(idle_s=5, timeout_s=300, covering=transactions), transactions)
    versions = {r.model_version for r in final.values()}
    assert versions == {first, second}
    assert not any(r.fallback for r in final.values())
    for result in final.values():
        if result.model_version == second:
            assert result.scored_time.timestamp() >= promoted_at
