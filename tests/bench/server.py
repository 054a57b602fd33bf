"""The service under test: a real ``python -m app serve`` subprocess, and how to tell when it is idle.

"Idle" (settled) means the warm pool is full and every used sandbox has been removed. It is
read from the engine's event stream rather than by polling, so that waiting for it adds no work
to the server or the engine whose CPU time is being counted.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable

import docker
import httpx

from app.sandbox.docker.engine import LABEL_MANAGED, LABEL_OWNER, owner_id
from tests.bench.common import proc_cpu_s, proc_rss_kb
from tests.conftest import ServerProcess

_POOL_READY = re.compile(r"^sce_pool_ready (\S+)$", re.MULTILINE)


class ContainerWatch:
    """Live containers per owner label, kept from the engine's event stream by a background thread."""

    def __init__(self) -> None:
        self.api = docker.APIClient(timeout=None)
        self.state: dict[str, dict[str, str]] = {}  # owner -> container id -> created/running/exited
        self.history: list[tuple[str, str, str, float]] = []  # (owner, id, action, engine wall-clock time)
        self.cond = threading.Condition()
        self.stream = self.api.events(decode=True, filters={"type": "container", "label": f"{LABEL_MANAGED}=true"})
        self.thread = threading.Thread(target=self._follow, name="bench-events", daemon=True)
        self.thread.start()

    def _follow(self) -> None:
        with contextlib.suppress(Exception):
            for event in self.stream:
                owner = event.get("Actor", {}).get("Attributes", {}).get(LABEL_OWNER)
                cid, action = event.get("id"), event.get("Action") or event.get("status")
                if not owner or not cid:
                    continue
                with self.cond:
                    self.history.append((owner, cid, action, event.get("timeNano", 0) / 1e9))
                    mine = self.state.setdefault(owner, {})
                    if action == "create":
                        mine[cid] = "created"
                    elif action == "start":
                        mine[cid] = "running"
                    elif action == "die":
                        mine[cid] = "exited"
                    elif action == "destroy":
                        mine.pop(cid, None)
                    self.cond.notify_all()

    def events(self, owner: str, since: float, until: float) -> list[tuple[str, str, float]]:
        """(id, action, time) of ``owner``'s container events between two wall-clock times."""
        with self.cond:
            return [(cid, a, t) for o, cid, a, t in self.history if o == owner and since <= t <= until]

    def wait_for(self, owner: str, running: int, limit_s: float) -> bool:
        """Until ``owner`` has exactly ``running`` containers, all running; False on time-out."""

        def done() -> bool:
            mine = self.state.get(owner, {})
            return len(mine) == running and all(s == "running" for s in mine.values())

        with self.cond:
            return self.cond.wait_for(done, limit_s)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()
        with contextlib.suppress(Exception):
            self.api.close()


class _Process(ServerProcess):
    """The test harness's server process, stopped again if it never becomes ready."""

    def _wait_ready(self) -> None:
        try:
            super()._wait_ready()
        except BaseException:
            self.stop()
            raise


class BenchServer:
    def __init__(self, env: dict[str, str], pool_size: int) -> None:
        self.env = env
        self.pool_size = pool_size
        self.grows = int(env.get("SCE_POOL_MAX", "0")) > pool_size
        self.watch = ContainerWatch()
        try:
            self.proc = _Process(env)
        except BaseException:
            self.watch.close()
            raise
        self.pid = self.proc.proc.pid
        self.owner = owner_id(self.pid)
        self.ws_url = self.proc.ws_url
        self.url = self.proc.url
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.sessions = 0  # sessions open (each holds a running sandbox beside the pool)

    def expected(self) -> int:
        """Sandboxes waiting when idle: the pool's size, or its current target when it grows with
        demand (``SCE_POOL_MAX``; asked of the server, so only then)."""
        if not self.grows:
            return self.pool_size
        return int(self.http.get("/healthz").json()["pool"]["target"])

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)

    def rss_kb(self) -> int:
        return proc_rss_kb(self.pid)

    def pool_ready(self) -> float:
        m = _POOL_READY.search(self.http.get("/metrics").text)
        return float(m.group(1)) if m else -1.0

    def metric(self, name: str) -> float:
        """One unlabelled sample from the server's /metrics (NaN if absent)."""
        m = re.search(rf"^{re.escape(name)} (\S+)$", self.http.get("/metrics").text, re.MULTILINE)
        return float(m.group(1)) if m else float("nan")

    def settle(
        self, limit_s: float = 30.0, on_idle: Callable[[], None] | None = None, ask_server: bool = True
    ) -> float:
        """Block until the server is idle: the pool full (beside the open sessions' sandboxes) and
        every used sandbox removed. Returns the wait.

        ``on_idle`` is called once the engine is idle, before the server is asked about its pool
        (so a CPU reading taken there does not include that request). Without ``ask_server`` the
        server is not asked at all (while it is being profiled): a short pause stands in for it.
        """
        t0 = time.perf_counter()
        deadline = t0 + limit_s
        while True:
            if self.proc.proc.poll() is not None:
                raise RuntimeError(f"the server died:\n{self.proc.log()[-4000:]}")
            left = deadline - time.perf_counter()
            if left <= 0:
                raise RuntimeError(f"the server did not settle within {limit_s} s: {self.watch.state.get(self.owner)}")
            if self.watch.wait_for(self.owner, self.expected() + self.sessions, min(left, 1.0)):
                time.sleep(0.005)  # the start call's reply reaches the server just after the engine's event
                if on_idle is not None:
                    on_idle()
                    on_idle = None
                if not ask_server:
                    time.sleep(0.02)
                    return time.perf_counter() - t0
                if self.pool_ready() >= self.expected():
                    return time.perf_counter() - t0
                time.sleep(0.02)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.http.close()
        with contextlib.suppress(Exception):
            self.proc.stop()
        self.watch.close()
