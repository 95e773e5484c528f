"""Every service image, checked statically: pinned bases, hash-checked lock, non-root user, health check, port."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from fraudops.paths import repo_root
from fraudops.settings import ServiceSettings, unknown_env_keys
from fraudops_ingest.settings import IngestSettings
from fraudops_monitor.settings import MonitorSettings
from fraudops_registry_gateway.settings import RegistryGatewaySettings
from fraudops_scorer.settings import ScorerSettings
from fraudops_trainer.settings import TrainerSettings

SERVICES: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "trainer": TrainerSettings,
    "scorer": ScorerSettings,
    "monitor": MonitorSettings,
    "registry-gateway": RegistryGatewaySettings,
}
# An exact version (x.y.z) in the tag, optionally followed by a variant and a digest.
PINNED_IMAGE = re.compile(r"^[\w.-]+(/[\w.-]+)*:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = {"gcc", "g++", "cc", "clang", "make", "cmake", "build-essential", "python3-dev", "libc6-dev"}


def _root() -> Path:
    root = repo_root()
    assert root is not None, "the tests run from a checkout"
    return root


ROOT = _root()


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages of a Dockerfile; comments dropped, backslash continuations joined into one instruction."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
        else:
            lines.append(pending + line)
            pending = ""
    stages: list[Stage] = []
    for line in lines + ([pending] if pending.strip() else []):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [word for word in args.split() if not word.startswith("--")]
            stages.append(Stage(words[0], words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, args))
        else:
            assert keyword == "ARG", f"{keyword} before the first FROM"
    return stages


def shell_commands(run: str) -> list[list[str]]:
    """The simple commands of a shell-form RUN, split on && and ; (enough for these files)."""
    return [shlex.split(part) for part in re.split(r"&&|;", run) if part.strip()]


def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.lstrip("/"))
    wildcards = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(part, re.escape(part)) for part in parts))


def is_ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (or a folder holding it) out of the build context."""
    prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
    regexes = [_pattern_regex(pattern) for pattern in ignore_patterns() if not pattern.startswith("!")]
    return any(regex.fullmatch(prefix) for regex in regexes for prefix in prefixes)


def package(name: str) -> str:
    return "fraudops_" + name.replace("-", "_")


@cache
def stages(name: str) -> list[Stage]:
    return parse_dockerfile((ROOT / "services" / name / "Dockerfile").read_text(encoding="utf-8"))


def final_env(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stages(name)[-1].args("ENV"):
        for pair in shlex.split(args):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def pip_installs(stage: Stage) -> list[list[str]]:
    commands = (command for run in stage.args("RUN") for command in shell_commands(run))
    return [command for command in commands if command[0].endswith("pip") and command[1:2] == ["install"]]


services = pytest.mark.parametrize("name", sorted(SERVICES))


def test_every_service_is_covered() -> None:
    found = {path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml")}
    assert found == set(SERVICES)


def test_dockerignore_keeps_local_state_out() -> None:
    assert is_ignored(".venv")
    assert is_ignored(".git")
    assert is_ignored("libs/fraudops/src/fraudops/__pycache__/paths.cpython-311.pyc")
    assert not is_ignored("libs/fraudops/src/fraudops/paths.py")


@services
def test_multi_stage_on_pinned_bases(name: str) -> None:
    built = stages(name)
    assert len(built) >= 2
    names = {stage.name for stage in built if stage.name}
    for stage in built:
        if stage.base in names:
            continue
        assert PINNED_IMAGE.match(stage.base), f"{stage.base} is not pinned to an exact version"
        assert ":latest" not in stage.base
    assert built[0].base == built[-1].base, "the builder and the runtime use the same base"
    assert built[-1].base.startswith("python:3.11."), "the services require Python 3.11"


@services
def test_builder_installs_its_own_lock_with_hashes_and_local_packages_without_deps(name: str) -> None:
    installs = [command for stage in stages(name)[:-1] for command in pip_installs(stage)]
    from_lock = [command for command in installs if "-r" in command]
    assert from_lock, "no pip install -r"
    for command in from_lock:
        assert "--require-hashes" in command
        assert command[command.index("-r") + 1] == f"services/{name}/requirements.lock"
    local = [command for command in installs if "-r" not in command]
    assert any(f"./services/{name}" in command for command in local)
    for command in local:
        assert "--no-deps" in command
        assert "-e" not in command
        assert "--editable" not in command


@services
def test_runtime_stage_has_no_build_tools(name: str) -> None:
    final = stages(name)[-1]
    words = {word for run in final.args("RUN") for command in shell_commands(run) for word in command}
    assert not words & BUILD_TOOLS
    assert not pip_installs(final), "packages are installed in the builder only"


@services
def test_runs_as_non_root(name: str) -> None:
    users = stages(name)[-1].args("USER")
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "a numeric uid lets the orchestrator verify it is not root"
    assert user != "0"


@services
def test_serves_on_its_default_port_with_a_health_check(name: str) -> None:
    final = stages(name)[-1]
    port = int(SERVICES[name].model_fields["port"].default)
    assert final.args("EXPOSE") == [str(port)]
    healthchecks = final.args("HEALTHCHECK")
    assert len(healthchecks) == 1
    probe = healthchecks[0]
    assert " CMD " in f" {probe} "
    for part in ("urllib", "127.0.0.1", "/healthz", str(port)):
        assert part in probe
    assert json.loads(final.args("CMD")[-1]) == ["python", "-m", package(name)]


@services
def test_runtime_environment(name: str) -> None:
    env = final_env(name)
    prefix = str(SERVICES[name].model_config.get("env_prefix", ""))
    # Inside a container the service must listen on every interface to be reachable at all.
    assert env[f"{prefix}HOST"] == "0.0.0.0"  # noqa: S104
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    contracts_copy = [args.split() for args in stages(name)[-1].args("COPY") if args.split()[0] == "contracts"]
    assert contracts_copy, "the contracts are copied into the image"
    assert env["FRAUDOPS_CONTRACTS_DIR"] == contracts_copy[0][-1]
    # A setting the service does not know makes it refuse to start.
    assert unknown_env_keys(SERVICES[name], env) == []


@services
def test_copied_files_exist_and_are_in_the_build_context(name: str) -> None:
    for stage in stages(name):
        for args in stage.args("COPY") + stage.args("ADD"):
            words = json.loads(args) if args.startswith("[") else args.split()
            if any(word.startswith("--from") for word in words):
                continue
            sources = [word for word in words if not word.startswith("--")][:-1]
            assert sources, f"COPY {args} has no source"
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert not is_ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"
