"""Every service's write endpoints answer bad input with a 4xx that names the reason, never a 5xx, and count it.

The apps run with their real startup, against dependencies that are down (Kafka and MLflow on a closed port,
SQLite in a temporary folder): the services start while their dependencies are down, and no request here
gets far enough to need one.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute

from fraudops.auth import RequireAction
from fraudops.contracts.openapi import SERVICE_APPS
from fraudops.paths import contracts_dir
from fraudops.settings import ServiceSettings

CLOSED_PORT = "127.0.0.1:9"
# Distinct per service and principal, so a token that works somewhere else is recognisable.
TOKENS = {
    service: {"operator": f"Op{index}x7Kq2mZr9Lw4Tn6Vb3", "reader": f"Rd{index}y5Jh8pXc1Gf7Sd2Qa9"}
    for index, service in enumerate(SERVICE_APPS)
}
# One write endpoint per service, with a body the endpoint would otherwise read.
WRITE = {
    "ingest": "/v1/transactions",
    "trainer": "/v1/training-jobs",
    "scorer": "/v1/score",
    "monitor": "/v1/alerts",
    "registry-gateway": "/v1/models/fraud-detector/versions/1/promote",
}
TRANSACTION = {
    "transaction_id": "tx-1",
    "event_time": "2024-05-01T12:00:00Z",
    "customer_id": "c-1",
    "terminal_id": "t-1",
    "amount": 12.5,
}


def _module(service: str, name: str) -> Any:
    return importlib.import_module(f"fraudops_{service.replace('-', '_')}.{name}")


def _settings(service: str, tmp: Path, **extra: Any) -> ServiceSettings:
    module = _module(service, "settings")
    cls = next(
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value.service_name == service
    )
    fields = cls.model_fields
    values: dict[str, Any] = {
        "tokens": TOKENS[service],
        "scopes": {"operator": ["*"], "reader": []},
        **extra,
    }
    if "database_url" in fields:
        values["database_url"] = f"sqlite:///{tmp / 'service.db'}"
    if "kafka" in fields:
        values["kafka"] = {"bootstrap_servers": CLOSED_PORT, "request_timeout_ms": 1000}
    if "mlflow_tracking_uri" in fields:
        values["mlflow_tracking_uri"] = f"http://{CLOSED_PORT}"
    if "mlflow_request_retries" in fields:
        values["mlflow_request_retries"] = 0
    if "data_dir" in fields:
        values["data_dir"] = tmp / "data"
    if "staging_dir" in fields:
        values["staging_dir"] = str(tmp / "staging")
        values["datasets_uri"] = (tmp / "datasets").as_uri()
    if "ingest_url" in fields:
        values["ingest_url"] = f"http://{CLOSED_PORT}"
    if "consume" in fields:
        values["consume"] = False
    return cls(**values)


def _app(service: str) -> FastAPI:
    app: FastAPI = _module(service, "main").app
    return app


@pytest.fixture(scope="module", params=list(SERVICE_APPS))
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    service: str = request.param
    app = _app(service)
    app.state.settings = _settings(service, tmp_path_factory.mktemp(service))
    try:
        with TestClient(app, base_url="http://127.0.0.1") as started:
            started.headers["Authorization"] = f"Bearer {TOKENS[service]['operator']}"
            started.service = service  # the parametrised service, for the tests
            yield started
    finally:
        del app.state.settings


def _service(client: TestClient) -> str:
    service: str = client.service
    return service


def _rejections(client: TestClient) -> dict[str, float]:
    text = client.get("/metrics").text
    found = re.findall(r'^fraud_http_rejected_requests_total\{reason="([a-z_]+)"\} ([0-9.e+]+)$', text, re.M)
    return {reason: float(value) for reason, value in found}


def _post(client: TestClient, content: bytes | str, content_type: str = "application/json", **kw: Any) -> Any:
    path = kw.pop("path", WRITE[_service(client)])
    headers = {"content-type": content_type, **kw.pop("headers", {})}
    return client.post(path, content=content, headers=headers, **kw)


def _refused(response: httpx.Response, status: int, error: str, detail: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    assert detail in body["detail"], body


def _counted(client: TestClient, reason: str, before: dict[str, float]) -> None:
    assert _rejections(client).get(reason, 0) == before.get(reason, 0) + 1, reason


def test_oversize_body_is_413_before_it_is_read(client: TestClient) -> None:
    before = _rejections(client)
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    response = _post(client, b"[" + b"0," * (limit // 2) + b"0]")
    _refused(response, 413, "payload_too_large", str(limit))
    _counted(client, "payload_too_large", before)


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than 32"),
        ("{", "not valid JSON"),
        (b'{"note": "\xff"}', "not UTF-8"),
        ('{"amount": NaN}', "NaN is not JSON"),
        ('{"amount": -Infinity}', "-Infinity is not JSON"),
        ('{"note": "\\ud800"}', "lone UTF-16 surrogate"),
        ('{"note": "a\\u0000b"}', "NUL"),
    ],
    ids=["deep-array", "deep-object", "truncated", "not-utf8", "nan-literal", "infinity", "surrogate", "nul"],
)
def test_unreadable_json_is_422_with_the_reason(client: TestClient, content: str | bytes, detail: str) -> None:
    before = _rejections(client)
    _refused(_post(client, content), 422, "invalid_input", detail)
    _counted(client, "invalid_input", before)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type_is_415(client: TestClient, content_type: str) -> None:
    before = _rejections(client)
    _refused(_post(client, '{"a": 1}', content_type), 415, "unsupported_media_type", "application/json")
    _counted(client, "unsupported_media_type", before)


def test_unknown_route_and_method_are_counted_in_the_platforms_shape(client: TestClient) -> None:
    before = _rejections(client)
    _refused(client.get("/v1/no-such-thing"), 404, "not_found")
    _counted(client, "not_found", before)
    _refused(client.put(WRITE[_service(client)], json={}), 405, "method_not_allowed")
    _counted(client, "method_not_allowed", before)


def test_a_token_of_another_service_is_refused(client: TestClient) -> None:
    before = _rejections(client)
    for other, tokens in TOKENS.items():
        if other == _service(client):
            continue
        response = _post(client, "{}", headers={"Authorization": f"Bearer {tokens['operator']}"})
        _refused(response, 401, "unauthorized", "invalid bearer token")
        assert tokens["operator"] not in response.text
    assert _rejections(client)["unauthorized"] == before.get("unauthorized", 0) + len(TOKENS) - 1


def test_a_principal_without_the_action_in_its_scopes_is_403(client: TestClient) -> None:
    before = _rejections(client)
    reader = TOKENS[_service(client)]["reader"]
    response = client.post(WRITE[_service(client)], json={}, headers={"Authorization": f"Bearer {reader}"})
    _refused(response, 403, "forbidden", "principal 'reader' may not ")
    assert "its scopes: none" in response.json()["detail"]
    assert reader not in response.text
    _counted(client, "forbidden", before)


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI keeps included routers whole
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_write_endpoint_checks_an_action_the_settings_know(client: TestClient) -> None:
    app = client.app
    assert isinstance(app, FastAPI)
    used = set()
    for route in _api_routes(app.routes):
        if (route.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}:
            actions = {d.call.action for d in route.dependant.dependencies if isinstance(d.call, RequireAction)}
            assert len(actions) == 1, (route.path, route.methods)
            used |= actions
    assert used == set(app.state.settings.actions)


# Per service: a body that is well-formed JSON but breaks the contract with a strange id, amount or time.
BAD_VALUES: dict[str, list[tuple[str, Any]]] = {
    "ingest": [
        ("/v1/transactions", {**TRANSACTION, "transaction_id": "tx-é"}),
        ("/v1/transactions", {**TRANSACTION, "transaction_id": "tx\u200b1"}),
        ("/v1/transactions", {**TRANSACTION, "customer_id": "\uff11\uff12"}),
        ("/v1/transactions", {**TRANSACTION, "terminal_id": "t-1\n"}),
        ("/v1/transactions", {**TRANSACTION, "transaction_id": "\u202etx"}),
        ("/v1/transactions", {**TRANSACTION, "amount": -5}),
        ("/v1/transactions", {**TRANSACTION, "amount": "NaN"}),
        ("/v1/transactions", {**TRANSACTION, "amount": 1e7}),
        ("/v1/transactions", {**TRANSACTION, "event_time": "0001-01-01T00:00:00Z"}),
        ("/v1/transactions", {**TRANSACTION, "event_time": "9999-12-31T23:59:59Z"}),
        ("/v1/transactions", {**TRANSACTION, "event_time": "1970-01-01T00:00:00Z"}),
        (
            "/v1/labels",
            {"transaction_id": "tx-1", "is_fraud": True, "source": "ANALYST", "known_at": "9999-01-01T00:00:00Z"},
        ),
        (
            "/v1/labels",
            {"transaction_id": "tx-ü", "is_fraud": True, "source": "ANALYST", "known_at": "2024-05-01T00:00:00Z"},
        ),
        ("/v1/datasets/from-stream", {"start": "0001-01-01T00:00:00Z", "end": "9999-12-31T00:00:00Z"}),
        ("/v1/datasets/simulated", {"customers": -1}),
        ("/v1/datasets/simulated", {"name": "naïve"}),
    ],
    "trainer": [
        ("/v1/training-jobs", {"dataset_id": "ds-ééééééééééééééééééééé"}),
        ("/v1/training-jobs", {"dataset_id": "ds-00000000000000000000", "model": {"learning_rate": "NaN"}}),
        ("/v1/training-jobs", {"dataset_id": "ds-00000000000000000000", "model": {"n_estimators": -1}}),
    ],
    "scorer": [
        ("/v1/score", {**TRANSACTION, "transaction_id": "tx-é"}),
        ("/v1/score", {**TRANSACTION, "amount": -5}),
        ("/v1/score", {**TRANSACTION, "amount": "NaN"}),
        ("/v1/score", {**TRANSACTION, "amount": 0}),
        ("/v1/score", {**TRANSACTION, "event_time": "0001-01-01T00:00:00Z"}),
        ("/v1/score", {**TRANSACTION, "event_time": "9999-12-31T23:59:59Z"}),
        ("/v1/score", {**TRANSACTION, "event_time": "2024-05-01T12:00:00"}),
        ("/v1/score", {"transactions": []}),
    ],
    "monitor": [
        ("/v1/alerts", {"status": "firing", "alerts": []}),
        (
            "/v1/alerts",
            {
                "status": "firing",
                "alerts": [{"status": "firing", "labels": {"a": "x" * 5000}, "startsAt": "2024-05-01T00:00:00Z"}],
            },
        ),
        ("/v1/alerts", {"status": "firing", "alerts": [{"status": "firing", "labels": {}, "startsAt": "not a time"}]}),
        ("/v1/actions/20240501T000000Z-0000000é/outcome", {"outcome": "succeeded"}),
        ("/v1/reports", {"reason": ""}),
        ("/v1/reports", {"reason": "x" * 1001}),
    ],
    "registry-gateway": [
        ("/v1/models/fraud-detector/versions/1/promote", {"target": "champion", "reason": ""}),
        ("/v1/models/fraud-detector/versions/1/promote", {"target": "king", "reason": "why"}),
        ("/v1/models/fraud-détecteur/versions/1/promote", {"target": "champion", "reason": "why"}),
        ("/v1/models/fraud-detector/versions/-1/promote", {"target": "champion", "reason": "why"}),
        ("/v1/models/fraud-detector/versions/１/promote", {"target": "champion", "reason": "why"}),
        ("/v1/models/fraud-detector/rollback", {"reason": "x" * 1001}),
        ("/v1/models/fraud-detector/fallback", {"enabled": "maybe", "reason": "why"}),
    ],
}


def test_contract_breaking_values_are_4xx_with_the_field_named(client: TestClient) -> None:
    for path, body in BAD_VALUES[_service(client)]:
        response = client.post(path, json=body)
        assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text)
        text = response.text
        assert ("reasons" in text and "rejected" in text) or response.json()["detail"], (path, text)


def test_amounts_and_times_at_the_bounds_name_the_field() -> None:
    # The contract itself, as every entry point and the Kafka decoder read it.
    from pydantic import ValidationError

    from fraudops.contracts.messages import Transaction

    changes: list[tuple[dict[str, Any], str]] = [
        ({"amount": math.nan}, "amount"),
        ({"amount": -0.01}, "amount"),
        ({"amount": math.inf}, "amount"),
        ({"event_time": "1999-12-31T23:59:59Z"}, "event_time"),
        ({"event_time": "2100-01-01T00:00:00Z"}, "event_time"),
    ]
    for change, field in changes:
        with pytest.raises(ValidationError) as refused:
            Transaction.model_validate({**TRANSACTION, **change})
        assert refused.value.errors()[0]["loc"] == (field,)
    assert Transaction.model_validate({**TRANSACTION, "event_time": "2099-12-31T23:59:59Z"}).amount == 12.5


def test_openapi_and_errors_never_show_a_token(client: TestClient) -> None:
    tokens = TOKENS[_service(client)].values()
    document = client.get("/openapi.json").text
    committed = (contracts_dir() / "openapi" / f"{_service(client)}.json").read_text(encoding="utf-8")
    for token in tokens:
        assert token not in document
        assert token not in committed


async def _trickle() -> AsyncIterator[bytes]:
    yield b'{"transactions": ['
    await asyncio.sleep(30)
    yield b"]}"


async def test_a_request_slower_than_the_timeout_is_504(tmp_path: Path) -> None:
    app = _app("trainer")
    app.state.settings = _settings("trainer", tmp_path, request_timeout_s=0.3)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as slow:
            headers = {"Authorization": f"Bearer {TOKENS['trainer']['operator']}", "content-type": "application/json"}
            response = await asyncio.wait_for(
                slow.post("/v1/training-jobs", content=_trickle(), headers=headers), timeout=10
            )
            _refused(response, 504, "request_timeout", "0.3 s")
            metrics = (await slow.get("/metrics")).text
    finally:
        del app.state.settings
    assert 'fraud_http_rejected_requests_total{reason="request_timeout"} 1.0' in metrics


def test_the_scorer_lets_openmp_threads_sleep_unless_told_otherwise() -> None:
    """libgomp reads OMP_WAIT_POLICY when XGBoost loads: importing the scorer's package sets it first."""
    probe = "import fraudops_scorer, os, sys, xgboost; print(os.environ['OMP_WAIT_POLICY'])"
    environment = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    found = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "PASSIVE"
    kept = subprocess.run(
        [sys.executable, "-c", probe], env={**environment, "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True
    )
    assert kept.stdout.strip() == "ACTIVE"
