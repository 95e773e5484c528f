"""The `fraudops` command: run the local stack, manage contracts and topics."""

from __future__ import annotations

import asyncio
import secrets
import sys
from typing import Annotated

import typer

from fraudops.errors import ConfigurationError, FraudOpsError
from fraudops.paths import contracts_dir

app = typer.Typer(help="Fraud detection platform: local stack, contracts and tools.", no_args_is_help=True)
contracts_app = typer.Typer(help="OpenAPI documents and Avro contracts.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics from contracts/topics.yaml.", no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
app.add_typer(topics_app, name="topics")


def _report(name: str, outcome: str) -> None:
    typer.echo(f"{name:<18} {outcome}")


@app.command()
def setup() -> None:
    """Fetch what the local stack needs beyond Python (Kafka's jars, by Maven) and check Java."""
    from fraudops.settings import load_settings
    from fraudops.stack.config import StackSettings
    from fraudops.stack.kafka_runtime import KafkaRuntime

    runtime = KafkaRuntime(load_settings(StackSettings).tools_dir / "kafka")
    fetched = runtime.ensure_jars()
    typer.echo(f"Kafka jars {'fetched into' if fetched else 'present in'} {runtime.lib_dir}")


@app.command()
def up(
    only: Annotated[list[str] | None, typer.Option("--only", help="Start only these components (repeatable).")] = None,
) -> None:
    """Start Kafka, MLflow and the five services on 127.0.0.1, each waited on until ready."""
    from fraudops.stack.stack import Stack

    stack = Stack()
    stack.up(only or (), report=_report)
    typer.echo("stack is up; `fraudops status` shows the URLs, `fraudops down` stops it")


@app.command()
def down() -> None:
    """Stop everything `fraudops up` started."""
    from fraudops.stack.stack import Stack

    Stack().down(report=_report)


@app.command()
def status() -> None:
    """Show each part of the local stack with its URL and health; exit 1 if any is not ready."""
    from fraudops.stack.stack import Stack

    rows = Stack().status()
    for row in rows:
        pid = str(row.pid) if row.pid else "-"
        typer.echo(f"{row.name:<18} {row.url:<28} pid {pid:<8} {row.detail}")
    if not all(row.healthy for row in rows):
        raise typer.Exit(1)


@app.command()
def token(service: Annotated[str, typer.Argument(help="Service whose operator token to print.")]) -> None:
    """Print the local stack's operator token of a service (for curl and scripts)."""
    from fraudops.stack.components import SERVICE_DEPENDENCIES, operator_token
    from fraudops.stack.config import StackSettings

    if service not in SERVICE_DEPENDENCIES:
        raise ConfigurationError(f"unknown service {service!r}; known: {', '.join(SERVICE_DEPENDENCIES)}")
    typer.echo(operator_token(StackSettings(), service))


@app.command()
def secret() -> None:
    """Print a new random secret suitable for a token or password."""
    typer.echo(secrets.token_urlsafe(32))


@contracts_app.command("generate")
def contracts_generate() -> None:
    """Regenerate contracts/openapi/<service>.json from the apps."""
    from fraudops.contracts.openapi import write_documents

    for path in write_documents(contracts_dir() / "openapi"):
        typer.echo(f"wrote {path}")


@contracts_app.command("check")
def contracts_check() -> None:
    """Fail if a committed OpenAPI document differs from the code."""
    from fraudops.contracts.openapi import stale_documents

    stale = stale_documents(contracts_dir() / "openapi")
    if stale:
        typer.echo(f"stale OpenAPI documents: {', '.join(stale)}; run `make contracts`", err=True)
        raise typer.Exit(1)
    typer.echo("OpenAPI documents match the code")


@topics_app.command("create")
def topics_create(
    bootstrap: Annotated[str, typer.Option(help="Kafka bootstrap servers.")] = "127.0.0.1:9092",
) -> None:
    """Create the catalogue's topics if missing (idempotent)."""
    from fraudops.contracts.topics import ensure_topics, load_topic_catalog

    try:
        outcome = asyncio.run(ensure_topics(bootstrap, load_topic_catalog()))
    except Exception as exc:
        raise FraudOpsError(f"cannot reach Kafka at {bootstrap} ({exc}); is it running? (`fraudops up`)") from exc
    for name, what in outcome.items():
        _report(name, what)


def main() -> None:
    """Console entry point: platform errors become one line on stderr and a non-zero exit."""
    import logging

    # aiokafka logs every refused connection; the commands report an unreachable broker themselves.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        app(standalone_mode=False)
    except FraudOpsError as exc:
        typer.echo(f"fraudops: {exc.message}", err=True)
        sys.exit(2 if isinstance(exc, ConfigurationError) else 1)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # click's usage errors and aborts
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
