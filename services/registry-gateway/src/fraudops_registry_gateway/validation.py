"""Run the quality gate on one version: where it lives, what it promises, how well it ranks frauds.

Every problem found becomes a reason, so one validation tells the trainer everything to fix. MLflow being
unreachable is not a problem of the version: it raises DependencyUnavailableError (503) instead.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from fraudops.errors import DependencyUnavailableError, NotFoundError
from fraudops_registry_gateway import contract, gate
from fraudops_registry_gateway.registry import LoadedModel, MlflowRegistry, VersionInfo
from fraudops_registry_gateway.settings import RegistryGatewaySettings
from fraudops_registry_gateway.sources import (
    LoggedModelRef,
    RegisteredModelRef,
    RunArtifact,
    location_problems,
    parse_reference,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_REFERENCE_DEPTH = 3


@dataclass
class ValidationOutcome:
    version: str
    reasons: list[str] = field(default_factory=list)
    # Facts worth knowing that do not fail the version (e.g. the champion could not be compared).
    notes: list[str] = field(default_factory=list)
    candidate: gate.Scores | None = None
    champion_version: str | None = None
    champion: gate.Scores | None = None
    evaluation_rows: int = 0

    @property
    def passed(self) -> bool:
        return not self.reasons and self.candidate is not None

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    def report(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": self.reasons,
            "notes": self.notes,
            "metrics": self.candidate.as_dict() if self.candidate else None,
            "champion_version": self.champion_version,
            "champion_metrics": self.champion.as_dict() if self.champion else None,
            "evaluation_rows": self.evaluation_rows,
        }


class Validator:
    def __init__(self, registry: MlflowRegistry, settings: RegistryGatewaySettings) -> None:
        self.registry = registry
        self.settings = settings

    def _attempt(self, what: str, action: Callable[[], T], outcome: ValidationOutcome) -> T | None:
        """Run an artifact step; a failure is the version's fault unless MLflow itself is down."""
        try:
            return action()
        except (DependencyUnavailableError, NotFoundError):
            raise
        except Exception as exc:
            unreachable = self.registry.unreachable_reason()
            if unreachable:
                raise DependencyUnavailableError(f"{unreachable} while {what}") from exc
            detail = str(exc).splitlines()[0][:300] if str(exc) else exc.__class__.__name__
            outcome.reasons.append(f"{what} failed: {detail}")
            return None

    def source_problems(self, source: str, depth: int = 0) -> list[str]:
        """Why a version's source is not inside the artifact store, following runs:/ and models:/ references."""
        problems = [f"source {source!r} {p}" for p in location_problems(source, self.settings.allowed_source_prefixes)]
        if problems:
            return problems
        reference = parse_reference(source)
        if reference is None:
            if source.startswith(("runs:", "models:")):
                return [f"source {source!r} is not a runs:/ or models:/ reference the gateway can resolve"]
            return self._store_problems(source, source)
        if depth >= MAX_REFERENCE_DEPTH:
            return [f"source {source!r} refers to models through more than {MAX_REFERENCE_DEPTH} levels"]
        try:
            if isinstance(reference, RunArtifact):
                location = self.registry.run_artifact_uri(reference.run_id).rstrip("/")
                return self._store_problems(source, f"{location}/{reference.path}" if reference.path else location)
            if isinstance(reference, LoggedModelRef):
                return self._store_problems(source, self.registry.logged_model_location(reference.model_id))
            return self._registered_problems(source, reference, depth)
        except NotFoundError:
            return [f"source {source!r} refers to a run or model that does not exist"]

    def _registered_problems(self, source: str, reference: RegisteredModelRef, depth: int) -> list[str]:
        version = reference.version
        if version is None:
            version = self.registry.model(reference.name).aliases.get(reference.alias or "")
            if version is None:
                return [f"source {source!r} names an alias that is not set"]
        target = self.registry.version(reference.name, version)
        return self.source_problems(target.source, depth + 1)

    def _store_problems(self, source: str, location: str) -> list[str]:
        problems = location_problems(location, self.settings.artifact_store_prefixes)
        shown = f"source {source!r}" if location == source else f"source {source!r} resolves to {location!r}, which"
        return [f"{shown} {p}" for p in problems]

    def _load_evaluation(self, run_id: str, workdir: Path) -> pd.DataFrame:
        path = self.registry.download_run_artifact(run_id, contract.EVALUATION_ARTIFACT, workdir)
        return pd.read_parquet(path)

    def validate(self, info: VersionInfo, champion_version: str | None) -> ValidationOutcome:
        outcome = ValidationOutcome(version=info.version)
        if info.status != "READY":
            outcome.reasons.append(f"version status is {info.status}, not READY")
        source_problems = self.source_problems(info.source)
        outcome.reasons.extend(source_problems)
        outcome.reasons.extend(contract.tag_problems(info.tags))
        if source_problems:
            # Loading would make MLflow fetch, and xgboost parse, bytes from a place nobody vetted.
            return outcome
        with tempfile.TemporaryDirectory(prefix="registry-gateway-") as tmp:
            workdir = Path(tmp)
            candidate = self._attempt(
                "loading the model",
                lambda: self.registry.load_model(info.name, info.version, workdir / "candidate"),
                outcome,
            )
            if candidate is not None:
                outcome.reasons.extend(contract.model_problems(candidate.booster, candidate.signature_inputs))
            frame = self._evaluation_frame(info, workdir, outcome)
            if candidate is None or frame is None or outcome.reasons:
                return outcome
            predictions = self._attempt(
                "scoring the evaluation data", lambda: gate.predict(candidate.booster, frame), outcome
            )
            if predictions is None:
                return outcome
            outcome.candidate = gate.measure(frame, predictions)
            outcome.reasons.extend(gate.minimum_problems(outcome.candidate, self.settings.gate))
            if champion_version is not None and champion_version != info.version:
                self._compare_with_champion(info, champion_version, frame, workdir, outcome)
        return outcome

    def _evaluation_frame(self, info: VersionInfo, workdir: Path, outcome: ValidationOutcome) -> pd.DataFrame | None:
        if info.run_id is None:
            outcome.reasons.append("the version has no run, so no evaluation data")
            return None
        run_id = info.run_id
        frame = self._attempt(
            f"reading {contract.EVALUATION_ARTIFACT} of run {run_id}",
            lambda: self._load_evaluation(run_id, workdir / "evaluation"),
            outcome,
        )
        if frame is None:
            return None
        problems = contract.evaluation_problems(frame)
        outcome.reasons.extend(problems)
        outcome.evaluation_rows = len(frame)
        return None if problems else frame

    def _compare_with_champion(
        self, info: VersionInfo, champion_version: str, frame: pd.DataFrame, workdir: Path, outcome: ValidationOutcome
    ) -> None:
        outcome.champion_version = champion_version
        try:
            champion: LoadedModel = self.registry.load_model(info.name, champion_version, workdir / "champion")
            predictions = gate.predict(champion.booster, frame)
        except Exception as exc:
            unreachable = self.registry.unreachable_reason()
            if unreachable:
                raise DependencyUnavailableError(f"{unreachable} while loading the champion") from exc
            # A champion that no longer loads (or uses other features) must not block its own replacement.
            outcome.notes.append(
                f"champion version {champion_version} could not be scored on this evaluation data "
                f"({str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__}); compared with minima only"
            )
            return
        outcome.champion = gate.measure(frame, predictions)
        assert outcome.candidate is not None
        outcome.reasons.extend(
            gate.regression_problems(outcome.candidate, outcome.champion, champion_version, self.settings.gate)
        )
