"""Prometheus and Alertmanager against the real stack: every service scraped, every Grafana query and alert
rule accepted by the real Prometheus, and a firing alert delivered by the real Alertmanager to a webhook."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from fraudops.stack.config import SERVICE_NAMES
from fraudops.stack.observability import WEBHOOK_PRINCIPAL, ensure_webhook_principal
from fraudops.stack.stack import Stack
from tests.support.observability import (
    PROMETHEUS_DIR,
    Notification,
    Observability,
    PrometheusQueryError,
    grafana_queries,
    observability_settings,
    require_observability,
    stack_observability,
    webhook_recorder,
)
from tests.support.stack import RunningStack, run_cli


def _alert_rules() -> dict[str, str]:
    return {
        rule["alert"]: rule["expr"]
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    }


@pytest.fixture(scope="module")
def prometheus(running_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observability]:
    """Prometheus (1 s intervals) and Alertmanager beside the session's stack, with the fraud rules."""
    with stack_observability(running_stack, tmp_path_factory.mktemp("observability")) as started:
        started.wait_for_targets_up(SERVICE_NAMES)
        yield started


def test_prometheus_scrapes_every_service(prometheus: Observability) -> None:
    targets = prometheus.wait_for_targets_up([*SERVICE_NAMES, "prometheus", "alertmanager"])
    for service in SERVICE_NAMES:
        assert targets[service]["scrapeUrl"].startswith("http://127.0.0.1:")
        (info,) = prometheus.query(f'fraud_service_info{{job="{service}"}}')
        assert info["metric"]["service"] == service, "the job scrapes the service it is named after"
    (fallback,) = prometheus.query("max(fraud_scorer_fallback_active)")
    assert fallback["value"][1] in {"0", "1"}


def test_every_grafana_query_is_accepted_by_prometheus(prometheus: Observability) -> None:
    with pytest.raises(PrometheusQueryError, match="parse"):
        prometheus.query("sum(rate(fraud_scorer_messages_in_total[1m])")  # the check can fail
    queries = sorted(set(grafana_queries()))
    assert len(queries) > 30
    refused = {}
    for query in queries:
        try:
            prometheus.query(query)
        except PrometheusQueryError as exc:
            refused[query] = str(exc)
    assert refused == {}
    # Queries on metrics the running services already export return data, not only "no error".
    assert prometheus.query('min by (job) (up{job=~"ingest|trainer|scorer|monitor|registry-gateway"})')
    assert prometheus.query("max by (role, model_name, model_version) (fraud_scorer_model_info)") is not None
    assert prometheus.query("sum by (partition) (fraud_scorer_consumer_lag_messages)")


def test_every_alert_rule_loads_and_evaluates_in_prometheus(prometheus: Observability) -> None:
    expected = _alert_rules()
    for expr in expected.values():
        prometheus.query(expr)
    deadline = time.monotonic() + 15
    while True:
        rules = {rule["name"]: rule for group in prometheus.rule_groups() for rule in group["rules"]}
        if all(rule.get("health") == "ok" for rule in rules.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(rules) == set(expected)
    assert {name: rule["health"] for name, rule in rules.items() if rule["health"] != "ok"} == {}
    for name, rule in rules.items():
        assert rule["labels"]["category"] in {"drift", "accuracy", "operational"}, name


def _check_rule(folder: Path) -> Path:
    """A test-only rule that fires at once on a metric the running monitor exports."""
    rule = {
        "alert": "FraudObservabilityCheck",
        "expr": 'max by (job) (fraud_service_info{job="monitor"}) == 1',
        "for": "2s",
        "labels": {"severity": "warning", "category": "operational"},
        "annotations": {"summary": "{{ $labels.job }} is scraped", "description": "value {{ $value }}"},
    }
    path = folder / "check.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": [rule]}]}))
    return path


