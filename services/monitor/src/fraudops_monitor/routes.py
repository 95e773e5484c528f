"""The monitor's HTTP API: evaluations, debugging reports, the alert webhook and the actions it took."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from fraudops.auth import Principal, RequireAction
from fraudops.service import ErrorResponse
from fraudops_monitor.actions import ActionDispatcher, ActionRecord, OutcomeReport
from fraudops_monitor.alerts import AlertmanagerNotification
from fraudops_monitor.evaluator import EVALUATIONS_KEPT, Evaluator
from fraudops_monitor.reports import ReportStore, ReportView

router = APIRouter(prefix="/v1", tags=["monitor"])

ActionId = Annotated[str, Field(pattern=r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")]


def _evaluator(request: Request) -> Evaluator:
    evaluator: Evaluator = request.app.state.evaluator
    return evaluator


def _reports(request: Request) -> ReportStore:
    reports: ReportStore = request.app.state.reports
    return reports


def _dispatcher(request: Request) -> ActionDispatcher:
    dispatcher: ActionDispatcher = request.app.state.dispatcher
    return dispatcher


class ReportRequest(BaseModel):
    reason: str = Field(default="requested", min_length=1, max_length=1000)


class AlertsReceived(BaseModel):
    received: int
    actions: list[ActionRecord]


@router.get("/status", summary="The last evaluation: model, window, drift and live accuracy")
async def status(request: Request) -> dict[str, Any]:
    evaluator = _evaluator(request)
    last = evaluator.last
    return {
        "last_evaluation": last.summary() if last else None,
        "window_transactions": len(evaluator.features),
        "scored_transactions": len(evaluator.scored),
        "labels_pending": evaluator.scored.pending,
        "labels_unmatched": evaluator.scored.unmatched,
    }


@router.get("/evaluations", summary="Recent evaluations (kept in memory), newest first")
async def list_evaluations(
    request: Request, limit: Annotated[int, Query(ge=1, le=EVALUATIONS_KEPT)] = 50
) -> list[dict[str, Any]]:
    return [evaluation.summary() for evaluation in reversed(_evaluator(request).history[-limit:])]


@router.post(
    "/reports", status_code=201, response_model=ReportView, summary="Evaluate now and keep it as a debugging report"
)
async def create_report(
    request: Request,
    principal: Annotated[Principal, Depends(RequireAction("reports:create"))],
    body: ReportRequest | None = None,
) -> ReportView:
    reason = (body or ReportRequest()).reason
    evaluation = await _evaluator(request).evaluate(reason=f"{reason} (by {principal.name})", keep_report=True)
    assert evaluation.report is not None
    return evaluation.report


@router.get("/reports", response_model=list[ReportView], summary="Debugging reports, newest first")
async def list_reports(request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[ReportView]:
    return _reports(request).list(limit)


@router.get(
    "/reports/{report_id}",
    summary="A report: Evidently's HTML (default), Evidently's JSON, or the monitor's summary",
    response_model=None,
    responses={
        200: {
            "description": "The report in the format asked for.",
            "content": {
                "text/html": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
        404: {"model": ErrorResponse, "description": "No such report, or none in that format."},
    },
)
async def get_report(
    request: Request, report_id: str, format: Literal["html", "json", "summary"] = "html"
) -> FileResponse | JSONResponse:
    store = _reports(request)
    if format == "summary":
        return JSONResponse(store.get(report_id).model_dump(mode="json"))
    path = store.file(report_id, format)
    media = "text/html" if format == "html" else "application/json"
    return FileResponse(path, media_type=media)


@router.post(
    "/alerts",
    status_code=202,
    response_model=AlertsReceived,
    summary="Alertmanager's webhook: record and start the actions the firing alerts call for",
)
async def receive_alerts(
    request: Request,
    principal: Annotated[Principal, Depends(RequireAction("alerts:receive"))],
    notification: AlertmanagerNotification,
) -> AlertsReceived:
    created = _dispatcher(request).receive(notification)
    return AlertsReceived(received=len(notification.alerts), actions=created)


@router.get("/actions", response_model=list[ActionRecord], summary="Actions taken on alerts, newest first")
async def list_actions(request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ActionRecord]:
    return _dispatcher(request).log.all(limit)


@router.get(
    "/actions/{action_id}",
    response_model=ActionRecord,
    summary="One action",
    responses={404: {"model": ErrorResponse, "description": "No such action."}},
)
async def get_action(request: Request, action_id: ActionId) -> ActionRecord:
    return _dispatcher(request).log.get(action_id)


@router.post(
    "/actions/{action_id}/outcome",
    response_model=ActionRecord,
    summary="How a workflow the monitor started ended (the retraining DAG reports here)",
    responses={
        404: {"model": ErrorResponse, "description": "No such action."},
        409: {"model": ErrorResponse, "description": "Not a retraining, or not a final outcome."},
    },
)
async def record_outcome(
    request: Request,
    principal: Annotated[Principal, Depends(RequireAction("actions:report"))],
    action_id: ActionId,
    body: OutcomeReport,
) -> ActionRecord:
    return _dispatcher(request).outcome(action_id, body)
