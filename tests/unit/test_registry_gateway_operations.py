"""The gateway's change workflows against an in-memory registry and a real SQLite store.

What the integration tests cannot provoke on demand: a database commit failing after the MLflow write
(the write is undone), and Kafka refusing events (they stay in the outbox, in order, until delivered).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError

from fraudops.contracts.messages import ModelEvent, ModelEventType
from fraudops.errors import ConflictError, DependencyUnavailableError, NotFoundError
from fraudops.kafka import ManagedProducer
from fraudops.settings import KafkaSettings
from fraudops_registry_gateway.gate import Scores
from fraudops_registry_gateway.metrics import GatewayMetrics
from fraudops_registry_gateway.operations import Operations
from fraudops_registry_gateway.outbox import OutboxPublisher
from fraudops_registry_gateway.registry import MlflowRegistry, ModelInfo, VersionInfo
from fraudops_registry_gateway.settings import RegistryGatewaySettings
from fraudops_registry_gateway.stages import Target
from fraudops_registry_gateway.store import GatewayStore, ModelTransaction
from fraudops_registry_gateway.validation import ValidationOutcome, Validator
from tests.support.db_lock import lock_order

NAME = "fraud-detector"


class FakeRegistry(MlflowRegistry):
    """Versions, aliases and tags in dictionaries; `down` makes every call fail like an unreachable MLflow."""

    def __init__(self, versions: int) -> None:
        self.aliases: dict[str, str] = {}
        self.model_tags: dict[str, str] = {}
        self.version_tags: dict[str, dict[str, str]] = {str(v): {} for v in range(1, versions + 1)}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise DependencyUnavailableError("MLflow unavailable while testing: connection refused")

    def model(self, name: str) -> ModelInfo:
        self._check()
        return ModelInfo(name, dict(self.aliases), dict(self.model_tags))

    def version(self, name: str, version: str) -> VersionInfo:
        self._check()
        if version not in self.version_tags:
            raise NotFoundError(f"no version {version}")
        aliases = [alias for alias, v in self.aliases.items() if v == version]
        return VersionInfo(name, version, "models:/m-x", "run", "READY", dict(self.version_tags[version]), aliases)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._check()
        self.aliases[alias] = version

    def delete_alias(self, name: str, alias: str) -> None:
        self._check()
        self.aliases.pop(alias, None)

    def put_version_tag(self, name: str, version: str, key: str, value: str | None) -> None:
        self._check()
        if value is None:
            self.version_tags[version].pop(key, None)
        else:
            self.version_tags[version][key] = value

    def put_model_tag(self, name: str, key: str, value: str | None) -> None:
        self._check()
        if value is None:
            self.model_tags.pop(key, None)
        else:
            self.model_tags[key] = value


class CannedValidator(Validator):
    """Passes every version except those listed as failing."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing

    def validate(self, info: VersionInfo, champion_version: str | None) -> ValidationOutcome:
        outcome = ValidationOutcome(info.version, candidate=Scores(0.8, 0.9, 0.3, 100))
        if info.version in self.failing:
            outcome.reasons.append("average precision 0.1 is below the minimum 0.25")
        return outcome


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GatewayStore]:
    store = GatewayStore(f"sqlite:///{tmp_path / 'gateway.db'}")
    store.create_schema()
    yield store
    store.engine.dispose()


def _operations(store: GatewayStore, registry: FakeRegistry, failing: set[str] | None = None) -> Operations:
    metrics = GatewayMetrics(CollectorRegistry())
    return Operations(registry, store, CannedValidator(failing or set()), metrics)


async def test_only_passed_versions_are_promoted(store: GatewayStore) -> None:
    registry = FakeRegistry(versions=2)
    operations = _operations(store, registry, failing={"2"})
    with pytest.raises(ConflictError, match="not been validated"):
        await operations.promote(NAME, "1", Target.CHAMPION, "alice", "first")
    await operations.validate(NAME, "1", "alice", None)
    await operations.validate(NAME, "2", "alice", None)
    with pytest.raises(ConflictError, match="failed validation: average precision"):
        await operations.promote(NAME, "2", Target.CHAMPION, "alice", "try")
    # A tag edited behind the gateway's back does not count.
    registry.version_tags["2"]["validation_status"] = "passed"
    with pytest.raises(ConflictError, match="failed validation"):
        await operations.promote(NAME, "2", Target.CHAMPION, "alice", "try")
    record = await operations.promote(NAME, "1", Target.CHAMPION, "alice", "first")
    assert (record.event_type, record.alias, record.from_version, record.to_version) == (
        ModelEventType.PROMOTED,
        "champion",
        None,
        "1",
    )
    assert registry.aliases == {"champion": "1"}


