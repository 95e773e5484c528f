"""Runs dataset jobs one at a time in a worker process, so validation never blocks the API's event loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any

from fraudops.child_processes import single_worker_pool
from fraudops.errors import FraudOpsError
from fraudops.settings import KafkaSettings
from fraudops_ingest.datasets.jobs import DatasetJob, run_dataset_job
from fraudops_ingest.datasets.reading import UploadFormat
from fraudops_ingest.datasets.stream import StreamWindow
from fraudops_ingest.store import DatasetCatalog, DatasetRecord

log = logging.getLogger(__name__)


def job_from_record(
    record: DatasetRecord, root_uri: str, max_amount: float, kafka: KafkaSettings | None = None
) -> DatasetJob:
    request = record.request
    stream = request.get("stream")
    return DatasetJob(
        dataset_id=record.dataset_id,
        root_uri=root_uri,
        period_start=datetime.fromisoformat(request["period_start"]),
        period_end=datetime.fromisoformat(request["period_end"]),
        max_amount=max_amount,
        source=Path(request["staged_file"]) if request.get("staged_file") else None,
        upload_format=UploadFormat(request["format"]) if request.get("format") else None,
        simulation=request.get("simulation") or {},
        stream=StreamWindow(
            start=datetime.fromisoformat(request["period_start"]),
            end=datetime.fromisoformat(request["period_end"]),
            transactions_topic=stream["transactions_topic"],
            labels_topic=stream["labels_topic"],
        )
        if stream
        else None,
        kafka=kafka,
    )


class DatasetRunner:
    def __init__(
        self, catalog: DatasetCatalog, root_uri: str, max_amount: float, kafka: KafkaSettings | None = None
    ) -> None:
        self.catalog = catalog
        self.kafka = kafka
        self.root_uri = root_uri
        self.max_amount = max_amount
        self._queue: asyncio.Queue[DatasetRecord] = asyncio.Queue()
        self._pool = self._new_pool()
        self._task: asyncio.Task[None] | None = None
        self.metrics_hook: Any = None

    @staticmethod
    def _new_pool() -> ProcessPoolExecutor:
        return single_worker_pool()

    def start(self) -> None:
        self._task = asyncio.create_task(self._work(), name="dataset-jobs")

    async def submit(self, record: DatasetRecord) -> None:
        await self._queue.put(record)

    async def resume_unfinished(self) -> int:
        """Requeue jobs a previous process accepted but did not finish."""
        records = await asyncio.to_thread(self.catalog.unfinished)
        for record in records:
            await self.submit(record)
        return len(records)

    async def _work(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self._run(record)
            except Exception:
                # The database went away mid-job: log it and keep serving the queue; the job stays
                # queued/validating in the catalogue and is requeued at the next start.
                log.exception("dataset job could not be recorded", extra={"dataset_id": record.dataset_id})

    async def _run(self, record: DatasetRecord) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.catalog.set_status, record.dataset_id, "validating")
        job = job_from_record(record, self.root_uri, self.max_amount, self.kafka)
        try:
            summary = await loop.run_in_executor(self._pool, run_dataset_job, job)
        except BrokenProcessPool:
            self._pool = self._new_pool()
            await self._fail(record, "the validation worker died (out of memory?); resubmit to retry")
        except FraudOpsError as exc:
            await self._fail(record, exc.message)
        except Exception as exc:
            log.exception("dataset job failed", extra={"dataset_id": record.dataset_id})
            await self._fail(record, f"{exc.__class__.__name__}: {exc}"[:2000])
        else:
            await asyncio.to_thread(self.catalog.set_status, record.dataset_id, "ready", summary)
            if self.metrics_hook is not None:
                self.metrics_hook(summary)
            log.info("dataset ready", extra={"dataset_id": record.dataset_id, "rows_valid": summary["rows_valid"]})
        finally:
            if job.source is not None:
                job.source.unlink(missing_ok=True)

    async def _fail(self, record: DatasetRecord, reason: str) -> None:
        await asyncio.to_thread(self.catalog.set_status, record.dataset_id, "failed", None, reason)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
