"""The only writer of model aliases in MLflow: promotion with quality gates, rollback, audit and model events."""
