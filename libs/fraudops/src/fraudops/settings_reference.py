"""The configuration reference (docs/configuration.md): every environment variable, rendered from the settings classes."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import operator
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from fraudops.errors import ConfigurationError
from fraudops.paths import repo_root
from fraudops.settings import SECRETS_DIR_ENV
from fraudops.stack.config import SERVICE_NAMES

REFERENCE_FILE = Path("docs") / "configuration.md"
STACK_SETTINGS_MODULE = "fraudops.stack.config"

HIDDEN_REQUIRED = "required, secret"
HIDDEN_UNSET = "unset (secret)"
HIDDEN_BUILT_IN = "built in, secret (not shown)"
COMPUTED = "computed (see description)"

_PLAIN_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    datetime: "datetime (ISO 8601)",
    SecretStr: "string",
    Any: "any JSON value",
}


@dataclass(frozen=True)
class Variable:
    """One environment variable a settings class reads."""

    name: str
    type: str
    default: str
    description: str
    secret: bool


@dataclass(frozen=True)
class Section:
    """The variables of one settings class, under the title the reference gives it."""

    title: str
    settings_cls: type[BaseSettings]
    variables: tuple[Variable, ...]

    @property
    def prefix(self) -> str:
        return env_prefix(self.settings_cls)


def env_prefix(settings_cls: type[BaseSettings]) -> str:
    return str(settings_cls.model_config.get("env_prefix") or "").upper()


def settings_modules() -> list[str]:
    """Modules holding settings classes: each service's `settings` module, then the local stack's."""
    return [f"fraudops_{service.replace('-', '_')}.settings" for service in SERVICE_NAMES] + [STACK_SETTINGS_MODULE]


def settings_classes() -> list[tuple[str, type[BaseSettings]]]:
    """(title, class) of every settings class that reads the environment, in the reference's order.

    Classes without an env prefix (the shared ServiceSettings) are bases: their fields appear in each
    subclass's table, under the subclass's prefix.
    """
    found: list[tuple[str, type[BaseSettings]]] = []
    for module_name in settings_modules():
        module = importlib.import_module(module_name)
        for _, member in inspect.getmembers(module, inspect.isclass):
            if issubclass(member, BaseSettings) and member.__module__ == module_name and env_prefix(member):
                title = getattr(member, "service_name", None)
                found.append((title if isinstance(title, str) else "local stack", member))
    return found


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in get_args(annotation))


def _without_none(annotation: Any) -> Any:
    """The annotation with `None` taken out of a union: an unset optional variable shows as "unset"."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) != len(get_args(annotation)):
            return args[0] if len(args) == 1 else functools.reduce(operator.or_, args)
    return annotation


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel) and not issubclass(annotation, BaseSettings):
        return annotation
    return None


