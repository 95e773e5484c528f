"""Spawned workers end with the service that started them, whatever killed it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PARENT = """
import os, sys, time
from fraudops.child_processes import single_worker_pool

pool = single_worker_pool()
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for a reaper."""
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines() if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "Z" not in state.split()[1]


def _wait_until(condition: object, timeout_s: float) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_pool_worker_ends_when_its_service_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        worker = int(parent.stdout.readline())
        time.sleep(2.5)  # more than the watch interval: a live parent keeps its worker
        assert _running(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_until(lambda: not _running(worker), 10), "the pool worker outlived its killed parent"
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if "worker" in locals() and _running(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    orphan = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; from fraudops.child_processes import exit_with_parent; "
            "exit_with_parent(-1, interval_s=0.05); time.sleep(30)",
        ],
        timeout=20,
        check=False,
    )
    assert orphan.returncode == 1
