"""`fraudops simulate` then `fraudops replay` into the real broker: every transaction, labels only once known."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fraudops.contracts.messages import Label, Transaction
from tests.support.kafka import drain
from tests.support.stack import RunningStack, run_cli

pytestmark = pytest.mark.integration


async def test_simulated_dataset_replays_with_late_labels(running_stack: RunningStack, tmp_path: Path) -> None:
    dataset = tmp_path / "small.parquet"
    made = run_cli(
        running_stack.env, "simulate", "--out", str(dataset), "--customers", "100", "--terminals", "200", "--days", "40"
    )
    assert made.returncode == 0, made.stderr
    frame = pd.read_parquet(dataset).sort_values("event_time", kind="stable").head(3000)
    bootstrap = running_stack.settings.kafka_bootstrap
    sent = run_cli(
        running_stack.env,
        "replay", "--input", str(dataset), "--limit", "3000", "--rate", "3000", "--with-labels", "--bootstrap", bootstrap,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert "sent 3000 transactions" in sent.stdout

    transactions = [Transaction.from_avro(r.value) for r in await drain(bootstrap, "transactions")]
    # Simulated ids are plain digits; other tests' ids carry a letter prefix.
    replayed = [t for t in transactions if t.transaction_id.isdigit()]
    assert sorted(t.transaction_id for t in replayed) == sorted(frame["transaction_id"])
    last_event = max(t.event_time for t in replayed)

    labels = [Label.from_avro(r.value) for r in await drain(bootstrap, "labels")]
    replayed_labels = [label for label in labels if label.transaction_id.isdigit()]
    assert replayed_labels, "some labels become known within the replayed period"
    assert {label.transaction_id for label in replayed_labels} <= set(frame["transaction_id"])
    assert all(label.known_at <= last_event for label in replayed_labels)
    event_times = dict(zip(frame["transaction_id"], pd.to_datetime(frame["event_time"], utc=True), strict=True))
    assert all(label.known_at >= event_times[label.transaction_id] for label in replayed_labels)


def test_replay_of_a_missing_file_is_one_line(running_stack: RunningStack, tmp_path: Path) -> None:
    result = run_cli(running_stack.env, "replay", "--input", str(tmp_path / "none.parquet"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("fraudops: --input")
