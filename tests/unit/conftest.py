"""Unit tests run services in-process: what a service sets process-wide must not outlive the test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


# Module-wide, so that it also outlasts module-scoped fixtures that run a service for a whole module.
@pytest.fixture(autouse=True, scope="module")
def _process_wide_mlflow_settings_restored() -> Iterator[None]:
    """A service's start points MLflow's module-level tracking and registry addresses (and its HTTP retry
    environment) at its settings, here often a closed port; later tests in the same process, integration
    tests among them, would otherwise talk to that port."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    environment = dict(os.environ)
    tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    yield
    tracking_utils._tracking_uri, registry_utils._registry_uri = tracking, registry
    os.environ.clear()
    os.environ.update(environment)
