"""Prometheus and Alertmanager as parts of the local stack, configured from the compose files of the checkout.

`infrastructure/prometheus/prometheus.yml` and `infrastructure/alertmanager/alertmanager.yml` are the
docker-compose configurations; the local stack renders its own copies into the state dir from them,
changing only what differs on one machine: 127.0.0.1 addresses on the stack's ports, the intervals, the
rule files' paths (and, for tests, a cap on every rule's `for:`), and the file holding the webhook token.
Both run from the Debian packages `prometheus` and `prometheus-alertmanager`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from fraudops.paths import repo_root
from fraudops.stack.components import Component, Launch, ensure_service_tokens, token_file
from fraudops.stack.config import SERVICE_NAMES, StackSettings
from fraudops.stack.process import ManagedProcess, StackError

# The monitor's principal for Alertmanager's webhook calls: its own entry in the monitor's token table.
WEBHOOK_PRINCIPAL = "alertmanager"
WEBHOOK_PATH = "/v1/alerts"
INSTALL_HINT = "install the Debian packages: apt-get install prometheus prometheus-alertmanager"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def infrastructure_dir() -> Path:
    root = repo_root()
    if root is None:
        raise StackError("Prometheus and Alertmanager run from a checkout: its infrastructure/ folder was not found")
    return root / "infrastructure"


def default_rule_files() -> list[Path]:
    return sorted((infrastructure_dir() / "prometheus" / "rules").glob("*.yml"))


def find_binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise StackError(f"{' or '.join(names)} not found on PATH; {INSTALL_HINT}")


def observability_installed() -> bool:
    return shutil.which("prometheus") is not None and any(
        shutil.which(name) for name in ("alertmanager", "prometheus-alertmanager")
    )


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `5m`, `1h30m` or `1500ms`."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _write_private(path: Path, text: str) -> None:
    """Write a secret readable by its owner only, replacing the file whole (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def webhook_token_file(settings: StackSettings) -> Path:
    return settings.secrets_dir / "alertmanager_webhook_token"


def ensure_webhook_principal(settings: StackSettings) -> str:
    """The monitor's `alertmanager` token, added to its token table on first use and copied to a 0600 file.

    Called before the services start, so a monitor started afterwards already accepts the token.
    """
    ensure_service_tokens(settings)
    table_path = token_file(settings, "monitor")
    table: dict[str, str] = json.loads(table_path.read_text())
    if WEBHOOK_PRINCIPAL not in table:
        table[WEBHOOK_PRINCIPAL] = secrets.token_urlsafe(32)
        _write_private(table_path, json.dumps(table))
    token = table[WEBHOOK_PRINCIPAL]
    path = webhook_token_file(settings)
    if not path.exists() or path.read_text() != token:
        _write_private(path, token)
    return token


def render_rules(sources: Sequence[Path], out_dir: Path, for_max_s: float | None) -> list[Path]:
    """Copy rule files into `out_dir`, each `for:` capped at `for_max_s` seconds when given."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.yml"):
        stale.unlink()
    written: list[Path] = []
    for index, source in enumerate(sources):
        document: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
        if for_max_s is not None:
            for group in document.get("groups", []):
                for rule in group.get("rules", []):
                    if "for" in rule and parse_duration(str(rule["for"])) > for_max_s:
                        rule["for"] = format_duration(for_max_s)
        # Prefixed with its position: two sources of the same name (a test's and the checkout's) both stay.
        target = out_dir / f"{index:02d}-{source.name}"
        target.write_text(yaml.safe_dump(document, sort_keys=False, width=10_000), encoding="utf-8")
        written.append(target)
    return written


def render_prometheus_config(
    base: Mapping[str, Any],
    *,
    interval_s: float,
    self_address: str,
    targets: Mapping[str, str],
    rule_files: Sequence[Path],
    alertmanager: str | None,
) -> dict[str, Any]:
    """The compose configuration with local addresses: a job per target (named as in compose when it is
    one of its services), Prometheus itself, and Alertmanager when there is one."""
    config: dict[str, Any] = copy.deepcopy(dict(base))
    config["global"]["scrape_interval"] = format_duration(interval_s)
    config["global"]["evaluation_interval"] = format_duration(interval_s)
    config["rule_files"] = [str(path) for path in rule_files]
    if alertmanager is None:
        config.pop("alerting", None)
    else:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    addresses = dict(targets)
    addresses["prometheus"] = self_address
    if alertmanager is not None:
        addresses["alertmanager"] = alertmanager
    jobs: list[dict[str, Any]] = []
    for job in config.get("scrape_configs", []):
        address = addresses.pop(job["job_name"], None)
        if address is not None:
            jobs.append({**job, "static_configs": [{"targets": [address]}]})
    jobs.extend({"job_name": name, "static_configs": [{"targets": [address]}]} for name, address in addresses.items())
    config["scrape_configs"] = jobs
    return config


def render_alertmanager_config(
    base: Mapping[str, Any],
    *,
    webhook_url: str,
    token_path: Path,
    group_wait_s: float,
    group_interval_s: float,
) -> dict[str, Any]:
    """The compose configuration with the webhook pointed at `webhook_url` and the token read from `token_path`."""
    config: dict[str, Any] = copy.deepcopy(dict(base))
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
            webhook["http_config"]["authorization"]["credentials_file"] = str(token_path)
    for route in config["route"].get("routes", []):
        route["group_wait"] = format_duration(group_wait_s)
        route["group_interval"] = format_duration(group_interval_s)
    return config


def _load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


async def _ready(url: str, what: str) -> None:
    async with httpx.AsyncClient(timeout=3.0) as client:
        response = await client.get(f"{url}/-/ready")
    if response.status_code != 200:
        raise ConnectionError(f"{what} /-/ready answered {response.status_code}")


class AlertmanagerServer(Component):
    """Alertmanager on 127.0.0.1, gossip off, posting fraud alerts to the monitor (or to `webhook_url`)."""

    name = "alertmanager"

    def __init__(self, settings: StackSettings, *, webhook_url: str | None = None, home: Path | None = None) -> None:
        """`home` holds the configuration and data (default: the state dir's `alertmanager/`); one given also
        holds the pid file and log, so this instance runs beside the stack's own."""
        super().__init__(settings)
        self.home = home or settings.state_dir / "alertmanager"
        if home is not None:
            self.process = ManagedProcess(self.name, home / "run", home / "logs")
        self.webhook_url = webhook_url or f"http://{settings.host}:{settings.service_port('monitor')}{WEBHOOK_PATH}"

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.alertmanager_port}"

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.alertmanager_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.alertmanager_port, "FRAUDOPS_STACK_ALERTMANAGER_PORT")]

    @property
    def config_path(self) -> Path:
        return self.home / "alertmanager.yml"

    def prepare(self) -> None:
        ensure_webhook_principal(self.settings)
        config = render_alertmanager_config(
            _load_yaml(infrastructure_dir() / "alertmanager" / "alertmanager.yml"),
            webhook_url=self.webhook_url,
            token_path=webhook_token_file(self.settings),
            group_wait_s=self.settings.alertmanager_group_wait_s,
            group_interval_s=self.settings.alertmanager_group_interval_s,
        )
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def launch(self) -> Launch:
        argv = [
            find_binary("alertmanager", "prometheus-alertmanager"),
            f"--config.file={self.config_path}",
            f"--storage.path={self.home / 'data'}",
            f"--web.listen-address={self.address}",
            f"--web.external-url={self.url}/",
            # One instance: no gossip port, which would otherwise listen on every interface.
            "--cluster.listen-address=",
        ]
        return Launch(argv=argv, env=dict(os.environ), marker=f"--web.listen-address={self.address}")

    async def check(self) -> None:
        await _ready(self.url, "Alertmanager")


