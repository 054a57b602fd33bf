"""Round three's last part (issue 30): the hostile corpus's ideas over the surfaces sessions and MCP
added. A session's state read by another client, guessed and crossed session tokens, programs
that ignore the interrupt, a program that tampers with its session's control channel or forges
its records, bombs in one session beside another, the session limits, hostile MCP tool
arguments, an MCP session id presented by another client, and a vanished agent.

Real server, real containers, real clients; runs under the runtime in ``SCE_RUNTIME`` like the
corpus (``SCE_RUNTIME=runsc pytest -m security tests/security/test_session_surfaces.py``), and
``python -m tests.security.report`` runs it with ``test_surfaces.py`` for docs/SECURITY_NOTES.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import mcp_types as mt
import pytest
import websockets
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from app.sandbox.session import BETWEEN_RUNS_MAX_BYTES, INTERRUPT_GRACE_S
from tests.conftest import ServerProcess, module_server, project_containers, server_containers, until
from tests.wsclient import WsResult, collect

pytestmark = [pytest.mark.docker, pytest.mark.security, pytest.mark.timeout(180)]

TOKENS = [f"sce-t{i}-" + secrets.token_hex(8) for i in range(4)]
A, B, C, D = ({"Authorization": f"Bearer {t}"} for t in TOKENS)
OUTPUT_BYTES = 4_000_000  # room for the 1 MiB carried between runs to be measured, not cut
srv = module_server(
    {
        "SCE_API_TOKENS": ",".join(TOKENS),
        "SCE_SESSIONS_PER_CLIENT": "3",
        "SCE_SESSIONS_MAX": "6",
        "SCE_MAX_CONCURRENT_RUNS": "8",
        "SCE_PER_CLIENT_RUNS": "8",
        "SCE_POOL_SIZE": "1",
        "SCE_OUTPUT_BYTES": str(OUTPUT_BYTES),
        "SCE_SERVER_NAME": "sec",
    }
)
MADE: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # ended after each test


@pytest.fixture(autouse=True)
async def _end_sessions() -> AsyncIterator[None]:
    yield
    async with httpx.AsyncClient(timeout=30) as http:
        while MADE:
            url, auth, session = MADE.pop()
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(
                    f"{url}/sessions/{session['id']}", headers={**auth, "X-Session-Token": session["token"]}
                )


async def new_session(server: ServerProcess, auth: dict[str, str], **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(server.url + "/sessions", json=body, headers=auth)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    MADE.append((server.url, auth, created))
    return created


async def run_in(
    server: ServerProcess, auth: dict[str, str], session_id: str, token: str, code: str, **fields: Any
) -> WsResult:
    frame = {"type": "run", "code": code, "session": session_id, "session_token": token, **fields}
    async with asyncio.timeout(90), websockets.connect(server.ws_url, additional_headers=auth, max_size=None) as ws:
        await ws.send(json.dumps(frame))
        return await collect(ws)


async def one_shot(server: ServerProcess, auth: dict[str, str], code: str) -> WsResult:
    async with asyncio.timeout(90), websockets.connect(server.ws_url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "run", "code": code}))
        return await collect(ws)


def session_sandboxes(server: ServerProcess) -> list[str]:
    """This server's sandboxes that are not from its warm pool: its sessions'."""
    prefix = f"{socket.gethostname()}:{server.proc.pid}:"
    found = []
    for c in project_containers():
        labels = c.get("Labels") or {}
        if labels.get("sce.owner", "").startswith(prefix) and labels.get("sce.pool") == "false":
            found.append(c["Id"])
    return found


async def gone_from_the_engine(server: ServerProcess, ids: set[str], within: float = 20) -> float:
    """Wait until none of ``ids`` (session sandboxes) is left on the engine; how long it took."""

    async def removed() -> bool | str:
        left = ids & set(await asyncio.to_thread(session_sandboxes, server))
        return True if not left else f"{len(left)} of the session's sandboxes still on the engine"

    return await until(removed, within, "the ended session's sandbox removed", step=0.2)


# --- state, tokens, ids ---------------------------------------------------------------------------

READ_STATE = (
    "import os\nprint('SEEN', 'secret' in globals(), os.path.exists('mine.txt'), "
    "[n for n in os.listdir('.') if not n.startswith('.')])"
)


async def test_a_sessions_state_is_not_readable_by_another_client_session_or_run(srv: ServerProcess) -> None:
    """Client A's session holds a secret in a name and a file; client B's session, A's own other
    session and A's one-shot run see neither; wrong, crossed, near-miss and guessed tokens for
    A's session from B get one indistinguishable not_found on GET, DELETE, the WebSocket run and
    POST /run; none of them disturbs the session, whose state is intact afterwards."""
    mine = await new_session(srv, A)
    other = await new_session(srv, B)
    sibling = await new_session(srv, A)
    secret = "sess-secret-" + secrets.token_hex(8)
    set_up = await run_in(
        srv, A, mine["id"], mine["token"], f"secret = {secret!r}\nopen('mine.txt', 'w').write(secret)"
    )
    assert set_up.exit["exit_code"] == 0 and set_up.exit["session_alive"] is True
    views = [
        await run_in(srv, B, other["id"], other["token"], READ_STATE),
        await run_in(srv, A, sibling["id"], sibling["token"], READ_STATE),
        await one_shot(srv, A, READ_STATE),
    ]
    for view in views:
        assert view.text().startswith("SEEN False False"), view.frames
        assert secret not in json.dumps(view.frames)
    near = mine["token"][:-1] + ("B" if mine["token"][-1] == "A" else "A")
    wrong_tokens = [
        *(secrets.token_urlsafe(24) for _ in range(8)),
        near,
        "",
        other["token"],
        mine["token"].upper(),
        mine["token"] + "x",
        mine["token"][:-4],
        "\ud800",  # a lone surrogate, as JSON allows
    ]
    answers: list[tuple[str, int, str]] = []
    url = f"{srv.url}/sessions/{mine['id']}"
    async with httpx.AsyncClient(timeout=60) as http:
        for token in wrong_tokens:
            header_ok = token.isascii() and token.isprintable()
            if header_ok:
                got = await http.get(url, headers={**B, "X-Session-Token": token})
                answers.append(("GET", got.status_code, got.json()["error"]))
                deleted = await http.delete(url, headers={**B, "X-Session-Token": token})
                answers.append(("DELETE", deleted.status_code, deleted.json()["error"]))
            body = {"code": "print(secret)", "session": mine["id"], "session_token": token}
            raw = json.dumps(body)  # ASCII escapes: a lone surrogate is valid JSON
            posted = await http.post(srv.url + "/run", content=raw, headers={**B, "Content-Type": "application/json"})
            answers.append(("POST /run", posted.status_code, posted.json()["error"]))
            ws = await run_in(srv, B, mine["id"], token, "print(secret)")
            assert ws.close_code == 1008 and [f["type"] for f in ws.frames] == ["error"], ws.frames
            answers.append(("ws", 404 if ws.error["code"] == "not_found" else 0, ws.error["message"]))
        # the right token with another session's id, and ids that are near the real one
        near_id = mine["id"][:-1] + ("1" if mine["id"].endswith("0") else "0")  # one character off, never the same
        for sid in (other["id"], mine["id"].upper(), near_id, "sec." + secrets.token_hex(16)):
            assert sid != mine["id"]
            got = await http.get(f"{srv.url}/sessions/{sid}", headers={**A, "X-Session-Token": mine["token"]})
            answers.append(("GET id", got.status_code, got.json()["error"]))
    assert {status for _, status, _ in answers} == {404}, answers
    assert len({message.split(" (")[0] for _, _, message in answers}) == 1, answers  # no oracle
    after = await run_in(srv, A, mine["id"], mine["token"], "print(secret == open('mine.txt').read())\nsecret[:12]")
    assert after.text() == "True\n" and after.of("result")[0]["text"] == "'sess-secret-'"


async def test_session_ids_and_tokens_are_long_random_and_an_ended_session_is_not_found(srv: ServerProcess) -> None:
    """Ids carry 128 random bits after the server's name, tokens 192 (``secrets``); all distinct;
    once a session is deleted its id and token open nothing, on any route; no token is logged."""
    made = [await new_session(srv, C) for _ in range(3)]
    ids = [s["id"].removeprefix("sec.") for s in made]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)  # 32 hex digits: 128 bits
    assert all(len(s["token"]) == 32 for s in made)  # token_urlsafe(24): 24 bytes, 192 bits
    assert len(set(ids)) == 3 and len({s["token"] for s in made}) == 3
    ended = made[0]
    auth = {**C, "X-Session-Token": ended["token"]}
    async with httpx.AsyncClient(timeout=60) as http:
        assert (await http.delete(f"{srv.url}/sessions/{ended['id']}", headers=auth)).status_code == 204
        again = await http.delete(f"{srv.url}/sessions/{ended['id']}", headers=auth)
        info = await http.get(f"{srv.url}/sessions/{ended['id']}", headers=auth)
        body = {"code": "1", "session": ended["id"], "session_token": ended["token"]}
        posted = await http.post(srv.url + "/run", json=body, headers=C)
    ws = await run_in(srv, C, ended["id"], ended["token"], "1")
    assert again.status_code == info.status_code == posted.status_code == 404
    assert ws.error["code"] == "not_found" and ws.close_code == 1008
    log = srv.log()
    assert not [s for s in made if s["token"] in log], "a session token reached the server's log"


def test_the_token_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """``lookup`` compares the presented token with ``hmac.compare_digest`` (whose time does not
    depend on where the first difference is), for a known id and an unknown one alike."""
    import hmac
    from types import SimpleNamespace

    from app.errors import NotFound
    from app.server import sessions

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(sessions.hmac, "compare_digest", spy)
    registry = object.__new__(sessions.SessionRegistry)
    registry.sessions = {"s.1": SimpleNamespace(token="right-token")}  # type: ignore[dict-item]
    assert registry.lookup("s.1", "right-token") is registry.sessions["s.1"]
    with pytest.raises(NotFound):
        registry.lookup("s.1", "wrong-token")
    assert calls == [(b"right-token", b"right-token"), (b"wrong-token", b"right-token")]


# --- programs that do not stop on an interrupt ------------------------------------------------------

STUBBORN = {
    "catches_keyboardinterrupt": (
        "import time\nprint('up', flush=True)\nwhile True:\n    try:\n        time.sleep(60)\n"
        "    except KeyboardInterrupt:\n        pass\n"
    ),
    "sig_ign": (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('up', flush=True)\ntime.sleep(60)"
    ),
    "blocked_sigint_read_on_a_pipe": (
        "import os, signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\nr, w = os.pipe()\n"
        "print('up', flush=True)\nos.read(r, 1)"
    ),
    "handler_replaced_busy_loop": (
        "import signal\nsignal.signal(signal.SIGINT, lambda *a: None)\nprint('up', flush=True)\nwhile True: pass"
    ),
    "steals_the_control_channel": (  # reads the session's control pipe: the interrupt never arrives
        "import os, stat\nfds = [int(n) for n in os.listdir('/proc/self/fd') if int(n) > 2]\n"
        "ctl = [f for f in fds if os.path.exists(f'/proc/self/fd/{f}') and "
        "not stat.S_ISDIR(os.fstat(f).st_mode) and "
        "os.readlink(f'/proc/self/fd/{f}').startswith(('pipe:', 'socket:'))]\n"
        "print('up', ctl, flush=True)\nwhile True:\n    for f in ctl:\n        try:\n"
        "            os.set_blocking(f, False)\n"
        "            os.read(f, 65536)\n        except OSError:\n            pass\n"
    ),
    "thread_holds_main_in_join": (
        "import threading, time, signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "t = threading.Thread(target=time.sleep, args=(60,))\nt.start()\nprint('up', flush=True)\nt.join()"
    ),
}


@pytest.mark.parametrize("name", list(STUBBORN))
async def test_a_program_that_ignores_the_interrupt_ends_its_session(srv: ServerProcess, name: str) -> None:
    """Timeout 1 s: the interrupt is ignored (or never arrives), so after the 2 s grace the sandbox is
    killed: ``session_alive`` false within the timeout + grace + slack, the session is not_found,
    and its sandbox is gone from the engine."""
    earlier = set(await asyncio.to_thread(session_sandboxes, srv))
    session = await new_session(srv, D)
    mine = set(await asyncio.to_thread(session_sandboxes, srv)) - earlier
    assert len(mine) == 1
    t0 = time.monotonic()
    stuck = await run_in(srv, D, session["id"], session["token"], STUBBORN[name], timeout=1)
    took = time.monotonic() - t0
    assert stuck.text().startswith("up"), stuck.frames
    assert took < 1 + INTERRUPT_GRACE_S + 4, f"{took:.1f} s from the run frame to the exit"
    if name == "steals_the_control_channel" and stuck.exit["session_alive"] is True:
        # the session's own reader won the race for the interrupt, and the program stopped on it;
        # what it stole may have broken the channel: the next run then ends the session in bounds
        t1 = time.monotonic()
        nxt = await run_in(srv, D, session["id"], session["token"], "print('next')", timeout=1)
        print(f"STUCK {name}: the interrupt arrived; next run {nxt.exit} in {time.monotonic() - t1:.2f} s")
        assert time.monotonic() - t1 < 1 + INTERRUPT_GRACE_S + 4
        if nxt.exit["session_alive"] is True:
            return
    else:
        assert (stuck.exit["reason"], stuck.exit["session_alive"]) == ("timeout", False), stuck.exit
    async with httpx.AsyncClient(timeout=30) as http:
        info = await http.get(f"{srv.url}/sessions/{session['id']}", headers={**D, "X-Session-Token": session["token"]})
    assert info.status_code == 404
    again = await run_in(srv, D, session["id"], session["token"], "print(1)")
    assert again.error["code"] == "not_found"
    removal = await gone_from_the_engine(srv, mine)
    print(f"STUCK {name}: exit after {took:.2f} s, duration_ms {stuck.exit['duration_ms']}, removed +{removal:.2f} s")


# --- a program that tampers with its session -----------------------------------------------------------

FORGER = (  # 40 MiB of forged result records: the run's budget (8 MB as sent) ends it part-way
    "import sys\nch = sys._getframe(1).f_globals['_channel']\n"
    "print('forging', flush=True)\n"
    "for _ in range(40):\n"
    "    ch.emit(b'result', None, b'R' * (1 << 20), head=b'{}')\n"
)


async def test_forged_records_stay_in_their_run_and_an_interrupt_never_cuts_one(srv: ServerProcess) -> None:
    """A session program reaches its channel and forges 40 result records of 1 MiB each. Its frames
    stop at the run's budget
    (2 x output_bytes as sent: ``output_limit``), and the interrupt that ends it waits for the
    record being written (one cut short hid the end records, so the session was killed after its
    grace in 4 of 9 runs before that fix): three times over, the session lives on. A run in another
    session meanwhile is untouched."""
    forger = await new_session(srv, A)
    bystander = await new_session(srv, B)
    ticks = "import time\nfor i in range(20):\n    print('tick', i, flush=True)\n    time.sleep(0.05)\n'done'"
    for attempt in range(3):
        forged, calm = await asyncio.gather(
            run_in(srv, A, forger["id"], forger["token"], FORGER),
            run_in(srv, B, bystander["id"], bystander["token"], ticks),
        )
        sent = sum(len(json.dumps(f)) for f in forged.frames)
        assert sent <= 2 * OUTPUT_BYTES + 4096, f"{sent} bytes of frames"
        assert forged.exit["reason"] == "output_limit" and forged.exit["truncated"], forged.exit
        assert forged.exit["session_alive"] is True, (attempt, forged.exit)
        assert calm.text() == "".join(f"tick {i}\n" for i in range(20)) and calm.of("result")[0]["text"] == "'done'"
        assert calm.exit["session_alive"] is True
        results = len(forged.of("result"))
        print(f"FORGED {attempt}: {results} result frames, {sent} bytes as sent, {forged.exit['duration_ms']} ms")
    after = await run_in(srv, A, forger["id"], forger["token"], "print('still here')")
    assert after.text() == "still here\n" and after.exit["session_alive"] is True, after.frames[-3:]


async def test_fake_control_frames_on_stdout_are_data(srv: ServerProcess) -> None:
    session = await new_session(srv, A)
    fake = "import sys\nsys.stdout.write('K 0\\nP 5\\nhello\\nE 0\\n')\nsys.stdout.flush()\nimport os\n" + (
        "for fd in (0, 3, 4, 5):\n    try:\n        os.write(fd, b'K 0\\n')\n        print('wrote', fd)\n"
        "    except OSError as e:\n        print('refused', fd, e.errno)\n"
        "for n in sorted(os.listdir('/proc/self/fd')):\n    try:\n"
        "        print('fd', n, os.readlink('/proc/self/fd/' + n))\n"
        "    except OSError:\n        pass\n"
    )
    run = await run_in(srv, A, session["id"], session["token"], fake)
    assert run.text().startswith("K 0\nP 5\nhello\nE 0\n") and run.exit["exit_code"] == 0, run.frames
    assert run.exit["session_alive"] is True
    nxt = await run_in(srv, A, session["id"], session["token"], "print('next')")
    assert nxt.text() == "next\n" and nxt.exit["reason"] == "exit"
    print("CONTROL", run.text().splitlines()[4:])


LIAR = (
    "import sys, json\nch = sys._getframe(1).f_globals['_channel']\n"
    "ch.emit(b'exception', None, b'', head=json.dumps(@BAD@).encode())\n"
    "sys.exit(1)\n"
)
BAD_EXCEPTIONS = {
    "huge_fields": "{'name': 'N' * 100000, 'value': 'V' * 10**6, 'line': 10**30}",
    "ill_typed": "{'name': 5, 'value': [], 'line': 'x'}",
    "negative_line": "{'name': 'E', 'value': 'v', 'line': -1}",
    "not_an_object": "[1, 2, 3]",
    "line_past_any_int": "{'name': 'E', 'value': 'v', 'line': 10**30}",
}


@pytest.mark.parametrize("name", list(BAD_EXCEPTIONS))
async def test_a_forged_exception_record_is_cut_or_dropped(srv: ServerProcess, name: str) -> None:
    """The program's own word on its exception, forged: at worst it misreports its own run, within
    the protocol's bounds; never an internal error, and the session goes on."""
    session = await new_session(srv, C)
    run = await run_in(srv, C, session["id"], session["token"], LIAR.replace("@BAD@", BAD_EXCEPTIONS[name]))
    assert run.exit["reason"] == "exit" and run.exit["exit_code"] == 1, run.frames
    exception = run.exit.get("exception")
    if exception is not None:
        assert len(exception["name"]) <= 256 and len(exception["value"]) <= 4096, exception
        assert exception["line"] is None or 1 <= exception["line"] < 2**31, exception
    again = await run_in(srv, C, session["id"], session["token"], "print('on')")
    assert again.text() == "on\n" and again.exit["session_alive"] is True
    print(f"EXCEPTION {name}: {json.dumps(exception)[:120]}")


