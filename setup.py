"""The one build step pyproject.toml cannot declare: the wheel carries the browser UI.

``build_py`` copies ``static/index.html`` and the esbuild bundle (``static/dist``) into the
package as ``app/ui``, where the server finds them with ``importlib.resources``. When the bundle
is missing (a fresh clone) it is built first with ``npm ci && npm run build`` in ``static/``, as
Jupyter's packages build their JavaScript in a build hook; without npm the build stops with a
sentence saying what to install. Editable installs skip it: a checkout serves ``static/`` itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
BUNDLE = STATIC / "dist" / "app.js"
UI_FILES = ("index.html",)  # besides dist/: everything the page loads is in the bundle


def build_bundle() -> None:
    """``npm ci && npm run build`` in static/, or a clear stop when that cannot be done."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            f"error: the browser UI's bundle ({BUNDLE.relative_to(HERE)}) is missing and npm is not "
            "installed: install Node.js 20+ and npm, or build the bundle elsewhere "
            "(npm --prefix static ci && npm --prefix static run build), then build again"
        )
    for step in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        print(f"building the browser UI: npm {' '.join(step)}", flush=True)
        done = subprocess.run([npm, *step], cwd=STATIC, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: `npm {' '.join(step)}` in static/ failed (exit {done.returncode})")
    if not BUNDLE.is_file():
        raise SystemExit(f"error: `npm run build` made no {BUNDLE.relative_to(HERE)}")


class BuildPyWithUI(build_py):
    """build_py, then the UI into ``<build_lib>/app/ui`` (index.html + dist/)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not BUNDLE.is_file():
            build_bundle()
        target = Path(self.build_lib) / "app" / "ui"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(STATIC / "dist", target / "dist")
        for name in UI_FILES:
            shutil.copy2(STATIC / name, target / name)


setup(cmdclass={"build_py": BuildPyWithUI})
