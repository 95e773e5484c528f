"""Token matching is exact and considers every configured token."""

from pydantic import SecretStr

from fraudops.auth import match_principal

TOKENS = {"airflow": SecretStr("Vf3kP9zQ2mL8xR5tW1bN7cJ4"), "operator": SecretStr("Hs6Yd2Kq9Tm4Pz8Lr3Xw5Cn1")}


def test_known_token_names_its_principal() -> None:
    assert match_principal("Hs6Yd2Kq9Tm4Pz8Lr3Xw5Cn1", TOKENS) == "operator"


def test_unknown_prefix_or_empty_tokens_match_nothing() -> None:
    assert match_principal("Hs6Yd2Kq9Tm4Pz8Lr3Xw5Cn", TOKENS) is None
    assert match_principal("", TOKENS) is None
    assert match_principal("Hs6Yd2Kq9Tm4Pz8Lr3Xw5Cn1 ", TOKENS) is None
