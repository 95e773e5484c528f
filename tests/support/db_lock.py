"""Observe the registry gateway's per-model database lock from two stores, as two processes would hold it."""

from __future__ import annotations

import threading
import time

from fraudops_registry_gateway.store import GatewayStore

HOLD_S = 0.5


def lock_order(holder: GatewayStore, waiter: GatewayStore, held_model: str, wanted_model: str) -> list[str]:
    """`holder` locks `held_model` for HOLD_S; meanwhile `waiter` locks `wanted_model`. Returns what happened when."""
    events: list[str] = []
    held = threading.Event()

    def hold() -> None:
        with holder.locked(held_model):
            held.set()
            time.sleep(HOLD_S)
            events.append("holder released")

    def wait() -> None:
        assert held.wait(10), "holder never got the lock"
        with waiter.locked(wanted_model):
            events.append("waiter entered")

    threads = [threading.Thread(target=hold), threading.Thread(target=wait)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return events
