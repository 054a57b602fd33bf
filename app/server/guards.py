"""Checks made before any run starts: host, origin, token, and who the client is.

Shared by the WebSocket and ``POST /run`` (and, for the host, every request) so the transports
can never disagree.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from werkzeug.datastructures import Headers, MultiDict

from app.errors import BadMessage, Forbidden, Unauthorized
from app.server.cookies import ClientCookies
from app.server.runs import token_hash
from app.settings import Settings, host_of

CEILING_SEP = "@"
"""A browser's key is ``cookie:ID@ADDRESS``: counted by its cookie, ceilinged by its address."""


def check_host(headers: Headers, settings: Settings) -> None:
    """Only the configured host names (DNS rebinding: a page on evil.example whose name now points
    at 127.0.0.1 sends ``Host: evil.example``). No Host at all is not a browser: allowed (hypercorn
    hands an HTTP/1.0 request without one, such as HAProxy's health check, an empty Host)."""
    names = settings.host_names()
    host = headers.get("Host")
    if names is None or not host or host_of(host) in names:
        return
    raise BadMessage(f"host {host!r} is not a name this server answers to (SCE_ALLOWED_HOSTS)")


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
    """Client addresses the proxies in front appended to ``X-Forwarded-For``, nearest last.

    ``Forwarded`` (RFC 7239) is never read: a proxy that only appends to X-Forwarded-For passes a
    client's own ``Forwarded`` through untouched, and the client would pick its own address.
    """
    return [part for value in headers.get_all("X-Forwarded-For") for part in value.split(",") if part.strip()]


def client_address(headers: Headers, remote_addr: str | None, settings: Settings) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy.

    Behind trusted proxies the X-Forwarded-For chain is read from the nearest hop backwards, and
    the first address that is not itself a trusted proxy is the client: a client cannot push its
    own made-up address past a proxy that appends the real one. Nothing is believed by default.
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


FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def is_local_admin(headers: Headers, remote_addr: str | None) -> bool:
    """A caller on this host talking to the server directly: a loopback peer with no forwarding
    header (a proxy on the same host adds one, so the internet behind it is never local)."""
    addr = _address(remote_addr or "")
    return addr is not None and addr.is_loopback and not any(h in headers for h in FORWARDING_HEADERS)


def check_admin(headers: Headers, remote_addr: str | None, settings: Settings) -> None:
    """Details, metrics and deep probes: the admin token when one is set, else local callers only."""
    if settings.admin_token:
        auth = headers.get("Authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if hmac.compare_digest(given.encode(), settings.admin_token.encode()):
            return
        raise Unauthorized("this needs the admin token (SCE_ADMIN_TOKEN) as a bearer token")
    if not is_local_admin(headers, remote_addr):
        raise Forbidden("only callers on the server's own host see this (or set SCE_ADMIN_TOKEN)")


def client_key(
    headers: Headers,
    args: MultiDict[str, str],
    remote_addr: str | None,
    settings: Settings,
    cookies: ClientCookies | None = None,
) -> str:
    """A client's share is counted by its token where tokens are in use; else by the browser's
    signed cookie, with its address as a ceiling (``cookie:ID@ADDRESS``); else by address.

    The token itself never appears: the key (which reaches logs) holds a short hash of it.
    """
    if settings.api_tokens:
        token = presented_token(headers, args)
        if token:
            return "token:" + token_hash(token)
    address = client_address(headers, remote_addr, settings)
    browser = cookies.client_id(headers) if cookies is not None else None
    if browser is not None:
        return f"cookie:{browser}{CEILING_SEP}{address}"
    return "addr:" + address


def address_ceiling(client: str) -> str | None:
    """The key of the ceiling a browser's runs also count against: its address's, all its cookies
    together (cookies are free to get, so this is the real bound on them). None for the rest: a
    cookie-less client is its address, bounded by its own share, apart from the class's runs."""
    if client.startswith("cookie:") and CEILING_SEP in client:
        return "ceiling:" + client.rsplit(CEILING_SEP, 1)[1]
    return None
