"""The Docker backend's pure parts: exit judgement, orphans, the lockdown's create body, engine URLs
and the TLS context (whatever the environment says), and the TLS attach stream's half-close."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from app.core.exits import ExitObservation
from app.errors import Unavailable
from app.sandbox.docker.attach import AttachStream
from app.sandbox.docker.engine import DockerEngine
from app.sandbox.docker.judge import judge_exit
from app.sandbox.docker.lockdown import SECCOMP_OPT, create_body
from app.sandbox.docker.ownership import LABEL_LEASE, LABEL_OWNER, is_orphan, owner_is_alive, parent_is_stale
from app.sandbox.docker.wire import EngineAddressError, parse_engine_url, tls_context
from app.sandbox.interface import Lockdown, SandboxSpec
from app.settings import Settings

pytestmark = pytest.mark.timeout(30)

SPEC = SandboxSpec("python", "img", 128, 64, 0.5, 256, 16, command=("python3",), environment=(("X", "1"),))


# -- exits -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "flag", "killed", "runsc", "parent", "expected", "again"),
    [
        (0, False, False, False, None, ExitObservation(0), False),
        (137, True, False, False, None, ExitObservation(137, True), False),
        (137, False, False, False, True, ExitObservation(137, True), False),  # gVisor's unset flag
        (137, False, False, False, False, ExitObservation(137), True),  # the flag may trail: ask again
        (137, False, True, False, True, ExitObservation(137), False),  # our own kill is never asked about
        (2, False, False, True, True, ExitObservation(137, True), False),  # gVisor's sentry died at the limit
        (2, False, False, False, True, ExitObservation(2), False),  # under runc, 2 is the program's own
        (2, False, False, True, False, ExitObservation(2), False),
    ],
)
def test_exit_judgement(
    code: int, flag: bool, killed: bool, runsc: bool, parent: bool | None, expected: ExitObservation, again: bool
) -> None:
    judged = judge_exit(code, flag, killed=killed, runsc=runsc, parent_oom=parent)
    assert (judged.observation, judged.ask_flag_again) == (expected, again)


# -- ownership ---------------------------------------------------------------------------------------
def test_orphans_are_dead_owners_and_expired_leases_never_mine_or_unowned() -> None:
    def alive(owner: str) -> bool:
        return owner != "h:1:dead"

    now = 1000.0
    assert not is_orphan({}, 0, now, "h:9:me", alive)  # no owner: an image label at most, never ours to reap
    assert not is_orphan({LABEL_OWNER: "h:9:me", LABEL_LEASE: "1"}, 0, now, "h:9:me", alive)
    assert is_orphan({LABEL_OWNER: "h:1:dead"}, now, now, "h:9:me", alive)
    assert not is_orphan({LABEL_OWNER: "h:2:live", LABEL_LEASE: "600"}, now - 10, now, "h:9:me", alive)
    assert is_orphan({LABEL_OWNER: "h:2:live", LABEL_LEASE: "600"}, now - 601, now, "h:9:me", alive)


def test_owners_on_other_hosts_are_assumed_alive() -> None:
    assert owner_is_alive("elsewhere:1:2", host="here", start_time=lambda pid: None)
    assert not owner_is_alive("here:1:2", host="here", start_time=lambda pid: "3")  # pid reused
    assert owner_is_alive("here:1:2", host="here", start_time=lambda pid: "2")
    assert not owner_is_alive("garbage", host="here")


def test_parent_cgroups_of_live_servers_and_neighbour_engines_are_never_stale() -> None:
    me = (10, "100")
    starts = {10: "100", 11: "110"}.get

    def stale(name: str, mine: bool) -> bool:
        return parent_is_stale(name, me, mine=mine, my_prefix="sce-10-100-aaaaaa", start_time=starts)

    assert stale("sce-12-120-bbbbbb0123456789abcd", mine=False)  # pid 12 is gone
    assert not stale("sce-11-110-bbbbbb0123456789abcd", mine=True)  # alive
    assert not stale("sce-10-100-cccccc0123456789abcd", mine=True)  # this process's other engine
    assert stale("sce-10-100-aaaaaa0123456789abcd", mine=True)
    assert not stale("sce-10-100-aaaaaa0123456789abcd", mine=False)
    assert not stale("other-1", mine=True)


# -- the lockdown ------------------------------------------------------------------------------------
def test_the_create_body_carries_every_lockdown_promise() -> None:
    body = create_body(SPEC, runtime="runc", labels={"a": "b"}, cgroup_parent="sce-1-2-x")
    host = body["HostConfig"]
    assert body["User"] == "10001:10001" and body["NetworkDisabled"] is True and body["StdinOnce"] is True
    assert create_body(SPEC, runtime="runc", labels={}, user="123456:123456")["User"] == "123456:123456"
    assert host["ReadonlyRootfs"] is True and host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges", SECCOMP_OPT]
    assert host["Memory"] == host["MemorySwap"] == 128 << 20 and host["PidsLimit"] == 64
    assert host["NanoCpus"] == 500_000_000 and host["Init"] is True and host["IpcMode"] == "private"
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 256, "Hard": 256}]
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=16m"} and host["LogConfig"]["Type"] == "none"
    assert host["CgroupParent"] == "/sce-1-2-x" and host["Runtime"] == "runc"
    assert "X=1" in body["Env"] and "HOME=/tmp" in body["Env"]
    json.dumps(body)  # as sent


def test_each_sandbox_gets_a_uid_of_its_own_from_the_range() -> None:
    """Per-user kernel limits (inotify instances, pipe buffers) are per run only if no two live
    sandboxes share a UID: a tiny range makes every pick collide unless the engine avoids it."""
    engine = DockerEngine(Settings(sandbox_uid_base=200_000, sandbox_uid_count=16))
    uids = [engine._take_uid() for _ in range(16)]
    assert sorted(uids) == list(range(200_000, 200_016))
    with pytest.raises(Unavailable, match="SCE_SANDBOX_UID_COUNT"):
        engine._take_uid()
    engine._uid_of["c1"] = uids[3]
    engine._release_uid("c1")
    assert engine._take_uid() == uids[3]  # the only one free again
    body = engine.container_body(SPEC, False, None, uids[0])
    assert body["User"] == f"{uids[0]}:{uids[0]}"


def test_runsc_confines_syscalls_itself() -> None:
    spec = SandboxSpec("python", "img", 128, 64, 1.0, 256, 16, lockdown=Lockdown(syscall_filter="runtime"))
    assert create_body(spec, runtime="runsc", labels={})["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]


# -- engine URLs and TLS -------------------------------------------------------------------------------
def make_certs(d: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "1", "-subj", "/CN=test-ca")
    for name, key, cert in (("server", "server-key.pem", "server-cert.pem"), ("client", "key.pem", "cert.pem")):
        run("req", *ec, "-keyout", key, "-out", f"{name}.csr", "-subj", f"/CN={name}")
        extra = ["-extfile", "server.ext"] if name == "server" else []
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", cert, "-days", "1", *extra)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    make_certs(d)
    return d


def test_engine_urls(certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert parse_engine_url(None, None) == ("/var/run/docker.sock", None)
    assert parse_engine_url("unix:///run/x.sock", None) == ("/run/x.sock", None)
    with pytest.raises(EngineAddressError, match="SCE_DOCKER_TLS_DIR"):
        parse_engine_url("tcp://10.0.0.1:2376", None)
    with pytest.raises(EngineAddressError, match="only unix"):
        parse_engine_url("ssh://me@host", None)
    address, context = parse_engine_url("tcp://127.0.0.1:2376", str(certs))
    assert address == ("127.0.0.1", 2376) and context is not None


def test_the_tls_context_trusts_the_directorys_ca_alone(certs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, "/etc/ssl/certs/ca-certificates.crt")
    context = tls_context(str(certs))
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


async def test_tls_stdin_end_is_a_half_close_and_output_still_flows(certs: Path) -> None:
    """As the engine sees it: close_notify reads as EOF on stdin, and what it writes after still arrives."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.pem"))
    server_ctx.load_cert_chain(certs / "server-cert.pem", certs / "server-key.pem")
    server_ctx.verify_mode = ssl.CERT_REQUIRED

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def engine() -> None:  # as Go's tls.Conn does: EOF on close_notify, writing goes on
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            got = 0
            while chunk := tls.recv(65536):
                got += len(chunk)
            tls.sendall(b"read %d bytes, then EOF" % got)

    serving = threading.Thread(target=engine, daemon=True)
    serving.start()
    stream = await AttachStream.connect(("127.0.0.1", port), tls_context(str(certs)))
    try:
        await stream.send(b"x" * 200_000)
        await stream.shut_write()
        answer = b""
        async with asyncio.timeout(10):
            while chunk := await stream.recv():
                answer += chunk
        assert answer == b"read 200000 bytes, then EOF"
    finally:
        stream.close()
        listener.close()
        serving.join(5)


