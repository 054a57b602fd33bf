"""The pure parts of sessions: the id's server prefix, times as RFC 3339, when a session ends."""

from __future__ import annotations

import re
from typing import Any

from app.server.sessions import Session, rfc3339, server_name


def test_the_id_prefix_names_the_server() -> None:
    assert server_name("web-1") == "web-1"
    assert re.fullmatch(r"[a-z0-9-]{1,32}", server_name(None))


def test_times_are_rfc3339_utc() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00Z"
    assert rfc3339(1_700_000_000.7) == "2023-11-14T22:13:20Z"


def test_a_session_ends_idle_after_its_last_run_or_at_its_lifetime() -> None:
    sandbox: Any = object()
    session = Session("s.1", "t", "python", "addr:x", sandbox, (), created_wall=1000.0, created=50.0, last_end=50.0)
    assert session.expires(idle_s=10, lifetime_s=100) == 60.0
    session.last_end = 145.0
    assert session.expires(idle_s=10, lifetime_s=100) == 150.0  # the lifetime comes first
    assert session.wall(60.0) == 1010.0
    assert not session.running
