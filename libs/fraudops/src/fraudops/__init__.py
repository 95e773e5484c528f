"""Shared library of the fraud detection platform."""

__version__ = "0.1.0"
