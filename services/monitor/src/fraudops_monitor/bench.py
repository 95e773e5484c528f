"""`fraudops bench drift`: does the monitor tell a new fraud pattern from a change of customers, and how fast?

It starts its own Kafka and MLflow (the stack's API, free loopback ports, a temporary folder). For each
stream (no drift, population shift, card testing — the simulator's scenarios, starting on the same day),
it trains and registers a champion on the days before, runs a real scorer and a real monitor as
processes on the stream's own topics, replays the history at full speed and the days after the start
at a steady pace, then reads the monitor's evaluations and applies the alert rules' conditions
(infrastructure/prometheus/rules) to each. Reported: when each alert would first fire (simulated hours
after the start, beside the spacing of evaluations, the resolution), and the time Evidently takes on a
50,000-row window beside the same distances computed bare with SciPy. One JSON document on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import pandas as pd

    from fraudops.stack.config import StackSettings

app = typer.Typer(help="Benchmarks of the monitor; each starts its own Kafka and MLflow.", no_args_is_help=True)

DRIFT_START_DAY = 52
TRAIN_DAYS = range(30, 45)
REFERENCE_DAYS = range(45, DRIFT_START_DAY)
SCENARIOS = ("none", "population_shift", "card_testing")
EVALUATE_EVERY = 250
PACED_RATE = 250.0
TIMING_ROWS = 50_000

# The alert rules' conditions (infrastructure/prometheus/rules/fraud-monitor.yml; a unit test holds them equal).
DATA_DRIFT_SHARE = 0.2
ACCURACY_FLOOR = 0.5
MIN_LABELLED = 200


def _say(text: str) -> None:
    print(f"[bench drift] {text}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------------------ data


def simulated_rows(
    scenario: str, days: int, seed: int = 3, customers: int = 1_000
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with offline features and `day`, labels) of a stream of about 2 payments per customer and day
    (two terminals per customer); `scenario` starts on day 52."""
    import pandas as pd

    from fraudops.features import FEATURE_NAMES
    from fraudops.features.offline import compute_features
    from fraudops.simulator import SimulatorConfig, derive_labels, simulate
    from fraudops.simulator.config import DriftSpec

    drifts = () if scenario == "none" else (DriftSpec(scenario, DRIFT_START_DAY),)
    config = SimulatorConfig(n_customers=customers, n_terminals=2 * customers, n_days=days, seed=seed, drifts=drifts)
    transactions = simulate(config).transactions.sort_values("event_time", kind="stable").reset_index(drop=True)
    labels = derive_labels(transactions)
    features = compute_features(transactions, labels)[list(FEATURE_NAMES)]
    rows = pd.concat([transactions.drop(columns=[c for c in FEATURE_NAMES if c in transactions]), features], axis=1)
    rows["day"] = (rows["event_time"] - rows["event_time"].min().floor("D")).dt.days
    return rows, labels


@dataclass(frozen=True)
class Champion:
    version: str
    review_threshold: float