def type_text(annotation: Any) -> str:
    """How a value of this type is written in an environment variable."""
    annotation = _without_none(annotation)
    if annotation in _PLAIN_TYPES:
        return _PLAIN_TYPES[annotation]
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{member.value}`" for member in annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict:
        return f"JSON object ({type_text(args[0])} → {type_text(args[1])})" if args else "JSON object"
    if origin in (list, tuple, set, frozenset):
        items = [arg for arg in args if arg is not Ellipsis]
        return f"JSON list of {type_text(items[0])}" if len(items) == 1 else "JSON list"
    if origin in (Union, types.UnionType):
        return " or ".join(type_text(arg) for arg in args)
    if _nested_model(annotation) is not None:
        return "JSON object"
    return getattr(annotation, "__name__", str(annotation))


def constraint_text(field: FieldInfo) -> str:
    """The field's bounds, lengths and pattern, as a reader checks a value against them."""
    lower = upper = ""
    lengths: list[str] = []
    pattern = ""
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            lower = f"≥ {item.ge}"
        elif isinstance(item, annotated_types.Gt):
            lower = f"> {item.gt}"
        elif isinstance(item, annotated_types.Le):
            upper = f"≤ {item.le}"
        elif isinstance(item, annotated_types.Lt):
            upper = f"< {item.lt}"
        elif isinstance(item, annotated_types.MinLen):
            lengths.append(f"length ≥ {item.min_length}")
        elif isinstance(item, annotated_types.MaxLen):
            lengths.append(f"length ≤ {item.max_length}")
        elif getattr(item, "pattern", None):
            pattern = f"matching `{item.pattern}`"
    parts = [part for part in (lower, upper, *lengths, pattern) if part]
    return ", ".join(parts)


def _json_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(_json_value(key)): _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_value(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def value_text(value: Any) -> str:
    """A default as it would be written in the environment."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, datetime):
        return f"`{value.isoformat()}`"
    if isinstance(value, (dict, list, tuple, set, frozenset, BaseModel)):
        return f"`{json.dumps(_json_value(value), separators=(', ', ': '))}`"
    text = str(value)
    return f"`{text}`" if text else '`""` (empty)'


def _is_plain_data(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return True
    if isinstance(value, dict):
        return all(_is_plain_data(key) and _is_plain_data(item) for key, item in value.items())
    return isinstance(value, (list, tuple)) and all(_is_plain_data(item) for item in value)


def _default(field: FieldInfo) -> tuple[bool, Any]:
    """(known, value): factories that build containers of plain data are safe to call; the others
    (paths from the working directory or the checkout) would make the reference differ per machine."""
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]  # no factory here takes the validated data
        if isinstance(value, BaseModel) or (isinstance(value, (list, tuple, dict)) and _is_plain_data(value)):
            return True, value
        return False, None
    return True, field.default


def _default_text(field: FieldInfo, secret: bool, known: bool, value: Any) -> str:
    if field.is_required():
        return HIDDEN_REQUIRED if secret else "required"
    if not known:
        return COMPUTED
    if secret:
        return HIDDEN_UNSET if value is None else HIDDEN_BUILT_IN
    return value_text(value)


def _walk(
    model: type[BaseModel], env_name: str, delimiter: str | None, parent_default: BaseModel | None
) -> Iterator[Variable]:
    for name, field in model.model_fields.items():
        variable = env_name + name.upper()
        known, value = _default(field)
        if parent_default is not None and known and not field.is_required():
            # A parent's default instance may override its model's own defaults; it is what a service gets.
            known, value = True, getattr(parent_default, name)
        annotation = _without_none(field.annotation)
        nested = _nested_model(annotation)
        if nested is not None and delimiter:
            yield from _walk(
                nested, variable + delimiter, delimiter, value if known and isinstance(value, BaseModel) else None
            )
            continue
        secret = _is_secret(field.annotation)
        kind = type_text(field.annotation)
        constraints = constraint_text(field)
        yield Variable(
            name=variable,
            type=f"{kind}, {constraints}" if constraints else kind,
            default=_default_text(field, secret, known, value),
            description=" ".join((field.description or "").split()),
            secret=secret,
        )


def variables(settings_cls: type[BaseSettings]) -> list[Variable]:
    """Every variable the class reads, nested models flattened with the class's delimiter."""
    delimiter = settings_cls.model_config.get("env_nested_delimiter")
    return list(_walk(settings_cls, env_prefix(settings_cls), delimiter, None))


def sections() -> list[Section]:
    return [Section(title, cls, tuple(variables(cls))) for title, cls in settings_classes()]


def undocumented(all_sections: list[Section] | None = None) -> list[str]:
    """Variables whose field has no `description=`: the reference would show an empty cell."""
    return [v.name for s in (all_sections or sections()) for v in s.variables if not v.description]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(section: Section) -> str:
    return section.title.lower().replace(" ", "-")


INTRODUCTION = f"""\
Every environment variable the services and the local stack read, with its type, default and meaning.

- Each service reads the variables with its own prefix; anything else carrying that prefix is refused as a
  typo, and an invalid value stops the service with one line naming the variable (never the value).
- A nested setting joins its parts with `__` (`FRAUDOPS_SCORER_RULES__REVIEW_AMOUNT`). A whole nested
  group can instead be given as one JSON object (`FRAUDOPS_SCORER_RULES='{{"review_amount": 300}}'`).
- Lists and tables are JSON (`FRAUDOPS_INGEST_TOKENS='{{"operator": "..."}}'`); booleans are `true` or
  `false`; durations carry their unit in the name (`_s`, `_ms`, `_hours`, `_days`).
- **Secrets** (marked *secret*) never show a value here. Give them in the environment or as a file named
  after the variable in lower case (`fraudops_ingest_tokens`) in the directory `{SECRETS_DIR_ENV}` names.
  A short, repetitive or placeholder token stops the service; `fraudops secret` prints a fresh one.
- A *computed* default depends on where the process runs; the description says how.
"""


def render(all_sections: list[Section] | None = None) -> str:
    """The whole reference as Markdown."""
    all_sections = all_sections or sections()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from the settings classes by `make config-reference`; edit the classes, not this file. -->",
        "",
        INTRODUCTION,
    ]
    for section in all_sections:
        lines.append(f"- [{section.title}](#{_anchor(section)}): `{section.prefix}*`")
    for section in all_sections:
        cls = section.settings_cls
        lines += ["", f"## {section.title}", ""]
        doc = inspect.cleandoc(cls.__dict__.get("__doc__") or "")
        if doc:
            lines += [doc.splitlines()[0], ""]
        lines += [
            f"Prefix `{section.prefix}`, read by `{cls.__module__}.{cls.__qualname__}`.",
            "",
            "| Variable | Type | Default | Description |",
            "| --- | --- | --- | --- |",
        ]
        for variable in section.variables:
            cells = (f"`{variable.name}`", variable.type, variable.default, variable.description)
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def reference_path() -> Path:
    root = repo_root()
    if root is None:
        raise ConfigurationError(f"no checkout found to hold {REFERENCE_FILE}; pass --output")
    return root / REFERENCE_FILE


def write_reference(path: Path | None = None) -> Path:
    target = path or reference_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8")
    return target


def is_stale(path: Path | None = None) -> bool:
    target = path or reference_path()
    return not target.is_file() or target.read_text(encoding="utf-8") != render()
