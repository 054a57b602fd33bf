"""Fuzzing the protocol's edges with hypothesis, against a real server.

Random and malformed frames at the WebSocket (random JSON values, wrong field types, binary
frames, oversized frames, frames after a run) and random bodies and content types at
``POST /run``. Only the protocol's documented answers may come back, each with its close code
or HTTP status: ``bad_message`` 1008/400, ``code_too_large`` and ``message_too_large`` 1009/413,
415 for a body that is not JSON, or a run to its end. Never ``internal``/1011/500. The oracle
below is PROTOCOL.md's table, written independently of ``app/protocol.py``. After each fuzz
test the server must still serve hello world.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import ServerProcess
from tests.wsclient import collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.security, pytest.mark.timeout(600)]

MAX_MESSAGE = 8192
CODE_MAX = 2048
ERROR_CLOSE = {"bad_message": 1008, "code_too_large": 1009, "message_too_large": 1009}
ERROR_HTTP = {"bad_message": 400, "code_too_large": 413, "message_too_large": 413, "unsupported_media_type": 415}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerProcess]:
    server = ServerProcess(
        {
            "SCE_MAX_MESSAGE_BYTES": str(MAX_MESSAGE),
            "SCE_CODE_MAX_BYTES": str(CODE_MAX),
            "SCE_RUN_FRAME_TIMEOUT_S": "2",
            "SCE_TIMEOUT_S": "5",
            "SCE_MAX_CONCURRENT_RUNS": "4",
            "SCE_PER_CLIENT_RUNS": "64",
            "SCE_QUEUE_SIZE": "64",
        }
    )
    yield server
    log = server.log()
    server.stop()
    assert "Traceback (most recent call last)" not in log, f"the server logged a traceback while fuzzed:\n{log[-4000:]}"


# --- the oracle: PROTOCOL.md's rules for one client frame ----------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def classify(raw: str | bytes, *, first: bool) -> str:
    """``run`` (a valid run frame), ``frame`` (a valid stdin/kill frame) or the error code it must get."""
    if isinstance(raw, bytes):  # binary is refused; an oversized one may be refused for its size first
        return "bad_message|message_too_large" if len(raw) > MAX_MESSAGE else "bad_message"
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE:
        return "message_too_large"
    try:
        obj = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "bad_message"
    if not isinstance(obj, dict):
        return "bad_message"
    kind = obj.get("type")
    if kind == "run":
        verdict = classify_run_fields(obj)
        if verdict != "run":
            return verdict
        return "run" if first else "bad_message"  # a second run frame
    if kind == "stdin":
        if obj.get("data") is not None and not isinstance(obj.get("data"), str):
            return "bad_message"
        if obj.get("eof") is not None and not isinstance(obj.get("eof"), bool):
            return "bad_message"
        return "bad_message" if first else "frame"
    if kind == "kill":
        return "bad_message" if first else "frame"
    return "bad_message"


def classify_run_fields(obj: dict[str, Any]) -> str:
    code = obj.get("code")
    if not isinstance(code, str):
        return "bad_message"
    if len(code.encode("utf-8", "surrogatepass")) > CODE_MAX:
        return "code_too_large"
    if obj.get("stdin") is not None and not isinstance(obj.get("stdin"), str):
        return "bad_message"
    timeout = obj.get("timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            return "bad_message"
        try:
            finite = math.isfinite(timeout)
        except OverflowError:  # an integer too large for a float: a huge, finite number of seconds
            finite = True
        if not finite or timeout <= 0:
            return "bad_message"
    return "run"


# --- strategies ------------------------------------------------------------------------------------------------

# integers stay float-convertible: the overflow of a huge integer timeout is a known bug with its own test below
ints = st.integers(min_value=-(10**300), max_value=10**300)
json_scalars = st.none() | st.booleans() | ints | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
any_field = json_values | st.just("print(1)")
code_texts = st.sampled_from(["pass", "print(1)", "1/0", "import sys; sys.exit(3)", ""]) | st.text(max_size=30)
timeouts = st.none() | st.floats() | ints | st.booleans() | st.text(max_size=5) | st.sampled_from([1, 2.5])
frame_dicts = st.fixed_dictionaries(
    {"type": st.sampled_from(["run", "stdin", "kill", "exit", "RUN", ""]) | st.text(max_size=8) | json_scalars},
    optional={
        "code": code_texts | any_field | st.text(min_size=CODE_MAX - 4, max_size=CODE_MAX + 40),
        "stdin": st.none() | st.text(max_size=20) | any_field,
        "timeout": timeouts,
        "data": st.none() | st.text(max_size=20) | any_field,
        "eof": st.none() | st.booleans() | any_field,
    },
)


def dump(value: Any) -> str:
    return json.dumps(value)  # NaN and Infinity come out as the bare constants, which JSON does not allow


texts = (
    frame_dicts.map(dump)
    | json_values.map(dump)
    | st.text(max_size=200)
    | st.text(min_size=MAX_MESSAGE - 20, max_size=MAX_MESSAGE + 200, alphabet="ab{}\"'")
    | st.just('{"type": "run", "code": "x", "timeout": NaN}')
)
frames = texts | st.binary(max_size=300) | st.binary(min_size=MAX_MESSAGE + 1, max_size=MAX_MESSAGE + 50)


# --- WebSocket --------------------------------------------------------------------------------------------------


async def send_frames(ws_url: str, raws: list[str | bytes]) -> tuple[list[dict[str, Any]], int | None]:
    async with asyncio.timeout(60):
        async with websockets.connect(ws_url, max_size=None, open_timeout=30) as ws:
            for raw in raws:
                try:
                    await ws.send(raw)
                except websockets.ConnectionClosed:
                    break
            result = await collect(ws)
    return result.frames, result.close_code


def check_error(frames: list[dict[str, Any]], close_code: int | None, codes: str) -> None:
    """The last frame is an error with one of ``codes`` (``a|b``), closed with that error's close code."""
    assert frames and frames[-1]["type"] == "error", (codes, frames)
    code = frames[-1]["code"]
    assert code in codes.split("|"), (codes, frames)
    assert close_code == ERROR_CLOSE[code], (code, close_code, frames)
    assert not any(f["type"] == "error" and f["code"] == "internal" for f in frames)


