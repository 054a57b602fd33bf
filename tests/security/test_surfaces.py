"""The second wave's server-side surfaces, attacked over the real protocol: resume and watch
tokens, a watcher that never reads, forwarded headers, rate limits, unreachable engines, OOMs
under load, and the pids limit the server states.

Runs under the runtime in ``SCE_RUNTIME`` like the corpus (``SCE_RUNTIME=runsc pytest -m
security tests/security/test_surfaces.py``). Program-level attacks on the new surfaces (files in
and out, images, the scientific runtime) are corpus entries (``tests/security/corpus.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from app.sandbox.runtimes import RUNSC_PIDS_HEADROOM
from tests.conftest import ServerProcess, free_port, module_server
from tests.wsclient import WsResult, collect, run_ws

pytestmark = [pytest.mark.docker, pytest.mark.security, pytest.mark.timeout(180)]

RUNTIME = os.environ.get("SCE_RUNTIME", "runc")
GRACE_S = 2.0
tokens_server = module_server(
    {"SCE_RESUME_GRACE_S": str(GRACE_S), "SCE_PER_CLIENT_RUNS": "16", "SCE_MAX_CONCURRENT_RUNS": "4"}
)
TICKS = "import time\nfor i in range(30):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"


async def _first_frames(connection: Any, until: str = "started") -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] != until:
        frames.append(json.loads(await connection.recv()))
    return frames


async def _open(server: ServerProcess, first: dict[str, Any]) -> WsResult:
    async with websockets.connect(server.ws_url, max_size=None) as connection:
        await connection.send(json.dumps(first))
        return await collect(connection)


# --- resume and watch tokens ---------------------------------------------------------------------


async def test_guessed_tokens_and_ids_open_nothing(tokens_server: ServerProcess) -> None:
    """Random tokens for a live run's real id, and the real token with made-up ids: all not_found,
    indistinguishable from an unknown run (no oracle for which part was wrong)."""
    async with asyncio.timeout(60), websockets.connect(tokens_server.ws_url) as driver:
        await driver.send(json.dumps({"type": "run", "code": TICKS, "timeout": 20}))
        started = (await _first_frames(driver))[-1]
        token, run_id = started["token"], started["id"]
        near = token[:-1] + ("B" if token[-1] == "A" else "A")
        attempts: list[dict[str, Any]] = [
            *({"type": "resume", "id": run_id, "token": secrets.token_urlsafe(24), "after": 0} for _ in range(10)),
            *({"type": "watch", "id": run_id, "token": secrets.token_urlsafe(24)} for _ in range(10)),
            {"type": "resume", "id": run_id, "token": near, "after": 0},
            {"type": "resume", "id": run_id, "token": "", "after": 0},
            {"type": "resume", "id": run_id.upper(), "token": token, "after": 0},
            *({"type": "watch", "id": secrets.token_hex(8), "token": started["watch_token"]} for _ in range(5)),
        ]
        results = await asyncio.gather(*(_open(tokens_server, a) for a in attempts))
        await driver.send(json.dumps({"type": "kill"}))
        await collect(driver)
    for attempt, result in zip(attempts, results, strict=True):
        assert [f["type"] for f in result.frames] == ["error"], (attempt, result.frames)
        assert result.error["code"] == "not_found" and result.close_code == 1008
    assert len({r.error["message"] for r in results}) == 1  # one answer for every wrong part


async def test_this_runs_token_does_not_open_another_run(tokens_server: ServerProcess) -> None:
    async with asyncio.timeout(60):
        async with websockets.connect(tokens_server.ws_url) as a, websockets.connect(tokens_server.ws_url) as b:
            await a.send(json.dumps({"type": "run", "code": TICKS, "timeout": 20}))
            await b.send(json.dumps({"type": "run", "code": TICKS, "timeout": 20}))
            sa = (await _first_frames(a))[-1]
            sb = (await _first_frames(b))[-1]
            crossed = [
                await _open(tokens_server, {"type": "resume", "id": sb["id"], "token": sa["token"], "after": 0}),
                await _open(tokens_server, {"type": "watch", "id": sb["id"], "token": sa["watch_token"]}),
                await _open(tokens_server, {"type": "watch", "id": sa["id"], "token": sb["token"]}),
            ]
            for ws in (a, b):
                await ws.send(json.dumps({"type": "kill"}))
                await collect(ws)
    assert all(r.error["code"] == "not_found" and r.close_code == 1008 for r in crossed), [r.frames for r in crossed]


async def test_a_finished_runs_token_expires_with_its_grace(tokens_server: ServerProcess) -> None:
    """A replay inside the grace reads the finished run; after it, the same token opens nothing."""
    async with asyncio.timeout(60):
        async with websockets.connect(tokens_server.ws_url) as driver:
            await driver.send(json.dumps({"type": "run", "code": "print('done')"}))
            done = await collect(driver)
        ended = time.monotonic()
        started = done.of("started")[0]
        replay = {"type": "resume", "id": started["id"], "token": started["token"], "after": 0}
        inside = await _open(tokens_server, replay)
        assert inside.exit["reason"] == "exit" and inside.text() == "done\n"
        while True:  # polled: the server has no event to tell a client when a run is forgotten
            late = await _open(tokens_server, replay)
            if late.frames[0]["type"] == "error":
                break
            await asyncio.sleep(0.2)
    assert late.error["code"] == "not_found"
    assert time.monotonic() - ended >= GRACE_S * 0.9, "forgotten before its grace"
    watch = await _open(tokens_server, {"type": "watch", "id": started["id"], "token": started["watch_token"]})
    assert watch.error["code"] == "not_found"


async def test_a_takeover_race_leaves_exactly_one_driver(tokens_server: ServerProcess) -> None:
    """Three resumes of one run at once with its token: the run goes on, each taken-over connection
    is closed 1008 without an exit, and exactly one connection sees the run's single exit."""
    async with asyncio.timeout(60), websockets.connect(tokens_server.ws_url) as driver:
        await driver.send(json.dumps({"type": "run", "code": TICKS, "timeout": 20}))
        started = (await _first_frames(driver))[-1]
        resume = {"type": "resume", "id": started["id"], "token": started["token"], "after": 0}
        racers = await asyncio.gather(*(_open(tokens_server, resume) for _ in range(3)))
        original = await collect(driver)
    everyone = [original, *racers]
    winners = [r for r in everyone if r.of("exit")]
    assert len(winners) == 1, [(r.close_code, [f["type"] for f in r.frames][-3:]) for r in everyone]
    assert winners[0].exit["reason"] == "exit" and winners[0].close_code == 1000
    assert all(r.close_code == 1008 for r in everyone if r is not winners[0])
    ticks = [f["data"] for f in winners[0].frames if f["type"] == "stdout"]
    assert "".join(ticks) == "".join(f"tick {i}\n" for i in range(30))  # a resume from 0: every line once


