"""What the real server sends fits the published schema, frame by frame and answer by answer.

Held to the *strict* schema (``json_schema(strict=True)``, ``openapi(strict=True)``): no field
the model does not declare, every field it always sends present. Frames are captured from real
runs (a real server, real containers, real WebSocket clients), one test per way of reaching each
kind of frame, and every kind the server can send is required to have been seen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from app.schema import SERVER_FRAMES, json_schema, openapi
from tests.conftest import ServerProcess, module_server

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

# one run at a time, so a second one is queued; a short timeout and few files out, to reach them
served = module_server({"SCE_CODE_MAX_BYTES": "2000", "SCE_MAX_CONCURRENT_RUNS": "1", "SCE_FILES_OUT_MAX_COUNT": "3"})

STRICT = json_schema(strict=True)
# each type against its own model's schema, so a failure names the field (not just "no schema of oneOf")
BY_TYPE = {
    model.model_fields["type"].default: jsonschema.Draft202012Validator(
        {"$ref": f"#/$defs/{model.__name__}", "$defs": STRICT["$defs"]}
    )
    for model in SERVER_FRAMES
}
HTTP = openapi(strict=True)["components"]["schemas"]
SEEN: set[str] = set()  # every frame type validated here, checked complete by the last test
NOT_PRODUCIBLE: set[str] = set()  # every frame type the models declare is reached below


def http_validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": {"schemas": HTTP}})


def assert_fits(frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        assert frame.get("type") in BY_TYPE, frame
        errors = [e.message for e in BY_TYPE[frame["type"]].iter_errors(frame)]
        assert not errors, (frame, errors)
        SEEN.add(frame["type"])


def assert_answer_fits(model: str, answer: Any) -> None:
    errors = [e.message for e in http_validator(model).iter_errors(answer)]
    assert not errors, (answer, errors)


def assert_seq_counts_from_1(frames: list[dict[str, Any]]) -> None:
    after = frames[[f["type"] for f in frames].index("started") + 1 :]
    assert [f["seq"] for f in after] == list(range(1, len(after) + 1)), frames


async def read_all(ws: ClientConnection) -> list[dict[str, Any]]:
    frames = []
    try:
        async for message in ws:
            frames.append(json.loads(message))
    except websockets.ConnectionClosed:
        pass
    return frames


async def raw_frames(url: str, first: dict[str, Any], *more: dict[str, Any]) -> list[dict[str, Any]]:
    async with asyncio.timeout(60), websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(first))
        for frame in more:
            await ws.send(json.dumps(frame))
        return await read_all(ws)


async def next_frame(ws: ClientConnection, kind: str) -> dict[str, Any]:
    """The next frame of ``kind``, the ones before it validated too."""
    while True:
        frame = json.loads(await ws.recv())
        assert_fits([frame])
        if frame["type"] == kind:
            return frame


RICH = """\
import sys, time
print(open('in/data.txt').read())
print('to err', file=sys.stderr)
time.sleep(1.2)  # long enough for a stats frame
print(input())
for name in 'abcde':
    open(name + '.txt', 'w').write(name)
