"""Ingest's write and read endpoints for transactions and labels."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fraudops.auth import Principal, RequireAction
from fraudops.contracts.messages import IsoDatetime, Label, LabelSource, Transaction
from fraudops.errors import DependencyUnavailableError
from fraudops.kafka import ManagedProducer
from fraudops.service import ErrorResponse
from fraudops_ingest.metrics import IngestMetrics
from fraudops_ingest.settings import IngestSettings
from fraudops_ingest.store import IngestStore
from fraudops_ingest.submissions import (
    ItemResult,
    ItemStatus,
    SubmissionResult,
    label_rules,
    read_items,
    transaction_rules,
    triage,
)

router = APIRouter(prefix="/v1", tags=["intake"])

TRANSACTIONS_TOPIC = "transactions"
LABELS_TOPIC = "labels"


def _one_or_batch(item_schema: dict[str, Any], collection: str, max_items: int) -> dict[str, Any]:
    batch = {
        "type": "object",
        "required": [collection],
        "additionalProperties": False,
        "properties": {collection: {"type": "array", "minItems": 1, "maxItems": max_items, "items": item_schema}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"oneOf": [item_schema, batch]}}},
        }
    }


def _transaction_schema() -> dict[str, Any]:
    schema = Transaction.model_json_schema()
    schema["properties"].pop("received_time")
    return schema


SUBMISSION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SubmissionResult,
        "description": "Each item's outcome; valid items were produced even if others failed.",
    },
    413: {"model": ErrorResponse, "description": "Body larger than the limit."},
    415: {"model": ErrorResponse, "description": "Body is not application/json."},
    422: {
        # Each item's outcome when every item was rejected; the error shape when the body itself is unreadable.
        "model": SubmissionResult | ErrorResponse,
        "description": "Body unreadable (`error`, `detail`), or no item was acceptable (`results` says why).",
    },
    503: {"model": ErrorResponse, "description": "Kafka or the database did not acknowledge; retry the same body."},
}


async def _produce_all(managed: ManagedProducer, sends: list[tuple[str, str, bytes]], timeout_s: float) -> None:
    """Hand every message to the producer at once, then wait for all acknowledgements."""
    if not sends:
        return
    producer = await managed.get()
    try:
        futures = [await producer.send(topic, value=value, key=key.encode()) for topic, key, value in sends]
        await asyncio.wait_for(asyncio.gather(*futures), timeout=timeout_s)
    except (KafkaError, TimeoutError) as exc:
        raise DependencyUnavailableError(f"Kafka did not acknowledge the batch: {exc.__class__.__name__}") from exc


def _answer(request: Request, result: SubmissionResult) -> JSONResponse:
    nothing_accepted = result.accepted == 0 and result.duplicates == 0
    if nothing_accepted:
        request.app.state.metrics.rejected_requests.labels("invalid_input").inc()
    return JSONResponse(result.model_dump(mode="json"), status_code=422 if nothing_accepted else 200)


@router.post(
    "/transactions",
    summary="Submit one transaction or a batch for scoring",
    response_model=SubmissionResult,
    responses=SUBMISSION_RESPONSES,
    openapi_extra=_one_or_batch(_transaction_schema(), "transactions", 1000),
)
async def submit_transactions(
    request: Request, principal: Annotated[Principal, Depends(RequireAction("transactions:write"))]
) -> JSONResponse:
    settings: IngestSettings = request.app.state.settings
    store: IngestStore = request.app.state.store
    metrics: IngestMetrics = request.app.state.ingest_metrics
    items = await read_items(request, "transactions", settings.max_batch_size)
    sorted_items = triage(items, Transaction, transaction_rules(settings), frozenset({"received_time"}))
    received = datetime.now(UTC)
    candidates = [(i, t.model_copy(update={"received_time": received})) for i, t in sorted_items.valid]
    ids = [t.transaction_id for _, t in candidates]
    duplicates = await asyncio.to_thread(store.reserve, ids)
    to_send = [(i, t) for i, t in candidates if t.transaction_id not in duplicates]
    try:
        await _produce_all(
            request.app.state.producer,
            [(TRANSACTIONS_TOPIC, t.customer_id, t.to_avro()) for _, t in to_send],
            settings.kafka.request_timeout_ms / 1000 + 5,
        )
    except DependencyUnavailableError:
        await asyncio.to_thread(store.release, [t.transaction_id for _, t in to_send])
        raise
    await asyncio.to_thread(store.mark_produced, [t.transaction_id for _, t in to_send])
    for index, transaction in candidates:
        status = ItemStatus.DUPLICATE if transaction.transaction_id in duplicates else ItemStatus.ACCEPTED
        reasons = ["already accepted earlier"] if status is ItemStatus.DUPLICATE else []
        sorted_items.results[index] = ItemResult(
            index=index, id=transaction.transaction_id, status=status, reasons=reasons
        )
    summary = sorted_items.summary()
    metrics.record(summary, "transactions")
    return _answer(request, summary)


@router.post(
    "/labels",
    summary="Submit chargebacks and analyst verdicts (one or a batch)",
    response_model=SubmissionResult,
    responses=SUBMISSION_RESPONSES,
    openapi_extra=_one_or_batch(Label.model_json_schema(), "labels", 1000),
)
async def submit_labels(
    request: Request, principal: Annotated[Principal, Depends(RequireAction("labels:write"))]
) -> JSONResponse:
    settings: IngestSettings = request.app.state.settings
    store: IngestStore = request.app.state.store
    metrics: IngestMetrics = request.app.state.ingest_metrics
    items = await read_items(request, "labels", settings.max_batch_size)
    sorted_items = triage(items, Label, label_rules(settings), unique_ids=False)
    labels = [label for _, label in sorted_items.valid]
    # Kafka first: the label store is the trainer's record of what was published.
    await _produce_all(
        request.app.state.producer,
        [(LABELS_TOPIC, label.transaction_id, label.to_avro()) for label in labels],
        settings.kafka.request_timeout_ms / 1000 + 5,
    )
    await asyncio.to_thread(store.add_labels, labels, principal.name)
    for index, label in sorted_items.valid:
        sorted_items.results[index] = ItemResult(index=index, id=label.transaction_id, status=ItemStatus.ACCEPTED)
    summary = sorted_items.summary()
    metrics.record(summary, "labels")
    return _answer(request, summary)


class LabelView(BaseModel):
    transaction_id: str
    is_fraud: bool
    source: LabelSource
    known_at: datetime


class LabelPage(BaseModel):
    labels: list[LabelView]
    next_after: int | None


@router.get(
    "/labels", summary="Labels as known at a point in time (newest verdict per transaction)", response_model=LabelPage
)
async def list_labels(
    request: Request,
    as_of: Annotated[IsoDatetime | None, Query(description="Only labels known at this time (default: now).")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    after: Annotated[int, Query(ge=0, le=2**62, description="Cursor from the previous page's next_after.")] = 0,
) -> LabelPage:
    store: IngestStore = request.app.state.store
    if as_of is None:
        moment = datetime.now(UTC)
    else:
        moment = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    page, next_after = await asyncio.to_thread(store.labels_known_at, moment, limit, after)
    return LabelPage(
        labels=[
            LabelView(
                transaction_id=row.transaction_id, is_fraud=row.is_fraud, source=row.source, known_at=row.known_at
            )
            for row in page
        ],
        next_after=next_after,
    )
