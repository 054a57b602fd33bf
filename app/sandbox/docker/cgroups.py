"""Exact resource figures from a cgroup the server creates and names as a sandbox's parent.

A container's own cgroup vanishes when it exits, taking its counters with it. A parent cgroup
this server makes (``/sce-<pid>-<start>-<random>``, passed as the container's ``cgroup_parent``)
holds the container's cgroup, so its hierarchical counters cover everything the sandbox ran,
gVisor's sandbox process included, and they survive the exit and the container's removal: the
final figures are read there, then the directories are removed (one per controller on cgroup v1).
On v1 an emptied parent is kept for a later sandbox instead (``reusable``): making and removing a
cgroup in a dozen hierarchies, by the server and the runtime, is CPU on every run.

This works only where the server sees the engine host's cgroup tree: a local engine with the
``cgroupfs`` driver, and a writable hierarchy mounted from its root. ``CgroupTree.detect`` says
whether it does; where it does not, the engine falls back to its stats API.

Every read here is a few small pseudo-files (tens of microseconds in all), made directly on the
event loop: a thread hop would cost more than the read.
"""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sce-"
MOUNTINFO = "/proc/self/mountinfo"
# The v1 controllers whose counters are read; the parent is made in these before the container
# starts (the runtime makes it in the others).
V1_READ = ("memory", "cpuacct", "pids")


@dataclass(frozen=True)
class Reading:
    """One look at a parent cgroup; ``None`` where the file is missing or unreadable."""

    cpu_ns: int | None
    memory_bytes: int | None
    memory_peak_bytes: int | None  # None on cgroup v2 kernels without memory.peak (< 5.19)
    pids: int | None


def _read_int(path: str) -> int | None:
    try:
        with open(path, "rb", buffering=0) as f:
            return int(f.read(64))
    except (OSError, ValueError):
        return None


