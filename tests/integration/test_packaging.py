"""The wheel as an operator installs it: built from the checkout's files alone, installed in fresh
venvs outside the checkout, run from another folder.

- with ``[server]``: ``sce serve`` serves ``/ui`` with its script and runs hello world on the engine;
- without: ``sce run`` works against that server, and quart, hypercorn, docker and uvloop are not
  installed at all (``sce serve`` there names the extra in one line).

The build reuses ``static/dist`` when the checkout has one (else setup.py runs npm). The
dependencies come from a local wheelhouse (``build/wheelhouse``, or ``SCE_TEST_WHEELHOUSE``),
filled from PyPI by ``pip download`` only when it lacks something, so later runs are offline.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, SERVER_START_TIMEOUT_S, SUITE_SERVER_DEFAULTS, free_port

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]

SERVER_ONLY = ("quart", "hypercorn", "docker", "uvloop")
WHEELHOUSE = Path(os.environ.get("SCE_TEST_WHEELHOUSE", ROOT / "build" / "wheelhouse"))


def _pip(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH (the checkout must not leak in) and no SCE_ settings of the caller's."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SCE_")}


def _copy_of_the_checkout(dest: Path) -> Path:
    """The files a clone has (tracked and new, not ignored), plus the built bundle if there is one."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: nothing to build a wheel from")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    if (ROOT / "static" / "dist" / "app.js").is_file():
        shutil.copytree(ROOT / "static" / "dist", dest / "static" / "dist")
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = _copy_of_the_checkout(tmp_path_factory.mktemp("clone"))
    out = tmp_path_factory.mktemp("wheel")
    # without build isolation when this venv's setuptools can build it (no download); else as pip does
    try:
        isolation = [] if int(importlib.metadata.version("setuptools").split(".")[0]) < 77 else ["--no-build-isolation"]
    except importlib.metadata.PackageNotFoundError:
        isolation = []
    done = _pip("wheel", "--no-deps", *isolation, "-w", str(out), str(src))
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("safe_code_executor-*.whl")
    return built


def _install(venv: Path, requirement: str) -> None:
    """A venv of the base interpreter (not this one's packages), installed from the wheelhouse."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    offline = ["--python", python, "install", "--no-index", "--find-links", str(WHEELHOUSE), requirement]
    if _pip(*offline).returncode != 0:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        fetched = _pip("download", "--only-binary=:all:", "-d", str(WHEELHOUSE), requirement)
        assert fetched.returncode == 0, fetched.stdout + fetched.stderr
        for copy in WHEELHOUSE.glob("safe_code_executor-*.whl"):  # only dependencies are kept there
            copy.unlink()
    done = _pip(*offline)
    assert done.returncode == 0, done.stdout + done.stderr


def _installed(venv: Path) -> set[str]:
    code = "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'].lower() for d in m.distributions()))"
    done = subprocess.run([venv / "bin" / "python", "-c", code], capture_output=True, text=True, timeout=30, check=True)
    return set(done.stdout.split())


@pytest.fixture(scope="module")
def served(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``sce serve`` of a [server] install, started from an unrelated folder."""
    venv = tmp_path_factory.mktemp("server") / "venv"
    _install(venv, f"{wheel}[server]")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    port = free_port()
    env = _clean_env() | SUITE_SERVER_DEFAULTS | {"SCE_BIND": f"127.0.0.1:{port}", "SCE_POOL_SIZE": "0"}
    if "SCE_RUNTIME" in os.environ:
        env["SCE_RUNTIME"] = os.environ["SCE_RUNTIME"]
    log = elsewhere / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([venv / "bin" / "sce", "serve"], cwd=elsewhere, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)  # polling a process we cannot get an event from
        where = subprocess.run(
            [venv / "bin" / "python", "-c", "import app; print(app.__file__)"],
            cwd=elsewhere,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert where.stdout.startswith(str(venv)), where.stdout  # the installed package, not the checkout
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "bundle is missing" not in log.read_text()


def test_the_wheel_carries_the_ui_and_the_seccomp_profile(wheel: Path) -> None:
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("app/ui/index.html", "app/ui/dist/app.js", "app/ui/dist/app.css", "app/sandbox/docker/seccomp.json"):
        assert needed in names, needed
    assert not any(n.startswith(("static/", "tests/", "app/ui/src")) or "node_modules" in n for n in names)


def test_an_installed_server_serves_the_ui_and_runs_code(served: str) -> None:
    page = httpx.get(served + "/ui", timeout=10)
    assert page.status_code == 200 and '<script type="module" src="/static/dist/app.js">' in page.text
    script = httpx.get(served + "/static/dist/app.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"] and len(script.content) > 10_000
    answer = httpx.post(served + "/run", json={"code": "print('hello world')"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stdout"] == "hello world\n" and answer.json()["reason"] == "exit"


def test_a_plain_install_is_a_working_client_without_the_server(
    wheel: Path, served: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    venv = tmp_path_factory.mktemp("client") / "venv"
    _install(venv, str(wheel))
    installed = _installed(venv)
    assert "safe-code-executor" in installed and "websockets" in installed
    assert not installed & set(SERVER_ONLY), installed & set(SERVER_ONLY)
    elsewhere = tmp_path_factory.mktemp("client-cwd")
    sce = str(venv / "bin" / "sce")
    ran = subprocess.run(
        [sce, "run", "--url", served, "-c", "print('hello from', 'the client')"],
        cwd=elsewhere,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0 and ran.stdout == "hello from the client\n", ran.stdout + ran.stderr
    serve = subprocess.run([sce, "serve"], cwd=elsewhere, env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert serve.returncode == 1 and serve.stdout == ""
    (line,) = serve.stderr.splitlines()
    assert "pip install 'safe-code-executor[server]'" in line
