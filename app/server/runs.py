"""The one run lifecycle, shared by the WebSocket, ``POST /run`` and the deep health probe.

A ``LiveRun`` is owned by the server, not by a connection: it takes its admission slot, checks
that the server is not draining, binds a sandbox, registers itself, turns the run's events into
protocol frames, records its metrics and log line, and releases everything, in one task of its
own. Connections subscribe to it: the driver from its first frame, a resumed driver after a
sequence number, a watcher from ``started``. Frames are built from the protocol's models
(``app.server.frames``), serialized once and kept in order (bounded by the run's own output
limit, and its standard input by ``stdin_max_bytes``), so a subscriber that falls behind or comes
back later reads the same bytes. Standard input the run accepts is echoed to all of them as
``input`` frames (v3), in order with the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, NamedTuple

from app.core.events import Event, Exit, Input, Started
from app.errors import BadMessage, Internal, NotFound, SCEError, Unavailable
from app.protocol import QueuedFrame, RunRequest, StartedFrame
from app.sandbox.run import Run, StdinBuffer
from app.server import frames
from app.server.frames import SequencedFrame

if TYPE_CHECKING:
    from app.server.context import ServerContext

run_log = logging.getLogger("sce.run")
log = logging.getLogger(__name__)

Transport = Literal["websocket", "http", "mcp", "probe"]
CLOSE_NORMAL = 1000


def check_session(request: RunRequest) -> None:
    """A run in a session (v3) is checked when it starts, by ``ctx.sessions`` (an unknown or
    ended session, or a wrong token, is ``not_found`` there; a busy one ``session_busy``)."""


def token_hash(token: str) -> str:
    """How a secret appears anywhere it could be seen (logs, per-client keys): a short hash."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class Entry(NamedTuple):
    """One frame as sent: its sequence number, its type, its JSON text."""

    seq: int | None  # None: before ``started`` (queued, or an error that ended the run there); 0: started
    kind: str
    text: str


