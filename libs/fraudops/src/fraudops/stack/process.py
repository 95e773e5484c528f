"""Background processes with pid files, so `fraudops down` in another shell can stop what `up` started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from fraudops.errors import FraudOpsError


class StackError(FraudOpsError):
    """A part of the local stack cannot be started or stopped; the message says what to do."""

    code = "stack_error"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def ensure_port_free(host: str, port: int, what: str, setting: str) -> None:
    if port_in_use(host, port):
        raise StackError(
            f"port {port} on {host} (wanted by {what}) is already in use by another process; "
            f"stop that process or choose another port with {setting}"
        )


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 8192))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One child process in its own session, its pid in `run_dir/<name>.pid`, its output in `log_dir/<name>.log`."""

    def __init__(self, name: str, run_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.pid_path = run_dir / f"{name}.pid"
        self.log_path = log_dir / f"{name}.log"
        self._child: subprocess.Popen[bytes] | None = None

    def pid(self) -> int | None:
        """The recorded pid if that process is still alive and still ours (pids get reused)."""
        try:
            recorded = self.pid_path.read_text().split()
            pid, marker = int(recorded[0]), recorded[1]
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        return pid if marker in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, marker: str) -> int:
        """Start detached; `marker` is a string of the command line that identifies it later."""
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            child = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._child = child
        self.pid_path.write_text(f"{child.pid} {marker}\n")
        return child.pid

    def exited(self) -> bool:
        """True when the recorded process has died (reaping it if it was our child)."""
        if self._child is not None:
            # Our own child: poll() is exact, and its command line may not show the marker until exec.
            return self._child.poll() is not None
        return self.pid() is None

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the process group, SIGKILL what is left after the timeout. True if something was stopped."""
        pid = self._child.pid if self._child is not None and self._child.poll() is None else self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.exited():
            time.sleep(0.1)
        if not self.exited():
            self._signal(pid, signal.SIGKILL)
            while not self.exited():
                time.sleep(0.05)
        self.pid_path.unlink(missing_ok=True)
        self._child = None
        return True

    def kill(self) -> None:
        """SIGKILL at once: used by tests that simulate a crash."""
        pid = self._child.pid if self._child is not None and self._child.poll() is None else self.pid()
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            while not self.exited():
                time.sleep(0.05)
        self.pid_path.unlink(missing_ok=True)
        self._child = None

    @staticmethod
    def _signal(pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)
