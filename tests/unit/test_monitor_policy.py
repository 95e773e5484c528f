"""Which workflow an alert starts, live accuracy figures, and the action log's one-incident-one-action rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraudops_monitor.actions import ActionLog, ActionRecord, ActionStatus
from fraudops_monitor.alerts import Alert, AlertmanagerNotification, remediation
from fraudops_monitor.performance import LivePerformance, live_performance
from fraudops_monitor.settings import ActionKind, PolicySettings
from fraudops_monitor.windows import NO_LABEL, ScoredSnapshot

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def alert(name: str, category: str, status: str = "firing") -> Alert:
    return Alert.model_validate(
        {
            "status": status,
            "labels": {"alertname": name, "category": category, "model_name": "m"},
            "annotations": {"summary": "s"},
            "startsAt": NOW.isoformat(),
            "fingerprint": f"fp-{name}",
        }
    )


def performance(average_precision: float, labelled: int = 1_000) -> LivePerformance:
    return LivePerformance(5_000, labelled, 50, average_precision, 0.5, 0.5, 0.2, 0.05)


@pytest.mark.parametrize(
    ("name", "category", "accuracy", "expected"),
    [
        ("FraudDataDrift", "drift", performance(0.8), ActionKind.REPORT),
        # Drift while accuracy is already lost calls for retraining.
        ("FraudDataDrift", "drift", performance(0.3), ActionKind.RETRAIN),
        # ... but not on a handful of labels.
        ("FraudDataDrift", "drift", performance(0.3, labelled=20), ActionKind.REPORT),
        ("FraudDataDrift", "drift", None, ActionKind.REPORT),
        ("FraudNewPatternDrift", "drift", performance(0.8), ActionKind.RETRAIN),
        ("FraudLiveAccuracyLow", "accuracy", None, ActionKind.RETRAIN),
        ("FraudLiveAccuracyCollapse", "accuracy", None, ActionKind.ROLLBACK),
        ("FraudScorerStalled", "operational", None, ActionKind.REPORT),
        ("SomethingNew", "accuracy", None, ActionKind.RETRAIN),
        ("SomethingElse", "", None, ActionKind.REPORT),
    ],
)
def test_policy(name: str, category: str, accuracy: LivePerformance | None, expected: ActionKind) -> None:
    assert remediation(alert(name, category), PolicySettings(), accuracy) is expected


def test_policy_is_configurable() -> None:
    policy = PolicySettings(by_alertname={"FraudLiveAccuracyCollapse": ActionKind.FALLBACK})
    assert remediation(alert("FraudLiveAccuracyCollapse", "accuracy"), policy, None) is ActionKind.FALLBACK


def test_alertmanager_payload_and_incident_keys() -> None:
    payload: dict[str, Any] = {
        "version": "4",
        "status": "firing",
        "receiver": "monitor",
        "groupKey": '{}:{alertname="FraudDataDrift"}',
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "FraudDataDrift"},
                "annotations": {},
                "startsAt": "2026-11-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "abc",
            }
        ],
    }
    notification = AlertmanagerNotification.model_validate(payload)
    repeated = AlertmanagerNotification.model_validate(payload)
    assert notification.alerts[0].incident == repeated.alerts[0].incident
    in_milliseconds = {**payload, "alerts": [{**payload["alerts"][0], "startsAt": "2026-11-01T00:00:00.123Z"}]}
    in_nanoseconds = {**payload, "alerts": [{**payload["alerts"][0], "startsAt": "2026-11-01T00:00:00.123456789Z"}]}
    assert (
        AlertmanagerNotification.model_validate(in_milliseconds).alerts[0].incident
        == AlertmanagerNotification.model_validate(in_nanoseconds).alerts[0].incident
    )
    first_alert: dict[str, object] = dict(payload["alerts"][0])
    restarted = {**payload, "alerts": [{**first_alert, "startsAt": "2026-11-02T00:00:00Z"}]}
    assert AlertmanagerNotification.model_validate(restarted).alerts[0].incident != notification.alerts[0].incident
    with pytest.raises(ValueError, match="alerts"):
        AlertmanagerNotification.model_validate({**payload, "alerts": []})


def record(kind: ActionKind, status: ActionStatus, created: datetime, alertname: str = "A") -> ActionRecord:
    return ActionRecord(
        id=created.strftime("%Y%m%dT%H%M%SZ") + "-0000000" + str(len(alertname)),
        kind=kind,
        status=status,
        alertname=alertname,
        incident=f"{alertname}@{created.isoformat()}",
        model_name="m",
        reason="r",
        created_at=created,
        updated_at=created,
    )


def test_action_log_cooldown_ignores_failed_actions_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "actions.json"
    log = ActionLog(path)
    log.put(record(ActionKind.RETRAIN, ActionStatus.FAILED, NOW - timedelta(minutes=5)))
    assert log.covering(ActionKind.RETRAIN, "m", None, NOW - timedelta(hours=6)) is None
    running = log.put(record(ActionKind.RETRAIN, ActionStatus.RUNNING, NOW - timedelta(hours=1), alertname="B"))
    reopened = ActionLog(path)
    assert reopened.covering(ActionKind.RETRAIN, "m", None, NOW - timedelta(hours=6)) == running
    assert reopened.covering(ActionKind.RETRAIN, "m", None, NOW - timedelta(minutes=30)) is None
    assert reopened.covering(ActionKind.RETRAIN, "other-model", None, NOW - timedelta(hours=6)) is None
    assert reopened.covering(ActionKind.ROLLBACK, "m", None, NOW - timedelta(hours=6)) is None
    assert reopened.seen(running.incident, ActionKind.RETRAIN)
    assert not reopened.seen(running.incident, ActionKind.REPORT)


def test_live_performance_counts_labelled_payments_of_the_version_only() -> None:
    n = 8
    snapshot = ScoredSnapshot(
        transaction_ids=np.asarray([f"t{i}" for i in range(n)], dtype=object),
        customer_ids=np.asarray(["c1", "c2", "c3", "c4", "c1", "c2", "c3", "c4"], dtype=object),
        event_ms=np.asarray([0] * 4 + [86_400_000] * 4, dtype=np.int64),
        scores=np.asarray([0.9, 0.8, 0.2, 0.1, 0.95, 0.3, 0.2, 0.6]),
        flagged=np.asarray([True, True, False, False, True, False, False, True]),
        model_versions=np.asarray(["1"] * 7 + ["2"], dtype=object),
        labels=np.asarray([1, 0, 0, NO_LABEL, 1, 1, NO_LABEL, 1], dtype=np.int8),
    )
    figures = live_performance(snapshot, "1")
    assert figures.scored == 7
    assert figures.labelled == 5
    assert figures.frauds == 3
    # Flagged and labelled: t0 (fraud), t1 (genuine), t4 (fraud): precision 2/3; frauds t0, t4, t5: recall 2/3.
    assert figures.precision == pytest.approx(2 / 3)
    assert figures.recall == pytest.approx(2 / 3)
    # Ranked 0.95 F, 0.9 F, 0.8 G, 0.3 F, 0.2 G: AP = (1 + 1 + 3/4) / 3.
    assert figures.average_precision == pytest.approx((1 + 1 + 0.75) / 3)
    assert figures.fraud_rate == pytest.approx(3 / 5)
    assert np.isnan(live_performance(snapshot, "9").average_precision)


def test_the_drift_benchmark_and_the_policy_judge_by_the_alert_rules_thresholds() -> None:
    import yaml

    from fraudops.paths import repo_root
    from fraudops_monitor import bench
    from fraudops_monitor.alerts import MIN_LABELLED_FOR_ACCURACY

    root = repo_root()
    assert root is not None
    groups = yaml.safe_load((root / "infrastructure/prometheus/rules/fraud-model.yml").read_text())["groups"]
    expressions = {rule["alert"]: " ".join(rule["expr"].split()) for group in groups for rule in group["rules"]}
    assert expressions["FraudDataDrift"].endswith(f">= {bench.DATA_DRIFT_SHARE}")
    low = expressions["FraudLiveAccuracyLow"]
    assert f"(fraud_live_average_precision) < {bench.ACCURACY_FLOOR}" in low
    assert f"(fraud_live_labelled_transactions) >= {bench.MIN_LABELLED}" in low
    assert PolicySettings().accuracy_floor == bench.ACCURACY_FLOOR
    assert MIN_LABELLED_FOR_ACCURACY == bench.MIN_LABELLED