def register_champion(
    mlflow_url: str, model_name: str, rows: pd.DataFrame, train_days: range, reference_days: range
) -> Champion:
    """Train on `train_days`; log the booster with the contract's tags and the reference profile of
    `reference_days` (out-of-sample scores) as the trainer does; alias it champion."""
    import mlflow
    import numpy as np
    import xgboost
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from fraudops.features import FEATURE_NAMES, FEATURE_VERSION

    features = list(FEATURE_NAMES)
    train = rows[rows["day"].isin(train_days)]
    matrix = xgboost.DMatrix(train[features].to_numpy(np.float32), label=train["is_fraud"], feature_names=features)
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 0}
    booster = xgboost.train(params, matrix, num_boost_round=60)
    held_out = rows[rows["day"].isin(reference_days)]
    scores = booster.inplace_predict(held_out[features].to_numpy(np.float32))
    # About 3 % reviewed, 0.5 % declined.
    review, decline = float(np.quantile(scores, 0.97)), float(np.quantile(scores, 0.995))
    mlflow.set_tracking_uri(mlflow_url)
    mlflow.set_experiment(f"bench-{model_name}")
    with tempfile.TemporaryDirectory() as scratch, mlflow.start_run():
        example = held_out[features].head(3).astype(np.float64)
        info = mlflow.xgboost.log_model(
            booster, name="model", signature=infer_signature(example, scores[:3]), input_example=example
        )
        profile = Path(scratch) / "reference.parquet"
        held_out[features].assign(score=scores).to_parquet(profile, index=False)
        mlflow.log_artifact(str(profile), artifact_path="reference")
    version = str(mlflow.register_model(info.model_uri, model_name).version)
    client = MlflowClient(mlflow_url)
    tags = {
        "dataset_id": "ds-bench",
        "feature_version": FEATURE_VERSION,
        "feature_names": json.dumps(features),
        "label_delay_days": "7",
        "threshold_review": repr(review),
        "threshold_decline": repr(max(decline, review)),
        "validation_status": "pending",
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.set_registered_model_alias(model_name, "champion", version)
    return Champion(version, review)


# ------------------------------------------------------------------------------------------- processes


class _Service:
    """`python -m fraudops_<name>` with the given settings, ready when /readyz says so."""

    def __init__(self, name: str, env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.port = int(env[f"FRAUDOPS_{name.upper()}_PORT"])
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"fraudops_{name}"], env=dict(env), stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s: {self.tail()}")

    def metric(self, name: str, labels: str = "") -> float:
        import httpx

        total = 0.0
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            if line.startswith(name) and line[len(name)] in " {" and labels in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


@contextmanager
def _stack(keep: bool) -> Iterator[tuple[StackSettings, Path]]:
    from fraudops.paths import repo_root
    from fraudops.stack.components import ensure_service_tokens
    from fraudops.stack.config import StackSettings
    from fraudops.stack.stack import Stack

    root = Path(tempfile.mkdtemp(prefix="fraudops-bench-drift-"))
    ports = {f"{s}_port": _free_port() for s in ("ingest", "trainer", "scorer", "monitor", "registry_gateway")}
    settings = StackSettings.model_validate(
        {
            "state_dir": root / "stack",
            "tools_dir": (repo_root() or Path.cwd()) / ".tools",
            "kafka_port": _free_port(),
            "kafka_controller_port": _free_port(),
            "mlflow_port": _free_port(),
            "start_timeout_s": 180,
            **ports,
        }
    )
    stack = Stack(settings)
    try:
        ensure_service_tokens(settings)
        _say(f"starting Kafka and MLflow in {root}")
        stack.kafka.spawn()
        stack.mlflow.spawn()
        yield settings, root
    finally:
        stack.down()
        if keep:
            _say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- scenario


def _environment(settings: StackSettings, service: str, values: Mapping[str, str]) -> dict[str, str]:
    prefix = f"FRAUDOPS_{service.upper()}_"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDOPS_")}
    env.update(
        {
            "FRAUDOPS_SECRETS_DIR": str(settings.secrets_dir),
            prefix + "HOST": "127.0.0.1",
            prefix + "PORT": str(_free_port()),
            prefix + "KAFKA__BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
            prefix + "MLFLOW_TRACKING_URI": settings.mlflow_url,
            prefix + "LOG_LEVEL": "WARNING",
            **{prefix + k: v for k, v in values.items()},
        }
    )
    return env


def _run_scenario(settings: StackSettings, root: Path, scenario: str, days: int) -> dict[str, Any]:
    import httpx

    from fraudops.contracts.topics import TopicCatalog, ensure_topics, load_topic_catalog
    from fraudops.replay import replay
    from fraudops.settings import KafkaSettings

    _say(f"{scenario}: simulating {days} days")
    rows, labels = simulated_rows(scenario, days)
    prefix = f"{scenario.replace('_', '-')}-{os.getpid()}"
    catalog = load_topic_catalog()
    names = {role: f"{prefix}.{role}" for role in ("transactions", "scores", "scores.shadow", "labels")}
    names["transactions.dlq"] = f"{prefix}.transactions.dlq"
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap,
            TopicCatalog(topics=[catalog.get(role).model_copy(update={"name": n}) for role, n in names.items()]),
        )
    )
    model_name = f"bench-{prefix}"
    # MLflow prints links to runs on stdout, which is the JSON document's.
    with contextlib.redirect_stdout(sys.stderr):
        champion = register_champion(settings.mlflow_url, model_name, rows, TRAIN_DAYS, REFERENCE_DAYS)
    _say(f"{scenario}: champion v{champion.version} (review threshold {champion.review_threshold:.3f})")
    topics = {
        "TOPICS__TRANSACTIONS": names["transactions"],
        "TOPICS__SCORES": names["scores"],
        "TOPICS__LABELS": names["labels"],
    }
    scorer = _Service(
        "scorer",
        _environment(
            settings,
            "scorer",
            {
                **topics,
                "TOPICS__SHADOW_SCORES": names["scores.shadow"],
                "TOPICS__DEAD_LETTERS": names["transactions.dlq"],
                "GROUP_ID": f"scorer-{prefix}",
                "MODEL_NAME": model_name,
            },
        ),
        root / f"scorer-{scenario}.log",
    )
    monitor = _Service(
        "monitor",
        _environment(
            settings,
            "monitor",
            {
                **topics,
                "MODEL_NAME": model_name,
                "DATA_DIR": str(root / f"monitor-{scenario}"),
                "EVALUATE_EVERY_TRANSACTIONS": str(EVALUATE_EVERY),
                "EVALUATION_INTERVAL_S": "3600",
                "WINDOW__MIN_ROWS": "500",
            },
        ),
        root / f"monitor-{scenario}.log",
    )
    try:
        scorer.wait_ready()
        monitor.wait_ready()
        kafka = KafkaSettings(bootstrap_servers=settings.kafka_bootstrap)
        start = rows["event_time"].min().floor("D") + _days(DRIFT_START_DAY - 1)
        history, paced = rows[rows["event_time"] < start], rows[rows["event_time"] >= start]
        renames = {"transactions": names["transactions"], "labels": names["labels"]}
        _say(f"{scenario}: {len(history):,} transactions of history at full speed")
        asyncio.run(replay(history, kafka, 0, labels[labels["known_at"] < start], topic_names=renames))
        _wait_scores(monitor, names["scores"], len(history))
        _say(f"{scenario}: {len(paced):,} transactions from day {DRIFT_START_DAY - 1} at {PACED_RATE:.0f}/s")
        asyncio.run(replay(paced, kafka, PACED_RATE, labels[labels["known_at"] >= start], topic_names=renames))
        _wait_scores(monitor, names["scores"], len(rows))
        time.sleep(5)  # the evaluation the last transactions started
        evaluations = httpx.get(f"{monitor.url}/v1/evaluations", params={"limit": 1000}, timeout=30).json()
    finally:
        scorer.stop()
        monitor.stop()
    drift_start = rows["event_time"].min().floor("D") + _days(DRIFT_START_DAY)
    return _detections(evaluations, drift_start.to_pydatetime(), champion.version)