def read_key(path: str, key: bytes) -> int | None:
    try:
        with open(path, "rb", buffering=0) as f:
            for line in f.read(4096).splitlines():
                name, _, value = line.partition(b" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def parent_name(pid: int, start: str | None, engine_tag: str = "") -> str:
    """A new parent's name: the owner server (pid and start time), the engine object that made it
    (a process may drive several), and 48 random bits."""
    return f"{PREFIX}{pid}-{start or 'x'}-{engine_tag}{secrets.token_hex(6)}"


def parent_owner(name: str) -> tuple[int, str] | None:
    """The (pid, start time) a parent's name carries, or None if it is not one of ours."""
    parts = name[len(PREFIX) :].split("-") if name.startswith(PREFIX) else []
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    return int(parts[0]), parts[1]


class CgroupTree:
    """The host's cgroup hierarchy, as this server sees it (v1: one mount per controller)."""

    def __init__(self, version: int, mounts: dict[str, str], all_mounts: list[str]) -> None:
        self.version = version
        self.mounts = mounts  # v1: controller -> mount point; v2: {"": root}
        self.all_mounts = all_mounts  # every hierarchy a runtime makes the parent in
        if version == 1:
            self._memory, self._cpuacct, self._pids = (mounts[c] for c in V1_READ)
        else:
            self._memory = self._cpuacct = self._pids = mounts[""]
            self.has_peak = True  # settled on the first reading

    # -- discovery -------------------------------------------------------------------------------
    @classmethod
    def from_mountinfo(cls, version: int, text: str) -> CgroupTree | None:
        """The hierarchies mounted from their root; None when one needed is missing."""
        v1: dict[str, str] = {}
        v2: str | None = None
        every: list[str] = []
        for line in text.splitlines():
            left, _, right = line.partition(" - ")
            fields, extra = left.split(), right.split()
            if len(fields) < 5 or len(extra) < 3 or fields[3] != "/":
                continue  # a sub-tree (a container's namespaced view) is not the engine's tree
            mount_point, fstype = fields[4], extra[0]
            if fstype == "cgroup2":
                v2 = mount_point
                every.append(mount_point)
            elif fstype == "cgroup":
                every.append(mount_point)
                for option in extra[2].split(","):
                    v1.setdefault(option, mount_point)
        if version == 1 and all(c in v1 for c in V1_READ):
            return cls(1, {c: v1[c] for c in V1_READ}, every)
        if version == 2 and v2 is not None:
            return cls(2, {"": v2}, [v2])
        return None

    @classmethod
    def detect(cls, *, local: bool, driver: str | None, version: str | None) -> tuple[CgroupTree | None, str]:
        """The tree if the engine's sandboxes can be measured here, and a word on why (not)."""
        if not local:
            return None, "remote engine"
        if driver != "cgroupfs":
            return None, f"cgroup driver {driver}"
        if version not in ("1", "2"):
            return None, f"cgroup version {version}"
        try:
            text = Path(MOUNTINFO).read_text()
        except OSError:
            return None, "no mountinfo"
        tree = cls.from_mountinfo(int(version), text)
        if tree is None:
            return None, "the engine's cgroup hierarchy is not mounted here"
        if not all(os.access(p, os.W_OK) for p in tree.mounts.values()):
            return None, "the cgroup hierarchy is not writable"
        return tree, f"cgroup v{version}"

    # -- one parent -------------------------------------------------------------------------------
    def create(self, name: str) -> None:
        """Make the parent where it is read (the runtime makes the rest, on v1)."""
        for mount in self.mounts.values():
            os.makedirs(os.path.join(mount, name), exist_ok=True)

    def memory_leaf(self, name: str, container_id: str) -> str:
        """The container's own memory cgroup under the parent (it vanishes as the container exits)."""
        return os.path.join(self._memory, name, container_id)

    def holds(self, name: str, container_id: str) -> bool:
        """Whether the runtime put the container's cgroup under the parent (checked once per start)."""
        return os.path.isdir(self.memory_leaf(name, container_id))

    def read(self, name: str) -> Reading:
        if self.version == 1:
            return Reading(
                cpu_ns=_read_int(f"{self._cpuacct}/{name}/cpuacct.usage"),
                memory_bytes=_read_int(f"{self._memory}/{name}/memory.usage_in_bytes"),
                memory_peak_bytes=_read_int(f"{self._memory}/{name}/memory.max_usage_in_bytes"),
                pids=_read_int(f"{self._pids}/{name}/pids.current"),
            )
        base = f"{self._memory}/{name}"
        usec = read_key(f"{base}/cpu.stat", b"usage_usec")
        peak = _read_int(f"{base}/memory.peak") if self.has_peak else None
        if peak is None and os.path.isdir(base) and not os.path.exists(f"{base}/memory.peak"):
            self.has_peak = False  # an older kernel: the caller tracks the maximum of the samples
        return Reading(
            cpu_ns=None if usec is None else usec * 1000,
            memory_bytes=_read_int(f"{base}/memory.current"),
            memory_peak_bytes=peak,
            pids=_read_int(f"{base}/pids.current"),
        )

    def oom_kills(self, name: str) -> int | None:
        """OOM kills under the parent, where the kernel counts them hierarchically (cgroup v2's
        ``memory.events``); None on v1, whose counter stays in the container's own cgroup."""
        if self.version == 1:
            return None
        return read_key(f"{self._memory}/{name}/memory.events", b"oom_kill")

    # -- reuse (cgroup v1) --------------------------------------------------------------------------
    @property
    def reusable(self) -> bool:
        """Whether an emptied parent can serve another sandbox: on v1 its peak can be reset and its
        CPU is read against a base; v2's ``memory.peak`` and OOM count cannot be reset everywhere."""
        return self.version == 1

    def is_empty(self, name: str) -> bool:
        """No container cgroup left under the parent where it is read (the runtime removes a
        container's in every hierarchy when the container is removed)."""
        for mount in (self._memory, self._cpuacct):
            try:
                if any(e.is_dir() for e in os.scandir(os.path.join(mount, name))):
                    return False
            except OSError:
                return False
        return True

    def reset_peak(self, name: str, leftover_max: int) -> bool:
        """Ready an emptied v1 parent for its next sandbox: its peak restarts from what it holds
        now, which must be at most ``leftover_max`` bytes (else False: a fresh parent is made)."""
        base = f"{self._memory}/{name}"
        usage = _read_int(f"{base}/memory.usage_in_bytes")
        if usage is None or usage > leftover_max:
            return False
        try:
            with open(f"{base}/memory.max_usage_in_bytes", "wb", buffering=0) as f:
                f.write(b"0")
        except OSError:
            return False
        return True

    def remove(self, name: str) -> bool:
        """rmdir the parent in every hierarchy; False while one is still busy (try again later)."""
        done = True
        for mount in self.all_mounts:
            try:
                os.rmdir(os.path.join(mount, name))
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                done = False
        return done

    def parents(self) -> set[str]:
        """Every parent named like ours, in any hierarchy."""
        found: set[str] = set()
        for mount in self.all_mounts:
            try:
                found.update(e.name for e in os.scandir(mount) if e.name.startswith(PREFIX) and e.is_dir())
            except OSError:
                continue
        return found
