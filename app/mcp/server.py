"""The three tools on the server's own runs: the same lifecycle, limits and queue as ``POST /run``.

``run_python`` validates its arguments with ``POST /run``'s parser and runs through
``run_to_answer`` (admission, per-client share, rate limit, drain, metrics, the run's log line),
with ``transport`` "mcp". The caller is who the mount says it is (``client_of``): the same key
``POST /run`` would count it by (its API token's hash, or its address).
"""

from __future__ import annotations

import dataclasses
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import mcp_types as mt
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request

from app.errors import BadMessage, SCEError
from app.mcp import results
from app.mcp.state import NO_SESSIONS, KeptState, Owner, StateUnavailable
from app.protocol import RuntimeInfo, parse_run_fields
from app.server.context import ServerContext
from app.server.http_run import run_to_answer

SERVER_NAME = "safe-code-executor"
INSTRUCTIONS = (
    "Runs Python programs in locked-down sandboxes: run_python runs one and answers when it ends "
    "(output, how it ended, images, files written); list_runtimes says which interpreters and "
    "packages exist; keep_state keeps names between calls of this session, reset_state clears them."
)
NO_MCP_SESSION = (
    "keep_state needs an MCP session, and this request has none (protocol revision 2026-07-28 has no "
    "sessions): connect with revision 2025-06-18 or 2025-11-25, or run without keep_state"
)
MCP_SESSION_HEADER = "mcp-session-id"


def _version() -> str:
    try:
        return version(SERVER_NAME)
    except PackageNotFoundError:  # a checkout that was never installed
        return "0"


def client_of(request: Request) -> str:
    """The client key the mount put in the scope (as ``POST /run`` computes it)."""
    user = request.scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        raise RuntimeError("an MCP request that did not pass through the mount")
    return user.access_token.client_id


class McpTools:
    """The tool handlers, bound to one server's context and its kept state."""

    def __init__(self, ctx: ServerContext, state: KeptState) -> None:
        self.ctx = ctx
        self.state = state

    def server(self) -> Server[Any]:
        return Server(
            SERVER_NAME,
            version=_version(),
            title="Safe Code Executor",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    async def _list_tools(
        self, rctx: ServerRequestContext[Any, Any], params: mt.PaginatedRequestParams | None
    ) -> mt.ListToolsResult:
        return mt.ListToolsResult(tools=results.tools())

    async def _call_tool(
        self, rctx: ServerRequestContext[Any, Any], params: mt.CallToolRequestParams
    ) -> mt.CallToolResult:
        request = rctx.request
        if not isinstance(request, Request):
            raise MCPError(code=mt.INTERNAL_ERROR, message="the tools are served over HTTP only")
        client = client_of(request)
        # an MCP session id is honoured only where the SDK routed the request by it (the
        # handshake era): a 2026-07-28 request is served without looking at that header
        sessions = rctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
        mcp_session = request.headers.get(MCP_SESSION_HEADER) if sessions else None
        owner: Owner | None = (client, mcp_session) if mcp_session else None
        arguments = params.arguments or {}
        if params.name == results.RUN_PYTHON:
            return await self.run_python(rctx, client, owner, arguments)
        if params.name == results.RESET_STATE:
            return await self.reset_state(owner)
        if params.name == results.LIST_RUNTIMES:
            return await self.list_runtimes()
        raise MCPError(code=mt.INVALID_PARAMS, message=f"unknown tool {params.name!r}")

    async def run_python(
        self, rctx: ServerRequestContext[Any, Any], client: str, owner: Owner | None, arguments: dict[str, Any]
    ) -> mt.CallToolResult:
        ctx = self.ctx
        started = False
        printed = 0

        async def progress(stream: str, data: str) -> None:
            nonlocal printed
            printed += len(data)  # progress must grow: the characters printed so far
            await rctx.session.report_progress(printed, None, data)

        handle = None
        try:
            keep_state = arguments.get("keep_state", False)
            if not isinstance(keep_state, bool):
                raise BadMessage("'keep_state' must be true or false")
            fields = {name: arguments[name] for name in results.RUN_ARGUMENTS if name in arguments}
            run_request = parse_run_fields(fields, ctx.settings)
            if keep_state:
                if owner is None:
                    raise StateUnavailable(NO_MCP_SESSION if self.state.available else NO_SESSIONS)
                handle = await self.state.session_for(owner, run_request.runtime)
                run_request = dataclasses.replace(run_request, session=handle.id, session_token=handle.token)
            started = True
            answer = await run_to_answer(ctx, run_request, client, "mcp", on_output=progress)
        except SCEError as error:
            if not started:
                ctx.metrics.errors.labels(error.code).inc()  # a run's own errors are counted by the run
            if owner is not None and handle is not None and error.code == "not_found":
                self.state.forget(owner, handle)  # it ended meanwhile: the next call starts afresh
            return results.refusal(error)
        if owner is not None and handle is not None and answer.session_alive is False:
            self.state.forget(owner, handle)
        return results.run_result(answer)

    async def reset_state(self, owner: Owner | None) -> mt.CallToolResult:
        if owner is None:
            return results.text_result(
                "This connection has no MCP session, so it keeps no state: there was nothing to reset.",
                {"reset": False},
            )
        ended = await self.state.end(owner)
        text = (
            "Ended this session's interpreter: the next keep_state call starts with nothing defined."
            if ended
            else "There was no kept state to reset."
        )
        return results.text_result(text, {"reset": ended})

    async def list_runtimes(self) -> mt.CallToolResult:
        listing = [RuntimeInfo.model_validate(item).wire() for item in await self.ctx.service.runtime_list()]
        return results.text_result(json.dumps(listing, indent=1), {"runtimes": listing})
