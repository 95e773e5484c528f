"""The scorer against real Kafka and a real MLflow server: parity with the offline features, dead letters,
the rules fallback while the registry is away, challengers in the shadow, and POST /v1/score."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost
from aiokafka import AIOKafkaProducer
from mlflow import MlflowClient

from fraudops.contracts.avro import MAGIC, default_codec
from fraudops.contracts.messages import DeadLetter, Decision, ScoreResult, Transaction
from fraudops.features import FEATURE_NAMES, FEATURE_VERSION
from fraudops.features.offline import compute_features
from fraudops.replay import replay
from fraudops.settings import KafkaSettings
from tests.support.kafka import drain
from tests.support.models import contract_tags, register_version, train_booster
from tests.support.proxy import SwitchableProxy
from tests.support.scorer import ScorerRun, simulated_stream, wait_for
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration


@pytest.fixture
def scorer_run(running_stack: RunningStack, tmp_path: Path) -> Iterator[ScorerRun]:
    run = ScorerRun(running_stack, tmp_path)
    yield run
    run.close()


@pytest.fixture(scope="module")
def stream() -> tuple[pd.DataFrame, pd.DataFrame]:
    """About 9,000 payments of 100 cards over 45 days, with their late labels."""
    return simulated_stream(customers=100, terminals=200, days=45, seed=5)


def expected_scores(
    transactions: pd.DataFrame, labels: pd.DataFrame, seed: int = 1, booster: xgboost.Booster | None = None
) -> pd.Series:
    """What the champion gives on the offline features: the trainer's own definition and call."""
    features = compute_features(transactions, labels)
    values = features[list(FEATURE_NAMES)].to_numpy(np.float32)
    scores = (booster or train_booster(seed)).inplace_predict(values, validate_features=False)
    return pd.Series(scores.astype(np.float64), index=transactions["transaction_id"].astype(str).to_numpy())


def every_feature_booster(transactions: pd.DataFrame, labels: pd.DataFrame) -> xgboost.Booster:
    """A booster whose scores move with every feature, so that any feature computed otherwise online shows.

    Trained on the stream's own offline features to find the payments whose features' percentiles add up
    high: the synthetic champion of the other tests splits on a few features only.
    """
    features = compute_features(transactions, labels)[list(FEATURE_NAMES)]
    percentiles = features.rank(pct=True).fillna(0.5)
    target = (percentiles.sum(axis=1) > percentiles.sum(axis=1).median()).astype(int).to_numpy()
    matrix = xgboost.DMatrix(features.to_numpy(np.float32), label=target, feature_names=list(FEATURE_NAMES))
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 0}
    booster = xgboost.train(params, matrix, num_boost_round=40)
    assert set(booster.get_score(importance_type="weight")) == set(FEATURE_NAMES), "every feature must count"
    return booster


def assert_offline_scores(
    results: list[ScoreResult], transactions: pd.DataFrame, labels: pd.DataFrame, champion: xgboost.Booster
) -> None:
    """A result for every payment, each with the champion's score on the offline features."""
    got = {r.transaction_id: r for r in results}
    assert set(got) == set(transactions["transaction_id"].astype(str))
    expected = expected_scores(transactions, labels, booster=champion)
    actual = pd.Series({tid: got[tid].score for tid in expected.index})
    np.testing.assert_allclose(actual.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-6)


def test_every_payment_is_scored_with_the_offline_features(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions, labels = stream
    champion = every_feature_booster(transactions, labels)
    version = scorer_run.register_champion(booster=champion)
    scorer = scorer_run.scorer()
    scorer.start()
    asyncio.run(
        replay(transactions, scorer_run.kafka, rate=0, labels=labels, topic_names=scorer_run.topics.replay_names())
    )
    wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= len(transactions), 120, "every score")

    results = scorer_run.scores()
    assert len(results) == len(transactions)
    assert_offline_scores(results, transactions, labels, champion)
    for result in results:
        assert result.model_name == scorer_run.model_name
        assert result.model_version == version
        assert result.feature_version == FEATURE_VERSION
        assert not result.fallback
        decision = (
            Decision.DECLINE if result.score >= 0.9 else Decision.REVIEW if result.score >= 0.5 else Decision.APPROVE
        )
        assert result.decision is decision
        if decision is Decision.APPROVE:
            assert result.reasons == []
        else:
            assert 1 <= len(result.reasons) <= 3
            contributions = [reason.contribution for reason in result.reasons]
            assert contributions == sorted(contributions, reverse=True)
            assert {reason.feature for reason in result.reasons} <= set(FEATURE_NAMES)
        assert result.received_time <= result.scored_time
    assert scorer.metric("fraud_scorer_fallback_active") == 0
    assert scorer.metric("fraud_scorer_model_info", f'model_version="{version}"') == 1


