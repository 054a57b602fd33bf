"""Who the client is: the peer, or behind trusted proxies the first untrusted forwarded hop."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers

from app.server.guards import client_address
from app.settings import Settings


def address(peer: str, trusted: str = "", **headers: str) -> str:
    settings = Settings(trusted_proxies=trusted)  # type: ignore[arg-type]
    return client_address(Headers([(k.replace("_", "-"), v) for k, v in headers.items()]), peer, settings)


def test_nothing_forwarded_is_believed_by_default() -> None:
    assert address("10.0.0.5", X_Forwarded_For="1.2.3.4") == "10.0.0.5"


def test_a_trusted_proxy_names_the_client() -> None:
    assert address("127.0.0.1", "127.0.0.1", X_Forwarded_For="127.0.0.7") == "127.0.0.7"


def test_a_client_cannot_push_a_made_up_address_past_the_proxy() -> None:
    # the client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the real peer
    assert address("127.0.0.1", "127.0.0.1", X_Forwarded_For="6.6.6.6, 127.0.0.9") == "127.0.0.9"


def test_a_chain_of_trusted_proxies_is_walked_back() -> None:
    chain = "203.0.113.7, 10.1.0.2"
    assert address("10.1.0.3", "10.1.0.0/16", X_Forwarded_For=chain) == "203.0.113.7"


def test_forwarded_header_wins_and_understands_ports_and_ipv6() -> None:
    assert address("::1", "::1", Forwarded='for="[2001:db8::1]:4711";proto=https') == "2001:db8::1"
    assert address("127.0.0.1", "127.0.0.0/8", Forwarded="for=198.51.100.2:1234") == "198.51.100.2"


def test_an_unreadable_hop_falls_back_to_the_peer() -> None:
    assert address("127.0.0.1", "127.0.0.1", X_Forwarded_For="unknown") == "127.0.0.1"


def test_an_untrusted_peer_is_the_client_whatever_it_says() -> None:
    assert address("192.0.2.1", "127.0.0.1", X_Forwarded_For="127.0.0.1") == "192.0.2.1"


def test_a_bad_trusted_proxy_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="SCE_TRUSTED_PROXIES"):
        Settings(trusted_proxies="not-an-address")  # type: ignore[arg-type]
