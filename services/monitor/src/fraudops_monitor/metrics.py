"""The monitor's Prometheus metrics (fraud_*): what the alert rules and the dashboards read."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fraudops_monitor.drift import DriftOutcome
from fraudops_monitor.performance import LivePerformance

MODEL = ["model_name", "model_version"]


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.feature_drift_score = Gauge(
            "fraud_feature_drift_score", "Evidently drift score of a feature, live window vs reference.",
            [*MODEL, "feature"], registry=registry,
        )  # fmt: skip
        self.feature_drifted = Gauge(
            "fraud_feature_drifted", "1 when the feature's drift score reaches the threshold.",
            [*MODEL, "feature"], registry=registry,
        )  # fmt: skip
        self.drift_share = Gauge("fraud_drift_share", "Share of features that drifted.", MODEL, registry=registry)
        self.new_pattern_drift = Gauge(
            "fraud_new_pattern_drift", "1 when a sentinel feature (payment bursts) drifted.", MODEL, registry=registry
        )
        self.prediction_drift_score = Gauge(
            "fraud_prediction_drift_score", "Evidently drift score of the model's scores.", MODEL, registry=registry
        )
        self.prediction_drifted = Gauge(
            "fraud_prediction_drifted",
            "1 when the scores' drift score reaches the threshold.",
            MODEL,
            registry=registry,
        )
        self.live_average_precision = Gauge(
            "fraud_live_average_precision", "Average precision over labelled live payments.", MODEL, registry=registry
        )
        self.live_precision = Gauge(
            "fraud_live_precision", "Precision of review+decline over labelled payments.", MODEL, registry=registry
        )
        self.live_recall = Gauge(
            "fraud_live_recall", "Recall of review+decline over labelled frauds.", MODEL, registry=registry
        )
        self.live_card_precision = Gauge(
            "fraud_live_card_precision_at_100", "Card Precision@100 per day, averaged.", MODEL, registry=registry
        )
        self.live_labelled = Gauge(
            "fraud_live_labelled_transactions", "Scored payments with a known label.", MODEL, registry=registry
        )
        self.live_fraud_rate = Gauge(
            "fraud_live_fraud_rate", "Share of frauds among labelled payments.", MODEL, registry=registry
        )
        self.labels_matched = Counter(
            "fraud_labels_matched_total", "Labels joined to a logged score.", registry=registry
        )
        self.labels_unmatched = Counter(
            "fraud_labels_unmatched_total", "Labels whose transaction was never scored in time.", registry=registry
        )
        self.labels_pending = Gauge("fraud_labels_pending", "Labels waiting for their score.", registry=registry)
        self.label_delay = Histogram(
            "fraud_label_delay_seconds", "Event time to label known time.",
            buckets=[3600 * h for h in (1, 6, 24, 48, 96, 168, 336, 504, 720, 1440)], registry=registry,
        )  # fmt: skip
        self.scores = Histogram(
            "fraud_monitor_score_ratio", "Scores of the live payments.",
            buckets=[0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0], registry=registry,
        )  # fmt: skip
        self.window_transactions = Gauge(
            "fraud_monitor_window_transactions", "Transactions in the drift window.", registry=registry
        )
        self.consumer_lag = Gauge(
            "fraud_monitor_consumer_lag_messages",
            "Messages of transactions and scores not read yet.",
            registry=registry,
        )
        self.messages = Counter(
            "fraud_monitor_messages_total", "Messages read, by topic.", ["topic"], registry=registry
        )
        self.unreadable = Counter(
            "fraud_monitor_unreadable_messages_total", "Messages skipped as unreadable, by topic.", ["topic"],
            registry=registry,
        )  # fmt: skip
        self.evaluations = Counter(
            "fraud_monitor_evaluations_total", "Evaluations, by outcome.", ["outcome"], registry=registry
        )
        self.evaluation_duration = Histogram(
            "fraud_monitor_evaluation_duration_seconds", "Duration of one drift and performance evaluation.",
            buckets=[0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34], registry=registry,
        )  # fmt: skip
        self.last_evaluation = Gauge(
            "fraud_monitor_last_evaluation_timestamp_seconds", "When the last evaluation ended.", registry=registry
        )
        self.alerts_received = Counter(
            "fraud_monitor_alerts_received_total", "Alerts received from Alertmanager.", ["alertname", "status"],
            registry=registry,
        )  # fmt: skip
        self.actions = Counter(
            "fraud_monitor_actions_total", "Actions, by kind and outcome.", ["action", "outcome"], registry=registry
        )
        self._model_series: set[tuple[str, str]] = set()

    def publish_drift(self, model: tuple[str, str], outcome: DriftOutcome) -> None:
        self._switch_model(model)
        for feature in outcome.features:
            self.feature_drift_score.labels(*model, feature.feature).set(feature.score)
            self.feature_drifted.labels(*model, feature.feature).set(int(feature.drifted))
        self.drift_share.labels(*model).set(outcome.drift_share)
        self.new_pattern_drift.labels(*model).set(int(outcome.new_pattern_drift))
        if outcome.prediction_score is not None:
            self.prediction_drift_score.labels(*model).set(outcome.prediction_score)
            self.prediction_drifted.labels(*model).set(int(outcome.prediction_drifted))

    def publish_performance(self, model: tuple[str, str], performance: LivePerformance) -> None:
        self._switch_model(model)
        self.live_average_precision.labels(*model).set(performance.average_precision)
        self.live_precision.labels(*model).set(performance.precision)
        self.live_recall.labels(*model).set(performance.recall)
        self.live_card_precision.labels(*model).set(performance.card_precision_at_100)
        self.live_labelled.labels(*model).set(performance.labelled)
        self.live_fraud_rate.labels(*model).set(performance.fraud_rate)

    def _switch_model(self, model: tuple[str, str]) -> None:
        """A replaced version's series go: an alert must not keep firing on a model that no longer serves."""
        for old in self._model_series - {model}:
            for gauge in (
                self.drift_share, self.new_pattern_drift, self.prediction_drift_score, self.prediction_drifted,
                self.live_average_precision, self.live_precision, self.live_recall, self.live_card_precision,
                self.live_labelled, self.live_fraud_rate,
            ):  # fmt: skip
                with contextlib.suppress(KeyError):
                    gauge.remove(*old)
            for per_feature in (self.feature_drift_score, self.feature_drifted):
                for labels in list(per_feature._metrics):
                    if labels[:2] == old:
                        per_feature.remove(*labels)
        self._model_series = {model}
