"""Training-job endpoints."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from fraudops.auth import Principal, RequireAction
from fraudops.errors import ConflictError, DependencyUnavailableError, InvalidInputError, NotFoundError
from fraudops.service import ErrorResponse
from fraudops_trainer.jobs import JobRecord, JobRunner, JobStore
from fraudops_trainer.settings import TrainerSettings
from fraudops_trainer.spec import TrainingRequest

router = APIRouter(prefix="/v1/training-jobs", tags=["training"])
JobId = Annotated[str, Path(pattern=r"^job-[0-9a-f]{16}$")]


class JobView(BaseModel):
    job_id: str
    status: str
    dataset_id: str
    stage: str | None
    progress: float
    result: dict[str, Any] | None
    error: str | None
    principal: str
    created_at: datetime
    updated_at: datetime


def _view(record: JobRecord) -> JobView:
    return JobView(
        job_id=record.job_id, status=record.status, dataset_id=record.dataset_id, stage=record.stage,
        progress=record.progress, result=record.result, error=record.error, principal=record.principal,
        created_at=record.created_at, updated_at=record.updated_at,
    )  # fmt: skip


async def _dataset_uri(settings: TrainerSettings, dataset_id: str) -> str:
    """Ask ingest where a ready dataset is; refuse unknown, unfinished, empty or unlabelled ones."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{settings.ingest_url.rstrip('/')}/v1/datasets/{dataset_id}")
    except httpx.HTTPError as exc:
        raise DependencyUnavailableError(f"ingest unreachable: {exc.__class__.__name__}") from exc
    if response.status_code == 404:
        raise NotFoundError(f"no dataset {dataset_id}")
    if response.status_code != 200:
        raise DependencyUnavailableError(f"ingest answered {response.status_code} for dataset {dataset_id}")
    dataset = response.json()
    if dataset["status"] != "ready":
        raise ConflictError(f"dataset {dataset_id} is {dataset['status']}, not ready")
    if not dataset.get("rows_valid"):
        raise InvalidInputError(f"dataset {dataset_id} has no valid rows")
    if "is_fraud" not in (dataset.get("report") or {}).get("label_columns", []):
        raise InvalidInputError(f"dataset {dataset_id} has no is_fraud column to learn from")
    uri: str = dataset["uri"]
    return uri


@router.post(
    "",
    status_code=202,
    response_model=JobView,
    summary="Start a training job on a validated dataset",
    responses={
        404: {"model": ErrorResponse, "description": "No such dataset."},
        409: {"model": ErrorResponse, "description": "The dataset is not ready yet."},
        503: {"model": ErrorResponse, "description": "Ingest or the job store is unreachable."},
    },
)
async def start_job(
    request: Request, body: TrainingRequest, principal: Annotated[Principal, Depends(RequireAction("training:run"))]
) -> JSONResponse:
    settings: TrainerSettings = request.app.state.settings
    store: JobStore = request.app.state.jobs
    runner: JobRunner = request.app.state.runner
    uri = await _dataset_uri(settings, body.dataset_id)
    record = await asyncio.to_thread(store.add, body.dataset_id, uri, body.model_dump(mode="json"), principal.name)
    await runner.submit(record.job_id)
    return JSONResponse(
        _view(record).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/training-jobs/{record.job_id}"},
    )


@router.get(
    "/{job_id}",
    response_model=JobView,
    summary="A job's state, progress and, when done, run and model",
    responses={404: {"model": ErrorResponse, "description": "No such job."}},
)
async def get_job(request: Request, job_id: JobId) -> JobView:
    record = await asyncio.to_thread(request.app.state.jobs.get, job_id)
    if record is None:
        raise NotFoundError(f"no training job {job_id}")
    return _view(record)


@router.get("", response_model=list[JobView], summary="Recent training jobs, newest first")
async def list_jobs(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[JobView]:
    return [_view(r) for r in await asyncio.to_thread(request.app.state.jobs.listing, limit)]


@router.delete(
    "/{job_id}",
    response_model=JobView,
    summary="Cancel a queued or running job",
    responses={
        404: {"model": ErrorResponse, "description": "No such job."},
        409: {"model": ErrorResponse, "description": "Already finished."},
    },
)
async def cancel_job(
    request: Request, job_id: JobId, principal: Annotated[Principal, Depends(RequireAction("training:cancel"))]
) -> JobView:
    runner: JobRunner = request.app.state.runner
    record = await asyncio.to_thread(request.app.state.jobs.get, job_id)
    if record is None:
        raise NotFoundError(f"no training job {job_id}")
    if not await runner.cancel(job_id):
        raise ConflictError(f"training job {job_id} already {record.status}")
    updated = await asyncio.to_thread(request.app.state.jobs.get, job_id)
    assert updated is not None
    return _view(updated)
