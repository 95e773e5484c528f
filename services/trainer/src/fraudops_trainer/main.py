"""The trainer service's FastAPI app."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.health import BlockingProbe, HttpProbe, Probe
from fraudops.service import create_service_app
from fraudops_trainer.jobs import JobRunner, JobStore
from fraudops_trainer.routes import router
from fraudops_trainer.settings import TrainerSettings


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: TrainerSettings = app.state.settings
    app.state.jobs = JobStore(settings.database_url.get_secret_value())
    await asyncio.to_thread(app.state.jobs.create_schema)
    app.state.runner = JobRunner(app.state.jobs, settings.mlflow_tracking_uri, settings.experiment, settings.model_name)
    app.state.runner.start()
    await app.state.runner.resume_unfinished()
    return [
        HttpProbe("mlflow", settings.mlflow_tracking_uri.rstrip("/") + "/health"),
        BlockingProbe("database", app.state.jobs.ping, "job store"),
    ]


async def shutdown(app: FastAPI) -> None:
    await app.state.runner.stop()
    app.state.jobs.engine.dispose()


app = create_service_app(
    service=TrainerSettings.service_name,
    settings_cls=TrainerSettings,
    description="Training jobs: features, time-aware evaluation, XGBoost, MLflow tracking and registration.",
    routers=[router],
    startup=startup,
    shutdown=shutdown,
)
