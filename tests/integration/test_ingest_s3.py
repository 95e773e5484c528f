"""Datasets on S3: the ingest job writes and the shared readers read through a real S3 endpoint (moto's server).

The store is configured only by the AWS_* environment (endpoint, region, keys), as on MinIO in compose or on AWS
with an instance role; the dataset URI that clients see stays `s3://bucket/prefix/<id>`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs
import pytest

from fraudops.datasets import open_storage, read_manifest, read_valid_rows
from fraudops.errors import ConfigurationError, NotFoundError
from fraudops.settings import load_settings
from fraudops_ingest.datasets.jobs import DatasetJob, run_dataset_job
from fraudops_ingest.datasets.reading import UploadFormat
from fraudops_ingest.settings import IngestSettings
from tests.support.s3 import admin_filesystem, moto_server, object_keys, s3_environment

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 1, tzinfo=UTC)
ROWS = 40
# Positions of rows that break an expectation; 30 and 31 share an id, so both are quarantined.
BAD = (3, 11, 20, 30, 31)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, and the AWS_* environment pointing at the endpoint for the code under test."""
    for name, value in s3_environment(s3_endpoint, tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    name = f"fraudops-{uuid.uuid4().hex[:12]}"
    admin_filesystem(s3_endpoint).create_dir(name)
    return name


def _staged_csv(directory: Path, prefix: str) -> Path:
    frame = pd.DataFrame(
        {
            "transaction_id": [f"{prefix}-{i}" for i in range(ROWS)],
            "event_time": [(START + timedelta(hours=2 * i)).isoformat() for i in range(ROWS)],
            "customer_id": [f"c-{i % 7}" for i in range(ROWS)],
            "terminal_id": [f"t-{i % 11}" for i in range(ROWS)],
            "amount": [round(5 + (i * 3.7) % 90, 2) for i in range(ROWS)],
            "is_fraud": [int(i % 9 == 0) for i in range(ROWS)],
        }
    )
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[3, "amount"] = -5
    frame.loc[11, "amount"] = "NaN"
    frame.loc[20, "event_time"] = "2024-05-15T10:00:00+00:00"  # outside the declared period
    frame.loc[31, "transaction_id"] = f"{prefix}-30"
    path = directory / f"{prefix}.csv"
    frame.to_csv(path, index=False)
    return path


def _job(root_uri: str, dataset_id: str, source: Path) -> DatasetJob:
    return DatasetJob(
        dataset_id=dataset_id,
        root_uri=root_uri,
        period_start=START,
        period_end=datetime(2024, 3, 31, 23, 59, 59, tzinfo=UTC),
        max_amount=1_000_000.0,
        source=source,
        upload_format=UploadFormat.CSV,
    )


def _without_run_time(keys: list[str]) -> list[str]:
    """Great Expectations names a validation's data docs page by the time it ran."""
    return [re.sub(r"/\d{8}T\d{6}\.\d+Z/", "/<run>/", key) for key in keys]


def _read_json(filesystem: pafs.FileSystem, path: str) -> dict[str, object]:
    with filesystem.open_input_stream(path) as stream:
        payload: dict[str, object] = json.loads(stream.read())
    return payload


def test_dataset_job_writes_to_s3_and_readers_read_it_back(bucket: str, tmp_path: Path, s3_endpoint: str) -> None:
    prefix = f"s3{uuid.uuid4().hex[:8]}"
    dataset_id = f"ds-{uuid.uuid4().hex[:20]}"
    root_uri = f"s3://{bucket}/datasets"
    source = _staged_csv(tmp_path, prefix)

    summary = run_dataset_job(_job(root_uri, dataset_id, source))

    dataset_uri = f"{root_uri}/{dataset_id}"
    assert summary["uri"] == dataset_uri  # what clients are shown: no endpoint, no keys
    assert summary["report_uri"] == f"{dataset_uri}/report.json"
    assert summary["data_docs_uri"] == f"{dataset_uri}/data_docs/index.html"
    assert (summary["rows_valid"], summary["rows_quarantined"]) == (ROWS - len(BAD), len(BAD))

    # Look at the bucket with an independent client, not the one the code under test built.
    admin = admin_filesystem(s3_endpoint)
    base = f"{bucket}/datasets/{dataset_id}"
    keys = object_keys(admin, base)
    relative = [key.removeprefix(base + "/") for key in keys]
    assert f"{base}/manifest.json" in keys
    assert f"{base}/report.json" in keys
    assert f"{base}/quarantine/part-0.parquet" in keys
    assert f"{base}/data_docs/index.html" in keys
    valid_files = [r for r in relative if r.startswith("valid/")]
    assert valid_files
    assert all(r.startswith("valid/event_date=2024-03-") and r.endswith(".parquet") for r in valid_files)
    assert {r.split("/", 1)[0] for r in relative} == {
        "manifest.json",
        "report.json",
        "quarantine",
        "valid",
        "data_docs",
    }

    assert _read_json(admin, f"{base}/report.json")["success"] is False
    assert _read_json(admin, f"{base}/manifest.json")["rows_quarantined"] == len(BAD)
    with admin.open_input_file(f"{base}/quarantine/part-0.parquet") as stream:
        quarantine = pd.read_parquet(stream)
    assert sorted(int(str(t).rsplit("-", 1)[1]) for t in quarantine["transaction_id"]) == [3, 11, 20, 30, 30]

    # The readers the trainer uses, configured by the same environment as the writer.
    manifest = read_manifest(dataset_uri)
    assert manifest["dataset_id"] == dataset_id
    valid = read_valid_rows(dataset_uri)
    expected_ids = [f"{prefix}-{i}" for i in range(ROWS) if i not in BAD]
    assert list(valid["transaction_id"]) == expected_ids
    assert "UTC" in str(valid["event_time"].dtype)
    assert valid["event_time"].is_monotonic_increasing
    assert "event_date" not in valid.columns


def test_rerunning_a_job_leaves_exactly_one_copy(bucket: str, tmp_path: Path, s3_endpoint: str) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}"
    dataset_id = f"ds-{uuid.uuid4().hex[:20]}"
    root_uri = f"s3://{bucket}/datasets"
    source = _staged_csv(tmp_path, prefix)
    admin = admin_filesystem(s3_endpoint)
    base = f"{bucket}/datasets/{dataset_id}"

    run_dataset_job(_job(root_uri, dataset_id, source))
    first = _without_run_time(object_keys(admin, base))
    # What an interrupted earlier attempt could leave: an extra partition and a stray file.
    for stray in ("valid/event_date=2099-01-01/part-0.parquet", "leftover.tmp"):
        with admin.open_output_stream(f"{base}/{stray}") as stream:
            stream.write(b"stale")
    # A neighbour sharing the prefix's first characters must survive the clear.
    with admin.open_output_stream(f"{base}-neighbour/keep.txt") as stream:
        stream.write(b"keep")

    summary = run_dataset_job(_job(root_uri, dataset_id, source))

    second = object_keys(admin, base)
    # Same objects, once: the data docs of the first run (named by validation time) and the strays are gone.
    assert _without_run_time(second) == first
    assert len(set(_without_run_time(second))) == len(second)
    assert object_keys(admin, f"{base}-neighbour") == [f"{base}-neighbour/keep.txt"]
    valid = read_valid_rows(summary["uri"])
    assert len(valid) == ROWS - len(BAD)
    assert valid["transaction_id"].is_unique


def test_missing_dataset_on_s3_is_not_found(bucket: str) -> None:
    with pytest.raises(NotFoundError):
        read_manifest(f"s3://{bucket}/datasets/ds-00000000000000000000")


@pytest.mark.parametrize(
    "uri",
    ["s3://AKIAEXAMPLE:secret@bucket/datasets", "s3://bucket/datasets?endpoint_override=127.0.0.1:9000", "s3:///x"],
    ids=["credentials", "options", "no-bucket"],
)
def test_dataset_uri_with_credentials_or_options_is_refused(uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="dataset URI") as refused:
        open_storage(uri)
    assert "secret" not in str(refused.value)
    monkeypatch.setenv("FRAUDOPS_INGEST_DATASETS_URI", uri)
    with pytest.raises(
        ConfigurationError, match=r"FRAUDOPS_INGEST_DATASETS_URI: Value error, an? .*dataset URI"
    ) as bad:
        load_settings(IngestSettings)
    assert "secret" not in str(bad.value)


def test_endpoint_must_be_a_url(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "127.0.0.1:9000")
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL_S3 must be an http"):
        open_storage(f"s3://{bucket}/datasets")
