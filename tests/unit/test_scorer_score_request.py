"""POST /v1/score reads its body itself (`_ScoreRoute`): it must accept and refuse what FastAPI would."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fraudops_scorer.routes import ScoreRequest, _score_request

GOOD = {
    "transaction_id": "t-1",
    "event_time": "2018-05-01T12:00:00Z",
    "customer_id": "c-7",
    "terminal_id": "term-3",
    "amount": 5.0,
}


def _body(document: Any) -> bytes:
    return json.dumps(document).encode()


BODIES = [
    b"",
    _body(GOOD),
    _body({"transactions": [GOOD, {**GOOD, "transaction_id": "t-2"}]}),
    _body({**GOOD, "received_time": "2018-05-01T12:00:01+02:00", "currency": "USD"}),
    _body({**GOOD, "amount": 12}),
    _body({**GOOD, "amount": "12.5"}),
    _body({**GOOD, "event_time": 1525176000}),
    _body({}),
    _body([]),
    _body("x"),
    _body(None),
    _body({**GOOD, "amount": -1}),
    _body({**GOOD, "amount": "abc"}),
    _body({**GOOD, "event_time": "yesterday"}),
    _body({**GOOD, "customer_id": "bad id!"}),
    _body({**GOOD, "transaction_id": 5}),
    _body({**GOOD, "currency": "eur"}),
    _body({**GOOD, "extra": 1}),
    _body({"transactions": []}),
    _body({"transactions": GOOD}),
    _body({"transactions": [GOOD, {**GOOD, "amount": 0}]}),
]


@pytest.fixture(scope="module")
def fastapi_reading() -> TestClient:
    """FastAPI's own reading of the same declared body."""
    app = FastAPI()

    @app.post("/read")
    async def read(body: ScoreRequest) -> Any:
        return JSONResponse({"accepted": body.model_dump(mode="json")})

    @app.exception_handler(RequestValidationError)
    async def refused(request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"refused": _located(exc)}, status_code=422)

    return TestClient(app)


# Pydantic names a non-object where an object belongs after how it read it: from Python objects (FastAPI)
# "a valid dictionary or object to extract fields from", from JSON (the route) "an object". Same refusal.
_SAME_REFUSAL = {"model_attributes_type": "model_type"}


def _located(exc: RequestValidationError) -> list[list[Any]]:
    return [[*error["loc"], _SAME_REFUSAL.get(error["type"], error["type"])] for error in exc.errors()]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_a_body_is_accepted_or_refused_as_fastapi_would(fastapi_reading: TestClient, body: bytes) -> None:
    expected = fastapi_reading.post("/read", content=body, headers={"content-type": "application/json"}).json()
    try:
        ours: dict[str, Any] = {"accepted": _score_request(body).model_dump(mode="json")}
    except RequestValidationError as exc:
        ours = {"refused": _located(exc)}
    assert ours == expected
