"""Domain errors mapped to HTTP answers and socket.io replies, in one place."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from rooms.errors import CaucusError, RateLimited
from sfu.errors import MediaError
from signaling.refusals import HTTP_LIMITS, REFUSALS

log = logging.getLogger(__name__)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def describe_validation(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "Invalid request: " + "; ".join(parts) + "."


#: SFU error codes as the API spells them, with their HTTP status.
MEDIA_ERRORS = {
    "invalid-sdp": ("invalid_sdp", 400),
    "no-supported-codec": ("no_supported_codec", 400),
    "invalid-state": ("invalid_state", 409),
    "not-found": ("not_found", 404),
    "no-free-port": ("no_free_port", 503),
}


def media_error(error: MediaError) -> tuple[str, str, int]:
    """An SFU refusal as (code, message, HTTP status)."""
    code, status = MEDIA_ERRORS.get(error.code, (error.code.replace("-", "_"), 400))
    return code, error.message, status


def as_media_error(error: Exception) -> MediaError | None:
    """``error`` if it is an SFU refusal (``sfu.errors`` loads no media stack)."""
    return error if isinstance(error, MediaError) else None


def http_error(error: Exception) -> web.Response:
    refused = as_media_error(error)
    if refused is not None:
        code, message, status = media_error(refused)
        return web.json_response(error_body(code, message), status=status)
    if isinstance(error, CaucusError):
        headers = {}
        if isinstance(error, RateLimited):
            headers["Retry-After"] = str(error.retry_after)
            REFUSALS.count(getattr(error, "limit", "rate"))
        elif error.code in HTTP_LIMITS:
            REFUSALS.count(HTTP_LIMITS[error.code])
        return web.json_response(
            error_body(error.code, error.message, **error.extra),
            status=error.status,
            headers=headers,
        )
    if isinstance(error, ValidationError):
        return web.json_response(
            error_body("invalid_input", describe_validation(error)), status=400
        )
    raise error


def socket_error(error: Exception) -> dict[str, Any]:
    """The acknowledgement payload for a failed socket.io event."""
    if isinstance(error, CaucusError):
        return {"ok": False, **error_body(error.code, error.message)}
    refused = as_media_error(error)
    if refused is not None:
        code, message, _status = media_error(refused)
        return {"ok": False, **error_body(code, message)}
    if isinstance(error, ValidationError):
        return {"ok": False, **error_body("invalid_payload", describe_validation(error))}
    log.exception("socket event failed", exc_info=error)
    return {"ok": False, **error_body("internal_error", "Something went wrong on the server.")}
