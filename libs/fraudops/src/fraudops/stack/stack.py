"""Start, stop and inspect the whole local stack in dependency order."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable

from fraudops.contracts.topics import ensure_topics, load_topic_catalog
from fraudops.settings import load_settings
from fraudops.stack.airflow import AirflowStandalone, monitor_wiring
from fraudops.stack.components import (
    SERVICE_DEPENDENCIES,
    Component,
    ComponentStatus,
    KafkaBroker,
    MlflowServer,
    ServiceProcess,
)
from fraudops.stack.config import StackSettings
from fraudops.stack.observability import AlertmanagerServer, PrometheusServer, ensure_webhook_principal
from fraudops.stack.process import StackError

log = logging.getLogger(__name__)


class Stack:
    """Kafka and MLflow first, then the services, then Alertmanager and Prometheus if wanted, each waited on."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        self.settings = settings or load_settings(StackSettings)
        self.kafka = KafkaBroker(self.settings)
        self.mlflow = MlflowServer(self.settings)
        self.services = {name: ServiceProcess(self.settings, name) for name in SERVICE_DEPENDENCIES}
        self.airflow = AirflowStandalone(self.settings)
        self.alertmanager = AlertmanagerServer(self.settings)
        self.prometheus = PrometheusServer(self.settings)

    @property
    def observability(self) -> list[Component]:
        return [self.alertmanager, self.prometheus]

    @property
    def components(self) -> list[Component]:
        """The parts `status` shows: Prometheus and Alertmanager only when wanted or running."""
        extra = [c for c in self.observability if self.settings.observability or c.process.running()]
        airflow = [self.airflow] if self.settings.with_airflow or self.airflow.process.running() else []
        return [self.kafka, self.mlflow, *self.services.values(), *extra, *airflow]

    def component(self, name: str) -> Component:
        for component in [*self.components, *self.observability]:
            if component.name == name:
                return component
        known = ", ".join(c.name for c in self.components)
        raise StackError(f"no stack component named {name!r}; known: {known}")

    def up(self, only: Iterable[str] = (), report: Callable[[str, str], None] | None = None) -> None:
        wanted = set(only)

        def selected(component: Component) -> bool:
            return not wanted or component.name in wanted

        if selected(self.kafka):
            outcome = self.kafka.start()
            topics = asyncio.run(ensure_topics(self.settings.kafka_bootstrap, load_topic_catalog()))
            created = sum(1 for value in topics.values() if value == "created")
            self._report(report, self.kafka.name, f"{outcome}; {created} topic(s) created")
        if selected(self.mlflow):
            self._report(report, self.mlflow.name, self.mlflow.start())
        # Before any service starts, so the monitor already accepts Alertmanager's token when it joins later.
        ensure_webhook_principal(self.settings)
        if self.settings.with_airflow:
            # The monitor triggers retraining through Airflow's REST API; settings the caller gave win.
            for key, value in monitor_wiring(self.settings).items():
                os.environ.setdefault(key, value)
        # Services depend only on Kafka and MLflow, not on each other: start them together, then wait.
        services = [s for s in self.services.values() if selected(s)]
        outcomes = {service.name: service.spawn() for service in services}
        for service in services:
            service.wait_ready()
            self._report(report, service.name, outcomes[service.name])
        # Airflow last among the core parts: its DAGs call the services, and it needs their tokens.
        if self.airflow.name in wanted or (not wanted and self.settings.with_airflow):
            self._report(report, self.airflow.name, self.airflow.start())
        # Alertmanager before Prometheus, which sends it alerts from its first evaluation on.
        for part in self.observability:
            if part.name in wanted or (not wanted and self.settings.observability):
                self._report(report, part.name, part.start())

    @staticmethod
    def _report(report: Callable[[str, str], None] | None, name: str, outcome: str) -> None:
        if report is not None:
            report(name, outcome)
        log.info("stack component ready", extra={"component": name, "outcome": outcome})

    def down(self, report: Callable[[str, str], None] | None = None) -> None:
        # Prometheus first (no alert about services going down on purpose), then the services, so none of them
        # logs a burst of errors about a vanished broker.
        shown = {component.name for component in self.components}
        for component in reversed(
            [self.kafka, self.mlflow, *self.services.values(), *self.observability, self.airflow]
        ):
            stopped = component.stop()
            if report and (stopped or component.name in shown):
                report(component.name, "stopped" if stopped else "was not running")

    def status(self) -> list[ComponentStatus]:
        return [component.status() for component in self.components]
