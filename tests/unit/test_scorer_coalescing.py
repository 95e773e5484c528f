"""POST /v1/score's coalescing: payments scored together get exactly what each would get alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import xgboost
from prometheus_client import CollectorRegistry

from fraudops.contracts.hotpath import TransactionDecoder
from fraudops.errors import InvalidInputError
from fraudops.features import FeatureConfig
from fraudops.features.online import OnlineFeatureStore, TransactionColumns
from fraudops_scorer.coalescing import CoalescedScoring
from fraudops_scorer.metrics import ScorerMetrics
from fraudops_scorer.registry import ModelWatcher
from fraudops_scorer.scoring import Verdicts, score_batch
from fraudops_scorer.serving import Serving, ServingModel
from fraudops_scorer.settings import ScorerSettings
from fraudops_scorer.state import SharedState
from tests.support.models import train_booster

TOKEN = "q2V8pXr4Lm9Zt7Bn3Kd6Hs1Wf5Yc0Ja"
DAY_MS = 86_400_000
START_MS = 1_700_000_000_000
HISTORY_DAYS = 40


@pytest.fixture(scope="module")
def booster() -> xgboost.Booster:
    return train_booster(seed=5)


def _payments(
    ids: list[str], customers: list[str], terminals: list[str], times: list[int], amounts: list[float]
) -> TransactionColumns:
    return TransactionColumns(
        transaction_ids=ids,
        customer_ids=customers,
        terminal_ids=terminals,
        times_ms=np.asarray(times, dtype=np.int64),
        amounts=np.asarray(amounts, dtype=np.float64),
    )


def _store() -> OnlineFeatureStore:
    """40 days of payments of 60 customers at 30 terminals, and some of them labelled fraudulent."""
    chance = np.random.default_rng(11)
    count = 6_000
    times = np.sort(START_MS + chance.integers(0, HISTORY_DAYS * DAY_MS, size=count))
    history = _payments(
        [f"h{i}" for i in range(count)],
        [f"c{c}" for c in chance.integers(0, 60, size=count)],
        [f"t{t}" for t in chance.integers(0, 30, size=count)],
        times.tolist(),
        np.round(chance.gamma(2.0, 40.0, size=count) + 1, 2).tolist(),
    )
    store = OnlineFeatureStore(FeatureConfig(label_delay_days=7))
    for start in range(0, count, 500):
        store.score(_slice(history, start, start + 500))
    frauds = chance.choice(count, size=120, replace=False)
    known = times[frauds] + DAY_MS
    store.observe_labels([f"h{i}" for i in frauds.tolist()], np.ones(len(frauds), dtype=np.bool_), known)
    return store


def _slice(columns: TransactionColumns, start: int, stop: int) -> TransactionColumns:
    return _payments(
        list(columns.transaction_ids[start:stop]),
        list(columns.customer_ids[start:stop]),
        list(columns.terminal_ids[start:stop]),
        columns.times_ms[start:stop].tolist(),
        columns.amounts[start:stop].tolist(),
    )


class Scoring:
    """A coalescer on a real store and booster, what each request gets scored alone, and the features each
    payment was scored with (every feature call is recorded)."""

    def __init__(self, booster: xgboost.Booster, monkeypatch: pytest.MonkeyPatch) -> None:
        self.settings = ScorerSettings(tokens={"operator": TOKEN}, reason_count=3, reasons_for_approved=True)
        self.registry = CollectorRegistry()
        metrics = ScorerMetrics(self.registry)
        self.state = SharedState(self.settings, metrics, TransactionDecoder())
        store = self.state.store = _store()
        self.watcher = ModelWatcher(self.settings, metrics, on_change=lambda previous, current: None)
        model = ServingModel("m", "1", "champion", booster, 0.3, 0.7, label_delay_days=7)
        self.watcher.current = Serving(champion=model, problem=None)
        self.coalesced = CoalescedScoring(self.settings, metrics, self.state, self.watcher)
        self.peek = store.peek
        self.scored_with: dict[str, list[float]] = {}
        monkeypatch.setattr(store, "peek", self._recorded_peek)

    def _recorded_peek(self, columns: TransactionColumns) -> np.ndarray:
        features = self.peek(columns)
        for transaction_id, row in zip(columns.transaction_ids, features.tolist(), strict=True):
            self.scored_with[transaction_id] = row
        return features

    async def together(self, requests: list[TransactionColumns]) -> list[Verdicts | BaseException]:
        return await asyncio.gather(*(self.coalesced.verdicts(r) for r in requests), return_exceptions=True)

    async def assert_scored_as_alone(self, requests: list[TransactionColumns]) -> None:
        for request, got in zip(requests, await self.together(requests), strict=True):
            self.assert_as_alone(request, got)

    def assert_as_alone(self, request: TransactionColumns, got: Verdicts | BaseException) -> None:
        """The request was scored with the features, and got the verdicts, it gets alone."""
        alone = self.peek(request)
        seen = [self.scored_with[transaction_id] for transaction_id in request.transaction_ids]
        assert np.array_equal(np.asarray(seen), alone, equal_nan=True)
        expected = score_batch(self.watcher.current, alone, self.settings, shadow=False)[0]
        assert isinstance(got, Verdicts), got
        assert got.scores.tolist() == expected.scores.tolist()
        assert got.decisions.tolist() == expected.decisions.tolist()
        assert [list(r) for r in got.reasons] == [list(r) for r in expected.reasons]
        assert (got.model_name, got.model_version, got.fallback) == ("m", "1", False)

    def calls(self) -> tuple[float, float]:
        """The calls made, and the requests they answered (the requests-per-call histogram's count and sum)."""
        count = self.registry.get_sample_value("fraud_scorer_rest_requests_per_call_requests_count") or 0.0
        total = self.registry.get_sample_value("fraud_scorer_rest_requests_per_call_requests_sum") or 0.0
        return count, total


@pytest.fixture
def scoring(booster: xgboost.Booster, monkeypatch: pytest.MonkeyPatch) -> Scoring:
    return Scoring(booster, monkeypatch)


def _single(index: int, customer: str, terminal: str, amount: float, offset_ms: int = 0) -> TransactionColumns:
    at = START_MS + HISTORY_DAYS * DAY_MS + 60_000 + offset_ms
    return _payments([f"r{index}"], [customer], [terminal], [at], [amount])


async def test_single_payments_arriving_together_share_one_call_and_get_what_each_gets_alone(scoring: Scoring) -> None:
    requests = [_single(i, f"c{i}", f"t{i}", 20.0 + 37.0 * i, offset_ms=1_000 * i) for i in range(12)]
    await scoring.assert_scored_as_alone(requests)
    assert scoring.calls() == (1.0, 12.0)


async def test_payments_sharing_a_customer_or_a_terminal_are_not_scored_together(scoring: Scoring) -> None:
    first = _single(0, "c1", "t1", 900.0)
    same_customer = _single(1, "c1", "t2", 950.0, offset_ms=1_000)
    # A terminal's windows end a label delay (7 days) before the payment: this one's reach back to the first.
    same_terminal = _single(2, "c3", "t1", 990.0, offset_ms=int(7.5 * DAY_MS))
    stranger = _single(3, "c4", "t4", 15.0, offset_ms=3_000)
    requests = [first, same_customer, same_terminal, stranger]
    # The check can fail: scored in one batch, the later payments would see the first in their windows.
    joined = scoring.peek(_payments(["r0", "r1", "r2"], ["c1", "c1", "c3"], ["t1", "t2", "t1"],
                                  [int(r.times_ms[0]) for r in requests[:3]], [900.0, 950.0, 990.0]))  # fmt: skip
    assert not np.array_equal(joined[1], scoring.peek(same_customer)[0], equal_nan=True)
    assert not np.array_equal(joined[2], scoring.peek(same_terminal)[0], equal_nan=True)

    await scoring.assert_scored_as_alone(requests)
    assert scoring.calls() == (2.0, 4.0)  # the first with the stranger, then the two others (they share nothing)


async def test_a_request_of_several_payments_is_scored_alone_and_its_payments_see_each_other(scoring: Scoring) -> None:
    at = START_MS + HISTORY_DAYS * DAY_MS
    several = _payments(["b0", "b1"], ["c7", "c7"], ["t7", "t8"], [at, at + 1_000], [30.0, 600.0])
    single, another = _single(9, "c9", "t9", 42.0), _single(10, "c10", "t10", 43.0)
    await scoring.assert_scored_as_alone([single, several, another])
    assert scoring.calls() == (2.0, 3.0)  # the singles together, the request of several alone
    await scoring.assert_scored_as_alone([several, single])
    assert scoring.calls() == (4.0, 5.0)


async def test_a_payment_outside_the_states_span_is_refused_and_the_others_are_answered(scoring: Scoring) -> None:
    good = _single(0, "c1", "t1", 80.0)
    far = _payments(["far"], ["c2"], ["t2"], [START_MS + 60 * 365 * DAY_MS], [80.0])
    results = await scoring.together([good, far])
    scoring.assert_as_alone(good, results[0])
    assert isinstance(results[1], InvalidInputError)
    assert "outside the span" in str(results[1])


async def test_a_cancelled_request_is_skipped(scoring: Scoring) -> None:
    gone = asyncio.ensure_future(scoring.coalesced.verdicts(_single(0, "c1", "t1", 80.0)))
    kept = asyncio.ensure_future(scoring.coalesced.verdicts(_single(1, "c2", "t2", 80.0)))
    await asyncio.sleep(0)  # both are waiting
    gone.cancel()
    scoring.assert_as_alone(_single(1, "c2", "t2", 80.0), await kept)
    assert gone.cancelled()
    assert scoring.calls() == (1.0, 1.0)


async def test_a_request_reaching_the_scoring_step_a_turn_later_joins_the_batch(scoring: Scoring) -> None:
    early, late = _single(0, "c1", "t1", 80.0), _single(1, "c2", "t2", 90.0)
    first = asyncio.ensure_future(scoring.coalesced.verdicts(early))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first has been waiting a whole turn
    scoring.assert_as_alone(late, await scoring.coalesced.verdicts(late))
    scoring.assert_as_alone(early, await first)
    assert scoring.calls() == (1.0, 2.0)
