"""Training jobs: a durable record per job, a queue, one training process at a time, cancellation."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Float, MetaData, String, Table, create_engine, select, update

from fraudops_trainer.worker import JobContext, run_job

log = logging.getLogger(__name__)

metadata = MetaData()
training_jobs = Table(
    "training_jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # queued, running, succeeded, failed, cancelled
    Column("dataset_id", String(64), nullable=False),
    Column("dataset_uri", String(2000), nullable=False),
    Column("request", JSON, nullable=False),
    Column("stage", String(200)),
    Column("progress", Float, nullable=False, default=0.0),
    Column("result", JSON),
    Column("error", String(4000)),
    Column("principal", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    status: str
    dataset_id: str
    dataset_uri: str
    request: dict[str, Any]
    stage: str | None
    progress: float
    result: dict[str, Any] | None
    error: str | None
    principal: str
    created_at: datetime
    updated_at: datetime


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class JobStore:
    def __init__(self, url: str) -> None:
        connect_args = {"check_same_thread": False} if url.startswith("sqlite") else {}
        self.engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def add(self, dataset_id: str, dataset_uri: str, request: dict[str, Any], principal: str) -> JobRecord:
        now = datetime.now(UTC)
        job_id = "job-" + uuid.uuid4().hex[:16]
        with self.engine.begin() as conn:
            conn.execute(
                training_jobs.insert().values(
                    job_id=job_id, status="queued", dataset_id=dataset_id, dataset_uri=dataset_uri, request=request,
                    stage="queued", progress=0.0, principal=principal, created_at=now, updated_at=now,
                )
            )  # fmt: skip
        record = self.get(job_id)
        assert record is not None
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(training_jobs).where(training_jobs.c.job_id == job_id)).first()
        return self._record(row) if row else None

    def listing(self, limit: int) -> list[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(training_jobs).order_by(training_jobs.c.created_at.desc()).limit(limit)).all()
        return [self._record(row) for row in rows]

    def unfinished(self) -> list[JobRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(training_jobs)
                .where(training_jobs.c.status.in_(("queued", "running")))
                .order_by(training_jobs.c.created_at)
            ).all()
        return [self._record(row) for row in rows]

    def update(self, job_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(training_jobs)
                .where(training_jobs.c.job_id == job_id, training_jobs.c.status.not_in(FINISHED))
                .values(updated_at=datetime.now(UTC), **values)
            )

    @staticmethod
    def _record(row: Any) -> JobRecord:
        return JobRecord(
            job_id=row.job_id, status=row.status, dataset_id=row.dataset_id, dataset_uri=row.dataset_uri,
            request=row.request, stage=row.stage, progress=row.progress, result=row.result, error=row.error,
            principal=row.principal, created_at=_utc(row.created_at), updated_at=_utc(row.updated_at),
        )  # fmt: skip


class JobRunner:
    """One job at a time, each in a fresh process, so a crash or a cancel never takes the API down."""

    def __init__(self, store: JobStore, tracking_uri: str, experiment: str, model_name: str) -> None:
        self.store = store
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.model_name = model_name
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._current: tuple[str, BaseProcess] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="training-jobs")

    async def submit(self, job_id: str) -> None:
        await self._queue.put(job_id)

    async def resume_unfinished(self) -> None:
        for record in await asyncio.to_thread(self.store.unfinished):
            await asyncio.to_thread(self.store.update, record.job_id, status="queued", stage="requeued after restart")
            await self.submit(record.job_id)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; False if it had already finished."""
        record = await asyncio.to_thread(self.store.get, job_id)
        if record is None or record.status in FINISHED:
            return False
        await asyncio.to_thread(self.store.update, job_id, status="cancelled", stage="cancelled")
        if self._current is not None and self._current[0] == job_id:
            self._current[1].terminate()
        return True

    async def _work(self) -> None:
        while True:
            job_id = await self._queue.get()
            record = await asyncio.to_thread(self.store.get, job_id)
            if record is None or record.status in FINISHED:
                continue
            try:
                await self._run(record)
            except Exception:
                log.exception("training job crashed the runner", extra={"job_id": job_id})
                await asyncio.to_thread(self.store.update, job_id, status="failed", error="internal error; see logs")

    async def _run(self, record: JobRecord) -> None:
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        job = JobContext(
            record.job_id, record.dataset_uri, self.tracking_uri, self.experiment, self.model_name, os.getpid()
        )
        process = context.Process(target=run_job, args=(record.request, job, sender), name=f"train-{record.job_id}")
        await asyncio.to_thread(self.store.update, record.job_id, status="running", stage="starting")
        process.start()
        sender.close()
        self._current = (record.job_id, process)
        outcome: tuple[str, Any] | None = None
        try:
            while True:
                message = await asyncio.to_thread(_receive, receiver)
                if message is None:
                    break
                if message[0] == "progress":
                    await asyncio.to_thread(
                        self.store.update, record.job_id, stage=message[1], progress=float(message[2])
                    )
                else:
                    outcome = (message[0], message[1])
                    break
        finally:
            await asyncio.to_thread(process.join, 30)
            self._current = None
            receiver.close()
        if outcome is not None and outcome[0] == "done":
            await asyncio.to_thread(
                self.store.update, record.job_id, status="succeeded", stage="done", progress=1.0, result=outcome[1]
            )
            log.info("training job succeeded", extra={"job_id": record.job_id, **outcome[1]["metrics"]})
        elif outcome is not None:
            await asyncio.to_thread(self.store.update, record.job_id, status="failed", stage="failed", error=outcome[1])
        else:
            # No message: cancelled (terminated) or the process died (e.g. out of memory).
            await asyncio.to_thread(
                self.store.update, record.job_id, status="failed", stage="failed",
                error=f"the training process ended without a result (exit code {process.exitcode})",
            )  # fmt: skip

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._current is not None:
            self._current[1].terminate()


def _receive(receiver: Connection) -> tuple[Any, ...] | None:
    try:
        message: tuple[Any, ...] = receiver.recv()
    except EOFError:
        return None
    return message
