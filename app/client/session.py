"""Sessions (protocol v3): one sandbox, and the interpreter in it, kept for a sequence of runs.

    async with client.session() as session:          # POST /sessions; DELETE when the block ends
        await session.run("import math\\nx = 41")
        result = await session.run("x + 1")           # result.result == "42"

Each run in a session is an ordinary run (``AsyncRun``: awaited for its ``Execution``, or
iterated for its frames, with the same callbacks); its frame carries the session's id and
token. ``alive`` turns False once a run's ``exit`` says the session is gone (``oom``, or an
interrupt that did not stop the program).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import httpx

from app.client.aio import AsyncClient, AsyncRun
from app.client.answers import raise_for_error
from app.client.errors import ClientError, ConnectionLost, RunNotFound
from app.client.requests import Files, file_list, run_frame
from app.client.result import Callback, Callbacks
from app.protocol import SessionCreated, SessionInfo, SessionLimits


class AsyncSession:
    """A session on one server: ``open()`` (or ``async with``) makes it, ``close()`` ends it."""

    def __init__(self, client: AsyncClient, *, runtime: str | None = None, files: Files | None = None) -> None:
        self._client = client
        self._body: dict[str, Any] = {}
        if runtime is not None:
            self._body["runtime"] = runtime
        listed = file_list(files)
        if listed is not None:
            self._body["files"] = listed
        self.created: SessionCreated | None = None
        self.alive = False

    @property
    def id(self) -> str | None:
        return self.created.id if self.created else None

    @property
    def runtime(self) -> str | None:
        return self.created.runtime if self.created else None

    @property
    def limits(self) -> SessionLimits | None:
        return self.created.limits if self.created else None

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> Self:
        """``POST /sessions``; does nothing once made."""
        if self.created is None:
            response = await self._request("POST", "/sessions", json=self._body)
            if response.status_code == 404 and "json" not in response.headers.get("content-type", ""):
                raise ClientError(
                    f"{self._client.base_url} does not offer sessions (POST /sessions answered 404): "
                    "it predates protocol v3; run without a session"
                )
            raise_for_error(response)
            self.created = SessionCreated.model_validate(response.json())
            self.alive = True
        return self

    async def info(self) -> SessionInfo:
        """``GET /sessions/{id}``: its state, runs so far, expiry and memory."""
        response = await self._request("GET", f"/sessions/{self._made().id}", headers=self._token())
        raise_for_error(response)
        return SessionInfo.model_validate(response.json())

    async def close(self) -> None:
        """``DELETE /sessions/{id}`` (a run in progress ends as ``killed``). Safe to call twice."""
        if self.created is None or not self.alive:
            self.alive = False
            return
        self.alive = False
        response = await self._request("DELETE", f"/sessions/{self.created.id}", headers=self._token())
        try:
            raise_for_error(response)
        except RunNotFound:
            pass  # it had ended already (expired, or its kernel died)

    def run(
        self,
        code: str,
        *,
        stdin: str | None = None,
        files: Files | None = None,
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
    ) -> AsyncRun:
        """A run in this session: ``await`` it for its ``Execution`` (``result`` holds the last
        expression's repr), or iterate its frames. The session must be open."""
        made = self._made()
        frame = run_frame(
            code=code, stdin=stdin, files=files, timeout=timeout, filename=filename, stats=stats,
            session=made.id, session_token=made.token,
        )  # fmt: skip
        callbacks = Callbacks(on_stdout, on_stderr, on_image, on_file, on_input, on_result, self._watch_exit(on_exit))
        return AsyncRun(self._client, frame, callbacks=callbacks, on_notice=on_notice)

    start = run

    def _watch_exit(self, on_exit: Callback | None) -> Callback:
        async def seen(execution: Any) -> None:
            if execution.session_alive is False:
                self.alive = False
            if on_exit is not None:
                outcome = on_exit(execution)
                if outcome is not None:
                    await outcome

        return seen

    def _made(self) -> SessionCreated:
        if self.created is None:
            raise ClientError("the session is not open yet: use `async with client.session() as s` or `await s.open()`")
        if not self.alive:
            raise ClientError(f"session {self.created.id} has ended; make a new one")
        return self.created

    def _token(self) -> dict[str, str]:
        return {"X-Session-Token": self.created.token} if self.created else {}

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConnectionLost(f"{method} {path} failed: {exc}") from exc
