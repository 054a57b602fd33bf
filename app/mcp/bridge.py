"""``sce mcp --url URL [--token T]``: the server's MCP tools over stdio, for agents that only
start local tool servers.

A stdio MCP server whose every tool call is forwarded to the server's ``/mcp`` by the SDK's own
client, so the tools, their results, their progress notifications and their limits are exactly
the server's: nothing is re-implemented here. The forwarding connection uses the handshake-era
protocol (2025-11-25), whose MCP session is what ``keep_state`` belongs to: one ``sce mcp``
process is one agent conversation. It is opened on first use and again after it breaks, so the
agent can start before the server does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx2
import mcp_types as mt
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

MODE = "legacy"  # the handshake era: an MCP session, which keep_state needs
CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 600.0  # a tool call answers when its run ends: the queue plus the longest run, with room

log = logging.getLogger("sce.mcp")


async def serve_stdio(url: str, token: str | None) -> None:
    remote = Remote(url, token)
    server = remote.server()
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await remote.close()


class Remote:
    """The one forwarding connection to the server's ``/mcp``, held by a task of its own (the SDK's
    client is entered and left in one task) and opened again after it breaks."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client: Client | None = None
        self._stop: asyncio.Event | None = None
        self._holder: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.refusal: str | None = None  # the server's last refusal (401, 403...), said with the error

    async def _note_refusal(self, response: httpx2.Response) -> None:
        """The SDK reports a refused request without its status: keep what the server said."""
        if response.status_code < 400:
            return
        await response.aread()
        try:
            said = response.json().get("error")
        except ValueError:
            said = None
        if isinstance(said, dict):  # a JSON-RPC error object
            said = said.get("message")
        self.refusal = f"the server answered {response.status_code}" + (f": {said}" if isinstance(said, str) else "")

    def server(self) -> Server[Any]:
        return Server(
            "safe-code-executor",
            title="Safe Code Executor (via sce mcp)",
            instructions=f"Runs Python programs in locked-down sandboxes on {self.url}.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    async def _connected(self) -> Client:
        async with self._lock:
            if self._client is not None and self._holder is not None and not self._holder.done():
                return self._client
            await self.close()
            return await self._open()

    async def _open(self) -> Client:
        self.refusal = None
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def hold() -> None:
            try:
                timeout = httpx2.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S)
                hooks = {"response": [self._note_refusal]}
                http = httpx2.AsyncClient(headers=self.headers, timeout=timeout, event_hooks=hooks)
                transport = streamable_http_client(self.url, http_client=http)
                async with http, Client(transport, mode=MODE) as client:
                    ready.set_result(client)
                    await stop.wait()
            except Exception as exc:  # it failed or broke: the next call opens a new one
                if not ready.done():
                    ready.set_exception(exc)
                else:
                    log.warning("the connection to %s broke: %s", self.url, exc)

        self._stop = stop
        self._holder = asyncio.create_task(hold(), name="sce-mcp-remote")
        try:
            self._client = await asyncio.wait_for(asyncio.shield(ready), CONNECT_TIMEOUT_S)
        except BaseException:
            await self.close()
            raise
        return self._client

    async def close(self) -> None:
        self._client = None
        if self._stop is not None:
            self._stop.set()
        if self._holder is not None:
            with contextlib.suppress(BaseException):
                await self._holder
        self._stop = self._holder = None

    def _unreachable(self, exc: BaseException) -> str:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # the task group's: say the cause
            exc = exc.exceptions[0]
        return f"cannot reach the code server at {self.url}: {self.refusal or str(exc) or type(exc).__name__}"

    async def _list_tools(
        self, rctx: ServerRequestContext[Any, Any], params: mt.PaginatedRequestParams | None
    ) -> mt.ListToolsResult:
        try:
            listed = await (await self._connected()).list_tools()
        except MCPError:
            raise
        except Exception as exc:
            await self.close()
            raise MCPError(code=mt.INTERNAL_ERROR, message=self._unreachable(exc)) from exc
        return mt.ListToolsResult(tools=listed.tools)

    async def _call_tool(
        self, rctx: ServerRequestContext[Any, Any], params: mt.CallToolRequestParams
    ) -> mt.CallToolResult:
        async def relay(progress: float, total: float | None, message: str | None) -> None:
            await rctx.session.report_progress(progress, total, message)

        try:
            client = await self._connected()
            return await client.call_tool(params.name, params.arguments or {}, progress_callback=relay)
        except MCPError:
            raise  # the server's own answer (an unknown tool...): passed on as it is
        except Exception as exc:
            await self.close()  # a broken connection: the next call opens a new one
            text = self._unreachable(exc)
            return mt.CallToolResult(
                content=[mt.TextContent(text=text)],
                structured_content={"error": text, "code": "unavailable"},
                is_error=True,
            )
