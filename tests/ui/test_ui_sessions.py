"""The editor's "Keep state" (sessions, protocol v3) and its exception marks, in Chromium
against the real service: what a person at the page notices."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.ui.test_ui import RUN_TIMEOUT, open_ui, run

pytestmark = [pytest.mark.browser, pytest.mark.docker]

NewPage = Callable[..., Page]
IMAGES = Path(os.environ.get("UI_SCREENSHOTS_DIR", "/tmp/sce-ui-shots"))


def set_code(page: Page, code: str) -> None:
    """Replace the editor's text, as typed (one line: the editor's auto-indent stays out of it)."""
    page.get_by_test_id("editor").locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.type(code)


def run_to_end(page: Page) -> None:
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("Exited", timeout=RUN_TIMEOUT)
    expect(page.get_by_test_id("run")).to_be_enabled()


def test_keep_state_keeps_names_shows_out_and_survives_a_reload(new_page: NewPage, live_server: str) -> None:
    errors: list[str] = []
    page = open_ui(new_page, live_server, "x = 41", errors=errors)
    keep = page.get_by_role("checkbox", name=re.compile("Keep state"))
    keep.check()
    run_to_end(page)
    state = page.get_by_test_id("session-state")
    expect(state).to_be_visible()
    expect(state).to_contain_text(re.compile(r"Session idle · 1 run · expires in \d+ (min|s)"))
    set_code(page, "x + 1")
    run_to_end(page)
    console = page.get_by_test_id("console")
    expect(console.locator(".out-line")).to_have_text(["Out: 42"])
    expect(console.locator(".run-sep")).to_have_text(["In [1]", "In [2]"])  # both runs, one line apart

    page.reload()  # the tab's session is kept (sessionStorage) while it lives
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_role("checkbox", name=re.compile("Keep state"))).to_be_checked()
    expect(page.get_by_test_id("session-state")).to_contain_text("2 runs")
    set_code(page, "x * 2")
    run_to_end(page)
    expect(page.get_by_test_id("console").locator(".out-line")).to_have_text(["Out: 82"])
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "ui-keep-state.png"))

    page.get_by_role("button", name="Restart").click()  # a clean interpreter
    expect(page.get_by_test_id("console")).to_contain_text("Restarted")
    set_code(page, "x")
    run_to_end(page)
    expect(page.get_by_test_id("console")).to_contain_text("NameError: name 'x' is not defined")
    expect(page.get_by_test_id("session-state")).to_contain_text("1 run")
    keep.uncheck()  # off: the session is let go, and runs are one-shot again
    expect(page.get_by_test_id("session-state")).to_be_hidden()
    assert errors == []


def test_an_exception_marks_its_line_with_its_name_and_value(new_page: NewPage, live_server: str) -> None:
    page = open_ui(new_page, live_server, "a = 1\nb = 0\nprint(a / b)\nprint('never')\n")
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("ZeroDivisionError at line 3", timeout=RUN_TIMEOUT)
    editor = page.get_by_test_id("editor")
    marked = editor.locator(".cm-lintRange-error")
    expect(marked).to_have_text("print(a / b)")
    expect(editor.locator(".cm-line").nth(2).locator(".cm-lintRange-error")).to_have_count(1)  # line 3
    editor.locator(".cm-lint-marker-error").hover()
    expect(page.locator(".cm-tooltip-lint")).to_contain_text("ZeroDivisionError: division by zero")
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "ui-exception-mark.png"))
    run(page)  # the next run starts unmarked
    expect(editor.locator(".cm-lintRange-error")).to_have_count(0)
    expect(page.get_by_test_id("status")).to_contain_text("ZeroDivisionError", timeout=RUN_TIMEOUT)
    expect(marked).to_have_count(1)
