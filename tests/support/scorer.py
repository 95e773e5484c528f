"""Scorer processes on their own topics, started and killed by tests, against the stack's Kafka and MLflow."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import mlflow
import pandas as pd
from mlflow import MlflowClient

from fraudops.contracts.messages import ScoreResult
from fraudops.contracts.topics import TopicCatalog, ensure_topics, load_topic_catalog
from fraudops.settings import KafkaSettings
from fraudops.simulator import SimulatorConfig, derive_labels, simulate
from fraudops.stack.components import operator_token
from tests.support.kafka import drain
from tests.support.models import contract_tags, register_version, train_booster, unique_model_name
from tests.support.ports import free_port
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


class ScorerProcess:
    """`python -m fraudops_scorer` with the stack's wiring and a test's own topics, group and model name."""

    def __init__(
        self, stack: RunningStack, topics: ScorerTopics, model_name: str, workdir: Path, **settings: str
    ) -> None:
        self.stack = stack
        self.topics = topics
        self.model_name = model_name
        self.workdir = workdir
        self.port = free_port()
        self.settings = {"GROUP_ID": f"scorer-{topics.prefix}", **settings}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        stack_settings = self.stack.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDOPS_")}
        env.update(
            {
                "FRAUDOPS_SECRETS_DIR": str(stack_settings.secrets_dir),
                "FRAUDOPS_SCORER_HOST": "127.0.0.1",
                "FRAUDOPS_SCORER_PORT": str(self.port),
                "FRAUDOPS_SCORER_KAFKA__BOOTSTRAP_SERVERS": stack_settings.kafka_bootstrap,
                "FRAUDOPS_SCORER_MLFLOW_TRACKING_URI": stack_settings.mlflow_url,
                "FRAUDOPS_SCORER_MODEL_NAME": self.model_name,
                "FRAUDOPS_SCORER_MODEL_REFRESH_INTERVAL_S": "2",
                **self.topics.env(),
                **{f"FRAUDOPS_SCORER_{key}": value for key, value in self.settings.items()},
            }
        )
        return env

    def start(self, wait: bool = True) -> None:
        self.starts += 1
        log = (self.workdir / f"scorer-{self.port}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fraudops_scorer"], env=self.environment(), stdout=log, stderr=subprocess.STDOUT
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"scorer exited with {self.process.returncode}: {self.log_tail()}")
            try:
                response = httpx.get(f"{self.url}/readyz", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise AssertionError(f"scorer not ready after {timeout_s} s: {last}; {self.log_tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 30) -> str:
        logs = sorted(self.workdir.glob(f"scorer-{self.port}-*.log"))
        if not logs:
            return ""
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def client(self) -> httpx.Client:
        token = operator_token(self.stack.settings, "scorer")
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of a metric's samples whose label set contains `labels` (e.g. 'decision="DECLINE"')."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {") and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total


@dataclass
class ScorerRun:
    """Topics, a model name and processes for one test; processes are killed when the test ends."""

    stack: RunningStack
    workdir: Path
    topics: ScorerTopics = field(default_factory=ScorerTopics)
    model_name: str = field(default_factory=lambda: unique_model_name("scorer-test"))
    processes: list[ScorerProcess] = field(default_factory=list)

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

    def register_champion(self, seed: int = 1, **tag_overrides: str) -> str:
        """A real booster logged and registered under the run's model name, aliased champion; its version."""
        mlflow.set_tracking_uri(self.stack.settings.mlflow_url)
        version = register_version(self.model_name, train_booster(seed), tags=contract_tags(**tag_overrides))
        MlflowClient().set_registered_model_alias(self.model_name, "champion", version)
        return version

    def scores(self, idle_s: float = 3.0, timeout_s: float = 120.0) -> list[ScoreResult]:
        records = asyncio.run(drain(self.stack.settings.kafka_bootstrap, self.topics.name("scores"), idle_s, timeout_s))
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
