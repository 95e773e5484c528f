"""Worker processes that end with the service that started them.

A service runs heavy work (datasets, drift reports, training) in spawned processes, so the event loop stays
free. If the service itself is killed (SIGKILL, an OOM kill, a crash), nothing stops them: a pool worker
waits forever on its task queue, whose pipe it holds both ends of, and a training job would go on to
register a model for a job the restarted service runs again. Each such process therefore watches its parent.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PARENT_CHECK_INTERVAL_S = 1.0


def exit_with_parent(parent_pid: int, interval_s: float = PARENT_CHECK_INTERVAL_S) -> None:
    """End this process (at once, without cleanup) as soon as `parent_pid` is no longer its parent.

    Called first thing in the child with the pid the parent had when it started the child: a parent that
    died before this call is seen too, since the child has been re-parented by then.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def single_worker_pool() -> ProcessPoolExecutor:
    """One spawned worker (not forked: the parent runs an event loop and Kafka clients a fork must not
    inherit) that ends with this process."""
    return ProcessPoolExecutor(
        max_workers=1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