def check_run(frames: list[dict[str, Any]], close_code: int | None) -> None:
    kinds = [f["type"] for f in frames]
    assert kinds and kinds[-1] == "exit" and "started" in kinds, frames
    assert close_code == 1000, (close_code, frames)


@FUZZ
@given(raw=frames)
@example(raw=b'{"type": "run", "code": "pass"}')
@example(raw="[" * 4000 + "]" * 4000)
def test_first_frame(fuzz_server: ServerProcess, raw: str | bytes) -> None:
    """Whatever the first frame, the answer is the protocol's: an error with its close code, or a run."""
    expected = classify(raw, first=True)
    frames_, close_code = asyncio.run(send_frames(fuzz_server.ws_url, [raw]))
    if expected == "run":
        check_run(frames_, close_code)
    else:
        check_error(frames_, close_code, expected)


WAITING_PROGRAM = "import sys\nprint('ready', flush=True)\ndata = sys.stdin.read()\nprint('read', len(data))\n"


@settings(FUZZ, max_examples=40)
@given(
    valid=st.lists(
        st.fixed_dictionaries({"type": st.just("stdin"), "data": st.text(max_size=30)}).map(dump), max_size=5
    ),
    last=frames,
)
def test_frames_after_run(fuzz_server: ServerProcess, valid: list[str], last: str | bytes) -> None:
    """Frames after a run frame: stdin goes in; the first bad frame ends the run with its error."""
    run = json.dumps({"type": "run", "code": WAITING_PROGRAM, "timeout": 1.5})
    verdict = classify(last, first=False)
    frames_, close_code = asyncio.run(send_frames(fuzz_server.ws_url, [run, *valid, last]))
    if verdict == "frame":
        parsed = json.loads(last)  # a valid stdin or kill frame
        if parsed["type"] == "kill":
            assert frames_[-1]["type"] == "exit" and frames_[-1]["reason"] == "killed", frames_
        elif parsed.get("eof") is True:
            check_run(frames_, close_code)
            assert frames_[-1]["reason"] == "exit", frames_
        else:  # the program still waits for EOF: the wall clock ends it
            check_run(frames_, close_code)
            assert frames_[-1]["reason"] == "timeout", frames_
    else:
        check_error(frames_, close_code, "bad_message" if verdict == "run" else verdict)