class PrometheusServer(Component):
    """Prometheus on 127.0.0.1 scraping the stack's services (or `targets`) with the fraud rules (or `rule_files`)."""

    name = "prometheus"

    def __init__(
        self,
        settings: StackSettings,
        *,
        targets: Mapping[str, str] | None = None,
        rule_files: Sequence[Path] | None = None,
        alertmanager: str | None = "",
        home: Path | None = None,
    ) -> None:
        """`targets` maps a job name to host:port; `alertmanager` is host:port, "" for the stack's, None for none;
        `home` holds the configuration, rules and data (default: the state dir's `prometheus/`); one given also
        holds the pid file and log, so this instance runs beside the stack's own."""
        super().__init__(settings)
        self.home = home or settings.state_dir / "prometheus"
        if home is not None:
            self.process = ManagedProcess(self.name, home / "run", home / "logs")
        self.targets = dict(targets) if targets is not None else self.stack_targets(settings)
        self.rule_files = list(rule_files) if rule_files is not None else None
        self.alertmanager = f"{settings.host}:{settings.alertmanager_port}" if alertmanager == "" else alertmanager

    @staticmethod
    def stack_targets(settings: StackSettings) -> dict[str, str]:
        return {service: f"{settings.host}:{settings.service_port(service)}" for service in SERVICE_NAMES}

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.prometheus_port}"

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.prometheus_port}"

    @property
    def config_path(self) -> Path:
        return self.home / "prometheus.yml"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.prometheus_port, "FRAUDOPS_STACK_PROMETHEUS_PORT")]

    def prepare(self) -> None:
        sources = self.rule_files if self.rule_files is not None else default_rule_files()
        rules = render_rules(sources, self.home / "rules", self.settings.alert_for_max_s)
        config = render_prometheus_config(
            _load_yaml(infrastructure_dir() / "prometheus" / "prometheus.yml"),
            interval_s=self.settings.prometheus_interval_s,
            self_address=self.address,
            targets=self.targets,
            rule_files=rules,
            alertmanager=self.alertmanager,
        )
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")

    def launch(self) -> Launch:
        argv = [
            find_binary("prometheus"),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.home / 'data'}",
            "--storage.tsdb.retention.time=2d",
            # Firing alerts are re-sent this often (default 1 min): with short test intervals, an alert sent before
            # Alertmanager was discovered would otherwise wait a minute for its next chance.
            f"--rules.alert.resend-delay={format_duration(min(60.0, self.settings.prometheus_interval_s))}",
            f"--web.listen-address={self.address}",
        ]
        return Launch(argv=argv, env=dict(os.environ), marker=f"--web.listen-address={self.address}")

    async def check(self) -> None:
        await _ready(self.url, "Prometheus")
