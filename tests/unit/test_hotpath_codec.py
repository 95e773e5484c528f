"""The streaming hot paths give exactly what the message models and the catalogue codec give."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import overload

import fastavro
import numpy as np
import pytest

from fraudops.contracts._avro_batch import read_transactions
from fraudops.contracts.avro import MAGIC, default_codec
from fraudops.contracts.hotpath import (
    DECISION_INDEX,
    EARLIEST_EVENT_MS,
    LATEST_EVENT_MS,
    MAX_AMOUNT,
    ScoreResultEncoder,
    TransactionDecoder,
    TransactionRows,
    _without_logical_types,
    future_dated,
    transaction_problems,
)
from fraudops.contracts.messages import Decision, Reason, ScoreResult, Transaction
from fraudops.errors import CorruptMessageError, InvalidInputError, UnknownSchemaError

START = datetime(2026, 3, 1, tzinfo=UTC)


def _transactions(count: int, seed: int = 7) -> list[Transaction]:
    rng = random.Random(seed)
    return [
        Transaction(
            transaction_id=f"tx-{i}-{rng.randrange(10**9)}",
            event_time=START + timedelta(milliseconds=rng.randrange(10**10)),
            customer_id=f"c{rng.randrange(5000)}",
            terminal_id=f"T:{rng.randrange(10000)}",
            amount=round(rng.uniform(0.01, 5000), 2),
            currency=rng.choice(["EUR", "USD"]),
            received_time=None if i % 2 else START,
        )
        for i in range(count)
    ]


def _millis(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def test_valid_transactions_decode_to_the_models_values() -> None:
    messages = _transactions(300)
    rows, rejected = TransactionDecoder().decode([m.to_avro() for m in messages])
    assert rejected == []
    assert rows.positions == list(range(300))
    assert rows.transaction_ids == [m.transaction_id for m in messages]
    assert rows.customer_ids == [m.customer_id for m in messages]
    assert rows.terminal_ids == [m.terminal_id for m in messages]
    assert rows.times_ms == [_millis(m.event_time) for m in messages]
    assert rows.amounts == [m.amount for m in messages]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("amount", 0.0, "amount"),
        ("amount", -3.0, "amount"),
        ("amount", math.nan, "amount"),
        ("amount", math.inf, "amount"),
        ("amount", 1_000_000.5, "amount"),
        ("customer_id", "", "customer_id"),
        ("terminal_id", "t 1", "terminal_id"),
        ("transaction_id", "x" * 129, "transaction_id"),
        ("currency", "eur", "currency"),
        ("event_time", datetime(1990, 1, 1, tzinfo=UTC), "event_time"),
    ],
)
def test_invalid_values_are_rejected_with_the_field_at_fault(field: str, value: object, reason: str) -> None:
    record = _transactions(1)[0].model_dump()
    record[field] = value
    valid = _transactions(2, seed=3)
    payloads = [valid[0].to_avro(), default_codec().encode("io.fraudops.Transaction", record), valid[1].to_avro()]
    rows, rejected = TransactionDecoder().decode(payloads)
    assert rows.positions == [0, 2]
    [problem] = rejected
    assert problem.position == 1
    assert isinstance(problem.error, InvalidInputError)
    assert problem.error.message.startswith(f"invalid Transaction: {reason}")


def test_undecodable_payloads_are_rejected_with_the_reason() -> None:
    good = _transactions(1)[0].to_avro()
    label_fingerprint = default_codec().catalog.latest("io.fraudops.Label").fingerprint
    payloads: list[bytes | None] = [
        None,
        b"plain text",
        good[:-3],
        good + b"\x00",
        MAGIC + b"\x00" * 8 + good[10:],
        MAGIC + label_fingerprint + good[10:],
        good,
    ]
    rows, rejected = TransactionDecoder().decode(payloads)
    assert rows.positions == [6]
    kinds = [type(r.error) for r in rejected]
    assert kinds == [
        CorruptMessageError,
        CorruptMessageError,
        CorruptMessageError,
        CorruptMessageError,
        UnknownSchemaError,
        UnknownSchemaError,
    ]


@pytest.mark.parametrize("fallback", [False, True])
def test_score_results_encode_byte_for_byte_like_the_model(fallback: bool) -> None:
    rng = random.Random(11)
    received = START + timedelta(seconds=5)
    scored = START + timedelta(seconds=5, milliseconds=3)
    version = None if fallback else "12"
    encoder = ScoreResultEncoder(
        model_name="rules" if fallback else "fraud-detector",
        model_version=version,
        feature_version="v1",
        fallback=fallback,
        received_ms=_millis(received),
        scored_ms=_millis(scored),
    )
    expected: list[ScoreResult] = []
    for i in range(200):
        event = START - timedelta(milliseconds=rng.randrange(10**11))
        reasons = [(f"feature_é{j}", rng.uniform(-5, 5)) for j in range(rng.choice([0, 0, 1, 3]))]
        expected.append(
            ScoreResult(
                transaction_id=f"tx-{i}" * rng.randrange(1, 12),
                customer_id=f"c-{i}",
                score=rng.random(),
                decision=rng.choice(list(Decision)),
                reasons=[Reason(feature=f, contribution=c) for f, c in reasons],
                model_name="rules" if fallback else "fraud-detector",
                model_version=version,
                feature_version="v1",
                fallback=fallback,
                event_time=event,
                received_time=received,
                scored_time=scored,
            )
        )
    actual = encoder.encode_many(
        [result.transaction_id for result in expected],
        [result.customer_id for result in expected],
        np.asarray([result.score for result in expected]),
        np.asarray([DECISION_INDEX[result.decision] for result in expected]),
        [_millis(result.event_time) for result in expected],
        [[(reason.feature, reason.contribution) for reason in result.reasons] for result in expected],
    )
    assert actual == [result.to_avro() for result in expected]
    assert [ScoreResult.from_avro(body) for body in actual] == expected


def test_an_oversize_message_is_rejected_undecoded_and_its_letter_leaves_the_bytes_out() -> None:
    from aiokafka import ConsumerRecord

    from fraudops.errors import OversizeMessageError
    from fraudops.kafka import dead_letter_for

    valid = _transactions(2)
    # A well-formed header before the padding: only the size can have refused it.
    oversize = valid[1].to_avro() + b"\x00" * 2048
    rows, rejected = TransactionDecoder(max_bytes=1024).decode([valid[0].to_avro(), oversize])
    assert rows.transaction_ids == [valid[0].transaction_id]
    assert [(r.position, type(r.error)) for r in rejected] == [(1, OversizeMessageError)]
    record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        "transactions", 0, 41, 0, 0, b"c-1", oversize, None, len(b"c-1"), len(oversize), [("trace", b"t")]
    )
    letter = dead_letter_for(record, rejected[0].error, "scorer")
    assert (letter.error_type, letter.original_offset, letter.original_value) == ("oversize_message", 41, None)
    assert f"{len(oversize)} bytes" in letter.error_message
    assert len(letter.to_avro()) < 1024


def _one_by_one(payload: bytes | None) -> tuple[str, str, str, int, float] | None:
    """The reference: one message through fastavro and the model's rules, or None when it must be refused."""
    decoder = TransactionDecoder()
    codec = default_codec()
    latest = codec.catalog.latest("io.fraudops.Transaction")
    if payload is None or payload[:10] != MAGIC + latest.fingerprint:
        return None
    body = io.BytesIO(payload[10:])
    try:
        record = fastavro.schemaless_reader(body, decoder._raw_schema, None)
    except Exception:
        return None
    if body.tell() != len(payload) - 10 or not isinstance(record, dict) or transaction_problems(record) is not None:
        return None
    return (
        record["transaction_id"],
        record["customer_id"],
        record["terminal_id"],
        record["event_time"],
        record["amount"],
    )


