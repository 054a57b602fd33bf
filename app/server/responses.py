"""HTTP answers: errors as ``{"error", "code"}`` with the status from the one error table, and
the security headers every answer carries."""

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


CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",  # the bundle only: no inline script, no eval
        # CodeMirror puts its styles in a <style> element it makes: inline style is allowed (it
        # runs no script, and with img/font/connect limited to us it cannot send anything away)
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' blob: data:",  # program images are blob: URLs; the icon is a data: URL
        "connect-src 'self'",  # the WebSocket to this server ('self' covers ws:/wss: of this host)
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_security_headers(response: Response) -> Response:
    """On every answer (pages, JSON, static files, errors): a page of ours is never framed, never
    runs a script it did not load from us, and nothing is sniffed into another type."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
