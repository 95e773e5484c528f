"""Model versions registered in a real MLflow the way the trainer's contract says, for gateway tests.

Payments are synthetic: frauds have larger amounts and riskier terminals, so a booster trained on them
ranks frauds well (it passes the quality gate) while one trained on inverted labels does not.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import xgboost
from mlflow import MlflowClient
from mlflow.models import infer_signature

from fraudops.features import FEATURE_NAMES, FEATURE_VERSION

FEATURES = list(FEATURE_NAMES)
START = datetime(2026, 10, 1, tzinfo=UTC)


def synthetic_payments(seed: int, days: int = 3, cards_per_day: int = 200, fraud_rate: float = 0.1) -> pd.DataFrame:
    """One payment per card and day: the features, `is_fraud`, `event_time` and `customer_id`."""
    rng = np.random.default_rng(seed)
    rows = days * cards_per_day
    fraud = rng.random(rows) < fraud_rate
    values = rng.normal(size=(rows, len(FEATURES)))
    values[:, FEATURES.index("amount")] += 2.5 * fraud
    values[:, FEATURES.index("terminal_risk_7d")] += 1.5 * fraud
    frame = pd.DataFrame(values, columns=FEATURES)
    day = np.repeat(np.arange(days), cards_per_day)
    frame["is_fraud"] = fraud.astype(np.int64)
    frame["event_time"] = [START + timedelta(days=int(d), minutes=int(i)) for i, d in enumerate(day)]
    frame["customer_id"] = [f"c-{i % cards_per_day}" for i in range(rows)]
    return frame


def train_booster(seed: int = 1, inverted_labels: bool = False) -> xgboost.Booster:
    """Deterministic for a seed: the same seed gives the same booster, hence the same metrics."""
    training = synthetic_payments(seed, days=5)
    labels = training["is_fraud"].to_numpy()
    if inverted_labels:
        # Learns to rank genuine payments first: as bad as a model can be, so it fails every minimum.
        labels = 1 - labels
    matrix = xgboost.DMatrix(training[FEATURES].to_numpy(np.float32), label=labels, feature_names=FEATURES)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": seed}
    return xgboost.train(params, matrix, num_boost_round=15)


def contract_tags(**overrides: str) -> dict[str, str]:
    tags = {
        "dataset_id": "ds-test",
        "feature_version": FEATURE_VERSION,
        "feature_names": json.dumps(FEATURES),
        "label_delay_days": "7",
        "threshold_review": "0.5",
        "threshold_decline": "0.9",
        "metric.average_precision": "0.9",
        "metric.roc_auc": "0.95",
        "metric.card_precision_at_100": "0.2",
        "validation_status": "pending",
    }
    tags.update(overrides)
    return tags


def register_version(
    name: str,
    booster: xgboost.Booster,
    evaluation: pd.DataFrame | None = None,
    tags: Mapping[str, str] | None = None,
    reference: pd.DataFrame | None = None,
) -> str:
    """Log the booster and its evaluation data (and the monitor's reference profile, if given) in a run,
    register it under `name`, tag it; returns the version."""
    evaluation = synthetic_payments(seed=99) if evaluation is None else evaluation
    example = evaluation[FEATURES].head(3)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(experiment_id=_experiment(name)) as run:
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            signature=infer_signature(example, booster.inplace_predict(example)),
            input_example=example,
        )
        path = Path(tmp) / "test.parquet"
        evaluation.to_parquet(path)
        mlflow.log_artifact(str(path), artifact_path="evaluation")
        if reference is not None:
            profile = Path(tmp) / "reference.parquet"
            reference.to_parquet(profile, index=False)
            mlflow.log_artifact(str(profile), artifact_path="reference")
    version = str(mlflow.register_model(info.model_uri, name).version)
    client = MlflowClient()
    for key, value in (tags if tags is not None else contract_tags()).items():
        client.set_model_version_tag(name, version, key, value)
    assert run.info.run_id
    return version


def register_foreign_version(name: str, source: str, run_id: str | None = None) -> str:
    """A version whose source is `source` (e.g. another party's bucket), attached to a real run."""
    if run_id is None:
        with mlflow.start_run(experiment_id=_experiment(name)) as run:
            mlflow.log_param("purpose", "foreign source")
        run_id = run.info.run_id
    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, source=source, run_id=run_id)
    for key, value in contract_tags().items():
        client.set_model_version_tag(name, version.version, key, value)
    return str(version.version)


def _experiment(name: str) -> str:
    experiment = mlflow.get_experiment_by_name(f"gateway-tests-{name}")
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(mlflow.create_experiment(f"gateway-tests-{name}"))


def unique_model_name(prefix: str = "fraud-detector") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
