"""Load a real labelled dataset into the simulator's transaction layout, through a column mapping.

The example is the public ULB dataset "creditcard.csv" (Worldline and ULB's Machine Learning Group,
European cardholders, two days of September 2013): columns `Time` (seconds since the first transaction),
`V1` .. `V28` (anonymised PCA components), `Amount` and `Class` (1 = fraud). It has no transaction,
customer or terminal ids, so `ULB_CREDITCARD` numbers the rows and gives every row constant ids::

    from dataclasses import replace
    from datetime import UTC, datetime
    from fraudops.simulator.real_data import ULB_CREDITCARD, load_real_dataset

    mapping = replace(ULB_CREDITCARD, origin=datetime(2013, 9, 1, tzinfo=UTC))
    frame = load_real_dataset("creditcard.csv", mapping)

The result has transaction_id, event_time (datetime64[ns, UTC]), customer_id, terminal_id, amount
(float64), currency and, when the mapping names a label column, is_fraud (int8 0/1); it has no
fraud_scenario (a real fraud's scenario is unknown). Every column the mapping does not consume (V1 .. V28
for ULB) follows, unchanged. Rows are sorted by event_time (stable, so file order breaks ties).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from fraudops.errors import InvalidInputError


@dataclass(frozen=True)
class ConstantId:
    """Every row gets the same id (the dataset has no such entity)."""

    value: str


@dataclass(frozen=True)
class HashedId:
    """The id is a hash of the values of some columns, optionally folded into `buckets` pseudo-entities."""

    columns: tuple[str, ...]
    buckets: int | None = None
    prefix: str = ""

    def __post_init__(self) -> None:
        if not self.columns:
            raise InvalidInputError("HashedId needs at least one column")
        if self.buckets is not None and self.buckets < 1:
            raise InvalidInputError(f"HashedId buckets must be >= 1, got {self.buckets}")


IdSource = str | ConstantId | HashedId
"""A column name, a constant, or a hash of columns."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column becomes which platform column."""

    event_time: str
    """Absolute timestamps (parsed; naive ones are taken as UTC), or numbers relative to `origin` in `time_unit`."""
    amount: str
    transaction_id: str | None = None
    """A column of unique ids, or None to number the rows in file order (with `transaction_id_prefix`)."""
    transaction_id_prefix: str = ""
    time_format: str | None = None
    """For absolute times: a strftime format, "ISO8601" or "mixed"; None lets pandas infer one format."""
    time_unit: Literal["s", "ms", "us", "ns"] | None = None
    """Set for relative times: the unit of the `event_time` column's numbers."""
    origin: datetime | None = None
    """The instant relative times count from (required with `time_unit`; naive means UTC)."""
    is_fraud: str | None = None
    """The label column (0/1 or booleans), or None for unlabelled data."""
    customer_id: IdSource = field(default_factory=lambda: ConstantId("unknown"))
    terminal_id: IdSource = field(default_factory=lambda: ConstantId("unknown"))
    currency: str = "EUR"
    """ISO 4217 code for every row, unless `currency_column` names a column."""
    currency_column: str | None = None
    drop_non_positive_amounts: bool = False
    """The platform's contract wants amounts > 0 (ULB has 0.00 amounts); True drops those rows."""

    def __post_init__(self) -> None:
        if (self.time_unit is None) != (self.origin is None):
            raise InvalidInputError("relative event times need both time_unit and origin; absolute ones neither")


ULB_CREDITCARD = ColumnMapping(
    event_time="Time",
    time_unit="s",
    # The dataset says only "September 2013"; pass the origin you want with dataclasses.replace.
    origin=datetime(2013, 9, 1, tzinfo=UTC),
    amount="Amount",
    is_fraud="Class",
    transaction_id=None,
    transaction_id_prefix="ulb-",
    customer_id=ConstantId("ulb-customer"),
    terminal_id=ConstantId("ulb-terminal"),
)
"""Mapping of the ULB "creditcard.csv" layout: Time, V1..V28, Amount, Class."""

OUTPUT_COLUMNS = ("transaction_id", "event_time", "customer_id", "terminal_id", "amount", "currency")


def _require(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"dataset lacks column(s) {missing}; it has {list(frame.columns)[:40]}")


