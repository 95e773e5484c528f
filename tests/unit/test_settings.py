"""Settings refuse missing, placeholder and unknown configuration with one readable line, never echoing a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraudops.errors import ConfigurationError
from fraudops.settings import load_settings
from fraudops_ingest.settings import IngestSettings
from fraudops_registry_gateway.settings import RegistryGatewaySettings

GOOD_TOKEN = "q2V8pXr4Lm9Zt7Bn3Kd6Hs1Wf5Yc0Ja"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("FRAUDOPS_"):
            monkeypatch.delenv(key)


def test_valid_tokens_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDOPS_INGEST_TOKENS", json.dumps({"operator": GOOD_TOKEN}))
    settings = load_settings(IngestSettings)
    assert settings.tokens["operator"].get_secret_value() == GOOD_TOKEN
    assert GOOD_TOKEN not in repr(settings)


def test_missing_token_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="FRAUDOPS_INGEST_TOKENS"):
        load_settings(IngestSettings)


@pytest.mark.parametrize(
    "token",
    ["changeme", "changeme-changeme-changeme", "aaaaaaaaaaaaaaaaaaaaaaaa", "my-secret-token-value-123", "short1A"],
)
def test_placeholder_or_weak_token_refuses_to_start(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("FRAUDOPS_INGEST_TOKENS", json.dumps({"operator": token}))
    with pytest.raises(ConfigurationError) as caught:
        load_settings(IngestSettings)
    assert token not in caught.value.message
    assert "\n" not in caught.value.message


def test_unknown_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDOPS_INGEST_TOKENS", json.dumps({"operator": GOOD_TOKEN}))
    monkeypatch.setenv("FRAUDOPS_INGEST_KAFKA_BOOTSTRAP", "x:1")
    with pytest.raises(ConfigurationError, match=r"unknown setting.*FRAUDOPS_INGEST_KAFKA_BOOTSTRAP"):
        load_settings(IngestSettings)


def test_nested_settings_use_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDOPS_REGISTRY_GATEWAY_TOKENS", json.dumps({"operator": GOOD_TOKEN}))
    monkeypatch.setenv("FRAUDOPS_REGISTRY_GATEWAY_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    assert load_settings(RegistryGatewaySettings).kafka.bootstrap_servers == "127.0.0.1:19092"


def test_tokens_from_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "fraudops_ingest_tokens").write_text(json.dumps({"airflow": GOOD_TOKEN}))
    monkeypatch.setenv("FRAUDOPS_SECRETS_DIR", str(tmp_path))
    assert load_settings(IngestSettings).tokens["airflow"].get_secret_value() == GOOD_TOKEN


def test_missing_secrets_dir_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAUDOPS_SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="not a directory"):
        load_settings(IngestSettings)


def test_services_bind_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDOPS_INGEST_TOKENS", json.dumps({"operator": GOOD_TOKEN}))
    assert load_settings(IngestSettings).host == "127.0.0.1"
