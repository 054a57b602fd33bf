"""What an installed package does before any run: the client installs light, `sce serve` names its
missing extra, bad settings are all reported at once, and `/ui` without its bundle says how to fix
it. (The wheel itself, installed in fresh venvs, is tests/integration/test_packaging.py.)"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from quart import Quart

from app.sandbox.service import SandboxService
from app.server import app as server_app
from app.server.app import create_app
from app.server.ui import FIX, UiFiles, locate
from app.settings import Settings
from tests.conftest import ROOT
from tests.fakes import FakeEngine, FakeSandbox

pytestmark = pytest.mark.timeout(60)

SERVER_ONLY = ("quart", "hypercorn", "docker", "uvloop", "prometheus_client", "werkzeug", "requests")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCE_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def test_the_client_and_the_cli_import_no_server_module() -> None:
    """`pip install safe-code-executor` has no quart, hypercorn, docker or uvloop: the client and
    the CLI's parser (every subcommand's) must not import them, even through another module."""
    code = (
        "import sys, app.client, app.client.cli, app.protocol, app.schema, app.__main__ as m\n"
        "m._parser()\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {SERVER_ONLY!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_serve_without_the_server_extra_says_what_to_install() -> None:
    """Run as a plain install would be: the server's packages cannot be imported."""
    blocker = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {SERVER_ONLY!r}: raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from app.__main__ import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    for command in (["serve"], ["image", "status"]):
        done = subprocess.run(
            [sys.executable, "-c", blocker, *command], env=_env(), capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 1, done.stderr
        (line,) = done.stderr.splitlines()
        assert "pip install 'safe-code-executor[server]'" in line
        assert "Traceback" not in done.stderr


def test_an_unknown_setting_and_a_bad_value_are_both_reported() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve"],
        env=_env(SCE_FOO="1", SCE_TIMEOUT_S="abc"),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == "invalid settings:"
    assert any("SCE_FOO" in line and "unknown setting" in line for line in lines), lines
    assert any(line.strip().startswith("SCE_TIMEOUT_S:") and "'abc'" in line for line in lines), lines
    assert len(lines) == 3, lines  # one line per problem, each once


def test_an_unknown_setting_alone_is_reported_once() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve"], env=_env(SCE_FOO="1"), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["invalid settings:", "  unknown setting(s): SCE_FOO"]


def test_a_checkout_serves_its_static_folder() -> None:
    """Imported from the source tree (no app/ui in it), the UI is the checkout's static/ folder."""
    ui = locate()
    assert ui.source == "checkout" and ui.root == ROOT / "static"


async def _idle(sandbox: FakeSandbox) -> int:
    return 0


def _app_with_ui(tmp: Path, monkeypatch: pytest.MonkeyPatch, *, bundle: bool) -> Quart:
    """The real app, its UI folder a packaged one made here (with or without the bundle)."""
    (tmp / "dist").mkdir(parents=True)
    (tmp / "index.html").write_text('<script type="module" src="/static/dist/app.js"></script>')
    if bundle:
        (tmp / "dist" / "app.js").write_text("console.log('ui')")
    monkeypatch.setattr(server_app, "locate", lambda: UiFiles(tmp, "package"))
    settings = Settings(pool_size=0, scientific_pool_size=0)
    return create_app(settings, SandboxService(settings, engine=FakeEngine(_idle)))


async def test_ui_without_its_bundle_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app_with_ui(tmp_path, monkeypatch, bundle=False)
    with caplog.at_level(logging.WARNING, logger="app.server.app"):
        async with app.test_app() as test_app:
            response = await test_app.test_client().get("/ui")
            body = await response.get_data(as_text=True)
    assert response.status_code == 503
    assert "make install" in body and "npm --prefix static run build" in body and "<script" not in body
    assert any(FIX in r.getMessage() for r in caplog.records), caplog.text  # and in the log at start


async def test_ui_with_its_bundle_serves_page_and_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app_with_ui(tmp_path, monkeypatch, bundle=True)
    with caplog.at_level(logging.WARNING, logger="app.server.app"):
        async with app.test_app() as test_app:
            client = test_app.test_client()
            page = await client.get("/ui")
            script = await client.get("/static/dist/app.js")
            assert page.status_code == 200 and "/static/dist/app.js" in await page.get_data(as_text=True)
            assert script.status_code == 200 and await script.get_data(as_text=True) == "console.log('ui')"
    assert FIX not in caplog.text
