"""Drift and live-performance monitoring, Prometheus metrics, alert receiver and actions."""
