"""MLflow's model registry as the gateway sees it: typed reads, the few writes it makes, and its errors.

Every call blocks (MLflow's client is synchronous): callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import mlflow
import requests
import xgboost
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from fraudops.errors import DependencyUnavailableError, FraudOpsError, InvalidInputError, NotFoundError
from fraudops.mlflow_env import configure_mlflow_environment

log = logging.getLogger(__name__)


def configure_mlflow_client(tracking_uri: str, retries: int, timeout_s: int) -> None:
    """Point MLflow's module-level helpers (artifact downloads, model loading) at the tracking server."""
    configure_mlflow_environment(retries, timeout_s)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    source: str
    run_id: str | None
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    created_at: datetime | None = None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    aliases: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class LoadedModel:
    booster: xgboost.Booster
    signature_inputs: list[str] | None


def _short(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:297] + "..."


# MLflow error codes that mean "MLflow answered and said no", as opposed to "MLflow could not answer".
_REFUSALS = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "INVALID_STATE", "BAD_REQUEST"})


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, MlflowException) and exc.error_code == "RESOURCE_DOES_NOT_EXIST"


@contextlib.contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Turn MLflow's exceptions into the platform's: 404, 422, or 503 when MLflow cannot answer."""
    try:
        yield
    except FraudOpsError:
        raise
    except MlflowException as exc:
        if is_not_found(exc):
            raise NotFoundError(f"{what}: {exc.message}") from exc
        if exc.error_code in _REFUSALS:
            raise InvalidInputError(f"MLflow refused {what}: {exc.message}") from exc
        raise DependencyUnavailableError(f"MLflow unavailable while {what}: {_short(exc)}") from exc
    except (requests.RequestException, ConnectionError, TimeoutError) as exc:
        raise DependencyUnavailableError(f"MLflow unavailable while {what}: {_short(exc)}") from exc


def _ignoring_absence(delete: Callable[..., object], *args: str) -> None:
    """Deleting what is not there is done already; anything else (MLflow down) is not."""
    try:
        delete(*args)
    except MlflowException as exc:
        if not is_not_found(exc):
            raise


def _created_at(millis: int | None) -> datetime | None:
    return datetime.fromtimestamp(millis / 1000, tz=UTC) if millis else None


class MlflowRegistry:
    """The registry operations the gateway needs, against one tracking server."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _version(self, mv: mlflow.entities.model_registry.ModelVersion) -> VersionInfo:
        return VersionInfo(
            name=mv.name,
            version=str(mv.version),
            source=mv.source or "",
            run_id=mv.run_id or None,
            status=str(mv.status),
            tags=dict(mv.tags or {}),
            aliases=list(mv.aliases or []),
            created_at=_created_at(mv.creation_timestamp),
        )

    def model(self, name: str) -> ModelInfo:
        with mlflow_errors(f"reading registered model {name!r}"):
            rm = self.client.get_registered_model(name)
        return ModelInfo(name=rm.name, aliases={str(k): str(v) for k, v in rm.aliases.items()}, tags=dict(rm.tags))

    def version(self, name: str, version: str) -> VersionInfo:
        with mlflow_errors(f"reading version {version} of {name!r}"):
            return self._version(self.client.get_model_version(name, version))

    def versions(self, name: str, limit: int = 10_000) -> list[VersionInfo]:
        found: list[VersionInfo] = []
        token: str | None = None
        with mlflow_errors(f"listing versions of {name!r}"):
            while len(found) < limit:
                # Names are restricted to a quote-free pattern by the routes, so the filter cannot be escaped.
                page = self.client.search_model_versions(
                    f"name = '{name}'", max_results=200, order_by=["version_number ASC"], page_token=token
                )
                found.extend(self._version(mv) for mv in page)
                token = page.token
                if not token:
                    break
        return sorted(found[:limit], key=lambda v: int(v.version))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with mlflow_errors(f"setting alias {alias} of {name!r} to version {version}"):
            self.client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        with mlflow_errors(f"removing alias {alias} of {name!r}"):
            self.client.delete_registered_model_alias(name, alias)

    def put_alias(self, name: str, alias: str, version: str | None) -> None:
        """Make the alias point at `version`, or remove it for None (how changes are undone)."""
        if version is None:
            with contextlib.suppress(NotFoundError):
                self.delete_alias(name, alias)
        else:
            self.set_alias(name, alias, version)

    def put_version_tag(self, name: str, version: str, key: str, value: str | None) -> None:
        with mlflow_errors(f"tagging version {version} of {name!r}"):
            if value is None:
                _ignoring_absence(self.client.delete_model_version_tag, name, version, key)
            else:
                self.client.set_model_version_tag(name, version, key, value)

    def put_model_tag(self, name: str, key: str, value: str | None) -> None:
        with mlflow_errors(f"tagging registered model {name!r}"):
            if value is None:
                _ignoring_absence(self.client.delete_registered_model_tag, name, key)
            else:
                self.client.set_registered_model_tag(name, key, value)

    def run_artifact_uri(self, run_id: str) -> str:
        with mlflow_errors(f"reading run {run_id}"):
            return str(self.client.get_run(run_id).info.artifact_uri)

    def logged_model_location(self, model_id: str) -> str:
        with mlflow_errors(f"reading logged model {model_id}"):
            return str(self.client.get_logged_model(model_id).artifact_location)

    # The loaders below let MLflow's exceptions through: the caller tells "MLflow is down" (503) from
    # "this version is broken" (a failed validation) by asking whether MLflow answers at all.

    def download_run_artifact(self, run_id: str, path: str, destination: Path) -> Path:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(destination))
        return Path(local)

    def load_model(self, name: str, version: str, destination: Path) -> LoadedModel:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(destination))
        )
        description = Model.load(str(local / "MLmodel"))
        if "xgboost" not in description.flavors:
            raise ValueError(f"the model has no xgboost flavour (flavours: {', '.join(sorted(description.flavors))})")
        signature = description.signature
        inputs = signature.inputs.input_names() if signature is not None and signature.inputs is not None else None
        booster = mlflow.xgboost.load_model(str(local))
        if not isinstance(booster, xgboost.Booster):
            raise ValueError(f"the model is a {type(booster).__name__}, not a native xgboost.Booster")
        return LoadedModel(booster=booster, signature_inputs=[str(name) for name in inputs] if inputs else None)

    def unreachable_reason(self) -> str | None:
        """None when the tracking server answers its health check, else why not."""
        try:
            response = httpx.get(self.tracking_uri + "/health", timeout=5)
        except httpx.HTTPError as exc:
            return f"MLflow unreachable: {exc.__class__.__name__}"
        if response.status_code != 200:
            return f"MLflow /health answered {response.status_code}"
        return None


def json_tag(tags: dict[str, str], key: str) -> object:
    """A tag holding JSON, or None when it is missing or not JSON."""
    raw = tags.get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
