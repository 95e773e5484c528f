"""The serving version's reference profile: the features and scores of its test period, logged by the trainer.

Read from MLflow (read only): the alias names the version, the version names its run, the run holds
`reference/reference.parquet`. A profile is fetched once per version.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fraudops.errors import DependencyUnavailableError
from fraudops.features import FEATURE_NAMES
from fraudops.mlflow_env import configure_mlflow_environment
from fraudops_monitor.drift import SCORE_COLUMN

log = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference/reference.parquet"


@dataclass(frozen=True)
class Reference:
    model_name: str
    model_version: str
    profile: pd.DataFrame


class ReferenceSource:
    """Which version serves, and its profile; None while no version holds the alias."""

    def __init__(self, tracking_uri: str, model_name: str, alias: str) -> None:
        configure_mlflow_environment(retries=2, timeout_s=20)
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias
        self.current: Reference | None = None
        self.last_error: str | None = None

    async def refresh(self) -> Reference | None:
        """Look the alias up again; fetch the profile when it points at a new version. Never raises."""
        try:
            self.current = await asyncio.to_thread(self._refresh)
            self.last_error = None
        except DependencyUnavailableError as exc:
            self.last_error = str(exc)
            log.warning("reference profile unavailable", extra={"reason": str(exc)})
        return self.current

    def _refresh(self) -> Reference | None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        client = MlflowClient(self.tracking_uri, self.tracking_uri)
        try:
            version = client.get_model_version_by_alias(self.model_name, self.alias)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None  # no model, or nothing holds the alias yet
            raise DependencyUnavailableError(f"MLflow at {self.tracking_uri}: {exc.message}") from exc
        except Exception as exc:
            raise DependencyUnavailableError(f"MLflow at {self.tracking_uri} is unreachable: {exc}") from exc
        if self.current is not None and self.current.model_version == str(version.version):
            return self.current
        if not version.run_id:
            raise DependencyUnavailableError(f"{self.model_name} v{version.version} has no run to read a profile from")
        with tempfile.TemporaryDirectory() as scratch:
            try:
                path = client.download_artifacts(version.run_id, REFERENCE_ARTIFACT, scratch)
            except Exception as exc:
                raise DependencyUnavailableError(
                    f"{self.model_name} v{version.version}: cannot read {REFERENCE_ARTIFACT} of run {version.run_id}: {exc}"
                ) from exc
            profile = pd.read_parquet(Path(path))
        missing = sorted(set(FEATURE_NAMES) - set(profile.columns))
        if missing:
            raise DependencyUnavailableError(f"{self.model_name} v{version.version}: reference lacks {missing}")
        columns = [*FEATURE_NAMES, *([SCORE_COLUMN] if SCORE_COLUMN in profile.columns else [])]
        log.info("reference profile loaded", extra={"model_version": version.version, "rows": len(profile)})
        return Reference(self.model_name, str(version.version), profile[columns].astype("float64"))
