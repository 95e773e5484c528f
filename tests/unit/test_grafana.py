"""Grafana's provisioning, checked statically (no Grafana binary here): data source, dashboards, alert rules.

The integration tier sends every query to a real Prometheus (tests/integration/test_observability.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.observability import (
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    dashboard_panels,
    dashboards,
    grafana_alert_rules,
    known_metric_names,
    metric_names,
)

PROVISIONING = GRAFANA_DIR / "provisioning"
DATASOURCE_UID = "prometheus"
# What the dashboard must show (issue #7), by a metric that the panel showing it queries.
REQUIRED_VIEWS = {
    "throughput": "fraud_scorer_messages_in_total",
    "latency percentiles": "fraud_scorer_kafka_to_publish_latency_seconds_bucket",
    "decisions": "fraud_scorer_decisions_total",
    "fraud rate": "fraud_live_fraud_rate",
    "score distribution": "fraud_monitor_score_ratio_bucket",
    "drift per feature": "fraud_feature_drift_score",
    "live average precision": "fraud_live_average_precision",
    "model version": "fraud_scorer_model_info",
    "consumer lag": "fraud_scorer_consumer_lag_messages",
    "dead letters": "fraud_scorer_dead_letters_total",
}
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def prometheus_rules() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    }


def test_every_provisioning_file_parses_with_api_version_1() -> None:
    files = sorted(PROVISIONING.glob("*/*.yml"))
    assert {path.parent.name for path in files} == {"datasources", "dashboards", "alerting"}
    for path in files:
        assert load_yaml(path)["apiVersion"] == 1, path


def test_the_prometheus_data_source_has_the_uid_panels_use() -> None:
    (source,) = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090", "the compose service"
    assert source["isDefault"] is True


def test_the_dashboard_provider_reads_the_committed_dashboards_read_only() -> None:
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "fraudops.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    compose = load_yaml(GRAFANA_DIR.parents[1] / "docker-compose.yml")
    mounts = dict(mount.split(":")[:2] for mount in compose["services"]["grafana"]["volumes"])
    assert mounts["./infrastructure/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./infrastructure/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_dashboards_are_valid_with_unique_uids_and_panel_ids() -> None:
    found = dashboards()
    assert found
    uids = [dashboard["uid"] for dashboard in found.values()]
    assert len(set(uids)) == len(uids)
    for name, dashboard in found.items():
        assert dashboard["title"], name
        assert dashboard["schemaVersion"] >= 36, name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']} overflows the grid"


@pytest.mark.parametrize("panel", [panel for _, panel in dashboard_panels()], ids=lambda panel: str(panel["title"]))
def test_every_panel_has_a_datasource_and_queries_known_metrics(panel: dict[str, Any]) -> None:
    assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
    assert panel["targets"], f"{panel['title']} has no query"
    known = known_metric_names()
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == DATASOURCE_UID
        assert target["expr"].strip()
        names = metric_names(target["expr"])
        assert names, f"{target['expr']} selects no metric"
        assert names <= known, f"{panel['title']}: unknown metrics {names - known}"
    if panel["type"] == "heatmap":
        assert all(t.get("format") == "heatmap" and "_bucket" in t["expr"] for t in panel["targets"])


def test_the_dashboard_shows_everything_the_issue_asks_for() -> None:
    queried = {name for _, panel in dashboard_panels() for t in panel["targets"] for name in metric_names(t["expr"])}
    missing = {view: metric for view, metric in REQUIRED_VIEWS.items() if metric not in queried}
    assert not missing


def test_metric_names_are_read_from_queries() -> None:
    """The checker itself: labels, functions and grouping are not taken for metrics, a typo is caught."""
    expr = 'histogram_quantile(0.9, sum by (le, job) (rate(fraud_scorer_x_bucket{job="scorer"}[5m]))) / on() up'
    assert metric_names(expr) == {"fraud_scorer_x_bucket", "up"}
    assert "fraud_scorer_mesages_in_total" not in known_metric_names()


def test_grafana_alert_rules_mirror_the_prometheus_rules() -> None:
    prometheus = prometheus_rules()
    grafana = {rule["title"]: rule for rule in grafana_alert_rules()}
    assert set(grafana) == set(prometheus)
    uids = [rule["uid"] for rule in grafana.values()]
    assert len(set(uids)) == len(uids)
    assert all(len(uid) <= 40 for uid in uids), "Grafana's limit on a rule uid"
    for name, rule in grafana.items():
        source = prometheus[name]
        assert rule["for"] == source["for"], name
        assert rule["labels"] == source["labels"], name
        assert set(rule["annotations"]) == set(source["annotations"]), name
        # Same thresholds: every number of the condition appears in the Prometheus expression.
        condition = next(item for item in rule["data"] if item["refId"] == rule["condition"])
        thresholds = set(NUMBER.findall(condition["model"]["expression"]))
        assert thresholds <= set(NUMBER.findall(source["expr"])), f"{name}: {thresholds}"
        # Same metrics queried.
        queried = set().union(
            *(metric_names(item["model"]["expr"]) for item in rule["data"] if item["datasourceUid"] != "__expr__")
        )
        assert queried == metric_names(source["expr"]), name


@pytest.mark.parametrize("rule", grafana_alert_rules(), ids=lambda rule: str(rule["title"]))
def test_grafana_alert_rules_are_well_formed(rule: dict[str, Any]) -> None:
    refs = {item["refId"] for item in rule["data"]}
    assert rule["condition"] in refs
    assert rule["noDataState"] == "OK", "monitor metrics absent (no model yet) is not an alert"
    for item in rule["data"]:
        assert item["datasourceUid"] in {DATASOURCE_UID, "__expr__"}
        model = item["model"]
        assert model["refId"] == item["refId"]
        if item["datasourceUid"] == "__expr__":
            assert model["type"] in {"reduce", "math", "threshold"}
            referenced = set(re.findall(r"\$(\w+)", model["expression"])) or {model["expression"]}
            assert referenced <= refs - {item["refId"]}, f"{rule['title']}: {model['expression']}"
        else:
            assert model["instant"] is True
            assert item["relativeTimeRange"]["from"] > 0


def test_the_dashboard_json_is_stable_formatting() -> None:
    """Committed as `json.dumps(indent=2)` so diffs stay reviewable."""
    for path in sorted(GRAFANA_DIR.glob("dashboards/*.json")):
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2) + "\n", path.name
