"""Prometheus and Alertmanager for tests: started on free ports beside a running stack (or alone, with given
targets), Prometheus' HTTP API, waiting for an alert, a webhook receiver that records what it is sent, and
the metric names dashboards and rules may use."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from fraudops.paths import repo_root
from fraudops.stack.config import StackSettings
from fraudops.stack.observability import AlertmanagerServer, PrometheusServer, observability_installed
from tests.support.ports import free_port
from tests.support.stack import RunningStack

ROOT = repo_root() or Path.cwd()
PROMETHEUS_DIR = ROOT / "infrastructure" / "prometheus"
ALERTMANAGER_CONFIG = ROOT / "infrastructure" / "alertmanager" / "alertmanager.yml"
GRAFANA_DIR = ROOT / "infrastructure" / "grafana"

# prometheus-fastapi-instrumentator's default metrics under the platform's "fraud" namespace.
HTTP_METRICS = frozenset(
    {
        "fraud_http_requests_total",
        "fraud_http_request_size_bytes",
        "fraud_http_response_size_bytes",
        "fraud_http_request_duration_highr_seconds",
    }
)
HTTP_HISTOGRAMS = frozenset({"fraud_http_request_duration_seconds"})
# Series Prometheus makes for every target.
SCRAPE_SERIES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


def _with_histogram_series(names: frozenset[str]) -> set[str]:
    return {f"{name}{suffix}" for name in names for suffix in ("_bucket", "_sum", "_count")}


def _sample_names(metrics_class: Callable[[CollectorRegistry], object]) -> set[str]:
    """Every sample name a service's domain metrics export, read from the real collectors."""
    registry = CollectorRegistry()
    metrics_class(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(_with_histogram_series(frozenset({family.name})))
    return names


def scorer_metric_names() -> set[str]:
    from fraudops_scorer.metrics import ScorerMetrics

    return _sample_names(ScorerMetrics)


def monitor_metric_names() -> set[str]:
    from fraudops_monitor.metrics import MonitorMetrics

    return _sample_names(MonitorMetrics)


def known_metric_names() -> set[str]:
    """Names a dashboard or rule may use: the monitor's, the scorer's and every service's metrics."""
    return (
        monitor_metric_names()
        | set(HTTP_METRICS)
        | _with_histogram_series(HTTP_HISTOGRAMS)
        | {"fraud_http_rejected_requests_total", "fraud_service_info"}
        | set(SCRAPE_SERIES)
        | scorer_metric_names()
    )


def required_tool(name: str) -> str:
    """A Prometheus tool's path; in CI (which installs the Debian packages) a missing one fails the test."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found: apt-get install prometheus prometheus-alertmanager"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI installs it with infrastructure/ci/install-system-packages.sh)")
        pytest.skip(message)
    return path


def require_observability() -> None:
    """Skip (locally) or fail (in CI) when the Prometheus and Alertmanager binaries are missing."""
    if not observability_installed():
        required_tool("prometheus")
        required_tool("alertmanager" if shutil.which("alertmanager") else "prometheus-alertmanager")


class PrometheusQueryError(AssertionError):
    """Prometheus refused a query; the message carries its error."""


@dataclass
class Observability:
    """A started Prometheus (and Alertmanager) with helpers over their HTTP APIs."""

    settings: StackSettings
    prometheus: PrometheusServer
    alertmanager: AlertmanagerServer | None
    started_s: float = 0.0

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url

    @property
    def alertmanager_url(self) -> str:
        assert self.alertmanager is not None, "started without Alertmanager"
        return self.alertmanager.url

    def api(self, path: str, **params: str) -> Any:
        """GET Prometheus' /api/v1/<path>; returns `data`, raises PrometheusQueryError on an error status."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusQueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (an empty list when no series match)."""
        data = self.api("query", query=promql)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [data]
        return result

    def targets(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return found

    def rule_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.api("rules")["groups"]
        return groups

    def alerts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return found

    def wait_for_targets_up(self, jobs: Sequence[str], timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
        """Wait until every job has been scraped successfully; returns the targets by job."""
        deadline = time.monotonic() + timeout_s
        by_job: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            by_job = {target["labels"]["job"]: target for target in self.targets()}
            if all(by_job.get(job, {}).get("health") == "up" for job in jobs):
                return by_job
            time.sleep(0.25)
        states = {job: (by_job.get(job, {}).get("health"), by_job.get(job, {}).get("lastError")) for job in jobs}
        raise AssertionError(f"targets not up after {timeout_s} s: {states}")

    def wait_for_alert(self, alertname: str, state: str = "firing", timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until Prometheus reports the alert in `state` (pending or firing); returns it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for alert in self.alerts():
                if alert["labels"].get("alertname") == alertname and alert["state"] == state:
                    return alert
            time.sleep(0.25)
        raise AssertionError(f"{alertname} not {state} after {timeout_s} s; alerts: {self.alerts()}")

    def stop(self) -> None:
        self.prometheus.stop()
        if self.alertmanager is not None:
            self.alertmanager.stop()


def observability_settings(
    base: StackSettings,
    *,
    interval_s: float = 1.0,
    alert_for_max_s: float | None = None,
    group_wait_s: float = 0.5,
    group_interval_s: float = 1.0,
) -> StackSettings:
    """`base` with Prometheus and Alertmanager on free ports and short timers."""
    return base.model_copy(
        update={
            "prometheus_port": free_port(),
            "alertmanager_port": free_port(),
            "prometheus_interval_s": interval_s,
            "alert_for_max_s": alert_for_max_s,
            "alertmanager_group_wait_s": group_wait_s,
            "alertmanager_group_interval_s": group_interval_s,
        }
    )


@contextmanager
def observability(
    settings: StackSettings,
    home: Path,
    *,
    targets: Mapping[str, str] | None = None,
    rule_files: Sequence[Path] | None = None,
    webhook_url: str | None = None,
    with_alertmanager: bool = True,
) -> Iterator[Observability]:
    """Start Alertmanager (webhook to `webhook_url`, default the monitor's /v1/alerts) and Prometheus
    (scraping `targets`, default the stack's services, with `rule_files`, default the fraud rules),
    each in its own folder under `home`; stop both afterwards.

    `settings` decides ports, intervals and the token: use `observability_settings(...)`.
    """
    require_observability()
    alertmanager = (
        AlertmanagerServer(settings, webhook_url=webhook_url, home=home / "alertmanager") if with_alertmanager else None
    )
    prometheus = PrometheusServer(
        settings,
        targets=targets,
        rule_files=rule_files,
        alertmanager=alertmanager.address if alertmanager is not None else None,
        home=home / "prometheus",
    )
    started = Observability(settings, prometheus, alertmanager)
    begin = time.perf_counter()
    try:
        if alertmanager is not None:
            alertmanager.start()
        prometheus.start()
        started.started_s = time.perf_counter() - begin
        yield started
    finally:
        started.stop()


@contextmanager
def stack_observability(
    stack: RunningStack,
    home: Path,
    *,
    interval_s: float = 1.0,
    alert_for_max_s: float | None = None,
    rule_files: Sequence[Path] | None = None,
    webhook_url: str | None = None,
) -> Iterator[Observability]:
    """Prometheus scraping a running stack's five services, Alertmanager posting to its monitor's
    /v1/alerts with the monitor's `alertmanager` token (or to `webhook_url`)."""
    settings = observability_settings(stack.settings, interval_s=interval_s, alert_for_max_s=alert_for_max_s)
    with observability(settings, home, rule_files=rule_files, webhook_url=webhook_url) as started:
        yield started


@dataclass
class Notification:
    """One webhook call: its headers and JSON body (Alertmanager's webhook payload, version 4)."""

    headers: dict[str, str]
    body: dict[str, Any]
    received_s: float


@dataclass
class WebhookRecorder:
    """An HTTP server on 127.0.0.1 that answers 200 to every POST and keeps what it received."""

    notifications: list[Notification] = field(default_factory=list)
    port: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/alerts"

    def record(self, headers: dict[str, str], body: dict[str, Any]) -> None:
        with self._lock:
            self.notifications.append(Notification(headers, body, time.monotonic()))
            self._lock.notify_all()

    def wait_for(self, predicate: Callable[[Notification], bool], timeout_s: float = 60.0) -> Notification:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for notification in self.notifications:
                    if predicate(notification):
                        return notification
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    bodies = [n.body for n in self.notifications]
                    raise AssertionError(f"no matching notification after {timeout_s} s; received: {bodies}")
                self._lock.wait(remaining)


@contextmanager
def webhook_recorder() -> Iterator[WebhookRecorder]:
    recorder = WebhookRecorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            payload = self.rfile.read(length)
            recorder.record({k.lower(): v for k, v in self.headers.items()}, json.loads(payload or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what was recorded."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-recorder", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# PromQL words that are not metric names: functions (followed by "("), aggregation and binary keywords.
_PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}
)
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, ranges, grouping and functions removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group() in _PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


def as_prometheus_query(expr: str) -> str:
    """A Grafana panel's PromQL with Grafana's own variables replaced, as Grafana would send it."""
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(GRAFANA_DIR.glob("dashboards/*.json"))
    }


def dashboard_panels() -> list[tuple[str, dict[str, Any]]]:
    """(dashboard file, panel) for every panel that shows data (rows excluded, nested ones included)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name, dashboard in dashboards().items():
        for panel in dashboard["panels"]:
            for inner in [panel, *panel.get("panels", [])]:
                if inner["type"] != "row":
                    found.append((name, inner))
    return found


def grafana_alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in sorted(GRAFANA_DIR.glob("provisioning/alerting/*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def grafana_queries() -> list[str]:
    """Every PromQL expression Grafana sends: panel targets and alert rule queries, variables replaced."""
    queries = [target["expr"] for _, panel in dashboard_panels() for target in panel["targets"]]
    queries += [
        item["model"]["expr"]
        for rule in grafana_alert_rules()
        for item in rule["data"]
        if item["datasourceUid"] != "__expr__"
    ]
    return [as_prometheus_query(query) for query in queries]
