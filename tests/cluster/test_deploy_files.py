"""The files in deploy/ are what they claim: HAProxy accepts its config, the server accepts the
settings example, systemd accepts the units, Compose its file. And they agree with each other and
with docs/DEPLOY.md: the measured churn, how remote engines are reached, how the server is
installed and run. No engine needed; each tool check is skipped where its tool is missing
(haproxy, systemd-analyze, docker-compose)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import sce_cluster
from tests.conftest import ROOT

pytestmark = pytest.mark.cluster

DEPLOY = ROOT / "deploy"
DOC = ROOT / "docs" / "DEPLOY.md"
UNIT = DEPLOY / "systemd" / "sce.service"
ENV_EXAMPLE = DEPLOY / "sce.env.example"
RUN_LINE = DEPLOY / "server-image" / "docker-run.sh"
COMPOSE = DEPLOY / "server-image" / "compose.yaml"
INSTALLED_SCE = "/opt/sce/venv/bin/sce"


def _flat(text: str) -> str:
    """Markdown or comments as one line of words (figures and phrases may wrap anywhere)."""
    return re.sub(r"[#\s*]+", " ", text)


def test_haproxy_accepts_the_config_and_its_loopback_rendering(tmp_path: Path) -> None:
    if not shutil.which("haproxy"):
        pytest.skip("haproxy is not installed (scripts/cluster installs it)")
    rendered = tmp_path / "haproxy.cfg"
    servers = [sce_cluster.Server(tmp_path, i, 6000 + i, {}) for i in (1, 2)]
    balancer = sce_cluster.Balancer(tmp_path, 6000, servers, 500, 1, 2)
    rendered.write_text(balancer.render())
    for cfg in (DEPLOY / "haproxy.cfg", rendered):
        done = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{cfg}: {done.stdout}{done.stderr}"
    text = "\n".join(line.split("#")[0] for line in rendered.read_text().splitlines())  # without comments
    assert "server server1 127.0.0.1:6001" in text and "server server2 127.0.0.1:6002" in text
    assert "inter 500ms" in text and "fall 1" in text and "rise 2" in text
    assert "10.0.0." not in text and "user haproxy" not in text and " ssl " not in text
    # what the servers and the tests rely on is in the deployed file itself
    deployed = (DEPLOY / "haproxy.cfg").read_text()
    for line in (
        "balance leastconn",
        "option httpchk GET /healthz?balancer=1",
        "http-check expect status 200",
        "option forwardfor",
        "http-request del-header X-Forwarded-For",
        "retry-on conn-failure empty-response 503",
        "option redispatch 1",
    ):
        assert re.search(rf"^\s+{re.escape(line)}\s*$", deployed, re.M), line
    tunnel = int(re.search(r"timeout tunnel (\d+)s", deployed).group(1))  # type: ignore[union-attr]
    assert tunnel > 60, "a silent run may last SCE_TIMEOUT_MAX_S (60 s): the tunnel must outlive it"


def test_the_settings_example_is_accepted_by_the_server() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_")}
    for line in (DEPLOY / "sce.env.example").read_text().splitlines():
        if line.startswith("SCE_"):
            key, _, value = line.partition("=")
            env[key] = value
    code = "from app.settings import Settings; s = Settings(); print(s.drain_notice_s, s.shutdown_grace_s)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    notice, grace = map(float, done.stdout.split())
    unit = (DEPLOY / "systemd" / "sce.service").read_text()
    stop_s = int(re.search(r"^TimeoutStopSec=(\d+)s$", unit, re.M).group(1))  # type: ignore[union-attr]
    assert stop_s > notice + grace + 5, (stop_s, notice, grace)


@pytest.mark.parametrize("unit", ["sce.service", "sce-engine2.service"])
def test_systemd_accepts_the_units(unit: str, tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / "systemd" / unit).read_text()
    copy = tmp_path / unit
    # the server's venv lives in /opt/sce on a real host: check the unit with an interpreter that exists
    copy.write_text(text.replace(INSTALLED_SCE, sys.executable))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if unit in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr


def test_the_churn_figures_agree() -> None:
    """sce.env.example sizes engines with DEPLOY's measured figures (runc range, runsc)."""
    doc = _flat(DOC.read_text())
    example = _flat(ENV_EXAMPLE.read_text())
    measured = re.search(
        r"about (\d+-\d+) of our sandbox containers a second on 2 cores under runc, ~(\d+) under runsc", doc
    )
    assert measured, "DEPLOY.md's sizing lost its churn figures"
    said = re.search(r"about (\d+-\d+) containers a second under runc, ~(\d+) under runsc", example)
    assert said, "sce.env.example lost its churn figures"
    assert said.groups() == measured.groups() == ("10-13", "6")
    assert not re.search(r"about \d+ containers a second", example + doc)  # no older single figure left


