"""Honest evaluation of fraud models: time-aware splits and the metrics fraud teams use."""
