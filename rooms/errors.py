"""Domain errors of Caucus.

Every layer raises these; the signaling layer maps them to HTTP statuses and socket.io
error replies in one place (``signaling.errors``). Each error carries a stable machine
``code`` and a ``message`` written for the person who caused it.
"""

from __future__ import annotations


class CaucusError(Exception):
    """Base of all domain errors."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        #: More the caller may act on (JSON-able), sent beside the code and message.
        self.extra: dict[str, object] = {}


class InvalidInput(CaucusError):
    code = "invalid_input"
    status = 400


class Unauthenticated(CaucusError):
    code = "unauthenticated"
    status = 401


class Forbidden(CaucusError):
    code = "forbidden"
    status = 403


class NotFound(CaucusError):
    code = "not_found"
    status = 404


class Conflict(CaucusError):
    code = "conflict"
    status = 409


class Gone(CaucusError):
    code = "gone"
    status = 410


class PayloadTooLarge(CaucusError):
    code = "payload_too_large"
    status = 413


class RateLimited(CaucusError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class UnsupportedMediaType(CaucusError):
    code = "unsupported_media_type"
    status = 415


class IntegrityFailure(CaucusError):
    """Stored encrypted data failed authentication (damaged, tampered or wrong key).

    The request was fine; the data is not. Answered as a server error with a clear code,
    never as a trace.
    """

    code = "integrity_error"
    status = 500