def _damaged(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    for _ in range(rng.choice([1, 1, 2, 4])):
        where = rng.randrange(len(data))
        action = rng.random()
        if action < 0.5:
            data[where] = rng.randrange(256)
        elif action < 0.7:
            del data[where:]
            if not data:
                break
        elif action < 0.85:
            data.insert(where, rng.choice([0x80, 0xFF, 0x7F, 0x01, 0x00]))
        else:
            del data[where]
            if not data:
                break
    return bytes(data)


@pytest.mark.parametrize("seed", range(4))
def test_the_batch_reader_keeps_and_refuses_exactly_what_one_by_one_decoding_does(seed: int) -> None:
    """Damaged bytes anywhere (headers, varints, lengths, doubles, unions, trailing), odd identifiers and values,
    in batches of every size: the same rows, the same values, and every other payload refused."""
    rng = random.Random(seed)
    base = _transactions(400, seed=seed)
    odd: list[dict[str, object]] = [
        {"transaction_id": "x" * 128},
        {"transaction_id": "x" * 129},
        {"customer_id": "é1"},
        {"customer_id": "-starts-with-dash"},
        {"terminal_id": "a.b:c_d-e"},
        {"currency": "EU"},
        {"currency": "EURO"},
        {"currency": "eUR"},
        {"amount": 1_000_000.0},
        {"amount": 5e-324},
        {"event_time": datetime(2099, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
        {"event_time": datetime(2000, 1, 1, tzinfo=UTC)},
        {"event_time": datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)},
    ]
    payloads: list[bytes | None] = []
    for index, message in enumerate(base):
        record = message.model_dump()
        if index % 7 == 0:
            record.update(rng.choice(odd))
        payload = default_codec().encode("io.fraudops.Transaction", record)
        if index % 3 == 0:
            payload = _damaged(rng, payload)
        payloads.append(None if index % 97 == 5 else payload)
    start = 0
    while start < len(payloads):
        size = rng.choice([1, 2, 5, 40, 150])
        batch = payloads[start : start + size]
        start += size
        rows, rejected = TransactionDecoder().decode(batch)
        expected = {i: values for i, p in enumerate(batch) if (values := _one_by_one(p)) is not None}
        assert rows.positions == sorted(expected)
        got = zip(rows.transaction_ids, rows.customer_ids, rows.terminal_ids, rows.times_ms, rows.amounts, strict=True)
        assert dict(zip(rows.positions, got, strict=True)) == expected
        assert [r.position for r in rejected] == [i for i in range(len(batch)) if i not in expected]
        # The C reader itself accepted them all: none took the slow path.
        header = MAGIC + default_codec().catalog.latest("io.fraudops.Transaction").fingerprint
        read_fast = read_transactions(batch, header, -1, EARLIEST_EVENT_MS, LATEST_EVENT_MS, MAX_AMOUNT)[0]
        assert read_fast == rows.positions


class _MadeOnAccess(Sequence[tuple[str, float]]):
    """Reasons built anew at each access, as a lazy sequence would give them: nothing else holds them."""

    def __init__(self, pairs: list[tuple[str, float]]) -> None:
        self._pairs = pairs

    def __len__(self) -> int:
        return len(self._pairs)

    @overload
    def __getitem__(self, index: int) -> tuple[str, float]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[str, float]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, float] | Sequence[tuple[str, float]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        feature, contribution = self._pairs[index]
        return (feature[:1] + feature[1:], contribution)


def test_a_batch_encodes_every_value_as_the_catalogue_codec_does() -> None:
    """Lengths and times beyond the model's ranges too: every varint length, both signs, long strings."""
    rng = random.Random(5)
    encoder = ScoreResultEncoder(
        model_name="fraud-detector",
        model_version="3",
        feature_version="v1",
        fallback=False,
        received_ms=_millis(START),
        scored_ms=_millis(START) + 4,
    )
    rows = 300
    ids = [f"tx-{i}" * rng.randrange(1, 30) for i in range(rows)]
    customers = [f"c{rng.randrange(10**6)}" for _ in range(rows)]
    ids[5], customers[6] = "x" * 300, "é" * 200
    scores = np.asarray([rng.random() for _ in range(rows)])
    decisions = [rng.choice(list(Decision)) for _ in range(rows)]
    events = [rng.choice([0, 1, -1, 63, 64, -65, 2**31, -(2**40), rng.randrange(-(2**62), 2**62)]) for _ in range(rows)]
    events[:2] = [-(2**63), 2**63 - 1]
    reasons = [[(f"f{j}", rng.uniform(-3, 3)) for j in range(rng.choice([0, 0, 2, 3]))] for _ in range(rows)]
    actual = encoder.encode_many(
        ids, customers, scores, np.asarray([DECISION_INDEX[d] for d in decisions]), events, reasons
    )
    latest = default_codec().catalog.latest("io.fraudops.ScoreResult")
    schema = fastavro.parse_schema(_without_logical_types(latest.parsed))
    for row, body in enumerate(actual):
        record = {
            "transaction_id": ids[row],
            "customer_id": customers[row],
            "score": float(scores[row]),
            "decision": decisions[row].value,
            "reasons": [{"feature": f, "contribution": c} for f, c in reasons[row]],
            "model_name": "fraud-detector",
            "model_version": "3",
            "feature_version": "v1",
            "fallback": False,
            "event_time": events[row],
            "received_time": _millis(START),
            "scored_time": _millis(START) + 4,
        }
        written = io.BytesIO()
        fastavro.schemaless_writer(written, schema, record)
        assert body == MAGIC + latest.fingerprint + written.getvalue(), row
    indexes = np.asarray([DECISION_INDEX[d] for d in decisions])
    assert encoder.encode_many(ids, customers, scores, indexes, events, [_MadeOnAccess(r) for r in reasons]) == actual
    with pytest.raises(ValueError, match="finite"):
        encoder.encode_many(
            ids[:1], customers[:1], np.asarray([math.nan]), np.zeros(1, np.uint8), events[:1], reasons[:1]
        )
    with pytest.raises(ValueError, match="Decision"):
        encoder.encode_many(ids[:1], customers[:1], scores[:1], np.asarray([len(Decision)]), events[:1], reasons[:1])
    with pytest.raises(ValueError, match="one value per row"):
        encoder.encode_many(ids[:2], customers[:1], scores[:2], np.zeros(2, np.uint8), events[:2], reasons[:2])


def test_payments_dated_after_their_message_was_written_are_refused_with_the_reason() -> None:
    written = _millis(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    skew_ms = 300_000
    # Positions index the batch's records: the rows skip position 1 (a payload refused by the decoder).
    rows = TransactionRows(
        positions=[0, 2, 3, 4, 5],
        transaction_ids=["on-time", "at-the-limit", "one-ms-over", "no-timestamp", "a-year-ahead"],
        customer_ids=["c"] * 5,
        terminal_ids=["t"] * 5,
        times_ms=[written - 5, written + skew_ms, written + skew_ms + 1, written + 10**12, written + 365 * 86_400_000],
        amounts=[1.0, 2.0, 3.0, 4.0, 5.0],
    )
    written_ms = np.asarray([written, written, written, written, -1, written], dtype=np.int64)

    kept, rejected = future_dated(rows, written_ms, skew_ms)

    assert kept.transaction_ids == ["on-time", "at-the-limit", "no-timestamp"]
    assert kept.positions == [0, 2, 4]
    assert kept.amounts == [1.0, 2.0, 4.0]
    assert [r.position for r in rejected] == [3, 5]
    assert all(isinstance(r.error, InvalidInputError) for r in rejected)
    assert "2027-11-29T10:00:00Z is later than the message was written to Kafka (2026-11-29T10:00:00Z)" in str(
        rejected[1].error
    )
    assert future_dated(kept, written_ms, skew_ms) == (kept, [])
