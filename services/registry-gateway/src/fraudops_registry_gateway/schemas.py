"""Request and response bodies of the gateway's API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from fraudops.contracts.messages import ModelEventType
from fraudops_registry_gateway.stages import TARGET_WORDS, Alias, Stage, parse_target
from fraudops_registry_gateway.store import AuditRecord

# Quote-free on purpose: names go into MLflow search filters.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VERSION_PATTERN = r"^[1-9][0-9]{0,8}$"

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromoteRequest(_Body):
    target: Annotated[
        str,
        Field(
            description="champion/Production, challenger/Staging, or archived/Archived (case-insensitive).",
            json_schema_extra={"enum": list(TARGET_WORDS)},
        ),
    ]
    reason: Reason = Field(description="Why; kept in the audit log and the model event.")

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str) -> str:
        parse_target(value)
        return value


class ChangeRequest(_Body):
    reason: Reason = Field(description="Why; kept in the audit log and the model event.")


class FallbackRequest(_Body):
    enabled: bool = Field(description="true: scorers use the rules fallback instead of any model.")
    reason: Reason = Field(description="Why; kept in the audit log and the model event.")


class ValidateRequest(_Body):
    note: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        default=None, description="Optional context kept with the validation report."
    )


class AuditEntry(BaseModel):
    id: int
    event_id: str
    event_type: ModelEventType
    alias: str | None
    from_version: str | None
    to_version: str | None
    principal: str
    reason: str
    occurred_at: datetime
    details: dict[str, Any] | None
    delivered: bool = Field(description="Whether the model event is on the topic yet (it is retried until so).")

    @classmethod
    def of(cls, record: AuditRecord) -> AuditEntry:
        return cls(
            id=record.id,
            event_id=record.event_id,
            event_type=record.event_type,
            alias=record.alias,
            from_version=record.from_version,
            to_version=record.to_version,
            principal=record.principal,
            reason=record.reason,
            occurred_at=record.occurred_at,
            details=record.details,
            delivered=record.delivered,
        )


class HistoryPage(BaseModel):
    model_name: str
    entries: list[AuditEntry]
    next_after: int | None = Field(description="Cursor for the next page (`after`), null on the last page.")


class VersionView(BaseModel):
    version: str
    stage: Stage
    aliases: list[str]
    status: str
    source: str
    run_id: str | None
    created_at: datetime | None
    validation_status: str | None
    validation_report: dict[str, Any] | None
    metrics: dict[str, float] = Field(description="The trainer's metric.* tags.")
    tags: dict[str, str]


class ModelView(BaseModel):
    name: str
    aliases: dict[str, str]
    champion: str | None
    challenger: str | None
    fallback: bool
    previous_champions: list[str] = Field(description="Rollback order: the last one returns first.")
    versions: list[VersionView]


class ServingModel(BaseModel):
    """What a scorer needs to load and apply the version an alias points at."""

    model_name: str
    alias: Alias
    stage: Stage
    version: str
    model_uri: str
    run_id: str | None
    threshold_review: float | None
    threshold_decline: float | None
    feature_version: str | None
    feature_names: list[str] | None
    label_delay_days: int | None
    dataset_id: str | None
    validation_status: str | None
    fallback: bool = Field(description="true: use the rules fallback instead of any model.")


class ValidationResult(BaseModel):
    model_name: str
    version: str
    validation_status: str = Field(description="passed or failed")
    reasons: list[str]
    notes: list[str]
    metrics: dict[str, float] | None
    champion_version: str | None
    champion_metrics: dict[str, float] | None
    evaluation_rows: int
    record: AuditEntry


class FallbackState(BaseModel):
    model_name: str
    fallback: bool
    changed: bool
    record: AuditEntry | None
