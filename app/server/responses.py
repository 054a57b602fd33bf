"""HTTP answers for errors: ``{"error", "code"}`` with the status from the one error table."""

from __future__ import annotations

from quart import Response, jsonify

from app.errors import Busy, SCEError


def error_response(error: SCEError, retry_after_s: int = 2) -> Response:
    """``retry_after_s`` is the general advice; a ``Busy`` that knows better (a rate limit) says its own."""
    response = jsonify({"error": error.message, "code": error.code})
    response.status_code = error.http_status
    if isinstance(error, Busy):
        response.headers["Retry-After"] = str(error.retry_after_s or retry_after_s)
    return response
