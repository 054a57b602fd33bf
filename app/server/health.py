"""``GET /healthz``: the engine's state, the server's load, and a shared deep probe.

Anyone may ask whether the server is ok; only an operator (the admin token, or a caller on the
server's own host: ``guards.check_admin``) sees why, with engine URLs, pools and load, or may
start a deep probe. The public answer is ``{"status"}`` alone, from the engine watchers' last
reading (asking no engine, like a balancer's check), so it costs nothing to ask often.

A deep probe runs a real program through the one run lifecycle (admission included), so it can
never start more sandboxes than a client could. Concurrent and frequent callers share one
result: at most one probe sandbox per ``health_probe_interval_s``, however many ask.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from app.errors import Busy
from app.protocol import RunRequest
from app.server.context import ServerContext

PROBE_CODE = "print(2 + 2)"
PROBE_TIMEOUT_S = 10.0
PROBE_CLIENT = "probe:healthz"


class Prober:
    """One probe at a time; its result is reused until it is ``interval_s`` old."""

    def __init__(self, ctx: ServerContext, interval_s: float) -> None:
        self.ctx = ctx
        self.interval_s = interval_s
        self._result: dict[str, Any] | None = None
        self._at = 0.0
        self._running: asyncio.Task[dict[str, Any]] | None = None
        self.probes_run = 0

    async def result(self) -> dict[str, Any]:
        if self._result is not None and time.monotonic() - self._at < self.interval_s:
            return {**self._result, "age_ms": round((time.monotonic() - self._at) * 1000)}
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._probe())
            self._running.add_done_callback(self._store)
        return {**await asyncio.shield(self._running), "age_ms": 0}

    def _store(self, task: asyncio.Task[dict[str, Any]]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._result = task.result()
            self._at = time.monotonic()

    async def _probe(self) -> dict[str, Any]:
        self.probes_run += 1
        started = time.monotonic()
        live = self.ctx.new_run(RunRequest(PROBE_CODE, timeout=PROBE_TIMEOUT_S), PROBE_CLIENT, "probe")
        live.start()
        output: list[str] = []
        async for entry in live.frames():
            if entry.kind == "stdout":
                output.append(json.loads(entry.text)["data"])
        ms = round((time.monotonic() - started) * 1000)
        if live.error is not None:
            if isinstance(live.error, Busy):
                return {"ok": None, "skipped": "every sandbox slot is busy", "ms": ms}
            return {"ok": False, "error": live.error.message, "ms": ms}
        ok = "".join(output) == "4\n" and live.exit is not None and live.exit.exit_code == 0
        return {"ok": ok, "ms": ms}


async def health_body(
    ctx: ServerContext, prober: Prober, *, deep: bool, balancer: bool = False, details: bool = True
) -> tuple[int, dict[str, Any]]:
    """200 while an engine answers and has the default image; 503 otherwise (the protocol's rule).

    ``balancer``: the form a load balancer's health check reads (``/healthz?balancer=1``): 503
    also while the server is draining or full (no free slot and the wait queue full), so new
    runs go to another server before this one would refuse them. ``reason`` says which.
    """
    service = await ctx.service.health(cached=balancer or not details)
    admission = ctx.admission
    free_slots = max(0, admission.max_running - admission.running)
    queue_free = max(0, admission.queue_size - admission.queued)
    ok = service.pop("ok")
    reason = None if ok else "engine"
    if balancer and reason is None:
        if ctx.draining:
            reason = "draining"
        elif free_slots == 0 and queue_free == 0:
            reason = "full"
    body: dict[str, Any] = {
        "status": "ok" if reason is None else "unavailable",
        **service,
        "active_runs": len(ctx.registry.active),
        "queued": admission.queued,
        "capacity": admission.max_running,
        "free_slots": free_slots,
        "queue_free": queue_free,
        "draining": ctx.draining,
    }
    if reason is not None:
        body["reason"] = reason
    if deep and reason is None:
        body["probe"] = await prober.result()
        if body["probe"]["ok"] is False:
            body["status"], body["reason"] = "unavailable", "probe"
    status = 200 if body["status"] == "ok" else 503
    if not details:
        return status, {"status": body["status"]}
    return status, body
