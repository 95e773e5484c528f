"""The demo's story: history → validated dataset → champion → live stream → drift → retrained champion."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.live import Live
from rich.table import Table

from fraudops.demo.services import (
    MODEL_NAME,
    AirflowRuns,
    Sample,
    StackClients,
    StageFailed,
    histogram_quantile,
    latency_buckets,
)
from fraudops.demo.world import FEATURE_HORIZON_DAYS, DemoWorld
from fraudops.replay import replay
from fraudops.settings import KafkaSettings

LATENCY_METRIC = "fraud_scorer_kafka_to_publish_latency_seconds"
CORRUPTED_ROWS = 40
# How long the monitor, Prometheus, Alertmanager and a retraining may take, at most, before a stage fails.
ALERT_TIMEOUT_S = 900.0
TRAINING_TIMEOUT_S = 1_800.0
# The retraining trains on 14 days (twice the first champion's 7, so the challenger has more of the recent
# payments to learn from), then the usual delay and test weeks; its dataset also holds the features' horizon
# before them, since the trainer computes features from the dataset alone.
RETRAIN_WINDOW_DAYS = FEATURE_HORIZON_DAYS + 14 + 7 + 7
# The stream goes out in steps of event time, and slows down once the new pattern has started: the monitor's
# alert then comes while its "now" is a day or so past the start, so the retraining's test week is mostly the
# known world (no version can have learned a pattern whose chargebacks are still arriving).
STREAM_STEP = timedelta(hours=6)
SLOWDOWN_AFTER_DRIFT = 0.25
RETRAIN_TRAINING: dict[str, Any] = {"protocol": {"train_days": 14}}


@dataclass
class StreamFigures:
    sent: int = 0
    seconds: float = 0.0
    latency_p50_ms: float = float("nan")
    latency_p99_ms: float = float("nan")
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


@dataclass
class Outcome:
    """What the demo achieved, stage by stage; written to summary.json and read by the e2e test."""

    run_tag: str
    world_date: str
    dataset: dict[str, Any] = field(default_factory=dict)
    corrupted_rows: int = 0
    first_champion: str | None = None
    training_via: str = ""
    stream: StreamFigures = field(default_factory=StreamFigures)
    tail: StreamFigures = field(default_factory=StreamFigures)
    stream_start: str = ""
    drift_start: str = ""
    drift_detected_window_end: str | None = None
    alerts: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    retrain_via: str = ""
    new_champion: str | None = None
    streamed_ids: int = 0
    scored_ids: int = 0
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)


class Story:
    def __init__(
        self,
        world: DemoWorld,
        clients: StackClients,
        airflow: AirflowRuns | None,
        console: Console,
        output: Path,
    ) -> None:
        self.world = world
        self.clients = clients
        self.airflow = airflow
        self.console = console
        self.output = output
        self.outcome = Outcome(
            run_tag=world.tag, world_date=world.today.isoformat(), stream_start=world.stream_start.isoformat()
        )
        self.kafka = KafkaSettings(bootstrap_servers=clients.settings.kafka_bootstrap)

    def say(self, text: str) -> None:
        self.console.print(text)

    # ---------------------------------------------------------------------------------------- 1. dataset

    def ingest_history(self) -> str:
        history = self.world.history()
        upload = history.copy()
        # A few broken rows, as real extracts have: validation must quarantine exactly them and keep the rest.
        rng = np.random.default_rng(self.world.seed)
        broken = rng.choice(len(upload), size=CORRUPTED_ROWS, replace=False)
        half = CORRUPTED_ROWS // 2
        upload.loc[upload.index[broken[:half]], "amount"] = -1.0
        upload.loc[upload.index[broken[half:]], "currency"] = "euro"
        buffer = io.BytesIO()
        upload.to_parquet(buffer, index=False)
        self.say(
            f"  uploading {len(upload):,} payments over {self.world.size.history_days} days "
            f"({int(upload['is_fraud'].sum()):,} frauds; {CORRUPTED_ROWS} rows deliberately broken)"
        )
        last_day = (self.world.stream_start - timedelta(days=1)).date()
        accepted = self.clients.call(
            "ingest",
            "POST",
            "/v1/datasets",
            202,
            params={
                "name": f"demo-{self.world.tag}",
                "period_start": self.world.start.date().isoformat(),
                "period_end": last_day.isoformat(),
            },
            content=buffer.getvalue(),
            headers={"content-type": "application/vnd.apache.parquet"},
        )
        dataset = self.clients.wait_status(
            "ingest", f"/v1/datasets/{accepted['dataset_id']}", {"ready", "failed"}, TRAINING_TIMEOUT_S
        )
        if dataset["status"] != "ready":
            raise StageFailed(f"dataset {dataset['dataset_id']} failed validation: {dataset.get('error')}")
        self.outcome.dataset = dataset
        self.outcome.corrupted_rows = CORRUPTED_ROWS
        self.say(
            f"  [green]dataset {dataset['dataset_id']} ready[/]: {dataset['rows_valid']:,} rows accepted, "
            f"{dataset['rows_quarantined']:,} quarantined"
        )
        if dataset["rows_quarantined"] != CORRUPTED_ROWS:
            raise StageFailed(
                f"expected the {CORRUPTED_ROWS} broken rows quarantined, got {dataset['rows_quarantined']}"
            )
        return str(dataset["dataset_id"])

    # ---------------------------------------------------------------------------------------- 2. training

    def train_champion(self, dataset_id: str) -> str:
        before = self.clients.champion()
        if self.airflow is not None:
            self.outcome.training_via = "airflow"
            self._run_dag(
                "fraud_training_pipeline", {"dataset_id": dataset_id, "auto_promote": True, "model_name": MODEL_NAME}
            )
        else:
            self.outcome.training_via = "services"
            self._train_through_services(dataset_id, reason=f"demo {self.world.tag}: first champion")
        champion = self.clients.champion()
        if champion is None or champion == before:
            raise StageFailed(f"no new champion after training (champion before: {before}, after: {champion})")
        metrics = self.clients.version(champion)["metrics"]
        self.outcome.first_champion = champion
        self.say(f"  [green]champion: {MODEL_NAME} v{champion}[/] ({_metrics_line(metrics)})")
        return champion

    def _run_dag(self, dag_id: str, conf: dict[str, Any]) -> None:
        assert self.airflow is not None
        run_id = f"demo-{self.world.tag}-{dag_id}-{datetime.now(UTC):%H%M%S}"
        shown: dict[str, str] = {}

        def show(state: str, tasks: dict[str, str]) -> None:
            for task, task_state in tasks.items():
                if shown.get(task) != task_state and task_state in {"running", "success", "failed", "skipped"}:
                    self.say(f"    {dag_id}.{task}: {task_state}")
                    shown[task] = task_state

        self.say(f"  triggering {dag_id} through Airflow's REST API at {self.airflow.url} (run {run_id})")
        state = self.airflow.run(dag_id, run_id, conf, TRAINING_TIMEOUT_S, show)
        if state != "success":
            failed = [t for t, s in shown.items() if s == "failed"]
            raise StageFailed(f"Airflow run {dag_id}/{run_id} ended {state} (failed tasks: {failed})")

    def _train_through_services(self, dataset_id: str, reason: str, training: dict[str, Any] | None = None) -> str:
        self.say("  training at the trainer (Airflow is off: the DAG's steps, called directly)")
        request = {"dataset_id": dataset_id, **(training or {})}
        job = self.clients.call("trainer", "POST", "/v1/training-jobs", 202, json=request)
        done = self.clients.wait_status(
            "trainer", f"/v1/training-jobs/{job['job_id']}", {"succeeded", "failed", "cancelled"}, TRAINING_TIMEOUT_S
        )
        if done["status"] != "succeeded":
            raise StageFailed(f"training job {job['job_id']} {done['status']}: {done.get('error')}")
        version = str(done["result"]["model_version"])
        verdict = self.clients.call(
            "registry-gateway", "POST", f"/v1/models/{MODEL_NAME}/versions/{version}/validate", 200
        )
        if verdict["validation_status"] != "passed":
            raise StageFailed(f"the gate refused v{version}: {'; '.join(verdict['reasons'])}")
        self.clients.call(
            "registry-gateway",
            "POST",
            f"/v1/models/{MODEL_NAME}/versions/{version}/promote",
            200,
            json={"target": "champion", "reason": reason},
        )
        return version

    # ---------------------------------------------------------------------------------------- 3. stream

    def replay_history(self) -> None:
        """The history goes through Kafka first, as the log of a bank running for months would hold it: the
        scorer's online state and the retraining's dataset both come from it."""
        payments = self.world.history()
        labels = self._labels_known(self.world.start, self.world.stream_start)
        self.say(
            f"  replaying the history into Kafka as fast as it goes ({len(payments):,} payments, "
            f"{len(labels):,} labels): the scorer builds its online state from it"
        )
        asyncio.run(replay(payments, self.kafka, rate=0, labels=labels))
        self._wait_caught_up(len(payments), timeout_s=900)

    def stream(
        self,
        start: datetime,
        end: datetime,
        figures: StreamFigures,
        title: str,
        until: Callable[[], bool] | None = None,
    ) -> datetime:
        """Stream [start, end) in steps of event time, each step's labels with it; stop early once `until()`
        holds, and then slow down once the new pattern has begun, so the monitor's "now" is still close to the
        drift's start when it notices. Returns the event time reached."""
        slower = f" ({self.world.size.rate * SLOWDOWN_AFTER_DRIFT:,.0f}/s once the new pattern runs)" if until else ""
        self.say(
            f"  {title}: payments from {start:%Y-%m-%d %H:%M} at {self.world.size.rate:,.0f}/s{slower}, "
            "labels as they become known"
        )
        before = self.clients.metrics("scorer")
        scored_before = _total(before, "fraud_scorer_messages_in_total")
        started = time.monotonic()
        sent = [0]
        reached = start
        with Live(self._live_table(before, 0, started), console=self.console, refresh_per_second=1) as live:

            async def run(payments: pd.DataFrame, labels: pd.DataFrame, rate: float) -> None:
                done_before = sent[0]

                def progress(done: int, total: int) -> None:
                    sent[0] = done_before + done

                task = asyncio.create_task(replay(payments, self.kafka, rate=rate, labels=labels, progress=progress))
                while not task.done():
                    # Back as soon as the step is sent: sleeping a whole second held every step to the next tick.
                    await asyncio.wait({task}, timeout=1)
                    live.update(self._live_table(before, sent[0], started))
                await task

            while reached < end:
                step_end = min(reached + STREAM_STEP, end)
                payments = self.world.between(reached, step_end)
                rate = self.world.size.rate
                if until is not None and reached >= self.world.drift_start:
                    rate *= SLOWDOWN_AFTER_DRIFT
                asyncio.run(run(payments, self._labels_known(reached, step_end), rate))
                reached = step_end
                if until is not None and until():
                    break
            self._wait_caught_up(sent[0], timeout_s=300, scored_before=scored_before)
            live.update(self._live_table(before, sent[0], started))
        figures.sent += sent[0]
        figures.seconds += time.monotonic() - started
        figures.latency_p50_ms, figures.latency_p99_ms, decisions = scorer_delta(before, self.clients.metrics("scorer"))
        for decision, count in decisions.items():
            figures.decisions[decision] = figures.decisions.get(decision, 0) + count
        self.say(
            f"  [green]scored {sent[0]:,}[/] up to {reached:%Y-%m-%d %H:%M} in {figures.seconds:.0f} s: "
            f"{figures.throughput:,.0f} tx/s, latency p50 {figures.latency_p50_ms:.1f} ms, p99 "
            f"{figures.latency_p99_ms:.1f} ms (Kafka append → score acknowledged); decisions {figures.decisions}"
        )
        return reached

    def _labels_known(self, start: datetime, end: datetime) -> pd.DataFrame:
        labels = self.world.labels
        return labels[(labels["known_at"] >= start) & (labels["known_at"] < end)]

    def _wait_caught_up(self, count: int, timeout_s: float, scored_before: float | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            metrics = self.clients.metrics("scorer")
            lag = _total(metrics, "fraud_scorer_consumer_lag_messages", missing=1)
            read = _total(metrics, "fraud_scorer_messages_in_total")
            if lag == 0 and (scored_before is None or read - scored_before >= count):
                return
            time.sleep(1)
        raise StageFailed(f"the scorer did not catch up with {count:,} payments within {timeout_s:.0f} s")

    def _live_table(self, before: dict[str, Sample], sent: int, started: float) -> Table:
        elapsed = max(time.monotonic() - started, 1e-9)
        table = Table(show_header=True, header_style="bold")
        columns = ("sent", "tx/s", "lag", "p50/p99 ms", "review/decline", "serving", "drift", "new pattern",
                   "live AP", "alerts")  # fmt: skip
        for column in columns:
            table.add_column(column)
        scorer = self.clients.metrics("scorer")
        p50, p99, decisions = scorer_delta(before, scorer)
        last = self._last_evaluation()
        drift = (last or {}).get("drift") or {}
        performance = (last or {}).get("performance") or {}
        firing = {a["labels"]["alertname"] for a in self.clients.prometheus_alerts() if a["state"] == "firing"}
        table.add_row(
            f"{sent:,}",
            f"{sent / elapsed:,.0f}",
            f"{_total(scorer, 'fraud_scorer_consumer_lag_messages'):,.0f}",
            f"{p50:.0f}/{p99:.0f}",
            f"{decisions['REVIEW']:,}/{decisions['DECLINE']:,}",
            f"v{self.clients.serving_version() or '-'}",
            _fmt(drift.get("drift_share"), "{:.0%}"),
            str(drift.get("new_pattern_drift", "-")),
            _fmt(performance.get("average_precision"), "{:.3f}"),
            # Without the common prefix the names fit the table.
            ", ".join(sorted(name.removeprefix("Fraud") for name in firing)) or "-",
        )
        return table

    def _last_evaluation(self) -> dict[str, Any] | None:
        evaluations = self.clients.call("monitor", "GET", "/v1/evaluations", 200, params={"limit": 1})
        return evaluations[0] if evaluations else None

    # ---------------------------------------------------------------------------------------- 4. drift

    def respond_to_drift(self, champion: str) -> str:
        """Wait until the new pattern is caught and a retrained version is champion; return it."""
        self.outcome.drift_start = self.world.drift_start.isoformat()
        observed = self.clients.stack.prometheus.process.running()
        self.say(
            f"  the '{self.world.size.name}' world's new fraud pattern (card testing) started at "
            f"{self.world.drift_start:%Y-%m-%d %H:%M} event time; waiting for the monitor"
            + (", Prometheus and Alertmanager" if observed else " (Prometheus is not running: its evaluations decide)")
        )
        detected = self._wait(lambda: self.drift_evaluation(), ALERT_TIMEOUT_S, "the monitor to measure the drift")
        self.outcome.drift_detected_window_end = detected["window_end"]
        self.say(f"  [yellow]drift measured[/] on the window ending {detected['window_end']}: {_drift_line(detected)}")
        if observed:
            retrain = self._wait(self._monitor_retrain, ALERT_TIMEOUT_S, "an alert and the monitor's action")
            self.say(f"  [yellow]alerts firing[/]: {', '.join(self.outcome.alerts)}")
            self.say(f"  monitor action {retrain['id']}: {retrain['kind']} {retrain['status']} ({retrain['detail']})")
            if retrain["kind"] == "retrain" and retrain["status"] in {"running", "succeeded"}:
                self.outcome.retrain_via = "monitor → Airflow fraud_retrain_on_alert"
                finished = self._wait(
                    lambda: self._action_finished(retrain["id"]), TRAINING_TIMEOUT_S, "the retraining run to end"
                )
                self.say(f"  retraining {finished['dag_run_id']} {finished['status']}: {finished['detail']}")
                if finished["status"] != "succeeded":
                    raise StageFailed(f"the monitor's retraining {finished['status']}: {finished['detail']}")
                return self._new_champion(champion)
        self._retrain_here(detected)
        return self._new_champion(champion)

    def drift_evaluation(self) -> dict[str, Any] | None:
        evaluations: list[dict[str, Any]] = self.clients.call(
            "monitor", "GET", "/v1/evaluations", 200, params={"limit": 1000}
        )
        self.outcome.evaluations = evaluations
        for evaluation in reversed(evaluations):
            drift = evaluation.get("drift") or {}
            if drift.get("new_pattern_drift") and evaluation["window_end"] >= self.world.drift_start.isoformat():
                return dict(evaluation)
        return None

    def _monitor_retrain(self) -> dict[str, Any] | None:
        self.outcome.alerts = sorted({a["labels"]["alertname"] for a in self.clients.prometheus_alerts()})
        actions: list[dict[str, Any]] = self.clients.call("monitor", "GET", "/v1/actions", 200)
        self.outcome.actions = actions
        # Pending: the monitor is still calling Airflow; the answer (running, or failed) decides who retrains.
        remediations = [a for a in actions if a["kind"] != "report" and a["status"] not in {"suppressed", "pending"}]
        recent = [a for a in remediations if a["created_at"] >= self.outcome_started]
        return recent[-1] if recent else None

    def _action_finished(self, action_id: str) -> dict[str, Any] | None:
        action: dict[str, Any] = self.clients.call("monitor", "GET", f"/v1/actions/{action_id}", 200)
        return action if action["status"] in {"succeeded", "failed"} else None

    def _retrain_here(self, detected: dict[str, Any]) -> None:
        """No retraining through the monitor (Airflow off, or no alerting): the same steps, started here."""
        end = datetime.fromisoformat(detected["window_end"])
        start = end - timedelta(days=RETRAIN_WINDOW_DAYS)
        self.say(f"  retraining on the stream's last {RETRAIN_WINDOW_DAYS} days ({start:%Y-%m-%d} to {end:%Y-%m-%d})")
        accepted = self.clients.call(
            "ingest",
            "POST",
            "/v1/datasets/from-stream",
            202,
            json={"start": start.isoformat(), "end": end.isoformat(), "name": f"demo-{self.world.tag}-retrain"},
        )
        dataset = self.clients.wait_status(
            "ingest", f"/v1/datasets/{accepted['dataset_id']}", {"ready", "failed"}, TRAINING_TIMEOUT_S
        )
        if dataset["status"] != "ready":
            raise StageFailed(f"the retraining dataset failed: {dataset.get('error')}")
        self.say(f"  dataset from the stream: {dataset['rows_valid']:,} rows")
        if self.airflow is not None:
            self.outcome.retrain_via = "demo → Airflow fraud_training_pipeline"
            self._run_dag(
                "fraud_training_pipeline",
                {
                    "dataset_id": dataset["dataset_id"],
                    "auto_promote": True,
                    "model_name": MODEL_NAME,
                    "training": RETRAIN_TRAINING,
                },
            )
        else:
            self.outcome.retrain_via = "demo → trainer and registry gateway"
            self._train_through_services(
                dataset["dataset_id"], reason=f"demo {self.world.tag}: drift", training=RETRAIN_TRAINING
            )

    def _new_champion(self, old: str) -> str:
        champion = self.clients.champion()
        if champion is None or champion == old:
            raise StageFailed(f"the champion is still v{old} after retraining")
        self.outcome.new_champion = champion
        self.say(f"  [green]new champion v{champion}[/] ({_metrics_line(self.clients.version(champion)['metrics'])})")
        self._wait(lambda: self.clients.serving_version() == champion or None, 120, f"the scorer to serve v{champion}")
        self.say(f"  the scorer serves v{champion}")
        return champion

    outcome_started: str = ""

    @staticmethod
    def _wait(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(2)
        raise StageFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _total(metrics: dict[str, Sample], name: str, missing: float = 0.0) -> float:
    return metrics[name].total() if name in metrics else missing


def scorer_delta(before: dict[str, Sample], after: dict[str, Sample]) -> tuple[float, float, dict[str, int]]:
    """Latency p50 and p99 in ms (Kafka append → score acknowledged) and decisions between two scrapes."""
    start, end = latency_buckets(before, LATENCY_METRIC), latency_buckets(after, LATENCY_METRIC)
    delta = {bound: count - start.get(bound, 0.0) for bound, count in end.items()}
    p50 = histogram_quantile(delta, 0.5) * 1000 if delta else float("nan")
    p99 = histogram_quantile(delta, 0.99) * 1000 if delta else float("nan")
    decisions = {}
    for decision in ("APPROVE", "REVIEW", "DECLINE"):
        was = (
            before["fraud_scorer_decisions_total"].total(decision=decision)
            if "fraud_scorer_decisions_total" in before
            else 0
        )
        now = (
            after["fraud_scorer_decisions_total"].total(decision=decision)
            if "fraud_scorer_decisions_total" in after
            else 0
        )
        decisions[decision] = int(now - was)
    return p50, p99, decisions


def _fmt(value: Any, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, int | float) else "-"


def _metrics_line(metrics: dict[str, float]) -> str:
    shown = [(k, v) for k, v in metrics.items() if k in {"average_precision", "roc_auc", "card_precision_at_100"}]
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(shown)) or "no metrics recorded"


def _drift_line(evaluation: dict[str, Any]) -> str:
    drift = evaluation.get("drift") or {}
    drifted = [f["feature"] for f in drift.get("features", []) if f.get("drifted")]
    return f"{drift.get('drift_share', 0):.0%} of features drifted ({', '.join(drifted)}), new pattern: yes"