def _days(n: int) -> Any:
    import pandas as pd

    return pd.Timedelta(days=n)


def _wait_scores(monitor: _Service, topic: str, count: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while monitor.metric("fraud_monitor_messages_total", f'topic="{topic}"') < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the monitor did not read {count} scores within {timeout_s:.0f} s: {monitor.tail()}")
        time.sleep(1)


def _detections(evaluations: list[dict[str, Any]], drift_start: Any, version: str) -> dict[str, Any]:
    """When each alert's condition first held after the start (simulated hours), and whether any held before."""
    from datetime import datetime

    judged = []
    for evaluation in sorted(evaluations, key=lambda e: e["window_end"] or ""):
        if evaluation["model_version"] != version or not evaluation["drift"] or not evaluation["window_end"]:
            continue
        end = datetime.fromisoformat(evaluation["window_end"])
        hours = (end - drift_start).total_seconds() / 3600
        drift, performance = evaluation["drift"], evaluation["performance"] or {}
        ap, labelled = performance.get("average_precision"), performance.get("labelled") or 0
        conditions = {
            "FraudDataDrift": drift["drift_share"] >= DATA_DRIFT_SHARE,
            "FraudNewPatternDrift": bool(drift["new_pattern_drift"]),
            "FraudPredictionDrift": bool(drift["prediction_drifted"]),
            "FraudLiveAccuracyLow": ap is not None and labelled >= MIN_LABELLED and ap < ACCURACY_FLOOR,
        }
        judged.append((hours, conditions, drift["drift_share"]))
    after = [j for j in judged if j[0] >= 0]
    spacing = [b[0] - a[0] for a, b in itertools.pairwise(after)]
    first = {
        name: next((round(hours, 2) for hours, conditions, _ in after if conditions[name]), None)
        for name in ("FraudDataDrift", "FraudNewPatternDrift", "FraudPredictionDrift", "FraudLiveAccuracyLow")
    }
    before = sorted(
        {name for hours, conditions, _ in judged if -24 <= hours < 0 for name, on in conditions.items() if on}
    )
    return {
        "evaluations_after_start": len(after),
        "evaluation_spacing_hours": round(sorted(spacing)[len(spacing) // 2], 2) if spacing else None,
        "first_firing_hours_after_start": first,
        "fired_in_the_day_before_start": before,
        "max_drift_share_after_start": round(max((s for _, _, s in after), default=0.0), 3),
    }


# ---------------------------------------------------------------------------------------------- timing


def _timing() -> dict[str, Any]:
    """Evidently on a 50,000-row window against a 50,000-row reference, beside SciPy's bare distances."""
    import numpy as np
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    from fraudops.features import FEATURE_NAMES
    from fraudops_monitor.drift import CATEGORICAL_FEATURES, SCORE_COLUMN, DriftConfig, measure_drift

    rows, _ = simulated_rows("population_shift", 60, seed=5)
    rows = rows.assign(score=np.random.default_rng(0).random(len(rows)))
    columns = [*FEATURE_NAMES, SCORE_COLUMN]
    reference, current = rows[columns].head(TIMING_ROWS), rows[columns].tail(TIMING_ROWS)
    config = DriftConfig("wasserstein", "jensenshannon", 0.1, 0.3, ("customer_nb_tx_1h",))
    measure_drift(reference.head(1_000), current.head(1_000), config)  # imports and warms up

    def bare() -> None:
        for column in columns:
            ref, cur = reference[column].dropna().to_numpy(), current[column].dropna().to_numpy()
            if column in CATEGORICAL_FEATURES:
                jensenshannon(np.bincount(ref.astype(int), minlength=2), np.bincount(cur.astype(int), minlength=2))
            else:
                wasserstein_distance(ref, cur) / (np.std(ref) or 1.0)

    timings: dict[str, list[float]] = {"evidently": [], "scipy": []}
    for _ in range(3):
        started = time.perf_counter()
        measure_drift(reference, current, config)
        timings["evidently"].append(time.perf_counter() - started)
        started = time.perf_counter()
        bare()
        timings["scipy"].append(time.perf_counter() - started)
    return {name: round(min(values), 3) for name, values in timings.items()}


# ------------------------------------------------------------------------------------------------- run


def run_drift_benchmark(quick: bool = False, keep: bool = False) -> dict[str, Any]:
    days = DRIFT_START_DAY + (4 if quick else 8)
    started = time.monotonic()
    timing = _timing()
    _say(f"drift evaluation of {TIMING_ROWS:,} rows: {timing['evidently']} s (SciPy bare: {timing['scipy']} s)")
    scenarios: dict[str, Any] = {}
    with _stack(keep) as (settings, root):
        from fraudops.stack.stack import Stack

        stack = Stack(settings)
        stack.kafka.wait_ready()
        stack.mlflow.wait_ready()
        for scenario in SCENARIOS:
            scenarios[scenario] = _run_scenario(settings, root, scenario, days)
            _say(f"{scenario}: {json.dumps(scenarios[scenario]['first_firing_hours_after_start'])}")
    new_pattern = scenarios["card_testing"]["first_firing_hours_after_start"]
    shift = scenarios["population_shift"]["first_firing_hours_after_start"]
    quiet = scenarios["none"]["first_firing_hours_after_start"]
    detected = [h for h in (new_pattern["FraudNewPatternDrift"], new_pattern["FraudLiveAccuracyLow"]) if h is not None]
    checks = {
        "new_pattern_alert_within_48h": bool(detected) and min(detected) <= 48,
        "population_shift_data_drift_without_accuracy_or_new_pattern_alert": shift["FraudDataDrift"] is not None
        and shift["FraudLiveAccuracyLow"] is None
        and shift["FraudNewPatternDrift"] is None,
        "no_drift_raises_nothing": all(v is None for v in quiet.values()),
        "evaluation_of_50k_rows_under_5s": timing["evidently"] < 5.0,
    }
    spacing = scenarios["card_testing"]["evaluation_spacing_hours"] or 1.0
    figures = [
        {
            "benchmark": "drift",
            "metric": f"drift evaluation, {TIMING_ROWS:,}-row window",
            "unit": "s",
            "value": timing["evidently"],
            "baseline_name": "same distances, bare SciPy",
            "baseline": timing["scipy"],
            "lower_is_better": True,
            "target": "< 5 s",
        },
        {
            "benchmark": "drift",
            "metric": "card testing: first accuracy/drift alert after its start",
            "unit": "simulated h",
            "value": min(detected) if detected else float("nan"),
            "baseline_name": "evaluation spacing",
            "baseline": spacing,
            "lower_is_better": True,
            "target": "<= 48 h",
        },
        {
            "benchmark": "drift",
            "metric": "population shift: first data-drift alert after its start",
            "unit": "simulated h",
            "value": shift["FraudDataDrift"] if shift["FraudDataDrift"] is not None else float("nan"),
            "baseline_name": "evaluation spacing",
            "baseline": scenarios["population_shift"]["evaluation_spacing_hours"] or 1.0,
            "lower_is_better": True,
            "target": "fires; no accuracy alert",
        },
    ]
    return {
        "benchmark": "drift",
        "quick": quick,
        "seconds": round(time.monotonic() - started, 1),
        "timing_s": timing,
        "scenarios": scenarios,
        "checks": checks,
        "figures": figures,
    }


@app.command("drift")
def drift_command(
    quick: Annotated[bool, typer.Option(help="4 days after the start instead of 8.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder (logs) afterwards.")] = False,
) -> None:
    """Detection delays of the drift scenarios and the cost of one evaluation; prints JSON."""
    print(json.dumps(run_drift_benchmark(quick, keep), indent=2))
