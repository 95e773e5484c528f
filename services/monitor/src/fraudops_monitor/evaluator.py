"""Evaluations: the live windows against the serving version, every interval or every N transactions.

Snapshots are taken on the event loop (copies, milliseconds); Evidently runs in a worker process and
live accuracy in a thread, so consuming never waits for an evaluation. One evaluation runs at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fraudops.child_processes import single_worker_pool
from fraudops.features import FEATURE_NAMES
from fraudops_monitor.drift import SCORE_COLUMN, DriftConfig, DriftOutcome, measure_drift, warm_up
from fraudops_monitor.metrics import MonitorMetrics
from fraudops_monitor.performance import LivePerformance, live_performance
from fraudops_monitor.reference import ReferenceSource
from fraudops_monitor.reports import ReportStore, ReportView
from fraudops_monitor.settings import MonitorSettings
from fraudops_monitor.windows import FeatureWindow, ScoredLog

log = logging.getLogger(__name__)

EVALUATIONS_KEPT = 1_000


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    model: tuple[str, str] | None
    window_rows: int
    # Event time the window ends at: the simulated "now" when a replay runs faster than the clock.
    window_end: datetime | None
    drift: DriftOutcome | None
    performance: LivePerformance | None
    skipped: str | None = None
    report: ReportView | None = field(default=None)

    def summary(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "model_name": self.model[0] if self.model else None,
            "model_version": self.model[1] if self.model else None,
            "window_rows": self.window_rows,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "skipped": self.skipped,
            "drift": self.drift.as_dict() if self.drift else None,
            "performance": _finite(self.performance.as_dict()) if self.performance else None,
        }


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: undefined figures are null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


class Evaluator:
    def __init__(
        self,
        settings: MonitorSettings,
        metrics: MonitorMetrics,
        features: FeatureWindow,
        scored: ScoredLog,
        references: ReferenceSource,
        reports: ReportStore,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.features = features
        self.scored = scored
        self.references = references
        self.reports = reports
        self.drift_config = DriftConfig(
            numerical_method=settings.drift.numerical_method,
            categorical_method=settings.drift.categorical_method,
            threshold=settings.drift.threshold,
            dataset_drift_share=settings.drift.dataset_drift_share,
            sentinel_features=settings.drift.sentinel_features,
        )
        self.last: Evaluation | None = None
        self.history: list[Evaluation] = []
        self._lock = asyncio.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._new_transactions = 0
        self._wake = asyncio.Event()
        self.behind = False
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._pool = single_worker_pool()
        self._pool.submit(warm_up)
        self._task = asyncio.create_task(self._run(), name="monitor-evaluator")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def transactions_added(self, count: int) -> None:
        """The consumer's nudge: with a count trigger set, enough new transactions start an evaluation."""
        self._new_transactions += count
        every = self.settings.evaluate_every_transactions
        if every and self._new_transactions >= every:
            self._wake.set()

    def lag_changed(self, lag: int) -> None:
        """The consumer's position: far behind the log's end, the windows show the past, not now.

        A monitor reading back through history (a restart, a backlog) would otherwise raise alerts about
        weeks that are over; scheduled evaluations wait until it has caught up, then one runs at once.
        """
        caught_up = lag <= self.settings.evaluation_max_lag
        if caught_up and self.behind:
            self._wake.set()
        self.behind = not caught_up
        self.metrics.consumer_lag.set(lag)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.evaluation_interval_s)
            self._wake.clear()
            if self.behind:
                self.metrics.evaluations.labels("deferred").inc()
                continue
            try:
                await self.evaluate(reason="scheduled", keep_report=self.settings.keep_every_report)
            except Exception:
                log.exception("evaluation failed")

    # --------------------------------------------------------------------------------------- evaluation

    async def evaluate(self, reason: str, keep_report: bool) -> Evaluation:
        """Evaluate now (after the one running, if any); with `keep_report`, keep it as a debugging report."""
        async with self._lock:
            started = time.perf_counter()
            self._new_transactions = 0
            try:
                evaluation = await self._evaluate(reason, keep_report)
            except Exception:
                self.metrics.evaluations.labels("failed").inc()
                raise
            self.metrics.evaluations.labels("skipped" if evaluation.skipped else "ok").inc()
            self.metrics.evaluation_duration.observe(time.perf_counter() - started)
            self.metrics.last_evaluation.set(time.time())
            self.last = evaluation
            self.history = [*self.history[-(EVALUATIONS_KEPT - 1) :], evaluation]
            return evaluation

    async def _evaluate(self, reason: str, keep_report: bool) -> Evaluation:
        reference = await self.references.refresh()
        ids, times, values = self.features.snapshot()
        self.metrics.window_transactions.set(len(times))
        window_end = datetime.fromtimestamp(int(times.max()) / 1000, UTC) if len(times) else None
        report_id = self.reports.new_id() if keep_report else None

        def done(drift: DriftOutcome | None, performance: LivePerformance | None, skipped: str | None) -> Evaluation:
            model = (reference.model_name, reference.model_version) if reference else None
            evaluation = Evaluation(datetime.now(UTC), model, len(times), window_end, drift, performance, skipped)
            if report_id is None:
                return evaluation
            view = self.reports.save_meta(report_id, reason, model, evaluation.summary())
            return Evaluation(**{**evaluation.__dict__, "report": view})

        if reference is None:
            why = (
                self.references.last_error or f"no version of {self.settings.model_name} is {self.settings.model_alias}"
            )
            return done(None, None, f"no reference profile: {why}")
        model = (reference.model_name, reference.model_version)
        snapshot = self.scored.snapshot()
        performance = await asyncio.to_thread(live_performance, snapshot, reference.model_version)
        self.metrics.publish_performance(model, performance)
        if len(times) < self.settings.window.min_rows:
            return done(
                None, performance, f"{len(times)} transactions in the window, {self.settings.window.min_rows} needed"
            )
        current = pd.DataFrame(values, columns=list(FEATURE_NAMES)).drop(
            columns=list(self.settings.drift.ignored_features)
        )
        if SCORE_COLUMN in reference.profile.columns:
            current[SCORE_COLUMN] = self.scored.scores_of(ids.tolist(), reference.model_version)
            if current[SCORE_COLUMN].isna().all():
                current = current.drop(columns=[SCORE_COLUMN])
        assert self._pool is not None, "start() the evaluator first"
        report_path: Path | None = self.reports.path_for(report_id) if report_id else None
        drift = await asyncio.get_running_loop().run_in_executor(
            self._pool, measure_drift, reference.profile, current, self.drift_config, report_path
        )
        self.metrics.publish_drift(model, drift)
        log.info(
            "evaluation",
            extra={
                "reason": reason,
                "model_version": reference.model_version,
                "rows": len(times),
                "drift_share": round(drift.drift_share, 3),
                "drifted": drift.drifted_features(),
                "average_precision": performance.average_precision,
            },
        )
        return done(drift, performance, None)
