"""fraud_training_pipeline: dataset at ingest → validation → training → quality gate → challenger → champion.

Weekly, and triggerable with conf, e.g. `{"dataset_id": "ds-…", "auto_promote": true}` to train on an
existing dataset and let a version that passed the gate become the champion. Every task is an HTTP call to a
service (see service_calls.py); the run stops with a clear failure when the dataset failed validation or
quarantined too many rows, when training failed, or when the version failed the gate.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param
from service_calls import DEFAULT_ARGS, MACROS, lifecycle_tasks

with DAG(
    dag_id="fraud_training_pipeline",
    description="Train, validate and promote a fraud model through ingest, trainer and registry gateway",
    schedule="0 3 * * 0",
    # No start date: once switched on (a run triggered through the REST API switches it on too), the schedule
    # waits for the next Sunday instead of running the past one at once, which would queue in front of the
    # triggered run (one run at a time) and train a model nobody asked for.
    catchup=False,
    max_active_runs=1,
    # Turning a weekly training on is an operator's decision; a paused DAG keeps triggered runs queued.
    is_paused_upon_creation=True,
    default_args=DEFAULT_ARGS,
    user_defined_macros=MACROS,
    tags=["fraudops", "training"],
    params={
        "model_name": Param("fraud-detector", type="string", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"),
        "dataset_id": Param(
            None,
            type=["null", "string"],
            pattern=r"^ds-[0-9a-f]{20}$",
            description="Train on this dataset instead of building a new one.",
        ),
        "max_quarantined_share": Param(
            0.01,
            type="number",
            minimum=0,
            maximum=1,
            description="Stop when a larger share of the rows was quarantined.",
        ),
        "simulation": Param(
            {"name": "scheduled", "customers": 1000, "terminals": 2000, "days": 60},
            type="object",
            description="Ingest's simulation request for a new dataset ending at the run's time.",
        ),
        "training": Param({}, type="object", description="Training request fields (model, protocol, search)."),
        "auto_promote": Param(False, type="boolean", description="Promote to champion once the gate passed."),
    },
) as dag:
    lifecycle_tasks(reason="'fraud_training_pipeline run ' ~ run_id")
