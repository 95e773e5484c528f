"""The registry gateway's pure rules: ranking metrics, artifact locations, vocabularies, the trainer contract."""

from __future__ import annotations

import json

import pytest

from fraudops.features import FEATURE_NAMES, FEATURE_VERSION
from fraudops_registry_gateway.contract import serving_parameters, tag_problems
from fraudops_registry_gateway.gate import Scores, minimum_problems, regression_problems
from fraudops_registry_gateway.settings import GateSettings
from fraudops_registry_gateway.sources import (
    LoggedModelRef,
    RegisteredModelRef,
    RunArtifact,
    location_problems,
    parse_reference,
)
from fraudops_registry_gateway.stages import Stage, Target, parse_alias, parse_target, stage_of

ALLOWED = ["mlflow-artifacts:/", "models:/", "runs:/"]


# ---- the gate -------------------------------------------------------------------------------------


def test_gate_minima_and_regression_margin() -> None:
    gate = GateSettings(
        min_average_precision=0.5, min_roc_auc=0.8, min_card_precision_at_100=0.1, max_average_precision_drop=0.02
    )
    good = Scores(0.7, 0.9, 0.3, 100)
    assert minimum_problems(good, gate) == []
    weak = Scores(0.4, 0.7, 0.05, 100)
    assert len(minimum_problems(weak, gate)) == 3
    champion = Scores(0.75, 0.9, 0.3, 100)
    assert regression_problems(Scores(0.74, 0.9, 0.3, 100), champion, "3", gate) == []
    problems = regression_problems(good, champion, "3", gate)
    assert len(problems) == 1
    assert "champion version 3" in problems[0]


# ---- artifact locations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "mlflow-artifacts:/1/abc/artifacts/model",
        "models:/m-0123456789abcdef0123456789abcdef",
        "runs:/0123456789abcdef/model",
        "models:/fraud-detector/3",
    ],
)
def test_sources_inside_the_store_are_accepted(uri: str) -> None:
    assert location_problems(uri, ALLOWED) == []


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("file:///etc/passwd", "outside the artifact store"),
        ("s3://someone-else/model", "outside the artifact store"),
        ("http://evil.invalid/model", "outside the artifact store"),
        ("dbfs:/x", "outside the artifact store"),
        ("mlflow-artifacts:/1/../../etc", "path traversal"),
        ("mlflow-artifacts:/1/%2e%2e/%2E%2E/etc", "path traversal"),
        ("mlflow-artifacts:/1/%252e%252e/etc", "path traversal"),
        ("runs:/abc/..\\..\\etc", "path traversal"),
        ("mlflow-artifacts://other-host/1/model", "names a host"),
        ("mlflow-artifacts:/1/model\nx", "control characters"),
    ],
)
def test_sources_outside_the_store_are_refused(uri: str, why: str) -> None:
    problems = location_problems(uri, ALLOWED)
    assert any(why in problem for problem in problems), problems


def test_references_are_parsed() -> None:
    assert parse_reference("runs:/abc123/model/sub") == RunArtifact("abc123", "model/sub")
    assert parse_reference("models:/m-0123456789abcdef0123456789abcdef") == LoggedModelRef(
        "m-0123456789abcdef0123456789abcdef"
    )
    assert parse_reference("models:/fraud-detector/4") == RegisteredModelRef("fraud-detector", "4", None)
    assert parse_reference("models:/fraud-detector@champion") == RegisteredModelRef("fraud-detector", None, "champion")
    assert parse_reference("mlflow-artifacts:/1/model") is None


# ---- vocabularies -----------------------------------------------------------------------------------


def test_both_vocabularies_name_the_same_targets() -> None:
    assert parse_target("Production") is parse_target("champion") is Target.CHAMPION
    assert parse_target("STAGING") is parse_target("challenger") is Target.CHALLENGER
    assert parse_target("Archived") is Target.ARCHIVED
    with pytest.raises(ValueError, match="unknown target"):
        parse_target("canary")
    with pytest.raises(ValueError, match="not an alias"):
        parse_alias("Archived")


def test_stage_of_a_version() -> None:
    aliases = {"champion": "3", "challenger": "4"}
    assert stage_of("3", aliases, []) is Stage.PRODUCTION
    assert stage_of("4", aliases, []) is Stage.STAGING
    assert stage_of("2", aliases, ["2"]) is Stage.ARCHIVED
    assert stage_of("1", aliases, ["2"]) is Stage.NONE


# ---- the trainer's contract -------------------------------------------------------------------------


def _tags(**overrides: str) -> dict[str, str]:
    tags = {
        "feature_version": FEATURE_VERSION,
        "feature_names": json.dumps(list(FEATURE_NAMES)),
        "threshold_review": "0.5",
        "threshold_decline": "0.9",
        "label_delay_days": "7",
        "dataset_id": "ds-1",
    }
    return tags | overrides


def test_contract_tags() -> None:
    assert tag_problems(_tags()) == []
    params = serving_parameters(_tags())
    assert (params.threshold_review, params.threshold_decline, params.label_delay_days) == (0.5, 0.9, 7)
    assert params.feature_names == list(FEATURE_NAMES)
    assert any("feature_version" in p for p in tag_problems(_tags(feature_version="v0")))
    reordered = json.dumps(list(reversed(FEATURE_NAMES)))
    assert any("another order" in p for p in tag_problems(_tags(feature_names=reordered)))
    assert any("missing" in p for p in tag_problems(_tags(feature_names=json.dumps(["amount"]))))
    assert any("above" in p for p in tag_problems(_tags(threshold_review="0.95")))
    assert any("threshold_decline" in p for p in tag_problems(_tags(threshold_decline="nan")))
