"""The MCP layer's pure parts: a run's answer as a tool result, the kept-state bookkeeping, the URL."""

from __future__ import annotations

import base64
from typing import Any

import mcp_types as mt
import pytest

from app.errors import Busy, SCEError
from app.mcp import results
from app.mcp.cli import endpoint
from app.mcp.state import KeptState, NoSessions, SessionHandle, StateUnavailable
from app.protocol import AnswerFile, AnswerImage, RunAnswer

pytestmark = pytest.mark.timeout(10)


def answer(**fields: Any) -> RunAnswer:
    base: dict[str, Any] = {
        "output": "hi\n",
        "stdout": "hi\n",
        "stderr": "",
        "exit_code": 0,
        "signal": None,
        "reason": "exit",
        "duration_ms": 1234,
        "truncated": False,
    }
    return RunAnswer(**{**base, **fields})


def test_a_clean_exit_is_not_an_error_and_says_so() -> None:
    result = results.run_result(answer())
    assert result.is_error is False
    [text] = result.content
    assert isinstance(text, mt.TextContent)
    assert text.text == "hi\n[the program exited with code 0 in 1.23 s]"


@pytest.mark.parametrize(
    ("fields", "closing"),
    [
        ({"exit_code": 3}, "[the program exited with code 3 in 1.23 s]"),
        ({"exit_code": 139, "signal": "SIGSEGV"}, "[the program was killed by SIGSEGV: exit code 139, 1.23 s]"),
        (
            {"exit_code": None, "reason": "timeout", "error": "Execution timed out after 1 second."},
            "[Execution timed out after 1 second (timeout, after 1.23 s)]",
        ),
        (
            {"exit_code": None, "reason": "output_limit", "truncated": True, "error": "Too much output."},
            "[Too much output (output_limit, after 1.23 s); output cut at the limit]",
        ),
    ],
)
def test_anything_else_is_an_error_and_the_closing_line_says_how(fields: dict[str, Any], closing: str) -> None:
    result = results.run_result(answer(output="partial", **fields))
    assert result.is_error is True
    text = result.content[0]
    assert isinstance(text, mt.TextContent)
    assert text.text == "partial\n" + closing  # a last line without its newline still ends before the closing one


def test_images_and_files_are_contents_and_their_bytes_stay_out_of_structured_content() -> None:
    png = base64.b64encode(b"\x89PNG....").decode()
    images = [
        AnswerImage(mime="image/png", data=png, width=4, height=3),
        AnswerImage(mime="image/png", omitted="too_large"),
    ]
    files = [
        AnswerFile(path="out/a b.csv", size=4, mime="text/csv", data=base64.b64encode(b"x,y\n").decode()),
        AnswerFile(path="blob.bin", size=2, mime="application/octet-stream", data=base64.b64encode(b"\0\1").decode()),
        AnswerFile(path="latin.txt", size=1, mime="text/plain", data=base64.b64encode(b"\xe9").decode()),
    ]
    result = results.run_result(answer(images=images, files=files))
    kinds = [block.type for block in result.content]
    assert kinds == ["text", "image", "resource", "resource", "resource"]
    image = result.content[1]
    assert isinstance(image, mt.ImageContent) and image.data == png and image.mime_type == "image/png"
    resources = [block.resource for block in result.content[2:] if isinstance(block, mt.EmbeddedResource)]
    assert isinstance(resources[0], mt.TextResourceContents) and resources[0].text == "x,y\n"
    assert resources[0].uri == "sce://files/out/a%20b.csv"
    assert isinstance(resources[1], mt.BlobResourceContents) and resources[1].blob == files[1].data
    assert isinstance(resources[2], mt.BlobResourceContents)  # text/plain that is not UTF-8 goes as bytes
    structured = result.structured_content
    assert structured["images"] == [
        {"mime": "image/png", "width": 4, "height": 3},
        {"mime": "image/png", "omitted": "too_large"},
    ]
    assert [item.get("data") for item in structured["files"]] == [None, None, None]
    text = result.content[0]
    assert isinstance(text, mt.TextContent) and "1 image(s)/file(s) too large to send" in text.text


