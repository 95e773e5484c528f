"""Bad configuration and missing prerequisites end in one line saying what to do, and a non-zero exit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port

VENV_BIN = Path(sys.executable).parent
FRAUDOPS = str(VENV_BIN / "fraudops")


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDOPS_")}
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_unknown_stack_setting(tmp_path: Path) -> None:
    result = _run(
        [FRAUDOPS, "status"], _clean_env(FRAUDOPS_STACK_KAFKA_PROT="9092", FRAUDOPS_STACK_STATE_DIR=str(tmp_path))
    )
    assert result.returncode == 2
    assert "unknown setting(s) FRAUDOPS_STACK_KAFKA_PROT" in _one_line(result.stderr)


def test_service_refuses_unknown_setting_and_missing_token() -> None:
    token = json.dumps({"operator": "Vf3kP9zQ2mL8xR5tW1bN7cJ4"})
    result = _run(
        [sys.executable, "-m", "fraudops_ingest"], _clean_env(FRAUDOPS_INGEST_TOKENS=token, FRAUDOPS_INGEST_BATCH="1")
    )
    assert result.returncode == 2
    assert "FRAUDOPS_INGEST_BATCH" in _one_line(result.stderr)

    result = _run([sys.executable, "-m", "fraudops_trainer"], _clean_env())
    assert result.returncode == 2
    assert "FRAUDOPS_TRAINER_TOKENS" in _one_line(result.stderr)


def test_service_refuses_placeholder_token() -> None:
    placeholder = "changeme-changeme-changeme"
    result = _run(
        [sys.executable, "-m", "fraudops_scorer"], _clean_env(FRAUDOPS_SCORER_TOKENS=json.dumps({"x": placeholder}))
    )
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "placeholder" in line
    assert placeholder not in line


def test_unreachable_broker() -> None:
    result = _run([FRAUDOPS, "topics", "create", "--bootstrap", f"127.0.0.1:{free_port()}"], _clean_env())
    assert result.returncode == 1
    assert "cannot reach Kafka" in _one_line(result.stderr)


def _stack_env(tmp_path: Path, path: str, **extra: str) -> dict[str, str]:
    return _clean_env(
        PATH=path,
        FRAUDOPS_STACK_STATE_DIR=str(tmp_path / "state"),
        FRAUDOPS_STACK_TOOLS_DIR=str(tmp_path / "tools"),
        FRAUDOPS_STACK_KAFKA_PORT=str(free_port()),
        FRAUDOPS_STACK_KAFKA_CONTROLLER_PORT=str(free_port()),
        **extra,
    )


def test_missing_java(tmp_path: Path) -> None:
    result = _run([FRAUDOPS, "up", "--only", "kafka"], _stack_env(tmp_path, str(VENV_BIN)))
    assert result.returncode == 1
    assert "`java` not found on PATH" in _one_line(result.stderr)


def test_missing_maven(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java is not None
    only_java = tmp_path / "bin"
    only_java.mkdir()
    (only_java / "java").symlink_to(java)
    result = _run([FRAUDOPS, "up", "--only", "kafka"], _stack_env(tmp_path, f"{only_java}:{VENV_BIN}"))
    assert result.returncode == 1
    assert "`mvn` not found on PATH" in _one_line(result.stderr)


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _stack_env(tmp_path, os.environ["PATH"], FRAUDOPS_STACK_MLFLOW_PORT=str(port))
        result = _run([FRAUDOPS, "up", "--only", "mlflow"], env)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert f"port {port}" in line
    assert "FRAUDOPS_STACK_MLFLOW_PORT" in line


@pytest.mark.parametrize("command", [[], ["up"], ["down"], ["status"], ["setup"], ["token"], ["secret"],
                                     ["contracts"], ["contracts", "generate"], ["contracts", "check"],
                                     ["topics"], ["topics", "create"]])  # fmt: skip
def test_every_command_has_help(command: list[str]) -> None:
    result = _run([FRAUDOPS, *command, "--help"], _clean_env())
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_usage_errors_print_usage_not_a_traceback() -> None:
    result = _run([FRAUDOPS, "token"], _clean_env())
    assert result.returncode == 2
    assert "Missing argument" in result.stderr
    assert "Traceback" not in result.stderr
