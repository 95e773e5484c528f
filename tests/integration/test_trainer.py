"""A training job against the real stack: dataset from ingest, run and model in MLflow (Postgres backend)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from fraudops.features import FEATURE_NAMES, FEATURE_VERSION
from tests.support.stack import RunningStack

pytestmark = pytest.mark.integration

SMALL_WORLD = {"customers": 400, "terminals": 800, "days": 50, "seed": 3}
FAST_MODEL = {"n_estimators": 60, "max_depth": 4, "learning_rate": 0.2}


def _wait(client: httpx.Client, path: str, done: set[str], timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(path).json()
        if body["status"] in done:
            return body
        time.sleep(1)
    raise AssertionError(f"{path} did not finish: {body}")


@pytest.fixture(scope="module")
def dataset_id(running_stack: RunningStack) -> str:
    with running_stack.client("ingest") as ingest:
        response = ingest.post("/v1/datasets/simulated", json={"name": "trainer-test", **SMALL_WORLD})
        assert response.status_code == 202, response.text
        dataset = _wait(ingest, f"/v1/datasets/{response.json()['dataset_id']}", {"ready", "failed"})
    assert dataset["status"] == "ready", dataset
    return str(dataset["dataset_id"])


def test_training_job_tracks_registers_and_reproduces_scores(running_stack: RunningStack, dataset_id: str) -> None:
    with running_stack.client("trainer") as trainer:
        started = trainer.post(
            "/v1/training-jobs",
            json={"dataset_id": dataset_id, "model": FAST_MODEL, "protocol": {"train_days": 14}},
        )
        assert started.status_code == 202, started.text
        job = _wait(trainer, f"/v1/training-jobs/{started.json()['job_id']}", {"succeeded", "failed", "cancelled"})
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["metrics"]["roc_auc"] > 0.6
    assert result["thresholds"]["decline"] >= result["thresholds"]["review"]

    tracking = running_stack.url("mlflow")
    client = MlflowClient(tracking)
    run = client.get_run(result["run_id"])
    assert run.data.params["dataset_id"] == dataset_id
    assert run.data.params["feature_version"] == FEATURE_VERSION
    assert {"roc_auc", "average_precision", "card_precision_at_100"} <= run.data.metrics.keys()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "evaluation", "reference", "features.json", "thresholds.json"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {
        f"plots/{n}.png" for n in ("pr_curve", "roc_curve", "score_distribution", "feature_importance", "shap_summary")
    } <= plots
    assert run.inputs is not None
    assert run.inputs.dataset_inputs[0].dataset.name == dataset_id

    version = client.get_model_version("fraud-detector", result["model_version"])
    assert version.tags["validation_status"] == "pending"
    assert version.tags["dataset_id"] == dataset_id
    assert json.loads(version.tags["feature_names"]) == list(FEATURE_NAMES)
    assert float(version.tags["threshold_review"]) == pytest.approx(result["thresholds"]["review"])

    mlflow.set_tracking_uri(tracking)
    booster = mlflow.xgboost.load_model(f"models:/fraud-detector/{result['model_version']}")
    evaluation_path = client.download_artifacts(run.info.run_id, "evaluation/test.parquet")
    evaluation = pd.read_parquet(evaluation_path)
    reloaded = booster.inplace_predict(evaluation[list(FEATURE_NAMES)].to_numpy(np.float32))
    np.testing.assert_allclose(reloaded, evaluation["score"].to_numpy(), rtol=1e-6, atol=1e-7)


def test_unknown_dataset_is_404(running_stack: RunningStack) -> None:
    with running_stack.client("trainer") as trainer:
        response = trainer.post("/v1/training-jobs", json={"dataset_id": "ds-00000000000000000000"})
    assert response.status_code == 404
    assert "no dataset" in response.json()["detail"]


def test_single_class_dataset_fails_with_the_reason(running_stack: RunningStack) -> None:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = 40 * 24
    frame = pd.DataFrame(
        {
            "transaction_id": [f"sc-{i}" for i in range(rows)],
            "event_time": [(start + pd.Timedelta(hours=i)).isoformat() for i in range(rows)],
            "customer_id": [f"c-{i % 9}" for i in range(rows)],
            "terminal_id": [f"t-{i % 5}" for i in range(rows)],
            "amount": [10.0 + i % 50 for i in range(rows)],
            "is_fraud": [0] * rows,
        }
    )
    with running_stack.client("ingest") as ingest:
        uploaded = ingest.post(
            "/v1/datasets",
            content=frame.to_csv(index=False).encode(),
            params={"period_start": "2024-01-01", "period_end": "2024-02-15"},
            headers={"content-type": "text/csv"},
        )
        dataset = _wait(ingest, f"/v1/datasets/{uploaded.json()['dataset_id']}", {"ready", "failed"})
    with running_stack.client("trainer") as trainer:
        started = trainer.post("/v1/training-jobs", json={"dataset_id": dataset["dataset_id"], "model": FAST_MODEL})
        assert started.status_code == 202, started.text
        job = _wait(trainer, f"/v1/training-jobs/{started.json()['job_id']}", {"succeeded", "failed"})
        assert job["status"] == "failed"
        assert "single class" in job["error"]
        # The worker survived: the service still answers and accepts work.
        assert trainer.get("/readyz").status_code == 200


def test_cancel_a_running_job(running_stack: RunningStack, dataset_id: str) -> None:
    with running_stack.client("trainer") as trainer:
        started = trainer.post(
            "/v1/training-jobs", json={"dataset_id": dataset_id, "model": {"n_estimators": 3000}, "search_trials": 50}
        ).json()
        cancelled = trainer.delete(f"/v1/training-jobs/{started['job_id']}")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert trainer.delete(f"/v1/training-jobs/{started['job_id']}").status_code == 409
        assert trainer.get("/v1/training-jobs/job-0000000000000000").status_code == 404
