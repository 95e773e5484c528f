"""The demo's hands on the running stack: the services' HTTP APIs, their metrics, Prometheus and Airflow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from fraudops.airflow_api import FINISHED_RUN_STATES, AirflowClient
from fraudops.errors import DependencyUnavailableError
from fraudops.stack.airflow import airflow_password
from fraudops.stack.components import operator_token
from fraudops.stack.stack import Stack

MODEL_NAME = "fraud-detector"
SERVICES = ("ingest", "trainer", "scorer", "monitor", "registry-gateway")


class StageFailed(Exception):
    """A stage of the demo did not reach its outcome; the message says which and why."""


@dataclass(frozen=True)
class Sample:
    """One metric family's samples: labels → value."""

    values: dict[tuple[tuple[str, str], ...], float]

    def total(self, **labels: str) -> float:
        wanted = set(labels.items())
        return sum(v for key, v in self.values.items() if wanted <= set(key))


def parse_metrics(text: str) -> dict[str, Sample]:
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return {name: Sample(values) for name, values in samples.items()}


def histogram_quantile(buckets: Mapping[float, float], quantile: float) -> float:
    """Prometheus' estimate from cumulative bucket counts: linear within the bucket the rank falls in."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return float("nan")
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / span if span else 0.0)
        lower_bound, lower_count = bound, count
    return bounds[-1]


def latency_buckets(metrics: Mapping[str, Sample], name: str) -> dict[float, float]:
    sample = metrics.get(f"{name}_bucket")
    if sample is None:
        return {}
    return {float(dict(key)["le"]): value for key, value in sample.values.items()}


class StackClients:
    """Authenticated clients of the five services (operator tokens of the local stack)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.settings = stack.settings
        self.urls = {name: stack.component(name).url for name in SERVICES}
        self._clients = {
            name: httpx.Client(
                base_url=self.urls[name],
                headers={"Authorization": f"Bearer {operator_token(self.settings, name)}"},
                timeout=120,
            )
            for name in SERVICES
        }

    def __getitem__(self, service: str) -> httpx.Client:
        return self._clients[service]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def call(self, service: str, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        try:
            response = self._clients[service].request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StageFailed(f"{service} is unreachable at {self.urls[service]}: {exc}") from exc
        if response.status_code != expected:
            raise StageFailed(f"{service} {method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait_status(
        self,
        service: str,
        path: str,
        done: set[str],
        timeout_s: float,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            body: dict[str, Any] = self.call(service, "GET", path, 200)
            if on_poll is not None:
                on_poll(body)
            if body["status"] in done:
                return body
            if time.monotonic() > deadline:
                raise StageFailed(f"{service} {path} still {body['status']} after {timeout_s:.0f} s")
            time.sleep(1)

    def metrics(self, service: str) -> dict[str, Sample]:
        response = httpx.get(f"{self.urls[service]}/metrics", timeout=30)
        response.raise_for_status()
        return parse_metrics(response.text)

    # ------------------------------------------------------------------------------------------ registry

    def model(self) -> dict[str, Any]:
        response = self["registry-gateway"].get(f"/v1/models/{MODEL_NAME}")
        if response.status_code == 404:
            return {"champion": None, "versions": []}
        if response.status_code != 200:
            raise StageFailed(f"registry gateway: {response.status_code} {response.text[:500]}")
        model: dict[str, Any] = response.json()
        return model

    def champion(self) -> str | None:
        champion = self.model()["champion"]
        return str(champion) if champion is not None else None

    def version(self, version: str) -> dict[str, Any]:
        for view in self.model()["versions"]:
            if view["version"] == version:
                return dict(view)
        raise StageFailed(f"version {version} of {MODEL_NAME} is not in the registry")

    def serving_version(self) -> str | None:
        """The champion version the scorer is serving now (None while it scores with the rules)."""
        info = self.metrics("scorer").get("fraud_scorer_model_info")
        if info is None:
            return None
        for key, value in info.values.items():
            labels = dict(key)
            if value == 1 and labels.get("role") == "champion" and labels.get("model_name") == MODEL_NAME:
                return labels.get("model_version")
        return None

    # ------------------------------------------------------------------------------------------ prometheus

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        if not self.stack.prometheus.process.running():
            return []
        try:
            response = httpx.get(f"{self.stack.prometheus.url}/api/v1/alerts", timeout=10)
        except httpx.HTTPError:
            return []
        alerts: list[dict[str, Any]] = response.json()["data"]["alerts"] if response.status_code == 200 else []
        return alerts


class AirflowRuns:
    """Trigger DAG runs through Airflow's REST API (as the stack's admin) and wait for them to finish."""

    def __init__(self, stack: Stack) -> None:
        self.url = stack.airflow.url
        self.client = AirflowClient(
            self.url, "admin", SecretStr(airflow_password(stack.settings, "admin")), timeout_s=60
        )

    def run(
        self,
        dag_id: str,
        run_id: str,
        conf: dict[str, Any],
        timeout_s: float,
        on_poll: Callable[[str, dict[str, str]], None],
    ) -> str:
        """Trigger `dag_id` and wait; return the run's final state."""
        asyncio.run(self.client.trigger(dag_id, run_id, conf))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                run = asyncio.run(self.client.run_state(dag_id, run_id))
            except DependencyUnavailableError:
                time.sleep(3)  # the API server restarts a worker now and then; the run goes on
                continue
            on_poll(run.state, run.tasks)
            if run.state in FINISHED_RUN_STATES:
                return run.state
            time.sleep(3)
        raise StageFailed(f"Airflow run {dag_id}/{run_id} did not finish within {timeout_s:.0f} s")
