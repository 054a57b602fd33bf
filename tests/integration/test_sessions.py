"""Sessions (protocol v3) through the real server, real sandboxes and real clients: state kept
between runs as notebook cells keep it, one run at a time, interrupts that keep the session or end
it, idle expiry, isolation between sessions, and the HTTP routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from tests.conftest import ServerProcess, module_server, project_containers, until
from tests.wsclient import WsResult, collect

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

srv = module_server(
    {
        "SCE_SERVER_NAME": "testsrv",
        "SCE_SESSION_IDLE_TIMEOUT_S": "3",
        "SCE_SESSIONS_MAX": "4",
        "SCE_SESSIONS_PER_CLIENT": "4",
        "SCE_MAX_CONCURRENT_RUNS": "6",
        "SCE_PER_CLIENT_RUNS": "8",
    }
)


MADE: list[tuple[str, dict[str, Any]]] = []  # (server url, session): ended after each test


@pytest.fixture(autouse=True)
async def _end_sessions() -> AsyncIterator[None]:
    yield
    async with httpx.AsyncClient(timeout=30) as client:
        while MADE:
            url, session = MADE.pop()
            with contextlib.suppress(httpx.HTTPError):
                await client.delete(f"{url}/sessions/{session['id']}", headers={"X-Session-Token": session["token"]})


async def new_session(server: ServerProcess, **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.post(server.url + "/sessions", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    MADE.append((server.url, created))
    return created


async def run_in(server: ServerProcess, session: dict[str, Any], code: str, **fields: Any) -> WsResult:
    frame = {"type": "run", "code": code, "session": session["id"], "session_token": session["token"], **fields}
    async with asyncio.timeout(60), websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps(frame))
        return await collect(ws)


async def info(server: ServerProcess, session: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(
            server.url + f"/sessions/{session['id']}", headers={"X-Session-Token": session["token"]}
        )


def session_sandboxes(server: ServerProcess) -> list[dict[str, str]]:
    """The labels of this server's sandboxes that are not from its warm pool: its sessions'."""
    prefix = f"{socket.gethostname()}:{server.proc.pid}:"
    labels = [c.get("Labels") or {} for c in project_containers()]
    return [x for x in labels if x.get("sce.owner", "").startswith(prefix) and x.get("sce.pool") == "false"]


async def test_state_lives_between_runs_and_the_last_expression_is_the_result(srv: ServerProcess) -> None:
    session = await new_session(srv, files=[{"path": "data.txt", "content": "41"}])
    assert session["id"].startswith("testsrv.") and len(session["token"]) >= 22
    assert session["runtime"] == "python" and session["limits"]["idle_timeout_s"] == 3
    assert session["expires_at"].endswith("Z")
    first = await run_in(srv, session, "x = int(open('data.txt').read())\nprint('set')")
    assert first.text() == "set\n" and first.exit["session_alive"] is True and not first.of("result")
    assert first.exit["exit_code"] == 0 and not first.of("file")  # the file sent in is not sent back
    second = await run_in(srv, session, "def f(n):\n    return x + n\nf(1)")
    assert [r["text"] for r in second.of("result")] == ["42"]
    assert second.frames.index(second.of("result")[0]) < second.frames.index(second.exit)
    async with httpx.AsyncClient(timeout=60) as client:
        body = {"code": "open('out.txt', 'w').write('hi')\nf(2)", "session": session["id"]}
        answer = (await client.post(srv.url + "/run", json={**body, "session_token": session["token"]})).json()
    assert (answer["result"], answer["session_alive"], answer["exit_code"]) == ("43", True, 0)
    assert [f["path"] for f in answer["files"]] == ["out.txt"]
    # its sandbox's lease covers the session's maximum lifetime (3600 s) and a run's longest timeout
    assert [x["sce.lease_s"] for x in session_sandboxes(srv)] == [str(3600 + 60 + 120)]
    state = (await info(srv, session)).json()
    assert (state["state"], state["runs"], state["runtime"]) == ("idle", 3, "python")
    assert state["memory_bytes"] is None or state["memory_bytes"] > 0


async def test_an_exception_ends_the_run_not_the_session(srv: ServerProcess) -> None:
    session = await new_session(srv)
    failed = await run_in(srv, session, "kept = 'yes'\n{}['k']")
    assert (failed.exit["reason"], failed.exit["exit_code"], failed.exit["session_alive"]) == ("exit", 1, True)
    assert failed.exit["exception"] == {"name": "KeyError", "value": "'k'", "line": 2}
    assert "Traceback" in failed.text("stderr")
    exited = await run_in(srv, session, "import sys\nsys.exit(4)")
    assert (exited.exit["exit_code"], exited.exit["session_alive"]) == (4, True) and "exception" not in exited.exit
    assert (await run_in(srv, session, "kept")).of("result")[0]["text"] == "'yes'"


async def test_one_run_at_a_time(srv: ServerProcess) -> None:
    session = await new_session(srv)
    frame = {"type": "run", "code": "print('busy', flush=True)\nimport time\ntime.sleep(30)"}
    async with websockets.connect(srv.ws_url) as first:
        await first.send(json.dumps({**frame, "session": session["id"], "session_token": session["token"]}))
        async for message in first:
            if json.loads(message).get("data") == "busy\n":
                break
        refused = await run_in(srv, session, "print('second')")
        assert refused.error["code"] == "session_busy" and refused.close_code == 1013
        async with httpx.AsyncClient(timeout=30) as client:
            body = {"code": "1", "session": session["id"], "session_token": session["token"]}
            answer = await client.post(srv.url + "/run", json=body)
        assert answer.status_code == 409 and answer.json()["code"] == "session_busy"
        assert (await info(srv, session)).json()["state"] == "running"
        await first.send(json.dumps({"type": "kill"}))
        rest = await collect(first)
    assert (rest.exit["reason"], rest.exit["session_alive"]) == ("killed", True)  # the run in progress went on
    assert (await run_in(srv, session, "print('after')")).text() == "after\n"


async def test_a_timeout_interrupts_and_the_session_lives(srv: ServerProcess) -> None:
    session = await new_session(srv)
    slow = await run_in(srv, session, "import time\nn = 1\ntime.sleep(30)", timeout=1)
    assert (slow.exit["reason"], slow.exit["exit_code"], slow.exit["session_alive"]) == ("timeout", None, True)
    assert "exception" not in slow.exit  # the interrupt is not the program's exception
    assert (await run_in(srv, session, "n")).of("result")[0]["text"] == "1"


async def test_a_program_ignoring_the_interrupt_ends_the_session(srv: ServerProcess) -> None:
    session = await new_session(srv)
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)"
    stubborn = await run_in(srv, session, code, timeout=1)
    assert (stubborn.exit["reason"], stubborn.exit["session_alive"]) == ("timeout", False)
    assert stubborn.exit["duration_ms"] < 1000 + 2000 + 1500  # the timeout, the 2 s grace, some slack
    assert (await info(srv, session)).status_code == 404
    gone = await run_in(srv, session, "print(1)")
    assert gone.error["code"] == "not_found"


async def test_oom_ends_the_session(srv: ServerProcess) -> None:
    session = await new_session(srv)
    hog = await run_in(srv, session, "x = b'\\x01' * (400 << 20)")
    assert (hog.exit["reason"], hog.exit["session_alive"]) == ("oom", False)
    assert (await info(srv, session)).status_code == 404


async def test_two_sessions_are_isolated(srv: ServerProcess) -> None:
    a, b = await new_session(srv), await new_session(srv)
    await run_in(srv, a, "secret = 'a'\nopen('mine.txt', 'w').write('a')")
    seen = await run_in(srv, b, "import os\n('secret' in globals(), os.path.exists('mine.txt'))")
    assert seen.of("result")[0]["text"] == "(False, False)"


async def test_delete_kills_the_run_in_progress(srv: ServerProcess) -> None:
    session = await new_session(srv)
    frame = {"type": "run", "code": "print('on', flush=True)\nwhile True: pass"}
    async with websockets.connect(srv.ws_url) as ws:
        await ws.send(json.dumps({**frame, "session": session["id"], "session_token": session["token"]}))
        async for message in ws:
            if json.loads(message).get("data") == "on\n":
                break
        async with httpx.AsyncClient(timeout=30) as client:
            url = srv.url + f"/sessions/{session['id']}"
            wrong = await client.delete(url, headers={"X-Session-Token": "nope"})
            deleted = await client.delete(url, headers={"X-Session-Token": session["token"]})
        rest = await collect(ws)
    assert wrong.status_code == 404 and deleted.status_code == 204
    assert (rest.exit["reason"], rest.exit["session_alive"]) == ("killed", False)
    assert (await info(srv, session)).status_code == 404


async def test_an_idle_session_expires_and_its_sandbox_goes(srv: ServerProcess) -> None:
    session = await new_session(srv)
    await run_in(srv, session, "x = 1")

    async def gone() -> bool | str:
        status = (await info(srv, session)).status_code
        return True if status == 404 else f"GET answers {status}"

    waited = await until(gone, within=10, what="the idle session's end")
    assert waited > 1.5  # idle for 3 s from the run's end, not at once
    run = await run_in(srv, session, "x")
    assert run.error["code"] == "not_found"

    async def removed() -> bool | str:
        left = session_sandboxes(srv)  # every session of this module is idle past its timeout by now
        return True if not left else f"{len(left)} session sandbox(es) still there"

    await until(removed, within=15, what="the expired sessions' sandboxes' removal")


async def test_limits_and_bad_requests(srv: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        unknown = await client.post(srv.url + "/sessions", json={"runtime": "nope"})
        assert unknown.status_code == 400 and unknown.json()["code"] == "bad_message"
        missing = await client.get(srv.url + "/sessions/testsrv.0", headers={"X-Session-Token": "x"})
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    session = await new_session(srv)
    wrong_runtime = await run_in(srv, session, "1", runtime="scientific")
    assert wrong_runtime.error["code"] == "bad_message"


async def test_each_run_has_its_own_stdin_and_end_of_file(srv: ServerProcess) -> None:
    session = await new_session(srv)
    frame = {"type": "run", "code": "import sys\nprint(input('name? '))\nprint(repr(sys.stdin.read()))"}
    async with asyncio.timeout(60), websockets.connect(srv.ws_url) as ws:
        await ws.send(json.dumps({**frame, "session": session["id"], "session_token": session["token"]}))
        await ws.send(json.dumps({"type": "stdin", "data": "Ada\nmore"}))
        await ws.send(json.dumps({"type": "stdin", "eof": True}))
        first = await collect(ws)
    assert first.text() == "name? Ada\n'more'\n"
    assert [(f["data"], f["eof"]) for f in first.of("input")] == [("Ada\nmore", False), ("", True)]
    async with httpx.AsyncClient(timeout=60) as client:  # POST /run: the body's stdin, then end of file
        body = {"code": "print(repr(sys.stdin.read()))", "stdin": "given"}
        auth = {"session": session["id"], "session_token": session["token"]}
        second = (await client.post(srv.url + "/run", json={**body, **auth})).json()
    assert (second["stdout"], second["session_alive"]) == ("'given'\n", True)


async def test_what_threads_print_between_runs_comes_with_the_next_run(srv: ServerProcess) -> None:
    session = await new_session(srv)
    code = "import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.3), print('late'))).start()"
    first = await run_in(srv, session, code)
    assert first.text() == ""
    await asyncio.sleep(1)  # the scenario itself: no run in progress while the thread prints
    second = await run_in(srv, session, "print('next')")
    assert second.text() == "late\nnext\n"


async def test_cpu_is_each_runs_own(srv: ServerProcess) -> None:
    session = await new_session(srv)
    spin = await run_in(srv, session, "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8: pass")
    if spin.exit["cpu_ms"] is None:
        pytest.skip("this engine does not tell CPU time")
    await asyncio.sleep(1.5)  # where CPU comes from stats API samples (up to a second old), they catch up
    light = await run_in(srv, session, "print(1)")
    assert light.exit["cpu_ms"] is not None and light.exit["cpu_ms"] < 300  # not the session's 800+ so far


async def test_sessions_count_against_the_servers_capacity(server_factory: Any) -> None:
    server = server_factory(SCE_MAX_CONCURRENT_RUNS="1", SCE_SESSIONS_MAX="2", SCE_SESSIONS_PER_CLIENT="1")
    session = await new_session(server)
    async with httpx.AsyncClient(timeout=60) as client:
        second = await client.post(server.url + "/sessions", json={})  # past this client's share
        assert second.status_code == 503 and second.json()["code"] == "busy" and "Retry-After" in second.headers
        async with websockets.connect(server.ws_url) as ws:  # the session holds the only run slot
            await ws.send(json.dumps({"type": "run", "code": "print('one-shot')"}))
            first = json.loads(await ws.recv())
            assert first == {"type": "queued", "position": 1}
            url = server.url + f"/sessions/{session['id']}"
            assert (await client.delete(url, headers={"X-Session-Token": session["token"]})).status_code == 204
            rest = await collect(ws)
    assert rest.text() == "one-shot\n" and rest.exit["reason"] == "exit"


async def test_a_session_in_the_scientific_runtime(srv: ServerProcess) -> None:
    session = await new_session(srv, runtime="scientific")
    assert session["runtime"] == "scientific"
    await run_in(srv, session, "import numpy as np\na = np.arange(4)")
    assert (await run_in(srv, session, "int(a.sum())")).of("result")[0]["text"] == "6"
    plotted = await run_in(srv, session, "import matplotlib.pyplot as plt\nplt.plot(a)\nplt.show()")
    assert [i["mime"] for i in plotted.of("image")] == ["image/png"]


async def test_the_output_limit_interrupts_and_the_session_lives(srv: ServerProcess) -> None:
    session = await new_session(srv)
    flood = await run_in(srv, session, "n = 0\nwhile True:\n    n += 1\n    print('x' * 999)")
    assert (flood.exit["reason"], flood.exit["truncated"], flood.exit["session_alive"]) == ("output_limit", True, True)
    assert (await run_in(srv, session, "n > 0")).of("result")[0]["text"] == "True"


async def test_a_session_run_can_be_watched(srv: ServerProcess) -> None:
    session = await new_session(srv)
    frame = {"type": "run", "code": "print('a', flush=True)\ninput()\nprint('b')\n7 * 6"}
    async with asyncio.timeout(60), websockets.connect(srv.ws_url) as driver:
        await driver.send(json.dumps({**frame, "session": session["id"], "session_token": session["token"]}))
        started = json.loads(await driver.recv())
        async with websockets.connect(srv.ws_url) as watcher:
            await watcher.send(json.dumps({"type": "watch", "id": started["id"], "token": started["watch_token"]}))
            await driver.send(json.dumps({"type": "stdin", "data": "go\n", "eof": True}))
            watched = await collect(watcher)
        driven = await collect(driver)
    assert watched.text() == driven.text() == "a\nb\n"
    assert watched.of("result") == driven.of("result") and driven.of("result")[0]["text"] == "42"
    assert watched.exit["session_alive"] is True


async def test_a_stopping_server_ends_its_sessions_and_removes_their_sandboxes(server_factory: Any) -> None:
    server = server_factory(SCE_DRAIN_NOTICE_S="0")
    await new_session(server)
    assert len(session_sandboxes(server)) == 1
    assert server.stop() == 0
    assert session_sandboxes(server) == []


async def test_concurrent_requests_never_exceed_the_servers_sessions(server_factory: Any) -> None:
    server = server_factory(SCE_SESSIONS_MAX="2", SCE_SESSIONS_PER_CLIENT="5", SCE_MAX_CONCURRENT_RUNS="4")
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(client.post(server.url + "/sessions", json={}) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [201, 201, 503, 503]
    assert len(session_sandboxes(server)) == 2
