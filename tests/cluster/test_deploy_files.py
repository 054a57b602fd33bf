"""The files in deploy/ are what they claim: HAProxy accepts its config, the server accepts the
settings example, systemd accepts the units. No engine needed; each check is skipped where its
tool is missing (haproxy, systemd-analyze)."""

from __future__ import annotations

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
    copy.write_text(text.replace("/opt/sce/.venv/bin/python", shutil.which("python3") or "/usr/bin/python3"))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if unit in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