def test_a_backlog_on_every_partition_is_scored_once_with_the_offline_features(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Catching up, a partition read ahead of the others waits for them (terminal windows need every
    partition's payments): what was read past that point is set aside and scored after, not read again."""
    transactions, labels = stream
    champion = every_feature_booster(transactions, labels)
    scorer_run.register_champion(booster=champion)
    names = scorer_run.topics.replay_names()
    asyncio.run(replay(transactions, scorer_run.kafka, rate=0, labels=labels, topic_names=names))
    scorer = scorer_run.scorer()
    scorer.start()
    wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= len(transactions), 120, "every score")

    assert scorer.metric("fraud_scorer_set_aside_messages_total") > 0, "the backlog never ran ahead: nothing tested"
    assert scorer.metric("fraud_scorer_messages_in_total") == len(transactions)
    assert scorer.metric("fraud_scorer_duplicates_total") == 0
    results = scorer_run.scores(covering=transactions)
    assert len(results) == len(transactions)
    assert_offline_scores(results, transactions, labels, champion)


def test_a_payment_dated_after_it_was_written_is_dead_lettered_and_the_state_stays_right(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Written straight to the topic (ingest refuses it), a payment dated a year ahead would make the state's
    newest time a year ahead, and the state would forget every window the next payments look back on."""
    transactions, labels = stream
    transactions = transactions.sort_values("event_time", kind="stable").reset_index(drop=True)
    champion = every_feature_booster(transactions, labels)
    scorer_run.register_champion(booster=champion)
    scorer = scorer_run.scorer()
    scorer.start()
    half = len(transactions) // 2
    first, second = transactions.iloc[:half], transactions.iloc[half:]
    known = pd.to_datetime(labels["known_at"], utc=True) <= pd.to_datetime(first["event_time"], utc=True).max()
    names = scorer_run.topics.replay_names()
    asyncio.run(replay(first, scorer_run.kafka, rate=0, labels=labels[known], topic_names=names))
    customer = str(first["customer_id"].iloc[-1])
    ahead = Transaction(
        transaction_id="a-year-ahead",
        event_time=datetime.now(UTC) + timedelta(days=365),
        customer_id=customer,
        terminal_id=str(first["terminal_id"].iloc[-1]),
        amount=12.5,
    )
    bootstrap = scorer_run.stack.settings.kafka_bootstrap
    asyncio.run(_produce(bootstrap, scorer_run.topics.name("transactions"), [(customer.encode(), ahead.to_avro())]))
    asyncio.run(replay(second, scorer_run.kafka, rate=0, labels=labels[~known], topic_names=names))
    wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= len(transactions), 120, "every score")

    letters = asyncio.run(drain(bootstrap, scorer_run.topics.name("dead_letters")))
    assert [DeadLetter.from_avro(r.value).original_value for r in letters] == [ahead.to_avro()]
    letter = DeadLetter.from_avro(letters[0].value)
    assert letter.error_type == "invalid_input"
    assert "later than the message was written to Kafka" in letter.error_message
    assert_offline_scores(scorer_run.scores(covering=transactions), transactions, labels, champion)


def _poison(valid: Transaction, kind: int) -> bytes:
    codec = default_codec()
    if kind == 0:
        return b"not avro at all"
    if kind == 1:
        return MAGIC + bytes(8) + valid.to_avro()[10:]  # a schema nobody knows
    if kind == 2:
        return valid.to_avro()[:-4]  # truncated
    if kind == 4:
        return valid.to_avro() + bytes(KafkaSettings().max_message_bytes)  # above the size limit
    if kind == 5:
        # Valid by the contract (2000-2099), but decades before the stream: the state cannot hold it.
        ancient = valid.model_copy(
            update={"transaction_id": f"{valid.transaction_id}-ancient", "event_time": datetime(2000, 1, 2, tzinfo=UTC)}
        )
        return ancient.to_avro()
    record = valid.model_dump()
    record["amount"] = -5.0  # decodes, but breaks the contract
    return codec.encode("io.fraudops.Transaction", record)


async def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=[("trace", b"t-1")]) for key, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def test_poison_messages_go_to_the_dead_letter_topic_and_the_rest_is_scored(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions = stream[0].head(3_000)
    messages: list[tuple[bytes, bytes]] = []
    poison_keys = set()
    for i, row in enumerate(transactions.to_dict("records")):
        transaction = Transaction(
            transaction_id=str(row["transaction_id"]),
            event_time=pd.Timestamp(row["event_time"]).to_pydatetime(),
            customer_id=str(row["customer_id"]),
            terminal_id=str(row["terminal_id"]),
            amount=float(row["amount"]),
        )
        messages.append((transaction.customer_id.encode(), transaction.to_avro()))
        if i % 100 == 50:  # 1 % poison, of every kind
            key = f"poison-{i}".encode()
            poison_keys.add(key)
            messages.append((key, _poison(transaction, (i // 100) % 6)))
    scorer = scorer_run.scorer()
    scorer.start()
    asyncio.run(_produce(scorer_run.stack.settings.kafka_bootstrap, scorer_run.topics.name("transactions"), messages))
    wait_for(lambda: scorer.metric("fraud_scorer_dead_letters_total") >= len(poison_keys), 60, "dead letters")
    wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= len(transactions), 60, "scores")

    bootstrap = scorer_run.stack.settings.kafka_bootstrap
    letters = asyncio.run(drain(bootstrap, scorer_run.topics.name("dead_letters")))
    assert {r.key for r in letters} == poison_keys
    for record in letters:
        headers = dict(record.headers)
        assert headers["original_topic"] == scorer_run.topics.name("transactions").encode()
        assert {"error", "original_partition", "original_offset", "failed_at"} <= set(headers)
        letter = DeadLetter.from_avro(record.value)
        assert letter.failed_by == "scorer"
        assert letter.original_headers == {"trace": b"t-1"}
        error = headers["error"].decode()
        assert error in {"corrupt_message", "unknown_schema", "invalid_input", "oversize_message"}
        # An oversize value stays in the source topic only: the letter must fit the producer's limit.
        assert letter.original_value == (None if error == "oversize_message" else dict(messages)[record.key])
    assert {dict(r.headers)["error"] for r in letters} >= {b"oversize_message", b"corrupt_message", b"invalid_input"}
    outside = [r for r in letters if "outside the span" in DeadLetter.from_avro(r.value).error_message]
    assert len(outside) == 5, "each payment dated decades before the stream is dead-lettered"
    assert {r.transaction_id for r in scorer_run.scores()} == set(transactions["transaction_id"].astype(str))
    wait_for(lambda: scorer.metric("fraud_scorer_consumer_lag_messages") == 0, 30, "lag back to zero")


def test_rules_score_while_the_registry_is_away_and_the_model_takes_over_when_it_returns(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions = stream[0]
    version = scorer_run.register_champion(seed=1)
    host, port = scorer_run.stack.settings.mlflow_url.removeprefix("http://").split(":")
    proxy = SwitchableProxy(host, int(port))  # down: the scorer starts with MLflow unreachable
    scorer = scorer_run.scorer(MLFLOW_TRACKING_URI=proxy.url)
    scorer.start()
    first, second = transactions.iloc[:2_000], transactions.iloc[2_000:4_000]
    names = scorer_run.topics.replay_names()
    asyncio.run(replay(first, scorer_run.kafka, rate=0, topic_names=names))
    wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= len(first), 60, "rules scores")
    assert scorer.metric("fraud_scorer_fallback_active") == 1
    early = scorer_run.scores()
    assert len(early) == len(first)
    assert all(r.fallback and r.model_name == "rules" and r.model_version is None for r in early)
    assert any(r.decision is not Decision.APPROVE for r in early)  # the amount rule fires on the large payments

    proxy.up()
    try:
        wait_for(lambda: scorer.metric("fraud_scorer_fallback_active") == 0, 60, "the model to load")
        asyncio.run(replay(second, scorer_run.kafka, rate=0, topic_names=names))
        wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= len(first) + len(second), 60, "scores")
    finally:
        proxy.down()
    later = [r for r in scorer_run.scores() if r.transaction_id in set(second["transaction_id"].astype(str))]
    assert len(later) == len(second)
    assert all(not r.fallback and r.model_version == version for r in later)


def test_a_broken_version_is_refused_and_the_serving_one_stays(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    good = scorer_run.register_champion(seed=1)
    scorer = scorer_run.scorer()
    scorer.start()
    wait_for(lambda: scorer.metric("fraud_scorer_model_info", f'model_version="{good}"') == 1, 30, "the champion")
    mlflow.set_tracking_uri(scorer_run.stack.settings.mlflow_url)
    broken = register_version(scorer_run.model_name, train_booster(2), tags=contract_tags(feature_version="v0"))
    MlflowClient().set_registered_model_alias(scorer_run.model_name, "champion", broken)
    wait_for(lambda: scorer.metric("fraud_scorer_model_refusals_total") >= 1, 30, "the refusal")
    asyncio.run(replay(stream[0].head(500), scorer_run.kafka, rate=0, topic_names=scorer_run.topics.replay_names()))
    wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= 500, 60, "scores")
    assert {r.model_version for r in scorer_run.scores()} == {good}


def test_a_challenger_scores_in_the_shadow(scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    champion = scorer_run.register_champion(seed=1)
    mlflow.set_tracking_uri(scorer_run.stack.settings.mlflow_url)
    challenger = register_version(scorer_run.model_name, train_booster(3), tags=contract_tags())
    MlflowClient().set_registered_model_alias(scorer_run.model_name, "challenger", challenger)
    scorer = scorer_run.scorer()
    scorer.start()
    transactions = stream[0].head(1_000)
    asyncio.run(replay(transactions, scorer_run.kafka, rate=0, topic_names=scorer_run.topics.replay_names()))
    wait_for(
        lambda: scorer.metric("fraud_scorer_results_out_total", "shadow") >= len(transactions), 60, "shadow scores"
    )
    bootstrap = scorer_run.stack.settings.kafka_bootstrap
    shadow = [
        ScoreResult.from_avro(r.value) for r in asyncio.run(drain(bootstrap, scorer_run.topics.name("shadow_scores")))
    ]
    main = {r.transaction_id: r for r in scorer_run.scores()}
    assert {r.model_version for r in shadow} == {challenger}
    assert {r.model_version for r in main.values()} == {champion}
    assert {r.transaction_id for r in shadow} == set(main)
    assert any(r.score != main[r.transaction_id].score for r in shadow)


def test_rest_scoring_uses_the_live_state_and_leaves_it_unchanged(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions, labels = stream
    version = scorer_run.register_champion(seed=1)
    scorer = scorer_run.scorer()
    scorer.start()
    asyncio.run(
        replay(transactions, scorer_run.kafka, rate=0, labels=labels, topic_names=scorer_run.topics.replay_names())
    )
    wait_for(lambda: scorer.metric("fraud_scorer_results_out_total") >= len(transactions), 120, "every score")

    last = transactions.iloc[-1]
    probe = {
        "transaction_id": f"rest-{uuid.uuid4().hex[:8]}",
        "event_time": (last["event_time"] + timedelta(minutes=5)).isoformat(),
        "customer_id": str(last["customer_id"]),
        "terminal_id": str(last["terminal_id"]),
        "amount": 120.5,
    }
    extended = pd.concat(
        [transactions, pd.DataFrame([{**probe, "event_time": last["event_time"] + timedelta(minutes=5)}])],
        ignore_index=True,
    )
    sent_labels = labels[pd.to_datetime(labels["known_at"], utc=True) <= last["event_time"]]  # what replay sent
    expected = expected_scores(extended, sent_labels)[probe["transaction_id"]]
    with scorer.client() as client:
        for _ in range(2):  # the second answer equals the first: the state kept no trace of the probe
            response = client.post("/v1/score", json=probe)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_version"] == version
            assert body["score"] == pytest.approx(expected, abs=1e-6)
        batch = client.post("/v1/score", json={"transactions": [probe, {**probe, "transaction_id": "rest-2"}]})
        assert batch.status_code == 200, batch.text
        assert [r["transaction_id"] for r in batch.json()["results"]] == [probe["transaction_id"], "rest-2"]
        invalid = client.post("/v1/score", json={**probe, "amount": -1})
        assert invalid.status_code == 422
        assert "amount" in invalid.json()["detail"]
        empty = client.post("/v1/score", json={"transactions": []})
        assert empty.status_code == 422
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        ahead = client.post("/v1/score", json={"transactions": [probe, {**probe, "event_time": tomorrow}]})
        assert ahead.status_code == 422
        assert "event_time: later than 300 s after the scorer received it" in ahead.json()["detail"]
    anonymous = scorer.client()
    anonymous.headers.pop("Authorization")
    assert anonymous.post("/v1/score", json=probe).status_code == 401

    # Payments sent at once (some sharing a customer or a terminal) get the answers they get one by one.
    probes = [
        {**probe, "transaction_id": f"together-{i}", "customer_id": str(row["customer_id"]),
         "terminal_id": str(row["terminal_id"]), "amount": float(row["amount"]) + i}
        for i, row in enumerate(transactions.tail(12).to_dict("records") * 2)
    ]  # fmt: skip
    with scorer.client() as client:
        one_by_one = [client.post("/v1/score", json=body).json() for body in probes]
    at_once = asyncio.run(_post_at_once(scorer.url, dict(scorer.client().headers), probes))
    for alone, together in zip(one_by_one, at_once, strict=True):
        assert together["transaction_id"] == alone["transaction_id"]
        assert (together["score"], together["decision"], together["reasons"]) == (
            alone["score"],
            alone["decision"],
            alone["reasons"],
        )


async def _post_at_once(url: str, headers: dict[str, str], bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        responses = await asyncio.gather(*(client.post("/v1/score", json=body) for body in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return [r.json() for r in responses]


def test_a_payment_written_twice_is_scored_once_and_counted_once(
    scorer_run: ScorerRun, stream: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    transactions = stream[0].head(4_000)
    version = scorer_run.register_champion(seed=1)
    scorer = scorer_run.scorer()
    scorer.start()
    messages: list[tuple[bytes, bytes]] = []
    for i, row in enumerate(transactions.to_dict("records")):
        payload = Transaction(
            transaction_id=str(row["transaction_id"]),
            event_time=pd.Timestamp(row["event_time"]).to_pydatetime(),
            customer_id=str(row["customer_id"]),
            terminal_id=str(row["terminal_id"]),
            amount=float(row["amount"]),
        ).to_avro()
        key = str(row["customer_id"]).encode()
        messages.append((key, payload))
        if i % 20 == 0:  # a producer's retry: the same payment again, right after or a little later
            messages.append((key, payload))
    asyncio.run(_produce(scorer_run.stack.settings.kafka_bootstrap, scorer_run.topics.name("transactions"), messages))
    wait_for(lambda: scorer.metric("fraud_scorer_messages_in_total") >= len(messages), 60, "every message read")
    results = scorer_run.scores()
    assert sorted(r.transaction_id for r in results) == sorted(transactions["transaction_id"].astype(str))
    assert scorer.metric("fraud_scorer_duplicates_total") == len(messages) - len(transactions)
    expected = expected_scores(transactions, stream[1].iloc[:0])
    got = {r.transaction_id: r.score for r in results}
    np.testing.assert_allclose([got[t] for t in expected.index], expected.to_numpy(), rtol=0, atol=1e-6)
    assert {r.model_version for r in results} == {version}
