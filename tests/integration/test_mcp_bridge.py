"""``sce mcp``: the server's MCP tools over stdio, driven by the SDK's own client (``mcp.Client``
with ``StdioServerParameters``, which starts ``python -m app mcp`` as an agent would)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import mcp_types as mt
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.conftest import ROOT, ServerProcess, free_port, module_server

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

bridged = module_server({"SCE_POOL_SIZE": "1", "SCE_API_TOKENS": "t1"})


@asynccontextmanager
async def sce_mcp(*args: str) -> AsyncIterator[Client]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "app", "mcp", *args], env=env, cwd=str(ROOT))
    async with Client(params) as client:
        yield client


def text_of(result: mt.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, mt.TextContent)
    return first.text


async def test_the_tools_run_on_the_server_with_progress(bridged: ServerProcess) -> None:
    code = "import time\nprint('first', flush=True)\ntime.sleep(2)\nopen('f.txt', 'w').write('x')\n1/0"
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), message))

    async with sce_mcp("--url", bridged.url, "--token", "t1") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("run_python", {"code": code}, progress_callback=on_progress)
        answered = time.monotonic()
        runtimes = await client.call_tool("list_runtimes", {})
        await client.call_tool("run_python", {"code": "x = 41", "keep_state": True})
        kept = await client.call_tool("run_python", {"code": "x + 1", "keep_state": True})
        reset = await client.call_tool("reset_state", {})
    assert names == {"run_python", "reset_state", "list_runtimes"}
    assert result.is_error is True  # the ZeroDivisionError, as the server said it
    assert "first\n" in text_of(result) and "ZeroDivisionError" in text_of(result)
    assert any(isinstance(block, mt.EmbeddedResource) for block in result.content)  # f.txt, written before 1/0
    first = [at for at, message in seen if message and "first" in message]
    assert first and answered - first[0] > 1.0, f"the output did not arrive while the program ran: {seen}"
    assert runtimes.structured_content is not None and runtimes.structured_content["runtimes"][0]["name"] == "python"
    # one sce mcp process is one MCP session (the handshake era): its state is kept until reset
    assert kept.is_error is False and kept.structured_content is not None
    assert kept.structured_content["result"] == "42"
    assert reset.structured_content == {"reset": True}


async def test_without_the_token_the_server_refuses(bridged: ServerProcess) -> None:
    async with sce_mcp("--url", bridged.url) as client:
        with pytest.raises(MCPError, match="cannot reach the code server") as refused:
            await client.list_tools()
        result = await client.call_tool("run_python", {"code": "print(1)"})
    assert "the server answered 401: a valid API token is required" in str(refused.value)
    assert result.is_error is True and "cannot reach the code server" in text_of(result)


async def test_no_server_is_a_clear_tool_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with sce_mcp("--url", url) as client:
        result = await client.call_tool("run_python", {"code": "print(1)"})
    assert result.is_error is True
    assert text_of(result).startswith(f"cannot reach the code server at {url}/mcp")
