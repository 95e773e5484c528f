"""What the monitor did about each alert: one record per action, kept on disk, visible at GET /v1/actions.

One incident, one action: a repeated notification of the same alert (same fingerprint and start) is a
duplicate, and an action of a kind already taken for the model within the cooldown is recorded as
suppressed, pointing at the action that covers it. Actions run in the background; the webhook answers
at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from fraudops.errors import ConflictError, FraudOpsError, NotFoundError
from fraudops_monitor.alerts import Alert, AlertmanagerNotification, remediation
from fraudops_monitor.clients import AirflowClient, GatewayClient
from fraudops_monitor.evaluator import Evaluator
from fraudops_monitor.metrics import MonitorMetrics
from fraudops_monitor.settings import ActionKind, MonitorSettings

log = logging.getLogger(__name__)


class ActionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # started elsewhere (a DAG run), waiting for its outcome
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class ActionRecord(BaseModel):
    id: str
    kind: ActionKind
    status: ActionStatus
    alertname: str
    incident: str
    model_name: str
    reason: str
    created_at: datetime
    updated_at: datetime
    detail: str = ""
    covered_by: str | None = None
    report_id: str | None = None
    dag_run_id: str | None = None
    model_version: str | None = None


class OutcomeReport(BaseModel):
    """What a workflow started by an action (the retraining DAG) reports back."""

    outcome: ActionStatus
    detail: str = Field(default="", max_length=2000)
    dag_run_id: str | None = Field(default=None, max_length=250)
    model_version: str | None = Field(default=None, max_length=64)


class ActionLog:
    """Records in a JSON file rewritten atomically: a restarted monitor keeps its cooldowns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, ActionRecord] = {}
        if path.exists():
            for raw in json.loads(path.read_text()):
                record = ActionRecord.model_validate(raw)
                self._records[record.id] = record

    def all(self, limit: int = 100) -> list[ActionRecord]:
        return sorted(self._records.values(), key=lambda r: r.created_at, reverse=True)[:limit]

    def get(self, action_id: str) -> ActionRecord:
        record = self._records.get(action_id)
        if record is None:
            raise NotFoundError(f"no action {action_id!r}")
        return record

    def put(self, record: ActionRecord) -> ActionRecord:
        self._records[record.id] = record
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([r.model_dump(mode="json") for r in self._records.values()]))
        tmp.replace(self.path)
        return record

    def update(self, action_id: str, **changes: Any) -> ActionRecord:
        record = self.get(action_id)
        return self.put(record.model_copy(update={**changes, "updated_at": datetime.now(UTC)}))

    def seen(self, incident: str, kind: ActionKind) -> bool:
        return any(r.incident == incident and r.kind == kind for r in self._records.values())

    def covering(self, kind: ActionKind, model_name: str, key: str | None, since: datetime) -> ActionRecord | None:
        """A recent action of `kind` (for the same alert name when `key` is given) that did not fail."""
        for record in self.all(limit=len(self._records)):
            if record.created_at < since:
                break
            if (
                record.kind == kind
                and record.model_name == model_name
                and record.status not in (ActionStatus.FAILED, ActionStatus.SUPPRESSED)
                and (key is None or record.alertname == key)
            ):
                return record
        return None


