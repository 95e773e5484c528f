"""The tabular form of transactions shared by the simulator, ingest and the trainer, and stored datasets.

A stored dataset is a folder (local or S3) written by ingest:

    <root>/<dataset_id>/valid/event_date=YYYY-MM-DD/*.parquet   rows that passed validation
    <root>/<dataset_id>/quarantine/*.parquet                    rows that failed, with failed_expectations
    <root>/<dataset_id>/report.json                             the validation report
    <root>/<dataset_id>/data_docs/                              Great Expectations' HTML data docs
    <root>/<dataset_id>/manifest.json                           written last: the dataset is complete
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fraudops.errors import NotFoundError

# Columns every transaction row has (the features are computed from these only).
TRANSACTION_COLUMNS = ("transaction_id", "event_time", "customer_id", "terminal_id", "amount", "currency")
REQUIRED_COLUMNS = ("transaction_id", "event_time", "customer_id", "terminal_id", "amount")
# Ground truth, kept apart from the features: a model never sees these as inputs.
LABEL_COLUMNS = ("is_fraud", "fraud_scenario")
PARTITION_COLUMN = "event_date"
MANIFEST = "manifest.json"


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def read_manifest(dataset_uri: str) -> dict[str, Any]:
    filesystem, path = pafs.FileSystem.from_uri(dataset_uri)
    try:
        with filesystem.open_input_stream(join_uri(path, MANIFEST)) as stream:
            manifest: dict[str, Any] = json.loads(stream.read())
    except FileNotFoundError:
        raise NotFoundError(f"no complete dataset at {dataset_uri}") from None
    return manifest


def read_valid_rows(dataset_uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The validated rows of a complete dataset, sorted by event time."""
    read_manifest(dataset_uri)
    filesystem, path = pafs.FileSystem.from_uri(dataset_uri)
    dataset = pads.dataset(join_uri(path, "valid"), filesystem=filesystem, format="parquet", partitioning="hive")
    frame: pd.DataFrame = dataset.to_table(columns=columns).to_pandas()
    if PARTITION_COLUMN in frame.columns:
        frame = frame.drop(columns=[PARTITION_COLUMN])
    if "event_time" in frame.columns:
        frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    return frame
