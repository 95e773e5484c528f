"""The monitor's live windows: bounded, ordered, and joining labels whichever of label and score comes first."""

from __future__ import annotations

import numpy as np

from fraudops_monitor.windows import NO_LABEL, FeatureWindow, ScoredLog

HOUR = 3_600_000


def log_with(retention_h: float = 48, wait_h: float = 24, max_pending: int = 10_000) -> ScoredLog:
    return ScoredLog(int(retention_h * HOUR), int(wait_h * HOUR), max_pending)


def add(log: ScoredLog, ids: list[str], times_h: list[float], scores: list[float] | None = None) -> int:
    n = len(ids)
    outcome = log.add_scores(
        ids,
        [f"c{i}" for i in range(n)],
        np.asarray([int(t * HOUR) for t in times_h], dtype=np.int64),
        np.asarray(scores if scores is not None else [0.5] * n),
        np.zeros(n, dtype=np.bool_),
        ["1"] * n,
    )
    return outcome.matched


def test_feature_window_keeps_the_newest_rows_within_age_and_count_in_event_time_order() -> None:
    window = FeatureWindow(n_features=2, max_rows=5, max_age_ms=10 * HOUR)
    # Two partitions read at different paces: the second batch is older.
    window.append(["a", "b", "c"], np.asarray([20, 21, 22]) * HOUR, np.ones((3, 2)))
    window.append(["x", "y", "z"], np.asarray([5, 13, 14]) * HOUR, np.zeros((3, 2)))
    ids, times, features = window.snapshot()
    assert ids.tolist() == ["y", "z", "a", "b", "c"]  # "x" is more than 10 h behind the newest
    assert (np.diff(times) >= 0).all()
    assert features.shape == (5, 2)
    window.append([f"n{i}" for i in range(4)], np.asarray([23, 23, 24, 25]) * HOUR, np.ones((4, 2)))
    ids, _, _ = window.snapshot()
    assert ids.tolist() == ["b", "c", "n0", "n1", "n2", "n3"][-5:]


def test_labels_join_scores_in_either_order_and_the_latest_verdict_wins() -> None:
    log = log_with()
    matched = log.add_labels(["early", "early"], [True, False], [int(30 * HOUR), int(20 * HOUR)]).matched
    assert matched == 0
    assert log.pending == 1
    assert add(log, ["early", "late"], [1, 2]) == 1  # the waiting label joins its score
    outcome = log.add_labels(["late"], [False], [int(50 * HOUR)])
    assert outcome.matched == 1
    assert outcome.delays_s.tolist() == [48 * 3600]
    # A reversal known later replaces the verdict; it is not a second match.
    assert log.add_labels(["late"], [True], [int(60 * HOUR)]).matched == 0
    snapshot = log.snapshot()
    assert dict(zip(snapshot.transaction_ids, snapshot.labels, strict=True)) == {"early": 1, "late": 1}
    assert log.pending == 0


def test_a_repeated_score_keeps_the_first() -> None:
    log = log_with()
    add(log, ["a", "a"], [1, 1], [0.1, 0.9])
    add(log, ["a"], [1], [0.7])
    snapshot = log.snapshot()
    assert snapshot.transaction_ids.tolist() == ["a"]
    assert snapshot.scores.tolist() == [0.1]


def test_labels_of_unknown_transactions_wait_then_count_as_unmatched() -> None:
    log = log_with(wait_h=24)
    add(log, ["a"], [10])
    log.add_labels(["ghost"], [True], [int(11 * HOUR)])
    assert log.expire_pending() == 0
    add(log, ["b"], [33])  # 23 h of event time later: still waiting
    assert log.expire_pending() == 0
    add(log, ["c"], [35])
    assert log.expire_pending() == 1
    assert log.unmatched == 1
    assert log.pending == 0


def test_a_label_flood_stays_bounded_and_every_dropped_label_is_counted() -> None:
    log = log_with(max_pending=1_000)
    ids = [f"flood-{i}" for i in range(5_000)]
    assert log.add_labels(ids, [False] * len(ids), [HOUR] * len(ids)).dropped == 4_000
    assert log.pending == 1_000
    assert log.unmatched == 4_000
    # The newest waiting labels are the ones kept.
    assert add(log, ["flood-4999", "flood-0"], [1, 1]) == 1


def test_old_scores_are_forgotten_with_their_index() -> None:
    log = log_with(retention_h=10)
    add(log, [f"old-{i}" for i in range(10)], [0] * 10)
    add(log, [f"new-{i}" for i in range(10)], [20] * 10)
    snapshot = log.snapshot()
    assert set(snapshot.transaction_ids) == {f"new-{i}" for i in range(10)}
    assert (snapshot.labels == NO_LABEL).all()
    # A label for a forgotten transaction waits like any unknown one.
    assert log.add_labels(["old-1"], [True], [21 * HOUR]).matched == 0
    assert log.scores_of(["new-3", "old-1"], "1")[0] == 0.5
    assert np.isnan(log.scores_of(["new-3", "old-1"], "1")[1])
    assert np.isnan(log.scores_of(["new-3"], "2")[0])
