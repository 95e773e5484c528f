"""Time-aware splits: which test cards count as already known compromised, and the Handbook's folds."""

from __future__ import annotations

from datetime import date

import pandas as pd

from fraudops.evaluation.protocol import (
    HANDBOOK_SPLIT,
    HANDBOOK_TEST_FOLDS,
    HANDBOOK_VALIDATION_FOLDS,
    Split,
    split_frames,
)


def test_test_days_drop_cards_whose_frauds_were_known_when_the_day_started() -> None:
    split = Split(train_start=date(2026, 1, 1), train_days=1, delay_days=1, test_days=2)
    # Day 1 trains, day 2 is the delay, days 3 and 4 are tested.
    rows = [
        ("2026-01-01 10:00", "trained", 1),  # known from training: never tested
        ("2026-01-02 09:00", "delayed", 1),  # labelled on day 3 at 09:00, after day 3 started: known on day 4
        ("2026-01-03 12:00", "trained", 0),
        ("2026-01-03 12:00", "delayed", 0),
        ("2026-01-04 12:00", "delayed", 0),
        ("2026-01-04 12:00", "fresh", 1),
    ]
    frame = pd.DataFrame(rows, columns=["event_time", "customer_id", "is_fraud"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    train, test = split_frames(frame, split)
    assert list(train["customer_id"]) == ["trained"]
    assert list(zip(test["event_time"].dt.day, test["customer_id"], strict=True)) == [(3, "delayed"), (4, "fresh")]


def test_handbook_folds_are_its_published_weeks() -> None:
    assert HANDBOOK_TEST_FOLDS[-1] == HANDBOOK_SPLIT
    assert sorted(f.test_start.isoformat() for f in HANDBOOK_TEST_FOLDS) == [
        "2018-08-08",
        "2018-08-15",
        "2018-08-22",
        "2018-08-29",
    ]
    # Model selection never sees a test week: the last validation week ends before the first test week.
    assert max(f.test_start for f in HANDBOOK_VALIDATION_FOLDS).isoformat() == "2018-07-25"