def test_remote_engines_are_offered_the_way_they_work() -> None:
    """TLS with client certificates (tcp://HOST:2376 + SCE_DOCKER_TLS_DIR) everywhere; no ssh://
    offered (not enabled), no page still saying TLS runs are refused."""
    doc = _flat(DOC.read_text())
    example = ENV_EXAMPLE.read_text()
    unit = UNIT.read_text()
    for name, text in (("DEPLOY.md", doc), ("sce.env.example", example), ("sce.service", unit)):
        for url in re.findall(r"tcp://(?!0\.0\.0\.0)[\w.-]+:(\d+)", text):
            assert url == "2376", f"{name} offers a tcp:// engine on {url}, not Docker's TLS port"
        assert "SCE_DOCKER_TLS_DIR" in text, f"{name} offers tcp:// engines without naming SCE_DOCKER_TLS_DIR"
    assert "ssh://" not in unit
    for sentence in re.split(r"(?<=[.:;])\s", example + " " + doc):
        if "ssh://" in sentence:
            assert "not supported" in sentence, sentence
    assert "runs are refused" not in doc and "refused (`unavailable`" not in doc
    assert re.search(r"^#SCE_DOCKER_HOSTS=unix:///var/run/docker.sock,tcp://[\w.-]+:2376$", example, re.M)
    assert re.search(r"^#SCE_DOCKER_TLS_DIR=/", example, re.M)


def test_the_unit_runs_the_installed_package() -> None:
    """No checkout, no working directory: the console script of the venv DEPLOY.md installs."""
    unit = UNIT.read_text()
    assert re.search(rf"^ExecStart={re.escape(INSTALLED_SCE)} serve$", unit, re.M)
    assert not re.search(r"^WorkingDirectory=", unit, re.M)
    assert "python -m app" not in unit
    doc = DOC.read_text()
    assert "python3 -m venv /opt/sce/venv" in doc and "/opt/sce/venv/bin/pip install" in doc and "[server]" in doc
    env_file = re.search(r"^EnvironmentFile=(\S+)$", unit, re.M).group(1)  # type: ignore[union-attr]
    assert f"deploy/sce.env.example {env_file}" in doc  # where the install step puts it
    assert env_file in RUN_LINE.read_text() and env_file in COMPOSE.read_text()


def test_the_container_files_start_the_same_container() -> None:
    """docker-run.sh and compose.yaml: the same image, namespaces, mounts and stop timeout (the
    container tests/integration/test_server_image.py runs), and the unit's stop timeout."""
    run = RUN_LINE.read_text()
    compose = COMPOSE.read_text()
    pairs = [
        ("--network host", "network_mode: host"),
        ("--pid host", "pid: host"),
        ("--user 0", 'user: "0"'),
        ("--volume /var/run/docker.sock:/var/run/docker.sock", "- /var/run/docker.sock:/var/run/docker.sock"),
        ("--volume /sys/fs/cgroup:/sys/fs/cgroup", "- /sys/fs/cgroup:/sys/fs/cgroup"),
        ("sce-server:latest", "image: sce-server:latest"),
        ("--restart unless-stopped", "restart: unless-stopped"),
    ]
    for in_run, in_compose in pairs:
        assert in_run in run and in_compose in compose, (in_run, in_compose)
    unit_stop = re.search(r"^TimeoutStopSec=(\d+)s$", UNIT.read_text(), re.M).group(1)  # type: ignore[union-attr]
    assert f"--stop-timeout {unit_stop}" in run and f"stop_grace_period: {unit_stop}s" in compose


