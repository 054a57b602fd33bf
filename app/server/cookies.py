"""A signed browser cookie that tells the browsers behind one address apart, without accounts.

A classroom behind one NAT address would share one per-client share and one rate limit if
clients were told apart by address alone. The server gives each browser a random id in an
HTTP-only, SameSite cookie, signed with a key, and counts shares and limits by it (the address
stays a ceiling: see ``guards.client_key``). A client cannot forge an id, only ask for new ones,
and all of those still count against its address's ceiling.

The key comes from ``SCE_CLIENT_COOKIE_KEY``; unset, a random key per start: cookies issued
before a restart, or by another server behind the same balancer, are not recognised and the
browser is counted by its address until it loads ``/ui`` again.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from werkzeug.datastructures import Headers

COOKIE_NAME = "sce_client"
COOKIE_MAX_AGE_S = 30 * 24 * 3600
ID_BYTES = 16
SIG_CHARS = 32


class ClientCookies:
    """Issues and checks ``ID.SIGNATURE`` values (hex; HMAC-SHA256 of the id, truncated)."""

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else secrets.token_bytes(32)

    def _sign(self, client_id: str) -> str:
        return hmac.new(self._key, client_id.encode(), hashlib.sha256).hexdigest()[:SIG_CHARS]

    def issue(self) -> str:
        client_id = secrets.token_hex(ID_BYTES)
        return f"{client_id}.{self._sign(client_id)}"

    def verify(self, value: str | None) -> str | None:
        """The id a cookie value carries, or None when it is missing, malformed or not ours."""
        if not value or value.count(".") != 1:
            return None
        client_id, signature = value.split(".")
        if len(client_id) != 2 * ID_BYTES or len(signature) != SIG_CHARS:
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(client_id).encode()):
            return None
        return client_id

    def client_id(self, headers: Headers) -> str | None:
        """The verified id in a request's ``Cookie`` header (the first ``sce_client`` that verifies)."""
        for header in headers.get_all("Cookie"):
            for pair in header.split(";"):
                name, _, value = pair.strip().partition("=")
                if name == COOKIE_NAME:
                    found = self.verify(value.strip('"'))
                    if found is not None:
                        return found
        return None