async def test_a_failed_commit_undoes_the_alias_write(store: GatewayStore, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = FakeRegistry(versions=2)
    operations = _operations(store, registry)
    for version in ("1", "2"):
        await operations.validate(NAME, version, "alice", None)
    await operations.promote(NAME, "1", Target.CHAMPION, "alice", "first")
    before = store.history(NAME, 0, 100)

    def broken_record(self: ModelTransaction, change: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(ModelTransaction, "record", broken_record)
    with pytest.raises(DependencyUnavailableError, match="database"):
        await operations.promote(NAME, "2", Target.CHAMPION, "alice", "second")
    assert registry.aliases == {"champion": "1"}
    assert store.history(NAME, 0, 100) == before
    assert store.state(NAME).previous_champions == []


async def test_mlflow_down_changes_nothing(store: GatewayStore) -> None:
    registry = FakeRegistry(versions=2)
    operations = _operations(store, registry)
    for version in ("1", "2"):
        await operations.validate(NAME, version, "alice", None)
    await operations.promote(NAME, "1", Target.CHAMPION, "alice", "first")
    before = store.history(NAME, 0, 100)
    registry.down = True
    with pytest.raises(DependencyUnavailableError, match="MLflow"):
        await operations.promote(NAME, "2", Target.CHAMPION, "alice", "second")
    with pytest.raises(DependencyUnavailableError, match="MLflow"):
        await operations.rollback(NAME, "alice", "undo")
    registry.down = False
    assert registry.aliases == {"champion": "1"}
    assert store.history(NAME, 0, 100) == before


async def test_rollback_walks_back_through_previous_champions(store: GatewayStore) -> None:
    registry = FakeRegistry(versions=3)
    operations = _operations(store, registry)
    for version in ("1", "2", "3"):
        await operations.validate(NAME, version, "alice", None)
        await operations.promote(NAME, version, Target.CHAMPION, "alice", f"v{version}")
    await operations.promote(NAME, "2", Target.ARCHIVED, "alice", "withdrawn")
    # 2 was archived on purpose, so rollback skips it and brings 1 back.
    record = await operations.rollback(NAME, "bob", "3 misbehaves")
    assert (record.from_version, record.to_version, record.principal) == ("3", "1", "bob")
    assert registry.aliases["champion"] == "1"
    with pytest.raises(ConflictError, match="no previous champion"):
        await operations.rollback(NAME, "bob", "again")


async def test_promoting_the_challenger_to_champion_clears_the_challenger(store: GatewayStore) -> None:
    registry = FakeRegistry(versions=2)
    operations = _operations(store, registry)
    for version in ("1", "2"):
        await operations.validate(NAME, version, "alice", None)
    await operations.promote(NAME, "1", Target.CHAMPION, "alice", "first")
    await operations.promote(NAME, "2", Target.CHALLENGER, "alice", "shadow")
    with pytest.raises(ConflictError, match="champion; it cannot also be the challenger"):
        await operations.promote(NAME, "1", Target.CHALLENGER, "alice", "both")
    record = await operations.promote(NAME, "2", Target.CHAMPION, "alice", "won the shadow test")
    assert registry.aliases == {"champion": "2"}
    assert record.details == {"challenger_cleared": "2"}


async def test_concurrent_changes_form_one_chain(store: GatewayStore) -> None:
    registry = FakeRegistry(versions=3)
    operations = _operations(store, registry)
    for version in ("1", "2", "3"):
        await operations.validate(NAME, version, "alice", None)

    async def change(i: int) -> None:
        try:
            if i % 4 == 3:
                await operations.rollback(NAME, "alice", f"r{i}")
            else:
                await operations.promote(NAME, str(i % 3 + 1), Target.CHAMPION, "alice", f"p{i}")
        except ConflictError:
            pass

    await asyncio.gather(*(change(i) for i in range(20)))
    moves = [r for r in store.history(NAME, 0, 1000) if r.alias == "champion"]
    assert moves
    for earlier, later in itertools.pairwise(moves):
        assert later.from_version == earlier.to_version
    assert registry.aliases["champion"] == moves[-1].to_version


async def test_fallback_switch_records_only_changes(store: GatewayStore) -> None:
    registry = FakeRegistry(versions=1)
    operations = _operations(store, registry)
    on = await operations.set_fallback(NAME, True, "alice", "incident")
    assert on is not None
    assert on.event_type is ModelEventType.FALLBACK_ON
    assert await operations.set_fallback(NAME, True, "alice", "still on") is None
    off = await operations.set_fallback(NAME, False, "alice", "resolved")
    assert off is not None
    assert off.event_type is ModelEventType.FALLBACK_OFF
    assert registry.model_tags == {"fallback": "false"}


class FlakyProducer:
    """Refuses the first `failures` sends, then records what it is given."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.failures:
            self.failures -= 1
            raise TimeoutError
        self.sent.append(value)


class FlakyManagedProducer(ManagedProducer):
    def __init__(self, producer: FlakyProducer) -> None:
        super().__init__(KafkaSettings(), "test")
        self.fake = producer

    async def get(self) -> Any:
        return self.fake


async def test_outbox_delivers_in_order_after_failures(store: GatewayStore) -> None:
    registry = FakeRegistry(versions=1)
    operations = _operations(store, registry)
    for i in range(3):
        await operations.set_fallback(NAME, i % 2 == 0, "alice", f"switch {i}")
    producer = FlakyProducer(failures=2)
    metrics = GatewayMetrics(CollectorRegistry())
    publisher = OutboxPublisher(store, FlakyManagedProducer(producer), metrics, 0.05, 0.1, 1.0)
    assert await publisher.deliver_pending() is False
    assert await publisher.deliver_pending() is False
    assert store.pending_count() == 3
    assert await publisher.deliver_pending() is True
    assert store.pending_count() == 0
    reasons = [ModelEvent.from_avro(value).reason for value in producer.sent]
    assert reasons == ["switch 0", "switch 1", "switch 2"]
    assert all(record.delivered for record in store.history(NAME, 0, 10))


def test_sqlite_lock_holds_a_second_writer_back(store: GatewayStore, tmp_path: Path) -> None:
    # A second engine is what a second process would have: only BEGIN IMMEDIATE can make it wait.
    other = GatewayStore(f"sqlite:///{tmp_path / 'gateway.db'}")
    try:
        assert lock_order(store, other, NAME, NAME) == ["holder released", "waiter entered"]
    finally:
        other.engine.dispose()


def test_settings_defaults_are_safe() -> None:
    settings = RegistryGatewaySettings(tokens={"operator": SecretStr("Zq8vT1mB4xW7nR2kL9pC")})
    assert settings.allowed_source_prefixes == ["mlflow-artifacts:/", "models:/", "runs:/"]
    assert settings.database_url.get_secret_value().startswith("sqlite:///")