# --- a watcher that never reads ----------------------------------------------------------------------


def _raw_watch(port: int, run_id: str, token: str) -> socket.socket:
    """A WebSocket client that sends its watch frame and then never reads: a tiny receive window."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /run HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    payload = json.dumps({"type": "watch", "id": run_id, "token": token}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return sock


stall_server = module_server({"SCE_SEND_TIMEOUT_S": "2", "SCE_PER_CLIENT_RUNS": "16", "SCE_WATCHERS_MAX": "4"})


async def test_a_watcher_that_never_reads_stalls_neither_the_run_nor_its_driver(stall_server: ServerProcess) -> None:
    flood = (
        "import sys, time\nfor i in range(30):\n    sys.stdout.write(('%d ' % i) * 10000 + '\\n')\n"
        "    time.sleep(0.05)\n"
    )
    async with asyncio.timeout(60), websockets.connect(stall_server.ws_url, max_size=None) as driver:
        await driver.send(json.dumps({"type": "run", "code": flood, "timeout": 20}))
        started = (await _first_frames(driver))[-1]
        sleepers = [_raw_watch(stall_server.port, started["id"], started["watch_token"]) for _ in range(3)]
        t0 = time.monotonic()
        result = await collect(driver)
        took = time.monotonic() - t0
        try:
            assert result.exit["reason"] == "exit" and result.exit["exit_code"] == 0, result.frames[-2:]
            assert result.exit["stdout_bytes"] == sum(len(f"{i} ") * 10000 + 1 for i in range(30))
            assert took < 10, f"the driver waited {took:.1f} s: a stalled watcher held it up"
            # the stalled watchers are dropped after the send timeout; the server serves on
            async with httpx.AsyncClient(base_url=stall_server.url, timeout=10) as http:
                deadline = time.monotonic() + 15
                while "sce_open_websockets 0.0" not in (await http.get("/metrics")).text:
                    assert time.monotonic() < deadline, "stalled watchers were never dropped"
                    await asyncio.sleep(0.2)  # polled: the metric is the only outside view of open sockets
        finally:
            for sock in sleepers:
                sock.close()
    again = await run_ws(stall_server.ws_url, "print('hello')", within=30)
    assert again.text() == "hello\n"


# --- forwarded headers and rate limits ---------------------------------------------------------------

RATE_ENV = {"SCE_RATE_RUNS_PER_MINUTE": "3", "SCE_PER_CLIENT_RUNS": "16"}
untrusting = module_server(RATE_ENV)
trusting = module_server({**RATE_ENV, "SCE_TRUSTED_PROXIES": "127.0.0.1"})


async def _http_run(server: ServerProcess, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        return await http.post("/run", json={"code": code}, headers=headers or {})


async def test_forwarded_headers_from_an_untrusted_peer_change_nothing(untrusting: ServerProcess) -> None:
    """A client that makes up a new X-Forwarded-For (or Forwarded) for every run is still counted
    by its real address: the fourth run inside a minute is refused with the seconds to wait."""
    answers = []
    for i in range(4):
        forged = {"X-Forwarded-For": f"203.0.113.{i}", "Forwarded": f"for=198.51.100.{i}"}
        answers.append(await _http_run(untrusting, "print(1)", forged))
    assert [a.status_code for a in answers] == [200, 200, 200, 503], [a.text for a in answers]
    refused = answers[-1]
    assert refused.json()["code"] == "busy"
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 20  # 3 a minute: a token every 20 s
    # the WebSocket says the same, with the wait in words, and closes 1013
    ws = await run_ws(untrusting.ws_url, "print(1)", additional_headers={"X-Forwarded-For": "192.0.2.77"})
    assert ws.error["code"] == "busy" and ws.close_code == 1013
    assert "try again in" in ws.error["message"] and ws.error["message"].rstrip(" s").split()[-1].isdigit()
    # health probes are not rate limited
    async with httpx.AsyncClient(base_url=untrusting.url, timeout=60) as http:
        deep = await http.get("/healthz", params={"deep": "1"})
    assert deep.status_code == 200, deep.text


async def test_behind_a_trusted_proxy_each_real_client_has_its_own_allowance(trusting: ServerProcess) -> None:
    for _ in range(3):
        assert (await _http_run(trusting, "print(1)", {"X-Forwarded-For": "203.0.113.5"})).status_code == 200
    refused = await _http_run(trusting, "print(1)", {"X-Forwarded-For": "203.0.113.5"})
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
    other = await _http_run(trusting, "print(1)", {"X-Forwarded-For": "203.0.113.6"})
    assert other.status_code == 200, other.text
    # a client cannot push a made-up address past the proxy: the proxy's appended hop is believed
    chained = await _http_run(trusting, "print(1)", {"X-Forwarded-For": "10.9.9.9, 203.0.113.5"})
    assert chained.status_code == 503


code_rate = module_server({"SCE_RATE_CODE_BYTES_PER_MINUTE": "100000", "SCE_PER_CLIENT_RUNS": "16"})


async def test_code_bytes_per_minute(code_rate: ServerProcess) -> None:
    big = "print(1)\n" + "#" * 60_000 + "\n"
    first = await _http_run(code_rate, big)
    second = await _http_run(code_rate, big)
    small = await _http_run(code_rate, "print('small')")
    assert first.status_code == 200 and small.status_code == 200, (first.text, small.text)
    assert second.status_code == 503 and second.json()["code"] == "busy"
    assert 1 <= int(second.headers["Retry-After"]) <= 15  # ~20 kB missing at 1,667 bytes a second


# --- engines that cannot be reached --------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_engine() -> Iterator[ServerProcess]:
    server = ServerProcess({"SCE_DOCKER_HOST": f"tcp://127.0.0.1:{free_port()}", "SCE_POOL_SIZE": "0"}, healthy=False)
    yield server
    server.stop()


async def test_an_unreachable_engine_url_is_unavailable_never_internal(no_engine: ServerProcess) -> None:
    ws = await run_ws(no_engine.ws_url, "print(1)", within=60)
    assert ws.error["code"] == "unavailable" and ws.close_code == 1011
    http = await _http_run(no_engine, "print(1)")
    assert http.status_code == 503 and http.json()["code"] == "unavailable"
    async with httpx.AsyncClient(base_url=no_engine.url, timeout=30) as client:
        assert (await client.get("/healthz")).status_code == 503
    assert no_engine.proc.poll() is None


async def test_one_unreachable_engine_among_several_is_routed_around(server_factory: Any) -> None:
    server = server_factory(
        SCE_DOCKER_HOSTS=f"unix:///var/run/docker.sock,tcp://127.0.0.1:{free_port()}",
        SCE_POOL_SIZE="1",
        SCE_SCIENTIFIC_POOL_SIZE="0",
        SCE_PER_CLIENT_RUNS="8",
    )
    results = await asyncio.gather(*(run_ws(server.ws_url, f"print({i})", within=60) for i in range(4)))
    assert sorted(r.text() for r in results) == [f"{i}\n" for i in range(4)], [r.frames[-1] for r in results]


# --- OOM under load, and the pids limit the server states ------------------------------------------------

oom_server = module_server(
    {"SCE_MAX_CONCURRENT_RUNS": "6", "SCE_PER_CLIENT_RUNS": "32", "SCE_POOL_SIZE": "6", "SCE_QUEUE_SIZE": "32"}
)
OOMERS = (
    "b = b'x' * (512 << 20)\n",
    "import time\nheap = []\nwhile True:\n    heap.append(b'x' * (4 << 20))\n    time.sleep(0.005)\n",
    "try:\n    f = open('/tmp/fill', 'wb')\n    while True:\n        f.write(b'x' * (1 << 20))\n        f.flush()\n"
    "except OSError:\n    pass\nb = b'y' * (512 << 20)\n",
)


@pytest.mark.timeout(300)
async def test_every_oom_is_reported_as_oom_under_load(oom_server: ServerProcess) -> None:
    """Six OOMing runs at once, three rounds: each one is ``oom`` (under runsc the engine's flag
    alone missed some; the parent cgroup's record tells them)."""
    reasons: list[str] = []
    for _round in range(3):
        batch = [OOMERS[i % len(OOMERS)] for i in range(6)]
        results = await asyncio.gather(*(run_ws(oom_server.ws_url, c, run_timeout=20, within=120) for c in batch))
        reasons += [f"{r.exit['reason']}:{r.exit['exit_code']}" for r in results]
    assert reasons == ["oom:None"] * 18, reasons
    # and a program's own 137 is still its own
    own = await run_ws(oom_server.ws_url, "import os\nos._exit(137)", within=60)
    assert own.exit["reason"] == "exit" and own.exit["exit_code"] == 137


async def test_the_stated_pids_limit_is_the_one_enforced(oom_server: ServerProcess) -> None:
    """``started.limits.pids`` is the sandbox's pids cgroup limit: 64 under runc; under runsc 64 plus
    the headroom gVisor's own threads need (its guest processes are bounded by memory instead)."""
    expected = 64 + (RUNSC_PIDS_HEADROOM if RUNTIME == "runsc" else 0)
    result = await run_ws(oom_server.ws_url, "print('hi')", within=60)
    assert result.of("started")[0]["limits"]["pids"] == expected
    async with httpx.AsyncClient(base_url=oom_server.url, timeout=30) as http:
        listed = (await http.get("/runtimes")).json()
    listed = listed["runtimes"] if isinstance(listed, dict) else listed
    assert all(r["limits"]["pids"] == expected for r in listed), listed


# --- what the log keeps ----------------------------------------------------------------------------------

API_TOKEN = "sce-api-" + secrets.token_hex(16)
logged = module_server({"SCE_API_TOKENS": API_TOKEN, "SCE_PER_CLIENT_RUNS": "8"})


async def test_the_log_holds_no_secret_and_no_code(logged: ServerProcess) -> None:
    """One JSON line per run: the client as a 12-hex hash of its API token; no API token, run token,
    watch token or program text anywhere in the server's log."""
    code = "print('logged-program-text-' + 'x')"
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    result = await run_ws(logged.ws_url, code, within=60, additional_headers=headers)
    started = result.of("started")[0]
    async with httpx.AsyncClient(base_url=logged.url, timeout=60) as http:
        assert (await http.post("/run", json={"code": code}, headers=headers)).status_code == 200
        deadline = time.monotonic() + 10
        while logged.log().count('"event": "run"') < 2:  # the line is written as the run ends
            assert time.monotonic() < deadline, logged.log()[-2000:]
            await asyncio.sleep(0.1)
    text = logged.log()
    lines = [json.loads(line.split(" sce.run ", 1)[1]) for line in text.splitlines() if '"event": "run"' in line]
    assert {entry["client"] for entry in lines} == {"token:" + hashlib.sha256(API_TOKEN.encode()).hexdigest()[:12]}
    assert all("code" not in entry for entry in lines)
    for secret in (API_TOKEN, started["token"], started["watch_token"], "logged-program-text"):
        assert secret not in text


# --- round three (issue 30): frames as sent, pages, host names, health details, configuration ------------

plain = module_server({"SCE_PER_CLIENT_RUNS": "8"})  # default output_bytes: 1,000,000


MEGABYTE_OF_FF = (  # written to the end: gVisor's pipe takes 64 KiB a write
    "import os\nview = memoryview(b'\\xff' * 1_000_000)\nwhile view:\n    view = view[os.write(1, view):]\n"
)


async def test_binary_output_is_kept_within_its_frame_budget_as_sent(plain: ServerProcess) -> None:
    """Issue 30.3: a megabyte of 0xff is within output_bytes, but as JSON (``\\ufffd``) it was 6 MB of
    frames, all kept for the resume grace. Frames as sent now stop at the run's budget (2 x
    output_bytes): the run ends as output_limit, truncated, and the bytes sent are bounded."""
    sent = 0
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(60), websockets.connect(plain.ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "run", "code": MEGABYTE_OF_FF}))
        async for message in ws:
            frame = json.loads(message)
            frames.append(frame)
            if frame["type"] in ("stdout", "stderr"):
                sent += len(message.encode("utf-8") if isinstance(message, str) else message)  # bytes as sent
    exit_ = frames[-1]
    assert exit_["type"] == "exit" and exit_["reason"] == "output_limit" and exit_["truncated"], exit_
    assert sent <= 2 * 1_000_000, f"{sent} bytes of output frames as sent"
    assert sent >= 1_500_000, f"only {sent} bytes sent: the budget cut far too early"
    seqs = [f["seq"] for f in frames if "seq" in f]
    assert seqs == list(range(1, len(seqs) + 1)), "sequence numbers have gaps"


