"""The monitor end to end: a drifted stream scored by a real scorer, drift and live accuracy measured with
Evidently, scraped by a real Prometheus whose rules fire, Alertmanager's webhook reaching the monitor, and
the action the policy names happening once (the real registry gateway, or Airflow's REST API)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from fraudops.replay import replay
from fraudops_monitor.bench import DRIFT_START_DAY, REFERENCE_DAYS, TRAIN_DAYS, register_champion, simulated_rows
from tests.support.monitor import MonitorProcess, airflow_api_recorder
from tests.support.observability import Observability, observability, observability_settings
from tests.support.scorer import ScorerProcess, ScorerRun, wait_for
from tests.support.stack import RunningStack

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def run(running_stack: RunningStack, tmp_path: Path) -> Iterator[ScorerRun]:
    scorer_run = ScorerRun(running_stack, tmp_path)
    yield scorer_run
    scorer_run.close()


class Scenario:
    """A simulated drift scenario streamed through a scorer and a monitor, watched by Prometheus and Alertmanager."""

    def __init__(self, run: ScorerRun, tmp_path: Path, scenario: str, **monitor_settings: str) -> None:
        self.run = run
        self.tmp_path = tmp_path
        self.rows, self.labels = simulated_rows(scenario, 60, customers=500)
        self.champion = register_champion(
            run.stack.settings.mlflow_url, run.model_name, self.rows, TRAIN_DAYS, REFERENCE_DAYS
        )
        self.scorer: ScorerProcess = run.scorer()
        self.monitor = MonitorProcess(
            run,
            tmp_path,
            EVALUATE_EVERY_TRANSACTIONS="20000",
            EVALUATION_INTERVAL_S="15",
            WINDOW__MIN_ROWS="500",
            **monitor_settings,
        )
        run.processes.append(self.monitor)

    def watched(self) -> Any:
        settings = observability_settings(self.run.stack.settings, interval_s=1.0, alert_for_max_s=1.0)
        targets = {"monitor": f"127.0.0.1:{self.monitor.port}", "scorer": f"127.0.0.1:{self.scorer.port}"}
        return observability(
            settings, self.tmp_path / "observability", targets=targets, webhook_url=f"{self.monitor.url}/v1/alerts"
        )

    def stream(self) -> None:
        self.scorer.start()
        self.monitor.start()
        topics = self.run.topics.replay_names()
        asyncio.run(replay(self.rows, self.run.kafka, rate=0, labels=self.labels, topic_names=topics))
        scores_topic = 'topic="' + self.run.topics.name("scores")
        wait_for(
            lambda: self.monitor.metric("fraud_monitor_messages_total", scores_topic) >= len(self.rows),
            timeout_s=300,
            what="the monitor to read every score",
        )
        # The alerts must come from a window holding the whole stream: the count trigger may have fired last
        # before the stream ended, so wait for the next scheduled evaluation.
        read_all = datetime.now(UTC)
        wait_for(
            lambda: any(datetime.fromisoformat(e["at"]) > read_all for e in self.evaluations()),
            timeout_s=120,
            what="an evaluation of the whole stream",
        )

    def evaluations(self) -> list[dict[str, Any]]:
        with self.monitor.client() as client:
            response = client.get("/v1/evaluations", params={"limit": 5})
            assert response.status_code == 200, response.text
            evaluations: list[dict[str, Any]] = response.json()
            return evaluations

    def actions(self) -> list[dict[str, Any]]:
        with self.monitor.client() as client:
            response = client.get("/v1/actions")
            assert response.status_code == 200, response.text
            actions: list[dict[str, Any]] = response.json()
            return actions

    def settled_actions(self, kind: str, status: str, timeout_s: float = 120) -> list[dict[str, Any]]:
        wait_for(
            lambda: any(a["kind"] == kind and a["status"] == status for a in self.actions()),
            timeout_s=timeout_s,
            what=f"a {kind} action {status}",
        )
        return [a for a in self.actions() if a["kind"] == kind and a["status"] != "suppressed"]


def test_population_shift_drift_fires_the_data_drift_rule_and_its_action_reaches_the_gateway_once(
    run: ScorerRun, tmp_path: Path
) -> None:
    # The operator's policy here: a data-drift alert sends scoring to the rules (a rollback is tried first;
    # the champion was aliased outside the gateway, so there is no earlier champion to go back to).
    scenario = Scenario(
        run, tmp_path, "population_shift", POLICY__BY_ALERTNAME=json.dumps({"FraudDataDrift": "rollback"})
    )
    version = f'model_version="{scenario.champion.version}"'
    with scenario.watched() as watched:
        scenario.stream()
        with scenario.monitor.client() as client:
            created = client.post("/v1/reports", json={"reason": "test"})
        assert created.status_code == 201, created.text
        check_population_shift_report(scenario, created.json())
        assert scenario.monitor.metric("fraud_drift_share", version) >= 0.2
        assert scenario.monitor.metric("fraud_new_pattern_drift", version) == 0
        assert 0 < scenario.monitor.metric("fraud_live_average_precision", version) <= 1
        matched = scenario.monitor.metric("fraud_labels_matched_total")
        assert matched > 200
        assert scenario.monitor.metric("fraud_label_delay_seconds_count") == matched

        alert = watched.wait_for_alert("FraudDataDrift", timeout_s=60)
        assert alert["labels"]["model_version"] == scenario.champion.version
        remediations = scenario.settled_actions("rollback", "succeeded")
        assert len(remediations) == 1, remediations
        assert "fallback on" in remediations[0]["detail"]
        # The scorer obeys the gateway's model event, and that fires the fallback rule in turn.
        wait_for(lambda: scenario.scorer.metric("fraud_scorer_fallback_active") == 1, 60, "the scorer in fallback")
        watched.wait_for_alert("FraudFallbackActive", timeout_s=60)
        reports = scenario.settled_actions("report", "succeeded")
        assert {r["alertname"] for r in reports} >= {"FraudDataDrift"}
        # Alertmanager keeps notifying while the alert fires: still one action, and the gateway saw one change.
        assert_no_second_remediation(scenario, watched, "rollback")
    with run.stack.client("registry-gateway") as gateway:
        history = gateway.get(f"/v1/models/{run.model_name}/history").json()["entries"]
    fallbacks = [e for e in history if "fallback" in json.dumps(e).lower()]
    assert len(fallbacks) == 1, history


def check_population_shift_report(scenario: Scenario, report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert summary["model_version"] == scenario.champion.version
    drift = summary["drift"]
    drifted = {f["feature"] for f in drift["features"] if f["drifted"]}
    assert {"amount", "is_night", "customer_avg_amount_1d"} <= drifted, drift
    assert drift["drift_share"] >= 0.2
    assert not drift["new_pattern_drift"], drifted
    assert "is_weekend" not in {f["feature"] for f in drift["features"]}
    performance = summary["performance"]
    assert performance["labelled"] > 200
    assert performance["frauds"] > 0
    assert 0 < performance["average_precision"] <= 1
    with scenario.monitor.client() as client:
        assert report["id"] in [r["id"] for r in client.get("/v1/reports").json()]
        html = client.get(f"/v1/reports/{report['id']}")
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        evidently = client.get(f"/v1/reports/{report['id']}", params={"format": "json"}).json()
        assert any("ValueDrift(column=amount" in m["metric_name"] for m in evidently["metrics"])
        assert client.get("/v1/reports/20990101T000000Z-deadbeef").status_code == 404
        assert client.get("/v1/reports/..%2f..%2fetc").status_code == 404
    assert httpx.post(f"{scenario.monitor.url}/v1/reports", json={}).status_code == 401


def assert_no_second_remediation(scenario: Scenario, watched: Observability, kind: str) -> None:
    """Alertmanager repeats a notification while its alert fires (repeat interval, retried deliveries):
    deliver what it holds again, as it would, and the monitor starts nothing new.

    An alert that resolved and fired again in between (a missed scrape on a busy machine does that) is a new
    incident: the monitor records its actions as suppressed, covered by the first ones within the cooldown.
    """
    held: list[dict[str, Any]] = []

    def all_delivered() -> bool:
        """Whether the monitor has seen every alert Alertmanager holds: one it holds but has not sent yet (its
        group wait) would reach the monitor first through this repeat, as a first notification."""
        held[:] = httpx.get(f"{watched.alertmanager_url}/api/v2/alerts", params={"active": "true"}, timeout=10).json()
        seen = {action["alertname"] for action in scenario.actions()}
        return bool(held) and {alert["labels"]["alertname"] for alert in held} <= seen

    wait_for(all_delivered, 60, "Alertmanager to deliver every alert it holds")
    repeat = {
        "version": "4",
        "status": "firing",
        "receiver": "monitor",
        "alerts": [
            {"status": "firing", **{k: a[k] for k in ("labels", "annotations", "startsAt", "fingerprint")}}
            for a in held
        ],
    }
    with scenario.monitor.client() as client:
        response = client.post("/v1/alerts", json=repeat)
    assert response.status_code == 202, response.text
    repeated = response.json()["actions"]
    assert [a for a in repeated if a["status"] != "suppressed"] == [], repeated
    first_ids = {a["id"] for a in scenario.actions() if a["status"] != "suppressed"}
    assert all(a["covered_by"] in first_ids for a in repeated), repeated
    assert len([a for a in scenario.actions() if a["kind"] == kind and a["status"] != "suppressed"]) == 1


def test_card_testing_fires_the_new_pattern_rule_and_triggers_retraining_once(run: ScorerRun, tmp_path: Path) -> None:
    with airflow_api_recorder() as airflow:
        scenario = Scenario(
            run,
            tmp_path,
            "card_testing",
            AIRFLOW__URL=airflow.url,
            AIRFLOW_PASSWORD=airflow.password,
        )
        with scenario.watched() as watched:
            scenario.stream()
            alert = watched.wait_for_alert("FraudNewPatternDrift", timeout_s=90)
            assert alert["labels"]["category"] == "drift"
            retrains = scenario.settled_actions("retrain", "running")
            assert len(retrains) == 1, retrains
            assert_no_second_remediation(scenario, watched, "retrain")
        triggers = airflow.triggers()
        assert len(triggers) == 1, airflow.calls
        conf = triggers[0]["conf"]
        action = retrains[0]
        assert conf["action_id"] == action["id"]
        assert triggers[0]["dag_run_id"] == action["dag_run_id"] == f"monitor-{action['id']}"
        # Live accuracy drops too as the new frauds' chargebacks come in: whichever alert came first started
        # the retraining, and the other found it within the cooldown.
        assert conf["alerts"][0]["labels"]["alertname"] in {"FraudNewPatternDrift", "FraudLiveAccuracyLow"}
        # The window ends at the stream's simulated "now" when the alert came, not at the wall clock.
        end = pd.Timestamp(conf["window"]["end"])
        first_day = scenario.rows["event_time"].min().floor("D")
        assert first_day + pd.Timedelta(days=DRIFT_START_DAY) <= end <= scenario.rows["event_time"].max()
        assert (end - pd.Timestamp(conf["window"]["start"])).days == 59

    # The retraining DAG reports how it ended.
    with scenario.monitor.client() as client:
        done = client.post(
            f"/v1/actions/{action['id']}/outcome",
            json={
                "outcome": "succeeded",
                "detail": "v2 promoted",
                "dag_run_id": action["dag_run_id"],
                "model_version": "2",
            },
        )
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "succeeded"
        assert client.post(f"/v1/actions/{action['id']}/outcome", json={"outcome": "bogus"}).status_code == 422
        assert (
            client.post("/v1/actions/20990101T000000Z-deadbeef/outcome", json={"outcome": "failed"}).status_code == 404
        )
