"""Run the stack's registry gateway against a database of the test's choosing (Postgres, as in compose)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.stack import RunningStack

SERVICE = "registry-gateway"
DATABASE_ENV = "FRAUDOPS_REGISTRY_GATEWAY_DATABASE_URL"


def _restart(stack: RunningStack, database_url: str | None) -> None:
    component = stack.stack.component(SERVICE)
    component.stop()
    with pytest.MonkeyPatch.context() as patch:
        # The stack hands the launching process's environment to the service; keep only the wiring.
        for key in list(os.environ):
            if key.startswith("FRAUDOPS_"):
                patch.delenv(key)
        if database_url is not None:
            patch.setenv(DATABASE_ENV, database_url)
        component.start()


@contextmanager
def gateway_on_database(stack: RunningStack, database_url: str) -> Iterator[None]:
    """Restart the gateway on `database_url` for the block, then on its default database again.

    Nothing is restarted when the stack already runs the gateway on a database it was given.
    """
    if DATABASE_ENV in stack.env:
        yield
        return
    _restart(stack, database_url)
    try:
        yield
    finally:
        _restart(stack, None)
