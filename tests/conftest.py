"""Fixtures shared by every tier: a real Postgres and the real local stack, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import admin_dsn, fresh_database
from tests.support.stack import RunningStack, started_stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under integration/, e2e/ and reliability/ carry their tier's marker (select with -m)."""
    for item in items:
        for tier in ("integration", "e2e", "reliability"):
            if f"tests/{tier}/" in str(item.path).replace("\\", "/"):
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    with admin_dsn() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def mlflow_backend_dsn(postgres_admin_dsn: str) -> Iterator[str]:
    with fresh_database(postgres_admin_dsn, "mlflow") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def gateway_database_dsn(postgres_admin_dsn: str) -> Iterator[str]:
    with fresh_database(postgres_admin_dsn, "registry_gateway") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def running_stack(
    tmp_path_factory: pytest.TempPathFactory, mlflow_backend_dsn: str, gateway_database_dsn: str
) -> Iterator[RunningStack]:
    """The session's stack: `fraudops up` on free ports, MLflow and the registry gateway on Postgres."""
    with started_stack(tmp_path_factory.mktemp("stack"), mlflow_backend_dsn, gateway_database_dsn) as stack:
        yield stack