PAGES = ("/ui", "/healthz", "/openapi.json", "/runtimes", "/nope")


async def test_every_answer_carries_the_security_headers(plain: ServerProcess) -> None:
    """Issue 30.2: pages, JSON, errors and POST /run answers: a strict CSP with frame-ancestors
    'none', X-Frame-Options DENY, nosniff."""
    async with httpx.AsyncClient(base_url=plain.url, timeout=60) as http:
        answers = [await http.get(path) for path in PAGES]
        answers.append(await http.post("/run", json={"code": "print(1)"}))
        answers.append(await http.post("/run", content=b"nope", headers={"Content-Type": "text/plain"}))
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404, 200, 415]
    for answer in answers:
        csp = answer.headers.get("Content-Security-Policy", "")
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, (answer.url, csp)
        assert "frame-ancestors 'none'" in csp and "'unsafe-eval'" not in csp
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        assert answer.headers.get("X-Frame-Options") == "DENY", answer.url
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", answer.url


def _raw_upgrade(port: int, host: str, origin: str | None = None) -> str:
    """A WebSocket upgrade with a Host of our choosing: the status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"Origin: {origin}\r\n" if origin else ""
        sock.sendall(
            (
                f"GET /run HTTP/1.1\r\nHost: {host}\r\n{extra}Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        return sock.recv(4096).decode("latin-1").split("\r\n", 1)[0]


async def test_dns_rebinding_a_foreign_host_name_is_refused(plain: ServerProcess) -> None:
    """Issue 30.5: the curl from the report (Host and Origin both evil.example, so the Origin check
    alone passed) now gets 400 on POST /run, /ui and the WebSocket upgrade; loopback names work."""
    evil = {"Host": f"evil.example:{plain.port}", "Origin": f"http://evil.example:{plain.port}"}
    async with httpx.AsyncClient(base_url=plain.url, timeout=60) as http:
        run = await http.post("/run", json={"code": "print(1)"}, headers=evil)
        page = await http.get("/ui", headers={"Host": "evil.example"})
        local = await http.post("/run", json={"code": "print(1)"}, headers={"Host": f"localhost:{plain.port}"})
    assert run.status_code == 400 and run.json()["code"] == "bad_message", run.text
    assert "SCE_ALLOWED_HOSTS" in run.json()["error"]
    assert page.status_code == 400
    assert local.status_code == 200 and local.json()["output"] == "1\n"
    refused = await asyncio.to_thread(_raw_upgrade, plain.port, f"evil.example:{plain.port}", evil["Origin"])
    accepted = await asyncio.to_thread(_raw_upgrade, plain.port, f"127.0.0.1:{plain.port}")
    assert refused.startswith("HTTP/1.1 400"), refused
    assert accepted.startswith("HTTP/1.1 101"), accepted


ADMIN_TOKEN = "sce-admin-" + secrets.token_hex(16)
admin_server = module_server({"SCE_ADMIN_TOKEN": ADMIN_TOKEN, "SCE_API_TOKENS": API_TOKEN})


async def test_health_details_metrics_and_deep_probes_need_the_admin_token(admin_server: ServerProcess) -> None:
    """Issue 30.6: anyone learns ok or not, and nothing else (no engine URL, no pool); details,
    /metrics and ?deep=1 need the admin token (an API token is not enough)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    user = {"Authorization": f"Bearer {API_TOKEN}"}
    async with httpx.AsyncClient(base_url=admin_server.url, timeout=60) as http:
        public = await http.get("/healthz")
        as_user = await http.get("/healthz", headers=user)
        balancer = await http.get("/healthz", params={"balancer": "1"})
        deep = await http.get("/healthz", params={"deep": "1"}, headers=user)
        metrics = await http.get("/metrics", headers=user)
        details = await http.get("/healthz", headers=admin)
        deep_admin = await http.get("/healthz", params={"deep": "1"}, headers=admin)
        metrics_admin = await http.get("/metrics", headers=admin)
    assert public.status_code == 200 and public.json() == {"status": "ok"}, public.text
    assert as_user.json() == {"status": "ok"} and balancer.json() == {"status": "ok"}
    assert "docker" not in public.text and "unix" not in public.text
    assert deep.status_code == 401 and metrics.status_code == 401
    assert details.status_code == 200 and "engines" in details.json() and "free_slots" in details.json()
    assert deep_admin.status_code == 200 and deep_admin.json()["probe"]["ok"] is True
    assert metrics_admin.status_code == 200 and "sce_runs_total" in metrics_admin.text


