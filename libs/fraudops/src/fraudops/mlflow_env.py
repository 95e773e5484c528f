"""How services talk to the MLflow server: bounded retries and timeouts, no progress bars, no telemetry.

Set through the environment because MLflow's module-level helpers (artifact downloads, model loading)
read it there; kept here so every service that reads the registry behaves the same.
"""

from __future__ import annotations

import os


def configure_mlflow_environment(retries: int, timeout_s: int) -> None:
    # Failing fast matters more than riding out a blip: MLflow's own default (7 retries with exponential
    # backoff) would hold a caller for minutes.
    os.environ.update(
        {
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout_s),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
