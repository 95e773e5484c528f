"""The two vocabularies of serving: MLflow aliases and the (deprecated) stages people still speak of.

Production is the `champion` alias, Staging the `challenger` alias, Archived a version the gateway retired.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum


class Alias(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


class Stage(StrEnum):
    PRODUCTION = "Production"
    STAGING = "Staging"
    ARCHIVED = "Archived"
    NONE = "None"


class Target(StrEnum):
    """Where a version can be sent: an alias, or retirement."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"
    ARCHIVED = "archived"


STAGE_OF_ALIAS = {Alias.CHAMPION: Stage.PRODUCTION, Alias.CHALLENGER: Stage.STAGING}

_TARGET_WORDS = {
    "champion": Target.CHAMPION,
    "production": Target.CHAMPION,
    "challenger": Target.CHALLENGER,
    "staging": Target.CHALLENGER,
    "archived": Target.ARCHIVED,
    "archive": Target.ARCHIVED,
}
# Both vocabularies, as the API documents them; matching is case-insensitive.
TARGET_WORDS: tuple[str, ...] = ("champion", "challenger", "archived", "Production", "Staging", "Archived")
ALIAS_WORDS: tuple[str, ...] = ("champion", "challenger", "Production", "Staging")


def parse_target(word: str) -> Target:
    try:
        return _TARGET_WORDS[word.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown target {word!r}; use one of {', '.join(TARGET_WORDS)}") from None


def parse_alias(word: str) -> Alias:
    target = parse_target(word)
    if target is Target.ARCHIVED:
        raise ValueError("Archived is not an alias; use champion/Production or challenger/Staging")
    return Alias(target.value)


def stage_of(version: str, aliases: Mapping[str, str], retired: Collection[str]) -> Stage:
    """A version's stage: its alias wins (champion over challenger), then retirement, else None."""
    for alias in (Alias.CHAMPION, Alias.CHALLENGER):
        if aliases.get(alias.value) == version:
            return STAGE_OF_ALIAS[alias]
    return Stage.ARCHIVED if version in retired else Stage.NONE