async def test_a_tls_stream_the_engine_ended_is_not_alive(certs: Path) -> None:
    """A warm sandbox on a TLS engine that died while waiting: its stream holds an alert, not nothing."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certs / "ca.pem"))
    server_ctx.load_cert_chain(certs / "server-cert.pem", certs / "server-key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    end = threading.Event()

    def engine() -> None:
        conn, _ = listener.accept()
        tls = server_ctx.wrap_socket(conn, server_side=True)
        end.wait(10)
        with contextlib.suppress(OSError):
            tls.unwrap()  # close_notify (then it waits for ours, which never comes)

    serving = threading.Thread(target=engine, daemon=True)
    serving.start()
    stream = await AttachStream.connect(("127.0.0.1", port), tls_context(str(certs)))
    try:
        assert stream.is_alive()
        end.set()
        async with asyncio.timeout(5):
            while stream.is_alive():  # noqa: ASYNC110 (the check under test has no event)
                await asyncio.sleep(0.01)
    finally:
        stream.close()
        listener.close()


def test_the_backend_setting_chooses_through_one_factory(certs: Path) -> None:
    from app.sandbox.docker.engine import DockerEngine
    from app.sandbox.service import make_engines
    from app.settings import Settings

    settings = Settings(docker_hosts=["unix:///run/a.sock", "tcp://127.0.0.1:2376"], docker_tls_dir=str(certs))
    engines = make_engines(settings)
    assert [type(e) for e in engines] == [DockerEngine, DockerEngine]
    assert [e.name for e in engines] == ["unix:///run/a.sock", "tcp://127.0.0.1:2376"]
    assert settings.docker().hosts == ("unix:///run/a.sock", "tcp://127.0.0.1:2376")


async def test_an_engine_url_it_cannot_use_is_unavailable_and_says_why() -> None:
    from app.errors import Unavailable
    from app.sandbox.docker.engine import DockerEngine
    from app.settings import Settings

    engine = DockerEngine(Settings(), host="tcp://127.0.0.1:2376")  # no TLS directory: refused, never plain
    assert not (await engine.health()).ok
    with pytest.raises(Unavailable, match="SCE_DOCKER_TLS_DIR"):
        await engine.reap_orphans()
