"""HTTP answers for errors: ``{"error", "code"}`` with the status from the one error table."""

from __future__ import annotations

from quart import Response, jsonify

from app.errors import Busy, SCEError


def error_response(error: SCEError, retry_after_s: int = 2) -> Response:
    response = jsonify({"error": error.message, "code": error.code})
    response.status_code = error.http_status
    if isinstance(error, Busy):
        response.headers["Retry-After"] = str(retry_after_s)
    return response