FLOOD = (
    "import threading, time, os, sys\ng = sys._getframe(1).f_globals  # the bootstrap's\ndef flood():\n"
    "    end = time.monotonic() + 3\n    while time.monotonic() < end:\n        os.write(1, b'z' * 65535 + b'\\n')\n"
    "@FORGE@"
    "threading.Thread(target=flood, daemon=True).start()"
)
# a begin record on both streams with whatever run's nonce is current: ends the carry-over early
FORGED_BEGINS = (
    "        ch = g['_channel']\n        ch.emit(b'begin', None, head=b'{}')\n"
    "        os.write(2, g['MARKER'] + ch.nonce + b':begin:2:0\\n{}')\n"
)


@pytest.mark.parametrize("forged", [False, True], ids=["flood", "flood_with_forged_begins"])
async def test_what_threads_print_between_runs_is_bounded(srv: ServerProcess, forged: bool) -> None:
    """A thread left writing 64 KiB chunks for 3 s after its run ended (tens of MiB): the next run
    receives at most the 1 MiB kept between runs, then its own output, however much of the flood
    is still on its way when that run starts (the program's ``begin`` records divide the stream).
    A thread that forges ``begin`` records (with the nonce of whichever run is current) only moves
    that division: what follows counts as the next run's own output, against its output cap."""
    session = await new_session(srv, C)
    first = await run_in(
        srv, C, session["id"], session["token"], FLOOD.replace("@FORGE@", FORGED_BEGINS if forged else "")
    )
    assert first.exit["session_alive"] is True, first.exit
    await asyncio.sleep(4)  # the scenario itself: no run in progress while the thread writes
    second = await run_in(srv, C, session["id"], session["token"], "print('next')")
    out = second.text()
    if not forged:
        assert out.endswith("next\n") and second.exit["reason"] == "exit", (len(out.encode()), second.exit)
        carried = len(out.encode()) - len("next\n")
        assert carried <= BETWEEN_RUNS_MAX_BYTES, f"{carried} bytes carried over"
        print(f"CARRIED {carried} bytes (first run: {first.exit['stdout_bytes']} bytes)")
        return
    assert second.exit["reason"] in ("exit", "output_limit"), second.exit
    received = len(out.encode()) + len(second.text("stderr").encode())
    assert received <= BETWEEN_RUNS_MAX_BYTES + OUTPUT_BYTES, f"{received} bytes in the next run"
    assert second.exit["session_alive"] is True, second.exit  # the session goes on
    after = await run_in(srv, C, session["id"], session["token"], "print('after')")
    assert after.text().endswith("after\n"), after.exit
    print(f"CARRIED past forged begin records: the next run received {received} bytes, {second.exit['reason']}")


