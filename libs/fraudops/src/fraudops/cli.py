"""The `fraudops` command: run the local stack, manage contracts and topics."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path
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
    with_airflow: Annotated[
        bool, typer.Option("--with-airflow", help="Also run Airflow 3 (`make airflow-setup` installs it).")
    ] = False,
    observability: Annotated[
        bool,
        typer.Option(
            "--observability",
            help="Also start Alertmanager and Prometheus (Debian packages prometheus, prometheus-alertmanager).",
        ),
    ] = False,
) -> None:
    """Start Kafka, MLflow and the five services on 127.0.0.1, each waited on until ready."""
    from fraudops.settings import load_settings
    from fraudops.stack.config import StackSettings
    from fraudops.stack.stack import Stack

    settings = load_settings(StackSettings)
    if observability:
        settings = settings.model_copy(update={"observability": True})
    if with_airflow:
        settings = settings.model_copy(update={"with_airflow": True})
    stack = Stack(settings)
    stack.up(only or (), report=_report)
    typer.echo("stack is up; `fraudops status` shows the URLs, `fraudops down` stops it")


@app.command()
def demo(
    small: Annotated[
        bool, typer.Option("--small", help="A smaller world (minutes instead of a quarter hour).")
    ] = False,
    no_airflow: Annotated[
        bool, typer.Option("--no-airflow", help="Train through the services directly instead of Airflow's DAGs.")
    ] = False,
    output: Annotated[Path, typer.Option(help="Folder for the report (plots, summary, HTML index).")] = Path(
        "demo-output"
    ),
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Stop the local stack and delete its state first (needed to rerun on a stack that ran one)."
        ),
    ] = False,
) -> None:
    """The whole lifecycle on the local stack: dataset, champion, live stream, drift, alert, retrained champion."""
    from fraudops.demo.run import DemoOptions, run_demo
    from fraudops.demo.world import FULL, SMALL

    options = DemoOptions(SMALL if small else FULL, airflow=not no_airflow, output=output, fresh=fresh)
    raise typer.Exit(run_demo(options))


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


@app.command("config-reference")
def config_reference(
    check: Annotated[
        bool, typer.Option("--check", help="Check the file instead of writing it; exit 1 if it differs.")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="File to write (default: docs/configuration.md in the checkout).")
    ] = None,
) -> None:
    """Write the configuration reference (every environment variable) from the settings classes."""
    from fraudops.settings_reference import is_stale, reference_path, write_reference

    target = output or reference_path()
    if check:
        if is_stale(target):
            typer.echo(f"{target} differs from the settings classes; run `make config-reference`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{target} matches the settings classes")
        return
    typer.echo(f"wrote {write_reference(target)}")


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


@app.command()
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write the transactions to.")],
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 5_000,
    terminals: Annotated[int, typer.Option(help="Number of terminals.")] = 10_000,
    days: Annotated[int, typer.Option(help="Number of days.")] = 183,
    start_date: Annotated[str, typer.Option(help="First day (YYYY-MM-DD, UTC).")] = "2018-04-01",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same dataset.")] = 0,
    drift: Annotated[
        list[str] | None,
        typer.Option("--drift", help="Drift scenario to add (repeatable): card_testing, population_shift."),
    ] = None,
    drift_start_day: Annotated[
        int | None, typer.Option(help="Day (from 0) the drift scenarios start on; required with --drift.")
    ] = None,
    profiles_dir: Annotated[
        Path | None, typer.Option(help="Also write customers.parquet and terminals.parquet (profiles with x, y) here.")
    ] = None,
) -> None:
    """Simulate card transactions as in the Fraud Detection Handbook (defaults: its published dataset)."""
    import time
    from datetime import date

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from fraudops.errors import InvalidInputError
    from fraudops.simulator import DriftSpec, SimulatorConfig
    from fraudops.simulator import simulate as run_simulation

    try:
        first_day = date.fromisoformat(start_date)
    except ValueError as exc:
        raise InvalidInputError(f"--start-date {start_date!r} is not a YYYY-MM-DD date") from exc
    if drift and drift_start_day is None:
        raise InvalidInputError("--drift needs --drift-start-day")
    config = SimulatorConfig(
        n_customers=customers,
        n_terminals=terminals,
        n_days=days,
        start_date=first_day,
        seed=seed,
        drifts=tuple(DriftSpec(name, drift_start_day or 0) for name in drift or ()),
    )
    started = time.perf_counter()
    columns = (TextColumn("{task.description:<44}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("simulating", total=1.0)

        def advance(stage: str, done: float) -> None:
            progress.update(task, description=stage, completed=done)

        result = run_simulation(config, progress=advance)
        progress.update(task, description=f"writing {out.name}")
        out.parent.mkdir(parents=True, exist_ok=True)
        result.transactions.to_parquet(out, engine="pyarrow", index=False)
        if profiles_dir is not None:
            profiles_dir.mkdir(parents=True, exist_ok=True)
            result.customers.to_parquet(profiles_dir / "customers.parquet", engine="pyarrow", index=False)
            result.terminals.to_parquet(profiles_dir / "terminals.parquet", engine="pyarrow", index=False)
    typer.echo(f"{out}: {result.summary()}, {time.perf_counter() - started:.1f} s")


@app.command()
def replay(
    source: Annotated[
        Path, typer.Option("--input", help="Parquet file of transactions (e.g. from `fraudops simulate`).")
    ],
    rate: Annotated[float, typer.Option(help="Transactions per second; 0 sends as fast as possible.", min=0)] = 1000.0,
    limit: Annotated[
        int | None, typer.Option(help="Send only the first N transactions (by event time).", min=1)
    ] = None,
    with_labels: Annotated[
        bool,
        typer.Option("--with-labels", help="Also send late labels (derived from is_fraud) when they become known."),
    ] = False,
    bootstrap: Annotated[str, typer.Option(help="Kafka bootstrap servers.")] = "127.0.0.1:9092",
) -> None:
    """Stream a dataset into the `transactions` topic at a steady rate (labels into `labels`)."""
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

    from fraudops.errors import InvalidInputError
    from fraudops.replay import replay as run_replay
    from fraudops.settings import KafkaSettings

    if not source.is_file():
        raise InvalidInputError(f"--input {source} is not a file")
    transactions = pd.read_parquet(source).sort_values("event_time", kind="stable")
    if limit is not None:
        transactions = transactions.head(limit)
    labels = None
    if with_labels:
        if "is_fraud" not in transactions.columns:
            raise InvalidInputError("--with-labels needs an is_fraud column in the dataset")
        from fraudops.simulator import derive_labels

        labels = derive_labels(transactions)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("replay", total=len(transactions))
        result = asyncio.run(
            run_replay(
                transactions,
                KafkaSettings(bootstrap_servers=bootstrap),
                rate,
                labels,
                progress=lambda done, _total: progress.update(task, completed=done),
            )
        )
    typer.echo(
        f"sent {result.transactions} transactions and {result.labels} labels in {result.seconds:.1f} s "
        f"({result.rate:,.0f} transactions/s)"
    )


def _register_plugin_commands() -> None:
    """Sub-commands that service packages contribute (entry point group `fraudops.commands`): a function
    becomes one command, a `typer.Typer` a group of them (`fraudops <entry name> <command>`)."""
    from importlib.metadata import entry_points

    groups: dict[str, typer.Typer] = {}
    for entry in sorted(entry_points(group="fraudops.commands"), key=lambda e: (e.name, e.value)):
        contributed = entry.load()
        if not isinstance(contributed, typer.Typer):
            app.command(entry.name)(contributed)
        elif entry.name in groups:
            # Several packages may add to one group (`fraudops bench scorer`, `fraudops bench drift`).
            groups[entry.name].registered_commands.extend(contributed.registered_commands)
        else:
            groups[entry.name] = contributed
            app.add_typer(contributed, name=entry.name)


_register_plugin_commands()


def main() -> None:
    """Console entry point: platform errors become one line on stderr and a non-zero exit."""
    import logging

    # aiokafka logs every refused connection; the commands report an unreachable broker themselves.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        # Without standalone mode, click returns a command's `typer.Exit` code instead of exiting with it.
        code = app(standalone_mode=False)
    except FraudOpsError as exc:
        typer.echo(f"fraudops: {exc.message}", err=True)
        sys.exit(2 if isinstance(exc, ConfigurationError) else 1)
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except typer.exceptions.TyperException as exc:
        # Usage errors (missing argument, bad option value): typer's own message, no traceback.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        sys.exit(int(getattr(exc, "exit_code", 2)))
    if isinstance(code, int) and code != 0:
        sys.exit(code)
