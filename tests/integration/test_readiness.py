"""/readyz follows the real dependencies: 503 with the reason while one is stopped, 200 once it is back."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration

KAFKA_DEPENDENTS = ("ingest", "scorer", "monitor", "registry-gateway")
MLFLOW_DEPENDENTS = ("trainer", "registry-gateway")


def _readiness(stack: RunningStack, service: str) -> httpx.Response:
    return httpx.get(stack.url(service) + "/readyz", timeout=15)


def _wait_for(stack: RunningStack, services: tuple[str, ...], code: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    pending = set(services)
    while pending and time.monotonic() < deadline:
        pending = {s for s in pending if _readiness(stack, s).status_code != code}
        if pending:
            time.sleep(0.5)
    assert not pending, f"{sorted(pending)} did not answer {code} on /readyz"


@pytest.mark.parametrize(
    ("component", "dependents", "reason"),
    [("kafka", KAFKA_DEPENDENTS, "Kafka"), ("mlflow", MLFLOW_DEPENDENTS, "/health")],
)
def test_readiness_follows_dependency(
    running_stack: RunningStack, component: str, dependents: tuple[str, ...], reason: str
) -> None:
    stack = running_stack.stack
    stack.component(component).stop()
    try:
        _wait_for(running_stack, dependents, 503)
        for service in dependents:
            body = _readiness(running_stack, service).json()
            assert body["status"] == "unavailable"
            failing = {name: detail for name, detail in body["checks"].items() if detail != "ok"}
            assert failing.keys() == {component}, body
            assert reason in failing[component]
        unaffected = {"ingest", "trainer", "scorer", "monitor", "registry-gateway"} - set(dependents)
        for service in unaffected:
            assert _readiness(running_stack, service).status_code == 200, service
    finally:
        stack.component(component).start()
    _wait_for(running_stack, dependents, 200)