# --- HTTP POST /run --------------------------------------------------------------------------------------------

content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "",
    ]
) | st.text(alphabet="abcdefghijklmnopqrstuvwxyz/+-.;= ", max_size=30)
bodies = (
    frame_dicts.map(lambda d: {k: v for k, v in d.items() if k != "type"}).map(dump).map(str.encode)
    | json_values.map(dump).map(str.encode)
    | st.binary(max_size=300)
    | st.binary(min_size=MAX_MESSAGE + 1, max_size=MAX_MESSAGE + 100)
)


def expected_http(content_type: str, body: bytes) -> str:
    mimetype = content_type.split(";", 1)[0].strip().lower()
    if mimetype != "application/json":
        return "unsupported_media_type"
    if len(body) > MAX_MESSAGE:
        return "message_too_large"
    try:
        obj = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return "bad_message"
    if not isinstance(obj, dict):
        return "bad_message"
    return classify_run_fields(obj)


@FUZZ
@given(content_type=content_types, body=bodies)
@example(content_type="application/json", body=b"\xff\xfe\x00")
def test_post_run(fuzz_server: ServerProcess, content_type: str, body: bytes) -> None:
    """POST /run answers 200 for a run, else the documented status and ``{"error", "code"}``; never 500."""
    content_type = content_type.strip()  # a header value cannot start or end with blanks
    expected = expected_http(content_type, body)
    headers = {"Content-Type": content_type} if content_type else {}
    response = httpx.post(fuzz_server.url + "/run", content=body, headers=headers, timeout=60)
    assert response.status_code != 500, response.text
    if expected == "run":
        assert response.status_code == 200, (response.status_code, response.text)
        answer = response.json()
        assert answer["reason"] in ("exit", "timeout", "oom", "output_limit"), answer
        assert {"output", "stdout", "stderr", "exit_code", "signal", "duration_ms", "truncated"} <= set(answer)
    else:
        assert response.status_code == ERROR_HTTP[expected], (expected, response.status_code, response.text)
        answer = response.json()
        assert answer["code"] == expected and isinstance(answer["error"], str), answer


# --- an integer timeout too large for a float (it once crashed the parser) ---------------------------------------

HUGE = "1" + "0" * 400


@pytest.mark.parametrize("sign", ["", "-"])
def test_huge_integer_timeout_websocket(fuzz_server: ServerProcess, sign: str) -> None:
    raw = '{"type": "run", "code": "pass", "timeout": ' + sign + HUGE + "}"
    frames_, close_code = asyncio.run(send_frames(fuzz_server.ws_url, [raw]))
    assert close_code == 1008 and [f.get("code") for f in frames_] == ["bad_message"], frames_


@pytest.mark.parametrize("sign", ["", "-"])
def test_huge_integer_timeout_http(fuzz_server: ServerProcess, sign: str) -> None:
    body = ('{"code": "pass", "timeout": ' + sign + HUGE + "}").encode()
    response = httpx.post(
        fuzz_server.url + "/run", content=body, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert response.status_code == 400 and response.json()["code"] == "bad_message", response.text


# --- afterwards --------------------------------------------------------------------------------------------------


async def test_still_serves_after_fuzzing(fuzz_server: ServerProcess) -> None:
    result = await run_ws(fuzz_server.ws_url, "print('hello world')", within=60)
    assert result.text() == "hello world\n" and result.exit["exit_code"] == 0, result.frames
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(fuzz_server.url + "/healthz")).status_code == 200
