"""Kafka consumer that scores every transaction, plus a synchronous scoring endpoint."""
