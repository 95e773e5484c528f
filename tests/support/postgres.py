"""A real PostgreSQL for tests: the server CI started (FRAUDOPS_TEST_POSTGRES_DSN) or a throwaway cluster."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support.ports import free_port

DSN_ENV = "FRAUDOPS_TEST_POSTGRES_DSN"


def _bin_dir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not candidates:
        raise RuntimeError(f"PostgreSQL server binaries not found: install `postgresql` or set {DSN_ENV}")
    return candidates[-1].parent


def _as_postgres(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """initdb a cluster listening on 127.0.0.1 only; yields an admin DSN; removes everything afterwards."""
    bin_dir = _bin_dir()
    home = Path(tempfile.mkdtemp(prefix="fraudops-pg-"))
    password = secrets.token_urlsafe(24)
    (home / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
        shutil.chown(home / "pw", "postgres", "postgres")
    data = home / "data"
    port = free_port()
    subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                      f"--pwfile={home / 'pw'}", "-E", "UTF8"]),
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off -c max_connections=200"
    subprocess.run(
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def admin_dsn() -> Iterator[str]:
    configured = os.environ.get(DSN_ENV)
    if configured:
        yield configured
    else:
        with throwaway_cluster() as dsn:
            yield dsn


@contextmanager
def fresh_database(admin: str, prefix: str) -> Iterator[str]:
    """A new empty database on the server; dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
