"""Who the client is (the peer, or behind trusted proxies the first untrusted X-Forwarded-For hop),
which Host names are served, who sees the operator's details, and the browser cookie."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import Headers, MultiDict

from app.errors import BadMessage, Forbidden, Unauthorized
from app.server.cookies import ClientCookies
from app.server.guards import address_ceiling, check_admin, check_host, client_address, client_key
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


def test_a_clients_own_forwarded_header_never_wins() -> None:
    """Issue 30.9: a proxy that appends to X-Forwarded-For passes the client's Forwarded through;
    the address the proxy appended is the client's, whatever Forwarded says."""
    assert address("127.0.0.1", "127.0.0.1", Forwarded="for=6.6.6.6", X_Forwarded_For="203.0.113.5") == "203.0.113.5"
    assert address("127.0.0.1", "127.0.0.1", Forwarded="for=6.6.6.6") == "127.0.0.1"


def test_forwarded_hops_with_ports_and_ipv6() -> None:
    assert address("::1", "::1", X_Forwarded_For="[2001:db8::1]:4711") == "2001:db8::1"
    assert address("127.0.0.1", "127.0.0.0/8", X_Forwarded_For="198.51.100.2:1234") == "198.51.100.2"


def test_an_unreadable_hop_falls_back_to_the_peer() -> None:
    assert address("127.0.0.1", "127.0.0.1", X_Forwarded_For="unknown") == "127.0.0.1"


def test_an_untrusted_peer_is_the_client_whatever_it_says() -> None:
    assert address("192.0.2.1", "127.0.0.1", X_Forwarded_For="127.0.0.1") == "192.0.2.1"


def test_a_bad_trusted_proxy_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="SCE_TRUSTED_PROXIES"):
        Settings(trusted_proxies="not-an-address")  # type: ignore[arg-type]


# --- Host names (issue 30.5, DNS rebinding) ----------------------------------------------------------


def host_ok(host: str | None, **settings: str) -> bool:
    headers = Headers() if host is None else Headers([("Host", host)])
    try:
        check_host(headers, Settings(**settings))  # type: ignore[arg-type]
    except BadMessage:
        return False
    return True


def test_by_default_the_loopback_names_and_the_bind_host_are_served() -> None:
    for host in ("localhost", "localhost:5077", "127.0.0.1:5077", "[::1]:5077", "LOCALHOST", "[::1]"):
        assert host_ok(host), host
    assert host_ok("10.0.0.11:5000", bind="10.0.0.11:5000")
    assert not host_ok("evil.example:5077")
    assert not host_ok("127.0.0.1.evil.example")
    assert not host_ok("0.0.0.0:5000", bind="0.0.0.0:5000")  # a wildcard bind is not a name
    assert host_ok(None)  # no Host at all (HTTP/1.0, a balancer's check) is not a browser


def test_allowed_hosts_replace_the_defaults_and_star_allows_any() -> None:
    assert host_ok("sce.example.org", allowed_hosts="sce.example.org, other.example")
    assert host_ok("SCE.example.org:443", allowed_hosts="sce.example.org")
    assert not host_ok("localhost", allowed_hosts="sce.example.org")
    assert host_ok("[::1]:80", allowed_hosts="::1")
    assert host_ok("anything.example", allowed_hosts="*")


# --- the operator's details (issue 30.6) ---------------------------------------------------------------


def admin(peer: str, token: str | None = None, **headers: str) -> str:
    settings = Settings(admin_token=token)  # type: ignore[arg-type]
    try:
        check_admin(Headers([(k.replace("_", "-"), v) for k, v in headers.items()]), peer, settings)
    except Unauthorized:
        return "unauthorized"
    except Forbidden:
        return "forbidden"
    return "ok"


def test_without_an_admin_token_only_direct_local_callers_see_details() -> None:
    assert admin("127.0.0.1") == "ok" and admin("::1") == "ok"
    assert admin("203.0.113.9") == "forbidden"
    assert admin("127.0.0.1", X_Forwarded_For="203.0.113.9") == "forbidden"  # a proxy on this host
    assert admin("127.0.0.1", Forwarded="for=203.0.113.9") == "forbidden"


def test_with_an_admin_token_everyone_needs_it() -> None:
    assert admin("127.0.0.1", "s3cret") == "unauthorized"
    assert admin("203.0.113.9", "s3cret", Authorization="Bearer s3cret") == "ok"
    assert admin("203.0.113.9", "s3cret", Authorization="Bearer wrong") == "unauthorized"


# --- the browser cookie (issue 29.6) ------------------------------------------------------------------


def test_a_cookie_is_verified_by_its_signature() -> None:
    jar = ClientCookies("key-1")
    value = jar.issue()
    client_id = jar.verify(value)
    assert client_id is not None and len(client_id) == 32
    assert ClientCookies("key-1").verify(value) == client_id  # the same key on another server
    assert ClientCookies("key-2").verify(value) is None
    assert ClientCookies(None).verify(value) is None  # a random key per start
    forged = ("0" * 32) + value[32:]
    assert jar.verify(forged) is None and jar.verify("") is None and jar.verify("x.y") is None


def test_a_browser_is_keyed_by_its_cookie_under_its_address_ceiling() -> None:
    jar = ClientCookies("k")
    value = jar.issue()
    settings = Settings()
    key = client_key(Headers([("Cookie", f"a=b; sce_client={value}")]), MultiDict(), "198.51.100.7", settings, jar)
    assert key == f"cookie:{jar.verify(value)}@198.51.100.7"
    assert address_ceiling(key) == "ceiling:198.51.100.7"
    bare = client_key(Headers(), MultiDict(), "198.51.100.7", settings, jar)
    assert bare == "addr:198.51.100.7" and address_ceiling(bare) is None  # its own share bounds it
    bad = client_key(
        Headers([("Cookie", "sce_client=" + "0" * 32 + ".00")]), MultiDict(), "198.51.100.7", settings, jar
    )
    assert bad == "addr:198.51.100.7"
    tokens = Settings(api_tokens="t1")  # type: ignore[arg-type]
    token_key = client_key(
        Headers([("Authorization", "Bearer t1"), ("Cookie", f"sce_client={value}")]), MultiDict(), "x", tokens, jar
    )
    assert token_key.startswith("token:") and address_ceiling(token_key) is None


# --- configuration (issue 30.9) -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [" , ", ",", " ", ",,, ,"])
def test_a_token_list_that_holds_no_token_refuses_to_start(value: str) -> None:
    with pytest.raises(ValueError, match=r"SCE_API_TOKENS is set .* but holds no token"):
        Settings(api_tokens=value)  # type: ignore[arg-type]


def test_an_empty_token_list_is_no_tokens() -> None:
    assert Settings(api_tokens="").api_tokens == []  # type: ignore[arg-type]
    assert Settings(api_tokens=" a , b ").api_tokens == ["a", "b"]  # type: ignore[arg-type]


def test_no_host_or_an_empty_one_is_not_a_browser_and_is_served() -> None:
    """HAProxy's `option httpchk` sends HTTP/1.0 without Host, which hypercorn hands on as ``""``:
    refused, it took every server out of rotation once SCE_ALLOWED_HOSTS was set."""
    assert host_ok(None, allowed_hosts="sce.example.org")
    assert host_ok("", allowed_hosts="sce.example.org")
    assert not host_ok("evil.example", allowed_hosts="sce.example.org")
