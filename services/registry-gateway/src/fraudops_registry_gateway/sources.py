"""Is a model's artifact location inside the artifact store? Pure string checks, no I/O.

MLflow 3 itself refuses `file://` sources outside a run and `..` segments, but accepts foreign object
stores (`s3://someone-else/...`, `gs://`, `dbfs:/`) and experiments can point anywhere; the gateway must not
load, and so execute, a model from a place it does not control.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# A run id or logged-model id as MLflow generates them: letters, digits, dashes, underscores.
_ID = r"[A-Za-z0-9_-]{1,128}"
_RUNS = re.compile(rf"^runs:/(?P<run_id>{_ID})(?:/(?P<path>.*))?$")
_LOGGED_MODEL = re.compile(r"^models:/(?P<model_id>m-[0-9a-f]{32})/?$")
_REGISTERED = re.compile(
    r"^models:/(?P<name>[^/@]{1,256})(?:/(?P<version>[0-9]{1,9})|@(?P<alias>[A-Za-z0-9_-]{1,255}))/?$"
)


@dataclass(frozen=True)
class RunArtifact:
    run_id: str
    path: str


@dataclass(frozen=True)
class LoggedModelRef:
    model_id: str


@dataclass(frozen=True)
class RegisteredModelRef:
    name: str
    version: str | None
    alias: str | None


Reference = RunArtifact | LoggedModelRef | RegisteredModelRef


def _decoded(uri: str) -> str:
    # Decode until stable, so %252e%252e (double encoding) is seen as `..` too.
    for _ in range(3):
        decoded = unquote(uri)
        if decoded == uri:
            break
        uri = decoded
    return uri


def location_problems(uri: str, allowed_prefixes: Sequence[str]) -> list[str]:
    """Why `uri` is not an acceptable artifact location (empty when it is)."""
    problems: list[str] = []
    decoded = _decoded(uri)
    if any(ord(char) < 32 for char in decoded):
        problems.append("contains control characters")
    if ".." in re.split(r"[/\\]", decoded):
        problems.append("contains a '..' path traversal")
    if not any(uri.startswith(prefix) for prefix in allowed_prefixes):
        problems.append(f"is outside the artifact store (allowed prefixes: {', '.join(allowed_prefixes)})")
    elif urlsplit(uri).netloc:
        # mlflow-artifacts://other-host/... would make MLflow fetch from a host of the caller's choosing.
        problems.append("names a host; only the tracking server's own artifact store is allowed")
    return problems


def parse_reference(uri: str) -> Reference | None:
    """The indirection a `runs:/` or `models:/` source stands for; None for a direct artifact location."""
    if match := _RUNS.match(uri):
        return RunArtifact(match["run_id"], (match["path"] or "").strip("/"))
    if match := _LOGGED_MODEL.match(uri):
        return LoggedModelRef(match["model_id"])
    if match := _REGISTERED.match(uri):
        return RegisteredModelRef(match["name"], match["version"], match["alias"])
    return None
