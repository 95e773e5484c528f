"""Settings base shared by every service: env prefixes, secret files, and refusal of unsafe secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
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
    tokens: dict[str, SecretStr] = Field(
        description='Bearer tokens accepted on write endpoints, keyed by the principal they identify: `{"principal": "token"}`.'
    )

    @field_validator("tokens")
    @classmethod
    def _tokens_are_real(cls, tokens: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not tokens:
            raise ValueError("at least one token is required")
        for principal, token in tokens.items():
            check_secret(f"token of principal {principal!r}", token.get_secret_value())
        return tokens


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
