"""The browser editor against the real service: Chromium drives GET /ui, programs run in Docker.

`live_server` (from tests/conftest.py) is the base URL of a running server with a Docker engine.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.docker]

RUN_TIMEOUT = 30_000  # ms: a program's outcome, including a sandbox start on a slow machine
NewPage = Callable[..., Page]
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def code_fragment(code: str) -> str:
    """The share-link fragment for `code`: #code=<base64url of UTF-8, no padding>."""
    return "#code=" + base64.urlsafe_b64encode(code.encode()).decode().rstrip("=")


def open_ui(
    new_page: NewPage,
    live_server: str,
    code: str | None = None,
    query: str = "",
    errors: list[str] | None = None,
    **kw: object,
) -> Page:
    """Open /ui (with `code` as a share link); page errors go to `errors` when given."""
    page: Page = new_page(base_url=live_server, **kw)
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/ui" + query + (code_fragment(code) if code is not None else ""))
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def run(page: Page) -> None:
    expect(page.get_by_test_id("run")).to_be_enabled()
    page.get_by_test_id("run").click()


def editor_text(page: Page) -> str:
    """The editor's document (CodeMirror draws one .cm-line per line)."""
    return "\n".join(page.get_by_test_id("editor").locator(".cm-line").all_text_contents())


def test_hello_prints_4(new_page: NewPage, live_server: str) -> None:
    errors: list[str] = []
    page = open_ui(new_page, live_server, query="?example=hello", errors=errors)
    assert "print(2 + 2)" in editor_text(page)
    run(page)
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("Exited with code 0", timeout=RUN_TIMEOUT)
    out = page.get_by_test_id("console").locator('[data-stream="stdout"]')
    expect(out).to_have_text(["4"])
    assert errors == []


def test_input_prompt_then_answer(new_page: NewPage, live_server: str) -> None:
    code = 'name = input("name? ")\nprint("hello, " + name)\n'
    page = open_ui(new_page, live_server, code)
    stdin = page.get_by_test_id("stdin")
    expect(stdin).to_be_disabled()
    run(page)
    console = page.get_by_test_id("console")
    # The prompt has no newline: it must show before anything is typed.
    prompt = console.locator('[data-stream="stdout"]').first
    expect(prompt).to_have_text("name? ", timeout=RUN_TIMEOUT)
    expect(stdin).to_be_enabled()
    expect(page.get_by_test_id("status")).to_contain_text("Running")
    stdin.fill("Ada")
    stdin.press("Enter")
    expect(console).to_contain_text("hello, Ada")
    expect(prompt).to_have_text("name? Ada")  # the answer is echoed on the prompt's line
    expect(page.get_by_test_id("status")).to_contain_text("Exited with code 0")
    expect(stdin).to_be_disabled()


def test_stop_an_infinite_loop(new_page: NewPage, live_server: str) -> None:
    code = 'print("spinning", flush=True)\nwhile True:\n    pass\n'
    page = open_ui(new_page, live_server, code, query="?timeout=30")
    stop = page.get_by_test_id("stop")
    expect(stop).to_be_disabled()
    run(page)
    expect(page.get_by_test_id("console")).to_contain_text("spinning", timeout=RUN_TIMEOUT)
    expect(stop).to_be_enabled()
    stop.click()
    expect(page.get_by_test_id("status")).to_contain_text("Stopped", timeout=10_000)
    expect(stop).to_be_disabled()
    expect(page.get_by_test_id("run")).to_be_enabled()


def test_timeout_in_words(new_page: NewPage, live_server: str) -> None:
    code = 'import time\nprint("sleeping", flush=True)\ntime.sleep(60)\n'
    page = open_ui(new_page, live_server, code, query="?timeout=2")
    expect(page.get_by_label("Time limit (s)")).to_have_value("2")
    run(page)
    expect(page.get_by_test_id("console")).to_contain_text("sleeping", timeout=RUN_TIMEOUT)
    expect(page.get_by_test_id("status")).to_contain_text("Timed out after 2 s", timeout=RUN_TIMEOUT)


def test_time_limit_field_is_sent(new_page: NewPage, live_server: str) -> None:
    code = "import time\ntime.sleep(60)\n"
    page = open_ui(new_page, live_server, code)
    page.get_by_label("Time limit (s)").fill("1")
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("Timed out after 1 s", timeout=RUN_TIMEOUT)


def test_out_of_memory_in_words(new_page: NewPage, live_server: str) -> None:
    page = open_ui(new_page, live_server, query="?example=memory&timeout=30")
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text(
        re.compile(r"Out of memory \(\d+ MB limit\)"), timeout=RUN_TIMEOUT
    )


