"""The local stack: Kafka, MLflow and the five services as plain processes on 127.0.0.1."""
