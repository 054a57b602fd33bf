"""docs/DEPLOY.md's two-host walkthrough, run as written on loopback.

Every fenced block the page tags ``walkthrough=NAME`` is taken from the page itself and run with
bash: the certificates, each host's files, the engines' checks, HAProxy's config. Host A
(10.0.0.11) and host B (10.0.0.12) become 127.0.0.11 and 127.0.0.12 with the same ports, and
``/etc`` a folder per host. What needs systemd or an ``sce`` user is replaced as the page says at
the end of that section: a dockerd per host (scripts/sce_cluster.py's Engine) with the TLS keys
of the page's daemon.json and its DOCKER_OPTS address, the servers started with their env files,
HAProxy from the edited haproxy.cfg. Then hello world goes through HAProxy, and each server
reaches both engines over mutual TLS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.conftest import remove_all, sce_cluster
from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.docker, pytest.mark.cluster]

DOC = ROOT / "docs" / "DEPLOY.md"
PUBLIC_HOST = "sce.example.org"


@dataclass(frozen=True)
class Host:
    key: str  # a or b
    name: str  # host-a
    server: str  # sce1
    address: str  # the page's private address
    loopback: str  # what the test uses for it


HOSTS = (Host("a", "host-a", "sce1", "10.0.0.11", "127.0.0.11"), Host("b", "host-b", "sce2", "10.0.0.12", "127.0.0.12"))


def walkthrough_blocks(text: str) -> dict[str, str]:
    """Each ``walkthrough=NAME`` fenced block of the page, by name."""
    found = re.findall(r"^```\w+ walkthrough=(\S+)\n(.*?)^```$", text, re.M | re.S)
    return dict(found)


def localise(text: str, etc: Path) -> str:
    """The page's addresses as loopback ones, ``/etc`` as a host's folder, no ``sce`` owner."""
    for host in HOSTS:
        text = text.replace(host.address, host.loopback)
    text = re.sub(r" -o \w+ -g sce\b", "", text)
    return re.sub(r"(?<![\w.])/etc/", f"{etc}/", text)


def bash(script: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"exit {done.returncode}\n--- script\n{script}\n--- stderr\n{done.stderr}"
    return done


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def base() -> Iterator[Path]:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise pytest.UsageError("CI: the cluster tests need root (a dockerd per host)")
        pytest.skip("a dockerd per host needs root")
    sce_cluster.ensure_haproxy()
    for host in HOSTS:  # the page's ports on loopback addresses nothing else uses
        for port in (2376, 5000):
            with contextlib.closing(socket.socket()) as s:
                if s.connect_ex((host.loopback, port)) == 0:
                    pytest.fail(f"{host.loopback}:{port} is taken: the walkthrough needs it")
    path = Path(f"/run/sce-walk-{os.getpid()}")
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(420)
def test_the_two_host_walkthrough_serves_hello_world_through_haproxy_on_both_tls_engines(base: Path) -> None:
    blocks = walkthrough_blocks(DOC.read_text())
    assert set(blocks) == {"certs", "host", "daemon", "check", "haproxy"}, sorted(blocks)
    etc = {h.key: base / h.key / "etc" for h in HOSTS}

    # 2. certificates, on "the administrator's machine"
    bash(localise(blocks["certs"], base / "admin-etc"), cwd=base)
    ca = base / "sce-ca"
    assert mode(ca) == 0o700 and mode(ca / "ca-key.pem") & 0o077 == 0

    # 3. each host's files, host B with the first line the page gives for it
    first = "H=host-a S=sce1 ADDR=10.0.0.11"
    assert blocks["host"].startswith(first + "\n")
    for host in HOSTS:
        (etc[host.key] / "default").mkdir(parents=True)  # a Debian host's; docker.io reads DOCKER_OPTS there
        script = blocks["host"].replace(first, f"H={host.name} S={host.server} ADDR={host.address}", 1)
        bash(localise(script, etc[host.key]), cwd=ca)
        tls = etc[host.key] / "sce" / "engine-tls"
        assert mode(etc[host.key] / "docker" / "tls") == 0o700 and mode(tls) == 0o700
        assert mode(etc[host.key] / "docker" / "tls" / "server-key.pem") == 0o600 and mode(tls / "key.pem") == 0o600
        assert mode(etc[host.key] / "sce" / "sce.env") == 0o640

    # the engines: the page's daemon.json is what scripts/engine-up writes, plus the TLS keys
    engines: list[Any] = []
    servers: list[Any] = []
    balancer: Any = None
    try:
        for host in HOSTS:
            daemon = json.loads(localise(blocks["daemon"], etc[host.key]))
            tls_keys = {k: v for k, v in daemon.items() if k.startswith("tls")}
            assert tls_keys.keys() == {"tlsverify", "tlscacert", "tlscert", "tlskey"}
            assert {k: v for k, v in daemon.items() if k not in tls_keys} == engine_up_daemon_json()
            opts = (etc[host.key] / "default" / "docker").read_text()
            listen = re.fullmatch(r'DOCKER_OPTS="-H tcp://([\d.]+):(\d+)"\n', opts)
            assert listen and listen.group(1) == host.loopback, opts
            engine = sce_cluster.Engine(
                base / f"engine-{host.key}",
                Path(f"/var/lib/sce-walk-{os.getpid()}") / host.key,
                name=f"engine-{host.key}",
                images=(),  # the page's own `docker save | docker load` copies them (below)
                tls_port=int(listen.group(2)),
                tls_address=listen.group(1),
                tls_config=tls_keys,
            )
            engines.append(engine)
            engine.start()

        # the check, from host A (image copies included, the scientific image left out) and host B
        check = blocks["check"].replace(" sce-sandbox-scientific:bookworm", "")
        bash(localise(check, etc["a"]), cwd=base, timeout=300)
        no_copies = "\n".join(line for line in check.splitlines() if "docker save" not in line)
        bash(localise(no_copies, etc["b"]), cwd=base)

        # 4. the servers, each with its host's env file (systemctl enable --now sce)
        for i, host in enumerate(HOSTS, 1):
            env = env_file(etc[host.key] / "sce" / "sce.env")
            assert env["SCE_SERVER_NAME"] == host.server and env["SCE_DOCKER_TLS_DIR"].startswith(str(etc[host.key]))
            bind_host, bind_port = env["SCE_BIND"].rsplit(":", 1)
            assert bind_host == host.loopback
            env |= {"SCE_SCIENTIFIC_POOL_SIZE": "0", "SCE_POOL_SIZE": "1"}  # one image copied; a light pool
            server = sce_cluster.Server(base, i, int(bind_port), env, host=bind_host)
            servers.append(server)
            server.start()
        for server in servers:
            server.wait_ready()
        cookie_keys = {env_file(etc[h.key] / "sce" / "sce.env")["SCE_CLIENT_COOKIE_KEY"] for h in HOSTS}
        assert len(cookie_keys) == 1 and len(cookie_keys.pop()) == 64

        # 5. HAProxy on host A: the page's edit, then the file as the trial runs it
        (etc["a"] / "haproxy").mkdir()  # the haproxy package's folder
        bash(localise(blocks["haproxy"], etc["a"]), cwd=ROOT)
        cfg = etc["a"] / "haproxy" / "haproxy.cfg"
        lines = re.findall(r"^\s+server (\S+) (\S+)", localise(cfg.read_text(), etc["a"]), re.M)
        envs = [env_file(etc[h.key] / "sce" / "sce.env") for h in HOSTS]
        assert [(n, a) for n, a, *_ in lines] == [(e["SCE_SERVER_NAME"], e["SCE_BIND"]) for e in envs]
        assert envs[0]["SCE_TRUSTED_PROXIES"] == HOSTS[0].loopback  # HAProxy runs on host A
        balancer = sce_cluster.Balancer(base, free_port(), servers, template=cfg, source=HOSTS[0].loopback)
        balancer.start()
        deadline = time.monotonic() + 30
        while set(balancer.server_states().values()) != {"UP"}:  # its checks are its own: polled
            assert time.monotonic() < deadline, f"{balancer.server_states()}\n{sce_cluster.tail(balancer.log)}"
            time.sleep(0.2)

        admin = (ca / "admin.token").read_text().strip()
        tls_engines = {f"tcp://{h.loopback}:2376" for h in HOSTS}
        headers = {"Host": PUBLIC_HOST}
        with httpx.Client(base_url=balancer.url, headers=headers, timeout=60) as http:
            answers = [http.post("/run", json={"code": f"print('hello', {k})"}) for k in range(4)]
        for k, r in enumerate(answers):
            assert r.status_code == 200, r.text
            assert r.json()["exit_code"] == 0 and r.json()["stdout"] == f"hello {k}\n", r.text
        for server in servers:
            got = httpx.get(server.url + "/healthz", headers={"Authorization": f"Bearer {admin}"}, timeout=30).json()
            up = {e["name"] for e in got["engines"] if e["ok"]}
            assert up == tls_engines, got["engines"]
    finally:
        if balancer is not None:
            balancer.stop()
        for server in servers:
            pid = server.pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for server in servers:
            server.stop()
        for engine in engines:
            with contextlib.suppress(Exception):
                remove_all(engine.socket)
            engine.stop()
            engine.remove_cgroups()
            engine.purge()
        shutil.rmtree(f"/var/lib/sce-walk-{os.getpid()}", ignore_errors=True)


def engine_up_daemon_json() -> dict[str, object]:
    """The /etc/docker/daemon.json scripts/engine-up writes on a bare engine host."""
    script = (ROOT / "scripts" / "engine-up").read_text()
    body = re.search(r"cat >/etc/docker/daemon.json <<'JSON'\n(.*?)\nJSON\n", script, re.S)
    assert body, "scripts/engine-up no longer writes daemon.json as the walkthrough says"
    parsed: dict[str, object] = json.loads(body.group(1))
    return parsed
