"""Avro contracts: every schema round-trips; corrupt and unknown messages are refused with a typed error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fraudops.contracts.avro import MAGIC, AvroCodec, SchemaCatalog, default_codec
from fraudops.contracts.messages import (
    MESSAGE_TYPES,
    AvroMessage,
    DeadLetter,
    Decision,
    Label,
    LabelSource,
    ModelEvent,
    ModelEventType,
    Reason,
    ScoreResult,
    Transaction,
)
from fraudops.errors import CorruptMessageError, MessageDecodeError, UnknownSchemaError

NOW = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)

SAMPLES: list[AvroMessage] = [
    Transaction(transaction_id="tx-1", event_time=NOW, customer_id="c-7", terminal_id="t-9", amount=57.25),
    Transaction(
        transaction_id="tx-2", event_time=NOW, customer_id="c-7", terminal_id="t-9", amount=1.0, currency="USD", received_time=NOW
    ),
    ScoreResult(
        transaction_id="tx-1",
        customer_id="c-7",
        score=0.91,
        decision=Decision.DECLINE,
        reasons=[Reason(feature="amount", contribution=1.7), Reason(feature="terminal_risk_7d", contribution=0.4)],
        model_name="fraud-xgb",
        model_version="3",
        feature_version="v1",
        event_time=NOW,
        received_time=NOW,
        scored_time=NOW,
    ),
    ScoreResult(
        transaction_id="tx-1", customer_id="c-7", score=0.0, decision=Decision.APPROVE, model_name="rules",
        feature_version="v1", fallback=True, event_time=NOW, received_time=NOW, scored_time=NOW,
    ),
    Label(transaction_id="tx-1", is_fraud=True, source=LabelSource.CHARGEBACK, known_at=NOW, note="cardholder dispute"),
    ModelEvent(
        event_id="e-1", model_name="fraud-xgb", event_type=ModelEventType.PROMOTED, alias="champion",
        from_version="2", to_version="3", principal="operator", reason="passed gate", occurred_at=NOW,
    ),
    DeadLetter(
        original_topic="transactions", original_partition=2, original_offset=41, original_key=b"c-7",
        original_value=b"\x00garbage", original_headers={"trace": b"abc"}, error_type="corrupt_message",
        error_message="bad marker bytes", failed_by="scorer", failed_at=NOW,
    ),
]  # fmt: skip


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: f"{m.__class__.__name__}")
def test_every_message_round_trips_exactly(message: AvroMessage) -> None:
    payload = message.to_avro()
    assert payload.startswith(MAGIC)
    assert type(message).from_avro(payload) == message


def test_every_schema_has_a_sample_and_a_model() -> None:
    catalog_names = set(default_codec().catalog.names)
    assert catalog_names == {m.avro_name for m in MESSAGE_TYPES}
    assert {type(m).avro_name for m in SAMPLES} == catalog_names


@pytest.mark.parametrize("model", MESSAGE_TYPES, ids=lambda m: m.__name__)
def test_models_declare_exactly_the_schema_fields(model: type[AvroMessage]) -> None:
    schema = default_codec().catalog.latest(model.avro_name).parsed
    assert [f["name"] for f in schema["fields"]] == list(model.model_fields)


def test_timestamps_keep_milliseconds_and_utc() -> None:
    local = datetime.fromisoformat("2024-05-01T14:30:15.123987+02:00")
    tx = Transaction(transaction_id="t", event_time=local, customer_id="c", terminal_id="x", amount=1)
    decoded = Transaction.from_avro(tx.to_avro())
    assert decoded.event_time == datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)


def _transaction_bytes() -> bytes:
    return SAMPLES[0].to_avro()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "bad marker"),
        (b"\xc3\x01\x00", "bad marker"),
        (b'{"transaction_id": "tx-1"}', "bad marker"),
        (_transaction_bytes()[:-4], "cannot be decoded"),
        (_transaction_bytes() + b"\x00\x01", "trailing bytes"),
    ],
    ids=["empty", "header-only", "json", "truncated", "trailing"],
)
def test_corrupt_payloads_are_rejected(payload: bytes, reason: str) -> None:
    with pytest.raises(CorruptMessageError, match=reason):
        Transaction.from_avro(payload)


def test_null_payload_is_rejected() -> None:
    with pytest.raises(CorruptMessageError):
        Transaction.from_avro(None)


def test_unknown_fingerprint_is_rejected() -> None:
    payload = bytearray(_transaction_bytes())
    payload[2:10] = b"\xff" * 8
    with pytest.raises(UnknownSchemaError, match="unknown writer schema"):
        Transaction.from_avro(bytes(payload))


def test_message_of_another_schema_is_not_misread() -> None:
    label_bytes = SAMPLES[4].to_avro()
    with pytest.raises(UnknownSchemaError, match=r"expected a io\.fraudops\.Transaction"):
        Transaction.from_avro(label_bytes)


def test_schema_from_another_catalog_is_unknown(tmp_path: Path) -> None:
    foreign = {"type": "record", "name": "Transaction", "namespace": "io.fraudops",
               "fields": [{"name": "transaction_id", "type": "string"}]}  # fmt: skip
    (tmp_path / "transaction.v1.avsc").write_text(json.dumps(foreign))
    foreign_payload = AvroCodec(SchemaCatalog.from_directory(tmp_path)).encode(
        "io.fraudops.Transaction", {"transaction_id": "x"}
    )
    with pytest.raises(UnknownSchemaError):
        Transaction.from_avro(foreign_payload)


def test_older_schema_version_is_read_with_the_newest(tmp_path: Path) -> None:
    """Schema evolution: a v1 message decodes under a v2 reader that added a defaulted field."""
    v1 = {"type": "record", "name": "Ping", "namespace": "io.fraudops", "fields": [{"name": "id", "type": "string"}]}
    v2 = {**v1, "fields": [*v1["fields"], {"name": "source", "type": "string", "default": "unknown"}]}
    (tmp_path / "ping.v1.avsc").write_text(json.dumps(v1))
    old_payload = AvroCodec(SchemaCatalog.from_directory(tmp_path)).encode("io.fraudops.Ping", {"id": "a"})
    (tmp_path / "ping.v2.avsc").write_text(json.dumps(v2))
    codec = AvroCodec(SchemaCatalog.from_directory(tmp_path))
    assert codec.decode(old_payload) == {"id": "a", "source": "unknown"}


def test_decode_errors_share_one_base() -> None:
    assert issubclass(CorruptMessageError, MessageDecodeError)
    assert issubclass(UnknownSchemaError, MessageDecodeError)
