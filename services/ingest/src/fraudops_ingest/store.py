"""Ingest's own database: which transaction ids were already produced, and the label store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError

from fraudops.contracts.messages import Label, LabelSource
from fraudops.errors import DependencyUnavailableError

metadata = MetaData()

accepted_transactions = Table(
    "accepted_transactions",
    metadata,
    Column("transaction_id", String(128), primary_key=True),
    # pending: reserved, being produced; produced: acknowledged by Kafka.
    Column("status", String(16), nullable=False),
    Column("reserved_at", DateTime(timezone=True), nullable=False),
)

labels = Table(
    "labels",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", String(128), nullable=False, index=True),
    Column("is_fraud", Boolean, nullable=False),
    Column("source", String(16), nullable=False),
    Column("known_at", DateTime(timezone=True), nullable=False, index=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("note", String(1000)),
    Column("principal", String(128), nullable=False),
)


@dataclass(frozen=True)
class StoredLabel:
    transaction_id: str
    is_fraud: bool
    source: LabelSource
    known_at: datetime


def _as_utc(value: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IngestStore:
    """Synchronous SQLAlchemy store; the service calls it from a worker thread."""

    def __init__(self, url: str) -> None:
        connect_args = {"check_same_thread": False} if url.startswith("sqlite") else {}
        self.engine: Engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    def create_schema(self) -> None:
        try:
            metadata.create_all(self.engine)
        except OperationalError as exc:
            raise DependencyUnavailableError(f"ingest database unreachable: {exc.orig}") from exc

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    def reserve(self, transaction_ids: Sequence[str]) -> set[str]:
        """Reserve ids for producing; returns those already produced (duplicates).

        An id left pending by a crashed earlier attempt is produced again: delivery is at least once.
        """
        now = datetime.now(UTC)
        rows = [{"transaction_id": tid, "status": "pending", "reserved_at": now} for tid in transaction_ids]
        with self.engine.begin() as conn:
            if rows:
                conn.execute(self._insert_ignoring_conflicts(), rows)
            return set(
                conn.scalars(
                    select(accepted_transactions.c.transaction_id).where(
                        accepted_transactions.c.transaction_id.in_(transaction_ids),
                        accepted_transactions.c.status == "produced",
                    )
                )
            )

    def _insert_ignoring_conflicts(self) -> Insert:
        if self.engine.dialect.name == "postgresql":
            return postgresql_insert(accepted_transactions).on_conflict_do_nothing()
        return sqlite_insert(accepted_transactions).on_conflict_do_nothing()

    def mark_produced(self, transaction_ids: Iterable[str]) -> None:
        ids = list(transaction_ids)
        if ids:
            with self.engine.begin() as conn:
                conn.execute(
                    update(accepted_transactions)
                    .where(accepted_transactions.c.transaction_id.in_(ids))
                    .values(status="produced")
                )

    def release(self, transaction_ids: Iterable[str]) -> None:
        """Forget reservations whose produce failed, so the client's retry is not taken for a duplicate."""
        ids = list(transaction_ids)
        if ids:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(accepted_transactions).where(
                        accepted_transactions.c.transaction_id.in_(ids), accepted_transactions.c.status == "pending"
                    )
                )

    def add_labels(self, items: Sequence[Label], principal: str) -> None:
        if not items:
            return  # SQLAlchemy runs an insert with an empty parameter list as one row of NULLs
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                insert(labels),
                [
                    {
                        "transaction_id": item.transaction_id,
                        "is_fraud": item.is_fraud,
                        "source": item.source.value,
                        "known_at": item.known_at,
                        "received_at": now,
                        "note": item.note,
                        "principal": principal,
                    }
                    for item in items
                ],
            )

    def labels_known_at(self, as_of: datetime, limit: int, after_id: int) -> tuple[list[StoredLabel], int | None]:
        """Each transaction's verdict as it stood at `as_of` (the label known last), paged by row id."""
        ranked = (
            select(
                labels.c.id,
                labels.c.transaction_id,
                labels.c.is_fraud,
                labels.c.source,
                labels.c.known_at,
                func.row_number()
                .over(partition_by=labels.c.transaction_id, order_by=(labels.c.known_at.desc(), labels.c.id.desc()))
                .label("rank"),
            )
            .where(labels.c.known_at <= as_of)
            .subquery()
        )
        query = (
            select(ranked.c.id, ranked.c.transaction_id, ranked.c.is_fraud, ranked.c.source, ranked.c.known_at)
            .where(ranked.c.rank == 1, ranked.c.id > after_id)
            .order_by(ranked.c.id)
            .limit(limit + 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        page = [
            StoredLabel(row.transaction_id, row.is_fraud, LabelSource(row.source), _as_utc(row.known_at))
            for row in rows[:limit]
        ]
        next_after = rows[limit - 1].id if len(rows) > limit else None
        return page, next_after


datasets = Table(
    "datasets",
    metadata,
    Column("dataset_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),  # queued, validating, ready, failed
    Column("source", String(16), nullable=False),  # upload, simulation or stream
    Column("name", String(128), nullable=False),
    Column("idempotency_key", String(256), unique=True),
    Column("request", JSON, nullable=False),  # what is needed to (re)run the job
    Column("summary", JSON),
    Column("error", String(2000)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class DatasetRecord:
    dataset_id: str
    status: str
    source: str
    name: str
    idempotency_key: str | None
    request: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class DatasetCatalog:
    """Status and summary of every dataset job, in ingest's database."""

    def __init__(self, store: IngestStore) -> None:
        self.engine = store.engine

    def _record(self, row: Any) -> DatasetRecord:
        return DatasetRecord(
            dataset_id=row.dataset_id,
            status=row.status,
            source=row.source,
            name=row.name,
            idempotency_key=row.idempotency_key,
            request=row.request,
            summary=row.summary,
            error=row.error,
            created_at=_as_utc(row.created_at),
            updated_at=_as_utc(row.updated_at),
        )

    def get(self, dataset_id: str) -> DatasetRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(datasets).where(datasets.c.dataset_id == dataset_id)).first()
        return self._record(row) if row else None

    def by_idempotency_key(self, key: str) -> DatasetRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(datasets).where(datasets.c.idempotency_key == key)).first()
        return self._record(row) if row else None

    def create(
        self, dataset_id: str, source: str, name: str, request: dict[str, Any], idempotency_key: str | None
    ) -> tuple[DatasetRecord, bool]:
        """Insert a queued dataset; when the id exists already, return the existing one (False)."""
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(datasets).values(
                        dataset_id=dataset_id,
                        status="queued",
                        source=source,
                        name=name,
                        idempotency_key=idempotency_key,
                        request=request,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            existing = self.get(dataset_id)
            if existing is None:
                raise
            return existing, False
        created = self.get(dataset_id)
        assert created is not None
        return created, True

    def requeue(self, dataset_id: str, request: dict[str, Any]) -> DatasetRecord:
        with self.engine.begin() as conn:
            conn.execute(
                update(datasets)
                .where(datasets.c.dataset_id == dataset_id)
                .values(status="queued", request=request, error=None, summary=None, updated_at=datetime.now(UTC))
            )
        record = self.get(dataset_id)
        assert record is not None
        return record

    def set_status(
        self, dataset_id: str, status: str, summary: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(datasets)
                .where(datasets.c.dataset_id == dataset_id)
                .values(status=status, summary=summary, error=error, updated_at=datetime.now(UTC))
            )

    def unfinished(self) -> list[DatasetRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(datasets).where(datasets.c.status.in_(("queued", "validating"))).order_by(datasets.c.created_at)
            ).all()
        return [self._record(row) for row in rows]

    def listing(self, limit: int) -> list[DatasetRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(datasets).order_by(datasets.c.created_at.desc()).limit(limit)).all()
        return [self._record(row) for row in rows]
