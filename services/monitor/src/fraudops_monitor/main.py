"""The monitor service's FastAPI app: the consumer, the evaluator, reports, the alert webhook and its actions."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from fraudops.features import FEATURE_NAMES
from fraudops.features.definition import MS_PER_DAY, MS_PER_HOUR
from fraudops.health import KafkaProbe, Probe
from fraudops.service import create_service_app
from fraudops_monitor.actions import ActionDispatcher, ActionLog
from fraudops_monitor.clients import AirflowClient, GatewayClient
from fraudops_monitor.consumer import MonitorConsumer
from fraudops_monitor.evaluator import Evaluator
from fraudops_monitor.metrics import MonitorMetrics
from fraudops_monitor.reference import ReferenceSource
from fraudops_monitor.reports import ReportStore
from fraudops_monitor.routes import router
from fraudops_monitor.settings import MonitorSettings
from fraudops_monitor.windows import FeatureWindow, ScoredLog


class ConsumerProbe:
    """Ready while the consumer reads; one stuck on a lost broker leaves the windows going stale."""

    name = "consumer"

    def __init__(self, consumer: MonitorConsumer) -> None:
        self.consumer = consumer

    async def check(self) -> None:
        if self.consumer.last_error is not None:
            raise ConnectionError(f"the monitor's consumer is reconnecting: {self.consumer.last_error}")


async def startup(app: FastAPI) -> Sequence[Probe]:
    settings: MonitorSettings = app.state.settings
    metrics = MonitorMetrics(app.state.metrics.registry)
    window = settings.window
    features = FeatureWindow(len(FEATURE_NAMES), window.max_rows, int(window.max_age_hours * MS_PER_HOUR))
    scored = ScoredLog(
        retention_ms=int(window.performance_days * MS_PER_DAY),
        label_wait_ms=int(window.label_wait_hours * MS_PER_HOUR),
        max_pending=window.max_pending_labels,
    )
    reports = ReportStore(settings.data_dir / "reports", settings.max_reports)
    references = ReferenceSource(settings.mlflow_tracking_uri, settings.model_name, settings.model_alias)
    evaluator = Evaluator(settings, metrics, features, scored, references, reports)
    dispatcher = ActionDispatcher(
        settings,
        metrics,
        evaluator,
        ActionLog(settings.data_dir / "actions.json"),
        AirflowClient(
            settings.airflow.url,
            settings.airflow.username,
            settings.airflow_password,
            settings.airflow.timeout_s,
            unconfigured="retraining needs Airflow: set FRAUDOPS_MONITOR_AIRFLOW__URL and FRAUDOPS_MONITOR_AIRFLOW_PASSWORD",
        ),
        GatewayClient(settings.gateway_url, settings.gateway_token),
    )
    consumer = MonitorConsumer(settings, metrics, features, scored, evaluator)
    app.state.evaluator = evaluator
    app.state.reports = reports
    app.state.dispatcher = dispatcher
    app.state.consumer = consumer
    evaluator.start()
    probes: list[Probe] = [KafkaProbe(settings.kafka.bootstrap_servers)]
    if settings.consume:
        consumer.start()
        probes.append(ConsumerProbe(consumer))
    return probes


async def shutdown(app: FastAPI) -> None:
    await app.state.consumer.stop()
    await app.state.dispatcher.drain()
    await app.state.evaluator.stop()


app = create_service_app(
    service=MonitorSettings.service_name,
    settings_cls=MonitorSettings,
    description="Drift and live-performance monitoring, Prometheus metrics, alert receiver and actions.",
    routers=[router],
    startup=startup,
    shutdown=shutdown,
)
