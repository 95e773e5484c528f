"""Alertmanager's webhook payload, and the policy that turns a firing alert into the workflow it calls for."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fraudops.contracts.messages import IsoDatetime
from fraudops_monitor.performance import LivePerformance
from fraudops_monitor.settings import ActionKind, PolicySettings

# Below this many labelled payments live accuracy is too noisy to call it lost.
MIN_LABELLED_FOR_ACCURACY = 200

# Alertmanager's own payloads stay far below these; they bound what one notification can make the monitor keep.
Name = Annotated[str, StringConstraints(max_length=256)]
Text = Annotated[str, StringConstraints(max_length=4096)]
LabelSet = Annotated[dict[Name, Text], Field(max_length=64)]


class Alert(BaseModel):
    """One alert of a notification (Alertmanager webhook format, version 4)."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: LabelSet
    annotations: LabelSet = {}
    startsAt: IsoDatetime
    endsAt: IsoDatetime | None = None
    generatorURL: Text = ""
    fingerprint: str = Field(default="", max_length=64)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "unnamed")

    @property
    def incident(self) -> str:
        """Alertmanager repeats a notification while the alert fires: the same incident has the same key.

        Whole seconds: Alertmanager's webhook gives the start in nanoseconds, its API in milliseconds.
        """
        return f"{self.fingerprint or self.name}@{self.startsAt.replace(microsecond=0).isoformat()}"


class AlertmanagerNotification(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Name = "4"
    status: Literal["firing", "resolved"]
    receiver: Name = ""
    groupKey: Text = ""
    alerts: list[Alert] = Field(min_length=1, max_length=1000)


def remediation(alert: Alert, policy: PolicySettings, performance: LivePerformance | None) -> ActionKind:
    """The workflow `alert` calls for besides its debugging report (REPORT: none)."""
    kind = policy.by_alertname.get(alert.name) or policy.by_category.get(alert.labels.get("category", ""))
    kind = kind or ActionKind.REPORT
    if kind is ActionKind.REPORT and alert.labels.get("category") == "drift" and _accuracy_lost(performance, policy):
        # Drift while accuracy is already down is more than a change of customers: the model must learn it.
        return ActionKind.RETRAIN
    return kind


def _accuracy_lost(performance: LivePerformance | None, policy: PolicySettings) -> bool:
    if performance is None or performance.labelled < MIN_LABELLED_FOR_ACCURACY:
        return False
    value = performance.average_precision
    return math.isfinite(value) and value < policy.accuracy_floor
