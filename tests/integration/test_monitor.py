"""The monitor against the real stack: a drifted stream scored by a real scorer, drift and live accuracy
measured with Evidently, exported to Prometheus format, kept as debugging reports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from fraudops.replay import replay
from fraudops.simulator import SimulatorConfig, derive_labels, simulate
from fraudops.simulator.config import DriftSpec
from tests.support.monitor import MonitorProcess, TrainedChampion, simulated_features, train_champion
from tests.support.scorer import ScorerRun, wait_for
from tests.support.stack import RunningStack

pytestmark = pytest.mark.timeout(600)

DRIFT_START_DAY = 52


@pytest.fixture
def run(running_stack: RunningStack, tmp_path: Path) -> Iterator[ScorerRun]:
    scorer_run = ScorerRun(running_stack, tmp_path)
    yield scorer_run
    scorer_run.close()


def drifted_stream(scenario: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """60 days of ~2,000 payments a day; `scenario` starts on day 52."""
    config = SimulatorConfig(
        n_customers=1_000, n_terminals=2_000, n_days=60, seed=3, drifts=(DriftSpec(scenario, DRIFT_START_DAY),)
    )
    transactions = simulate(config).transactions
    return transactions, derive_labels(transactions)


def score_and_monitor(
    run: ScorerRun, tmp_path: Path, transactions: pd.DataFrame, labels: pd.DataFrame, **monitor_settings: str
) -> tuple[TrainedChampion, MonitorProcess]:
    """Train a champion on days 30-44 (profile: days 45-51), then stream everything through scorer and monitor."""
    rows = simulated_features(transactions, labels)
    champion = train_champion(run, rows, train_days=range(30, 45), reference_days=range(45, DRIFT_START_DAY))
    scorer = run.scorer()
    scorer.start()
    monitor = MonitorProcess(
        run, tmp_path, EVALUATE_EVERY_TRANSACTIONS="25000", WINDOW__MIN_ROWS="500", **monitor_settings
    )
    run.processes.append(monitor)  # killed with the run
    monitor.start()
    asyncio.run(replay(transactions, run.kafka, rate=0, labels=labels, topic_names=run.topics.replay_names()))
    wait_for(
        lambda: (
            monitor.metric("fraud_monitor_messages_total", 'topic="' + run.topics.name("scores")) >= len(transactions)
        ),
        timeout_s=240,
        what="the monitor to read every score",
    )
    return champion, monitor


def test_population_shift_is_measured_as_data_drift_with_live_accuracy(run: ScorerRun, tmp_path: Path) -> None:
    transactions, labels = drifted_stream("population_shift")
    champion, monitor = score_and_monitor(run, tmp_path, transactions, labels)

    with monitor.client() as client:
        created = client.post("/v1/reports", json={"reason": "test"})
        assert created.status_code == 201, created.text
        report = created.json()
        summary = report["summary"]
        assert summary["model_version"] == champion.version
        drift = summary["drift"]
        drifted = {f["feature"] for f in drift["features"] if f["drifted"]}
        assert {"amount", "is_night", "customer_avg_amount_1d"} <= drifted, drift
        assert drift["drift_share"] >= 0.2
        assert not drift["new_pattern_drift"], drifted
        assert "is_weekend" not in {f["feature"] for f in drift["features"]}
        performance = summary["performance"]
        assert performance["labelled"] > 200
        assert 0 < performance["average_precision"] <= 1
        assert performance["frauds"] > 0

        listed = client.get("/v1/reports").json()
        assert report["id"] in [r["id"] for r in listed]
        html = client.get(f"/v1/reports/{report['id']}")
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        evidently = client.get(f"/v1/reports/{report['id']}", params={"format": "json"}).json()
        assert any("ValueDrift(column=amount" in m["metric_name"] for m in evidently["metrics"])
        assert client.get("/v1/reports/20990101T000000Z-deadbeef").status_code == 404
        assert client.get("/v1/reports/..%2f..%2fetc").status_code == 404

    version = f'model_version="{champion.version}"'
    assert monitor.metric("fraud_drift_share", version) >= 0.2
    assert monitor.metric("fraud_feature_drifted", 'feature="amount"') == 1
    assert monitor.metric("fraud_new_pattern_drift", version) == 0
    assert 0 < monitor.metric("fraud_live_average_precision", version) <= 1
    assert monitor.metric("fraud_labels_matched_total") > 200
    assert monitor.metric("fraud_label_delay_seconds_count") == monitor.metric("fraud_labels_matched_total")
    assert monitor.metric("fraud_monitor_evaluations_total", 'outcome="ok"') >= 2
    unauthenticated = httpx.post(f"{monitor.url}/v1/reports", json={})
    assert unauthenticated.status_code == 401