BOMBS = {
    "memory": ("x = []\nwhile True:\n    x.append(b'\\x01' * (8 << 20))", ("oom",)),
    "fork": (
        "import os\nprint('up', flush=True)\nwhile True:\n    try:\n        os.fork()\n"
        "    except OSError:\n        pass",
        ("timeout", "oom"),
    ),
}


@pytest.mark.parametrize("name", list(BOMBS))
async def test_a_bomb_in_one_session_leaves_another_alone(srv: ServerProcess, name: str) -> None:
    """A memory bomb ends its session (``oom``, ``session_alive`` false, its sandbox removed); a fork
    bomb's run ends at its timeout, and deleting its session removes its sandbox; meanwhile a run in
    another client's session prints every line and keeps its state."""
    code, reasons = BOMBS[name]
    earlier = set(await asyncio.to_thread(session_sandboxes, srv))  # earlier tests' may still be going
    neighbour = await new_session(srv, B)
    await run_in(srv, B, neighbour["id"], neighbour["token"], "kept = 41")
    theirs = set(await asyncio.to_thread(session_sandboxes, srv)) - earlier
    bomber = await new_session(srv, A)
    mine = set(await asyncio.to_thread(session_sandboxes, srv)) - earlier - theirs
    assert len(theirs) == len(mine) == 1
    ticks = "import time\nfor i in range(30):\n    print(i, flush=True)\n    time.sleep(0.1)\nkept + 1"
    t0 = time.monotonic()
    bomb, calm = await asyncio.gather(
        run_in(srv, A, bomber["id"], bomber["token"], code, timeout=3),
        run_in(srv, B, neighbour["id"], neighbour["token"], ticks),
    )
    took = time.monotonic() - t0
    assert bomb.exit["reason"] in reasons, bomb.exit
    assert took < 3 + INTERRUPT_GRACE_S + 12, f"{took:.1f} s"
    assert calm.text() == "".join(f"{i}\n" for i in range(30)) and calm.of("result")[0]["text"] == "42"
    assert calm.exit["session_alive"] is True
    alive = bomb.exit["session_alive"]
    if name == "memory":
        assert alive is False
    async with httpx.AsyncClient(timeout=30) as http:
        url = f"{srv.url}/sessions/{bomber['id']}"
        deleted = await http.delete(url, headers={**A, "X-Session-Token": bomber["token"]})
    assert deleted.status_code == (204 if alive else 404)
    removal = await gone_from_the_engine(srv, mine)
    assert theirs <= set(await asyncio.to_thread(session_sandboxes, srv))  # the neighbour's lives on
    print(
        f"BOMB {name}: {bomb.exit['reason']} duration_ms {bomb.exit['duration_ms']}, session_alive {alive}; "
        f"removed +{removal:.2f} s; both runs ended after {took:.2f} s"
    )