async def test_without_an_admin_token_only_direct_local_callers_see_details(plain: ServerProcess) -> None:
    """With no admin token the details are for callers on the server's host: a request that came
    through a proxy (it carries X-Forwarded-For) gets the public answer, and no metrics."""
    via_proxy = {"X-Forwarded-For": "203.0.113.9"}
    async with httpx.AsyncClient(base_url=plain.url, timeout=60) as http:
        local = await http.get("/healthz")
        proxied = await http.get("/healthz", headers=via_proxy)
        deep = await http.get("/healthz", params={"deep": "1"}, headers=via_proxy)
        metrics = await http.get("/metrics", headers=via_proxy)
    assert "engines" in local.json()
    assert proxied.json() == {"status": "ok"}
    assert deep.status_code == 403 and metrics.status_code == 403


def test_a_token_list_that_holds_no_token_refuses_to_start() -> None:
    """Issue 30.9: ``SCE_API_TOKENS=" , "`` turned authentication off unseen; now the server will
    not start, and says why."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_")}
    env.update({"SCE_API_TOKENS": " , ", "SCE_BIND": f"127.0.0.1:{free_port()}"})
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "SCE_API_TOKENS" in done.stderr and "holds no token" in done.stderr, done.stderr[-2000:]


async def test_a_clients_forwarded_header_does_not_pick_its_rate_limit_key(trusting: ServerProcess) -> None:
    """Issue 30.9: behind a trusted proxy that appends to X-Forwarded-For, a client that sends a new
    ``Forwarded: for=`` each time is still counted by the address the proxy appended."""
    answers = []
    for i in range(4):
        headers = {"Forwarded": f"for=6.6.6.{i}", "X-Forwarded-For": "203.0.113.77"}
        answers.append(await _http_run(trusting, "print(1)", headers))
    assert [a.status_code for a in answers] == [200, 200, 200, 503], [a.text for a in answers]


# --- a classroom behind one address (issue 29.6) ------------------------------------------------------------

CLASS = 30
classroom = module_server(
    {
        "SCE_MAX_CONCURRENT_RUNS": "4",
        "SCE_QUEUE_SIZE": "40",
        "SCE_POOL_SIZE": "4",
        "SCE_RATE_RUNS_PER_MINUTE": "30",
        "SCE_RATE_ADDRESS_RUNS_PER_MINUTE": "300",
    }
)
LESSON = "import time\ntime.sleep(0.5)\nprint('done')\n"


async def _browser_cookie(http: httpx.AsyncClient) -> str:
    http.cookies.clear()  # a new browser
    page = await http.get("/ui")
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
    return cookie.split(";", 1)[0]


@pytest.mark.timeout(240)
async def test_a_class_behind_one_address_is_served_by_cookie(classroom: ServerProcess) -> None:
    """30 browsers behind one address (each with the cookie /ui gave it) press Run together: all
    are served (queued, not refused) by an engine carrying 4 at once. A cookie-less client at that
    address still gets its own share of 2 meanwhile (the address's ceiling is unit-tested:
    tests/unit/test_admission.py, test_ratelimit.py)."""
    async with httpx.AsyncClient(base_url=classroom.url, timeout=60) as http:
        cookies = [await _browser_cookie(http) for _ in range(CLASS)]
    assert len(set(cookies)) == CLASS

    async def pupil(cookie: str) -> WsResult:
        return await run_ws(classroom.ws_url, LESSON, within=180, additional_headers={"Cookie": cookie})

    pupils = [asyncio.ensure_future(pupil(c)) for c in cookies[:CLASS]]
    async with httpx.AsyncClient(base_url=classroom.url, timeout=60) as http:
        deadline = time.monotonic() + 60
        while True:  # polled: the queue's length is only visible on /healthz
            health = (await http.get("/healthz")).json()
            if health["queued"] + health["active_runs"] >= CLASS - 4:
                break
            assert time.monotonic() < deadline, health
            await asyncio.sleep(0.1)
    # meanwhile the cookie-less client at the same address: two runs, the third is over its share
    bare = await asyncio.gather(*(run_ws(classroom.ws_url, LESSON, within=180) for _ in range(3)))
    served = await asyncio.gather(*pupils)
    assert [r.exit.get("reason") if r.of("exit") else r.error for r in served] == ["exit"] * CLASS
    assert all(r.text() == "done\n" for r in served)
    assert sum(1 for r in served if r.of("queued")) >= CLASS - 8, "the class was not queued"
    outcomes = ["exit" if r.of("exit") else r.error["message"] for r in bare]
    assert outcomes.count("exit") == 2, outcomes
    assert any("this client already has 2" in o for o in outcomes), outcomes


# --- per-user kernel limits ----------------------------------------------------------------------

INOTIFY_HOG = (  # run A: every inotify instance it can get (EMFILE/ENFILE ends the loop), then waits
    "import ctypes, os, time\nlibc = ctypes.CDLL(None, use_errno=True)\nn = 0\n"
    "while libc.inotify_init() >= 0:\n    n += 1\n"
    "print('held', n, os.strerror(ctypes.get_errno()), 'uid', os.getuid(), flush=True)\ntime.sleep(30)\n"
)
INOTIFY_ONE = (  # run B: one inotify instance, as any file watcher would want
    "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.inotify_init()\n"
    "print('got', fd, os.strerror(ctypes.get_errno()) if fd < 0 else 'ok', 'uid', os.getuid())\n"
)


async def test_one_run_exhausting_inotify_leaves_another_clients_run_its_own(plain: ServerProcess) -> None:
    """Issue 30.4: every sandbox ran as host UID 10001, so run A holding all 128 inotify instances
    (a per-user kernel limit) made run B's inotify_init fail with EMFILE. Each sandbox now has a UID
    of its own: B gets an instance while A still holds all of its own."""
    async with asyncio.timeout(90), websockets.connect(plain.ws_url, max_size=None) as hog:
        await hog.send(json.dumps({"type": "run", "code": INOTIFY_HOG, "timeout": 40}))
        held = ""
        async for message in hog:
            frame = json.loads(message)
            assert frame["type"] not in ("exit", "error"), frame
            held += frame.get("data", "") if frame["type"] == "stdout" else ""
            if "\n" in held:
                break
        other = await run_ws(plain.ws_url, INOTIFY_ONE)  # another connection, as another client would
        await hog.send(json.dumps({"type": "kill"}))
        await collect(hog)
    got = "".join(f["data"] for f in other.of("stdout"))
    print(f"\nrun A: {held.strip()}; run B: {got.strip()}")
    assert held.startswith("held ") and int(held.split()[1]) >= 100, held  # A really did exhaust something
    assert other.exit["reason"] == "exit" and other.exit["exit_code"] == 0, other.frames
    assert got.startswith("got ") and int(got.split()[1]) >= 0, (held, got)
    assert held.split()[-1] != got.split()[-1], (held, got)  # two UIDs
