"""Who owns a sandbox, and when one has lost its server: pure decisions over labels and names.

Every container carries labels the server itself sets (never trust an image's: they reach every
container made from it), among them an owner naming one server process (``host:pid:start-time``)
and a lease. On a shared engine every server reaps, so a sandbox is an orphan only if its owner
is a process on this host, in this pid namespace, that no longer runs, or it has outlived its lease
(by the engine's clock, which covers servers on other hosts, or in other containers, without any
clock of theirs). A server in a container with its own pid namespace cannot see other servers'
pids: the owner id carries the namespace so that it never takes them for dead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from app.sandbox.docker.cgroups import parent_owner

LABEL_MANAGED = "sce.managed"
LABEL_OWNER = "sce.owner"
LABEL_POOL = "sce.pool"
LABEL_RUNTIME = "sce.runtime"
LABEL_INSTANCE = "sce.instance"  # a random id per server start: meaningful on any engine
LABEL_LEASE = "sce.lease_s"  # seconds after its creation past which any server may remove it
LEASE_MARGIN_S = 120


def process_start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_process_start_time = process_start_time  # the name tests and tools import


def pid_namespace(pid: int | str = "self") -> str | None:
    """The identity of ``pid``'s pid namespace (the inode of /proc/PID/ns/pid), or None if unknown."""
    try:
        return str(os.stat(f"/proc/{pid}/ns/pid").st_ino)
    except OSError:
        return None


def owner_id(pid: int | None = None) -> str:
    """``host:pid:start-time:pid-namespace`` names one server process for as long as it lives."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid)}:{pid_namespace(pid)}"


def owner_is_alive(
    owner: str,
    *,
    host: str | None = None,
    namespace: str | None = None,
    start_time: Callable[[int], str | None] = process_start_time,
) -> bool:
    """An owner on this host and in this pid namespace is alive while its pid runs with the same
    start time.

    Owners on another host, or in another pid namespace (another server's container), cannot be
    checked from here and are assumed alive: their lease bounds them. An owner id without a
    namespace (``host:pid:start-time``, written before it had one) is taken as this namespace's.
    """
    parts = owner.split(":")
    if len(parts) == 3:
        owner_host, pid, start = parts
        owner_ns = None
    elif len(parts) == 4:
        owner_host, pid, start, owner_ns = parts
    else:
        return False
    if owner_host != (host if host is not None else socket.gethostname()):
        return True
    mine = namespace if namespace is not None else pid_namespace()
    if owner_ns is not None and owner_ns != mine:
        return True
    return pid.isdigit() and start_time(int(pid)) == start


def is_orphan(
    labels: Mapping[str, str], created: float, now: float, me: str, alive: Callable[[str], bool] = owner_is_alive
) -> bool:
    """Whether a listed container may be removed by server ``me``: one a server made (it has an
    owner) that is not ``me``'s, whose lease has run out by the engine's clock ``now`` or whose
    owner is known dead. Its own sandboxes are never orphans to a server."""
    owner = labels.get(LABEL_OWNER)
    if owner is None or owner == me:
        return False
    lease = labels.get(LABEL_LEASE, "")
    if lease.isdigit() and created + int(lease) < now:
        return True
    return not alive(owner)


def parent_is_stale(
    name: str,
    me: tuple[int, str],
    *,
    mine: bool,
    my_prefix: str,
    start_time: Callable[[int], str | None] = process_start_time,
) -> bool:
    """Whether a parent cgroup named ``name`` may be removed by server ``me`` (pid, start time):
    a dead server's, or with ``mine`` (this engine stopping) one of this engine's own. Never a live
    server's, and never another engine's of the same process."""
    owner = parent_owner(name)
    if owner is None:
        return False
    if mine and name.startswith(my_prefix):
        return True
    return owner != me and start_time(owner[0]) != owner[1]
