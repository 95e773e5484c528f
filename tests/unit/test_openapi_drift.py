"""The committed OpenAPI documents are exactly what the code generates (`make contracts` fixes drift)."""

from fraudops.contracts.openapi import SERVICE_APPS, load_app, stale_documents
from fraudops.paths import contracts_dir


def test_committed_documents_match_the_code() -> None:
    assert stale_documents(contracts_dir() / "openapi") == []


def test_every_service_documents_health_endpoints() -> None:
    for service in SERVICE_APPS:
        paths = load_app(service).openapi()["paths"]
        assert {"/healthz", "/readyz"} <= set(paths), service
