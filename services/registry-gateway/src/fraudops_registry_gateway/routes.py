"""The gateway's endpoints: read models and their history; validate, promote, roll back, switch fallback."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from fraudops.auth import Principal, RequireAction
from fraudops.errors import NotFoundError
from fraudops.service import ErrorResponse
from fraudops_registry_gateway.contract import recorded_metrics, serving_parameters
from fraudops_registry_gateway.operations import REPORT_TAG, STATUS_TAG, Operations, fallback_enabled
from fraudops_registry_gateway.registry import MlflowRegistry, ModelInfo, VersionInfo, json_tag
from fraudops_registry_gateway.schemas import (
    MODEL_NAME_PATTERN,
    VERSION_PATTERN,
    AuditEntry,
    ChangeRequest,
    FallbackRequest,
    FallbackState,
    HistoryPage,
    ModelView,
    PromoteRequest,
    ServingModel,
    ValidateRequest,
    ValidationResult,
    VersionView,
)
from fraudops_registry_gateway.stages import Alias, parse_alias, parse_target, stage_of
from fraudops_registry_gateway.store import GatewayStore

router = APIRouter(prefix="/v1/models", tags=["registry"])

ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Registered model name.")]
Version = Annotated[str, Path(pattern=VERSION_PATTERN, description="Model version number.")]
AliasWord = Literal["champion", "challenger", "Production", "Staging", "production", "staging"]

READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such model, version or alias."},
    503: {
        "model": ErrorResponse,
        "description": "MLflow or the gateway's database is unreachable; `detail` says which.",
    },
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_RESPONSES,
    409: {"model": ErrorResponse, "description": "The change is not allowed now; `detail` says why."},
    503: {
        "model": ErrorResponse,
        "description": "MLflow or the gateway's database is unreachable; nothing was changed. Retry later.",
    },
}


def _operations(request: Request) -> Operations:
    operations: Operations = request.app.state.operations
    return operations


def _registry(request: Request) -> MlflowRegistry:
    registry: MlflowRegistry = request.app.state.registry
    return registry


def _store(request: Request) -> GatewayStore:
    store: GatewayStore = request.app.state.store
    return store


def _version_view(version: VersionInfo, aliases: dict[str, str], retired: list[str]) -> VersionView:
    report = json_tag(version.tags, REPORT_TAG)
    return VersionView(
        version=version.version,
        stage=stage_of(version.version, aliases, retired),
        aliases=sorted(version.aliases),
        status=version.status,
        source=version.source,
        run_id=version.run_id,
        created_at=version.created_at,
        validation_status=version.tags.get(STATUS_TAG),
        validation_report=report if isinstance(report, dict) else None,
        metrics=recorded_metrics(version.tags),
        tags=version.tags,
    )


@router.get(
    "/{name}",
    summary="A model's versions with metrics, tags, validation, aliases and stages",
    response_model=ModelView,
    responses=READ_RESPONSES,
)
async def get_model(request: Request, name: ModelName) -> ModelView:
    registry = _registry(request)
    model: ModelInfo = await asyncio.to_thread(registry.model, name)
    versions = await asyncio.to_thread(registry.versions, name)
    state = await asyncio.to_thread(_store(request).state, name)
    return ModelView(
        name=model.name,
        aliases=model.aliases,
        champion=model.aliases.get(Alias.CHAMPION.value),
        challenger=model.aliases.get(Alias.CHALLENGER.value),
        fallback=fallback_enabled(model.tags),
        previous_champions=state.previous_champions,
        versions=[_version_view(v, model.aliases, state.retired_versions) for v in versions],
    )


@router.get(
    "/{name}/history",
    summary="Every change of the model, oldest first: who, when, from which version to which, why",
    response_model=HistoryPage,
    responses=READ_RESPONSES,
)
async def get_history(
    request: Request,
    name: ModelName,
    # Audit ids are 32-bit integers in the database; a larger cursor would fail the query.
    after: Annotated[int, Query(ge=0, le=2**31 - 1, description="Cursor from the previous page's next_after.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HistoryPage:
    records = await asyncio.to_thread(_store(request).history, name, after, limit + 1)
    page = records[:limit]
    return HistoryPage(
        model_name=name,
        entries=[AuditEntry.of(record) for record in page],
        next_after=page[-1].id if len(records) > limit else None,
    )


@router.get(
    "/{name}/{alias}",
    summary="The version an alias (champion/Production, challenger/Staging) serves, and what a scorer needs to load it",
    response_model=ServingModel,
    responses=READ_RESPONSES,
)
async def get_serving_model(
    request: Request,
    name: ModelName,
    alias: Annotated[AliasWord, Path(description="champion, challenger, Production or Staging.")],
) -> ServingModel:
    registry = _registry(request)
    wanted = parse_alias(alias)
    model = await asyncio.to_thread(registry.model, name)
    version = model.aliases.get(wanted.value)
    if version is None:
        raise NotFoundError(f"model {name!r} has no {wanted.value}")
    info = await asyncio.to_thread(registry.version, name, version)
    state = await asyncio.to_thread(_store(request).state, name)
    params = serving_parameters(info.tags)
    return ServingModel(
        model_name=name,
        alias=wanted,
        stage=stage_of(version, model.aliases, state.retired_versions),
        version=version,
        model_uri=f"models:/{name}/{version}",
        run_id=info.run_id,
        threshold_review=params.threshold_review,
        threshold_decline=params.threshold_decline,
        feature_version=params.feature_version,
        feature_names=params.feature_names,
        label_delay_days=params.label_delay_days,
        dataset_id=params.dataset_id,
        validation_status=info.tags.get(STATUS_TAG),
        fallback=fallback_enabled(model.tags),
    )


@router.post(
    "/{name}/versions/{version}/validate",
    summary="Run the quality gate on a version and record passed or failed with the reasons",
    response_model=ValidationResult,
    responses=WRITE_RESPONSES,
)
async def validate_version(
    request: Request,
    principal: Annotated[Principal, Depends(RequireAction("models:validate"))],
    name: ModelName,
    version: Version,
    body: Annotated[ValidateRequest | None, Body()] = None,
) -> ValidationResult:
    outcome, record = await _operations(request).validate(name, version, principal.name, body.note if body else None)
    report = outcome.report()
    return ValidationResult(
        model_name=name,
        version=version,
        validation_status=outcome.status,
        reasons=outcome.reasons,
        notes=outcome.notes,
        metrics=report["metrics"],
        champion_version=outcome.champion_version,
        champion_metrics=report["champion_metrics"],
        evaluation_rows=outcome.evaluation_rows,
        record=AuditEntry.of(record),
    )


@router.post(
    "/{name}/versions/{version}/promote",
    summary="Make a validated version the champion or challenger, or archive a version",
    response_model=AuditEntry,
    responses=WRITE_RESPONSES,
)
async def promote_version(
    request: Request,
    principal: Annotated[Principal, Depends(RequireAction("models:promote"))],
    name: ModelName,
    version: Version,
    body: PromoteRequest,
) -> AuditEntry:
    record = await _operations(request).promote(name, version, parse_target(body.target), principal.name, body.reason)
    return AuditEntry.of(record)


@router.post(
    "/{name}/rollback", summary="Bring the previous champion back", response_model=AuditEntry, responses=WRITE_RESPONSES
)
async def rollback(
    request: Request,
    principal: Annotated[Principal, Depends(RequireAction("models:rollback"))],
    name: ModelName,
    body: ChangeRequest,
) -> AuditEntry:
    return AuditEntry.of(await _operations(request).rollback(name, principal.name, body.reason))


@router.post(
    "/{name}/fallback",
    summary="Tell scorers to use the rules fallback instead of any model (on), or models again (off)",
    response_model=FallbackState,
    responses=WRITE_RESPONSES,
)
async def set_fallback(
    request: Request,
    principal: Annotated[Principal, Depends(RequireAction("models:fallback"))],
    name: ModelName,
    body: FallbackRequest,
) -> FallbackState:
    record = await _operations(request).set_fallback(name, body.enabled, principal.name, body.reason)
    return FallbackState(
        model_name=name,
        fallback=body.enabled,
        changed=record is not None,
        record=AuditEntry.of(record) if record else None,
    )
