"""Scorer processes on their own topics, started and killed by tests, against the stack's Kafka and MLflow."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import xgboost
from mlflow import MlflowClient

from fraudops.contracts.messages import ScoreResult
from fraudops.contracts.topics import TopicCatalog, ensure_topics, load_topic_catalog
from fraudops.settings import KafkaSettings
from fraudops.simulator import SimulatorConfig, derive_labels, simulate
from tests.support.kafka import drain
from tests.support.models import contract_tags, register_version, train_booster, unique_model_name
from tests.support.service_process import ServiceProcess
from tests.support.stack import RunningStack

ROLES = ("transactions", "scores", "shadow_scores", "labels", "dead_letters")
_CATALOG_NAMES = {
    "transactions": "transactions",
    "scores": "scores",
    "shadow_scores": "scores.shadow",
    "labels": "labels",
    "dead_letters": "transactions.dlq",
}


@dataclass(frozen=True)
class ScorerTopics:
    """A private set of the scorer's topics, so tests never read each other's messages."""

    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    def name(self, role: str) -> str:
        return f"{self.prefix}.{_CATALOG_NAMES[role]}"

    def catalog(self) -> TopicCatalog:
        default = load_topic_catalog()
        specs = [default.get(_CATALOG_NAMES[role]).model_copy(update={"name": self.name(role)}) for role in ROLES]
        return TopicCatalog(topics=specs)

    def env(self) -> dict[str, str]:
        return {f"FRAUDOPS_SCORER_TOPICS__{role.upper()}": self.name(role) for role in ROLES}

    def replay_names(self) -> dict[str, str]:
        return {"transactions": self.name("transactions"), "labels": self.name("labels")}


def create_topics(bootstrap: str, topics: ScorerTopics) -> None:
    asyncio.run(ensure_topics(bootstrap, topics.catalog()))


class ScorerProcess(ServiceProcess):
    """`python -m fraudops_scorer` with the stack's wiring and a test's own topics, group and model name."""

    def __init__(
        self, stack: RunningStack, topics: ScorerTopics, model_name: str, workdir: Path, **settings: str
    ) -> None:
        super().__init__(
            "scorer",
            stack,
            workdir,
            {
                "GROUP_ID": f"scorer-{topics.prefix}",
                "MODEL_NAME": model_name,
                "MODEL_REFRESH_INTERVAL_S": "2",
                **{key.removeprefix("FRAUDOPS_SCORER_"): value for key, value in topics.env().items()},
                **settings,
            },
        )
        self.topics = topics
        self.model_name = model_name


@dataclass
class ScorerRun:
    """Topics, a model name and processes for one test; processes are killed when the test ends."""

    stack: RunningStack
    workdir: Path
    topics: ScorerTopics = field(default_factory=ScorerTopics)
    model_name: str = field(default_factory=lambda: unique_model_name("scorer-test"))
    processes: list[ServiceProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        create_topics(self.stack.settings.kafka_bootstrap, self.topics)

    def scorer(self, **settings: str) -> ScorerProcess:
        process = ScorerProcess(self.stack, self.topics, self.model_name, self.workdir, **settings)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            process.kill()

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.stack.settings.kafka_bootstrap)

    def register_champion(self, seed: int = 1, booster: xgboost.Booster | None = None, **tag_overrides: str) -> str:
        """A real booster (`train_booster(seed)` unless given) logged and registered under the run's model name,
        aliased champion; its version."""
        mlflow.set_tracking_uri(self.stack.settings.mlflow_url)
        booster = booster or train_booster(seed)
        version = register_version(self.model_name, booster, tags=contract_tags(**tag_overrides))
        MlflowClient().set_registered_model_alias(self.model_name, "champion", version)
        return version

    def scores(
        self, idle_s: float = 3.0, timeout_s: float = 120.0, covering: pd.DataFrame | None = None
    ) -> list[ScoreResult]:
        """What the scores topic holds; with `covering`, read until each of its transactions has a result (or
        `timeout_s`), so a scorer still catching up is waited for rather than judged half way."""
        keys = [] if covering is None else [str(t).encode() for t in covering["transaction_id"]]
        topic = self.topics.name("scores")
        records = asyncio.run(drain(self.stack.settings.kafka_bootstrap, topic, idle_s, timeout_s, keys))
        return [ScoreResult.from_avro(r.value) for r in records]


def simulated_stream(customers: int, terminals: int, days: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    transactions = simulate(
        SimulatorConfig(n_customers=customers, n_terminals=terminals, n_days=days, seed=seed)
    ).transactions
    return transactions, derive_labels(transactions)


def wait_for(condition: object, timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def by_transaction(results: list[ScoreResult]) -> Iterator[tuple[str, list[ScoreResult]]]:
    grouped: dict[str, list[ScoreResult]] = {}
    for result in results:
        grouped.setdefault(result.transaction_id, []).append(result)
    yield from grouped.items()
