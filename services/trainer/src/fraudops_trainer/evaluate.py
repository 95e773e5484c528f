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

from fraudops_trainer.spec import SearchMetric

# The Fraud Detection Handbook's best published XGBoost (chapter 5, "Model selection": the best test figure
# of each metric over its parameter search), and the targets this project set itself. The Handbook's figures
# are means over its four test folds (tests 2018-08-08 to 2018-09-04, each +/- 0.01 across folds) on its own
# random draw of the dataset: `--protocol prequential` is the like-for-like comparison.
HANDBOOK_XGBOOST = {"roc_auc": 0.872, "average_precision": 0.694, "card_precision_at_100": 0.304}
HANDBOOK_XGBOOST_PROTOCOL = "mean of 4 test folds, train 2018-07-25 .. 2018-08-15 + 7 days, 7-day delay, test 7 days"
TARGETS = {"roc_auc": 0.875, "average_precision": 0.70, "card_precision_at_100": 0.305}


class Protocol(StrEnum):
    HANDBOOK = "handbook"
    PREQUENTIAL = "prequential"


def _headline(report: dict[str, float]) -> dict[str, float]:
    return {key: report[key] for key in HANDBOOK_XGBOOST}


def evaluate(
    protocol: Annotated[
        Protocol,
        typer.Option(
            help="handbook: one split (test 2018-08-08..14); prequential: the Handbook's 4 test folds "
            "(tests 2018-08-08..09-04), the protocol of its published figures."
        ),
    ] = Protocol.HANDBOOK,
    source: Annotated[
        Path | None, typer.Option("--input", help="Parquet dataset; default: the simulator's published dataset.")
    ] = None,
    search_trials: Annotated[int, typer.Option(help="Optuna trials on the validation folds first.", min=0)] = 0,
    search_folds: Annotated[
        int, typer.Option(help="Validation folds (weeks before the test) a search trial is scored on.", min=1)
    ] = 4,
    search_metric: Annotated[
        SearchMetric, typer.Option(help="What the search maximises (mean over its folds).")
    ] = SearchMetric.AVERAGE_PRECISION,
) -> None:
    """Train and evaluate on the Handbook's protocol; print our figures beside the published ones as JSON."""
    import pandas as pd

    from fraudops.evaluation.protocol import HANDBOOK_SPLIT, HANDBOOK_TEST_FOLDS, Split
    from fraudops.simulator import SimulatorConfig, simulate
    from fraudops_trainer.pipeline import SearchPlan, train_model
    from fraudops_trainer.spec import ModelParameters, ProtocolParameters

    started = time.perf_counter()
    frame = pd.read_parquet(source) if source else simulate(SimulatorConfig()).transactions
    parameters = ModelParameters()
    folds: list[Split] = [HANDBOOK_SPLIT]
    if protocol is Protocol.PREQUENTIAL:
        folds = list(HANDBOOK_TEST_FOLDS)
    plan = SearchPlan(search_trials, search_folds, search_metric)
    results: list[dict[str, Any]] = []
    for split in folds:
        model = train_model(frame, parameters, ProtocolParameters(), plan, lambda *_: None, split=split)
        parameters = model.parameters
        results.append({"split": split.describe(), **model.report.as_dict(), "thresholds": model.thresholds})
    headline = {key: round(sum(r[key] for r in results) / len(results), 6) for key in HANDBOOK_XGBOOST}
    output = {
        "protocol": protocol.value,
        "ours": headline,
        "handbook_xgboost": HANDBOOK_XGBOOST,
        "handbook_xgboost_protocol": HANDBOOK_XGBOOST_PROTOCOL,
        "targets": TARGETS,
        "meets_targets": {key: headline[key] >= TARGETS[key] for key in TARGETS},
        "folds": results,
        "parameters": parameters.model_dump(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    typer.echo(json.dumps(output, indent=2))
