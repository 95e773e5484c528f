"""How every DAG here talks to a service: the rules for status codes, retries, timeouts and failure logs.

Only Airflow and the standard library are imported, so the DAGs parse in Airflow's own virtualenv without
any of the services' packages. The DAG files build their tasks from these pieces and contain no tokens:
a write call's `Authorization` header is a template that reads the token from the Airflow connection
(`AIRFLOW_CONN_FRAUDOPS_<SERVICE>`, password field) when the task runs, and Airflow masks it in logs.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

log = logging.getLogger("airflow.task")

INGEST = "fraudops_ingest"
TRAINER = "fraudops_trainer"
REGISTRY_GATEWAY = "fraudops_registry_gateway"
MONITOR = "fraudops_monitor"
CONNECTIONS = (INGEST, TRAINER, REGISTRY_GATEWAY, MONITOR)

# (connect, read) seconds for one request; the gate scores a model, so it gets a longer read.
QUICK_CALL = (5.0, 30.0)
SLOW_CALL = (5.0, 300.0)
# The response is checked by `accept_status` below, so the hook must not raise on its own: its
# exception would carry neither the body nor the difference between "retry" and "give up".
QUICK_OPTIONS: dict[str, Any] = {"timeout": QUICK_CALL, "check_response": False}
SLOW_OPTIONS: dict[str, Any] = {"timeout": SLOW_CALL, "check_response": False}


class ServiceUnavailable(AirflowException):
    """A 5xx answer: the service may recover, so Airflow retries the task with back-off."""


def failed_request(context: Mapping[str, Any]) -> None:
    """on_failure/on_retry callback: one log line naming the request that failed and why."""
    task = context.get("task")
    ti = context.get("ti")
    log.error(
        "request failed: dag=%s task=%s try=%s %s %s (connection %s): %s",
        getattr(context.get("dag"), "dag_id", "?"),
        getattr(task, "task_id", "?"),
        getattr(ti, "try_number", "?"),
        getattr(task, "method", "GET"),
        getattr(task, "endpoint", "?"),
        getattr(task, "http_conn_id", "?"),
        context.get("exception"),
    )


# Retries: 5xx and connection errors are retried with exponential back-off (the first delay is Airflow's
# `[core] default_task_retry_delay`, so each deployment sets its own); 4xx answers raise
# AirflowFailException, which Airflow never retries. Every task also has an overall execution timeout.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "fraudops",
    "retries": 4,
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=10),
    "on_failure_callback": failed_request,
    "on_retry_callback": failed_request,
}


def bearer(connection: str) -> dict[str, str]:
    """Headers of a write call: the token is read from the connection's password when the task runs."""
    return {
        "Authorization": "Bearer {{ conn." + connection + ".password }}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }


def _excerpt(response: Any) -> str:
    return str(getattr(response, "text", ""))[:500]


def accept_status(response: Any) -> bool:
    """Pass 2xx; give up at once on 4xx (the request is wrong, a retry cannot help); retry 5xx."""
    status = int(response.status_code)
    request = getattr(response, "request", None)
    what = f"{getattr(request, 'method', '')} {getattr(response, 'url', '')}".strip()
    if 200 <= status < 300:
        return True
    if 400 <= status < 500:
        raise AirflowFailException(f"{what} answered {status}, not retried: {_excerpt(response)}")
    raise ServiceUnavailable(f"{what} answered {status}, will retry: {_excerpt(response)}")


def body(response: Any) -> dict[str, Any]:
    """The checked JSON body of a response."""
    accept_status(response)
    parsed = response.json()
    if not isinstance(parsed, dict):
        raise AirflowFailException(f"{response.url} answered a {type(parsed).__name__}, expected an object")
    return parsed


def field(name: str) -> Callable[[Any], Any]:
    """response_filter: the named field of the JSON body, pushed as the task's XCom."""

    def pick(response: Any) -> Any:
        value = body(response).get(name)
        if value is None:
            raise AirflowFailException(f"{response.url} answered without {name!r}: {_excerpt(response)}")
        return value

    pick.__name__ = f"field_{name}"
    return pick


def dataset_ready(response: Any, params: Mapping[str, Any]) -> bool | PokeReturnValue:
    """HttpSensor check of GET /v1/datasets/{id}: done when ready; fails for good when validation failed
    or when the quarantined share of rows is above `params.max_quarantined_share`."""
    dataset = body(response)
    status = dataset.get("status")
    if status == "failed":
        raise AirflowFailException(f"dataset {dataset.get('dataset_id')} failed validation: {dataset.get('error')}")
    if status != "ready":
        log.info("dataset %s is %s", dataset.get("dataset_id"), status)
        return False
    valid = int(dataset.get("rows_valid") or 0)
    quarantined = int(dataset.get("rows_quarantined") or 0)
    total = valid + quarantined
    limit = float(params["max_quarantined_share"])
    share = quarantined / total if total else 1.0
    if share > limit:
        raise AirflowFailException(
            f"dataset {dataset.get('dataset_id')}: {quarantined} of {total} rows quarantined "
            f"({share:.2%}), above the limit of {limit:.2%}; see its report at ingest"
        )
    log.info("dataset %s ready: %s valid, %s quarantined rows", dataset.get("dataset_id"), valid, quarantined)
    return PokeReturnValue(is_done=True, xcom_value=dataset["dataset_id"])


def training_finished(response: Any) -> bool | PokeReturnValue:
    """HttpSensor check of GET /v1/training-jobs/{id}: done with the registered model version as XCom."""
    job = body(response)
    status = job.get("status")
    if status in {"failed", "cancelled"}:
        raise AirflowFailException(f"training job {job.get('job_id')} {status}: {job.get('error')}")
    if status != "succeeded":
        log.info("training job %s is %s (%s, %.0f%%)", job.get("job_id"), status, job.get("stage"),
                 100 * float(job.get("progress") or 0))  # fmt: skip
        return False
    version = (job.get("result") or {}).get("model_version")
    if version is None:
        raise AirflowFailException(f"training job {job.get('job_id')} succeeded without registering a model")
    return PokeReturnValue(is_done=True, xcom_value=str(version))


def gate_passed(response: Any) -> bool:
    """HttpOperator check of the gateway's validation: a failed gate ends the run, with the gate's reasons."""
    verdict = body(response)
    if verdict.get("validation_status") != "passed":
        reasons = "; ".join(verdict.get("reasons") or []) or "no reason given"
        raise AirflowFailException(f"version {verdict.get('version')} failed the quality gate: {reasons}")
    return True


def skip_unless(param: str) -> Callable[[Mapping[str, Any]], None]:
    """pre_execute hook: skip the task unless the run's param is set (policy switches, optional ids)."""

    def check(context: Mapping[str, Any]) -> None:
        if not context["params"].get(param):
            raise AirflowSkipException(f"param {param!r} is not set for this run")

    check.__name__ = f"skip_unless_{param}"
    return check


def skip_if(param: str) -> Callable[[Mapping[str, Any]], None]:
    """pre_execute hook: skip the task when the run's param is set (e.g. a dataset chosen by id)."""

    def check(context: Mapping[str, Any]) -> None:
        if context["params"].get(param):
            raise AirflowSkipException(f"param {param!r} is set for this run")

    check.__name__ = f"skip_if_{param}"
    return check


# Request bodies, built from the run's params with the standard library (templates call these as macros).


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def period_end(params: Mapping[str, Any], run_after: datetime) -> date:
    """The day a fresh dataset ends: the alert window's end when the run has one, else the run's time.
    Whole days only, ending before that day, so no simulated payment lies in the future."""
    window = params.get("window") or {}
    end = window.get("end") if isinstance(window, Mapping) else None
    moment = datetime.fromisoformat(str(end)) if end else run_after
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()


def recent_simulation(params: Mapping[str, Any], run_after: datetime) -> str:
    """POST /v1/datasets/simulated: `days` whole days up to the period end (ingest's generator stands in
    for recent history; a new period gives a new seed, so each run sees new payments)."""
    spec = dict(params["simulation"])
    end = period_end(params, run_after)
    days = int(spec.get("days", 60))
    start = end - timedelta(days=days)
    spec.update({"days": days, "start_date": start.isoformat()})
    spec.setdefault("seed", end.toordinal() % (2**31))
    return _json(spec)


def _moment(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def stream_window(params: Mapping[str, Any], run_after: datetime) -> str:
    """POST /v1/datasets/from-stream: the conf's window; without one, `window_days` ending at the window's
    end or else the run's time (the log holds what has happened, so the window may end at any instant)."""
    window = params.get("window") or {}
    if not isinstance(window, Mapping):
        window = {}
    end = _moment(window.get("end") or run_after)
    start = _moment(window["start"]) if window.get("start") else end - timedelta(days=int(params["window_days"]))
    return _json(
        {"start": start.isoformat(), "end": end.isoformat(), "name": str(params.get("dataset_name") or "stream")}
    )


def training_request(dataset_id: str, params: Mapping[str, Any]) -> str:
    """POST /v1/training-jobs: the chosen dataset plus the run's model and protocol overrides."""
    return _json({**dict(params.get("training") or {}), "dataset_id": dataset_id})


def promotion_request(target: str, reason: str) -> str:
    return _json({"target": target, "reason": reason})


def validation_request(note: str) -> str:
    return _json({"note": note})


def outcome_request(outcome: str, detail: str, run_id: str, version: Any) -> str:
    """POST /v1/actions/{id}/outcome at the monitor."""
    return _json(
        {"outcome": outcome, "detail": detail, "dag_run_id": run_id, "model_version": str(version) if version else None}
    )


MACROS: dict[str, Callable[..., Any]] = {
    "recent_simulation": recent_simulation,
    "stream_window": stream_window,
    "training_request": training_request,
    "promotion_request": promotion_request,
    "validation_request": validation_request,
    "outcome_request": outcome_request,
}


def lifecycle_tasks(reason: str, dataset_source: str = "simulated") -> list[Any]:
    """dataset → validation → training → gate → challenger → champion, inside the current `with DAG`.

    `reason` (a template) goes into the gateway's audit log with each promotion. `dataset_source` is where a
    new dataset comes from: "simulated" (ingest's generator, params `simulation`) or "stream" (the real
    transactions log, params `window` and `window_days`). Returns the tasks in order.
    """
    from airflow.providers.http.operators.http import HttpOperator
    from airflow.providers.http.sensors.http import HttpSensor

    if dataset_source == "stream":
        endpoint, request = "/v1/datasets/from-stream", "{{ stream_window(params, dag_run.run_after) }}"
        # A dataset from the stream is new at every request; the key makes a retried call find its own.
        headers = {**bearer(INGEST), "Idempotency-Key": "{{ dag.dag_id }}.{{ run_id }}"}
    elif dataset_source == "simulated":
        endpoint, request = "/v1/datasets/simulated", "{{ recent_simulation(params, dag_run.run_after) }}"
        headers = bearer(INGEST)
    else:
        raise ValueError(f"unknown dataset source {dataset_source!r}")
    create_dataset = HttpOperator(
        task_id="create_dataset",
        doc_md="Ask ingest to build a dataset for the period; skipped when the run names `dataset_id`.",
        http_conn_id=INGEST,
        method="POST",
        endpoint=endpoint,
        data=request,
        headers=headers,
        extra_options=QUICK_OPTIONS,
        response_filter=field("dataset_id"),
        pre_execute=skip_if("dataset_id"),
    )
    wait_for_dataset = HttpSensor(
        task_id="wait_for_dataset",
        doc_md="Poll ingest until the dataset is validated; fail if it failed or too much was quarantined.",
        http_conn_id=INGEST,
        method="GET",
        endpoint="/v1/datasets/{{ (params.dataset_id or ti.xcom_pull(task_ids='create_dataset')) | urlencode }}",
        extra_options=QUICK_OPTIONS,
        response_check=dataset_ready,
        mode="poke",
        poke_interval=5,
        timeout=int(timedelta(minutes=30).total_seconds()),
        execution_timeout=timedelta(minutes=35),
        # Runs when create_dataset was skipped because the run chose an existing dataset.
        trigger_rule="none_failed",
    )
    start_training = HttpOperator(
        task_id="start_training",
        doc_md="Queue a training job at the trainer on the validated dataset.",
        http_conn_id=TRAINER,
        method="POST",
        endpoint="/v1/training-jobs",
        data="{{ training_request(ti.xcom_pull(task_ids='wait_for_dataset'), params) }}",
        headers=bearer(TRAINER),
        extra_options=QUICK_OPTIONS,
        response_filter=field("job_id"),
    )
    wait_for_training = HttpSensor(
        task_id="wait_for_training",
        doc_md="Poll the job until it registered a model version (the XCom) or failed.",
        http_conn_id=TRAINER,
        method="GET",
        endpoint="/v1/training-jobs/{{ ti.xcom_pull(task_ids='start_training') }}",
        extra_options=QUICK_OPTIONS,
        response_check=training_finished,
        mode="poke",
        poke_interval=5,
        timeout=int(timedelta(hours=2).total_seconds()),
        execution_timeout=timedelta(hours=2, minutes=5),
    )
    version = "{{ ti.xcom_pull(task_ids='wait_for_training') }}"
    model = "/v1/models/{{ params.model_name | urlencode }}/versions/" + version
    validate = HttpOperator(
        task_id="validate_version",
        doc_md="Run the gateway's quality gate on the new version; a failed gate ends the run with its reasons.",
        http_conn_id=REGISTRY_GATEWAY,
        method="POST",
        endpoint=model + "/validate",
        data="{{ validation_request('run ' ~ run_id) }}",
        headers=bearer(REGISTRY_GATEWAY),
        extra_options=SLOW_OPTIONS,
        response_check=gate_passed,
        response_filter=field("validation_status"),
    )
    challenger = HttpOperator(
        task_id="promote_challenger",
        doc_md="Make the version the challenger: scorers score it in the shadow.",
        http_conn_id=REGISTRY_GATEWAY,
        method="POST",
        endpoint=model + "/promote",
        data="{{ promotion_request('challenger', " + reason + ") }}",
        headers=bearer(REGISTRY_GATEWAY),
        extra_options=QUICK_OPTIONS,
        response_filter=field("event_id"),
    )
    champion = HttpOperator(
        task_id="promote_champion",
        doc_md="Make the version the champion when the run allows auto-promotion (param `auto_promote`).",
        http_conn_id=REGISTRY_GATEWAY,
        method="POST",
        endpoint=model + "/promote",
        data="{{ promotion_request('champion', " + reason + ") }}",
        headers=bearer(REGISTRY_GATEWAY),
        extra_options=QUICK_OPTIONS,
        response_filter=field("event_id"),
        pre_execute=skip_unless("auto_promote"),
    )
    tasks = [create_dataset, wait_for_dataset, start_training, wait_for_training, validate, challenger, champion]
    for upstream, downstream in itertools.pairwise(tasks):
        upstream >> downstream
    return tasks
