"""The trainer service's FastAPI app."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.health import HttpProbe, Probe
from fraudops.service import create_service_app
from fraudops_trainer.settings import TrainerSettings


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: TrainerSettings = app.state.settings
    return [HttpProbe("mlflow", settings.mlflow_tracking_uri.rstrip("/") + "/health")]


app = create_service_app(
    service=TrainerSettings.service_name,
    settings_cls=TrainerSettings,
    description="Training jobs: features, time-aware evaluation, XGBoost, MLflow tracking and registration.",
    startup=startup,
)
