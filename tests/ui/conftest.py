"""Browser fixtures for the editor page: Debian's Chromium driven by Playwright's sync API.

No browser is downloaded: Playwright launches /usr/bin/chromium. The page needs the built
bundle (static/dist/); build it with `npm --prefix static ci && npm --prefix static run build`.

Tests against the real service take the `live_server` fixture (the base URL of a running server
with a Docker engine) from tests/conftest.py. It must serve from another thread or process: the
sync API blocks this one while it waits for the page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "static"


@pytest.fixture(scope="session")
def ui_bundle() -> Path:
    """static/, after checking that the bundle has been built."""
    for name in ("index.html", "dist/app.js", "dist/app.css"):
        if not (STATIC / name).is_file():
            pytest.fail(f"static/{name} is missing: run `npm --prefix static ci && npm --prefix static run build`")
    return STATIC


@pytest.fixture(scope="module")
def chromium(ui_bundle: Path) -> Iterator[Any]:
    """One headless Chromium per test module (closed before the next module's tests run)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_page(chromium: Any) -> Iterator[Callable[..., Any]]:
    """A factory of pages, each in a fresh context (own storage); all closed after the test."""
    contexts = []

    def make(color_scheme: str = "light", width: int = 1280, height: int = 800, base_url: str | None = None) -> Any:
        ctx = chromium.new_context(
            viewport={"width": width, "height": height},
            color_scheme=color_scheme,
            base_url=base_url,
        )
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()
