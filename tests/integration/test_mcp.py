"""MCP at /mcp (PROTOCOL.md "MCP (v3)"), driven by the SDK's own client against a real server.

Every tool through ``mcp.Client`` over Streamable HTTP (the SDK's default negotiation, and the
handshake era that has MCP sessions), real hypercorn, real containers; the guards (Origin,
token, session ownership) through the SDK where it can speak, raw HTTP where it cannot.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp_types as mt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.sandbox.docker.engine import LABEL_LEASE, LABEL_OWNER
from tests.conftest import (
    ROOT,
    ServerFactory,
    ServerProcess,
    module_server,
    project_containers,
    server_containers,
    until,
)

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODES = ("auto", "legacy")  # auto: the SDK's default (2026-07-28, no MCP session); legacy: 2025-11-25
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

mcp_server = module_server({"SCE_POOL_SIZE": "1", "SCE_PER_CLIENT_RUNS": "8", "SCE_TIMEOUT_MAX_S": "20"})
guarded = module_server({"SCE_API_TOKENS": "t1,t2", "SCE_ALLOWED_ORIGINS": "http://ok.test", "SCE_POOL_SIZE": "0"})


@asynccontextmanager
async def connect(url: str, *, mode: str = "auto", headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(url + "/mcp", http_client=http), mode=mode) as client:
        yield client


async def post(base: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """One raw HTTP request to /mcp, for what the SDK's client cannot be made to send."""
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(base + "/mcp", json=body, headers=headers)


def text_of(result: mt.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, mt.TextContent)
    return first.text


@pytest.mark.parametrize("mode", MODES)
async def test_lists_the_three_tools(mcp_server: ServerProcess, mode: str) -> None:
    async with connect(mcp_server.url, mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"run_python", "reset_state", "list_runtimes"}
    run = tools["run_python"]
    assert run.input_schema["required"] == ["code"]
    assert set(run.input_schema["properties"]) == {"code", "runtime", "stdin", "timeout", "files", "keep_state"}
    assert run.output_schema is not None and "exit_code" in run.output_schema["properties"]


@pytest.mark.parametrize("mode", MODES)
async def test_run_python_answers_output_and_how_it_ended(mcp_server: ServerProcess, mode: str) -> None:
    async with connect(mcp_server.url, mode=mode) as client:
        result = await client.call_tool("run_python", {"code": "print(input() * 2)", "stdin": "ab\n"})
    assert result.is_error is False
    text = text_of(result)
    assert text.startswith("abab\n")
    assert text.splitlines()[-1].startswith("[the program exited with code 0")
    answer = result.structured_content
    assert answer is not None
    assert (answer["output"], answer["stdout"], answer["exit_code"], answer["reason"]) == (
        "abab\n",
        "abab\n",
        0,
        "exit",
    )


async def test_an_exception_is_an_error_with_its_traceback(mcp_server: ServerProcess) -> None:
    async with connect(mcp_server.url) as client:
        result = await client.call_tool("run_python", {"code": "print('before')\n{}['missing']"})
    assert result.is_error is True
    text = text_of(result)
    assert "before\n" in text and "Traceback (most recent call last)" in text and "KeyError: 'missing'" in text
    assert re.search(r"code 1\b", text.splitlines()[-1])
    assert result.structured_content is not None and result.structured_content["exit_code"] == 1


async def test_a_timeout_says_so_and_is_an_error(mcp_server: ServerProcess) -> None:
    async with connect(mcp_server.url) as client:
        result = await client.call_tool("run_python", {"code": "while True: pass", "timeout": 1})
    assert result.is_error is True
    assert "timed out" in text_of(result).splitlines()[-1]
    assert result.structured_content is not None and result.structured_content["reason"] == "timeout"


