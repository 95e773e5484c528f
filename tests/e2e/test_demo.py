"""`fraudops demo --small` on a fresh stack of its own; every stage's outcome is read back from the services."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import date
from pathlib import Path

import pytest

from fraudops.demo.world import SMALL, simulate_world
from fraudops.stack.observability import observability_installed
from tests.support.kafka import drain
from tests.support.ports import free_port
from tests.support.stack import FRAUDOPS, RunningStack, run_cli, stack_environment

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1800)]

MODEL = "fraud-detector"


def test_the_small_demo_tells_the_whole_lifecycle(tmp_path: Path) -> None:
    assert observability_installed(), "the demo's alerts need Prometheus and Alertmanager (Debian packages)"
    env = stack_environment(tmp_path / "stack", None)
    env.pop("FRAUDOPS_INGEST_MAX_UPLOAD_BYTES")
    env["FRAUDOPS_STACK_PROMETHEUS_PORT"] = str(free_port())
    env["FRAUDOPS_STACK_ALERTMANAGER_PORT"] = str(free_port())
    env["FRAUDOPS_STACK_START_TIMEOUT_S"] = "300"
    output = tmp_path / "demo-output"
    stack = RunningStack(env)
    try:
        demo = subprocess.run(
            [FRAUDOPS, "demo", "--small", "--no-airflow", "--output", str(output)],
            env=env,
            capture_output=True,
            text=True,
            timeout=1_500,
            check=False,
        )
        print(demo.stdout[-20_000:])
        assert demo.returncode == 0, demo.stdout[-5_000:] + demo.stderr[-5_000:]
        summary = json.loads((output / "summary.json").read_text())
        world = simulate_world(SMALL, summary["run_tag"], date.fromisoformat(summary["world_date"]))

        # 1. The history became a dataset: the broken rows quarantined, every other row kept.
        history = world.history()
        with stack.client("ingest") as ingest:
            dataset = ingest.get(f"/v1/datasets/{summary['dataset']['dataset_id']}").json()
        assert dataset["status"] == "ready", dataset
        assert dataset["rows_quarantined"] == summary["corrupted_rows"] > 0
        assert dataset["rows_valid"] == len(history) - summary["corrupted_rows"]

        # 2 and 4. A champion was trained, and after the drift another took its place, through the gate.
        with stack.client("registry-gateway") as gateway:
            model = gateway.get(f"/v1/models/{MODEL}").json()
            history_entries = gateway.get(f"/v1/models/{MODEL}/history").json()["entries"]
        first, new = summary["first_champion"], summary["new_champion"]
        assert first
        assert new != first
        assert model["champion"] == new
        promoted = [e["to_version"] for e in history_entries if e["event_type"] == "PROMOTED"]
        assert set(promoted) >= {first, new}, history_entries
        assert {v["version"]: v["validation_status"] for v in model["versions"]}[new] == "passed"

        # 3. Every payment sent through Kafka got a score, the retrained champion's on the tail.
        scored = asyncio.run(drain(stack.settings.kafka_bootstrap, "scores", idle_s=5, timeout_s=300))
        scored_ids = {record.key.decode() for record in scored if record.key is not None}
        stream_end = world.stream_end
        sent = world.between(world.start, stream_end)
        missing = set(sent["transaction_id"]) - scored_ids
        assert not missing, f"{len(missing)} payments without a score, e.g. {sorted(missing)[:5]}"
        assert summary["scored_ids"] == summary["streamed_ids"] == len(world.between(world.stream_start, stream_end))

        # 4. The drift was measured, alerted on, and the monitor acted on the alert.
        assert summary["drift_detected_window_end"] >= summary["drift_start"]
        assert "FraudNewPatternDrift" in summary["alerts"]
        with stack.client("monitor") as monitor:
            actions = monitor.get("/v1/actions").json()
            reports = [a for a in actions if a["kind"] == "report" and a["status"] == "succeeded"]
            assert reports, actions
            assert monitor.get(f"/v1/reports/{reports[0]['report_id']}").status_code == 200
        assert any(a["alertname"] == "FraudNewPatternDrift" for a in actions), actions

        # 5. The report folder.
        for name in ("index.html", "pr_curve.png", "score_distribution.png", "drift_timeline.png", "live_ap.png"):
            assert (output / name).stat().st_size > 1_000, name
        assert "fraudops demo" in (output / "index.html").read_text()
    finally:
        run_cli(env, "down")