def test_compose_accepts_its_file(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed")
    env = tmp_path / "sce.env"
    env.write_text("SCE_BIND=127.0.0.1:5000\n")
    copy = tmp_path / "compose.yaml"
    copy.write_text(COMPOSE.read_text().replace("/etc/sce/sce.env", str(env)))
    done = subprocess.run(
        [compose, "-f", str(copy), "-p", "scecheck", "config"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "network_mode: host" in done.stdout and "SCE_BIND: 127.0.0.1:5000" in done.stdout


def test_the_walkthrough_agrees_with_the_deploy_files() -> None:
    """DEPLOY.md's two-host walkthrough (run by test_deploy_walkthrough.py where root is at hand)
    names the files, settings, ports and servers that deploy/ and scripts/engine-up have."""
    from app.settings import Settings
    from tests.cluster.test_deploy_walkthrough import HOSTS, engine_up_daemon_json, walkthrough_blocks

    blocks = walkthrough_blocks(DOC.read_text())
    host = blocks["host"]
    env_text = re.search(r"cat >(\S+) <<END\n(.*?)\nEND$", host, re.M | re.S)
    assert env_text, "the walkthrough no longer writes the env file with a here-document"
    unit = UNIT.read_text()
    assert env_text.group(1) == re.search(r"^EnvironmentFile=(\S+)$", unit, re.M).group(1)  # type: ignore[union-attr]
    env = dict(line.split("=", 1) for line in env_text.group(2).splitlines())
    known = {f"SCE_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known, set(env) - known
    example = ENV_EXAMPLE.read_text()
    tls_dir = re.search(r"^#SCE_DOCKER_TLS_DIR=(\S+)$", example, re.M).group(1)  # type: ignore[union-attr]
    assert env["SCE_DOCKER_TLS_DIR"] == tls_dir and f"`SCE_DOCKER_TLS_DIR` | `{tls_dir}`" in DOC.read_text()
    assert all(f"{tls_dir}/{name}" in host for name in ("ca.pem", "cert.pem", "key.pem"))
    engines = env["SCE_DOCKER_HOSTS"].split(",")
    assert engines == [f"tcp://{h.address}:2376" for h in HOSTS]
    assert 'DOCKER_OPTS=\\"-H tcp://$ADDR:2376\\"' in host
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    for h in HOSTS:  # each server's name and address are a server line of deploy/haproxy.cfg
        assert re.search(rf"^\s+server {h.server} {re.escape(h.address)}:5000\b", haproxy, re.M), h
    assert env["SCE_BIND"] == "$ADDR:5000" and env["SCE_SERVER_NAME"] == "$S"
    assert env["SCE_TRUSTED_PROXIES"] == HOSTS[0].address  # HAProxy on host A
    daemon = json.loads(blocks["daemon"])
    assert {k: v for k, v in daemon.items() if not k.startswith("tls")} == engine_up_daemon_json()
    for key, name in (("tlscacert", "ca.pem"), ("tlscert", "server-cert.pem"), ("tlskey", "server-key.pem")):
        assert daemon[key] == f"/etc/docker/tls/{name}" and f" /etc/docker/tls/{name}\n" in host
    assert "ca-key.pem" not in host, "the CA's key never leaves the administrator's machine"
