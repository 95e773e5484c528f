"""Reading an uploaded file into typed columns without losing the rows whose values do not parse."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from fraudops.datasets import LABEL_COLUMNS, REQUIRED_COLUMNS
from fraudops.errors import InvalidInputError


class UploadFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"


def upload_columns(path: Path, upload_format: UploadFormat) -> list[str]:
    """The file's column names, read from the header alone (cheap, done before answering 202)."""
    try:
        if upload_format is UploadFormat.PARQUET:
            return list(pq.read_schema(path).names)
        header = pd.read_csv(path, nrows=0, dtype=str)
        return [str(c) for c in header.columns]
    except Exception as exc:
        raise InvalidInputError(f"the file is not readable {upload_format.value}: {exc.__class__.__name__}") from None


def require_columns(columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InvalidInputError(
            f"missing required column(s): {', '.join(missing)}; required: {', '.join(REQUIRED_COLUMNS)}"
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise InvalidInputError(f"repeated column name(s): {', '.join(duplicated)}")


def read_upload(path: Path, upload_format: UploadFormat) -> pd.DataFrame:
    """Load and coerce types; a value that does not parse becomes null, which validation then reports."""
    if upload_format is UploadFormat.PARQUET:
        frame = pq.read_table(path).to_pandas()
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return coerce(frame)


def coerce(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in ("transaction_id", "customer_id", "terminal_id"):
        out[column] = out[column].astype("string")
    if "currency" not in out.columns:
        out["currency"] = "EUR"
    out["currency"] = out["currency"].astype("string")
    out["amount"] = pd.to_numeric(out["amount"], errors="coerce").astype("float64")
    # Timestamps without a zone are taken as UTC, as the simulator writes them.
    out["event_time"] = pd.to_datetime(out["event_time"], utc=True, errors="coerce", format="ISO8601")
    for column in LABEL_COLUMNS:
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce")
    return out.reset_index(drop=True)
