"""Dataset endpoints: upload (streamed to disk), simulate or cut from the stream, then poll the job."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from fraudops.auth import Principal, RequireAction
from fraudops.contracts.messages import IsoDate, IsoDatetime
from fraudops.errors import ConflictError, InvalidInputError, NotFoundError
from fraudops.service import ErrorResponse
from fraudops_ingest.datasets.reading import UploadFormat, require_columns, upload_columns
from fraudops_ingest.datasets.runner import DatasetRunner
from fraudops_ingest.settings import IngestSettings
from fraudops_ingest.store import DatasetCatalog, DatasetRecord

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

CONTENT_TYPES = {
    "text/csv": UploadFormat.CSV,
    "application/vnd.apache.parquet": UploadFormat.PARQUET,
    "application/x-parquet": UploadFormat.PARQUET,
}
DatasetWriter = Annotated[Principal, Depends(RequireAction("datasets:write"))]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=256, pattern=r"^[\x21-\x7e]+$")]


class DatasetView(BaseModel):
    dataset_id: str
    status: str = Field(description="queued, validating, ready or failed")
    source: str
    name: str
    created_at: datetime
    updated_at: datetime
    rows_valid: int | None = None
    rows_quarantined: int | None = None
    uri: str | None = Field(
        default=None, description="Where the validated rows are (Parquet, partitioned by event_date)."
    )
    report: dict[str, Any] | None = Field(default=None, description="Validation summary once ready.")
    error: str | None = None


class SimulationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="simulated", pattern=r"^[A-Za-z0-9._-]{1,128}$")
    customers: int = Field(default=5000, ge=10, le=50_000)
    terminals: int = Field(default=10_000, ge=10, le=100_000)
    days: int = Field(default=183, ge=1, le=730)
    start_date: IsoDate = date(2018, 4, 1)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    drift: str | None = Field(default=None, pattern=r"^[a-z_]{1,64}$")
    drift_start_day: int | None = Field(default=None, ge=0, le=730)


class StreamDatasetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: IsoDatetime = Field(description="First event time included (ISO 8601; UTC when no zone is given).")
    end: IsoDatetime = Field(description="Event times up to, not including, this instant.")
    name: str = Field(default="stream", pattern=r"^[A-Za-z0-9._-]{1,128}$")


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class StagedUpload:
    """An upload written chunk by chunk to the staging folder while its SHA-256 is computed."""

    def __init__(self, folder: Path, upload_format: UploadFormat) -> None:
        self.folder = folder
        self.suffix = f".{upload_format.value}"
        self.hash = hashlib.sha256()
        self.path: Path | None = None
        self._file: BinaryIO | None = None

    def open(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.folder, suffix=self.suffix)
        self._file = os.fdopen(handle, "wb")
        self.path = Path(name)
        return self.path

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self.hash.update(chunk)
        self._file.write(chunk)

    def close(self) -> int:
        assert self._file is not None
        assert self.path is not None
        self._file.close()
        return self.path.stat().st_size

    def discard(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    @property
    def digest(self) -> str:
        return self.hash.hexdigest()


def _view(record: DatasetRecord) -> DatasetView:
    summary = record.summary or {}
    return DatasetView(
        dataset_id=record.dataset_id,
        status=record.status,
        source=record.source,
        name=record.name,
        created_at=record.created_at,
        updated_at=record.updated_at,
        rows_valid=summary.get("rows_valid"),
        rows_quarantined=summary.get("rows_quarantined"),
        uri=summary.get("uri"),
        report=summary or None,
        error=record.error,
    )


def _accepted(record: DatasetRecord) -> JSONResponse:
    return JSONResponse(
        _view(record).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/datasets/{record.dataset_id}"},
    )


async def _register(
    request: Request, dataset_id: str, source: str, name: str, job: dict[str, Any], idempotency_key: str | None
) -> tuple[DatasetRecord, bool]:
    catalog: DatasetCatalog = request.app.state.datasets
    if idempotency_key:
        earlier = await asyncio.to_thread(catalog.by_idempotency_key, idempotency_key)
        if earlier is not None:
            if earlier.dataset_id != dataset_id:
                raise ConflictError("this Idempotency-Key was used for a different dataset")
            return earlier, False
    record, created = await asyncio.to_thread(catalog.create, dataset_id, source, name, job, idempotency_key)
    if not created and record.status == "failed":
        # A failed dataset is retried by submitting it again.
        record = await asyncio.to_thread(catalog.requeue, dataset_id, job)
        created = True
    if created:
        runner: DatasetRunner = request.app.state.dataset_runner
        await runner.submit(record)
    return record, created


def _period(start: date | None, end: date | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    period_start = datetime.combine(start, time.min, UTC) if start else datetime(2000, 1, 1, tzinfo=UTC)
    period_end = datetime.combine(end, time.min, UTC) + timedelta(days=1) if end else now
    if period_end <= period_start:
        raise InvalidInputError("period_end must not be before period_start")
    return period_start, min(period_end, now)


DATASET_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": DatasetView, "description": "Accepted; poll the Location."},
    409: {"model": ErrorResponse, "description": "Idempotency-Key reused for other content."},
}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **DATASET_RESPONSES,
    413: {"model": ErrorResponse, "description": "Upload larger than the limit (the MAX_UPLOAD_BYTES setting)."},
    415: {"model": ErrorResponse, "description": "Content type is not text/csv or Parquet."},
    504: {"model": ErrorResponse, "description": "The upload took longer than the UPLOAD_TIMEOUT_S setting allows."},
}


@router.post(
    "",
    summary="Upload a CSV or Parquet dataset for validation and storage",
    status_code=202,
    response_model=DatasetView,
    responses=UPLOAD_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def upload_dataset(
    request: Request,
    principal: DatasetWriter,
    idempotency_key: IdempotencyKey = None,
    name: Annotated[str, Query(pattern=r"^[A-Za-z0-9._-]{1,128}$")] = "upload",
    period_start: Annotated[IsoDate | None, Query(description="First day rows may fall on (UTC).")] = None,
    period_end: Annotated[IsoDate | None, Query(description="Last day rows may fall on (UTC).")] = None,
) -> JSONResponse:
    from fraudops_ingest.submissions import UnsupportedMediaTypeError

    settings: IngestSettings = request.app.state.settings
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    upload_format = CONTENT_TYPES.get(content_type)
    if upload_format is None:
        raise UnsupportedMediaTypeError(
            f"send text/csv or application/vnd.apache.parquet (got {content_type or 'none'})"
        )
    start, end = _period(period_start, period_end)
    staging = StagedUpload(Path(settings.staging_dir), upload_format)
    path = await asyncio.to_thread(staging.open)
    keep = False
    try:
        async for chunk in request.stream():
            await asyncio.to_thread(staging.write, chunk)
        size = await asyncio.to_thread(staging.close)
        if size == 0:
            raise InvalidInputError("the uploaded file is empty")
        request.app.state.ingest_metrics.upload_bytes.inc(size)
        digest = staging.digest
        require_columns(await asyncio.to_thread(upload_columns, path, upload_format))
        identity = json.dumps([digest, upload_format.value, start.isoformat(), end.isoformat()])
        dataset_id = "ds-" + hashlib.sha256(identity.encode()).hexdigest()[:20]
        job = {
            "staged_file": str(path),
            "format": upload_format.value,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "sha256": digest,
        }
        record, created = await _register(request, dataset_id, "upload", name, job, idempotency_key)
        keep = created
        return _accepted(record)
    finally:
        if not keep:
            await asyncio.to_thread(staging.discard)


@router.post(
    "/simulated",
    summary="Generate a simulated dataset (Fraud Detection Handbook generator), then validate and store it",
    status_code=202,
    response_model=DatasetView,
    responses=DATASET_RESPONSES,
)
async def simulate_dataset(
    request: Request, body: SimulationRequest, principal: DatasetWriter, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    from fraudops.simulator import DRIFT_SCENARIOS

    if body.drift is not None and body.drift not in DRIFT_SCENARIOS:
        raise InvalidInputError(f"unknown drift scenario {body.drift!r}; known: {', '.join(sorted(DRIFT_SCENARIOS))}")
    if body.drift is not None and (body.drift_start_day or 0) >= body.days:
        raise InvalidInputError("drift_start_day must fall inside the simulated days")
    start = datetime.combine(body.start_date, time.min, UTC)
    end = start + timedelta(days=body.days)
    simulation = body.model_dump(mode="json", exclude={"name"})
    dataset_id = "ds-" + hashlib.sha256(json.dumps(simulation, sort_keys=True).encode()).hexdigest()[:20]
    job = {"simulation": simulation, "period_start": start.isoformat(), "period_end": end.isoformat()}
    record, _ = await _register(request, dataset_id, "simulation", body.name, job, idempotency_key)
    return _accepted(record)


@router.post(
    "/from-stream",
    summary="Build a dataset from the transactions log: a window of event time, labelled as known now",
    description=(
        "Reads the `transactions` topic up to its end when the job starts, keeps the transactions whose "
        "event_time is in [start, end) (first copy of each transaction_id), and sets is_fraud from the newest "
        "label on the `labels` topic known by then; transactions without a known label get is_fraud = 0, and "
        "the summary's `stream.rows_labelled` says how many had one. A window without transactions fails the job. "
        "Each request builds a new dataset, since labels keep arriving; repeat one with an Idempotency-Key."
    ),
    status_code=202,
    response_model=DatasetView,
    responses={
        **DATASET_RESPONSES,
        422: {"model": ErrorResponse, "description": "The request is invalid, or the window is empty or too long."},
    },
)
async def stream_dataset(
    request: Request,
    body: StreamDatasetRequest,
    principal: DatasetWriter,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    from fraudops_ingest.routes import LABELS_TOPIC, TRANSACTIONS_TOPIC

    settings: IngestSettings = request.app.state.settings
    start, end = _utc(body.start), _utc(body.end)
    if end <= start:
        raise InvalidInputError("end must be after start")
    longest = timedelta(days=settings.max_stream_window_days)
    if end - start > longest:
        raise InvalidInputError(
            f"the window spans {(end - start) / timedelta(days=1):.1f} days; at most "
            f"{settings.max_stream_window_days} are allowed"
        )
    # Not content-addressed like the others: the same window gives other rows and labels later on. The
    # Idempotency-Key, when sent, stands for the moment instead, so a retried request finds its dataset.
    moment = idempotency_key or datetime.now(UTC).isoformat()
    identity = json.dumps(["stream", start.isoformat(), end.isoformat(), moment])
    dataset_id = "ds-" + hashlib.sha256(identity.encode()).hexdigest()[:20]
    job = {
        "stream": {"transactions_topic": TRANSACTIONS_TOPIC, "labels_topic": LABELS_TOPIC},
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
    }
    record, _ = await _register(request, dataset_id, "stream", body.name, job, idempotency_key)
    return _accepted(record)


@router.get(
    "/{dataset_id}",
    summary="A dataset's status, row counts, report and URI",
    response_model=DatasetView,
    responses={404: {"model": ErrorResponse, "description": "No such dataset."}},
)
async def get_dataset(
    request: Request, dataset_id: Annotated[str, PathParam(pattern=r"^ds-[0-9a-f]{20}$")]
) -> DatasetView:
    catalog: DatasetCatalog = request.app.state.datasets
    record = await asyncio.to_thread(catalog.get, dataset_id)
    if record is None:
        raise NotFoundError(f"no dataset {dataset_id}")
    return _view(record)


@router.get("", summary="Recent datasets, newest first", response_model=list[DatasetView])
async def list_datasets(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[DatasetView]:
    catalog: DatasetCatalog = request.app.state.datasets
    return [_view(r) for r in await asyncio.to_thread(catalog.listing, limit)]
