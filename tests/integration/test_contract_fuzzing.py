"""Schemathesis against every service's committed OpenAPI document, the service running on the real stack.

Each operation gets positive and negative cases (examples, coverage and fuzzing phases, a bounded number per
operation, derandomized): no 5xx, status codes, content types, headers and bodies as documented, invalid input
refused, and operations that declare security refuse a missing or a wrong token.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from schemathesis.schemas import BaseSchema

from fraudops.paths import repo_root
from tests.support.postgres import fresh_database
from tests.support.stack import RunningStack, started_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ("ingest", "trainer", "scorer", "monitor", "registry-gateway")
# Enough for the boundaries and a spread of each body; more adds minutes, not findings (2 cores, shared).
MAX_EXAMPLES = 15
SEED = 20261130
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
]
# Every accepted body queues a simulation of up to 50,000 customers over two years in ingest's one dataset
# worker, which would hold up every later dataset job of the shared stack for hours: only invalid bodies
# are generated here, and test_the_smallest_simulation_is_accepted_as_documented sends one valid body.
NEGATIVE_ONLY = ["POST /v1/datasets/simulated"]
# Uploads take CSV or Parquet; schemathesis makes up CSV text itself, and Parquet only with a strategy.
schemathesis.openapi.media_type("application/vnd.apache.parquet", st.binary(min_size=1, max_size=512))
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "request-timeout": 60,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # The real token is sent with every request; generated ones would only be refused.
            "with-security-parameters": False,
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "operations": [{"include-name": name, "generation": {"mode": "negative"}} for name in NEGATIVE_ONLY],
    }
)


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory: pytest.TempPathFactory, postgres_admin_dsn: str) -> Iterator[RunningStack]:
    """A stack of its own: the fuzzer's valid cases promote and roll back models, switch the scorer to its
    fallback, post alerts whose actions run and write payments and labels, all of which would change what
    later tests find on the session's stack."""
    with (
        fresh_database(postgres_admin_dsn, "mlflow_fuzzed") as mlflow_backend,
        fresh_database(postgres_admin_dsn, "registry_gateway_fuzzed") as gateway_database,
        started_stack(tmp_path_factory.mktemp("fuzzed-stack"), mlflow_backend, gateway_database) as stack,
    ):
        yield stack


def _contract(service: str) -> BaseSchema:
    root = repo_root()
    assert root is not None
    path: Path = root / "contracts" / "openapi" / f"{service}.json"
    return schemathesis.openapi.from_path(path, config=CONFIG)


def _service(case: Case[Any]) -> str:
    title: str = case.operation.schema.raw_schema["info"]["title"]
    return title.removeprefix("fraudops ")


def refuses_missing_and_wrong_tokens(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Where the document declares security, the same request without a token or with a wrong one is refused.

    It gets 401, unless the request is refused before authentication for what it carries (the JSON checks,
    the size limit, a path no route matches): then it gets just the answer the valid token got.
    """
    # The coverage phase also sends methods the path does not have: those answer 405 before any auth.
    if not case.operation.definition.raw.get("security") or case.method.upper() != case.operation.method.upper():
        return None
    with requests.Session() as session:
        for token in (None, "not-a-real-token"):
            probe = response.request.copy()
            del probe.headers["Authorization"]
            if token is not None:
                probe.headers["Authorization"] = f"Bearer {token}"
            answer = session.send(probe, timeout=60)
            label = f"{case.operation.label} with token {token!r}: {answer.status_code} {answer.text[:200]}"
            if answer.status_code == 401:
                assert answer.headers.get("www-authenticate") == "Bearer", label
            else:
                assert answer.status_code == response.status_code, label
                assert 400 <= answer.status_code < 500, label
                assert answer.status_code != 403, label
    return True


@schemathesis.pytest.parametrize(**{service.replace("-", "_"): _contract(service) for service in SERVICES})
def test_service_honours_its_committed_contract(case: Case[Any], fuzzed_stack: RunningStack) -> None:
    service = _service(case)
    case.call_and_validate(
        base_url=fuzzed_stack.url(service),
        headers={"Authorization": f"Bearer {fuzzed_stack.token(service)}"},
        additional_checks=[refuses_missing_and_wrong_tokens],
    )


def test_the_smallest_simulation_is_accepted_as_documented(fuzzed_stack: RunningStack) -> None:
    operation = _contract("ingest")["/v1/datasets/simulated"]["POST"]
    case = operation.Case(body={"name": "contract-fuzzing", "customers": 10, "terminals": 10, "days": 1, "seed": 7})
    response = case.call_and_validate(
        base_url=fuzzed_stack.url("ingest"),
        headers={"Authorization": f"Bearer {fuzzed_stack.token('ingest')}"},
        additional_checks=[refuses_missing_and_wrong_tokens],
    )
    assert response.status_code == 202, response.text
    assert response.json()["source"] == "simulation"


def test_a_report_is_served_as_documented(fuzzed_stack: RunningStack) -> None:
    # Report ids are random, so the fuzzer only ever meets the 404: a real report is asked for in each format.
    with fuzzed_stack.client("monitor") as client:
        created = client.post("/v1/reports", json={"reason": "contract fuzzing"})
    assert created.status_code == 201, created.text
    operation = _contract("monitor")["/v1/reports/{report_id}"]["GET"]
    statuses = {}
    for report_format in ("summary", "html", "json"):
        case = operation.Case(path_parameters={"report_id": created.json()["id"]}, query={"format": report_format})
        statuses[report_format] = case.call_and_validate(base_url=fuzzed_stack.url("monitor")).status_code
    # Evidently's files exist only when the monitor had data to compare (test_monitor.py serves them).
    expected_files = 200 if created.json()["summary"].get("drift") else 404
    assert statuses == {"summary": 200, "html": expected_files, "json": expected_files}