def _ids(frame: pd.DataFrame, source: IdSource) -> pd.Series:
    if isinstance(source, ConstantId):
        return pd.Series(np.full(len(frame), source.value, dtype=object), index=frame.index)
    if isinstance(source, HashedId):
        hashed = pd.util.hash_pandas_object(frame[list(source.columns)], index=False).to_numpy(np.uint64)
        if source.buckets is not None:
            hashed = hashed % np.uint64(source.buckets)
        return pd.Series([f"{source.prefix}{h}" for h in hashed.tolist()], index=frame.index, dtype=object)
    return frame[source].astype(str)


def _event_times(column: pd.Series, mapping: ColumnMapping) -> pd.Series:
    if mapping.time_unit is None or mapping.origin is None:
        try:
            # Offsets are converted to UTC; naive times are taken as UTC.
            return pd.to_datetime(column, utc=True, format=mapping.time_format)
        except (ValueError, TypeError) as exc:
            reason = str(exc).splitlines()[0]
            raise InvalidInputError(f"column {column.name!r} holds values that are not timestamps: {reason}") from exc
    origin = pd.Timestamp(mapping.origin)
    origin = origin.tz_localize("UTC") if origin.tz is None else origin.tz_convert("UTC")
    offsets = pd.to_numeric(column, errors="raise")
    if offsets.isna().any():
        raise InvalidInputError(f"column {column.name!r} has missing times")
    return origin + pd.to_timedelta(offsets, unit=mapping.time_unit)


def _labels(column: pd.Series) -> pd.Series:
    if column.isna().any() or not column.isin([0, 1]).all():
        bad = column[column.isna() | ~column.isin([0, 1])].head(3).tolist()
        raise InvalidInputError(f"label column {column.name!r} must be 0/1, found e.g. {bad}")
    return column.astype(np.int8)


def apply_mapping(frame: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
    """The platform's layout for an in-memory dataset (see the module's documentation)."""
    consumed = [mapping.event_time, mapping.amount]
    for optional in (mapping.transaction_id, mapping.is_fraud, mapping.currency_column):
        if optional is not None:
            consumed.append(optional)
    for source in (mapping.customer_id, mapping.terminal_id):
        if isinstance(source, str):
            consumed.append(source)
    hashed = [c for s in (mapping.customer_id, mapping.terminal_id) if isinstance(s, HashedId) for c in s.columns]
    _require(frame, consumed + hashed)

    if mapping.transaction_id is None:
        width = len(str(max(len(frame) - 1, 0)))
        tx_ids = pd.Series(
            [f"{mapping.transaction_id_prefix}{i:0{width}d}" for i in range(len(frame))], index=frame.index
        )
    else:
        tx_ids = mapping.transaction_id_prefix + frame[mapping.transaction_id].astype(str)
    if tx_ids.duplicated().any():
        dupes = tx_ids[tx_ids.duplicated()].head(3).tolist()
        raise InvalidInputError(f"transaction ids are not unique, e.g. {dupes}")

    amount = pd.to_numeric(frame[mapping.amount], errors="raise").astype(np.float64)
    if amount.isna().any():
        raise InvalidInputError(f"column {mapping.amount!r} has missing amounts")
    out = pd.DataFrame(
        {
            "transaction_id": tx_ids.astype(object),
            "event_time": _event_times(frame[mapping.event_time], mapping),
            "customer_id": _ids(frame, mapping.customer_id),
            "terminal_id": _ids(frame, mapping.terminal_id),
            "amount": amount,
            "currency": frame[mapping.currency_column].astype(str)
            if mapping.currency_column
            else pd.Series(mapping.currency, index=frame.index, dtype=object),
        },
        index=frame.index,
    )
    if mapping.is_fraud is not None:
        out["is_fraud"] = _labels(frame[mapping.is_fraud])
    extras = [c for c in frame.columns if c not in consumed]
    clashes = sorted(set(extras) & set(out.columns))
    if clashes:
        raise InvalidInputError(f"unmapped column(s) {clashes} clash with the platform's columns; map or rename them")
    out = pd.concat([out, frame[extras]], axis=1)
    if mapping.drop_non_positive_amounts:
        out = out[out["amount"] > 0]
    return out.sort_values("event_time", kind="stable", ignore_index=True)


def load_real_dataset(path: str | Path, mapping: ColumnMapping) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file supplied by the user and apply `mapping`."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no dataset file at {path}")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif ".csv" in suffixes:
        frame = pd.read_csv(path)
    else:
        raise InvalidInputError(f"cannot tell the format of {path.name}: expected .csv[.gz|.zip|…] or .parquet")
    return apply_mapping(frame, mapping)
