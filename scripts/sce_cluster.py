"""A scale-out trial on one host, loopback only: a second Docker engine, N servers, HAProxy in front.

    scripts/cluster up       start what is not running yet (idempotent); print what runs where
    scripts/cluster up --tls ... with the servers reaching engine2 over tcp://127.0.0.1:2376, mutual TLS
    scripts/cluster status   print what runs where
    scripts/cluster down     stop everything it started, by pid; remove the containers its servers left
    scripts/cluster down --purge   ... and the second engine's data root (its images)

Pieces (all bound to 127.0.0.1, state and logs under CLUSTER_DIR, default /run/sce-cluster):

- ``engine2``: a second ``dockerd`` beside the host's own (which is never touched), with its own data
  root, exec root, socket, pid file, containerd namespaces and cgroup parent, no bridge and no
  iptables (docs/DEPLOY.md, "one host, two engines"); runsc is registered with ``--network=none``
  through its own config file. The sandbox images are copied in from the main engine
  (``docker save | docker -H … load``) when missing or different.
- ``server1..N``: ``python -m app serve`` on ports BASE+1.., each using both engines
  (``SCE_DOCKER_HOSTS``) and trusting HAProxy's ``X-Forwarded-For`` (``SCE_TRUSTED_PROXIES``).
- ``haproxy``: deploy/haproxy.cfg with its ``bind`` and ``server`` lines rewritten for loopback.

Only the standard library: ``scripts/cluster`` runs this with the system's python3; the servers run
with the project's ``.venv``. The tests (tests/cluster) drive the same class with their own
directory, ports and settings.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN_SOCKET = "/var/run/docker.sock"
DEFAULT_DIR = Path("/run/sce-cluster")
DEFAULT_DATA = Path("/var/lib/sce-cluster")
DEFAULT_IMAGES = ("sce-sandbox:bookworm", "sce-sandbox-scientific:bookworm")
ENGINE_START_S = 60.0
SERVER_START_S = 60.0
HAPROXY_START_S = 10.0
STOP_S = 30.0


# --- processes, by pid ------------------------------------------------------------------------------------


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat): a pid plus this names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_namespace(pid: int | str = "self") -> str | None:
    """The inode of /proc/PID/ns/pid: the last part of a server's ``sce.owner`` label."""
    try:
        return str(os.stat(f"/proc/{pid}/ns/pid").st_ino)
    except OSError:
        return None


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # another process's exit gives no event here
    return True


