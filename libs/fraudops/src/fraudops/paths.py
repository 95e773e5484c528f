"""Where the repository's shared files live, in a checkout and in a container image."""

from __future__ import annotations

import os
from pathlib import Path

from fraudops.errors import ConfigurationError

CONTRACTS_ENV = "FRAUDOPS_CONTRACTS_DIR"


def repo_root() -> Path | None:
    """The checkout this package was installed from (editable install), if any."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "contracts" / "topics.yaml").is_file() and (parent / "libs").is_dir():
            return parent
    return None


def contracts_dir() -> Path:
    """The contracts folder: FRAUDOPS_CONTRACTS_DIR (images) or the checkout's `contracts/`."""
    configured = os.environ.get(CONTRACTS_ENV)
    if configured:
        path = Path(configured)
        if not (path / "topics.yaml").is_file():
            raise ConfigurationError(f"{CONTRACTS_ENV}={configured} holds no topics.yaml")
        return path
    root = repo_root()
    if root is None:
        raise ConfigurationError(f"contracts not found: set {CONTRACTS_ENV} to the folder holding topics.yaml")
    return root / "contracts"
