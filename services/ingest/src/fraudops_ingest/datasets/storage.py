"""Writing a validated dataset to the artifact store (a local folder or S3) so that readers see all or nothing.

The store is opened with `fraudops.datasets.open_storage`, as the readers open it, so S3 is configured for both by
the same AWS_* environment variables (see that module).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from fraudops.datasets import MANIFEST, PARTITION_COLUMN, join_uri, open_storage


class DatasetWriter:
    """Lays out one dataset under `<root>/<dataset_id>/`; the manifest goes last and marks it complete."""

    def __init__(self, root_uri: str, dataset_id: str) -> None:
        self.uri = join_uri(root_uri, dataset_id)
        self.filesystem, self.path = open_storage(self.uri)
        # S3 has no directories: a key's prefixes exist once the key does, and creating one would only add an
        # empty marker object per level.
        self._has_directories = not isinstance(self.filesystem, pafs.S3FileSystem)

    def clear(self) -> None:
        """Remove what an interrupted earlier attempt may have left (everything under the dataset's prefix)."""
        with contextlib.suppress(FileNotFoundError):
            self.filesystem.delete_dir(self.path)

    def _make_dir(self, path: str) -> None:
        if self._has_directories:
            self.filesystem.create_dir(path)

    def write_valid(self, frame: pd.DataFrame) -> None:
        table = frame.assign(**{PARTITION_COLUMN: frame["event_time"].dt.strftime("%Y-%m-%d")})
        pads.write_dataset(
            pa.Table.from_pandas(table, preserve_index=False),
            join_uri(self.path, "valid"),
            filesystem=self.filesystem,
            format="parquet",
            partitioning=[PARTITION_COLUMN],
            partitioning_flavor="hive",
            existing_data_behavior="error",
            max_rows_per_file=1_000_000,
            max_rows_per_group=250_000,
        )

    def write_quarantine(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        self._make_dir(join_uri(self.path, "quarantine"))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with self.filesystem.open_output_stream(join_uri(self.path, "quarantine", "part-0.parquet")) as stream:
            import pyarrow.parquet as pq

            pq.write_table(table, stream)

    def write_json(self, name: str, payload: dict[str, Any]) -> str:
        target = join_uri(self.path, name)
        with self.filesystem.open_output_stream(target) as stream:
            stream.write(json.dumps(payload, indent=2, default=str).encode())
        return join_uri(self.uri, name)

    def write_folder(self, name: str, source: Path) -> str:
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = file.relative_to(source).as_posix()
            target = join_uri(self.path, name, relative)
            self._make_dir(target.rsplit("/", 1)[0])
            with self.filesystem.open_output_stream(target) as stream:
                stream.write(file.read_bytes())
        return join_uri(self.uri, name)

    def complete(self, manifest: dict[str, Any]) -> None:
        self.write_json(MANIFEST, manifest)
