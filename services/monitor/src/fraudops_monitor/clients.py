"""The two services the monitor's actions call: Airflow's REST API (retraining) and the registry gateway."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from fraudops.airflow_api import AirflowClient, raise_for_status
from fraudops.errors import ConfigurationError, DependencyUnavailableError

__all__ = ["AirflowClient", "GatewayClient"]


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
        raise_for_status(response, f"registry gateway {path}")
        result: dict[str, Any] = response.json()
        return result