async def test_a_file_written_is_an_embedded_resource(mcp_server: ServerProcess) -> None:
    code = "open('out/report.txt', 'w').write('total: 42\\n')\nopen('raw.bin', 'wb').write(bytes(range(4)))"
    files = [{"path": "out/keep.txt", "content": "in"}]
    async with connect(mcp_server.url) as client:
        result = await client.call_tool("run_python", {"code": code, "files": files})
    assert result.is_error is False, text_of(result)
    resources = {
        block.resource.uri: block.resource for block in result.content if isinstance(block, mt.EmbeddedResource)
    }
    report = resources["sce://files/out/report.txt"]
    assert isinstance(report, mt.TextResourceContents) and report.text == "total: 42\n"
    raw = resources["sce://files/raw.bin"]
    assert isinstance(raw, mt.BlobResourceContents) and base64.b64decode(raw.blob) == bytes(range(4))
    assert result.structured_content is not None
    listed = {item["path"]: item for item in result.structured_content["files"]}
    assert set(listed) == {"out/report.txt", "raw.bin"}  # the file sent in, unchanged, is not sent back
    assert all("data" not in item for item in listed.values())  # bytes are in the contents only


async def test_an_image_from_the_scientific_runtime(mcp_server: ServerProcess) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()\nprint('shown')"
    async with connect(mcp_server.url) as client:
        result = await client.call_tool("run_python", {"code": code, "runtime": "scientific"})
    assert result.is_error is False, text_of(result)
    images = [block for block in result.content if isinstance(block, mt.ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(PNG_MAGIC)
    assert result.structured_content is not None
    [image] = result.structured_content["images"]
    assert image["mime"] == "image/png" and image["width"] > 0 and "data" not in image


@pytest.mark.parametrize("mode", MODES)
async def test_progress_arrives_while_the_program_still_runs(mcp_server: ServerProcess, mode: str) -> None:
    code = "import sys, time\nprint('first', flush=True)\ntime.sleep(2)\nprint('second')"
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((time.monotonic(), message))

    async with connect(mcp_server.url, mode=mode) as client:
        result = await client.call_tool("run_python", {"code": code}, progress_callback=on_progress)
        answered = time.monotonic()
    assert result.is_error is False
    first = [at for at, message in seen if message and "first" in message]
    assert first, f"no progress with the first line: {seen}"
    assert answered - first[0] > 1.0, "the first line arrived only when the run ended"
    assert "".join(message or "" for _, message in seen) == "first\nsecond\n"


async def test_list_runtimes_is_get_runtimes(mcp_server: ServerProcess) -> None:
    async with connect(mcp_server.url) as client:
        result = await client.call_tool("list_runtimes", {})
    async with httpx.AsyncClient() as http:
        listing = (await http.get(mcp_server.url + "/runtimes", timeout=10)).json()
    assert result.is_error is False
    assert result.structured_content == {"runtimes": listing}
    assert [item["name"] for item in listing][:1] == ["python"] and "scientific" in text_of(result)


async def test_keep_state_keeps_names_until_reset_and_only_for_its_mcp_session(mcp_server: ServerProcess) -> None:
    """keep_state needs an MCP session: the handshake era (``mode="legacy"``, 2025-11-25)."""
    async with connect(mcp_server.url, mode="legacy") as client, connect(mcp_server.url, mode="legacy") as other:
        defined = await client.call_tool("run_python", {"code": "x = 41\ndef f(): return x + 1", "keep_state": True})
        used = await client.call_tool("run_python", {"code": "print(f())\nx", "keep_state": True})
        elsewhere = await other.call_tool("run_python", {"code": "print(x)", "keep_state": True})
        reset = await client.call_tool("reset_state", {})
        after = await client.call_tool("run_python", {"code": "print(x)", "keep_state": True})
        again = await client.call_tool("reset_state", {})
        await other.call_tool("reset_state", {})
    assert defined.is_error is False, text_of(defined)
    assert used.is_error is False and text_of(used).startswith("42\n")
    assert used.structured_content is not None and used.structured_content["result"] == "41"
    assert used.structured_content["session_alive"] is True
    # another MCP session of the same client has its own interpreter: x is not defined there
    assert elsewhere.is_error is True and "NameError" in text_of(elsewhere)
    assert reset.is_error is False and reset.structured_content == {"reset": True}
    assert after.is_error is True and "NameError: name 'x' is not defined" in text_of(after)
    assert again.structured_content == {"reset": True}  # the call after the reset made a fresh one


async def test_keep_state_without_an_mcp_session_is_refused_clearly(mcp_server: ServerProcess) -> None:
    """The SDK's default revision (2026-07-28) has no MCP sessions, so no state can belong to one."""
    async with connect(mcp_server.url) as client:
        kept = await client.call_tool("run_python", {"code": "x = 1", "keep_state": True})
        reset = await client.call_tool("reset_state", {})
        plain = await client.call_tool("run_python", {"code": "print('still fine')"})
    assert kept.is_error is True
    assert "keep_state needs an MCP session" in text_of(kept) and "2025-11-25" in text_of(kept)
    assert reset.is_error is False and reset.structured_content == {"reset": False}
    assert plain.is_error is False and text_of(plain).startswith("still fine\n")


def session_sandboxes(pid: int) -> list[str]:
    """A server's session sandboxes: their lease covers a session's lifetime (an hour by default),
    a pooled one's only the pool's idle limit (minutes)."""
    prefix = f"{socket.gethostname()}:{pid}:"
    return [
        c["Id"]
        for c in project_containers()
        if (c.get("Labels") or {}).get(LABEL_OWNER, "").startswith(prefix)
        and int((c.get("Labels") or {}).get(LABEL_LEASE, "0")) >= 3600
    ]


async def test_a_kept_session_ends_with_its_mcp_session(mcp_server: ServerProcess) -> None:
    """The client leaves (the SDK DELETEs its MCP session): the code session's sandbox goes."""

    async def released() -> bool | str:
        left = session_sandboxes(mcp_server.proc.pid)
        return not left or f"{len(left)} session sandbox(es) left"

    await until(released, 15, "the earlier tests' session sandboxes removed")
    async with connect(mcp_server.url, mode="legacy") as client:
        kept = await client.call_tool("run_python", {"code": "x = 1", "keep_state": True})
        assert kept.is_error is False, text_of(kept)
        assert len(session_sandboxes(mcp_server.proc.pid)) == 1
    await until(released, 15, "the session's sandbox removed")


async def test_bad_arguments_are_the_runs_own_refusals(mcp_server: ServerProcess) -> None:
    async with connect(mcp_server.url) as client:
        unknown = await client.call_tool("run_python", {"code": "1", "runtime": "nope"})
        bad_path = await client.call_tool("run_python", {"code": "1", "files": [{"path": "../x", "content": ""}]})
    assert unknown.is_error is True and unknown.structured_content is not None
    assert unknown.structured_content["code"] == "bad_message" and "python" in text_of(unknown)
    assert bad_path.is_error is True and bad_path.structured_content is not None
    assert bad_path.structured_content["code"] == "bad_message"


@pytest.mark.parametrize("mode", MODES)
async def test_a_vanished_agent_does_not_hold_a_sandbox(mcp_server: ServerProcess, mode: str) -> None:
    """The agent leaves mid-run: the run ends (its request's stream closed, or its MCP session
    ended) and its sandbox goes."""
    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async def agent() -> None:
        async with connect(mcp_server.url, mode=mode) as client:
            code = "import time\nprint('up', flush=True)\ntime.sleep(60)"
            await client.call_tool("run_python", {"code": code, "timeout": 20}, progress_callback=on_progress)

    before = len(server_containers(mcp_server.proc.pid))
    task = asyncio.create_task(agent())
    await asyncio.wait_for(started.wait(), 30)
    task.cancel()  # the agent goes away: its client closes and ends its MCP session
    with pytest.raises(asyncio.CancelledError):
        await task

    async def released() -> bool | str:
        count = len(server_containers(mcp_server.proc.pid))
        return count <= before or f"{count} sandboxes, {before} before the run"

    # the sleeping program's sandbox is gone well before its 20 s limit (the pool refills to `before`)
    await until(released, 12, "the sandbox removed")


# --- guards ----------------------------------------------------------------------------------


async def test_a_foreign_origin_is_refused_with_403(guarded: ServerProcess) -> None:
    foreign = {"Origin": "http://evil.test", "Authorization": "Bearer t1"}
    raw = await post(guarded.url, INIT, {**MCP_HEADERS, **foreign})
    assert raw.status_code == 403 and raw.json()["code"] == "forbidden"
    with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 403 in its own error types
        async with connect(guarded.url, headers=foreign):
            pass
    async with connect(guarded.url, headers={"Origin": "http://ok.test", "Authorization": "Bearer t1"}) as client:
        assert len((await client.list_tools()).tools) == 3  # an allowed origin goes through


async def test_a_missing_or_wrong_token_is_refused_with_401(guarded: ServerProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        raw = await post(guarded.url, INIT, {**MCP_HEADERS, **headers})
        assert raw.status_code == 401 and raw.json()["code"] == "unauthorized"
    with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 401 in its own error types
        async with connect(guarded.url) as client:
            await client.list_tools()
    async with connect(guarded.url, headers={"Authorization": "Bearer t2"}) as client:
        result = await client.call_tool("run_python", {"code": "print('ok')"})
    assert text_of(result).startswith("ok\n")


async def test_an_mcp_session_id_is_not_an_authority(guarded: ServerProcess) -> None:
    """Another client presenting a session's id does not reach that session (404); its owner does."""
    opened = await post(guarded.url, INIT, {**MCP_HEADERS, "Authorization": "Bearer t1"})
    assert opened.status_code == 200
    session = opened.headers["mcp-session-id"]
    listing: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    common = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    other = await post(guarded.url, listing, {**common, "Authorization": "Bearer t2"})
    assert other.status_code == 404
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    notified = await post(guarded.url, initialized, {**common, "Authorization": "Bearer t1"})
    assert notified.status_code == 202
    own = await post(guarded.url, listing, {**common, "Authorization": "Bearer t1"})
    assert own.status_code == 200 and "run_python" in own.text


async def test_limits_are_the_clients_own_across_mcp_and_post_run(server_factory: ServerFactory) -> None:
    """One client's rate limit counts its MCP runs and its POST /run runs together."""
    limited = server_factory(SCE_RATE_RUNS_PER_MINUTE="1", SCE_POOL_SIZE="0")
    async with connect(limited.url) as client:
        first = await client.call_tool("run_python", {"code": "print('one')"})
        second = await client.call_tool("run_python", {"code": "print('two')"})
    assert first.is_error is False and text_of(first).startswith("one\n")
    assert second.is_error is True and second.structured_content is not None
    assert second.structured_content["code"] == "busy" and second.structured_content["retry_after_s"] >= 1
    assert "rate limit" in text_of(second)
    async with httpx.AsyncClient(timeout=20) as http:
        plain = await http.post(limited.url + "/run", json={"code": "print('three')"})
    assert plain.status_code == 503 and plain.json()["code"] == "busy"


def documented(kind: str) -> list[str]:
    """The ``kind`` code blocks of PROTOCOL.md's MCP section, as an agent developer pastes them."""
    doc = (ROOT / "docs" / "PROTOCOL.md").read_text()
    section = doc[doc.index("## MCP, for AI agents") :]
    return re.findall(rf"```{kind}\n(.*?)```", section, flags=re.DOTALL)


async def test_the_documented_python_example_prints_what_the_doc_says(mcp_server: ServerProcess) -> None:
    [example] = documented("python")
    code = example.replace("http://127.0.0.1:5000", mcp_server.url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0] == "['run_python', 'reset_state', 'list_runtimes']"
    assert lines[1] == "live: 45"
    assert "True" in lines and "ZeroDivisionError: division by zero" in lines
    assert (
        re.fullmatch(r"\[the program raised ZeroDivisionError at line 2; exit code 1, \d+\.\d\d s\]", lines[-2])
        and lines[-1] == "1"
    )


def test_the_documented_configurations_are_json_naming_this_server() -> None:
    remote, local = (json.loads(block) for block in documented("json"))
    assert remote["mcpServers"]["python-sandbox"]["url"].endswith("/mcp")
    assert local["mcpServers"]["python-sandbox"]["args"][:2] == ["mcp", "--url"]


async def test_an_open_mcp_session_does_not_hold_the_servers_stop(server_factory: ServerFactory) -> None:
    """SIGTERM: the runs drain, then the MCP sessions (and their event streams) end, so the
    server is gone long before hypercorn's graceful timeout (grace + 5 s) would let it go."""
    server = server_factory(SCE_POOL_SIZE="0", SCE_SHUTDOWN_GRACE_S="10")
    async with connect(server.url, mode="legacy") as client:
        await client.list_tools()  # the handshake era: a session with its standing event stream
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.proc.wait, 30)
        took = time.monotonic() - started
    assert server.proc.returncode == 0
    assert took < 8, f"the server took {took:.1f} s to stop"
