"""A small typed exception hierarchy; services map it to HTTP answers in one place."""

from __future__ import annotations


class FraudOpsError(Exception):
    """Base of every error the platform raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(FraudOpsError):
    """Settings are missing, unknown or unsafe; the process must not start."""

    code = "configuration_error"


class InvalidInputError(FraudOpsError):
    status_code = 422
    code = "invalid_input"


class NotFoundError(FraudOpsError):
    status_code = 404
    code = "not_found"


class ConflictError(FraudOpsError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(FraudOpsError):
    status_code = 413
    code = "payload_too_large"


class UnauthorizedError(FraudOpsError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(FraudOpsError):
    status_code = 403
    code = "forbidden"


class DependencyUnavailableError(FraudOpsError):
    """A dependency (Kafka, MLflow, a database) cannot be reached right now."""

    status_code = 503
    code = "dependency_unavailable"


class MessageDecodeError(FraudOpsError):
    """A Kafka message cannot be read; it belongs in the dead-letter topic."""

    status_code = 422
    code = "undecodable_message"


class CorruptMessageError(MessageDecodeError):
    """The bytes are not a well-formed message of the schema they claim."""

    code = "corrupt_message"


class UnknownSchemaError(MessageDecodeError):
    """The message names a schema this process does not know (or not the one expected)."""

    code = "unknown_schema"


class OversizeMessageError(MessageDecodeError):
    """The message is larger than a consumer reads; it is dead-lettered without being decoded."""

    code = "oversize_message"
