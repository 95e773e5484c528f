"""One asyncio lock per model, taken before the database lock.

The database lock alone would serialise changes too, but every waiting request would hold a worker thread
and a database connection while it waits; queuing on the event loop costs neither.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class ModelLocks:
    def __init__(self) -> None:
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def __call__(self, model_name: str) -> asyncio.Lock:
        return self._locks[model_name]
