"""OpenAPI documents generated from the service apps and committed under contracts/openapi/."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from fastapi import FastAPI

SERVICE_APPS = {
    "ingest": "fraudops_ingest.main",
    "trainer": "fraudops_trainer.main",
    "scorer": "fraudops_scorer.main",
    "monitor": "fraudops_monitor.main",
    "registry-gateway": "fraudops_registry_gateway.main",
}


def load_app(service: str) -> FastAPI:
    app = importlib.import_module(SERVICE_APPS[service]).app
    if not isinstance(app, FastAPI):
        raise TypeError(f"{SERVICE_APPS[service]}.app is not a FastAPI app")
    return app


def render(service: str) -> str:
    return json.dumps(load_app(service).openapi(), indent=2, ensure_ascii=False) + "\n"


def document_path(directory: Path, service: str) -> Path:
    return directory / f"{service}.json"


def write_documents(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service in SERVICE_APPS:
        path = document_path(directory, service)
        path.write_text(render(service))
        written.append(path)
    return written


def stale_documents(directory: Path) -> list[str]:
    """Services whose committed document differs from what the code generates."""
    stale = []
    for service in SERVICE_APPS:
        path = document_path(directory, service)
        if not path.exists() or path.read_text() != render(service):
            stale.append(service)
    return stale
