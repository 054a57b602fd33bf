"""PROTOCOL.md's HTTP side, row by row: POST /run, /healthz, /metrics and the editor's routes, over real hypercorn."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from app.settings import Settings
from tests.conftest import ServerFactory, ServerProcess, module_server

pytestmark = [pytest.mark.docker, pytest.mark.timeout(60)]

BODY_FIELDS = {
    "output",
    "stdout",
    "stderr",
    "exit_code",
    "signal",
    "reason",
    "duration_ms",
    "truncated",
    "cpu_ms",  # v2
    "memory_peak_bytes",  # v2
    "images",  # v2
    "files",  # v2
}
WAIT_S = 20.0
MISSING_IMAGE = "sce-missing-image:does-not-exist"

TIGHT_ENV = {
    "SCE_OUTPUT_BYTES": "2048",
    "SCE_CODE_MAX_BYTES": "200",
    "SCE_MAX_MESSAGE_BYTES": "2048",
    "SCE_TIMEOUT_S": "1",
    "SCE_TIMEOUT_MAX_S": "2",
    "SCE_POOL_SIZE": "1",
    "SCE_PER_CLIENT_RUNS": "16",
}
GUARDED_ENV = {
    "SCE_API_TOKENS": "t1,t2",
    "SCE_ALLOWED_ORIGINS": "http://ok.test",
    "SCE_POOL_SIZE": "0",
}


tight = module_server(TIGHT_ENV)


guarded = module_server(GUARDED_ENV)


no_image = module_server({"SCE_IMAGE": MISSING_IMAGE, "SCE_POOL_SIZE": "0"}, healthy=False)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # a new connection per request: see test_a_refused_request_leaves_its_connection_usable for why
    async with httpx.AsyncClient(timeout=WAIT_S, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        yield client


async def raw_http(server: ServerProcess, *parts: bytes) -> tuple[int, dict[str, str], bytes]:
    """Write ``parts`` in order, each once the previous got its answer, and return the first answer.

    For wire-level rows httpx cannot express: say, a client that sends its headers and waits for
    an early answer before sending the body (what curl does for large uploads).
    """
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(parts[0])
            await writer.drain()
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            return int(status_line.split()[1]), headers, body
        finally:
            writer.close()


async def post_run(http: httpx.AsyncClient, server: ServerProcess, **body: Any) -> httpx.Response:
    async with asyncio.timeout(WAIT_S * 2):
        return await http.post(server.url + "/run", json=body)


def assert_run_body(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert BODY_FIELDS <= set(body) <= BODY_FIELDS | {"error", "exception"}  # v3: a run that raised
    assert isinstance(body["duration_ms"], int) and body["duration_ms"] >= 0
    assert isinstance(body["truncated"], bool)
    assert ("error" in body) == (body["reason"] != "exit")
    return body


def assert_error_body(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["code"], str)
    if code is not None:
        assert body["code"] == code
    return body


# === 200: the program ran =====================================================================================


async def test_hello_world(http: httpx.AsyncClient, server: ServerProcess) -> None:
    body = assert_run_body(await post_run(http, server, code="print('hello')"))
    assert body["output"] == body["stdout"] == "hello\n"
    assert body["stderr"] == ""
    assert body["exit_code"] == 0 and body["signal"] is None
    assert body["reason"] == "exit" and body["truncated"] is False
    assert "error" not in body


async def test_output_interleaves_both_streams_in_order(http: httpx.AsyncClient, server: ServerProcess) -> None:
    code = "import sys, time\nprint('a')\ntime.sleep(0.1)\nprint('b', file=sys.stderr)\ntime.sleep(0.1)\nprint('c')"
    body = assert_run_body(await post_run(http, server, code=code))
    assert body["output"] == "a\nb\nc\n"
    assert body["stdout"] == "a\nc\n"
    assert body["stderr"] == "b\n"


async def test_stdin_is_given_to_the_program(http: httpx.AsyncClient, server: ServerProcess) -> None:
    code = "import sys\nprint(input().upper())\nprint(repr(sys.stdin.read()))"
    body = assert_run_body(await post_run(http, server, code=code, stdin="shout\nrest"))
    assert body["stdout"] == "SHOUT\n'rest'\n"  # and then EOF: nobody will send more


async def test_input_past_the_given_stdin_is_end_of_file(http: httpx.AsyncClient, server: ServerProcess) -> None:
    # no more input can follow a request: input() must fail at once, not wait for the timeout
    body = assert_run_body(await post_run(http, server, code="input()"))
    assert body["reason"] == "exit" and body["exit_code"] == 1
    assert "EOFError" in body["stderr"]
    assert body["duration_ms"] < 5000


async def test_failing_program_is_still_200(http: httpx.AsyncClient, server: ServerProcess) -> None:
    body = assert_run_body(await post_run(http, server, code="raise SystemExit(3)"))
    assert body["reason"] == "exit" and body["exit_code"] == 3 and body["signal"] is None
    assert "error" not in body


async def test_segfault_reports_the_signal(http: httpx.AsyncClient, server: ServerProcess) -> None:
    body = assert_run_body(await post_run(http, server, code="import ctypes\nctypes.string_at(0)"))
    assert body["reason"] == "exit" and body["exit_code"] == 139 and body["signal"] == "SIGSEGV"


async def test_timeout_has_a_sentence(http: httpx.AsyncClient, server: ServerProcess) -> None:
    body = assert_run_body(await post_run(http, server, code="print('start', flush=True)\nwhile True: pass", timeout=1))
    assert body["reason"] == "timeout"
    assert body["exit_code"] is None and body["signal"] is None
    assert body["error"] == "Execution timed out after 1 second."
    assert body["stdout"] == "start\n"  # output before the kill is kept
    assert body["duration_ms"] >= 1000


async def test_timeout_is_clamped_to_the_server_maximum(http: httpx.AsyncClient, tight: ServerProcess) -> None:
    body = assert_run_body(await post_run(http, tight, code="import time\ntime.sleep(30)", timeout=30))
    assert body["reason"] == "timeout"
    assert body["error"] == "Execution timed out after 2 seconds."  # SCE_TIMEOUT_MAX_S


async def test_oom_has_a_sentence(http: httpx.AsyncClient, server: ServerProcess) -> None:
    body = assert_run_body(await post_run(http, server, code="x = b'x' * (512 * 1024 * 1024)"))
    assert body["reason"] == "oom" and body["exit_code"] is None, body
    assert "memory" in body["error"] and str(Settings().memory_mb) in body["error"]


async def test_output_limit_is_truncated_with_a_sentence(http: httpx.AsyncClient, tight: ServerProcess) -> None:
    body = assert_run_body(await post_run(http, tight, code="while True:\n    print('z' * 50)"))
    assert body["reason"] == "output_limit"
    assert body["truncated"] is True and body["exit_code"] is None
    assert len(body["output"].encode()) == 2048  # SCE_OUTPUT_BYTES
    assert "2048" in body["error"]


# === refusals =============================================================================================


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"print(1)"', id="string"),
        pytest.param(b"{}", id="no-code"),
        pytest.param(b'{"code": 5}', id="code-not-a-string"),
        pytest.param(b'{"code": "x", "stdin": 5}', id="stdin-not-a-string"),
        pytest.param(b'{"code": "x", "timeout": "5"}', id="timeout-not-a-number"),
        pytest.param(b'{"code": "x", "timeout": 0}', id="timeout-zero"),
        pytest.param(b'{"code": "x", "timeout": NaN}', id="timeout-nan"),
        pytest.param(b'{"code": "\xff"}', id="invalid-utf8"),
    ],
)
async def test_bad_body_is_400_bad_message(http: httpx.AsyncClient, server: ServerProcess, content: bytes) -> None:
    response = await http.post(server.url + "/run", content=content, headers={"Content-Type": "application/json"})
    assert_error_body(response, 400, "bad_message")


async def test_code_over_the_limit_is_413_code_too_large(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await post_run(http, server, code="#" * (Settings().code_max_bytes + 1))
    assert_error_body(response, 413, "code_too_large")


async def test_oversized_body_is_413_message_too_large(server: ServerProcess) -> None:
    # refused from Content-Length alone: the answer comes before the body is sent at all
    size = Settings().max_message_bytes + 1
    head = (
        f"POST /run HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    status, headers, body = await raw_http(server, head.encode())
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == "message_too_large"


async def test_a_body_far_past_the_limit_still_gets_its_413(http: httpx.AsyncClient, server: ServerProcess) -> None:
    big = json.dumps({"code": "print(1)", "stdin": "x" * 32_000_000})
    for _ in range(2):
        response = await http.post(server.url + "/run", content=big, headers={"Content-Type": "application/json"})
        assert_error_body(response, 413, "message_too_large")


async def test_a_refused_request_leaves_its_connection_usable(guarded: ServerProcess) -> None:
    body = b'{"code": "print(1)"}'
    head = (
        f"POST /run HTTP/1.1\r\nHost: 127.0.0.1:{guarded.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection("127.0.0.1", guarded.port)
        try:
            writer.write(head)  # the body follows a moment later, as from any client that writes twice
            await writer.drain()
            first = await reader.readuntil(b"\r\n\r\n")
            assert first.startswith(b"HTTP/1.1 401")
            await reader.readexactly(int(re.search(rb"(?i)content-length: *(\d+)", first).group(1)))  # type: ignore[union-attr]
            if b"connection: close" in first.lower():
                return  # the server said so: a client knows not to reuse it
            writer.write(body)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await writer.drain()
            second = await reader.readline()
            assert second.startswith(b"HTTP/1.1 200"), f"the kept-alive connection was dropped: {second!r}"
        finally:
            writer.close()


async def test_oversized_chunked_body_is_413_message_too_large(http: httpx.AsyncClient, tight: ServerProcess) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the server must count as it reads
        yield b'{"code": "print(1)", "stdin": "' + b"y" * 2000
        yield b"y" * 100 + b'"}'

    response = await http.post(tight.url + "/run", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_error_body(response, 413, "message_too_large")


async def test_text_plain_is_415(http: httpx.AsyncClient, server: ServerProcess) -> None:
    body = json.dumps({"code": "print(1)"})
    response = await http.post(server.url + "/run", content=body, headers={"Content-Type": "text/plain"})
    assert_error_body(response, 415)


async def test_form_post_is_415(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await http.post(server.url + "/run", data={"code": "print(1)"})
    assert_error_body(response, 415)


async def test_no_content_type_is_415(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await http.post(server.url + "/run", content=b'{"code": "print(1)"}')
    assert_error_body(response, 415)


async def test_foreign_origin_is_403(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await http.post(server.url + "/run", json={"code": "print(1)"}, headers={"Origin": "http://evil.test"})
    assert_error_body(response, 403)


async def test_own_origin_runs(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await http.post(server.url + "/run", json={"code": "print('own')"}, headers={"Origin": server.url})
    assert assert_run_body(response)["stdout"] == "own\n"


async def test_tokens_and_allow_listed_origin(http: httpx.AsyncClient, guarded: ServerProcess) -> None:
    url = guarded.url + "/run"
    run = {"code": "print('ok')"}
    assert_error_body(await http.post(url, json=run), 401)
    assert_error_body(await http.post(url, json=run, headers={"Authorization": "Bearer nope"}), 401)
    assert_error_body(await http.post(url + "?token=nope", json=run), 401)
    assert assert_run_body(await http.post(url, json=run, headers={"Authorization": "Bearer t1"}))["stdout"] == "ok\n"
    assert assert_run_body(await http.post(url + "?token=t2", json=run))["stdout"] == "ok\n"
    listed = {"Authorization": "Bearer t1", "Origin": "http://ok.test"}
    assert assert_run_body(await http.post(url, json=run, headers=listed))["stdout"] == "ok\n"
    foreign = {"Authorization": "Bearer t1", "Origin": "http://evil.test"}
    assert_error_body(await http.post(url, json=run, headers=foreign), 403)


async def test_busy_is_503_with_retry_after(http: httpx.AsyncClient, server_factory: ServerFactory) -> None:
    srv = server_factory(SCE_MAX_CONCURRENT_RUNS="1", SCE_QUEUE_SIZE="0", SCE_RETRY_AFTER_S="7", SCE_POOL_SIZE="0")
    async with asyncio.timeout(WAIT_S * 2), websockets.connect(srv.ws_url) as ws:
        await ws.send(json.dumps({"type": "run", "code": "input()"}))  # holds the only slot
        assert json.loads(await ws.recv())["type"] == "started"
        response = await post_run(http, srv, code="print(1)")
        assert_error_body(response, 503, "busy")
        assert response.headers["Retry-After"] == "7"
        await ws.send(json.dumps({"type": "stdin", "data": "\n"}))
        async for message in ws:
            if json.loads(message)["type"] == "exit":
                break
    # and once the slot is free again, the same request runs
    assert assert_run_body(await post_run(http, srv, code="print(1)"))["stdout"] == "1\n"


async def test_missing_image_is_503_unavailable(http: httpx.AsyncClient, no_image: ServerProcess) -> None:
    response = await post_run(http, no_image, code="print(1)")
    assert_error_body(response, 503, "unavailable")
    assert "Retry-After" not in response.headers


# === health, metrics, the editor ========================================================================


async def test_healthz_ok(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await http.get(server.url + "/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["image"] == Settings().image
    assert body["pool"]["size"] == Settings().pool_size
    assert 0 <= body["pool"]["ready"] <= body["pool"]["size"]
    assert isinstance(body["active_runs"], int) and isinstance(body["queued"], int)


async def test_healthz_deep_runs_a_probe(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await http.get(server.url + "/healthz?deep=1")
    assert response.status_code == 200
    assert response.json()["probe"]["ok"] is True


async def test_healthz_without_the_image_is_503(http: httpx.AsyncClient, no_image: ServerProcess) -> None:
    response = await http.get(no_image.url + "/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["image"] == MISSING_IMAGE


async def test_metrics_count_runs_and_errors(http: httpx.AsyncClient, server: ServerProcess) -> None:
    assert_run_body(await post_run(http, server, code="pass"))
    assert_error_body(await post_run(http, server, code=5), 400)
    response = await http.get(server.url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "sce_runs_total",
        "sce_errors_total",
        "sce_run_duration_seconds_bucket",
        "sce_first_output_seconds_bucket",
        "sce_active_runs",
        "sce_queue_length",
        "sce_pool_ready",
        "sce_open_websockets",
    ):
        assert f"\n{name}" in text, name
    assert 'sce_runs_total{reason="exit"}' in text
    assert 'sce_errors_total{code="bad_message"}' in text


async def test_root_redirects_to_the_editor(http: httpx.AsyncClient, server: ServerProcess) -> None:
    response = await http.get(server.url + "/")
    assert response.is_redirect
    assert response.headers["location"].endswith("/ui")
    editor = await http.get(server.url + "/ui")
    assert editor.status_code == 200
    assert editor.headers["content-type"].startswith("text/html")
