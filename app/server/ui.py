"""Where the browser UI's files are, and what ``/ui`` says when its bundle is missing.

An installed wheel carries them in the package (``app/ui``: ``index.html`` and the esbuild bundle
in ``dist/``; setup.py puts them there), found with ``importlib.resources`` wherever the server
runs from. A source checkout, imported from its own tree (``PYTHONPATH`` or an editable install),
serves its ``static/`` folder instead, so a fresh ``npm run build`` shows at the next reload.
Neither ever depends on the working directory.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

BUNDLE = "dist/app.js"
PACKAGED = "ui"  # app/ui in a wheel
FIX = (
    "The browser UI's bundle is missing: run `make install` (or `npm --prefix static ci && "
    "npm --prefix static run build`) in the checkout, or install a wheel built from one."
)


@dataclass(frozen=True)
class UiFiles:
    """The folder served at ``/static/`` and whose ``index.html`` is ``/ui``."""

    root: Path
    source: str  # "package" or "checkout"

    @property
    def index(self) -> Path:
        return self.root / "index.html"

    @property
    def complete(self) -> bool:
        return self.index.is_file() and (self.root / BUNDLE).is_file()


def locate() -> UiFiles:
    """The packaged UI if the package has one, else the checkout's ``static/`` next to it.

    (pip installs wheels unzipped, so the package's resources are plain files; a zipped
    package would find no UI and say so.)
    """
    packaged = resources.files("app").joinpath(PACKAGED)
    if isinstance(packaged, Path) and (packaged / "index.html").is_file():
        return UiFiles(packaged, "package")
    package_dir = Path(str(resources.files("app")))
    return UiFiles(package_dir.parent / "static", "checkout")


def missing_page() -> str:
    """``/ui`` without its bundle: one sentence naming the fix, not a blank page."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Safe Code Executor</title></head>'
        f"<body><p>{html.escape(FIX)}</p></body></html>\n"
    )
