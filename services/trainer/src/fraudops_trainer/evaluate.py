"""`fraudops evaluate`: the model quality benchmark on the simulated dataset, printed as JSON.

Registered as a `fraudops` sub-command through the `fraudops.commands` entry point group.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

# The Fraud Detection Handbook's best published XGBoost on its baseline protocol (train 2018-07-25..31,
# 7-day delay, test 2018-08-08..14), and the targets this project set itself.
HANDBOOK_XGBOOST = {"roc_auc": 0.872, "average_precision": 0.694, "card_precision_at_100": 0.304}
TARGETS = {"roc_auc": 0.875, "average_precision": 0.70, "card_precision_at_100": 0.305}


class Protocol(StrEnum):
    HANDBOOK = "handbook"
    PREQUENTIAL = "prequential"


def _headline(report: dict[str, float]) -> dict[str, float]:
    return {key: report[key] for key in HANDBOOK_XGBOOST}


def evaluate(
    protocol: Annotated[
        Protocol, typer.Option(help="handbook: one split; prequential: 4 folds moved back a week.")
    ] = Protocol.HANDBOOK,
    source: Annotated[
        Path | None, typer.Option("--input", help="Parquet dataset; default: the simulator's published dataset.")
    ] = None,
    search_trials: Annotated[int, typer.Option(help="Optuna trials on the validation split first.", min=0)] = 0,
) -> None:
    """Train and evaluate on the Handbook's protocol; print our figures beside the published ones as JSON."""
    import pandas as pd

    from fraudops.evaluation.protocol import HANDBOOK_SPLIT, Split, prequential_splits
    from fraudops.simulator import SimulatorConfig, simulate
    from fraudops_trainer.pipeline import train_model
    from fraudops_trainer.spec import ModelParameters, ProtocolParameters

    started = time.perf_counter()
    frame = pd.read_parquet(source) if source else simulate(SimulatorConfig()).transactions
    parameters = ModelParameters()
    folds: list[Split] = [HANDBOOK_SPLIT]
    if protocol is Protocol.PREQUENTIAL:
        folds = prequential_splits(HANDBOOK_SPLIT, folds=4)
    results: list[dict[str, Any]] = []
    for split in folds:
        model = train_model(frame, parameters, ProtocolParameters(), search_trials, lambda *_: None, split=split)
        parameters = model.parameters
        results.append({"split": split.describe(), **model.report.as_dict(), "thresholds": model.thresholds})
    headline = {key: sum(r[key] for r in results) / len(results) for key in HANDBOOK_XGBOOST}
    output = {
        "protocol": protocol.value,
        "ours": headline,
        "handbook_xgboost": HANDBOOK_XGBOOST,
        "targets": TARGETS,
        "meets_targets": {key: headline[key] >= TARGETS[key] for key in TARGETS},
        "folds": results,
        "parameters": parameters.model_dump(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    typer.echo(json.dumps(output, indent=2))
