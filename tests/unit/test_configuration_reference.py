"""docs/configuration.md is exactly what the settings classes generate, and covers every one of them."""

from __future__ import annotations

import ast
import difflib
import importlib
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from fraudops.settings import unknown_env_keys
from fraudops.settings_reference import (
    HIDDEN_BUILT_IN,
    HIDDEN_REQUIRED,
    HIDDEN_UNSET,
    REFERENCE_FILE,
    Section,
    env_prefix,
    render,
    sections,
    undocumented,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [ROOT / "libs" / "fraudops" / "src", *sorted((ROOT / "services").glob("*/src"))]


@pytest.fixture(scope="module")
def generated() -> list[Section]:
    return sections()


def _declared_settings_classes() -> list[tuple[str, str]]:
    """(module, class) of every class in the source trees that derives, at any depth, from BaseSettings.

    Read from the syntax tree, so a settings class the generator does not know of is still found.
    """
    classes: list[tuple[str, str, set[str]]] = []
    for source_root in SOURCE_ROOTS:
        for path in sorted(source_root.rglob("*.py")):
            module = ".".join(path.relative_to(source_root).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                    classes.append((module, node.name, bases))
    settings_names = {"BaseSettings"}
    while True:
        grown = settings_names | {name for _, name, bases in classes if bases & settings_names}
        if grown == settings_names:
            break
        settings_names = grown
    return [(module, name) for module, name, bases in classes if bases & settings_names]


def test_committed_reference_matches_the_settings(generated: list[Section]) -> None:
    path = ROOT / REFERENCE_FILE
    expected = render(generated)
    committed = path.read_text(encoding="utf-8") if path.is_file() else ""
    if committed != expected:
        diff = "".join(
            list(difflib.unified_diff(committed.splitlines(True), expected.splitlines(True), "committed", "generated"))[
                :60
            ]
        )
        pytest.fail(f"{REFERENCE_FILE} differs from the settings classes: run `make config-reference`\n{diff}")


def test_every_settings_class_is_covered(generated: list[Section]) -> None:
    covered = [section.settings_cls for section in generated]
    declared = _declared_settings_classes()
    assert declared, "no settings class found in the source trees: the scan is broken"
    missing = []
    for module, name in declared:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, BaseSettings), f"{module}.{name}"
        # A class without a prefix is a base; its fields are documented under each subclass's prefix.
        documented = cls in covered if env_prefix(cls) else any(issubclass(c, cls) for c in covered)
        if not documented:
            missing.append(f"{module}.{name}")
    assert not missing, (
        f"settings classes missing from {REFERENCE_FILE}: {missing}; "
        "put them in a service's `settings` module (or extend fraudops.settings_reference.settings_modules)"
    )


def test_every_service_has_a_section(generated: list[Section]) -> None:
    services = sorted(path.name for path in (ROOT / "services").iterdir() if (path / "pyproject.toml").is_file())
    titles = {section.title for section in generated}
    assert set(services) <= titles
    assert len({section.prefix for section in generated}) == len(generated), "two classes share a prefix"


def test_every_variable_has_a_description(generated: list[Section]) -> None:
    assert undocumented(generated) == [], "add `description=` to these fields' Field(...)"


def test_variables_are_names_the_services_accept(generated: list[Section]) -> None:
    for section in generated:
        names = {variable.name: "x" for variable in section.variables}
        assert unknown_env_keys(section.settings_cls, names) == []
        assert all(name.startswith(section.prefix) for name in names)


def test_secrets_show_no_value(generated: list[Section]) -> None:
    text = render(generated)
    secrets = [v for s in generated for v in s.variables if v.secret]
    assert {v.name.removeprefix(s.prefix) for s in generated for v in s.variables if v.secret} >= {"TOKENS"}
    for variable in secrets:
        assert variable.default in {HIDDEN_REQUIRED, HIDDEN_UNSET, HIDDEN_BUILT_IN}, variable.name
    for section in generated:
        for name, field in section.settings_cls.model_fields.items():
            if isinstance(field.default, SecretStr):
                value = field.default.get_secret_value()
                assert value not in text, f"the default of {section.prefix}{name.upper()} is shown"


def test_nested_models_are_flattened(generated: list[Section]) -> None:
    names = {variable.name for section in generated for variable in section.variables}
    assert "FRAUDOPS_INGEST_KAFKA__BOOTSTRAP_SERVERS" in names
    assert "FRAUDOPS_MONITOR_WINDOW__MAX_ROWS" in names
    assert "FRAUDOPS_INGEST_KAFKA" not in names


def test_cli_writes_and_checks_the_reference(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fraudops.cli import app

    target = tmp_path / "configuration.md"
    runner = CliRunner()
    assert runner.invoke(app, ["config-reference", "--check", "--output", str(target)]).exit_code == 1
    assert runner.invoke(app, ["config-reference", "--output", str(target)]).exit_code == 0
    assert target.read_text(encoding="utf-8") == (ROOT / REFERENCE_FILE).read_text(encoding="utf-8")
    checked = runner.invoke(app, ["config-reference", "--check", "--output", str(target)])
    assert checked.exit_code == 0, checked.output
