"""Owners in another pid namespace (a server in its own container) are never taken for dead.

A server whose pid namespace is not the owner's cannot see the owner's pid: it must leave that
sandbox to its lease instead of reaping it (it once removed every other server's sandboxes on
a shared engine at its start). Pure decisions; the namespace of a real process is read once.
"""

from __future__ import annotations

import os

from app.sandbox.docker.ownership import owner_id, owner_is_alive, pid_namespace


def nobody(pid: int) -> str | None:
    return None  # no such pid visible here


def test_an_owner_in_another_pid_namespace_is_alive_even_if_its_pid_is_not_visible() -> None:
    assert owner_is_alive("here:7:123:4026531836", host="here", namespace="4026532999", start_time=nobody)


def test_an_owner_in_this_namespace_is_judged_by_its_pid() -> None:
    ns = "4026531836"
    assert not owner_is_alive(f"here:7:123:{ns}", host="here", namespace=ns, start_time=nobody)
    assert not owner_is_alive(f"here:7:123:{ns}", host="here", namespace=ns, start_time=lambda pid: "999")
    assert owner_is_alive(f"here:7:123:{ns}", host="here", namespace=ns, start_time=lambda pid: "123")


def test_old_owner_ids_without_a_namespace_are_read_as_this_namespace() -> None:
    assert not owner_is_alive("here:7:123", host="here", namespace="4026532999", start_time=nobody)
    assert owner_is_alive("here:7:123", host="here", namespace="4026532999", start_time=lambda pid: "123")
    assert owner_is_alive("elsewhere:7:123:1", host="here", namespace="2", start_time=nobody)
    assert not owner_is_alive("here:7", host="here", start_time=nobody)
    assert not owner_is_alive("here:7:123:1:extra", host="here", start_time=nobody)


def test_this_process_owner_id_names_its_namespace_and_is_alive() -> None:
    me = owner_id()
    _host, pid, start, ns = me.split(":")
    assert int(pid) == os.getpid() and start.isdigit() and ns == pid_namespace() and ns.isdigit()
    assert owner_is_alive(me)
    assert owner_id(os.getpid()) == me