@dataclass(eq=False)
class LiveRun:
    ctx: ServerContext
    request: RunRequest
    client: str
    transport: Transport
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    watch_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    stdin: StdinBuffer = field(default_factory=StdinBuffer)

    def __post_init__(self) -> None:
        self.run: Run | None = None
        self.exit: Exit | None = None
        self.error: SCEError | None = None
        self.close_code: int | None = None  # set when the run is over
        self.started_public: str | None = None  # ``started`` as watchers see it (no token)
        self._entries: list[Entry] = []
        self._seq = 0
        self._changed = asyncio.Event()
        self._killed_early = False
        self._task: asyncio.Task[None] | None = None
        self.ended_at: float | None = None
        self.driver: object | None = None  # the connection driving it now (None: dropped, or HTTP)
        self.watchers = 0
        self.killing = False
        self._orphan_timer: asyncio.TimerHandle | None = None
        self._stdin_bytes = len(self.request.stdin.encode("utf-8", "surrogatepass")) if self.request.stdin else 0
        self._stdin_closed = False
        self._echo_pending: list[Input] = []  # input accepted before ``started``: echoed right after it

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drive(), name=f"run-{self.id}")

    @property
    def done(self) -> bool:
        return self.close_code is not None

    def kill(self) -> None:
        """Stop the program now; before it has started, the run ends as ``killed`` at once."""
        if self.done:
            return
        self.killing = True
        if self.run is not None and self.run.started_at is not None:
            self.run.kill()
        elif self._task is not None and not self._killed_early:
            self._killed_early = True
            self._task.cancel()

    def write_stdin(self, data: str | None, *, eof: bool = False) -> None:
        """Input for the program from its driver, echoed to everyone following the run (v3).

        What is not accepted is not echoed: anything after end of file, or a piece the buffer
        refuses (``BadMessage``). The total a run accepts is bounded, since it is kept to be
        echoed to watchers and resumed drivers.
        """
        if self._stdin_closed or self.exit is not None:
            return
        if data:
            size = len(data.encode("utf-8", "surrogatepass"))
            limit = self.ctx.settings.stdin_max_bytes
            if self._stdin_bytes + size > limit:
                raise BadMessage(f"this run has been sent more standard input than its limit of {limit} bytes")
            self.stdin.write(data)
            self._stdin_bytes += size
        if eof:
            self._stdin_closed = True
            self.stdin.close()
        if data or eof:
            self._echo(Input(data or "", eof))

    def _echo(self, event: Input) -> None:
        if self.started_public is None:
            self._echo_pending.append(event)
        else:
            self._publish_event(event)

    # -- who drives it and who watches ---------------------------------------------------------------
    def authorizes(self, token: str, *, watch: bool) -> bool:
        """Constant-time: the driver's token always; the watch token only to watch."""
        given = token.encode("utf-8", "surrogatepass")
        driver_ok = hmac.compare_digest(given, self.token.encode())
        watch_ok = hmac.compare_digest(given, self.watch_token.encode())
        return driver_ok or (watch and watch_ok)

    def attach_driver(self, connection: object) -> object | None:
        """``connection`` drives the run from now on; returns the one it takes over from, if any."""
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
            self._orphan_timer = None
        previous, self.driver = self.driver, connection
        return previous

    def driver_left(self, connection: object, *, dropped: bool) -> None:
        """A dropped driver (no close frame) leaves the run waiting ``resume_grace_s`` for a resume;
        a driver that closed, broke the protocol or stalled ends it at once (version 1's rule)."""
        if self.driver is not connection:
            return  # taken over already: the run has a new driver
        self.driver = None
        if self.done:
            return
        grace = self.ctx.settings.resume_grace_s
        if dropped and grace > 0:
            self._orphan_timer = asyncio.get_running_loop().call_later(grace, self._orphaned)
        else:
            self.kill()

    def _orphaned(self) -> None:
        self._orphan_timer = None
        if self.driver is None:
            log.info("run %s: nobody resumed it within the grace; killing it", self.id)
            self.kill()

    async def wait_done(self) -> None:
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(self._task)

    # -- the lifecycle ------------------------------------------------------------------------------
    async def _drive(self) -> None:
        ctx = self.ctx
        try:
            if self.transport != "probe":
                ctx.check_rate(self.client, self.request)
            if self.request.session is not None:
                # a session holds its sandbox and its slot: its runs do not queue (app.server.sessions)
                assert ctx.sessions is not None
                async with ctx.sessions.run(self) as session_run:
                    await self._follow(session_run)
            else:
                async with ctx.admission.slot(self.client, self._on_position):
                    if ctx.refusing:
                        raise Unavailable("the server is shutting down")
                    async with ctx.service.run(self.request, self.id, self.stdin) as run:
                        await self._follow(run)
            self._end(CLOSE_NORMAL)
        except asyncio.CancelledError:
            if not self._killed_early:
                self._end_with_error(Unavailable("the server stopped the run"))
                raise
            self.exit = Exit("killed", None, None, 0, 0, 0, False)
            self._append(None, frames.exit_frame(self.exit, None))
            self._end(CLOSE_NORMAL)
        except SCEError as error:
            self._end_with_error(error)
        except Exception as exc:  # a bug: the client still gets the protocol's answer
            log.exception("run %s failed", self.id)
            self._end_with_error(Internal(f"internal error: {type(exc).__name__}"))

    async def _follow(self, run: Run) -> None:
        self.run = run
        self.ctx.registry.activate(self)
        try:
            async for event in run.events():
                self._publish_event(event)
        finally:
            self.ctx.registry.deactivate(self)
            self.record()

    async def _on_position(self, position: int) -> None:
        self._append(None, frames.queued(position))

    def _publish_event(self, event: Event) -> None:
        if isinstance(event, Started):
            public = frames.started(event, token=None, watch_token=self.watch_token)
            self.started_public = public.model_dump_json()
            self._append(0, frames.started(event, token=self.token, watch_token=self.watch_token))
            # what reached the program before it started: the run frame's stdin first, then what
            # came while it was queued (the order the sandbox writes them in)
            if self.request.stdin:
                self._publish_event(Input(self.request.stdin, False))
            pending, self._echo_pending = self._echo_pending, []
            for echo in pending:
                self._publish_event(echo)
            return
        if isinstance(event, Exit):
            self.exit = event
        self._seq += 1
        self._append(self._seq, frames.sequenced(event, self._seq))

    def _append(self, seq: int | None, frame: QueuedFrame | StartedFrame | SequencedFrame) -> None:
        self._entries.append(Entry(seq, frame.type, frame.model_dump_json()))
        self._changed.set()

    def _end_with_error(self, error: SCEError) -> None:
        self.error = error
        self.ctx.metrics.errors.labels(error.code).inc()
        if self.started_public is not None:
            self._seq += 1
            self._append(self._seq, frames.error_frame(error, self._seq))
        else:
            self._append(None, frames.error_frame(error))
        self._end(error.close_code)

    def _end(self, close_code: int) -> None:
        self.close_code = close_code
        self.ended_at = time.monotonic()
        self._changed.set()
        self.ctx.registry.finished(self)

    # -- subscribers ----------------------------------------------------------------------------------
    async def frames(self, *, after: int | None = None, watcher: bool = False) -> AsyncIterator[Entry]:
        """Frames in order, live until the run is over.

        ``after`` None: everything (the driver from its run frame). ``after`` N: the frames with
        ``seq`` > N (a resume). ``watcher``: from ``started`` on, without its tokens.
        """
        index = 0
        while True:
            while index < len(self._entries):
                entry = self._entries[index]
                index += 1
                if after is None and not watcher:
                    yield entry
                elif entry.seq is None:
                    continue
                elif watcher and entry.seq == 0:
                    assert self.started_public is not None
                    yield entry._replace(text=self.started_public)
                elif watcher or entry.seq > (after or 0):
                    yield entry
            if self.done:
                return
            self._changed.clear()
            await self._changed.wait()

    # -- the record -----------------------------------------------------------------------------------
    def record(self) -> None:
        """Metrics and the one structured log line for a finished run (never a secret)."""
        run = self.run
        exit_ = run.exit if run is not None else None
        if run is None or exit_ is None:
            return
        m = self.ctx.metrics
        m.runs.labels(exit_.reason).inc()
        m.duration.observe(exit_.duration_ms / 1000)
        if run.first_output_at is not None and run.started_at is not None:
            m.first_output.observe(run.first_output_at - run.started_at)
        m.observe_usage(exit_, run.sandbox.spec.runtime)
        entry: dict[str, object] = {
            "event": "run",
            "id": self.id,
            "transport": self.transport,
            "client": self.client,
            "runtime": run.sandbox.spec.runtime,
            "reason": exit_.reason,
            "exit_code": exit_.exit_code,
            "signal": exit_.signal,
            "duration_ms": exit_.duration_ms,
            "stdout_bytes": exit_.stdout_bytes,
            "stderr_bytes": exit_.stderr_bytes,
            "truncated": exit_.truncated,
            "cpu_ms": exit_.cpu_ms,
            "memory_peak_bytes": exit_.memory_peak_bytes,
        }
        if self.ctx.settings.log_code:
            entry["code"] = self.request.code
        run_log.info(json.dumps(entry))