# --- session limits ----------------------------------------------------------------------------------


async def test_session_and_run_limits_hold_per_client_and_per_server(server_factory: Any) -> None:
    """Two run slots, one session per client, one run per client: A's second session is refused; B's
    session takes the last slot, so C's session is refused and C's run waits in the queue (the
    engine never holds more than two sandboxes); when A's session ends, C's run goes. The same
    client's MCP runs count against its share as its /run runs do."""
    server = server_factory(
        SCE_API_TOKENS=",".join(TOKENS),
        SCE_MAX_CONCURRENT_RUNS="2",
        SCE_SESSIONS_MAX="4",
        SCE_SESSIONS_PER_CLIENT="1",
        SCE_PER_CLIENT_RUNS="1",
        SCE_POOL_SIZE="0",
    )
    a = await new_session(server, A)
    async with httpx.AsyncClient(timeout=60) as http:
        second = await http.post(server.url + "/sessions", json={}, headers=A)
        assert second.status_code == 503 and "already holds 1 session" in second.json()["error"], second.text
        await new_session(server, B)
        third = await http.post(server.url + "/sessions", json={}, headers=C)
        assert third.status_code == 503 and third.json()["code"] == "busy", third.text
        async with websockets.connect(server.ws_url, additional_headers=C) as ws:
            await ws.send(json.dumps({"type": "run", "code": "print('waited')"}))
            assert json.loads(await ws.recv())["type"] == "queued"
            held = len(await asyncio.to_thread(server_containers, server.proc.pid))
            assert held <= 2, f"{held} sandboxes for a server of 2 slots"
            url = f"{server.url}/sessions/{a['id']}"
            assert (await http.delete(url, headers={**A, "X-Session-Token": a["token"]})).status_code == 204
            waited = await collect(ws)
    assert waited.text() == "waited\n" and waited.exit["reason"] == "exit"
    # MCP: one run at a time for client D, whether it comes by /mcp or by /run
    async with connect(server.url, headers=D) as client:
        slow = asyncio.create_task(
            client.call_tool("run_python", {"code": "import time\ntime.sleep(3)\nprint('slow')"})
        )
        await asyncio.sleep(1)  # the scenario: the first call is running (nothing announces it over MCP)
        refused = await client.call_tool("run_python", {"code": "print('second')"})
        async with httpx.AsyncClient(timeout=60) as http:
            plain = await http.post(server.url + "/run", json={"code": "print(1)"}, headers=D)
        first = await slow
    assert first.is_error is False and text_of(first).startswith("slow\n"), text_of(first)
    assert refused.is_error is True and refused.structured_content is not None
    assert refused.structured_content["code"] == "busy" and "already has 1" in text_of(refused), text_of(refused)
    assert plain.status_code == 503 and plain.json()["code"] == "busy"


