"""Contracts shared by every service: Avro schemas and codec, topic catalogue, message models."""