def stop_pid(pid: int, within: float, sig: int = signal.SIGTERM) -> None:
    """``sig``, then SIGKILL if it is still there after ``within`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not wait_gone(pid, within):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10)


@dataclass
class PidFile:
    """``pid start-time`` written by us (or a bare pid written by dockerd, checked by its command line)."""

    path: Path
    marker: str = ""  # a string the process's command line must hold (for pid files others write)

    def write(self, pid: int) -> None:
        self.path.write_text(f"{pid} {start_time(pid)}\n")

    def pid(self) -> int | None:
        """The pid if that very process still runs, else None (a stale file is removed)."""
        try:
            parts = self.path.read_text().split()
            pid = int(parts[0])
        except (OSError, ValueError, IndexError):
            return None
        same = start_time(pid) == parts[1] if len(parts) > 1 else self.marker in cmdline(pid)
        if running(pid) and same:
            return pid
        self.path.unlink(missing_ok=True)
        return None

    def owner(self, host: str | None = None) -> str | None:
        """The server's ``sce.owner`` label value (``host:pid:start-time:pid-namespace``), dead or
        alive (the servers run in this script's pid namespace)."""
        try:
            pid, started = self.path.read_text().split()[:2]
        except (OSError, ValueError):
            return None
        return f"{host or socket.gethostname()}:{pid}:{started}:{pid_namespace()}"


# --- the engine API over a unix socket (stdlib only) -----------------------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def engine_get(sock: str, path: str, timeout: float = 10) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(sock, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def engine_delete(sock: str, path: str, timeout: float = 30) -> int:
    conn = _UnixHTTPConnection(sock, timeout)
    try:
        conn.request("DELETE", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def engine_answers(sock: str) -> bool:
    try:
        return engine_get(sock, "/_ping", timeout=2)[0] == 200
    except OSError:
        return False


def image_id(sock: str, image: str) -> str | None:
    try:
        status, body = engine_get(sock, f"/images/{image}/json")
    except OSError:
        return None
    return str(json.loads(body)["Id"]) if status == 200 else None


def containers(sock: str, labels: list[str]) -> list[dict[str, object]]:
    query = urllib.request.quote(json.dumps({"label": labels}))
    status, body = engine_get(sock, f"/containers/json?all=1&filters={query}")
    if status != 200:
        raise RuntimeError(f"listing containers on {sock}: HTTP {status}")
    found: list[dict[str, object]] = json.loads(body)
    return found


def remove_container(sock: str, cid: str) -> None:
    engine_delete(sock, f"/containers/{cid}?force=1&v=1")


# --- the second engine ----------------------------------------------------------------------------------


@dataclass
class Engine:
    """A second dockerd, isolated from the host's own in every place two engines could collide."""

    dir: Path  # exec root, socket, pid file, log
    data_root: Path
    name: str = "engine2"
    images: tuple[str, ...] = DEFAULT_IMAGES
    shutdown_timeout_s: int = 2  # containers get this long on an engine stop before SIGKILL
    tls_port: int | None = None  # also listen on tcp://TLS_ADDRESS:PORT, TLS with client certificates
    tls_address: str = "127.0.0.1"
    # daemon.json's TLS keys (tlsverify, tlscacert, tlscert, tlskey) of certificates made elsewhere
    # (docs/DEPLOY.md's walkthrough); None: a throw-away CA of its own in tls_dir (make_tls)
    tls_config: dict[str, object] | None = None

    @property
    def tls_dir(self) -> Path:
        """ca.pem, cert.pem, key.pem: a client's DOCKER_CERT_PATH (server-*.pem: the engine's own)."""
        return self.dir / f"{self.name}-tls"

    @property
    def tls_url(self) -> str:
        return f"tcp://{self.tls_address}:{self.tls_port}"

    @property
    def socket(self) -> str:
        return str(self.dir / f"{self.name}.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def exec_root(self) -> Path:
        return self.dir / f"{self.name}-exec"

    @property
    def pidfile(self) -> PidFile:
        return PidFile(self.dir / f"{self.name}.pid", marker=f"--exec-root {self.exec_root}")

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    @property
    def cgroup_parent(self) -> str:
        return f"sce-cluster-{self.name}"

    def pid(self) -> int | None:
        return self.pidfile.pid()

    def command(self) -> list[str]:
        config = self.dir / f"{self.name}-daemon.json"
        config.write_text(
            json.dumps(
                {"runtimes": {"runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}}}
                | (self.tls_config or {})
            )
        )
        return [
            "dockerd",
            "--config-file", str(config),  # not /etc/docker/daemon.json: that one belongs to the host's engine
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", self.url,
            "--pidfile", str(self.dir / f"{self.name}.pid"),
            "--containerd-namespace", f"sce-{self.name}",
            "--containerd-plugins-namespace", f"sce-{self.name}-plugins",
            "--cgroup-parent", self.cgroup_parent,
            "--bridge", "none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--shutdown-timeout", str(self.shutdown_timeout_s),
            *self._tls_args(),
        ]  # fmt: skip

    def _tls_args(self) -> list[str]:
        if self.tls_port is None:
            return []
        if self.tls_config is not None:
            return ["-H", self.tls_url]  # the rest is in its config file
        make_tls(self.tls_dir)
        d = self.tls_dir
        return [
            "-H", self.tls_url, "--tlsverify",
            "--tlscacert", str(d / "ca.pem"), "--tlscert", str(d / "server-cert.pem"),
            "--tlskey", str(d / "server-key.pem"),
        ]  # fmt: skip

    def start(self) -> int:
        """Start it unless it runs; wait until it answers; copy the images in. Returns its pid."""
        pid = self.pid()
        if pid is None:
            if engine_answers(self.socket):
                raise RuntimeError(f"something else answers on {self.socket}")
            self.dir.mkdir(parents=True, exist_ok=True)
            self.data_root.mkdir(parents=True, exist_ok=True)
            Path(self.socket).unlink(missing_ok=True)
            with self.log.open("ab") as log:
                proc = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )  # fmt: skip
            pid = proc.pid
        deadline = time.monotonic() + ENGINE_START_S
        while not engine_answers(self.socket):
            if not running(pid):
                raise RuntimeError(f"{self.name} exited while starting; end of {self.log}:\n{tail(self.log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer within {ENGINE_START_S} s:\n{tail(self.log)}")
            time.sleep(0.1)  # no event for "the socket answers"
        self.load_images()
        return pid

    def load_images(self) -> list[str]:
        """Copy each image the main engine has into this one if it is missing or differs (~2 s each)."""
        loaded = []
        for image in self.images:
            want = image_id(MAIN_SOCKET, image)
            if want is None or image_id(self.socket, image) == want:
                continue
            save = subprocess.Popen(["docker", "-H", f"unix://{MAIN_SOCKET}", "save", image], stdout=subprocess.PIPE)
            load = subprocess.run(
                ["docker", "-H", self.url, "load", "-q"], stdin=save.stdout, capture_output=True, timeout=600
            )
            assert save.stdout is not None
            save.stdout.close()
            save.wait(60)
            if load.returncode != 0 or save.returncode != 0:
                raise RuntimeError(f"copying {image} into {self.name} failed: {load.stderr.decode(errors='replace')}")
            loaded.append(image)
        return loaded

    def leftovers(self) -> list[int]:
        """containerd shims and gVisor processes of this engine still running (found by its exec root)."""
        mine = str(self.exec_root)
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid() and mine in cmdline(int(entry.name)):
                found.append(int(entry.name))
        return found

    def stop(self, sig: int = signal.SIGTERM, within: float = STOP_S) -> None:
        """Stop dockerd by its pid, then any shim or runsc process it left behind, each by its pid."""
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, within, sig)
        for left in self.leftovers():
            stop_pid(left, 5, signal.SIGKILL)
        Path(self.socket).unlink(missing_ok=True)
        self.pidfile.path.unlink(missing_ok=True)

    def remove_cgroups(self) -> None:
        """The cgroup parent dockerd created in each hierarchy (only if empty: rmdir refuses otherwise)."""
        for base in (Path("/sys/fs/cgroup"), *Path("/sys/fs/cgroup").iterdir()):
            with contextlib.suppress(OSError):
                (base / self.cgroup_parent).rmdir()

    def purge(self) -> None:
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.data_root.parent.rmdir()  # only if nothing else is in it


def make_tls(d: Path) -> None:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (as docs/DEPLOY.md
    describes for real engine hosts; Docker's own guide: "Protect the Docker daemon socket")."""
    if (d / "key.pem").exists():
        return
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    run("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "7", "-subj", "/CN=sce-trial-ca")
    for name, cn, ext, cert, key in (
        ("server", "127.0.0.1", "server.ext", "server-cert.pem", "server-key.pem"),
        ("client", "sce-server", "client.ext", "cert.pem", "key.pem"),
    ):
        run("req", *ec, "-keyout", key, "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
            "-out", cert, "-days", "7", "-extfile", ext)  # fmt: skip


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the servers ---------------------------------------------------------------------------------------------


def server_settings() -> set[str]:
    """The SCE_ settings this checkout's server knows (it refuses unknown ones)."""
    out = subprocess.run(
        [python(), "-c", "from app.settings import Settings; print(' '.join(Settings.model_fields))"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=without_sce(os.environ),
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"cannot read the server's settings: {out.stderr}")
    return set(out.stdout.split())


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def without_sce(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("SCE_")}


@dataclass
class Server:
    dir: Path
    index: int
    port: int
    env: dict[str, str]
    host: str = "127.0.0.1"

    @property
    def name(self) -> str:
        return f"server{self.index}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pidfile(self) -> PidFile:
        return PidFile(self.dir / f"{self.name}.pid")

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    def pid(self) -> int | None:
        return self.pidfile.pid()

    def owner(self) -> str | None:
        return self.pidfile.owner()

    def start(self) -> int:
        pid = self.pid()
        if pid is None:
            # its sessions' ids begin with its name on HAProxy's server line: their requests come here
            named = {"SCE_SERVER_NAME": self.name}
            env = without_sce(os.environ) | named | self.env | {"SCE_BIND": f"{self.host}:{self.port}"}
            with self.log.open("ab") as log:
                proc = subprocess.Popen(
                    [python(), "-m", "app", "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            pid = proc.pid
            self.pidfile.write(pid)
            self.env_file.write_text(json.dumps(self.env))
        return pid

    @property
    def env_file(self) -> Path:
        return self.dir / f"{self.name}.env.json"

    def started_env(self) -> dict[str, str]:
        try:
            env: dict[str, str] = json.loads(self.env_file.read_text())
            return env
        except (OSError, ValueError):
            return {}

    def health(self, timeout: float = 5) -> tuple[int, dict[str, object]] | None:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read())
            except ValueError:
                return exc.code, {}
        except (OSError, ValueError):
            return None

    def wait_ready(self, within: float = SERVER_START_S) -> dict[str, object]:
        """Until /healthz says 200 with a full warm pool (polled: a process gives no readiness event)."""
        deadline = time.monotonic() + within
        last: object = None
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid is None:
                raise RuntimeError(f"{self.name} exited while starting; end of {self.log}:\n{tail(self.log)}")
            got = self.health()
            last = got
            if got is not None and got[0] == 200:
                pool = got[1].get("pool")
                if not isinstance(pool, dict) or pool.get("ready", 0) >= pool.get("size", 0):
                    return got[1]
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {within} s (last /healthz: {last}):\n{tail(self.log)}")

    def stop(self, sig: int = signal.SIGTERM, within: float = STOP_S) -> None:
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, within, sig)


# --- HAProxy ---------------------------------------------------------------------------------------------------


@dataclass
class Balancer:
    dir: Path
    port: int
    servers: list[Server]
    check_inter_ms: int | None = None  # None: as deploy/haproxy.cfg says
    check_fall: int | None = None
    check_rise: int | None = None
    template: Path = ROOT / "deploy" / "haproxy.cfg"
    source: str | None = None  # the address HAProxy connects to the servers from (its host's)

    @property
    def config(self) -> Path:
        return self.dir / "haproxy.cfg"

    @property
    def stats_socket(self) -> Path:
        return self.dir / "haproxy.sock"

    @property
    def pidfile(self) -> PidFile:
        return PidFile(self.dir / "haproxy.pid")

    @property
    def log(self) -> Path:
        return self.dir / "haproxy.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pid(self) -> int | None:
        return self.pidfile.pid()

    def render(self) -> str:
        """deploy/haproxy.cfg for loopback: every option kept; bind, servers, stats socket and the
        process-level lines (user, chroot, daemon) rewritten or dropped; check timing overridable."""
        out: list[str] = []
        section = ""
        for line in self.template.read_text().splitlines():
            word = line.split()[0] if line.split() else ""
            if line and not line[0].isspace():
                section = line.split()[0] + (" " + line.split()[1] if len(line.split()) > 1 else "")
            if word in ("user", "group", "chroot", "daemon") and section == "global":
                continue
            if word == "stats" and line.split()[1:2] == ["socket"]:
                out.append(f"    stats socket {self.stats_socket} mode 600 level admin")
                continue
            if word == "bind" and section.startswith("frontend"):
                if "ssl" in line.split():
                    continue  # TLS is the deployment's: the trial speaks plain HTTP on loopback
                out.append(f"    bind 127.0.0.1:{self.port}")
                continue
            if word == "server" and section.startswith("backend"):
                if "sce1" in line.split():  # the template's servers become ours, in their place
                    out.extend(f"    server {s.name} {s.host}:{s.port}" for s in self.servers)
                continue
            if word == "default-server":
                line = self._timing(line)
            out.append(line)
            if word == "backend" and self.source is not None:
                out.append(f"    source {self.source}")
        return "\n".join(out) + "\n"

    def _timing(self, line: str) -> str:
        for key, value in (("inter", self.check_inter_ms), ("fall", self.check_fall), ("rise", self.check_rise)):
            if value is not None:
                suffix = "ms" if key == "inter" else ""
                line = re.sub(rf"\b{key} \S+", f"{key} {value}{suffix}", line)
        return line

    def start(self) -> int:
        self.config.write_text(self.render())
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refuses {self.config}:\n{check.stdout}{check.stderr}")
        pid = self.pid()
        if pid is None:
            with self.log.open("ab") as log:
                proc = subprocess.Popen(
                    ["haproxy", "-db", "-f", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            pid = proc.pid
            self.pidfile.write(pid)
        deadline = time.monotonic() + HAPROXY_START_S
        while not self.stats_socket.exists() or not self.listening():
            if not running(pid):
                raise RuntimeError(f"haproxy exited while starting:\n{tail(self.log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy not listening within {HAPROXY_START_S} s:\n{tail(self.log)}")
            time.sleep(0.05)
        return pid

    def listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def command(self, cmd: str) -> str:
        """One command on HAProxy's stats socket (``show stat``, ``show servers state`` ...)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats_socket))
            s.sendall(cmd.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, str]:
        """Each backend server's status as HAProxy sees it: UP, DOWN, ``UP 1/2`` ..."""
        rows = self.command("show stat").splitlines()
        header = rows[0].lstrip("# ").split(",")
        states = {}
        for row in rows[1:]:
            values = dict(zip(header, row.split(","), strict=False))
            if values.get("svname") not in (None, "FRONTEND", "BACKEND", ""):
                states[values["svname"]] = values.get("status", "")
        return states

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            stop_pid(pid, 10, signal.SIGUSR1)  # soft stop: finish the connections it holds, then exit
        self.stats_socket.unlink(missing_ok=True)


# --- the whole ---------------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    dir: Path = DEFAULT_DIR
    data: Path = DEFAULT_DATA
    base_port: int = 5100  # HAProxy here, servers on the next ports
    servers_n: int = 2
    server_env: dict[str, str] = field(default_factory=dict)  # extra SCE_* for every server
    drain_notice_s: float = 4.0  # > HAProxy inter 1s x fall 2 (deploy/haproxy.cfg) + a check
    check_inter_ms: int | None = None
    check_fall: int | None = None
    check_rise: int | None = None
    engines_per_server: str = "both"  # "both": every server uses both engines; "split": server i uses engine i
    notes: list[str] = field(default_factory=list)
    tls_port: int | None = None  # engine2 over tcp://127.0.0.1:PORT with mutual TLS (make_tls), not its socket

    def __post_init__(self) -> None:
        self.engine = Engine(self.dir, self.data / "engine2", tls_port=self.tls_port)
        self.servers = [Server(self.dir, i, self.base_port + i, {}) for i in range(1, self.servers_n + 1)]
        self.balancer = Balancer(
            self.dir, self.base_port, self.servers, self.check_inter_ms, self.check_fall, self.check_rise
        )

    @property
    def engine_urls(self) -> list[str]:
        return [f"unix://{MAIN_SOCKET}", self.engine.tls_url if self.tls_port else self.engine.url]

    def env_for(self, server: Server, known: set[str]) -> dict[str, str]:
        """Each server's SCE_* settings, from what this checkout's server supports."""
        env: dict[str, str] = {}
        if "docker_hosts" in known and self.engines_per_server == "both":
            env["SCE_DOCKER_HOSTS"] = ",".join(self.engine_urls)
            if self.tls_port:
                env["SCE_DOCKER_TLS_DIR"] = str(self.engine.tls_dir)
        else:
            env["SCE_DOCKER_HOST"] = self.engine_urls[(server.index - 1) % 2]
            self.notes.append(f"{server.name}: one engine each (this server has no SCE_DOCKER_HOSTS)")
        if "trusted_proxies" in known:
            env["SCE_TRUSTED_PROXIES"] = "127.0.0.1"
        else:
            self.notes.append(f"{server.name}: no SCE_TRUSTED_PROXIES: every client is HAProxy's 127.0.0.1")
        if "drain_notice_s" in known:
            env["SCE_DRAIN_NOTICE_S"] = str(self.drain_notice_s)
        return env | self.server_env

    def up(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        ensure_haproxy()
        self.engine.start()
        known = server_settings()
        for server in self.servers:
            server.env = self.env_for(server, known)
            server.start()
        for server in self.servers:
            server.wait_ready()
        self.balancer.start()

    def down(self, purge: bool = False) -> None:
        """HAProxy first (no new connections), then the servers (they drain and remove their sandboxes),
        then the second engine; then whatever our servers left on either engine (a killed server's)."""
        owners = {o for o in (s.owner() for s in self.servers) if o}
        self.balancer.stop()
        for server in self.servers:  # all drain at once (each waits out its notice), then each is waited for
            pid = server.pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for server in self.servers:
            server.stop()
        for sock in (MAIN_SOCKET, self.engine.socket):
            if engine_answers(sock):
                for c in containers(sock, ["sce.managed=true"]):
                    labels = c.get("Labels") or {}
                    if isinstance(labels, dict) and labels.get("sce.owner") in owners:
                        remove_container(sock, str(c["Id"]))
        self.engine.stop()
        self.engine.remove_cgroups()
        for server in self.servers:
            server.pidfile.path.unlink(missing_ok=True)
            server.env_file.unlink(missing_ok=True)
        if purge:
            self.engine.purge()

    def status(self) -> str:
        lines = []
        pid = self.engine.pid()
        lines.append(f"engine1  the host's own dockerd    unix://{MAIN_SOCKET}")
        url = self.engine.tls_url + " (mutual TLS)" if self.tls_port else self.engine.url
        lines.append(f"engine2  {'pid ' + str(pid) if pid else 'not running':<22} {url}")
        for server in self.servers:
            pid = server.pid()
            got = server.health(timeout=2) if pid else None
            health = ""
            if got is not None:
                engines = got[1].get("engines")
                health = f"/healthz {got[0]}"
                if isinstance(engines, list):
                    health += " engines " + " ".join(
                        f"{e.get('name')}:{'ok' if e.get('ok') else 'down'}" for e in engines if isinstance(e, dict)
                    )
            state = f"pid {pid}" if pid else "not running"
            lines.append(f"{server.name:<8} {state:<22} {server.url}  {health}".rstrip())
            if pid and server.started_env():
                lines.append("         " + " ".join(f"{k}={v}" for k, v in sorted(server.started_env().items())))
        pid = self.balancer.pid()
        state = f"pid {pid}" if pid else "not running"
        lines.append(f"haproxy  {state:<22} {self.balancer.url}  (ws://127.0.0.1:{self.base_port}/run)")
        if pid:
            with contextlib.suppress(OSError, IndexError):
                lines.append("         " + " ".join(f"{k}:{v}" for k, v in self.balancer.server_states().items()))
        lines.append(f"logs and pid files: {self.dir}")
        lines.extend(f"note: {n}" for n in dict.fromkeys(self.notes))
        return "\n".join(lines)

    @contextlib.contextmanager
    def running(self) -> Iterator[Cluster]:
        try:
            self.up()
            yield self
        finally:
            self.down()


def ensure_haproxy() -> None:
    if shutil.which("haproxy"):
        return
    if os.geteuid() != 0:
        raise RuntimeError("haproxy is missing; install it (apt-get install haproxy) or run as root")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "haproxy"]
    if subprocess.run(install, env=env, stdin=subprocess.DEVNULL, timeout=600).returncode != 0:
        # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
        subprocess.run(install, check=True, env=env, stdin=subprocess.DEVNULL, timeout=600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "down", "status", "render-haproxy"])
    parser.add_argument("--purge", action="store_true", help="down: remove the second engine's data root too")
    parser.add_argument("--servers", type=int, default=int(os.environ.get("CLUSTER_SERVERS", "2")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", "5100")))
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("CLUSTER_DIR", str(DEFAULT_DIR))))
    parser.add_argument(
        "--tls",
        action="store_true",
        default=os.environ.get("CLUSTER_TLS", "") not in ("", "0"),
        help="the servers reach engine2 over tcp://127.0.0.1:2376 with mutual TLS (certificates in the cluster dir)",
    )
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("CLUSTER_DATA", str(DEFAULT_DATA))))
    args = parser.parse_args(argv)
    # SCE_* from the caller's environment reach every server (e.g. SCE_RUNTIME=runsc scripts/cluster up)
    extra = {k: v for k, v in os.environ.items() if k.startswith("SCE_")}
    cluster = Cluster(args.dir, args.data, args.port, args.servers, extra, tls_port=2376 if args.tls else None)
    if args.action != "render-haproxy" and os.geteuid() != 0:
        print("scripts/cluster: starting a second dockerd needs root", file=sys.stderr)
        return 1
    try:
        if args.action == "up":
            cluster.up()
            print(cluster.status())
        elif args.action == "down":
            cluster.down(purge=args.purge)
            print(f"stopped; {'data root removed' if args.purge else f'images kept in {cluster.engine.data_root}'}")
        elif args.action == "status":
            print(cluster.status())
        else:
            print(cluster.balancer.render(), end="")
    except RuntimeError as exc:
        print(f"scripts/cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
