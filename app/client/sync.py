"""The blocking client: the asyncio client driven on a private event loop thread.

    with Client("http://127.0.0.1:5000") as client:
        result = client.run("print(2 + 2)", on_stdout=print)   # an Execution, once the run is over
        with client.start("print(input() * 2)") as run:       # the frames, live
            run.stdin("ab\\n", eof=True)
            for frame in run:
                ...

Everything the async client does (resume after a drop, deduplication, the exception tree) holds
here too: each call runs the async one on the client's own loop and waits for it. ``stdin()`` and
``kill()`` may be called from any thread, also while another thread is iterating. Callbacks
run on the client's loop thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Self, TypeVar

from app.client.aio import DEFAULT_RECONNECT, AsyncClient, AsyncRun, Reconnect
from app.client.requests import Files
from app.client.result import Callback, Execution
from app.client.session import AsyncSession
from app.protocol import ExitFrame, RunAnswer, RuntimeInfo, ServerFrame, SessionInfo, StartedFrame

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
        filename: str | None = None,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_image: Callback | None = None,
        on_file: Callback | None = None,
        on_input: Callback | None = None,
        on_result: Callback | None = None,
        on_exit: Callback | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> Execution:
        """Run ``code`` to its end and give everything it produced; callbacks see it as it comes."""
        return self.start(
            code, stdin=stdin, files=files, runtime=runtime, timeout=timeout, filename=filename,
            on_stdout=on_stdout, on_stderr=on_stderr, on_image=on_image, on_file=on_file, on_input=on_input,
            on_result=on_result, on_exit=on_exit, on_notice=on_notice,
        ).wait()  # fmt: skip

    def start(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        runtime: str | None = None,
        timeout: float | None = None,
        filename: str | None = None,
        stats: bool = False,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_image: Callback | None = None,
        on_file: Callback | None = None,
        on_input: Callback | None = None,
        on_result: Callback | None = None,
        on_exit: Callback | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> Run:
        """A live run, started on first use: iterate it for its frames, send ``stdin``, ``kill`` it."""
        arun = self._aio.run(
            code, stdin=stdin, files=files, runtime=runtime, timeout=timeout, filename=filename, stats=stats,
            on_stdout=on_stdout, on_stderr=on_stderr, on_image=on_image, on_file=on_file, on_input=on_input,
            on_result=on_result, on_exit=on_exit, on_notice=on_notice,
        )  # fmt: skip
        return Run(self, arun)

    def watch(
        self,
        run_id: str,
        token: str,
        *,
        on_stdout: Callback | None = None,
        on_stderr: Callback | None = None,
        on_image: Callback | None = None,
        on_file: Callback | None = None,
        on_input: Callback | None = None,
        on_exit: Callback | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> Run:
        """Another run, read-only: iterate it, or ``wait()`` for its ``Execution``."""
        arun = self._aio.watch(
            run_id, token, on_stdout=on_stdout, on_stderr=on_stderr, on_image=on_image, on_file=on_file,
            on_input=on_input, on_exit=on_exit, on_notice=on_notice,
        )  # fmt: skip
        return Run(self, arun)

    def session(self, *, runtime: str | None = None, files: Files | None = None) -> Session:
        """A session (v3): one sandbox kept for a sequence of runs. Made now; ``close()`` (or
        leaving ``with``) ends it."""
        session = Session(self, self._aio.session(runtime=runtime, files=files))
        self.call(session._asession.open())
        return session

    def post_run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
        runtime: str | None = None,
        timeout: float | None = None,
        filename: str | None = None,
    ) -> RunAnswer:
        """``POST /run``'s raw answer (``run`` gives the nicer ``Execution``)."""
        return self.call(
            self._aio.post_run(code, stdin=stdin, files=files, runtime=runtime, timeout=timeout, filename=filename)
        )

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

    def wait(self) -> Execution:
        """Follow the run to its end and give its ``Execution``."""
        return self._client.call(self._arun.wait())

    @property
    def execution(self) -> Execution:
        """What the run produced so far."""
        return self._arun.execution

    @property
    def notices(self) -> list[str]:
        """What was said about the connection (dropped, resumed)."""
        return self._arun.notices

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


class Session:
    """The blocking face of an ``AsyncSession``: ``run()`` gives an ``Execution``, ``start()`` a ``Run``."""

    def __init__(self, client: Client, asession: AsyncSession) -> None:
        self._client = client
        self._asession = asession

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(self, code: str, **kwargs: Any) -> Execution:
        """Run ``code`` in the session to its end (``result`` holds its last expression's repr).

        Takes what ``Client.run`` takes, less ``runtime`` (the session's)."""
        return Run(self._client, self._asession.run(code, **kwargs)).wait()

    def start(self, code: str, **kwargs: Any) -> Run:
        """A live run in the session, as ``Client.start``."""
        return Run(self._client, self._asession.run(code, **kwargs))

    def info(self) -> SessionInfo:
        return self._client.call(self._asession.info())

    def close(self) -> None:
        self._client.call(self._asession.close())

    @property
    def id(self) -> str | None:
        return self._asession.id

    @property
    def runtime(self) -> str | None:
        return self._asession.runtime

    @property
    def alive(self) -> bool:
        return self._asession.alive
