"""Checks made before any run starts: origin, token, and who the client is.

Shared by the WebSocket and ``POST /run`` so the two transports can never disagree.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from werkzeug.datastructures import Headers, MultiDict

from app.errors import Forbidden, Unauthorized
from app.server.runs import token_hash
from app.settings import Settings


def check_origin(headers: Headers, settings: Settings) -> None:
    """No Origin: not a browser, allowed. Otherwise the server's own origin or the allow-list."""
    origin = headers.get("Origin")
    if origin is None:
        return
    if origin in settings.allowed_origins:
        return
    host = headers.get("Host", "")
    if host and urlsplit(origin).netloc.lower() == host.lower():
        return
    raise Forbidden(f"origin {origin!r} is not allowed")


def presented_token(headers: Headers, args: MultiDict[str, str]) -> str | None:
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return args.get("token")


def check_token(headers: Headers, args: MultiDict[str, str], settings: Settings) -> None:
    if not settings.api_tokens:
        return
    token = presented_token(headers, args)
    if token is None or not any(hmac.compare_digest(token.encode(), t.encode()) for t in settings.api_tokens):
        raise Unauthorized()


def client_key(headers: Headers, args: MultiDict[str, str], remote_addr: str | None, settings: Settings) -> str:
    """A client's share is counted by its token where tokens are in use, else by address.

    The token itself never appears: the key (which reaches logs) holds a short hash of it.
    """
    if settings.api_tokens:
        token = presented_token(headers, args)
        if token:
            return "token:" + token_hash(token)
    return "addr:" + (remote_addr or "unknown")
