"""Training jobs: features, time-aware evaluation, XGBoost, MLflow tracking and registration."""
