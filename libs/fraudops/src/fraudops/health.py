"""Readiness probes of real dependencies and the /healthz and /readyz routes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import httpx
from aiokafka.client import AIOKafkaClient
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

PROBE_TIMEOUT_S = 3.0


class Probe(Protocol):
    """A dependency check: returns normally when reachable, raises with the reason otherwise."""

    name: str

    async def check(self) -> None: ...


class KafkaProbe:
    """Kafka is ready when a bootstrap (metadata) request succeeds."""

    def __init__(self, bootstrap_servers: str, name: str = "kafka") -> None:
        self.name = name
        self.bootstrap_servers = bootstrap_servers

    async def check(self) -> None:
        client = AIOKafkaClient(
            bootstrap_servers=self.bootstrap_servers,
            request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
            metadata_max_age_ms=60_000,
        )
        try:
            await client.bootstrap()
        except Exception as exc:
            raise ConnectionError(f"Kafka at {self.bootstrap_servers} unreachable: {exc}") from exc
        finally:
            await client.close()


class HttpProbe:
    """An HTTP dependency is ready when its health URL answers 2xx."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url

    async def check(self) -> None:
        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S) as client:
                response = await client.get(self.url)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"{self.url} unreachable: {exc.__class__.__name__}") from exc
        if response.status_code >= 300:
            raise ConnectionError(f"{self.url} answered {response.status_code}")


class BlockingProbe:
    """A dependency checked by a blocking call (a database ping), run in a worker thread."""

    def __init__(self, name: str, check: Callable[[], object], what: str) -> None:
        self.name = name
        self._check = check
        self.what = what

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._check)
        except Exception as exc:
            raise ConnectionError(f"{self.what} unreachable: {exc.__class__.__name__}") from exc


class Liveness(BaseModel):
    status: str
    service: str
    uptime_s: float


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


async def _run_probe(probe: Probe) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(probe.check(), timeout=PROBE_TIMEOUT_S + 1)
    except TimeoutError:
        return probe.name, f"no answer within {PROBE_TIMEOUT_S + 1:.0f} s"
    except Exception as exc:
        return probe.name, str(exc) or exc.__class__.__name__
    return probe.name, None


async def check_all(probes: Sequence[Probe]) -> Readiness:
    """Run every probe concurrently; ready only if all pass."""
    results = await asyncio.gather(*(_run_probe(probe) for probe in probes))
    checks = {name: (error or "ok") for name, error in results}
    status = "ready" if all(error is None for _, error in results) else "unavailable"
    return Readiness(status=status, checks=checks)


def health_router(service: str) -> APIRouter:
    """Open (unauthenticated) liveness and readiness endpoints."""
    router = APIRouter(tags=["health"])
    started = time.monotonic()

    @router.get("/healthz", response_model=Liveness, summary="Liveness: the process answers")
    async def healthz() -> Liveness:
        return Liveness(status="alive", service=service, uptime_s=round(time.monotonic() - started, 3))

    @router.get(
        "/readyz",
        response_model=Readiness,
        summary="Readiness: every dependency is reachable",
        responses={
            503: {"model": Readiness, "description": "A dependency is unreachable; `checks` says which and why."}
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        probes: Sequence[Probe] = getattr(request.app.state, "probes", ())
        readiness = await check_all(probes)
        code = 200 if readiness.status == "ready" else 503
        return JSONResponse(readiness.model_dump(), status_code=code)

    return router