def test_a_refusal_is_an_error_result_with_the_protocols_code() -> None:
    result = results.refusal(Busy("rate limit", retry_after_s=7))
    assert result.is_error is True
    assert result.structured_content == {"error": "rate limit", "code": "busy", "retry_after_s": 7}
    text = result.content[0]
    assert isinstance(text, mt.TextContent) and text.text == "rate limit (busy); try again in 7 s"


def test_the_tools_and_their_schemas() -> None:
    tools = {tool.name: tool for tool in results.tools()}
    assert list(tools) == ["run_python", "reset_state", "list_runtimes"]
    run = tools["run_python"]
    assert run.input_schema["properties"]["files"]["items"]["required"] == ["path", "content"]
    assert run.output_schema is not None and run.output_schema["type"] == "object"
    assert tools["list_runtimes"].annotations is not None and tools["list_runtimes"].annotations.read_only_hint


def test_the_endpoint_from_a_base_url() -> None:
    assert endpoint("http://h:5000") == "http://h:5000/mcp"
    assert endpoint("http://h:5000/") == "http://h:5000/mcp"
    assert endpoint("https://h/sce/mcp") == "https://h/sce/mcp"


class FakeSessions:
    """Pure bookkeeping only: the real sessions are the server's (app/server/sessions.py)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, str | None]] = []
        self.closed: list[SessionHandle] = []

    async def create(self, client: str, runtime: str | None) -> SessionHandle:
        self.made.append((client, runtime))
        return SessionHandle(id=f"s{len(self.made)}", token=f"t{len(self.made)}", runtime=runtime)

    async def close(self, handle: SessionHandle) -> None:
        self.closed.append(handle)

    def alive(self, handle: SessionHandle) -> bool:
        return handle not in self.closed and handle not in self.expired

    expired: tuple[SessionHandle, ...] = ()


async def test_each_mcp_session_of_each_client_has_its_own_state() -> None:
    backend = FakeSessions()
    state = KeptState(backend, idle_timeout_s=60)
    first = await state.session_for(("addr:a", "m1"), "python")
    assert await state.session_for(("addr:a", "m1"), "python") == first  # made once, then found
    other_session = await state.session_for(("addr:a", "m2"), None)
    other_client = await state.session_for(("addr:b", "m1"), None)  # the same MCP session id, another client
    assert len({first, other_session, other_client}) == 3 and len(state) == 3
    assert await state.end(("addr:a", "m1")) is True
    assert backend.closed == [first]
    assert await state.end(("addr:a", "m1")) is False  # nothing left to end
    state.forget(("addr:b", "m1"), other_client)  # the server ended it by itself: nothing to close
    assert backend.closed == [first] and len(state) == 1


async def test_a_session_that_ended_by_itself_is_made_afresh() -> None:
    backend = FakeSessions()
    state = KeptState(backend, idle_timeout_s=60)
    first = await state.session_for(("addr:a", "m1"), None)
    backend.expired = (first,)  # the server ended it (its own idle timeout) with no run to say so
    second = await state.session_for(("addr:a", "m1"), None)
    assert second != first and len(backend.made) == 2 and len(state) == 1


async def test_idle_state_is_ended_by_the_sweep_and_a_request_keeps_it() -> None:
    backend = FakeSessions()
    now = [1000.0]
    state = KeptState(backend, idle_timeout_s=60, clock=lambda: now[0])
    quiet = await state.session_for(("addr:a", "m1"), None)
    busy = await state.session_for(("addr:a", "m2"), None)
    now[0] += 50
    state.touch(("addr:a", "m2"))  # a request of that MCP session (any method)
    now[0] += 20  # m1 idle 70 s, m2 20 s
    await state.sweep()
    assert backend.closed == [quiet] and len(state) == 1
    now[0] += 61
    await state.sweep()
    assert backend.closed == [quiet, busy] and len(state) == 0


async def test_without_sessions_keep_state_is_refused_clearly() -> None:
    state = KeptState(NoSessions(), idle_timeout_s=60)
    assert state.available is False
    with pytest.raises(StateUnavailable, match="not available on this server yet") as refused:
        await state.session_for(("addr:a", "m1"), None)
    assert isinstance(refused.value, SCEError) and refused.value.code == "bad_message"
