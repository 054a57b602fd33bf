"""The server's own image, as deploy/ runs it: `scripts/server-image` builds it offline (what
`make server-image` runs), deploy/server-image/docker-run.sh starts it with the engine's socket
mounted, and it serves the UI and runs hello world with exact figures; `docker stop` drains it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT, SERVER_START_TIMEOUT_S, SUITE_SERVER_DEFAULTS, free_port

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

TAG = "sce-server:latest"


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "server-image"), "--tag", TAG],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr
    return TAG


@pytest.fixture(scope="module")
def container(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    port = free_port()
    name = f"sce-test-server-image-{port}"
    settings = SUITE_SERVER_DEFAULTS | {"SCE_BIND": f"127.0.0.1:{port}", "SCE_POOL_SIZE": "0"}
    if "SCE_RUNTIME" in os.environ:
        settings["SCE_RUNTIME"] = os.environ["SCE_RUNTIME"]
    env_file = tmp_path_factory.mktemp("server-image") / "sce.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_")} | {
        "NAME": name,
        "ENV_FILE": str(env_file),
        "IMAGE": image,
    }
    started = subprocess.run(
        [str(ROOT / "deploy" / "server-image" / "docker-run.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, _docker("logs", name).stderr
            time.sleep(0.1)  # polling a process we cannot get an event from
        yield name, url
    finally:
        _docker("rm", "--force", name)


def test_the_server_image_serves_the_ui_and_runs_through_the_mounted_socket(container: tuple[str, str]) -> None:
    name, url = container
    page = httpx.get(url + "/ui", timeout=10)
    assert page.status_code == 200 and "/static/dist/app.js" in page.text
    assert httpx.get(url + "/static/dist/app.js", timeout=10).status_code == 200
    answer = httpx.post(url + "/run", json={"code": "print('hello world')"}, timeout=60).json()
    assert answer["stdout"] == "hello world\n" and answer["reason"] == "exit", answer
    # the host's cgroup tree is mounted: figures as exact as a server on the host gives
    assert answer["memory_peak_bytes"] and answer["cpu_ms"] is not None, answer
    logs = _docker("logs", name)
    assert "resource figures from cgroup v" in logs.stdout + logs.stderr
    # the image's own health check passes (run by hand: the engine's first one waits its interval)
    health = json.loads(_docker("inspect", "--format", "{{json .Config.Healthcheck.Test}}", name).stdout)
    assert health[0] == "CMD"
    assert _docker("exec", name, *health[1:]).returncode == 0


def test_docker_stop_drains_and_exits_cleanly(container: tuple[str, str]) -> None:
    name, _ = container
    assert _docker("stop", name, timeout=60).returncode == 0
    state = json.loads(_docker("inspect", "--format", "{{json .State}}", name).stdout)
    assert state["ExitCode"] == 0, state
    logs = _docker("logs", name)
    assert "shutting down" in logs.stdout + logs.stderr
