"""What the real server sends fits the published schema, frame by frame and answer by answer.

The schema is generated from the protocol models; the server writes its frames itself. This is
where the two are held to each other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jsonschema
import pytest
import websockets

from app.schema import json_schema, openapi
from tests.conftest import ServerProcess, module_server

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

served = module_server({"SCE_CODE_MAX_BYTES": "2000"})

SCHEMA = json_schema()
SERVER_FRAME = jsonschema.Draft202012Validator({"$ref": "#/$defs/ServerFrame", "$defs": SCHEMA["$defs"]})
HTTP = openapi()["components"]["schemas"]


def http_validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": {"schemas": HTTP}})


async def raw_frames(url: str, first: dict[str, Any], *more: dict[str, Any]) -> list[dict[str, Any]]:
    async with asyncio.timeout(60), websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(first))
        for frame in more:
            await ws.send(json.dumps(frame))
        frames = []
        try:
            async for message in ws:
                frames.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
        return frames


def assert_fits(frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        errors = [e.message for e in SERVER_FRAME.iter_errors(frame)]
        assert not errors, (frame, errors)


RICH = """\
import sys
print(open('in/data.txt').read())
print('to err', file=sys.stderr)
print(input())
open('out.txt', 'w').write('written')
"""


async def test_every_frame_of_a_run_fits_the_schema_with_seq_counting_from_1(served: ServerProcess) -> None:
    frames = await raw_frames(
        served.ws_url,
        {"type": "run", "code": RICH, "files": [{"path": "in/data.txt", "content": "hello"}], "stats": True},
        {"type": "stdin", "data": "typed\n", "eof": True},
    )
    assert_fits(frames)
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "started" and kinds[-1] == "exit" and "file" in kinds and "stderr" in kinds
    assert [f["seq"] for f in frames[1:]] == list(range(1, len(frames)))


async def test_an_error_frame_fits_the_schema(served: ServerProcess) -> None:
    frames = await raw_frames(served.ws_url, {"type": "run", "code": "x" * 3000})
    assert_fits(frames)
    assert [f["code"] for f in frames] == ["code_too_large"]
    frames = await raw_frames(served.ws_url, {"type": "watch", "id": "nope", "token": "nope"})
    assert_fits(frames)
    assert [f["code"] for f in frames] == ["not_found"]


def test_http_answers_fit_the_openapi_schemas(served: ServerProcess) -> None:
    body = {"code": "import sys\nprint(1)\nopen('o.txt', 'w').write('x')\nsys.exit(2)"}
    answer = httpx.post(served.url + "/run", json=body, timeout=60)
    assert answer.status_code == 200
    assert not [e.message for e in http_validator("RunAnswer").iter_errors(answer.json())], answer.json()
    refused = httpx.post(served.url + "/run", json={"code": 5}, timeout=60)
    assert refused.status_code == 400
    assert not [e.message for e in http_validator("ErrorAnswer").iter_errors(refused.json())]
    runtimes = httpx.get(served.url + "/runtimes", timeout=10)
    assert runtimes.status_code == 200
    for runtime in runtimes.json():
        assert not [e.message for e in http_validator("RuntimeInfo").iter_errors(runtime)], runtime


def test_the_server_publishes_the_same_documents(served: ServerProcess) -> None:
    assert httpx.get(served.url + "/schema/frames.json", timeout=10).json() == json_schema()
    assert httpx.get(served.url + "/openapi.json", timeout=10).json() == openapi()
