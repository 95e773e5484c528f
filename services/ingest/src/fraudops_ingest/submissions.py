"""Per-item validation of submitted transactions and labels: one bad item never sinks the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel, Field, ValidationError

from fraudops.contracts.messages import Label, Transaction
from fraudops.errors import FraudOpsError, InvalidInputError
from fraudops_ingest.settings import IngestSettings

MessageT = TypeVar("MessageT", Transaction, Label)


class UnsupportedMediaTypeError(FraudOpsError):
    status_code = 415
    code = "unsupported_media_type"


class ItemStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


class ItemResult(BaseModel):
    index: int = Field(description="Position of the item in the submission.")
    id: str | None = Field(description="The item's transaction_id, when it had a readable one.")
    status: ItemStatus
    reasons: list[str] = Field(default=[], description="Why the item was rejected, one entry per problem.")


class SubmissionResult(BaseModel):
    accepted: int
    rejected: int
    duplicates: int
    results: list[ItemResult]


@dataclass
class Triage(Generic[MessageT]):
    """Items sorted into valid messages (with their positions) and per-item results."""

    valid: list[tuple[int, MessageT]] = field(default_factory=list)
    results: dict[int, ItemResult] = field(default_factory=dict)

    def reject(self, index: int, item_id: str | None, reasons: list[str]) -> None:
        self.results[index] = ItemResult(index=index, id=item_id, status=ItemStatus.REJECTED, reasons=reasons)

    def summary(self) -> SubmissionResult:
        ordered = [self.results[i] for i in sorted(self.results)]
        return SubmissionResult(
            accepted=sum(r.status is ItemStatus.ACCEPTED for r in ordered),
            rejected=sum(r.status is ItemStatus.REJECTED for r in ordered),
            duplicates=sum(r.status is ItemStatus.DUPLICATE for r in ordered),
            results=ordered,
        )


async def read_items(request: Request, collection: str, max_items: int) -> list[Any]:
    """Parse a JSON body that is either one item or `{collection: [items]}`."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaTypeError(f"send the body as application/json (got {content_type or 'no content type'})")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInputError(f"body is not valid JSON: {exc.__class__.__name__}") from None
    if isinstance(body, dict) and collection in body:
        if set(body) != {collection}:
            raise InvalidInputError(f"a batch has only the key {collection!r}")
        items = body[collection]
        if not isinstance(items, list):
            raise InvalidInputError(f"{collection} must be a list")
    elif isinstance(body, dict):
        items = [body]
    else:
        raise InvalidInputError(f"body must be one JSON object or {{{collection!r}: [...]}}")
    if not items:
        raise InvalidInputError(f"{collection} is empty")
    if len(items) > max_items:
        raise InvalidInputError(f"at most {max_items} items per request, got {len(items)}")
    return items


def _reasons(error: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}" for e in error.errors()]


def _item_id(item: Any) -> str | None:
    value = item.get("transaction_id") if isinstance(item, dict) else None
    return value if isinstance(value, str) and len(value) <= 128 else None


def triage(
    items: list[Any],
    model: type[MessageT],
    rules: Callable[[MessageT], list[str]],
    server_fields: frozenset[str] = frozenset(),
    unique_ids: bool = True,
) -> Triage[MessageT]:
    """Validate each item against the contract and the business rules.

    With `unique_ids`, a repeated id in one batch is a duplicate (transactions); labels may repeat an id,
    since a later verdict replaces an earlier one.
    """
    sorted_items: Triage[MessageT] = Triage()
    seen: set[str] = set()
    for index, item in enumerate(items):
        item_id = _item_id(item)
        if not isinstance(item, dict):
            sorted_items.reject(index, None, ["item: must be a JSON object"])
            continue
        forbidden = sorted(server_fields & item.keys())
        if forbidden:
            sorted_items.reject(index, item_id, [f"{name}: set by the platform, not the client" for name in forbidden])
            continue
        try:
            message = model.model_validate(item)
        except ValidationError as exc:
            sorted_items.reject(index, item_id, _reasons(exc))
            continue
        problems = rules(message)
        if problems:
            sorted_items.reject(index, message.transaction_id, problems)
        elif unique_ids and message.transaction_id in seen:
            sorted_items.results[index] = ItemResult(
                index=index, id=message.transaction_id, status=ItemStatus.DUPLICATE, reasons=["repeated in this batch"]
            )
        else:
            seen.add(message.transaction_id)
            sorted_items.valid.append((index, message))
    return sorted_items


def transaction_rules(settings: IngestSettings) -> Callable[[Transaction], list[str]]:
    def check(transaction: Transaction) -> list[str]:
        problems = []
        if transaction.amount > settings.max_amount:
            problems.append(f"amount: above the accepted maximum of {settings.max_amount:g}")
        latest = datetime.now(UTC) + timedelta(seconds=settings.max_future_skew_s)
        if transaction.event_time > latest:
            problems.append("event_time: in the future")
        if transaction.event_time < settings.earliest_event_time:
            problems.append(f"event_time: before {settings.earliest_event_time.date().isoformat()}")
        return problems

    return check


def label_rules(settings: IngestSettings) -> Callable[[Label], list[str]]:
    def check(label: Label) -> list[str]:
        latest = datetime.now(UTC) + timedelta(seconds=settings.max_future_skew_s)
        if label.known_at > latest:
            return ["known_at: in the future"]
        if label.known_at < settings.earliest_event_time:
            return [f"known_at: before {settings.earliest_event_time.date().isoformat()}"]
        return []

    return check
