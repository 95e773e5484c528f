"""fraud_retrain_on_alert: the monitor's answer to an accuracy alert, triggered through Airflow's REST API.

The monitor posts `{"action_id": …, "reason": …, "alerts": [Alertmanager alerts], "window": {"start": …,
"end": …}}` as the run's conf. The run builds a fresh dataset from the transactions log for that window
(`window_days` ending at the run's time when there is none), labelled with the verdicts known so far, trains, validates, promotes per policy (`auto_promote`, on by default: the alert says
the champion is failing, and the gate still refuses a version worse than it), and tells the monitor how the
action ended, succeeded or failed, at `POST /v1/actions/{action_id}/outcome`.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG, Param
from service_calls import (
    DEFAULT_ARGS,
    MACROS,
    MONITOR,
    QUICK_OPTIONS,
    accept_status,
    bearer,
    lifecycle_tasks,
    skip_unless,
)

OUTCOME = "/v1/actions/{{ params.action_id | urlencode }}/outcome"
VERSION = "ti.xcom_pull(task_ids='wait_for_training')"

with DAG(
    dag_id="fraud_retrain_on_alert",
    description="Retrain, validate and promote after a monitor alert; report the outcome to the monitor",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # One incident, one retraining: further triggers queue behind the running one.
    max_active_runs=1,
    # Only ever triggered, so it is ready to accept the monitor's runs as soon as it is parsed.
    is_paused_upon_creation=False,
    default_args=DEFAULT_ARGS,
    user_defined_macros=MACROS,
    tags=["fraudops", "training", "monitoring"],
    params={
        "action_id": Param(
            None,
            type=["null", "string"],
            minLength=1,
            maxLength=200,
            description="The monitor's action; its outcome is reported back when set.",
        ),
        "reason": Param("retraining requested", type="string", maxLength=1000),
        "alerts": Param([], type="array", description="Alertmanager alert objects that set the action off."),
        "window": Param(
            {},
            type=["object", "null"],
            description='{"start": iso8601, "end": iso8601}: the event times of the dataset cut from the stream.',
        ),
        "window_days": Param(
            59,
            type="integer",
            minimum=1,
            maximum=120,
            description="The window's length when the conf gives no start (ending at its end, or the run's time): "
            "38 days of feature history before the protocol's 7 + 7 + 7 train, delay and test days.",
        ),
        "model_name": Param("fraud-detector", type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        "dataset_id": Param(
            None,
            type=["null", "string"],
            pattern=r"^ds-[0-9a-f]{20}$",
            description="Train on this dataset instead of building a new one.",
        ),
        "max_quarantined_share": Param(0.01, type="number", minimum=0, maximum=1),
        "dataset_name": Param("retrain", type="string", pattern=r"^[A-Za-z0-9._-]{1,128}$"),
        "training": Param({}, type="object"),
        "auto_promote": Param(True, type="boolean"),
    },
) as dag:
    lifecycle = lifecycle_tasks(
        reason="'retraining on alert: ' ~ params.reason ~ ' (run ' ~ run_id ~ ')'", dataset_source="stream"
    )
    succeeded = HttpOperator(
        task_id="record_success",
        doc_md="Tell the monitor the action succeeded, with the new version.",
        http_conn_id=MONITOR,
        method="POST",
        endpoint=OUTCOME,
        data="{{ outcome_request('succeeded', 'version ' ~ " + VERSION + " ~ ' trained, validated and promoted', "
        "run_id, " + VERSION + ") }}",
        headers=bearer(MONITOR),
        extra_options=QUICK_OPTIONS,
        response_check=accept_status,
        pre_execute=skip_unless("action_id"),
        # A champion promotion skipped by policy is still a success.
        trigger_rule="none_failed",
    )
    failed = HttpOperator(
        task_id="record_failure",
        doc_md="Tell the monitor the action failed; the failed task's log says why.",
        http_conn_id=MONITOR,
        method="POST",
        endpoint=OUTCOME,
        data="{{ outcome_request('failed', 'retraining run ' ~ run_id ~ ' failed; see its task logs in Airflow', "
        "run_id, " + VERSION + ") }}",
        headers=bearer(MONITOR),
        extra_options=QUICK_OPTIONS,
        response_check=accept_status,
        pre_execute=skip_unless("action_id"),
        trigger_rule="one_failed",
    )
    lifecycle[-1] >> succeeded
    lifecycle >> failed
