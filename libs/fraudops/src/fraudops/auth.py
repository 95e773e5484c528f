"""Bearer-token authentication for write endpoints."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from fraudops.errors import UnauthorizedError

_bearer = HTTPBearer(auto_error=False, description="Service token (see the service's TOKENS setting).")


@dataclass(frozen=True)
class Principal:
    """Who made the request, as named in the service's token table."""

    name: str


def match_principal(token: str, tokens: dict[str, SecretStr]) -> str | None:
    """Return the principal whose token equals `token`, comparing every entry in constant time."""
    presented = token.encode()
    found: str | None = None
    for principal, expected in tokens.items():
        if hmac.compare_digest(presented, expected.get_secret_value().encode()):
            found = principal
    return found


def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the caller must present a known bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise UnauthorizedError("missing bearer token: send 'Authorization: Bearer <token>'")
    principal = match_principal(credentials.credentials, request.app.state.settings.tokens)
    if principal is None:
        raise UnauthorizedError("invalid bearer token")
    return Principal(principal)


AuthenticatedPrincipal = Annotated[Principal, Depends(require_principal)]
