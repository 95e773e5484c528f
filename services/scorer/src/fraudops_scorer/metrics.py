"""The scorer's domain metrics."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fraudops_scorer.serving import Serving

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ScorerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter("fraud_scorer_messages_in_total", "Transactions read from Kafka.", registry=registry)
        self.results_out = Counter(
            "fraud_scorer_results_out_total", "Results published, by topic.", ["topic"], registry=registry
        )
        self.decisions = Counter(
            "fraud_scorer_decisions_total",
            "Verdicts given, by decision and by what scored (a model version, or the rules).",
            ["decision", "model_name", "model_version"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "fraud_scorer_dead_letters_total",
            "Messages sent to the dead-letter topic, by error.",
            ["error"],
            registry=registry,
        )
        self.duplicates = Counter(
            "fraud_scorer_duplicates_total",
            "Transactions read again under an id already scored (a producer's retry); not scored twice.",
            registry=registry,
        )
        self.set_aside = Counter(
            "fraud_scorer_set_aside_messages_total",
            "Transactions read ahead of the slowest partition while catching up, kept aside until it caught up.",
            registry=registry,
        )
        self.batch_size = Histogram(
            "fraud_scorer_batch_size_messages",
            "Messages per polled batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
            registry=registry,
        )
        self.scoring_seconds = Histogram(
            "fraud_scorer_scoring_latency_seconds",
            "Features, model call and reasons for one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_to_publish_seconds = Histogram(
            "fraud_scorer_end_to_end_latency_seconds",
            "From a transaction's event time to its score acknowledged by the broker.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.produce_to_publish_seconds = Histogram(
            "fraud_scorer_kafka_to_publish_latency_seconds",
            "From a transaction's append to the transactions topic to its score acknowledged by the broker.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.rest_scoring_seconds = Histogram(
            "fraud_scorer_rest_scoring_latency_seconds",
            "POST /v1/score: from a valid request to its verdicts (features and model call, shared by requests arriving together).",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.rest_requests_per_call = Histogram(
            "fraud_scorer_rest_requests_per_call_requests",
            "POST /v1/score: requests answered by one feature and model call (single payments arriving together).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        self.lag = Gauge(
            "fraud_scorer_consumer_lag_messages",
            "Messages behind the end of each partition.",
            ["partition"],
            registry=registry,
        )
        self.lag_measured = Gauge(
            "fraud_scorer_lag_measured_timestamp_seconds",
            "When this instance last read its partitions' end offsets from the broker (Unix time; its start "
            "until it has). It stops advancing while the broker is out of reach, when the lag gauge holds its "
            "last value.",
            registry=registry,
        )
        # Not 1970: a scorer that is still starting has not been cut off from Kafka for decades.
        self.lag_measured.set(time.time())
        self.assigned_partitions = Gauge(
            "fraud_scorer_assigned_partitions",
            "Partitions of the transactions topic this instance scores.",
            registry=registry,
        )
        self.model_info = Gauge(
            "fraud_scorer_model_info",
            "The versions serving (1 per role).",
            ["role", "model_name", "model_version"],
            registry=registry,
        )
        self.fallback_active = Gauge(
            "fraud_scorer_fallback_active", "1 while the rules fallback scores instead of a model.", registry=registry
        )
        self.model_refusals = Counter(
            "fraud_scorer_model_refusals_total", "Versions refused (load or smoke test failed).", registry=registry
        )
        self.state_rebuilds = Counter(
            "fraud_scorer_state_rebuilds_total", "Times the feature state was rebuilt from the log.", registry=registry
        )
        self.state_rebuild_seconds = Histogram(
            "fraud_scorer_state_rebuild_seconds",
            "Time to rebuild the feature state from the log.",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
            registry=registry,
        )
        self.state_wait_seconds = Histogram(
            "fraud_scorer_state_wait_seconds",
            "Time a batch waited for the shared state (labels, other partitions) to catch up.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.state_size = Gauge(
            "fraud_scorer_state_entries",
            "Entries held by the online feature state, by kind.",
            ["kind"],
            registry=registry,
        )

    def show_serving(self, serving: Serving) -> None:
        self.model_info.clear()
        for role, model in (("champion", serving.champion), ("challenger", serving.challenger)):
            if model is not None:
                self.model_info.labels(role, model.name, model.version).set(1)
        self.fallback_active.set(1 if serving.rules_score else 0)
