"""Airflow 3's REST API as the platform uses it: trigger a DAG run, then follow it.

The monitor triggers retraining with it, the demo the training pipeline; both authenticate with a token from
`/auth/token` (Airflow 3's simple and FAB auth managers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from fraudops.errors import ConfigurationError, DependencyUnavailableError, FraudOpsError

# A run in one of these states will not change any more.
FINISHED_RUN_STATES = frozenset({"success", "failed"})


@dataclass(frozen=True)
class DagRunState:
    state: str
    conf: dict[str, Any]
    tasks: dict[str, str]
    """Each task's state ("none" while not scheduled)."""


class RequestRefused(FraudOpsError):
    """The service answered, and said no (4xx): retrying the same request would not help."""


def raise_for_status(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    detail = response.text[:500]
    if 400 <= response.status_code < 500:
        raise RequestRefused(f"{what}: {response.status_code} {detail}")
    raise DependencyUnavailableError(f"{what}: {response.status_code} {detail}")


class AirflowClient:
    def __init__(
        self,
        url: str | None,
        username: str,
        password: SecretStr | None,
        timeout_s: float,
        unconfigured: str = "Airflow's URL and password are not configured",
    ) -> None:
        self.url = url.rstrip("/") if url else None
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        # What to tell the caller's operator when the URL or password is missing (their settings' names).
        self.unconfigured = unconfigured

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[httpx.AsyncClient]:
        if self.url is None or self.password is None:
            raise ConfigurationError(self.unconfigured)
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s) as client:
                token = await client.post(
                    "/auth/token", json={"username": self.username, "password": self.password.get_secret_value()}
                )
                raise_for_status(token, "Airflow /auth/token")
                client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
                yield client
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"Airflow at {self.url} is unreachable: {exc}") from exc

    async def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> str:
        """Start a run named `run_id` (a second trigger with the same id changes nothing); return its id."""
        async with self._session() as client:
            # Runs start paused with their DAG otherwise; unpausing twice is harmless.
            unpause = await client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
            raise_for_status(unpause, f"Airflow unpause {dag_id}")
            body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
            response = await client.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        if response.status_code == 409:
            return run_id  # triggered before (a repeated request)
        raise_for_status(response, f"Airflow trigger {dag_id}")
        return str(response.json().get("dag_run_id", run_id))

    async def run_state(self, dag_id: str, run_id: str) -> DagRunState:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
        async with self._session() as client:
            run = await client.get(path)
            raise_for_status(run, f"Airflow run {dag_id}/{run_id}")
            tasks = await client.get(f"{path}/taskInstances")
            raise_for_status(tasks, f"Airflow task instances of {dag_id}/{run_id}")
        body = run.json()
        states = {t["task_id"]: str(t.get("state") or "none") for t in tasks.json()["task_instances"]}
        return DagRunState(str(body["state"]), dict(body.get("conf") or {}), states)
