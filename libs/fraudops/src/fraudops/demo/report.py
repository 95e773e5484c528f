"""The demo's report folder: summary table and JSON, PNG plots, and an HTML index linking to the evidence."""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from fraudops.demo.story import Outcome
from fraudops.evaluation.metrics import average_precision


def live_average_precision(scores: pd.DataFrame, drift_start: str, new_champion: str | None) -> dict[str, float]:
    """AP of the streamed payments' scores against the truth, before the drift, during it, and on the
    tail served by the retrained champion."""
    scored = scores.dropna(subset=["score"])
    start = pd.Timestamp(drift_start)
    periods = {
        "before drift": scored[scored["event_time"] < start],
        "drift, first champion": scored[(scored["event_time"] >= start) & (scored["model_version"] != new_champion)],
        "retrained champion": scored[scored["model_version"] == new_champion] if new_champion else scored.iloc[:0],
    }
    return {
        name: average_precision(part["is_fraud"].to_numpy(float), part["score"].to_numpy(float))
        for name, part in periods.items()
        if part["is_fraud"].nunique() == 2
    }


def summary_table(outcome: Outcome, metrics: dict[str, dict[str, float]], live_ap: dict[str, float]) -> Table:
    table = Table(title="fraudops demo", show_header=True, header_style="bold")
    table.add_column("figure")
    table.add_column("value", justify="right")
    dataset = outcome.dataset
    rows = [
        ("dataset rows accepted / quarantined", f"{dataset.get('rows_valid', 0):,} / {dataset.get('rows_quarantined', 0):,}"),
        (f"first champion v{outcome.first_champion} (trained via {outcome.training_via})", _metrics(metrics.get("first"))),
        (f"retrained champion v{outcome.new_champion} ({outcome.retrain_via})", _metrics(metrics.get("new"))),
        ("streamed payments scored", f"{outcome.scored_ids:,} of {outcome.streamed_ids:,}"),
        ("throughput (live stream, paced by the demo)", f"{outcome.stream.throughput:,.0f} tx/s"),
        ("latency p50 / p99 (Kafka append → score acknowledged)",
         f"{outcome.stream.latency_p50_ms:.1f} / {outcome.stream.latency_p99_ms:.1f} ms"),
        ("decisions", ", ".join(f"{k} {v:,}" for k, v in outcome.stream.decisions.items())),
        ("drift detection delay (event time)", _delay(outcome)),
        ("alerts", ", ".join(outcome.alerts) or "-"),
    ]  # fmt: skip
    rows += [(f"live average precision, {name}", f"{value:.3f}") for name, value in live_ap.items()]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _metrics(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "-"
    keys = ("average_precision", "roc_auc", "card_precision_at_100")
    return ", ".join(f"{k.replace('_', ' ')} {metrics[k]:.3f}" for k in keys if k in metrics)


def _delay(outcome: Outcome) -> str:
    if not outcome.drift_detected_window_end or not outcome.drift_start:
        return "-"
    delay = pd.Timestamp(outcome.drift_detected_window_end) - pd.Timestamp(outcome.drift_start)
    return f"{delay / pd.Timedelta(hours=1):.1f} h"


def write_report(
    output: Path,
    outcome: Outcome,
    scores: pd.DataFrame,
    metrics: dict[str, dict[str, float]],
    live_ap: dict[str, float],
    links: dict[str, str],
    reports: dict[str, str],
) -> Path:
    """demo-output/: summary.json, four PNG plots and index.html; returns the index."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    output.mkdir(parents=True, exist_ok=True)
    summary = {**dataclasses.asdict(outcome), "model_metrics": metrics, "live_average_precision": live_ap}
    summary.pop("evaluations")
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    scored = scores.dropna(subset=["score"])
    plots = {
        "pr_curve.png": _pr_curves(plt, scored, outcome),
        "score_distribution.png": _score_distribution(plt, scored),
        "drift_timeline.png": _timeline(plt, outcome, "drift", "drift_share", "share of drifted features"),
        "live_ap.png": _timeline(plt, outcome, "performance", "average_precision", "live average precision"),
    }
    for name, figure in plots.items():
        figure.savefig(output / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
    index = output / "index.html"
    index.write_text(_index_html(outcome, metrics, live_ap, list(plots), links, reports))
    return index


def _pr_curves(plt: Any, scored: pd.DataFrame, outcome: Outcome) -> Any:
    figure, axes = plt.subplots(figsize=(6, 4.5))
    for version in sorted(scored["model_version"].dropna().unique()):
        part = scored[scored["model_version"] == version]
        if part["is_fraud"].nunique() < 2:
            continue
        precision, recall = _pr_points(part["is_fraud"].to_numpy(int), part["score"].to_numpy(float))
        axes.plot(recall, precision, label=f"v{version} ({len(part):,} payments)")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title("Precision-recall on the live stream, by serving version")
    axes.legend()
    return figure


def _pr_points(labels: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> tuple[Any, Any]:
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / max(int(labels.sum()), 1)
    return precision, recall


def _score_distribution(plt: Any, scored: pd.DataFrame) -> Any:
    figure, axes = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(0, 1, 41)
    for label, name in ((0, "legitimate"), (1, "fraud")):
        axes.hist(scored.loc[scored["is_fraud"] == label, "score"], bins=bins, alpha=0.6, label=name, density=True)
    axes.set_yscale("log")
    axes.set_xlabel("score")
    axes.set_title("Score distribution on the live stream")
    axes.legend()
    return figure


def _timeline(plt: Any, outcome: Outcome, section: str, key: str, title: str) -> Any:
    figure, axes = plt.subplots(figsize=(7, 4))
    points = [
        (pd.Timestamp(e["window_end"]), (e.get(section) or {}).get(key))
        for e in outcome.evaluations
        if e.get("window_end") and e.get(section)
    ]
    # The live stream only: evaluations during the history's replay describe months no one is watching.
    since = pd.Timestamp(outcome.stream_start) if outcome.stream_start else None
    points = [(t, v) for t, v in points if isinstance(v, int | float) and (since is None or t >= since)]
    if points:
        times, values = zip(*sorted(points), strict=True)
        axes.plot(times, values, marker=".")
    if outcome.drift_start:
        axes.axvline(pd.Timestamp(outcome.drift_start), color="red", linestyle="--", label="new fraud pattern starts")
        axes.legend()
    axes.set_title(f"{title} (monitor evaluations of the live stream, by event time)")
    figure.autofmt_xdate()
    return figure


def _index_html(
    outcome: Outcome,
    metrics: dict[str, dict[str, float]],
    live_ap: dict[str, float],
    plots: list[str],
    links: dict[str, str],
    reports: dict[str, str],
) -> str:
    esc = html.escape
    link_items = "".join(f'<li><a href="{esc(url)}">{esc(name)}</a></li>' for name, url in links.items())
    report_items = "".join(f'<li><a href="{esc(path)}">{esc(name)}</a></li>' for name, path in reports.items())
    actions = "".join(
        f"<tr><td>{esc(a['id'])}</td><td>{esc(a['kind'])}</td><td>{esc(a['status'])}</td>"
        f"<td>{esc(str(a.get('alertname')))}</td><td>{esc(str(a.get('detail')))}</td></tr>"
        for a in outcome.actions
    )
    figures = "".join(f'<figure><img src="{esc(p)}" alt="{esc(p)}"></figure>' for p in plots)
    ap = "".join(f"<li>{esc(k)}: {v:.3f}</li>" for k, v in live_ap.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fraudops demo {esc(outcome.run_tag)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}img{{max-width:520px}}
figure{{display:inline-block;margin:0.5em}}td,th{{border:1px solid #ccc;padding:4px}}table{{border-collapse:collapse}}
</style></head><body>
<h1>fraudops demo {esc(outcome.run_tag)}</h1>
<p>Dataset {esc(str(outcome.dataset.get("dataset_id")))}: {outcome.dataset.get("rows_valid", 0):,} rows accepted,
{outcome.dataset.get("rows_quarantined", 0):,} quarantined. First champion v{esc(str(outcome.first_champion))}
({esc(outcome.training_via)}); after the drift, v{esc(str(outcome.new_champion))} ({esc(outcome.retrain_via)}).
{outcome.scored_ids:,} of {outcome.streamed_ids:,} streamed payments scored; {outcome.stream.throughput:,.0f} tx/s,
p50 {outcome.stream.latency_p50_ms:.1f} ms, p99 {outcome.stream.latency_p99_ms:.1f} ms.</p>
<h2>Model metrics (each version's own test period)</h2><pre>{esc(json.dumps(metrics, indent=2))}</pre>
<h2>Live average precision</h2><ul>{ap}</ul>
<h2>Plots</h2>{figures}
<h2>Monitor actions</h2><table><tr><th>id</th><th>kind</th><th>status</th><th>alert</th><th>detail</th></tr>
{actions}</table>
<h2>Evidently reports</h2><ul>{report_items or "<li>none kept</li>"}</ul>
<h2>Links (while the stack runs)</h2><ul>{link_items}</ul>
</body></html>
"""
