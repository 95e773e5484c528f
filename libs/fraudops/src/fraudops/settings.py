"""Settings base shared by every service: env prefixes, secret files, and refusal of unsafe secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraudops.errors import ConfigurationError

MIN_SECRET_LENGTH = 16
# Values people paste from examples and tutorials; a secret containing one of them was never generated.
PLACEHOLDER_MARKERS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "example",
    "password",
    "secret",
    "default",
    "replace",
    "xxxx",
    "todo",
    "test",
)
SECRETS_DIR_ENV = "FRAUDOPS_SECRETS_DIR"
# In a principal's scopes: every action of the service.
ALL_ACTIONS = "*"

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def check_secret(name: str, value: str) -> None:
    """Refuse secrets that are short, repetitive or look like a placeholder; never echo the value."""
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"{name} is shorter than {MIN_SECRET_LENGTH} characters; generate one with `fraudops secret`")
    lowered = value.lower()
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS) or len(set(value)) < 8:
        raise ValueError(f"{name} looks like a placeholder; generate one with `fraudops secret`")


class KafkaSettings(BaseModel):
    """How a service reaches the Kafka cluster."""

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka brokers to start from (host:port, comma-separated)."
    )
    client_id_prefix: str = Field(
        default="fraudops", description="Start of the client id the service shows to the brokers."
    )
    request_timeout_ms: int = Field(
        default=10_000, ge=1_000, le=120_000, description="How long a request to a broker may take before it fails."
    )
    # A transaction is ~100 bytes of Avro; anything near this is not one, and decoding it would only cost memory.
    max_message_bytes: int = Field(
        default=65_536,
        ge=1_024,
        le=1_048_576,
        description="Largest message a consumer decodes; a larger one goes to the dead-letter topic undecoded "
        "(its bytes left out of the letter: they stay in the source topic at the offset the letter names).",
    )


class ServiceSettings(BaseSettings):
    """Fields every service has; subclasses set `env_prefix` and add their own."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="forbid", case_sensitive=False)

    service_name: ClassVar[str] = "service"

    host: str = Field(default="127.0.0.1", description="Address the HTTP server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP server listens on.")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Lowest level logged.")
    # Refused before they are read, so a huge body cannot fill the memory.
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest request body accepted; larger ones get 413.",
    )
    # A hung dependency or a client trickling its body holds a worker; the upload paths have their own.
    request_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Longest time a request may take, body included; a slower one gets 504 (request_timeout).",
    )
    tokens: dict[str, SecretStr] = Field(
        description='Bearer tokens accepted on write endpoints, keyed by the principal they identify: `{"principal": "token"}`.'
    )
    scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"operator": [ALL_ACTIONS]},
        description='Actions each principal may take: `{"principal": ["action", ...]}`, `"*"` for all. Every '
        "principal of TOKENS needs an entry; a request for an action not granted gets 403. Setting it replaces "
        "the whole default table.",
    )

    # The write actions this service's endpoints check; the scopes may name only these.
    actions: ClassVar[tuple[str, ...]] = ()

    @field_validator("tokens")
    @classmethod
    def _tokens_are_real(cls, tokens: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not tokens:
            raise ValueError("at least one token is required")
        for principal, token in tokens.items():
            check_secret(f"token of principal {principal!r}", token.get_secret_value())
        return tokens

    @field_validator("scopes")
    @classmethod
    def _scopes_name_known_actions(cls, scopes: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        known = (ALL_ACTIONS, *cls.actions)
        for principal, grants in scopes.items():
            unknown = [grant for grant in grants if grant not in known]
            if unknown:
                raise ValueError(
                    f"principal {principal!r} has unknown action(s) {', '.join(unknown)}; known: {', '.join(known)}"
                )
        # A token that may do nothing is a configuration slip, not a policy: say so at start, not at 3 a.m.
        unscoped = sorted(set(info.data.get("tokens", {})) - set(scopes))
        if unscoped:
            raise ValueError(f"principal(s) {', '.join(unscoped)} have a token but no scopes")
        return scopes


def _env_prefix(settings_cls: type[BaseSettings]) -> str:
    return str(settings_cls.model_config.get("env_prefix", "")).upper()


def unknown_env_keys(settings_cls: type[BaseSettings], environ: dict[str, str] | None = None) -> list[str]:
    """Environment variables carrying the class's prefix that name no field: almost always a typo."""
    prefix = _env_prefix(settings_cls)
    if not prefix:
        return []
    known = {name.upper() for name in settings_cls.model_fields}
    delimiter = str(settings_cls.model_config.get("env_nested_delimiter") or "__")
    env = os.environ if environ is None else environ
    unknown = []
    for key in env:
        upper = key.upper()
        if upper.startswith(prefix):
            field = upper[len(prefix) :].split(delimiter, 1)[0]
            if field not in known:
                unknown.append(key)
    return sorted(unknown)


def load_settings(settings_cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings or raise one ConfigurationError whose message says what to fix (never a secret)."""
    unknown = unknown_env_keys(settings_cls)
    if unknown:
        known = ", ".join(_env_prefix(settings_cls) + name.upper() for name in settings_cls.model_fields)
        raise ConfigurationError(f"unknown setting(s) {', '.join(unknown)}; known settings: {known}")
    secrets_dir = os.environ.get(SECRETS_DIR_ENV)
    if secrets_dir and not Path(secrets_dir).is_dir():
        raise ConfigurationError(f"{SECRETS_DIR_ENV}={secrets_dir} is not a directory")
    try:
        if secrets_dir:
            return settings_cls(_secrets_dir=secrets_dir, **overrides)
        return settings_cls(**overrides)
    except ValidationError as exc:
        prefix = _env_prefix(settings_cls)
        problems = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"]) or "settings"
            name = prefix + location.split(".", 1)[0].upper()
            # The input is left out on purpose: it may be a secret.
            problems.append(f"{name}: {error['msg']}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from None
