"""Exceptions as data and file names (protocol v3) through the real server and real sandboxes:
the exit frame and the POST /run answer say which exception ended the program and on which line
of its own code, and only when an exception did."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.conftest import ServerProcess
from tests.wsclient import WsResult, collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]


async def run_with(server: ServerProcess, code: str, **fields: object) -> WsResult:
    async with asyncio.timeout(60), websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "run", "code": code, **fields}))
        return await collect(ws)


CODE = "def f(d):\n    return d['missing']\n\nprint('before')\nf({})\n"


async def test_an_uncaught_exception_is_on_the_exit_frame_with_its_line(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, CODE)
    exit_ = result.exit
    assert (exit_["reason"], exit_["exit_code"]) == ("exit", 1)
    assert exit_["exception"] == {"name": "KeyError", "value": "'missing'", "line": 2}
    assert result.text() == "before\n"
    assert 'File "main.py", line 5, in <module>' in result.text("stderr")  # the traceback is still there


async def test_a_syntax_error_names_its_line(server: ServerProcess) -> None:
    result = await run_ws(server.ws_url, "x = 1\nprint(x +)\n")
    assert result.exit["exception"]["name"] == "SyntaxError"
    assert result.exit["exception"]["line"] == 2


@pytest.mark.parametrize(
    ("code", "fields"),
    [
        ("import sys\nprint('bye')\nsys.exit(3)", {}),  # SystemExit is not an exception here
        ("print('fine')", {}),
        ("import time\ntime.sleep(30)", {"timeout": 1}),  # nor is the interrupt of a timeout
    ],
)
async def test_no_exception_field_on_any_other_end(server: ServerProcess, code: str, fields: dict[str, float]) -> None:
    result = await run_ws(server.ws_url, code, run_timeout=fields.get("timeout"))
    assert "exception" not in result.exit, result.exit


async def test_the_run_names_its_code_in_tracebacks(server: ServerProcess) -> None:
    result = await run_with(server, "print(__file__)\n1 / 0\n", filename="hottest.py")
    assert result.text() == "hottest.py\n"
    assert 'File "hottest.py", line 2, in <module>' in result.text("stderr")
    assert result.exit["exception"] == {"name": "ZeroDivisionError", "value": "division by zero", "line": 2}


@pytest.mark.parametrize("name", ["a/b.py", "..", "", "x" * 300])
async def test_a_file_name_with_folders_is_refused(server: ServerProcess, name: str) -> None:
    result = await run_with(server, "print(1)", filename=name)
    assert result.error["code"] == "bad_message" and "filename" in result.error["message"]
    assert result.close_code == 1008 and not result.of("started")


async def test_post_run_answers_with_the_exception(server: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        failed = (await client.post(server.url + "/run", json={"code": CODE, "filename": "cell.py"})).json()
        fine = (await client.post(server.url + "/run", json={"code": "print(1)"})).json()
        bad = await client.post(server.url + "/run", json={"code": "print(1)", "filename": "../x.py"})
    assert failed["exception"] == {"name": "KeyError", "value": "'missing'", "line": 2}
    assert 'File "cell.py", line 5' in failed["stderr"]
    assert "exception" not in fine and fine["exit_code"] == 0
    assert bad.status_code == 400 and bad.json()["code"] == "bad_message"
