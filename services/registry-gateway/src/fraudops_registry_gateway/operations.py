"""The changes the gateway makes: validate, promote, archive, roll back, switch the rules fallback.

Each change runs under the model's locks and in this order: read MLflow, write MLflow, then commit the
audit row and its event in one database transaction. If anything after the first MLflow write fails
(MLflow, or the commit), the MLflow writes made so far are undone, so no change is half-made: either
the registry moved and the history says so, or neither happened.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from fraudops.contracts.messages import ModelEventType
from fraudops.errors import ConflictError, DependencyUnavailableError, NotFoundError
from fraudops_registry_gateway.locks import ModelLocks
from fraudops_registry_gateway.metrics import GatewayMetrics
from fraudops_registry_gateway.registry import MlflowRegistry, VersionInfo
from fraudops_registry_gateway.stages import Alias, Target
from fraudops_registry_gateway.store import AuditRecord, Change, GatewayStore, ModelTransaction
from fraudops_registry_gateway.validation import ValidationOutcome, Validator

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

STATUS_TAG = "validation_status"
REPORT_TAG = "validation_report"
FALLBACK_TAG = "fallback"
CHAMPION = Alias.CHAMPION.value
CHALLENGER = Alias.CHALLENGER.value
MAX_REASON_CHARS = 2000

Undo = Callable[[Callable[[], None]], None]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


class Operations:
    def __init__(
        self,
        registry: MlflowRegistry,
        store: GatewayStore,
        validator: Validator,
        metrics: GatewayMetrics,
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.validator = validator
        self.metrics = metrics
        # Called on the event loop after a change committed: wakes the outbox publisher.
        self.on_recorded = on_recorded
        self.locks = ModelLocks()

    async def _serialised(self, name: str, change: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self.locks(name):
            result = await asyncio.to_thread(change, *args, **kwargs)
        self.on_recorded()
        return result

    @contextmanager
    def _change(self, name: str) -> Iterator[tuple[ModelTransaction, Undo]]:
        undo: list[Callable[[], None]] = []
        try:
            with self.store.locked(name) as tx:
                yield tx, undo.append
        except BaseException as exc:
            self._undo(name, undo)
            if isinstance(exc, SQLAlchemyError):
                raise DependencyUnavailableError(
                    f"registry-gateway database failed ({exc.__class__.__name__}); the change was not made"
                ) from exc
            raise

    def _undo(self, name: str, undo: list[Callable[[], None]]) -> None:
        for step in reversed(undo):
            try:
                step()
            except Exception:
                # Nothing more can be done here; the log line is what an operator needs to repair it.
                log.exception("could not undo an MLflow write; registry left half-changed", extra={"model": name})
                self.metrics.undo_failures.inc()

    # ---- validation -------------------------------------------------------------------------------

    async def validate(
        self, name: str, version: str, principal: str, note: str | None
    ) -> tuple[ValidationOutcome, AuditRecord]:
        info = await asyncio.to_thread(self.registry.version, name, version)
        champion = (await asyncio.to_thread(self.registry.model, name)).aliases.get(CHAMPION)
        # The gate is slow (downloads, scoring) and only reads, so it runs outside the lock.
        with self.metrics.validation_seconds.time():
            outcome = await asyncio.to_thread(self.validator.validate, info, champion)
        record = await self._serialised(name, self._record_validation, name, version, outcome, principal, note)
        self.metrics.validations.labels(outcome.status).inc()
        return outcome, record

    def _record_validation(
        self, name: str, version: str, outcome: ValidationOutcome, principal: str, note: str | None
    ) -> AuditRecord:
        report = outcome.report() | {"validated_at": datetime.now(UTC).isoformat(), "validated_by": principal}
        if note:
            report["note"] = note
        with self._change(name) as (tx, undo):
            before = self.registry.version(name, version).tags
            for key, value in ((REPORT_TAG, json.dumps(report)), (STATUS_TAG, outcome.status)):
                undo(functools.partial(self.registry.put_version_tag, name, version, key, before.get(key)))
                self.registry.put_version_tag(name, version, key, value)
            summary = f"validation {outcome.status}" + (": " + "; ".join(outcome.reasons) if outcome.reasons else "")
            return tx.record(
                Change(
                    model_name=name,
                    event_type=ModelEventType.VALIDATED,
                    principal=principal,
                    reason=_clip(summary),
                    to_version=version,
                    details=report,
                )
            )

    # ---- promotion, archive, rollback ------------------------------------------------------------

    async def promote(self, name: str, version: str, target: Target, principal: str, reason: str) -> AuditRecord:
        record = await self._serialised(name, self._promote, name, version, target, principal, reason)
        self.metrics.changes.labels(record.event_type.value).inc()
        return record

    def _require_passed(self, tx: ModelTransaction, info: VersionInfo) -> None:
        """Both the gateway's own record and MLflow's tag must say passed: a tag alone can be set by anyone."""
        validation = tx.last_validation(info.version)
        tag = info.tags.get(STATUS_TAG, "missing")
        if validation is None:
            raise ConflictError(
                f"version {info.version} has not been validated by the gateway (validation_status={tag}); "
                "POST .../validate first"
            )
        details = validation.details or {}
        if details.get("status") != "passed":
            reasons = "; ".join(details.get("reasons") or []) or "no reason recorded"
            raise ConflictError(f"version {info.version} failed validation: {reasons}")
        if tag != "passed":
            raise ConflictError(
                f"version {info.version} is tagged validation_status={tag} in MLflow although the gateway "
                "validated it as passed; validate it again"
            )

    def _promote(self, name: str, version: str, target: Target, principal: str, reason: str) -> AuditRecord:
        with self._change(name) as (tx, undo):
            info = self.registry.version(name, version)
            aliases = self.registry.model(name).aliases
            if target is Target.ARCHIVED:
                return self._archive(tx, undo, info, aliases, principal, reason)
            self._require_passed(tx, info)
            alias = target.value
            current = aliases.get(alias)
            if current == version:
                raise ConflictError(f"version {version} is already the {alias}")
            if target is Target.CHALLENGER and aliases.get(CHAMPION) == version:
                raise ConflictError(f"version {version} is the champion; it cannot also be the challenger")
            undo(lambda: self.registry.put_alias(name, alias, current))
            self.registry.set_alias(name, alias, version)
            details: dict[str, object] = {}
            if target is Target.CHAMPION:
                self._clear_challenger_if(name, version, aliases, undo, details)
                if current is not None:
                    tx.state.previous_champions.append(current)
            tx.state.retire(current)
            tx.state.reinstate(version)
            tx.save_state()
            return tx.record(
                Change(
                    model_name=name,
                    event_type=ModelEventType.PROMOTED,
                    principal=principal,
                    reason=reason,
                    alias=alias,
                    from_version=current,
                    to_version=version,
                    details=details or None,
                )
            )

    def _clear_challenger_if(
        self, name: str, version: str, aliases: dict[str, str], undo: Undo, details: dict[str, object]
    ) -> None:
        # A champion that is also the challenger would be shadow-scored against itself.
        if aliases.get(CHALLENGER) == version:
            undo(lambda: self.registry.put_alias(name, CHALLENGER, version))
            self.registry.delete_alias(name, CHALLENGER)
            details["challenger_cleared"] = version

    def _archive(
        self,
        tx: ModelTransaction,
        undo: Undo,
        info: VersionInfo,
        aliases: dict[str, str],
        principal: str,
        reason: str,
    ) -> AuditRecord:
        name, version = info.name, info.version
        if aliases.get(CHAMPION) == version:
            raise ConflictError(f"version {version} is the champion: promote another version or roll back first")
        held = CHALLENGER if aliases.get(CHALLENGER) == version else None
        withdrawable = version in tx.state.previous_champions
        if held is None and not withdrawable and version in tx.state.retired_versions:
            raise ConflictError(f"version {version} is already archived")
        if held is not None:
            undo(lambda: self.registry.put_alias(name, CHALLENGER, version))
            self.registry.delete_alias(name, CHALLENGER)
        tx.state.retire(version)
        # An archived version is withdrawn on purpose: rollback must not bring it back.
        tx.state.previous_champions = [v for v in tx.state.previous_champions if v != version]
        tx.save_state()
        return tx.record(
            Change(
                model_name=name,
                event_type=ModelEventType.ARCHIVED,
                principal=principal,
                reason=reason,
                alias=held,
                from_version=version,
            )
        )

    async def rollback(self, name: str, principal: str, reason: str) -> AuditRecord:
        record = await self._serialised(name, self._rollback, name, principal, reason)
        self.metrics.changes.labels(record.event_type.value).inc()
        return record

    def _rollback(self, name: str, principal: str, reason: str) -> AuditRecord:
        with self._change(name) as (tx, undo):
            aliases = self.registry.model(name).aliases
            current = aliases.get(CHAMPION)
            stack = tx.state.previous_champions
            while stack and stack[-1] == current:
                stack.pop()
            if not stack:
                raise ConflictError(f"model {name!r} has no previous champion to roll back to")
            target = stack.pop()
            try:
                self.registry.version(name, target)
            except NotFoundError:
                raise ConflictError(f"previous champion version {target} no longer exists in MLflow") from None
            undo(lambda: self.registry.put_alias(name, CHAMPION, current))
            self.registry.set_alias(name, CHAMPION, target)
            details: dict[str, object] = {}
            self._clear_challenger_if(name, target, aliases, undo, details)
            tx.state.retire(current)
            tx.state.reinstate(target)
            tx.save_state()
            return tx.record(
                Change(
                    model_name=name,
                    event_type=ModelEventType.ROLLED_BACK,
                    principal=principal,
                    reason=reason,
                    alias=CHAMPION,
                    from_version=current,
                    to_version=target,
                    details=details or None,
                )
            )

    # ---- rules fallback ----------------------------------------------------------------------------

    async def set_fallback(self, name: str, enabled: bool, principal: str, reason: str) -> AuditRecord | None:
        """Switch the fallback; None when it already was in that position (nothing changed, nothing recorded)."""
        record = await self._serialised(name, self._set_fallback, name, enabled, principal, reason)
        if record is not None:
            self.metrics.changes.labels(record.event_type.value).inc()
        return record

    def _set_fallback(self, name: str, enabled: bool, principal: str, reason: str) -> AuditRecord | None:
        with self._change(name) as (tx, undo):
            model = self.registry.model(name)
            previous = model.tags.get(FALLBACK_TAG)
            if (previous == "true") == enabled:
                return None
            undo(lambda: self.registry.put_model_tag(name, FALLBACK_TAG, previous))
            self.registry.put_model_tag(name, FALLBACK_TAG, "true" if enabled else "false")
            return tx.record(
                Change(
                    model_name=name,
                    event_type=ModelEventType.FALLBACK_ON if enabled else ModelEventType.FALLBACK_OFF,
                    principal=principal,
                    reason=reason,
                    details={"champion": model.aliases.get(CHAMPION)},
                )
            )


def fallback_enabled(tags: dict[str, str]) -> bool:
    return tags.get(FALLBACK_TAG) == "true"