def test_stderr_is_styled_apart(new_page: NewPage, live_server: str) -> None:
    code = 'import sys\nprint("to stdout", flush=True)\nprint("to stderr", file=sys.stderr, flush=True)\n'
    page = open_ui(new_page, live_server, code)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("Exited with code 0", timeout=RUN_TIMEOUT)
    console = page.get_by_test_id("console")
    out = console.locator('[data-stream="stdout"]')
    err = console.locator('[data-stream="stderr"]')
    expect(out).to_have_text(["to stdout"])
    expect(err).to_have_text(["to stderr"])
    colour = "el => getComputedStyle(el).color"
    assert out.first.evaluate(colour) != err.first.evaluate(colour)


def test_carriage_return_progress_bar_ends_as_one_line(new_page: NewPage, live_server: str) -> None:
    code = (
        "import time\n"
        "for i in range(21):\n"
        '    print("\\r[" + "#" * i + "." * (20 - i) + "] %3d%%" % (i * 5), end="", flush=True)\n'
        "    time.sleep(0.03)\n"
        'print("\\ndone")\n'
    )
    page = open_ui(new_page, live_server, code)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("Exited with code 0", timeout=RUN_TIMEOUT)
    out = page.get_by_test_id("console").locator('[data-stream="stdout"]')
    expect(out).to_have_text(["[" + "#" * 20 + "] 100%", "done"])


def test_links_in_output_open_in_a_new_tab_and_refused_ones_stay_text(new_page: NewPage, live_server: str) -> None:
    # The kept link points at this server: clicking it must not send traffic off the machine.
    target = live_server + "/healthz"
    code = (
        r'print("\033]8;;javascript:alert(1)\033\\click me\033]8;;\033\\")' + "\n"
        rf'print("see \033]8;;{target}\033\\the health page\033]8;;\033\\ for details")' + "\n"
    )
    page = open_ui(new_page, live_server, code)
    run(page)
    expect(page.get_by_test_id("status")).to_contain_text("Exited with code 0", timeout=RUN_TIMEOUT)
    out = page.get_by_test_id("console").locator('[data-stream="stdout"]')
    expect(out).to_have_text(["click me", "see the health page for details"])
    expect(out.nth(0).locator("a")).to_have_count(0)  # refused: plain text, nothing to click
    link = out.nth(1).locator("a")
    expect(link).to_have_text("the health page")
    expect(link).to_have_attribute("href", target)
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    with page.context.expect_page() as opened:
        link.click()
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == target
    assert page.url.startswith(live_server + "/ui")  # the editor stays where it was


def test_code_survives_reload(new_page: NewPage, live_server: str) -> None:
    page = open_ui(new_page, live_server)
    content = page.get_by_test_id("editor").locator(".cm-content")
    content.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    page.keyboard.type("print('kept across reloads')")
    expect(content).to_have_text("print('kept across reloads')")
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert editor_text(page) == "print('kept across reloads')"


def test_share_link_restores_code(new_page: NewPage, live_server: str) -> None:
    code = 'word = "ünïcødé ✓"\nprint(word, len(word))\n'
    page = open_ui(new_page, live_server, code)
    assert editor_text(page) == code
    page.get_by_test_id("share").click()
    link = page.get_by_test_id("share-link")
    expect(link).to_have_value(re.compile(r"/ui#code=[A-Za-z0-9_-]+$"))
    url = link.input_value()
    other = new_page(base_url=live_server)  # a fresh context: nothing in its storage
    other.goto(url)
    expect(other.locator("body")).to_have_attribute("data-ready", "true")
    assert editor_text(other) == code
    run(other)
    expect(other.get_by_test_id("console")).to_contain_text("ünïcødé ✓ 9", timeout=RUN_TIMEOUT)


SHOWCASE = """\
import sys, time

print("\\x1b[1mTraining a tiny model\\x1b[0m in the sandbox")
for epoch in range(1, 4):
    for step in range(21):
        bar = "\u2588" * step + "\u00b7" * (20 - step)
        print(f"\\repoch {epoch} [{bar}] {step * 5:3d}%", end="", flush=True)
        time.sleep(0.04)
    print(f"  \\x1b[32mloss={0.9 / epoch:.3f}\\x1b[0m", flush=True)
    if epoch == 2:
        time.sleep(0.2)
        print("warning: learning rate looks high", file=sys.stderr, flush=True)
        time.sleep(0.2)
name = input("\\x1b[36mSave the model as?\\x1b[0m ")
print("saved", name)
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshot_mid_run(new_page: NewPage, live_server: str, scheme: str) -> None:
    page = open_ui(new_page, live_server, SHOWCASE, query="?timeout=30", color_scheme=scheme)
    run(page)
    expect(page.get_by_test_id("console")).to_contain_text("Save the model as?", timeout=RUN_TIMEOUT)
    expect(page.get_by_test_id("status")).to_contain_text("Running")
    page.get_by_test_id("stdin").focus()
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"ui-{scheme}.png"))
    page.get_by_test_id("stop").click()
    expect(page.get_by_test_id("status")).to_contain_text("Stopped", timeout=10_000)
