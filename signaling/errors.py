"""Domain errors mapped to HTTP answers and socket.io replies, in one place."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from rooms.errors import CaucusError, RateLimited

log = logging.getLogger(__name__)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def describe_validation(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "Invalid request: " + "; ".join(parts) + "."


def http_error(error: Exception) -> web.Response:
    if isinstance(error, CaucusError):
        headers = {}
        if isinstance(error, RateLimited):
            headers["Retry-After"] = str(error.retry_after)
        return web.json_response(
            error_body(error.code, error.message), status=error.status, headers=headers
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
    if isinstance(error, ValidationError):
        return {"ok": False, **error_body("invalid_payload", describe_validation(error))}
    log.exception("socket event failed", exc_info=error)
    return {"ok": False, **error_body("internal_error", "Something went wrong on the server.")}