# --- MCP ----------------------------------------------------------------------------------------------------

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@asynccontextmanager
async def connect(url: str, *, mode: str = "auto", headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=120))
    async with http, Client(streamable_http_client(url + "/mcp", http_client=http), mode=mode) as client:
        yield client


def text_of(result: mt.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, mt.TextContent)
    return first.text


HOSTILE_ARGUMENTS: dict[str, dict[str, Any]] = {
    "code_not_a_string": {"code": 123},
    "code_null": {"code": None},
    "code_missing": {"stdin": "x"},
    "code_a_list": {"code": ["print(1)"]},
    "code_over_the_limit": {"code": "#" * 600_000},
    "runtime_unknown": {"code": "1", "runtime": "nope"},
    "runtime_a_path": {"code": "1", "runtime": "../python"},
    "runtime_a_number": {"code": "1", "runtime": 5},
    "timeout_negative": {"code": "1", "timeout": -1},
    "timeout_zero": {"code": "1", "timeout": 0},
    "timeout_a_string": {"code": "1", "timeout": "10"},
    "timeout_a_bool": {"code": "1", "timeout": True},
    "stdin_a_number": {"code": "1", "stdin": 5},
    "stdin_a_list": {"code": "1", "stdin": ["a"]},
    "files_not_a_list": {"code": "1", "files": "a.txt"},
    "files_traversal": {"code": "1", "files": [{"path": "../../etc/passwd", "content": "x"}]},
    "files_absolute": {"code": "1", "files": [{"path": "/etc/passwd", "content": "x"}]},
    "files_nul": {"code": "1", "files": [{"path": "a\x00b", "content": ""}]},
    "files_content_a_number": {"code": "1", "files": [{"path": "a", "content": 5}]},
    "files_bad_base64": {"code": "1", "files": [{"path": "a", "content": "!!", "encoding": "base64"}]},
    "files_ten_thousand": {"code": "1", "files": [{"path": f"f{i}", "content": ""} for i in range(10_000)]},
    "keep_state_a_string": {"code": "1", "keep_state": "yes"},
}


