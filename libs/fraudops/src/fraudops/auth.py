"""Bearer-token authentication and per-action authorisation for write endpoints.

A token names a principal (the service's TOKENS table); the principal's scopes (the service's SCOPES table)
name the actions it may take. A token of one service means nothing at another: each has its own table.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from fraudops.errors import ForbiddenError, UnauthorizedError
from fraudops.settings import ALL_ACTIONS

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


def may(grants: list[str], action: str) -> bool:
    return ALL_ACTIONS in grants or action in grants


def authenticated(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller, who must present a known bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise UnauthorizedError("missing bearer token: send 'Authorization: Bearer <token>'")
    principal = match_principal(credentials.credentials, request.app.state.settings.tokens)
    if principal is None:
        raise UnauthorizedError("invalid bearer token")
    return Principal(principal)


@dataclass(frozen=True)
class RequireAction:
    """A FastAPI dependency: a known token whose principal's scopes include `action`."""

    action: str

    async def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        # A coroutine although it never awaits: FastAPI runs a plain function dependency in its thread pool,
        # and a thread hop costs more than the checks. The token is checked here rather than in a dependency
        # of its own: FastAPI resolves every level of dependencies on every request.
        principal = authenticated(request, credentials)
        grants: list[str] = request.app.state.settings.scopes.get(principal.name, [])
        if not may(grants, self.action):
            held = ", ".join(grants) or "none"
            raise ForbiddenError(f"principal {principal.name!r} may not {self.action} (its scopes: {held})")
        return principal

    async def of(self, request: Request) -> Principal:
        """The same check for a handler that reads the request itself instead of through FastAPI's dependencies."""
        return await self(request, await _bearer(request))
