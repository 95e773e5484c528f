"""Ingest's domain metrics."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from fraudops_ingest.submissions import ItemStatus, SubmissionResult


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.dataset_rows = Counter(
            "fraud_ingest_dataset_rows_total", "Dataset rows validated, by outcome.", ["outcome"], registry=registry
        )
        self.validation_seconds = Histogram(
            "fraud_ingest_dataset_validation_seconds",
            "Time to load, validate and store one dataset.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.upload_bytes = Counter("fraud_ingest_upload_bytes_total", "Bytes of datasets uploaded.", registry=registry)
        self.items = Counter(
            "fraud_ingest_items_total", "Submitted items by kind and outcome.", ["kind", "status"], registry=registry
        )
        self.rejections = Counter(
            "fraud_ingest_rejections_total",
            "Rejected items by kind and field at fault.",
            ["kind", "field"],
            registry=registry,
        )

    def record_dataset(self, summary: dict[str, Any]) -> None:
        self.dataset_rows.labels("valid").inc(summary["rows_valid"])
        self.dataset_rows.labels("quarantined").inc(summary["rows_quarantined"])
        self.validation_seconds.observe(summary["validation_seconds"])

    def record(self, result: SubmissionResult, kind: str) -> None:
        for status in ItemStatus:
            count = sum(r.status is status for r in result.results)
            if count:
                self.items.labels(kind, status.value).inc(count)
        fields: Tally[str] = Tally()
        for item in result.results:
            if item.status is ItemStatus.REJECTED:
                fields.update({reason.split(":", 1)[0] for reason in item.reasons})
        for name, count in fields.items():
            self.rejections.labels(kind, name).inc(count)