async def test_hostile_mcp_tool_arguments_are_clear_refusals(srv: ServerProcess) -> None:
    """Each hostile argument set gets an ``isError`` result naming what was wrong (or, past the
    request size, an HTTP refusal the SDK raises): never an internal error, never a run of the
    hostile value, and the server serves on."""
    outcomes: dict[str, str] = {}
    async with connect(srv.url, headers=A) as client:
        for name, arguments in HOSTILE_ARGUMENTS.items():
            try:
                result = await client.call_tool("run_python", arguments)
            except Exception as exc:  # the SDK's own error: a JSON-RPC error or an HTTP refusal
                outcomes[name] = f"raised {type(exc).__name__}: {exc}"[:160]
                continue
            text = text_of(result)
            code = (result.structured_content or {}).get("code")
            outcomes[name] = f"isError {code}: {text}"[:160]
            assert result.is_error is True, (name, text)
            assert code in ("bad_message", "code_too_large", "message_too_large"), (name, result.structured_content)
        fine = await client.call_tool("run_python", {"code": "print('still serving')"})
        clamped = await client.call_tool("run_python", {"code": "print('clamped')", "timeout": 1e308})
        smuggled = {"code": "print('one-shot')", "session": "sec.0", "session_token": "x", "__proto__": 1}
        ignored = await client.call_tool("run_python", smuggled)
    assert fine.is_error is False and text_of(fine).startswith("still serving\n")
    assert clamped.is_error is False and text_of(clamped).startswith("clamped\n")  # to the maximum, as documented
    # arguments that are not the tool's are ignored: a session cannot be named through MCP
    assert ignored.is_error is False and text_of(ignored).startswith("one-shot\n")
    assert ignored.structured_content is not None and "session_alive" not in ignored.structured_content
    for name, outcome in outcomes.items():
        assert "internal" not in outcome and "500" not in outcome, (name, outcome)
        print(f"MCPARG {name}: {outcome}")
    # a request past the body limit (1 MiB) is refused before any tool sees it: 413 (curl waits
    # for 100-continue and reads it; a client that sends the whole body first is reset instead)
    big = {"jsonrpc": "2.0", "id": 9, "method": "tools/call"}
    big["params"] = {"name": "run_python", "arguments": {"code": "1", "stdin": "s" * 2_000_000}}
    head = [f"{k}: {v}" for k, v in {**MCP_HEADERS, **A, "mcp-protocol-version": "2026-07-28"}.items()]
    curl = await asyncio.create_subprocess_exec(
        "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", srv.url + "/mcp",
        *(x for h in head for x in ("-H", h)), "--data-binary", "@-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    status, _ = await asyncio.wait_for(curl.communicate(json.dumps(big).encode()), 60)
    print(f"MCPARG body_over_the_limit: HTTP {status.decode()}")
    assert status == b"413"
    assert srv.proc.poll() is None and "Traceback" not in srv.log()


async def _raw(base: str, body: dict[str, Any], headers: dict[str, str], method: str = "POST") -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        if method == "POST":
            return await http.post(base + "/mcp", json=body, headers=headers)
        return await http.request(method, base + "/mcp", headers=headers)


async def test_an_mcp_session_id_reused_by_another_client_is_refused(srv: ServerProcess) -> None:
    """Client A opens an MCP session (the handshake era); client B presents its id on a tool call, a
    listing, the event stream and DELETE: 404 each time, and A's session is untouched and runs A's
    tool calls. Without any token: 401."""
    opened = await _raw(srv.url, INIT, {**MCP_HEADERS, **A})
    assert opened.status_code == 200, opened.text
    sid = opened.headers["mcp-session-id"]
    common = {**MCP_HEADERS, "mcp-session-id": sid, "mcp-protocol-version": "2025-06-18"}
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "run_python", "arguments": {"code": "print('whose?')"}},
    }
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    theirs = [
        await _raw(srv.url, call, {**common, **B}),
        await _raw(srv.url, listing, {**common, **B}),
        await _raw(srv.url, {}, {**common, **B, "Accept": "text/event-stream"}, "GET"),
        await _raw(srv.url, {}, {**common, **B}, "DELETE"),
    ]
    anonymous = await _raw(srv.url, call, common)
    assert [r.status_code for r in theirs] == [404, 404, 404, 404], [(r.status_code, r.text[:200]) for r in theirs]
    assert anonymous.status_code == 401
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await _raw(srv.url, initialized, {**common, **A})).status_code == 202
    own = await _raw(srv.url, call, {**common, **A})
    assert own.status_code == 200 and "whose?" in own.text, own.text[:500]
    assert (await _raw(srv.url, {}, {**common, **A}, "DELETE")).status_code in (200, 204)


