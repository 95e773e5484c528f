"""Ingest's domain metrics."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter

from fraudops_ingest.submissions import ItemStatus, SubmissionResult


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.items = Counter(
            "fraud_ingest_items_total", "Submitted items by kind and outcome.", ["kind", "status"], registry=registry
        )
        self.rejections = Counter(
            "fraud_ingest_rejections_total",
            "Rejected items by kind and field at fault.",
            ["kind", "field"],
            registry=registry,
        )

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
