"""The tabular form of transactions shared by the simulator, ingest and the trainer, and stored datasets.

A stored dataset is a folder (local or S3) written by ingest:

    <root>/<dataset_id>/valid/event_date=YYYY-MM-DD/*.parquet   rows that passed validation
    <root>/<dataset_id>/quarantine/*.parquet                    rows that failed, with failed_expectations
    <root>/<dataset_id>/report.json                             the validation report
    <root>/<dataset_id>/data_docs/                              Great Expectations' HTML data docs
    <root>/<dataset_id>/manifest.json                           written last: the dataset is complete

`<root>` is `file:///abs/path` or `s3://bucket/prefix`. An S3 store is configured the way the AWS SDKs are, by
environment, identically for the writer (ingest) and every reader (the trainer), and never through the URI, which
is logged and returned to clients:

    AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL)   an S3-compatible endpoint such as http://minio:9000; unset on AWS
    AWS_REGION (or AWS_DEFAULT_REGION)          the bucket's region; if unset: us-east-1 with an endpoint, else
                                                asked of AWS for the bucket
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY    credentials; unset on EC2, where the instance role's are used
    (AWS_SESSION_TOKEN, ~/.aws files)           as the AWS default credential chain reads them
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any
from urllib.parse import urlsplit

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

# Read in this order, as the AWS SDKs do: the S3-specific endpoint wins over the generic one.
S3_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
S3_REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def check_storage_uri(uri: str) -> str:
    """Refuse what pyarrow would accept but must not be in a URI that is logged and returned: keys, options.

    Messages never repeat the URI, which is the very thing that may hold a secret.
    """
    parts = urlsplit(uri)
    if parts.scheme not in {"file", "s3"}:
        raise ValueError("a dataset URI must start with file:// or s3://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a dataset URI must not carry credentials; S3 credentials come from the AWS environment")
    if parts.query or parts.fragment:
        raise ValueError("a dataset URI must not carry options (?...); S3 is configured by AWS_* variables")
    if parts.scheme == "s3" and not parts.netloc:
        raise ValueError("an s3:// dataset URI must name a bucket")
    return uri


def _s3_endpoint() -> tuple[str, str] | None:
    """(scheme, host[:port]) of the configured S3-compatible endpoint, or None for AWS itself."""
    for variable in S3_ENDPOINT_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path.strip("/"):
            raise ValueError(f"{variable} must be an http:// or https:// URL of the S3 endpoint, without a path")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"{variable} must not carry credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        return parts.scheme, parts.netloc
    return None


@functools.lru_cache(maxsize=32)
def _bucket_region(bucket: str) -> str:
    region: str = pafs.resolve_s3_region(bucket)
    return region


def open_storage(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of a dataset URI; S3 is configured from the AWS environment (module docstring)."""
    check_storage_uri(uri)
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        filesystem, path = pafs.FileSystem.from_uri(uri)
        return filesystem, path
    options: dict[str, Any] = {}
    endpoint = _s3_endpoint()
    if endpoint is not None:
        # A custom endpoint means path-style requests (bucket in the path), which MinIO and moto expect.
        options["scheme"], options["endpoint_override"] = endpoint
    region = next((os.environ[v].strip() for v in S3_REGION_VARIABLES if os.environ.get(v, "").strip()), None)
    if region is None:
        # An S3-compatible server gets MinIO's default; on AWS the bucket is asked (the SDK would probe EC2 metadata).
        region = "us-east-1" if endpoint is not None else _bucket_region(parts.netloc)
    options["region"] = region
    # Credentials: the AWS default chain (environment, ~/.aws, then the EC2 instance role), never the URI.
    return pafs.S3FileSystem(**options), (parts.netloc + parts.path).rstrip("/")


def read_manifest(dataset_uri: str) -> dict[str, Any]:
    filesystem, path = open_storage(dataset_uri)
    try:
        with filesystem.open_input_stream(join_uri(path, MANIFEST)) as stream:
            manifest: dict[str, Any] = json.loads(stream.read())
    except FileNotFoundError:
        raise NotFoundError(f"no complete dataset at {dataset_uri}") from None
    return manifest


def read_valid_rows(dataset_uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The validated rows of a complete dataset, sorted by event time."""
    read_manifest(dataset_uri)
    filesystem, path = open_storage(dataset_uri)
    dataset = pads.dataset(join_uri(path, "valid"), filesystem=filesystem, format="parquet", partitioning="hive")
    frame: pd.DataFrame = dataset.to_table(columns=columns).to_pandas()
    if PARTITION_COLUMN in frame.columns:
        frame = frame.drop(columns=[PARTITION_COLUMN])
    if "event_time" in frame.columns:
        frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    return frame
