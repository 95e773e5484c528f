"""Evaluation plots logged with every run, as PNG images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display in services and CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xgboost as xgb

from fraudops.features import FEATURE_NAMES


def _curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(labels[order])
    flagged = np.arange(1, labels.size + 1)
    positives = max(int(labels.sum()), 1)
    negatives = max(labels.size - int(labels.sum()), 1)
    return hits / flagged, hits / positives, (flagged - hits) / negatives


def save_plots(test: pd.DataFrame, booster: xgb.Booster, folder: Path) -> list[Path]:
    """PR curve, ROC curve, score distribution, feature importance and a SHAP summary."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = test["is_fraud"].to_numpy().astype(int)
    scores = test["score"].to_numpy()
    precision, recall, false_positive_rate = _curve(labels, scores)
    written = []

    def save(name: str) -> None:
        path = folder / name
        plt.tight_layout()
        plt.savefig(path, dpi=110)
        plt.close()
        written.append(path)

    plt.figure(figsize=(5, 4))
    plt.plot(recall, precision)
    plt.xlabel("recall")
    plt.ylabel("precision")
    plt.title("Precision-recall (test period)")
    save("pr_curve.png")

    plt.figure(figsize=(5, 4))
    plt.plot(false_positive_rate, recall)
    plt.plot([0, 1], [0, 1], linestyle="--", color="grey")
    plt.xlabel("false positive rate")
    plt.ylabel("true positive rate")
    plt.title("ROC (test period)")
    save("roc_curve.png")

    plt.figure(figsize=(6, 4))
    bins = [float(edge) for edge in np.linspace(0, 1, 51)]
    plt.hist(scores[labels == 0], bins=bins, alpha=0.6, label="genuine", log=True)
    plt.hist(scores[labels == 1], bins=bins, alpha=0.6, label="fraud", log=True)
    plt.xlabel("score")
    plt.legend()
    plt.title("Score distribution (test period)")
    save("score_distribution.png")

    gain = booster.get_score(importance_type="gain")
    names = sorted(gain, key=gain.__getitem__)
    plt.figure(figsize=(6, 5))
    plt.barh(names, [gain[n] for n in names])
    plt.xlabel("total gain")
    plt.title("Feature importance")
    save("feature_importance.png")

    sample = test.sample(n=min(len(test), 5000), random_state=0)
    matrix = xgb.DMatrix(sample[list(FEATURE_NAMES)].to_numpy(np.float32), feature_names=list(FEATURE_NAMES))
    # XGBoost's own TreeSHAP: one contribution per feature (last column is the bias).
    contributions = booster.predict(matrix, pred_contribs=True)[:, :-1]
    mean_abs = np.abs(contributions).mean(axis=0)
    order = np.argsort(mean_abs)
    plt.figure(figsize=(7, 6))
    for row, index in enumerate(order):
        values = sample[FEATURE_NAMES[index]].to_numpy(np.float64)
        span = np.nanmax(values) - np.nanmin(values)
        colour = (values - np.nanmin(values)) / span if span > 0 else np.zeros_like(values)
        jitter = np.random.default_rng(row).uniform(-0.3, 0.3, len(values))
        plt.scatter(contributions[:, index], row + jitter, c=colour, cmap="coolwarm", s=3, alpha=0.5)
    plt.yticks(range(len(order)), [FEATURE_NAMES[i] for i in order])
    plt.xlabel("SHAP value (log-odds contribution)")
    plt.title("SHAP summary (test sample; colour: feature value)")
    save("shap_summary.png")
    return written