def test_alertmanager_delivers_a_firing_alert_to_the_webhook(running_stack: RunningStack, tmp_path: Path) -> None:
    """A test-only rule fires; Alertmanager posts the standard webhook payload with the monitor's `alertmanager`
    token."""
    rule_file = _check_rule(tmp_path)

    def fired(notification: Notification) -> bool:
        return any(
            alert["labels"].get("alertname") == "FraudObservabilityCheck" and alert["status"] == "firing"
            for alert in notification.body.get("alerts", [])
        )

    began = time.monotonic()
    with (
        webhook_recorder() as recorder,
        stack_observability(running_stack, tmp_path / "obs", rule_files=[rule_file], webhook_url=recorder.url) as obs,
    ):
        started_s = obs.started_s
        notification = recorder.wait_for(fired, timeout_s=60)
    delivered_s = notification.received_s - began
    print(f"Prometheus + Alertmanager ready in {started_s:.1f} s; alert delivered {delivered_s:.1f} s after start")
    assert notification.headers["authorization"] == f"Bearer {ensure_webhook_principal(running_stack.settings)}"
    body = notification.body
    assert body["version"] == "4"
    assert body["status"] == "firing"
    assert body["receiver"] == "fraudops-monitor"
    assert body["groupLabels"] == {"alertname": "FraudObservabilityCheck"}
    (alert,) = body["alerts"]
    assert alert["labels"]["job"] == "monitor"
    assert alert["labels"]["category"] == "operational"
    assert alert["annotations"] == {"summary": "monitor is scraped", "description": "value 1"}
    assert {"startsAt", "endsAt", "generatorURL", "fingerprint"} <= set(alert)
    assert delivered_s < 30


def test_the_running_monitor_accepts_alertmanagers_notifications(running_stack: RunningStack, tmp_path: Path) -> None:
    """Default wiring: Alertmanager posts to the stack's monitor, which authenticates it and counts the alert."""
    received = 'sum(fraud_monitor_alerts_received_total{alertname="FraudObservabilityCheck", status="firing"})'
    began = time.monotonic()
    with stack_observability(running_stack, tmp_path / "obs", rule_files=[_check_rule(tmp_path)]) as obs:
        deadline = time.monotonic() + 60
        while not obs.query(received) and time.monotonic() < deadline:
            time.sleep(0.5)
        (counted,) = obs.query(received)
    print(f"alert counted by the monitor {time.monotonic() - began:.1f} s after Prometheus and Alertmanager started")
    assert float(counted["value"][1]) >= 1


def _process_start_epoch(pid: int) -> float:
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def test_the_monitor_started_with_the_alertmanager_principal_in_its_token_table(running_stack: RunningStack) -> None:
    """`fraudops up` adds the principal before it starts the services, so the monitor already accepts the token
    when Alertmanager joins later (the monitor reads its table once, at start)."""
    table_path = running_stack.settings.secrets_dir / "fraudops_monitor_tokens"
    table = json.loads(table_path.read_text())
    assert table[WEBHOOK_PRINCIPAL] == ensure_webhook_principal(running_stack.settings) != table["operator"]
    pid = running_stack.stack.services["monitor"].process.pid()
    assert pid is not None
    # The start time read from /proc is truncated twice: the boot time to the second, the start to the clock tick.
    assert table_path.stat().st_mtime <= _process_start_epoch(pid) + 1.0 + 1.0 / os.sysconf("SC_CLK_TCK")


def test_fraudops_up_starts_alertmanager_and_prometheus_on_request(running_stack: RunningStack) -> None:
    require_observability()
    settings = observability_settings(running_stack.settings, interval_s=1.0)
    env = {
        **running_stack.env,
        "FRAUDOPS_STACK_PROMETHEUS_PORT": str(settings.prometheus_port),
        "FRAUDOPS_STACK_ALERTMANAGER_PORT": str(settings.alertmanager_port),
        "FRAUDOPS_STACK_PROMETHEUS_INTERVAL_S": "1",
    }
    stack = Stack(settings)
    try:
        result = run_cli(env, "up", "--only", "alertmanager", "--only", "prometheus")
        assert result.returncode == 0, result.stdout + result.stderr
        status = run_cli(env, "status")
        rows = {line.split()[0]: line for line in status.stdout.splitlines()}
        assert "ready" in rows["prometheus"]
        assert "ready" in rows["alertmanager"]
        assert status.returncode == 0, status.stdout
        # Prometheus is ready before its first target discovery has run: the list fills a moment later.
        jobs: set[str] = set()
        deadline = time.monotonic() + 30
        while not set(SERVICE_NAMES) <= jobs and time.monotonic() < deadline:
            response = httpx.get(f"{stack.prometheus.url}/api/v1/targets", timeout=5)
            jobs = {target["labels"]["job"] for target in response.json()["data"]["activeTargets"]}
            time.sleep(0.5)
        assert set(SERVICE_NAMES) <= jobs
    finally:
        assert stack.prometheus.stop()
        assert stack.alertmanager.stop()
