"""The kernel's own word on an OOM kill under cgroup v1, where the container's counter dies with it.

cgroup v1 counts OOM kills only in the container's own memory cgroup (``memory.oom_control``'s
``oom_kill``), which the runtime removes as the container exits. The engine's ``OOMKilled`` flag
is containerd relaying the kernel's OOM event, and containerd drops an event whose cgroup is
already gone, so under load an OOM can come back as a plain exit 137. The peak is no verdict
either: a program can fill its memory to the limit and call ``os._exit(137)``.

So the server registers an eventfd of its own on the container's ``memory.oom_control``
(``cgroup.event_control``) once the sandbox has started. The kernel signals it when the cgroup
goes out of memory, and once more when the cgroup is removed: after the container has exited and
its cgroup is gone, a count of two or more is an OOM, one is not (measured here: 2 for a
512 MiB allocation against 64 MiB, 1 for ``os._exit(137)`` at 60 of 64 MiB; the same under
gVisor, whose sentry the kernel kills). While the cgroup still exists its own counter is read
instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from app.sandbox.docker.cgroups import read_key


def _set(readable: asyncio.Future[None]) -> None:
    if not readable.done():
        readable.set_result(None)


class OomWatch:
    """One container's OOM events; ``close()`` releases the eventfd (the kernel drops the event
    with the cgroup)."""

    def __init__(self, leaf: str) -> None:
        """``leaf``: the container's own memory cgroup directory. Raises ``OSError`` where the
        kernel refuses (no v1 memory controller there, or not ours to write)."""
        self.leaf = leaf
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.count = 0
        try:
            control = os.open(os.path.join(leaf, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
            try:
                registry = os.open(os.path.join(leaf, "cgroup.event_control"), os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(registry, f"{self.fd} {control}".encode())
                finally:
                    os.close(registry)
            finally:
                os.close(control)  # the kernel keeps what it needs of it: the eventfd alone
        except BaseException:
            os.close(self.fd)
            raise

    def _drain(self) -> int:
        with contextlib.suppress(BlockingIOError):
            self.count += os.eventfd_read(self.fd)
        return self.count

    async def died_of_oom(self, wait_s: float) -> bool | None:
        """After the container has exited: True for an OOM, False for none, None when the kernel
        has said nothing within ``wait_s`` (no signal at all yet: not a verdict).

        A count of one with the cgroup gone may be the OOM whose removal signal has not come yet,
        so it waits up to ``wait_s`` for a second; only a SIGKILL the server did not send asks."""
        count = self._drain()
        kills = read_key(os.path.join(self.leaf, "memory.oom_control"), b"oom_kill")  # the cgroup still there
        if kills is not None:
            return kills > 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while count < 2:
            left = deadline - loop.time()
            if left <= 0:
                break
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.fd, _set, readable)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(readable, left)
            finally:
                loop.remove_reader(self.fd)
            count = self._drain()
        if count >= 2:
            return True
        return False if count == 1 else None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