"""


async def test_every_frame_of_a_run_fits_the_strict_schema_with_seq_counting_from_1(served: ServerProcess) -> None:
    frames = await raw_frames(
        served.ws_url,
        {"type": "run", "code": RICH, "files": [{"path": "in/data.txt", "content": "hello"}], "stats": True},
        {"type": "stdin", "data": "typed\n", "eof": True},
    )
    assert_fits(frames)
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "started" and kinds[-1] == "exit"
    assert {"stdout", "stderr", "stats", "input", "file"} <= set(kinds), kinds
    assert_seq_counts_from_1(frames)
    # five files written, three sent: the exit says files were cut
    assert len([f for f in frames if f["type"] == "file"]) == 3 and frames[-1]["files_truncated"] is True
    assert frames[0]["token"] and frames[0]["watch_token"]


async def test_a_plain_exit_leaves_out_what_does_not_apply(served: ServerProcess) -> None:
    frames = await raw_frames(served.ws_url, {"type": "run", "code": "print(1)"})
    assert_fits(frames)
    exit_ = frames[-1]
    assert exit_["type"] == "exit" and exit_["exit_code"] == 0
    # sent only when they apply (files cut; v3: an exception, a session)
    assert not {"files_truncated", "exception", "session_alive"} & set(exit_), exit_


async def test_queued_watcher_and_resume_frames_fit_the_strict_schema(served: ServerProcess) -> None:
    async with asyncio.timeout(90), websockets.connect(served.ws_url) as first:
        await first.send(json.dumps({"type": "run", "code": "print('more?', input())"}))
        started = await next_frame(first, "started")
        # the only slot is taken: a second run waits in the queue
        async with websockets.connect(served.ws_url) as second:
            await second.send(json.dumps({"type": "run", "code": "print(2)"}))
            queued = json.loads(await second.recv())
            assert_fits([queued])
            assert queued == {"type": "queued", "position": 1}
            async with websockets.connect(served.ws_url) as watcher:
                await watcher.send(json.dumps({"type": "watch", "id": started["id"], "token": started["watch_token"]}))
                copy = await next_frame(watcher, "started")
                assert "token" not in copy and copy["watch_token"] == started["watch_token"]
                await first.send(json.dumps({"type": "stdin", "data": "yes\n"}))
                watched = await read_all(watcher)
            assert_fits(watched)
            assert {"type": "input", "data": "yes\n", "eof": False, "seq": 1} in watched
            driven = await read_all(first)
            assert_fits(driven)
            second_frames = await read_all(second)
            assert_fits(second_frames)
            assert_seq_counts_from_1(second_frames)
        async with websockets.connect(served.ws_url) as resumed:
            await resumed.send(
                json.dumps({"type": "resume", "id": started["id"], "token": started["token"], "after": 0})
            )
            again = await read_all(resumed)
        assert_fits(again)
        assert [f["seq"] for f in again] == list(range(1, len(again) + 1))
        assert again[-1]["type"] == "exit"


async def test_an_image_fits_the_strict_schema(served: ServerProcess) -> None:
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()\n"
    frames = await raw_frames(served.ws_url, {"type": "run", "code": code, "runtime": "scientific"})
    assert_fits(frames)
    images = [f for f in frames if f["type"] == "image"]
    assert len(images) == 1 and images[0]["mime"] == "image/png" and images[0]["data"], frames


async def test_error_frames_fit_the_strict_schema(served: ServerProcess) -> None:
    frames = await raw_frames(served.ws_url, {"type": "run", "code": "x" * 3000})
    assert_fits(frames)
    assert [f["code"] for f in frames] == ["code_too_large"]
    frames = await raw_frames(served.ws_url, {"type": "watch", "id": "nope", "token": "nope"})
    assert_fits(frames)
    assert [f["code"] for f in frames] == ["not_found"]
    frames = await raw_frames(served.ws_url, {"type": "run", "code": "1", "filename": "a/b.py"})
    assert_fits(frames)
    assert [f["code"] for f in frames] == ["bad_message"] and "filename" in frames[0]["message"]


def test_http_answers_fit_the_strict_openapi_schemas(served: ServerProcess) -> None:
    body = {"code": "import sys\nprint(input())\nopen('o.txt', 'w').write('x')\nsys.exit(2)", "stdin": "in\n"}
    answer = httpx.post(served.url + "/run", json=body, timeout=60)
    assert answer.status_code == 200
    assert_answer_fits("RunAnswer", answer.json())
    assert answer.json()["output"] == "in\n"  # the stdin is not echoed into the answer
    timed = httpx.post(served.url + "/run", json={"code": "while True: pass", "timeout": 1}, timeout=60)
    assert_answer_fits("RunAnswer", timed.json())
    assert timed.json()["error"] == "Execution timed out after 1 second."
    refused = httpx.post(served.url + "/run", json={"code": 5}, timeout=60)
    assert refused.status_code == 400
    assert_answer_fits("ErrorAnswer", refused.json())
    runtimes = httpx.get(served.url + "/runtimes", timeout=10)
    assert runtimes.status_code == 200
    for runtime in runtimes.json():
        assert_answer_fits("RuntimeInfo", runtime)


@pytest.fixture(scope="module")
def missing_image() -> Iterator[ServerProcess]:
    proc = ServerProcess({"SCE_SCIENTIFIC_IMAGE": "sce-sandbox-scientific:no-such-tag"}, healthy=False)
    yield proc
    proc.stop()


def test_a_runtime_whose_image_is_missing_is_listed_and_fits(missing_image: ServerProcess) -> None:
    runtimes = httpx.get(missing_image.url + "/runtimes", timeout=30).json()
    for runtime in runtimes:
        assert_answer_fits("RuntimeInfo", runtime)
    missing = {r["name"]: r for r in runtimes}["scientific"]
    assert missing["available"] is False and missing["python"] is None


def test_the_server_publishes_the_same_documents(served: ServerProcess) -> None:
    assert httpx.get(served.url + "/schema/frames.json", timeout=10).json() == json_schema()
    assert httpx.get(served.url + "/openapi.json", timeout=10).json() == openapi()


async def test_session_answers_and_frames_fit_the_strict_schemas(served: ServerProcess) -> None:
    """v3: the sessions' HTTP answers, a run's ``result`` frame, ``exit.session_alive`` and
    ``exit.exception``, over the WebSocket and POST /run."""
    async with httpx.AsyncClient(base_url=served.url, timeout=60) as http:
        made = await http.post("/sessions", json={})
        assert made.status_code == 201, made.text
        assert_answer_fits("SessionCreated", made.json())
        session = {"session": made.json()["id"], "session_token": made.json()["token"]}
        headers = {"X-Session-Token": session["session_token"]}
        try:
            assert (await http.post("/run", json={"code": "x = 41", **session})).status_code == 200
            frames = await raw_frames(served.ws_url, {"type": "run", "code": "x + 1", **session})
            assert_fits(frames)
            assert {k: v for k, v in frames[-2].items() if k != "seq"} == {"type": "result", "text": "42"}
            assert frames[-1]["session_alive"] is True and "exception" not in frames[-1]
            failed = await raw_frames(served.ws_url, {"type": "run", "code": "y = 1\n1 / x * {}['k']", **session})
            assert_fits(failed)
            assert failed[-1]["exception"] == {"name": "KeyError", "value": "'k'", "line": 2}
            answer = await http.post("/run", json={"code": "x", **session})
            assert_answer_fits("RunAnswer", answer.json())
            assert answer.json()["result"] == "41" and answer.json()["session_alive"] is True
            state = await http.get(f"/sessions/{session['session']}", headers=headers)
            assert_answer_fits("SessionInfo", state.json())
            assert state.json()["runs"] == 4 and state.json()["state"] == "idle"
        finally:
            assert (await http.delete(f"/sessions/{session['session']}", headers=headers)).status_code == 204


def test_every_kind_of_server_frame_was_seen() -> None:
    """Last in the file: the tests above reached every frame type the models declare."""
    kinds = {model.model_fields["type"].default for model in SERVER_FRAMES}
    assert kinds - NOT_PRODUCIBLE <= SEEN, kinds - NOT_PRODUCIBLE - SEEN
