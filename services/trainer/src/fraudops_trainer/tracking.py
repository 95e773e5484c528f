"""Everything a training job leaves in MLflow: the run, its artifacts, and the registered model version."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from fraudops.features import FEATURE_NAMES, FEATURE_VERSION
from fraudops_trainer.pipeline import TrainedModel
from fraudops_trainer.plots import save_plots

# What the scorer, the monitor and the registry gateway read from a version's tags.
REFERENCE_ROWS = 50_000


@dataclass(frozen=True)
class Logged:
    run_id: str
    model_uri: str
    model_version: str | None


def _evaluation_frame(model: TrainedModel) -> pd.DataFrame:
    columns = ["transaction_id", "event_time", "customer_id", "amount", "is_fraud", *FEATURE_NAMES, "score"]
    columns = list(dict.fromkeys(c for c in columns if c in model.test.columns))
    return model.test[columns].reset_index(drop=True)


def _reference_profile(model: TrainedModel) -> pd.DataFrame:
    """Features and scores of the test period, sampled: the baseline the monitor compares live data with.

    The test period's scores are out of sample, as live scores are; scores on the training rows would be
    sharper than anything the model gives live and make every live window look drifted.
    """
    reference = model.test[[*FEATURE_NAMES, "score"]]
    if len(reference) > REFERENCE_ROWS:
        reference = reference.sample(n=REFERENCE_ROWS, random_state=0)
    return reference.reset_index(drop=True)


def log_and_register(
    model: TrainedModel,
    *,
    tracking_uri: str,
    experiment: str,
    model_name: str,
    dataset_id: str,
    dataset_uri: str,
    label_delay_days: int,
    register: bool,
    extra_params: dict[str, Any],
) -> Logged:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment)
    metrics = model.report.as_dict()
    with mlflow.start_run(run_name=f"train-{dataset_id}") as run, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        mlflow.log_params(
            {
                **model.parameters.model_dump(),
                **{f"split.{k}": v for k, v in model.split.describe().items()},
                **{f"validation.{k}": v for k, v in model.validation_split.describe().items()},
                "label_delay_days": label_delay_days,
                "feature_version": FEATURE_VERSION,
                "dataset_id": dataset_id,
                **extra_params,
            }
        )
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_metrics(
            {
                "train_rows": float(len(model.train)),
                "test_rows": float(len(model.test)),
                "train_frauds": float(model.train["is_fraud"].sum()),
                "test_frauds": float(model.test["is_fraud"].sum()),
            }
        )
        source = from_pandas(
            model.train[["transaction_id", "event_time", "amount", "is_fraud"]].head(1000),
            source=dataset_uri,
            name=dataset_id,
            targets="is_fraud",
        )
        mlflow.log_input(source, context="training")
        for path in save_plots(model.test, model.booster, folder / "plots"):
            mlflow.log_artifact(str(path), artifact_path="plots")
        (folder / "features.json").write_text(
            json.dumps({"feature_version": FEATURE_VERSION, "feature_names": list(FEATURE_NAMES)}, indent=2)
        )
        (folder / "thresholds.json").write_text(json.dumps(model.thresholds, indent=2))
        mlflow.log_artifact(str(folder / "features.json"))
        mlflow.log_artifact(str(folder / "thresholds.json"))
        _evaluation_frame(model).to_parquet(folder / "test.parquet", index=False)
        mlflow.log_artifact(str(folder / "test.parquet"), artifact_path="evaluation")
        _reference_profile(model).to_parquet(folder / "reference.parquet", index=False)
        mlflow.log_artifact(str(folder / "reference.parquet"), artifact_path="reference")

        example = model.test[list(FEATURE_NAMES)].head(5).astype(np.float64)
        signature = infer_signature(example, model.test["score"].head(5).to_numpy())
        info = mlflow.xgboost.log_model(model.booster, name="model", signature=signature, input_example=example)
        version: str | None = None
        if register:
            registered = mlflow.register_model(info.model_uri, model_name)
            version = str(registered.version)
            client = MlflowClient(tracking_uri)
            tags = {
                "dataset_id": dataset_id,
                "feature_version": FEATURE_VERSION,
                "feature_names": json.dumps(list(FEATURE_NAMES)),
                "label_delay_days": str(label_delay_days),
                "threshold_review": repr(model.thresholds["review"]),
                "threshold_decline": repr(model.thresholds["decline"]),
                "metric.average_precision": repr(metrics["average_precision"]),
                "metric.roc_auc": repr(metrics["roc_auc"]),
                "metric.card_precision_at_100": repr(metrics["card_precision_at_100"]),
                "validation_status": "pending",
            }
            for key, value in tags.items():
                client.set_model_version_tag(model_name, version, key, value)
        return Logged(run_id=run.info.run_id, model_uri=info.model_uri, model_version=version)
