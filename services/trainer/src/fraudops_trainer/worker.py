"""Entry point of the training process: runs one job and reports progress and the outcome over a pipe."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from fraudops.child_processes import exit_with_parent
from fraudops.errors import FraudOpsError


@dataclass(frozen=True)
class JobContext:
    """What the worker needs besides the request: where the data is and where to log."""

    job_id: str
    dataset_uri: str
    tracking_uri: str
    experiment: str
    model_name: str
    # The service's pid: a job whose service died stops rather than register a model for a job the restarted
    # service requeues.
    service_pid: int | None = None


def run_job(request: dict[str, Any], context: JobContext, channel: Connection) -> None:
    """Train, log and register; every message is ("progress", stage, fraction) or ("done"|"failed", payload)."""
    if context.service_pid is not None:
        exit_with_parent(context.service_pid)
    try:
        from fraudops.datasets import read_valid_rows
        from fraudops_trainer.pipeline import SearchPlan, train_model
        from fraudops_trainer.spec import TrainingRequest
        from fraudops_trainer.tracking import log_and_register

        spec = TrainingRequest.model_validate(request)

        def progress(stage: str, fraction: float) -> None:
            channel.send(("progress", stage, fraction))

        progress("reading dataset", 0.02)
        frame = read_valid_rows(context.dataset_uri)
        plan = SearchPlan(spec.search_trials, spec.search_folds, spec.search_metric)
        model = train_model(frame, spec.model, spec.protocol, plan, progress)
        progress("logging to MLflow", 0.9)
        searched: dict[str, Any] = {}
        if model.search:
            searched = {
                "search_metric": spec.search_metric.value,
                "search_folds": len(model.search.folds),
                "search_best_value": model.search.best_value,
            }
        logged = log_and_register(
            model,
            tracking_uri=context.tracking_uri,
            experiment=context.experiment,
            model_name=context.model_name,
            dataset_id=spec.dataset_id,
            dataset_uri=context.dataset_uri,
            label_delay_days=spec.protocol.label_delay_days,
            register=spec.register_model,
            extra_params={"job_id": context.job_id, "search_trials": spec.search_trials, **searched},
        )
        channel.send(
            (
                "done",
                {
                    "run_id": logged.run_id,
                    "model_uri": logged.model_uri,
                    "model_version": logged.model_version,
                    "metrics": model.report.as_dict(),
                    "thresholds": model.thresholds,
                    "parameters": model.parameters.model_dump(),
                    "split": model.split.describe(),
                },
            )
        )
    except FraudOpsError as exc:
        channel.send(("failed", exc.message))
    except Exception as exc:
        channel.send(("failed", f"{exc.__class__.__name__}: {exc}\n{traceback.format_exc(limit=5)}"[:4000]))
    finally:
        channel.close()
