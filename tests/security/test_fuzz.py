"""Fuzzing the protocol's edges with hypothesis, against a real server.

Random and malformed frames at the WebSocket (random JSON values, wrong field types, binary
frames, oversized frames, frames after a run) and random bodies and content types at
``POST /run``, over every client frame of protocol version 3 (``run``, ``stdin``, ``kill``,
``resume``, ``watch``) and every field of a run (``code``, ``stdin``, ``timeout``, ``runtime``,
``files``, ``stats``, ``filename``, ``session``, ``session_token``). Only the protocol's
documented answers may come back, each with its close code or HTTP status: ``bad_message``
1008/400, ``code_too_large`` and ``message_too_large`` 1009/413, ``not_found`` 1008/404 (a run,
resume or watch of something this server does not have), 415 for a body that is not JSON, or a
run to its end. Never ``internal``/1011/500. The oracle below is PROTOCOL.md's rules, written
independently of ``app/protocol``. After each fuzz test the server must still serve hello world.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
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
FILES_MAX = 3  # the fuzz server's SCE_FILES_IN_MAX_COUNT
RUNTIMES = ("python", "scientific")
ERROR_CLOSE = {"bad_message": 1008, "code_too_large": 1009, "message_too_large": 1009, "not_found": 1008}
ERROR_HTTP = {
    "bad_message": 400,
    "code_too_large": 413,
    "message_too_large": 413,
    "unsupported_media_type": 415,
    "not_found": 404,
}
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
            "SCE_FILES_IN_MAX_COUNT": str(FILES_MAX),
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
        if verdict not in ("run", "not_found"):
            return verdict
        return verdict if first else "bad_message"  # a second run frame
    if kind == "stdin":
        if obj.get("data") is not None and not isinstance(obj.get("data"), str):
            return "bad_message"
        if obj.get("eof") is not None and not isinstance(obj.get("eof"), bool):
            return "bad_message"
        return "bad_message" if first else "frame"
    if kind == "kill":
        return "bad_message" if first else "frame"
    if kind in ("resume", "watch"):
        # only as the first frame, and with the right types; this server has no run of that id
        malformed = not isinstance(obj.get("id"), str) or not isinstance(obj.get("token"), str)
        if kind == "resume":
            after = obj.get("after")
            malformed = malformed or isinstance(after, bool) or not isinstance(after, int) or after < 0
        return "not_found" if first and not malformed else "bad_message"
    return "bad_message"


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _optional(obj: dict[str, Any], name: str, ok: Any) -> bool:
    """The field is absent or null, or ``ok`` says its value is right."""
    return obj.get(name) is None or bool(ok(obj[name]))


def _utf8(text: str) -> bytes | None:
    """The text's UTF-8, or None for a lone surrogate (JSON can spell one: ``"\\ud800"``)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _path_ok(path: str) -> bool:
    encoded = _utf8(path)
    if encoded is None or path == "" or path.startswith("/") or "\\" in path or "\x00" in path or len(encoded) > 1024:
        return False
    return all(part not in ("", ".", "..") and len(part.encode()) <= 255 for part in path.split("/"))


def _file_ok(item: Any) -> bool:
    """One file's own rules: types, path, encoding, and base64 in its one canonical spelling."""
    if not isinstance(item, dict) or not _is_str(item.get("path")) or not _is_str(item.get("content")):
        return False
    encoding = item.get("encoding")
    if encoding not in (None, "utf-8", "base64") or not _path_ok(item["path"]):
        return False
    if encoding == "base64":
        try:
            decoded = base64.b64decode(item["content"], validate=True)
        except (binascii.Error, ValueError):
            return False
        return base64.b64encode(decoded).decode() == item["content"]
    return True


def _files_set_ok(files: list[dict[str, Any]]) -> bool:
    """The rules about the set: count, no path twice, no path that is also another's folder."""
    paths = [f["path"] for f in files]
    folders = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    return len(files) <= FILES_MAX and len(set(paths)) == len(paths) and not folders & set(paths)


def _filename_ok(name: Any) -> bool:
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\x00" in name:
        return False
    encoded = _utf8(name)
    return encoded is not None and len(encoded) <= 255


def _timeout_ok(timeout: Any) -> bool:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return False
    try:
        return math.isfinite(timeout) and timeout > 0
    except OverflowError:  # an integer too large for a float is not a finite number of seconds
        return False


