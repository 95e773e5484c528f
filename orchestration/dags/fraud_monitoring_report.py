"""fraud_monitoring_report: once a day, ask the monitor for a debugging report and keep its link.

The link (absolute URL, id and creation time) is the task's XCom, so each day's report stays findable from
the run in Airflow after the monitor's own listing has moved on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG
from service_calls import DEFAULT_ARGS, MONITOR, QUICK_OPTIONS, bearer, body, log


def report_link(response: Any) -> dict[str, str]:
    """The report's absolute URL (the monitor answers a path), id and time, logged and kept as XCom."""
    report = body(response)
    link = {"id": str(report["id"]), "url": urljoin(str(response.url), str(report["url"])),
            "created_at": str(report.get("created_at"))}  # fmt: skip
    log.info("monitoring report %s: %s", link["id"], link["url"])
    return link


with DAG(
    dag_id="fraud_monitoring_report",
    description="Daily debugging report from the monitor; its link is archived as the run's XCom",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    default_args=DEFAULT_ARGS,
    tags=["fraudops", "monitoring"],
) as dag:
    HttpOperator(
        task_id="request_report",
        doc_md="POST /v1/reports at the monitor: a report of the current window, now.",
        http_conn_id=MONITOR,
        method="POST",
        endpoint="/v1/reports",
        data="{}",
        headers=bearer(MONITOR),
        extra_options=QUICK_OPTIONS,
        response_filter=report_link,
    )
