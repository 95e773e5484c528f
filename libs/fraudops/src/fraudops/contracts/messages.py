"""Typed views of the Avro records, so services handle validated objects instead of dicts."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from fraudops.contracts.avro import AvroCodec, default_codec

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


_NUMBER_TEXT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _iso_8601(value: Any) -> Any:
    """Only dates and ISO 8601 text get through: pydantic would read a number, or a numeric string, as Unix time."""
    if isinstance(value, date) or (isinstance(value, str) and not _NUMBER_TEXT.match(value)):
        return value
    raise ValueError("must be an ISO 8601 date or timestamp in a string (e.g. 2024-05-01T12:00:00Z)")


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a time zone (e.g. 2024-05-01T12:00:00Z)")
    # Avro timestamps carry milliseconds; truncating here keeps a round trip exact.
    return value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


# The Kafka decoder's bounds (fraudops.contracts.hotpath): an event time outside them is a broken clock.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_EVENT_TIME = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible(value: datetime) -> datetime:
    if not EARLIEST_EVENT_TIME <= value < LATEST_EVENT_TIME:
        raise ValueError("must be in the years 2000-2099")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_8601)]
IsoDate = Annotated[date, BeforeValidator(_iso_8601)]
UtcDatetime = Annotated[IsoDatetime, AfterValidator(_utc)]
EventTime = Annotated[UtcDatetime, AfterValidator(_plausible)]
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]


class AvroMessage(BaseModel):
    """A message model bound to one Avro record name."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    avro_name: ClassVar[str]

    def to_avro(self, codec: AvroCodec | None = None) -> bytes:
        return (codec or default_codec()).encode(self.avro_name, self.model_dump(mode="python"))

    @classmethod
    def from_avro(cls, payload: bytes | None, codec: AvroCodec | None = None) -> Self:
        record: dict[str, Any] = (codec or default_codec()).decode(payload, expected=cls.avro_name)
        return cls.model_validate(record)


class Transaction(AvroMessage):
    avro_name: ClassVar[str] = "io.fraudops.Transaction"

    transaction_id: Identifier
    event_time: EventTime
    customer_id: Identifier
    terminal_id: Identifier
    amount: Annotated[float, Field(gt=0, le=1_000_000), AfterValidator(_finite)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    received_time: UtcDatetime | None = None


class Decision(StrEnum):
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    DECLINE = "DECLINE"


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str
    contribution: Annotated[float, AfterValidator(_finite)]


class ScoreResult(AvroMessage):
    avro_name: ClassVar[str] = "io.fraudops.ScoreResult"

    transaction_id: Identifier
    customer_id: Identifier
    score: Annotated[float, Field(ge=0, le=1)]
    decision: Decision
    reasons: list[Reason] = []
    model_name: str
    model_version: str | None = None
    feature_version: str
    fallback: bool = False
    event_time: UtcDatetime
    received_time: UtcDatetime
    scored_time: UtcDatetime


class LabelSource(StrEnum):
    CHARGEBACK = "CHARGEBACK"
    ANALYST = "ANALYST"


class Label(AvroMessage):
    avro_name: ClassVar[str] = "io.fraudops.Label"

    transaction_id: Identifier
    is_fraud: bool
    source: LabelSource
    known_at: UtcDatetime
    note: Annotated[str, Field(max_length=1000)] | None = None


class ModelEventType(StrEnum):
    VALIDATED = "VALIDATED"
    PROMOTED = "PROMOTED"
    ROLLED_BACK = "ROLLED_BACK"
    ARCHIVED = "ARCHIVED"
    FALLBACK_ON = "FALLBACK_ON"
    FALLBACK_OFF = "FALLBACK_OFF"


class ModelEvent(AvroMessage):
    avro_name: ClassVar[str] = "io.fraudops.ModelEvent"

    event_id: str
    model_name: str
    event_type: ModelEventType
    alias: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    principal: str
    reason: str
    occurred_at: UtcDatetime


class DeadLetter(AvroMessage):
    avro_name: ClassVar[str] = "io.fraudops.DeadLetter"

    original_topic: str
    original_partition: int
    original_offset: int
    original_key: bytes | None = None
    original_value: bytes | None = None
    original_headers: dict[str, bytes] = {}
    error_type: str
    error_message: str
    failed_by: str
    failed_at: UtcDatetime


MESSAGE_TYPES: tuple[type[AvroMessage], ...] = (Transaction, ScoreResult, Label, ModelEvent, DeadLetter)