def classify_run_fields(obj: dict[str, Any]) -> str:
    """PROTOCOL.md's rules for a run, in the order they are judged: each field's own type and form
    (``bad_message``), then the code's size (``code_too_large``), then the rules across fields
    (the set of files, ``session`` with ``session_token``), then the runtime's name; a valid run in
    a session this server does not have is ``not_found``."""
    code = obj.get("code")
    fields_ok = (
        _is_str(code)
        and _optional(obj, "stdin", _is_str)
        and _optional(obj, "timeout", _timeout_ok)
        and _optional(obj, "runtime", _is_str)
        and _optional(obj, "stats", lambda v: isinstance(v, bool))
        and _optional(obj, "files", lambda v: isinstance(v, list) and all(_file_ok(f) for f in v))
        and _optional(obj, "filename", _filename_ok)
        and _optional(obj, "session", _is_str)
        and _optional(obj, "session_token", _is_str)
    )
    if not fields_ok:
        return "bad_message"
    if len(code.encode("utf-8", "surrogatepass")) > CODE_MAX:
        return "code_too_large"
    if not _files_set_ok(obj.get("files") or []):
        return "bad_message"
    if (obj.get("session") is None) != (obj.get("session_token") is None):
        return "bad_message"
    if obj.get("session") is not None:
        return "not_found"
    if obj.get("runtime") is not None and obj["runtime"] not in RUNTIMES:
        return "bad_message"
    return "run"


# --- strategies ------------------------------------------------------------------------------------------------

# integers past a float's range included: a timeout that large is refused, not a crash
ints = st.integers(min_value=-(10**400), max_value=10**400)
json_scalars = st.none() | st.booleans() | ints | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
any_field = json_values | st.just("print(1)")
code_texts = st.sampled_from(["pass", "print(1)", "1/0", "import sys; sys.exit(3)", ""]) | st.text(max_size=30)
timeouts = st.none() | st.floats() | ints | st.booleans() | st.text(max_size=5) | st.sampled_from([1, 2.5])
# the scientific runtime is left out of the names tried: a cold start of its 512 MiB sandbox per example
runtimes = st.none() | st.sampled_from(["python", "Python", "no-such-runtime", ""]) | any_field
paths = st.sampled_from(
    ["a.txt", "d/b.csv", "d", "../x", "/abs", "", "a//b", "./a", "a\\b", "x" * 300, "d/\ud800"]
) | st.text(max_size=12)
files = st.fixed_dictionaries(
    {"path": paths | any_field, "content": st.sampled_from(["YQ==", "YQ", "!!", "", "text"]) | any_field},
    optional={"encoding": st.none() | st.sampled_from(["utf-8", "base64", "hex", "UTF-8"]) | any_field},
)
file_lists = st.none() | st.lists(files, max_size=FILES_MAX + 1) | any_field
filenames = (
    st.none()
    | st.sampled_from(["main.py", "hottest.py", "a/b.py", "", ".", "..", "n\x00.py", "a\ud800.py"])
    | any_field
)
# text a program cannot get as UTF-8: a lone surrogate reaches it as other bytes (and is echoed as U+FFFD)
surrogates = st.sampled_from(["\ud800", "é\udfff\n"])
secrets = st.none() | st.sampled_from(["s-1", "t" * 32]) | any_field
frame_dicts = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["run", "stdin", "kill", "resume", "watch", "exit", "RUN", ""])
        | st.text(max_size=8)
        | json_scalars
    },
    optional={
        "code": code_texts | any_field | st.text(min_size=CODE_MAX - 4, max_size=CODE_MAX + 40),
        "stdin": st.none() | st.text(max_size=20) | surrogates | any_field,
        "timeout": timeouts,
        "runtime": runtimes,
        "files": file_lists,
        "stats": st.none() | st.booleans() | any_field,
        "filename": filenames,
        "session": secrets,
        "session_token": secrets,
        "data": st.none() | st.text(max_size=20) | surrogates | any_field,
        "eof": st.none() | st.booleans() | any_field,
        "id": st.none() | st.sampled_from(["5f0c", ""]) | any_field,
        "token": secrets,
        "after": st.none() | st.sampled_from([0, 1, -1, 10**30]) | any_field,
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
@example(raw='{"type": "run", "code": "print(input())", "stdin": "\\ud800\\n"}')  # echoed as U+FFFD
@example(raw='{"type": "resume", "id": "5f0c", "token": "t", "after": 0}')
@example(raw='{"type": "watch", "id": "5f0c", "token": "t"}')
@example(raw='{"type": "run", "code": "1", "session": "s1", "session_token": "t"}')
@example(raw='{"type": "run", "code": "1", "session": "s1"}')
@example(
    raw='{"type": "run", "code": "1/0", "filename": "hottest.py", "runtime": "python", "stats": true, '
    '"files": [{"path": "d/a.txt", "content": "YQ==", "encoding": "base64"}]}'
)
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
        st.fixed_dictionaries({"type": st.just("stdin"), "data": st.text(max_size=30) | surrogates}).map(dump),
        max_size=5,
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
