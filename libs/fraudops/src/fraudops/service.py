"""Scaffolding every service shares: app factory, error mapping, metrics, lifespan and the server entry point."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_fastapi_instrumentator import Instrumentator
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from fraudops import __version__
from fraudops.errors import ConfigurationError, FraudOpsError
from fraudops.health import Probe, health_router
from fraudops.json_guard import BODY_METHODS, JsonBodyGuard
from fraudops.limits import BodySizeLimit, RequestTimeout
from fraudops.logs import configure_logging
from fraudops.settings import ServiceSettings, load_settings

log = logging.getLogger(__name__)

Startup = Callable[[FastAPI], Awaitable[Sequence[Probe]]]
Shutdown = Callable[[FastAPI], Awaitable[None]]


class ErrorResponse(BaseModel):
    """Every 4xx/5xx the platform emits on purpose has this shape."""

    error: str
    detail: str


# The body limit and the deadline are middleware: they can answer on every route.
MIDDLEWARE_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Request body larger than the limit (the MAX_BODY_BYTES setting)."},
    504: {
        "model": ErrorResponse,
        "description": "The request took longer than the deadline (the REQUEST_TIMEOUT_S setting).",
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token."},
    403: {
        "model": ErrorResponse,
        "description": "The token's principal may not take this action (the SCOPES setting).",
    },
    422: {"model": ErrorResponse, "description": "The request is invalid; `detail` says why."},
    **MIDDLEWARE_RESPONSES,
}
JSON_BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    415: {"model": ErrorResponse, "description": "A body was sent that is not application/json."},
}


class ServiceMetrics:
    """The per-app Prometheus registry, so several apps can live in one process (tests) without clashes."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        Info("fraud_service", "Service name and version.", registry=self.registry).info(
            {"service": service, "version": __version__}
        )
        self.rejected_requests = Counter(
            "fraud_http_rejected_requests_total",
            "Requests refused, by reason: the error code of the answer (unauthorized, forbidden, invalid_input, "
            "payload_too_large, unsupported_media_type, not_found, request_timeout, ...).",
            ["reason"],
            registry=self.registry,
        )


HTTP_ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable"}


def _error_body(code: str, detail: str) -> dict[str, str]:
    return {"error": code, "detail": detail}


def _install_error_handlers(app: FastAPI, metrics: ServiceMetrics) -> None:
    @app.exception_handler(FraudOpsError)
    async def _platform_error(request: Request, exc: FraudOpsError) -> JSONResponse:
        if exc.status_code < 500:
            metrics.rejected_requests.labels(exc.code).inc()
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(_error_body(exc.code, exc.message), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own refusals (no such route, wrong method) in the platform's shape, and counted.
        code = HTTP_ERROR_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal_error")
        if exc.status_code < 500:
            metrics.rejected_requests.labels(code).inc()
        return JSONResponse(_error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.rejected_requests.labels("invalid_input").inc()
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error.get("loc", ()))
            problems.append(f"{location}: {error.get('msg', 'invalid')}")
        return JSONResponse(_error_body("invalid_input", "; ".join(problems)), status_code=422)


def create_service_app(
    *,
    service: str,
    settings_cls: type[ServiceSettings],
    description: str,
    routers: Sequence[APIRouter] = (),
    startup: Startup,
    shutdown: Shutdown | None = None,
    upload_limits: Mapping[str, tuple[str, str]] | None = None,
) -> FastAPI:
    """Build a service app whose settings are loaded at startup, so the app itself can be imported without them.

    `upload_limits` maps a path taking a raw (not JSON) body to the settings fields holding its (larger) body
    limit and its (longer) timeout.
    """
    upload_limits = upload_limits or {}
    metrics = ServiceMetrics(service)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not hasattr(app.state, "settings"):
            app.state.settings = load_settings(settings_cls)
        app.state.probes = list(await startup(app))
        # What exists once started (modules, settings, clients, models: ~240,000 objects in the scorer) lives
        # as long as the process. Frozen out of the cycle collector's sight, a full collection no longer walks
        # it all while every request waits (100-300 ms in the scorer); objects freed later are still freed.
        gc.collect()
        gc.freeze()
        log.info("service started", extra={"port": app.state.settings.port})
        try:
            yield
        finally:
            gc.unfreeze()
            if shutdown is not None:
                await shutdown(app)
            log.info("service stopped")

    app = FastAPI(
        title=f"fraudops {service}",
        version=__version__,
        description=description,
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    _install_error_handlers(app, metrics)

    def limit(scope: Scope, general: str, upload: int) -> Any:
        settings = getattr(app.state, "settings", None)
        if settings is None:
            return ServiceSettings.model_fields[general].default
        fields = upload_limits.get(scope.get("path", ""))
        return getattr(settings, fields[upload] if fields else general)

    def refused(reason: str) -> None:
        metrics.rejected_requests.labels(reason).inc()

    # Added innermost first: the deadline covers everything, the size limit bounds what the JSON guard holds.
    app.add_middleware(JsonBodyGuard, raw_body=lambda scope: scope.get("path", "") in upload_limits, refused=refused)
    app.add_middleware(BodySizeLimit, limit=lambda scope: int(limit(scope, "max_body_bytes", 0)), refused=refused)
    app.add_middleware(
        RequestTimeout, timeout_s=lambda scope: float(limit(scope, "request_timeout_s", 1)), refused=refused
    )
    app.include_router(health_router(service), responses=MIDDLEWARE_RESPONSES)
    for router in routers:
        _declare_json_body_refusals(router, upload_limits)
        app.include_router(router, responses=ERROR_RESPONSES)
    Instrumentator(registry=metrics.registry, excluded_handlers=["/metrics"]).instrument(
        app, metric_namespace="fraud"
    ).expose(app, endpoint="/metrics", include_in_schema=False)
    return app


def _declare_json_body_refusals(router: APIRouter, raw_body_paths: Collection[str]) -> None:
    """The JSON guard answers 415 on every route that takes a JSON body: each such route's document says so."""
    for route in router.routes:
        if isinstance(route, APIRoute) and (route.methods or set()) & BODY_METHODS and route.path not in raw_body_paths:
            for status, response in JSON_BODY_RESPONSES.items():
                route.responses.setdefault(status, response)


def serve(app_path: str, service: str, settings_cls: type[ServiceSettings]) -> None:
    """Entry point of `python -m fraudops_<service>`: validate settings first, then run uvicorn."""
    try:
        settings = load_settings(settings_cls)
    except ConfigurationError as exc:
        print(f"{service}: {exc.message}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(service, settings.log_level)
    uvicorn.run(
        app_path,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
    )
