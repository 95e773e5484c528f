"""The gateway's own database: per-model lock rows, the audit log and the outbox of model events.

An audit row and its pending event are written in one transaction, so a change is never recorded without
the event that announces it (the outbox publisher delivers it later, however long Kafka is away).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from fraudops.contracts.messages import ModelEvent, ModelEventType
from fraudops.errors import DependencyUnavailableError

metadata = MetaData()

model_state = Table(
    "model_state",
    metadata,
    # One row per model: the row every change of that model locks, so changes happen one after another.
    Column("model_name", String(256), primary_key=True),
    # Champions that were replaced, oldest first: rollback returns the last one.
    Column("previous_champions", JSON, nullable=False),
    Column("retired_versions", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("model_name", String(256), nullable=False, index=True),
    Column("event_type", String(16), nullable=False),
    Column("alias", String(16)),
    Column("from_version", String(16)),
    Column("to_version", String(16)),
    Column("principal", String(128), nullable=False),
    Column("reason", String(2000), nullable=False),
    Column("details", JSON),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("audit_id", Integer, ForeignKey("audit_log.id"), nullable=False, unique=True),
    Column("topic", String(249), nullable=False),
    Column("key", String(256), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", String(500)),
)

# Execution option asking the SQLite connection for a write lock at BEGIN (see _sqlite_engine).
_IMMEDIATE = "fraudops_begin_immediate"


def _as_utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_engine(url: str) -> Engine:
    # pysqlite's own transaction handling defers BEGIN until the first write, which would let two
    # changes read the same state; the driver is put in autocommit and SQLAlchemy emits BEGIN itself.
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets history reads go on while a change holds the write lock.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the database's write lock now: the SQLite stand-in for SELECT ... FOR UPDATE.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")

    return engine


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver the workspace ships; SQLAlchemy would otherwise look for psycopg2.
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True)


@dataclass
class ModelState:
    model_name: str
    previous_champions: list[str] = field(default_factory=list)
    retired_versions: list[str] = field(default_factory=list)

    def retire(self, version: str | None) -> None:
        if version is not None and version not in self.retired_versions:
            self.retired_versions.append(version)

    def reinstate(self, version: str) -> None:
        self.retired_versions = [v for v in self.retired_versions if v != version]


@dataclass(frozen=True)
class Change:
    """What one audit row records: who changed what, from which version to which, and why."""

    model_name: str
    event_type: ModelEventType
    principal: str
    reason: str
    alias: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditRecord:
    id: int
    event_id: str
    model_name: str
    event_type: ModelEventType
    alias: str | None
    from_version: str | None
    to_version: str | None
    principal: str
    reason: str
    details: dict[str, Any] | None
    occurred_at: datetime
    delivered: bool


@dataclass(frozen=True)
class PendingEvent:
    id: int
    topic: str
    key: str
    payload: bytes
    attempts: int


def _record(row: Any, delivered: bool) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        event_id=row.event_id,
        model_name=row.model_name,
        event_type=ModelEventType(row.event_type),
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        principal=row.principal,
        reason=row.reason,
        details=row.details,
        occurred_at=_as_utc(row.occurred_at),
        delivered=delivered,
    )


class ModelTransaction:
    """A change of one model in progress: its locked state, and what the change records."""

    def __init__(self, conn: Connection, state: ModelState, topic: str) -> None:
        self.conn = conn
        self.state = state
        self.topic = topic

    def last_validation(self, version: str) -> AuditRecord | None:
        row = self.conn.execute(
            select(audit_log)
            .where(
                audit_log.c.model_name == self.state.model_name,
                audit_log.c.event_type == ModelEventType.VALIDATED.value,
                audit_log.c.to_version == version,
            )
            .order_by(audit_log.c.id.desc())
            .limit(1)
        ).first()
        return _record(row, delivered=False) if row else None

    def record(self, change: Change) -> AuditRecord:
        """Append the audit row and its pending event; both commit (or neither) with the transaction."""
        occurred = datetime.now(UTC)
        event_id = str(uuid.uuid4())
        message = ModelEvent(
            event_id=event_id,
            model_name=change.model_name,
            event_type=change.event_type,
            alias=change.alias,
            from_version=change.from_version,
            to_version=change.to_version,
            principal=change.principal,
            reason=change.reason,
            occurred_at=occurred,
        )
        audit_id = self.conn.execute(
            insert(audit_log)
            .values(
                event_id=event_id,
                model_name=change.model_name,
                event_type=change.event_type.value,
                alias=change.alias,
                from_version=change.from_version,
                to_version=change.to_version,
                principal=change.principal,
                reason=change.reason,
                details=change.details,
                occurred_at=message.occurred_at,
            )
            .returning(audit_log.c.id)
        ).scalar_one()
        self.conn.execute(
            insert(outbox).values(
                audit_id=audit_id,
                topic=self.topic,
                key=change.model_name,
                payload=message.to_avro(),
                created_at=occurred,
                attempts=0,
            )
        )
        return AuditRecord(
            id=audit_id,
            event_id=event_id,
            model_name=change.model_name,
            event_type=change.event_type,
            alias=change.alias,
            from_version=change.from_version,
            to_version=change.to_version,
            principal=change.principal,
            reason=change.reason,
            details=change.details,
            occurred_at=message.occurred_at,
            delivered=False,
        )

    def save_state(self) -> None:
        self.conn.execute(
            update(model_state)
            .where(model_state.c.model_name == self.state.model_name)
            .values(
                previous_champions=list(self.state.previous_champions),
                retired_versions=list(self.state.retired_versions),
                updated_at=datetime.now(UTC),
            )
        )


class GatewayStore:
    """Synchronous SQLAlchemy store; the service calls it from worker threads."""

    def __init__(self, url: str, topic: str = "model-events") -> None:
        self.engine = make_engine(url)
        self.topic = topic

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    def create_schema(self) -> None:
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise DependencyUnavailableError(
                f"registry-gateway database unreachable: {exc.__class__.__name__}"
            ) from exc

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def _ensure_row(self, conn: Connection, name: str) -> None:
        values = {"model_name": name, "previous_champions": [], "retired_versions": [], "updated_at": datetime.now(UTC)}
        statement = (
            postgresql_insert(model_state) if self.dialect == "postgresql" else sqlite_insert(model_state)
        ).on_conflict_do_nothing(index_elements=["model_name"])
        conn.execute(statement.values(**values))

    @contextmanager
    def locked(self, name: str) -> Iterator[ModelTransaction]:
        """Hold the model's lock for the block; commit on normal exit, roll back on an exception.

        Postgres locks the model's row (SELECT ... FOR UPDATE), so other models are not held up; SQLite
        has only a database-wide write lock (BEGIN IMMEDIATE), fine for the one local process it serves.
        """
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(**{_IMMEDIATE: True})
            with conn.begin():
                self._ensure_row(conn, name)
                row = conn.execute(select(model_state).where(model_state.c.model_name == name).with_for_update()).one()
                state = ModelState(name, list(row.previous_champions), list(row.retired_versions))
                yield ModelTransaction(conn, state, self.topic)

    def state(self, name: str) -> ModelState:
        with self.engine.connect() as conn:
            row = conn.execute(select(model_state).where(model_state.c.model_name == name)).first()
        if row is None:
            return ModelState(name)
        return ModelState(name, list(row.previous_champions), list(row.retired_versions))

    def history(self, name: str, after: int, limit: int) -> list[AuditRecord]:
        query = (
            select(audit_log, outbox.c.delivered_at)
            .join(outbox, outbox.c.audit_id == audit_log.c.id, isouter=True)
            .where(audit_log.c.model_name == name, audit_log.c.id > after)
            .order_by(audit_log.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_record(row, delivered=row.delivered_at is not None) for row in rows]

    def pending_events(self, limit: int) -> list[PendingEvent]:
        query = (
            select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.payload, outbox.c.attempts)
            .where(outbox.c.delivered_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [PendingEvent(row.id, row.topic, row.key, bytes(row.payload), row.attempts) for row in rows]

    def pending_count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(outbox).where(outbox.c.delivered_at.is_(None))
                ).scalar_one()
            )

    def mark_delivered(self, event_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == event_id)
                .values(delivered_at=datetime.now(UTC), attempts=outbox.c.attempts + 1, last_error=None)
            )

    def mark_failed(self, event_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == event_id)
                .values(attempts=outbox.c.attempts + 1, last_error=error[:500])
            )
