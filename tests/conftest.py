"""Fixtures shared by every tier: a real Postgres and the real local stack, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import admin_dsn, fresh_database
from tests.support.stack import RunningStack, run_cli, stack_environment


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
    """`fraudops up` on free ports, MLflow and the registry gateway on Postgres; `fraudops down` afterwards."""
    state_dir: Path = tmp_path_factory.mktemp("stack")
    env = stack_environment(state_dir, mlflow_backend_dsn)
    # As in compose: the gateway's audit store is Postgres (the stack's default would be SQLite).
    env["FRAUDOPS_REGISTRY_GATEWAY_DATABASE_URL"] = gateway_database_dsn
    try:
        result = run_cli(env, "up")
        assert result.returncode == 0, f"fraudops up failed:\n{result.stdout}\n{result.stderr}"
        yield RunningStack(env)
    finally:
        run_cli(env, "down")
