"""The blocking client: the asyncio client driven on a private event loop thread.

    with Client("http://127.0.0.1:5000") as client:
        with client.run("print(input() * 2)") as run:
            run.stdin("ab\\n", eof=True)
            for frame in run:
                ...

Everything the async client does (resume after a drop, deduplication, the exception tree) holds
here too: each call runs the async one on the client's own loop and waits for it. ``stdin()`` and
``kill()`` may be called from any thread, also while another thread is iterating.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, Self, TypeVar

from app.client.aio import DEFAULT_RECONNECT, AsyncClient, AsyncRun, Reconnect
from app.client.requests import Files
from app.protocol import ExitFrame, RunAnswer, RuntimeInfo, ServerFrame, StartedFrame

T = TypeVar("T")


class Client:
    """One server, used from blocking code. Close it (or use ``with``) to stop its loop thread."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:5000",
        token: str | None = None,
        *,
        reconnect: Reconnect = DEFAULT_RECONNECT,
        open_timeout_s: float = 10.0,
        use_env_proxy: bool = False,
    ) -> None:
        self._aio = AsyncClient(
            url, token, reconnect=reconnect, open_timeout_s=open_timeout_s, use_env_proxy=use_env_proxy
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sce-client-loop", daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop and wait for its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.call(self._aio.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        runtime: str | None = None,
        timeout: float | None = None,
        stats: bool = False,
    ) -> Run:
        """A run, started on first use; iterate it for its frames."""
        arun = self._aio.run(code, stdin=stdin, files=files, runtime=runtime, timeout=timeout, stats=stats)
        return Run(self, arun)

    def watch(self, run_id: str, token: str) -> Run:
        return Run(self, self._aio.watch(run_id, token))

    def post_run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        runtime: str | None = None,
        timeout: float | None = None,
    ) -> RunAnswer:
        return self.call(self._aio.post_run(code, stdin=stdin, files=files, runtime=runtime, timeout=timeout))

    def runtimes(self) -> list[RuntimeInfo]:
        return self.call(self._aio.runtimes())


class Run:
    """The blocking face of an ``AsyncRun``: the same frames, the same exceptions."""

    def __init__(self, client: Client, arun: AsyncRun) -> None:
        self._client = client
        self._arun = arun

    def __enter__(self) -> Self:
        self._client.call(self._arun.open())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[ServerFrame]:
        return self

    def __next__(self) -> ServerFrame:
        try:
            return self._client.call(self._arun.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def stdin(self, data: str = "", *, eof: bool = False) -> None:
        self._client.call(self._arun.stdin(data, eof=eof))

    def kill(self) -> None:
        self._client.call(self._arun.kill())

    def close(self) -> None:
        self._client.call(self._arun.aclose())

    @property
    def id(self) -> str | None:
        return self._arun.id

    @property
    def token(self) -> str | None:
        return self._arun.token

    @property
    def watch_token(self) -> str | None:
        return self._arun.watch_token

    @property
    def started(self) -> StartedFrame | None:
        return self._arun.started

    @property
    def exit(self) -> ExitFrame | None:
        return self._arun.exit

    @property
    def resumes(self) -> int:
        return self._arun.resumes
