"""One dataset job, run in a worker process: load (upload, simulation or stream window), validate, store."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fraudops.datasets import LABEL_COLUMNS
from fraudops.settings import KafkaSettings
from fraudops_ingest.datasets.reading import UploadFormat, coerce, read_upload, require_columns
from fraudops_ingest.datasets.storage import DatasetWriter
from fraudops_ingest.datasets.stream import StreamWindow, read_window
from fraudops_ingest.datasets.validation import Period, validate


@dataclass(frozen=True)
class DatasetJob:
    dataset_id: str
    root_uri: str
    period_start: datetime
    period_end: datetime
    max_amount: float
    source: Path | None = None
    upload_format: UploadFormat | None = None
    simulation: dict[str, Any] = field(default_factory=dict)
    stream: StreamWindow | None = None
    kafka: KafkaSettings | None = None


def _load(job: DatasetJob) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Typed frame for validation, the same rows as received (for the quarantine), and what the source
    itself reports (a stream window's counts), kept in the summary."""
    if job.source is not None and job.upload_format is not None:
        typed = read_upload(job.source, job.upload_format)
        if job.upload_format is UploadFormat.CSV:
            raw = pd.read_csv(job.source, dtype=str, keep_default_na=False)
        else:
            raw = typed.copy()
        return typed, raw, {}
    if job.stream is not None:
        frame, report = read_window(job.kafka or KafkaSettings(), job.stream)
        typed = coerce(frame)
        return typed, typed.copy(), {"stream": report}
    from fraudops.simulator import DriftSpec, SimulatorConfig, simulate

    spec = job.simulation
    drifts = (DriftSpec(spec["drift"], spec.get("drift_start_day") or 0),) if spec.get("drift") else ()
    config = SimulatorConfig(
        n_customers=spec["customers"],
        n_terminals=spec["terminals"],
        n_days=spec["days"],
        start_date=date.fromisoformat(spec["start_date"]),
        seed=spec["seed"],
        drifts=drifts,
    )
    frame = simulate(config).transactions
    require_columns(list(frame.columns))
    typed = coerce(frame)
    return typed, typed.copy(), {}


def run_dataset_job(job: DatasetJob) -> dict[str, Any]:
    """Validate and store; returns the summary recorded for the dataset. Raises on failure (nothing kept)."""
    started = datetime.now(UTC)
    typed, raw, extra = _load(job)
    outcome = validate(typed, Period(job.period_start, job.period_end), job.max_amount)
    writer = DatasetWriter(job.root_uri, job.dataset_id)
    try:
        writer.clear()
        bad_positions = sorted(outcome.failures)
        valid = typed.drop(index=bad_positions)
        quarantine = raw.iloc[bad_positions].copy()
        quarantine["failed_expectations"] = ["; ".join(outcome.failures[p]) for p in bad_positions]
        writer.write_valid(valid)
        writer.write_quarantine(quarantine)
        counts: dict[str, int] = {}
        for names in outcome.failures.values():
            for name in names:
                counts[name] = counts.get(name, 0) + 1
        report_uri = writer.write_json("report.json", outcome.report)
        docs_uri = writer.write_folder("data_docs", outcome.data_docs)
        summary: dict[str, Any] = {
            "dataset_id": job.dataset_id,
            "uri": writer.uri,
            "rows_total": len(typed),
            "rows_valid": len(valid),
            "rows_quarantined": len(quarantine),
            "failed_expectations": counts,
            "label_columns": [c for c in LABEL_COLUMNS if c in typed.columns],
            "period_start": job.period_start.isoformat(),
            "period_end": job.period_end.isoformat(),
            "report_uri": report_uri,
            "data_docs_uri": docs_uri + "/index.html",
            "validated_at": datetime.now(UTC).isoformat(),
            "validation_seconds": round((datetime.now(UTC) - started).total_seconds(), 3),
            **extra,
        }
        writer.complete(summary)
    except Exception:
        writer.clear()
        raise
    finally:
        shutil.rmtree(outcome.data_docs, ignore_errors=True)
    return summary
