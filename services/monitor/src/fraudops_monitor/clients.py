"""The two services the monitor's actions call: Airflow's REST API (retraining) and the registry gateway."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from fraudops.errors import ConfigurationError, DependencyUnavailableError, FraudOpsError


class ActionRefused(FraudOpsError):
    """The service answered, and said no (4xx): retrying the same request would not help."""


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    detail = response.text[:500]
    if 400 <= response.status_code < 500:
        raise ActionRefused(f"{what}: {response.status_code} {detail}")
    raise DependencyUnavailableError(f"{what}: {response.status_code} {detail}")


class AirflowClient:
    """Triggers DAG runs with a token from `/auth/token` (Airflow 3's simple and FAB auth managers)."""

    def __init__(self, url: str | None, username: str, password: SecretStr | None, timeout_s: float) -> None:
        self.url = url.rstrip("/") if url else None
        self.username = username
        self.password = password
        self.timeout_s = timeout_s

    async def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> str:
        """Start a run named `run_id` (a second trigger with the same id changes nothing); return its id."""
        if self.url is None or self.password is None:
            raise ConfigurationError(
                "retraining needs Airflow: set FRAUDOPS_MONITOR_AIRFLOW__URL and FRAUDOPS_MONITOR_AIRFLOW_PASSWORD"
            )
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s) as client:
                token = await client.post(
                    "/auth/token", json={"username": self.username, "password": self.password.get_secret_value()}
                )
                _raise_for(token, "Airflow /auth/token")
                headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
                # Runs start paused with their DAG otherwise; unpausing twice is harmless.
                unpause = await client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}, headers=headers)
                _raise_for(unpause, f"Airflow unpause {dag_id}")
                body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
                response = await client.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"Airflow at {self.url} is unreachable: {exc}") from exc
        if response.status_code == 409:
            return run_id  # triggered before (a repeated delivery of the same alert)
        _raise_for(response, f"Airflow trigger {dag_id}")
        return str(response.json().get("dag_run_id", run_id))


class GatewayClient:
    """The registry gateway's rollback and fallback switches."""

    def __init__(self, url: str, token: SecretStr | None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    async def rollback(self, model_name: str, reason: str) -> dict[str, Any]:
        return await self._post(f"/v1/models/{model_name}/rollback", {"reason": reason})

    async def fallback(self, model_name: str, reason: str) -> dict[str, Any]:
        return await self._post(f"/v1/models/{model_name}/fallback", {"enabled": True, "reason": reason})

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.token is None:
            raise ConfigurationError("the registry gateway needs a token: set FRAUDOPS_MONITOR_GATEWAY_TOKEN")
        headers = {"Authorization": f"Bearer {self.token.get_secret_value()}"}
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=self.timeout_s) as client:
                response = await client.post(path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DependencyUnavailableError(f"registry gateway at {self.url} is unreachable: {exc}") from exc
        _raise_for(response, f"registry gateway {path}")
        result: dict[str, Any] = response.json()
        return result
