"""The editor under its Content-Security-Policy (issue 30.2): it loads, is styled, runs hello world
and shows an image, with no violation reported; its browser cookie is HTTP-only (issue 29.6)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

RUN_TIMEOUT = 30_000  # ms: a program's outcome, including a sandbox start on a slow machine
NewPage = Callable[..., Page]
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def test_the_editor_runs_under_its_csp_with_no_violation(new_page: NewPage, live_server: str) -> None:
    page = new_page(base_url=live_server)
    page.add_init_script(WATCH_VIOLATIONS)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    answer = page.goto("/ui?example=hello")
    assert answer is not None
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    expect(page.get_by_test_id("run")).to_be_enabled()
    # CodeMirror's own styles (a <style> element it makes) apply: its editor is a flex column
    assert page.locator(".cm-editor").first.evaluate("e => getComputedStyle(e).display") == "flex"
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("status")).to_contain_text("Exited with code 0", timeout=RUN_TIMEOUT)
    expect(page.get_by_test_id("console").locator('[data-stream="stdout"]')).to_have_text(["4"])
    assert page.evaluate("window.__cspViolations") == []
    assert not [m for m in console if "Content Security Policy" in m], console
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["sce_client"]["httpOnly"] and cookies["sce_client"]["sameSite"] == "Lax"
    assert "sce_client" not in page.evaluate("document.cookie")


def test_plots_show_under_the_csp(new_page: NewPage, live_server: str) -> None:
    """Program images are blob: URLs in <img> (img-src allows blob:): they load and decode."""
    page = new_page(base_url=live_server)
    page.add_init_script(WATCH_VIOLATIONS)
    page.goto("/ui?example=plot&timeout=30")
    expect(page.get_by_test_id("run")).to_be_enabled()
    page.get_by_test_id("run").click()
    console = page.get_by_test_id("console")
    expect(console.locator("img").first).to_be_visible(timeout=RUN_TIMEOUT)
    page.wait_for_function("() => [...document.querySelectorAll('.console img')].every(i => i.naturalWidth > 0)")
    assert page.evaluate("window.__cspViolations") == []
