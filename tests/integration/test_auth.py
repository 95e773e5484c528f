"""Every write endpoint of every running service refuses requests without a valid token for that service."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration

SERVICES = ("ingest", "trainer", "scorer", "monitor", "registry-gateway")
WRITE_METHODS = {"post", "put", "patch", "delete"}


def _write_operations(stack: RunningStack, service: str) -> list[tuple[str, str]]:
    document = httpx.get(stack.url(service) + "/openapi.json", timeout=10).json()
    operations = []
    for path, item in document["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        operations += [(method.upper(), concrete) for method in item if method in WRITE_METHODS]
    return operations


def test_write_endpoints_require_the_services_own_token(running_stack: RunningStack) -> None:
    checked = 0
    for service in SERVICES:
        other = next(s for s in SERVICES if s != service)
        foreign_token = running_stack.token(other)
        for method, path in _write_operations(running_stack, service):
            url = running_stack.url(service) + path
            missing = httpx.request(method, url, json={}, timeout=10)
            assert missing.status_code == 401, (service, method, path, missing.text)
            assert missing.headers["www-authenticate"] == "Bearer"
            for token in ("not-a-real-token", foreign_token):
                wrong = httpx.request(method, url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                assert wrong.status_code == 401, (service, method, path, wrong.text)
            checked += 1
    assert checked > 0, "no write endpoint found to check"


def test_health_and_metrics_stay_open(running_stack: RunningStack) -> None:
    for service in SERVICES:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(running_stack.url(service) + path, timeout=10).status_code == 200