class ActionDispatcher:
    def __init__(
        self,
        settings: MonitorSettings,
        metrics: MonitorMetrics,
        evaluator: Evaluator,
        log_: ActionLog,
        airflow: AirflowClient,
        gateway: GatewayClient,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.evaluator = evaluator
        self.log = log_
        self.airflow = airflow
        self.gateway = gateway
        self._tasks: set[asyncio.Task[None]] = set()

    def receive(self, notification: AlertmanagerNotification) -> list[ActionRecord]:
        """Record the actions a notification calls for and start them; return the new records."""
        created: list[ActionRecord] = []
        performance = self.evaluator.last.performance if self.evaluator.last else None
        for alert in notification.alerts:
            self.metrics.alerts_received.labels(alert.name, alert.status).inc()
            if alert.status != "firing":
                continue
            kinds = [ActionKind.REPORT]
            kind = remediation(alert, self.settings.policy, performance)
            if kind is not ActionKind.REPORT:
                kinds.append(kind)
            for each in kinds:
                if not self.log.seen(alert.incident, each):
                    created.append(self._record(alert, each))
        for record in created:
            if record.status is ActionStatus.PENDING:
                task = asyncio.create_task(self._execute(record.id, alert_for(notification, record)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self.metrics.actions.labels(record.kind.value, record.status.value).inc()
        return created

    def _record(self, alert: Alert, kind: ActionKind) -> ActionRecord:
        now = datetime.now(UTC)
        model_name = alert.labels.get("model_name", self.settings.model_name)
        report = kind is ActionKind.REPORT
        cooldown = self.settings.policy.report_cooldown_s if report else self.settings.policy.cooldown_s
        covering = self.log.covering(
            kind, model_name, alert.name if report else None, now - timedelta(seconds=cooldown)
        )
        summary = alert.annotations.get("summary") or alert.annotations.get("description") or ""
        record = ActionRecord(
            id=now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4),
            kind=kind,
            status=ActionStatus.SUPPRESSED if covering else ActionStatus.PENDING,
            alertname=alert.name,
            incident=alert.incident,
            model_name=model_name,
            reason=f"{alert.name}: {summary}".strip().rstrip(":")[:1000],
            created_at=now,
            updated_at=now,
            covered_by=covering.id if covering else None,
            detail=f"covered by {covering.id} ({covering.status.value}) within the cooldown" if covering else "",
        )
        log.info("alert action", extra={"action": kind.value, "status": record.status.value, "alert": alert.name})
        return self.log.put(record)

    async def _execute(self, action_id: str, alert: Alert) -> None:
        record = self.log.get(action_id)
        try:
            changes = await self._perform(record, alert)
        except FraudOpsError as exc:
            changes = {"status": ActionStatus.FAILED, "detail": str(exc)}
        except Exception as exc:
            log.exception("action failed", extra={"action": record.kind.value})
            changes = {"status": ActionStatus.FAILED, "detail": f"{exc.__class__.__name__}: {exc}"}
        updated = self.log.update(action_id, **changes)
        self.metrics.actions.labels(updated.kind.value, updated.status.value).inc()

    async def _perform(self, record: ActionRecord, alert: Alert) -> dict[str, Any]:
        if record.kind is ActionKind.REPORT:
            evaluation = await self.evaluator.evaluate(reason=record.reason, keep_report=True)
            assert evaluation.report is not None
            detail = evaluation.skipped or "report written"
            return {"status": ActionStatus.SUCCEEDED, "report_id": evaluation.report.id, "detail": detail}
        if record.kind is ActionKind.RETRAIN:
            run_id = await self.airflow.trigger(
                self.settings.airflow.retrain_dag_id, f"monitor-{record.id}", self._retrain_conf(record, alert)
            )
            return {"status": ActionStatus.RUNNING, "dag_run_id": run_id, "detail": "retraining DAG triggered"}
        if record.kind is ActionKind.ROLLBACK:
            try:
                entry = await self.gateway.rollback(record.model_name, record.reason)
                return {"status": ActionStatus.SUCCEEDED, "detail": f"rolled back: {json.dumps(entry)[:500]}"}
            except FraudOpsError as exc:
                # No previous champion to bring back: the rules are the last safe place.
                state = await self.gateway.fallback(record.model_name, f"{record.reason} (rollback impossible: {exc})")
                return {
                    "status": ActionStatus.SUCCEEDED,
                    "detail": f"rollback refused ({exc}); fallback on: {json.dumps(state)[:300]}",
                }
        state = await self.gateway.fallback(record.model_name, record.reason)
        return {"status": ActionStatus.SUCCEEDED, "detail": f"fallback on: {json.dumps(state)[:500]}"}

    def _retrain_conf(self, record: ActionRecord, alert: Alert) -> dict[str, Any]:
        last = self.evaluator.last
        # The window ends at the newest event the monitor has seen (a replay runs ahead of the clock).
        end = last.window_end if last and last.window_end else alert.startsAt
        start = end - timedelta(days=self.settings.airflow.retrain_window_days)
        return {
            **self.settings.airflow.retrain_conf,
            "action_id": record.id,
            "reason": record.reason,
            "alerts": [alert.model_dump(mode="json")],
            "window": {"start": start.isoformat(), "end": end.isoformat()},
        }

    def outcome(self, action_id: str, report: OutcomeReport) -> ActionRecord:
        record = self.log.get(action_id)
        if record.kind is not ActionKind.RETRAIN:
            raise ConflictError(f"action {action_id} is a {record.kind.value}; only retraining reports an outcome")
        if report.outcome not in (ActionStatus.SUCCEEDED, ActionStatus.FAILED):
            raise ConflictError("an outcome is 'succeeded' or 'failed'")
        updated = self.log.update(
            action_id,
            status=report.outcome,
            detail=report.detail or record.detail,
            dag_run_id=report.dag_run_id or record.dag_run_id,
            model_version=report.model_version,
        )
        self.metrics.actions.labels(updated.kind.value, updated.status.value).inc()
        return updated

    async def drain(self) -> None:
        """Wait for running actions (shutdown, tests)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def alert_for(notification: AlertmanagerNotification, record: ActionRecord) -> Alert:
    return next(a for a in notification.alerts if a.incident == record.incident)