@pytest.mark.parametrize("mode", ("auto", "legacy"))
async def test_a_vanished_agent_does_not_hold_a_sandbox(server_factory: Any, mode: str) -> None:
    """The agent goes away mid-run (its request closed, or its MCP session ended): the run's sandbox
    (the only one: no warm pool) is removed long before the run's 20 s limit."""
    srv = server_factory(SCE_API_TOKENS=",".join(TOKENS), SCE_POOL_SIZE="0")
    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async def agent() -> None:
        async with connect(srv.url, mode=mode, headers=A) as client:
            code = "import time\nprint('up', flush=True)\ntime.sleep(60)"
            await client.call_tool("run_python", {"code": code, "timeout": 20}, progress_callback=on_progress)

    task = asyncio.create_task(agent())
    await asyncio.wait_for(started.wait(), 30)
    running = set(await asyncio.to_thread(server_containers, srv.proc.pid))
    assert len(running) == 1
    t0 = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def released() -> bool | str:
        left = running & set(await asyncio.to_thread(server_containers, srv.proc.pid))
        return True if not left else f"{len(left)} sandbox(es) of the vanished agent's run"

    await until(released, 12, "the vanished agent's sandbox removed", step=0.2)
    print(f"VANISHED {mode}: sandbox removed {time.monotonic() - t0:.2f} s after the agent left")
