"""Which versions serve: read from MLflow's registry at start, on every model event, and every few seconds.

Loading happens in a worker thread and the result is swapped in whole, so scoring never pauses. A version
that fails to load or to pass the smoke prediction is refused and the one serving stays; when nothing can
be loaded (or the fallback is switched on in the registry) the rules score and every result says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from fraudops.contracts.messages import ModelEvent
from fraudops.errors import MessageDecodeError
from fraudops.mlflow_env import configure_mlflow_environment
from fraudops_scorer.metrics import ScorerMetrics
from fraudops_scorer.serving import ModelRefused, Serving, ServingModel, check_tags, load_booster, smoke_test
from fraudops_scorer.settings import ScorerSettings

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
FALLBACK_TAG = "fallback"


class RegistryReader:
    """Reads the registered model's aliases and tags and loads the versions they point at (blocking calls)."""

    def __init__(self, settings: ScorerSettings) -> None:
        import mlflow
        from mlflow import MlflowClient

        configure_mlflow_environment(settings.mlflow_request_retries, settings.mlflow_request_timeout_s)
        # Process-wide as well: MLflow resolves a `models:/` artifact URI against the global registry URI
        # whatever the client was given, and that is a local SQLite file unless set here.
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        mlflow.set_registry_uri(settings.mlflow_tracking_uri)
        self.settings = settings
        self.client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)

    def resolve(self, current: Serving) -> tuple[Serving, list[str]]:
        """The next snapshot, and the refusals met on the way (each a sentence for the log)."""
        from mlflow.exceptions import MlflowException

        name = self.settings.model_name
        try:
            model = self.client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return Serving(problem=f"no model named {name} is registered"), []
            return replace(current, problem=f"registry unreachable: {_short(exc)}"), []
        except Exception as exc:
            return replace(current, problem=f"registry unreachable: {_short(exc)}"), []
        aliases = dict(model.aliases or {})
        switched_on = (model.tags or {}).get(FALLBACK_TAG) == "true"
        refusals: list[str] = []
        champion = self._version(CHAMPION, aliases.get(CHAMPION), current.champion, refusals)
        problem = None
        if champion is None:
            problem = refusals[-1] if refusals else f"{name} has no champion"
        challenger = self._version(CHALLENGER, aliases.get(CHALLENGER), current.challenger, refusals)
        if challenger is not None and champion is not None and challenger.label_delay_days != champion.label_delay_days:
            # One feature state serves both; a challenger needing other features cannot be compared fairly.
            refusals.append(
                f"challenger {name} v{challenger.version} refused: label_delay_days {challenger.label_delay_days} "
                f"differs from the champion's {champion.label_delay_days}"
            )
            challenger = None
        return Serving(champion, challenger, switched_on, problem), refusals

    def _version(
        self, alias: str, version: str | None, serving: ServingModel | None, refusals: list[str]
    ) -> ServingModel | None:
        name = self.settings.model_name
        if version is None:
            return None
        if serving is not None and serving.version == version:
            return replace(serving, alias=alias)
        try:
            model_version = self.client.get_model_version(name, version)
            review, decline, delay = check_tags(model_version.tags or {})
            booster = load_booster(f"models:/{name}/{version}")
            smoke_test(booster)
        except ModelRefused as exc:
            refusals.append(f"{alias} {name} v{version} refused: {exc}")
            return serving
        except Exception as exc:
            refusals.append(f"{alias} {name} v{version} could not be loaded: {_short(exc)}")
            return serving
        return ServingModel(name, version, alias, booster, review, decline, delay)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text[:300]}"


class ModelWatcher:
    """Keeps `current` up to date; `on_change` hears about every new snapshot."""

    def __init__(
        self,
        settings: ScorerSettings,
        metrics: ScorerMetrics,
        on_change: Callable[[Serving, Serving], None],
        reader: RegistryReader | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.on_change = on_change
        self.reader = reader or RegistryReader(settings)
        self.current = Serving()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_refusals: list[str] = []
        metrics.show_serving(self.current)

    async def start(self) -> None:
        await self.refresh()
        self._tasks = [
            asyncio.create_task(self._refresh_loop(), name="model-refresh"),
            asyncio.create_task(self._follow_events(), name="model-events"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def request_refresh(self) -> None:
        self._wake.set()

    async def refresh(self) -> None:
        previous = self.current
        serving, refusals = await asyncio.to_thread(self.reader.resolve, previous)
        for refusal in refusals:
            if refusal not in self._last_refusals:
                log.error("model refused", extra={"detail": refusal})
                self.metrics.model_refusals.inc()
        self._last_refusals = refusals
        if serving.problem != previous.problem and serving.problem is not None:
            log.warning("no model scores", extra={"detail": serving.problem})
        self.current = serving
        self.metrics.show_serving(serving)
        if _identity(serving) != _identity(previous):
            log.info(
                "serving changed",
                extra={
                    "champion": serving.champion.version if serving.champion else None,
                    "challenger": serving.challenger.version if serving.challenger else None,
                    "rules": serving.rules_score,
                },
            )
            self.on_change(previous, serving)

    async def _refresh_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.model_refresh_interval_s)
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:
                log.exception("model refresh failed")

    async def _follow_events(self) -> None:
        """Wake the refresh on every event about our model; the periodic refresh covers a Kafka outage."""
        settings = self.settings
        while True:
            consumer = AIOKafkaConsumer(
                settings.topics.model_events,
                bootstrap_servers=settings.kafka.bootstrap_servers,
                client_id=f"{settings.kafka.client_id_prefix}-scorer-model-events",
                enable_auto_commit=False,
                auto_offset_reset="latest",
            )
            try:
                await consumer.start()
                async for record in consumer:
                    try:
                        event = ModelEvent.from_avro(record.value)
                    except (MessageDecodeError, ValueError):
                        continue
                    if event.model_name == settings.model_name:
                        log.info("model event", extra={"event": event.event_type.value, "to": event.to_version})
                        self._wake.set()
            except KafkaError as exc:
                log.warning("model events unavailable; retrying", extra={"error": str(exc)})
            finally:
                await consumer.stop()
            await asyncio.sleep(2.0)


def _identity(serving: Serving) -> tuple[str | None, str | None, bool]:
    return (
        serving.champion.version if serving.champion else None,
        serving.challenger.version if serving.challenger else None,
        serving.rules_score,
    )
