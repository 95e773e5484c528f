"""The registry gateway's domain metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.changes = Counter(
            "fraud_registry_changes_total",
            "Registry changes committed (promotions, rollbacks, archives, fallback switches), by event type.",
            ["event_type"],
            registry=registry,
        )
        self.validations = Counter(
            "fraud_registry_validations_total", "Quality-gate runs, by outcome.", ["outcome"], registry=registry
        )
        self.validation_seconds = Histogram(
            "fraud_registry_validation_seconds",
            "Time to run the quality gate on one version.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.undo_failures = Counter(
            "fraud_registry_undo_failures_total",
            "MLflow writes that could not be undone after a failed change; each needs an operator.",
            registry=registry,
        )
        self.events_published = Counter(
            "fraud_registry_events_published_total", "Model events delivered to Kafka.", registry=registry
        )
        self.publish_failures = Counter(
            "fraud_registry_event_publish_failures_total",
            "Attempts to deliver a model event that failed (retried from the outbox).",
            registry=registry,
        )
        self.outbox_pending = Gauge(
            "fraud_registry_outbox_pending", "Model events recorded but not yet delivered.", registry=registry
        )
