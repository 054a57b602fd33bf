"""Checks made before any run starts: origin, token, and who the client is.

Shared by the WebSocket and ``POST /run`` so the two transports can never disagree.
"""

from __future__ import annotations

import hmac
import ipaddress
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


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # Forwarded: for="[2001:db8::1]:4711"
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # an IPv4 address with a port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_chain(headers: Headers) -> list[str]:
    """Client addresses the proxies in front recorded, nearest last (RFC 7239 first, then XFF)."""
    forwarded = headers.get_all("Forwarded")
    if forwarded:
        chain = []
        for element in ",".join(forwarded).split(","):
            for pair in element.split(";"):
                key, _, value = pair.strip().partition("=")
                if key.lower() == "for":
                    chain.append(value)
        return chain
    return [part for value in headers.get_all("X-Forwarded-For") for part in value.split(",") if part.strip()]


def client_address(headers: Headers, remote_addr: str | None, settings: Settings) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Behind trusted proxies the forwarded chain is read from the nearest hop backwards, and the
    first address that is not itself a trusted proxy is the client: a client cannot push its own
    made-up address past a proxy that appends the real one. Nothing is believed by default.
    """
    peer = remote_addr or "unknown"
    if not settings.trusted_proxies:
        return peer
    networks = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]

    def trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return addr is not None and any(addr in net for net in networks)

    if not trusted(_address(peer)):
        return peer
    for hop in reversed(_forwarded_chain(headers)):
        addr = _address(hop)
        if addr is None:
            return peer  # an unreadable hop: fall back to what we know for sure
        if not trusted(addr):
            return str(addr)
    return peer


def client_key(headers: Headers, args: MultiDict[str, str], remote_addr: str | None, settings: Settings) -> str:
    """A client's share is counted by its token where tokens are in use, else by address.

    The token itself never appears: the key (which reaches logs) holds a short hash of it.
    """
    if settings.api_tokens:
        token = presented_token(headers, args)
        if token:
            return "token:" + token_hash(token)
    return "addr:" + client_address(headers, remote_addr, settings)
