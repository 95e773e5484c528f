"""Prometheus alert rules and Alertmanager configuration: promtool and amtool on the committed files, the
rules' labels and annotations, and the local stack's rendered copies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudops.stack.config import StackSettings
from fraudops.stack.observability import (
    AlertmanagerServer,
    PrometheusServer,
    ensure_webhook_principal,
    parse_duration,
    render_rules,
    webhook_token_file,
)
from tests.support.observability import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_DIR,
    known_metric_names,
    metric_names,
    required_tool,
)

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
REQUIRED_ALERTS = {
    "FraudDataDrift": "drift",
    "FraudNewPatternDrift": "drift",
    "FraudPredictionDrift": "drift",
    "FraudLiveAccuracyLow": "accuracy",
    "FraudLiveAccuracyCollapse": "accuracy",
    "FraudScorerStalled": "operational",
    "FraudScorerCutOffFromKafka": "operational",
    "FraudScorerLagging": "operational",
    "FraudDeadLettersGrowing": "operational",
    "FraudFallbackActive": "operational",
}
# What may split one alert into several: the model, or for a service-level alert the service (job).
ALLOWED_SERIES_LABELS = {"model_name", "model_version", "job"}


def alert_rules() -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                assert "alert" in rule, f"{path.name}: only alerting rules here"
                assert rule["alert"] not in rules, f"{rule['alert']} defined twice"
                rules[rule["alert"]] = rule
    return rules


def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([required_tool(tool), *args], capture_output=True, text=True, check=False, timeout=120)


def test_promtool_accepts_the_rule_files() -> None:
    assert RULE_FILES
    result = run("promtool", "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_pass() -> None:
    assert RULE_TESTS
    result = run("promtool", "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_can_fail(tmp_path: Path) -> None:
    """A rule test expecting the wrong severity fails: promtool really compares labels."""
    source = PROMETHEUS_DIR / "tests" / "fraud-model.test.yml"
    broken = source.read_text(encoding="utf-8").replace("severity: critical", "severity: warning", 1)
    copy = tmp_path / "tests" / source.name
    copy.parent.mkdir()
    copy.write_text(broken.replace("../rules/", f"{PROMETHEUS_DIR / 'rules'}/"), encoding="utf-8")
    result = run("promtool", "test", "rules", str(copy))
    assert result.returncode != 0


def test_every_required_alert_exists_with_its_category() -> None:
    rules = alert_rules()
    for name, category in REQUIRED_ALERTS.items():
        assert name in rules, f"{name} is missing"
        assert rules[name]["labels"]["category"] == category
    assert rules["FraudLiveAccuracyCollapse"]["labels"]["severity"] == "critical"


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_rules_have_a_duration_labels_annotations_and_known_metrics(name: str) -> None:
    rule = alert_rules()[name]
    assert name.startswith("Fraud")
    assert 0 < parse_duration(rule["for"]) <= 15 * 60, "a `for:` between a moment and 15 minutes"
    assert set(rule["labels"]) == {"severity", "category"}, "no other static labels"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["labels"]["category"] in {"drift", "accuracy", "operational"}
    assert {"summary", "description"} <= set(rule["annotations"])
    if "model_name" in rule["expr"]:
        assert "$labels.model_name" in rule["annotations"]["summary"], "the summary names the model"
    unknown = metric_names(rule["expr"]) - known_metric_names()
    assert not unknown, f"{name} uses metrics nobody exports: {unknown}"


@pytest.mark.parametrize("name", sorted(alert_rules()))
def test_rules_aggregate_away_per_series_labels(name: str) -> None:
    """Every selector sits inside an aggregation keeping at most the model (or service) labels."""
    expr = " ".join(alert_rules()[name]["expr"].split())
    for clause in re.split(r"\b(?:and|or|unless)\b(?: on \([^)]*\))?|/", expr):
        match = re.match(r"\s*(sum|max|min)\s*(?:by \(([^)]*)\))?\s*\(", clause)
        assert match, f"{name}: {clause.strip()!r} is not aggregated"
        kept = {label.strip() for label in (match.group(2) or "").split(",") if label.strip()}
        assert kept <= ALLOWED_SERIES_LABELS, f"{name} keeps {kept - ALLOWED_SERIES_LABELS}"


def test_every_rule_is_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case["alert_rule_test"]:
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alert_rules()) - firing == set(), "rules without a firing case"
    assert set(alert_rules()) - quiet == set(), "rules without a not-firing case"


def test_amtool_accepts_the_alertmanager_configuration() -> None:
    result = run("amtool", "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


def test_fraud_alerts_go_to_the_monitor_with_a_token_from_a_file() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))
    (route,) = config["route"]["routes"]
    assert config["route"]["receiver"] != route["receiver"], "alerts of no fraud category are not sent to the monitor"
    assert route["matchers"] == ['category=~"drift|accuracy|operational"']
    assert set(route["group_by"] if "group_by" in route else config["route"]["group_by"]) == {"alertname", "model_name"}
    (receiver,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"] == "http://monitor:8004/v1/alerts"
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization == {"type": "Bearer", "credentials_file": "/run/secrets/alertmanager_webhook_token"}


def test_rendered_local_configurations_are_valid_and_point_at_the_stack(tmp_path: Path) -> None:
    settings = StackSettings(
        state_dir=tmp_path,
        prometheus_port=19090,
        alertmanager_port=19094,
        monitor_port=18004,
        prometheus_interval_s=2,
        alert_for_max_s=3,
        alertmanager_group_wait_s=1,
    )
    alertmanager = AlertmanagerServer(settings)
    alertmanager.prepare()
    result = run("amtool", "check-config", str(alertmanager.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = yaml.safe_load(alertmanager.config_path.read_text())
    webhook = rendered["receivers"][1]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:18004/v1/alerts"
    token_path = Path(webhook["http_config"]["authorization"]["credentials_file"])
    assert token_path == webhook_token_file(settings)
    assert token_path.stat().st_mode & 0o777 == 0o600
    assert token_path.read_text() == ensure_webhook_principal(settings)
    assert rendered["route"]["routes"][0]["group_wait"] == "1000ms"

    prometheus = PrometheusServer(settings)
    prometheus.prepare()
    result = run("promtool", "check", "config", str(prometheus.config_path))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(prometheus.config_path.read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert jobs["monitor"] == ["127.0.0.1:18004"]
    assert jobs["prometheus"] == ["127.0.0.1:19090"]
    assert set(jobs) == {"ingest", "trainer", "scorer", "monitor", "registry-gateway", "prometheus", "alertmanager"}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:19094"]
    assert config["global"]["evaluation_interval"] == "2000ms"
    durations = [
        parse_duration(rule["for"])
        for path in config["rule_files"]
        for group in yaml.safe_load(Path(path).read_text())["groups"]
        for rule in group["rules"]
    ]
    assert len(durations) == len(alert_rules())
    assert max(durations) == 3


def test_rendering_rules_keeps_shorter_durations_and_everything_else(tmp_path: Path) -> None:
    (written,) = render_rules([RULE_FILES[0]], tmp_path, for_max_s=150)
    original = yaml.safe_load(RULE_FILES[0].read_text())
    rendered = yaml.safe_load(written.read_text())
    for before, after in zip(original["groups"], rendered["groups"], strict=True):
        for rule, copy in zip(before["rules"], after["rules"], strict=True):
            assert parse_duration(copy["for"]) == min(parse_duration(rule["for"]), 150)
            assert {k: v for k, v in copy.items() if k != "for"} == {k: v for k, v in rule.items() if k != "for"}


def test_the_monitor_principal_is_added_once_and_keeps_the_operator(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path)
    first = ensure_webhook_principal(settings)
    assert ensure_webhook_principal(settings) == first
    table = yaml.safe_load((settings.secrets_dir / "fraudops_monitor_tokens").read_text())
    assert set(table) == {"operator", "alertmanager"}
    assert table["alertmanager"] == first != table["operator"]


@pytest.mark.parametrize(("text", "seconds"), [("5m", 300), ("1h30m", 5400), ("1500ms", 1.5), ("2s", 2)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_durations_are_refused() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration("5 minutes")
