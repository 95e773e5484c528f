"""Time-aware splits (Fraud Detection Handbook, chapter 5): train, a delay while labels arrive, then test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd


@dataclass(frozen=True)
class Split:
    """One train/test split; `train` and `test` are row positions into the frame."""

    train_start: date
    train_days: int
    delay_days: int
    test_days: int

    @property
    def test_start(self) -> date:
        return self.train_start + timedelta(days=self.train_days + self.delay_days)

    def describe(self) -> dict[str, str | int]:
        return {
            "train_start": self.train_start.isoformat(),
            "train_days": self.train_days,
            "delay_days": self.delay_days,
            "test_start": self.test_start.isoformat(),
            "test_days": self.test_days,
        }


def _days(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["event_time"], utc=True).dt.tz_convert(None).dt.normalize()


def split_frames(frame: pd.DataFrame, split: Split) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train rows, and test rows minus the cards already known compromised (Handbook, chapter 3).

    A card is known compromised once one of its frauds is known: the frauds of the training period, and
    for each test day, the frauds of the days ending `delay_days` before it starts. A fraud of the day
    exactly `delay_days` earlier is labelled only at its own time of day, after the test day has started,
    so its card still counts as unknown that day.
    """
    day = _days(frame)
    start = pd.Timestamp(split.train_start)
    train_end = start + pd.Timedelta(days=split.train_days)
    test_start = pd.Timestamp(split.test_start)
    train = frame[(day >= start) & (day < train_end)]
    known = set(train.loc[train["is_fraud"] == 1, "customer_id"])
    kept = []
    for offset in range(split.test_days):
        today = test_start + pd.Timedelta(days=offset)
        labelled_day = today - pd.Timedelta(days=split.delay_days + 1)
        newly = frame[(day == labelled_day) & (frame["is_fraud"] == 1)]
        known |= set(newly["customer_id"])
        todays = frame[(day == today) & ~frame["customer_id"].isin(known)]
        kept.append(todays)
    test = pd.concat(kept) if kept else frame.iloc[0:0]
    return train, test


def prequential_splits(last: Split, folds: int, step_days: int | None = None) -> list[Split]:
    """`folds` splits like `last`, each moved back in time by the test length (Handbook's prequential scheme)."""
    step = step_days or last.test_days
    return [
        Split(last.train_start - timedelta(days=step * fold), last.train_days, last.delay_days, last.test_days)
        for fold in range(folds)
    ]


HANDBOOK_SPLIT = Split(train_start=date(2018, 7, 25), train_days=7, delay_days=7, test_days=7)
# The Handbook's published model-selection figures (chapter 5) are means over these four test folds,
# 2018-08-08 to 2018-09-04, not the single split above; its models are chosen on the four validation folds,
# which end before the first test fold starts.
HANDBOOK_TEST_FOLDS = prequential_splits(Split(HANDBOOK_SPLIT.train_start + timedelta(days=21), 7, 7, 7), folds=4)
HANDBOOK_VALIDATION_FOLDS = prequential_splits(Split(HANDBOOK_SPLIT.train_start - timedelta(days=14), 7, 7, 7), folds=4)