class RunRegistry:
    """Every run this server knows: the live ones, and finished ones kept for ``resume_grace_s``."""

    def __init__(self, keep_finished_s: float, on_forget: Callable[[], None] = lambda: None) -> None:
        self.keep_finished_s = keep_finished_s
        self.on_forget = on_forget  # a finished run let go: what it held (its frames) is freed now
        self.known: dict[str, LiveRun] = {}
        self.active: set[LiveRun] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def add(self, live: LiveRun) -> None:
        if live.transport == "websocket":  # only WebSocket runs hand out tokens to come back with
            self.known[live.id] = live

    def lookup(self, run_id: str, token: str, *, watch: bool) -> LiveRun:
        """The run this id and token open, or ``NotFound`` (unknown, expired and wrong token alike)."""
        live = self.known.get(run_id)
        if live is None or not live.authorizes(token, watch=watch):
            raise NotFound()
        return live

    def activate(self, live: LiveRun) -> None:
        self.active.add(live)
        self._idle.clear()

    def deactivate(self, live: LiveRun) -> None:
        self.active.discard(live)
        if not self.active:
            self._idle.set()

    def finished(self, live: LiveRun) -> None:
        if live.id in self.known:
            asyncio.get_running_loop().call_later(self.keep_finished_s, self._forget, live.id)

    def _forget(self, run_id: str) -> None:
        self.known.pop(run_id, None)
        self.on_forget()

    async def until_idle(self, seconds: float) -> None:
        if self.active:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._idle.wait()
