"""A real S3 endpoint for tests: moto's server on a free loopback port, and the AWS_* environment that points at it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

from tests.support.ports import free_port

# moto accepts any credentials; these only have to be present so that no real ones are looked for.
TEST_ACCESS_KEY_ID = "fraudops-test-access-key"
TEST_SECRET_ACCESS_KEY = "fraudops-test-secret-access-key"
TEST_REGION = "eu-west-1"


@contextmanager
def moto_server(startup_timeout_s: float = 30.0) -> Iterator[str]:
    """Start `python -m moto.server` on 127.0.0.1; yield its endpoint URL; stop it and remove its log afterwards."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="fraudops-moto-") as home:
        log_path = Path(home) / "moto.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + startup_timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"moto server exited with {process.returncode}:\n{log_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310 (loopback http)
                        break
                except (urllib.error.URLError, OSError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"moto server not answering on {endpoint}:\n{log_path.read_text()}"
                        ) from None
                    time.sleep(0.1)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def s3_environment(endpoint: str, home: Path) -> dict[str, str]:
    """The AWS_* variables a service (and pyarrow's AWS SDK) needs to use `endpoint`, and nothing of the host's."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_ACCESS_KEY,
        "AWS_REGION": TEST_REGION,
        # Keep a developer's own AWS files and the EC2 metadata service out of the tests.
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def admin_filesystem(endpoint: str) -> pafs.S3FileSystem:
    """A filesystem on the test endpoint that may create and delete buckets (the services' may not)."""
    scheme, _, address = endpoint.partition("://")
    return pafs.S3FileSystem(
        access_key=TEST_ACCESS_KEY_ID,
        secret_key=TEST_SECRET_ACCESS_KEY,
        region=TEST_REGION,
        scheme=scheme,
        endpoint_override=address,
        allow_bucket_creation=True,
        allow_bucket_deletion=True,
    )


def object_keys(filesystem: pafs.FileSystem, prefix: str) -> list[str]:
    """Every object (not the directory markers) under `bucket/prefix`, as `bucket/key`, sorted."""
    infos = filesystem.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    return sorted(info.path for info in infos if info.type == pafs.FileType.File)
