"""Features of the fraud model, defined once and evaluated offline (datasets) and online (the scorer)."""

from fraudops.features.definition import (
    BASELINE_FEATURES,
    EXTRA_FEATURES,
    FEATURE_NAMES,
    FEATURE_VERSION,
    FeatureConfig,
)

__all__ = ["BASELINE_FEATURES", "EXTRA_FEATURES", "FEATURE_NAMES", "FEATURE_VERSION", "FeatureConfig"]
