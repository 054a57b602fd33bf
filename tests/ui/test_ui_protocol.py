"""The editor page against a scripted stand-in for the server: no server, no Docker.

Playwright answers the page's requests from static/ and plays the server's side of the WebSocket
(`page.route_web_socket`), so each test chooses exactly how frames are cut, which errors come
and when the connection closes: the cases a real sandbox cannot produce on demand.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Route, WebSocketRoute, expect

pytestmark = [pytest.mark.browser]

ORIGIN = "http://127.0.0.1:47999"  # never contacted: every request is answered by the routes
STATIC = Path(__file__).resolve().parents[2] / "static"
Frame = dict[str, Any]
OpenUI = Callable[..., tuple[Page, "FakeServer"]]
LIMITS = {"timeout_s": 10, "memory_mb": 128, "output_bytes": 1_000_000, "pids": 64}


def code_fragment(code: str) -> str:
    return "#code=" + base64.urlsafe_b64encode(code.encode()).decode().rstrip("=")


class FakeServer:
    """The server's end of each WebSocket the page opens; frames the page sent are recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sockets: list[WebSocketRoute] = []
        self.received: list[list[Frame]] = []
        page.route_web_socket(re.compile(r"^wss?://[^/]+/run(\?.*)?$"), self._accept)

    def _accept(self, ws: WebSocketRoute) -> None:
        frames: list[Frame] = []
        self.sockets.append(ws)
        self.received.append(frames)
        ws.on_message(lambda message: frames.append(json.loads(message)))

    @property
    def ws(self) -> WebSocketRoute:
        return self.sockets[-1]

    def wait_until(self, cond: Callable[[], bool]) -> None:
        """Poll `cond` (a check of frames the page sent) with a deadline.

        The route callbacks that record frames run while Playwright waits on the page, so the
        poll waits on the page between checks: a bounded poll of a condition, as expect() does.
        """
        for _ in range(400):
            if cond():
                return
            self.page.wait_for_timeout(25)
        raise AssertionError("the page did not send what was expected")

    def sent(self, n: int = -1) -> list[Frame]:
        return self.received[n]

    def send(self, frame: Frame) -> None:
        self.ws.send(json.dumps(frame))

    def start(self, limits: Frame | None = None) -> None:
        self.send({"type": "started", "id": "t1", "limits": limits or LIMITS})

    def out(self, data: str, stream: str = "stdout") -> None:
        self.send({"type": stream, "data": data})

    def exit(self, reason: str = "exit", exit_code: int | None = 0, signal: str | None = None, **kw: object) -> None:
        frame: Frame = {
            "type": "exit",
            "reason": reason,
            "exit_code": exit_code,
            "signal": signal,
            "duration_ms": 1234,
            "stdout_bytes": 0,
            "stderr_bytes": 0,
            "truncated": False,
        }
        frame.update(kw)
        self.send(frame)
        self.ws.close(code=1000)


def _serve_static(route: Route) -> None:
    path = route.request.url[len(ORIGIN) :].split("?")[0].split("#")[0]
    if path in ("/", "/ui"):
        file = STATIC / "index.html"
    elif path.startswith("/static/"):
        file = (STATIC / path[len("/static/") :]).resolve()
        if STATIC not in file.parents or not file.is_file():
            route.fulfill(status=404, body="not found")
            return
    else:
        route.fulfill(status=404, body="not found")
        return
    ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if file.suffix == ".js":
        ctype = "text/javascript"
    route.fulfill(status=200, body=file.read_bytes(), headers={"Content-Type": ctype})


@pytest.fixture
def ui(new_page: Callable[..., Page]) -> OpenUI:
    """open(code=None, query="") -> (page, server)"""

    def open_page(code: str | None = None, query: str = "", **kw: object) -> tuple[Page, FakeServer]:
        page = new_page(**kw)
        page.context.route(re.compile(r"^https?://.*"), _serve_static)
        server = FakeServer(page)
        page.goto(ORIGIN + "/ui" + query + (code_fragment(code) if code is not None else ""))
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        return page, server

    return open_page


def start_run(page: Page, server: FakeServer, count: int = 1) -> Frame:
    page.get_by_test_id("run").click()
    server.wait_until(lambda: len(server.sockets) >= count and len(server.received[count - 1]) >= 1)
    return server.received[count - 1][0]


def lines(page: Page, stream: str | None = None) -> list[str]:
    sel = ".line" if stream is None else f'.line[data-stream="{stream}"]'
    return page.get_by_test_id("console").locator(sel).all_text_contents()


def test_run_frame_carries_code_and_time_limit(ui: OpenUI) -> None:
    page, server = ui("print('hi')\n", "?timeout=3")
    frame = start_run(page, server)
    assert frame == {"type": "run", "code": "print('hi')\n", "timeout": 3, "stats": True}
    assert server.ws.url == ORIGIN.replace("http", "ws") + "/run"


def test_no_time_limit_means_the_servers_default(ui: OpenUI) -> None:
    page, server = ui("print(1)\n")
    assert start_run(page, server) == {"type": "run", "code": "print(1)\n", "stats": True}


def test_token_in_the_page_url_is_passed_to_the_socket(ui: OpenUI) -> None:
    page, server = ui("print(1)\n", "?token=s3cret")
    start_run(page, server)
    assert server.ws.url.endswith("/run?token=s3cret")


def test_queue_then_running_then_exit(ui: OpenUI) -> None:
    page, server = ui("print(1)\n")
    start_run(page, server)
    status = page.get_by_test_id("status")
    server.send({"type": "queued", "position": 3})
    expect(status).to_contain_text("Queued (position 3)")
    server.send({"type": "queued", "position": 1})
    expect(status).to_contain_text("Queued (position 1)")
    expect(page.get_by_test_id("stdin")).to_be_disabled()
    server.start()
    expect(status).to_contain_text("Running")
    expect(status).to_contain_text("Limits: 10 s · 128 MB · 1 MB output · 64 processes")
    expect(page.get_by_test_id("stdin")).to_be_enabled()
    expect(page.get_by_test_id("run")).to_be_disabled()
    server.out("1\n")
    server.exit(duration_ms=1234)
    expect(status).to_contain_text("Exited with code 0 · 1.23 s")
    expect(page.get_by_test_id("run")).to_be_enabled()
    expect(page.get_by_test_id("stop")).to_be_disabled()


@pytest.mark.parametrize(
    ("exit_kw", "words"),
    [
        ({"exit_code": 139, "signal": "SIGSEGV"}, "Exited with code 139 (SIGSEGV)"),
        ({"exit_code": 3}, "Exited with code 3"),
        ({"reason": "timeout", "exit_code": None}, "Timed out after 10 s"),
        ({"reason": "oom", "exit_code": None}, "Out of memory (128 MB limit)"),
        ({"reason": "output_limit", "exit_code": None, "truncated": True}, "Output limit reached"),
        ({"reason": "killed", "exit_code": None}, "Stopped"),
    ],
)
def test_outcomes_in_words(ui: OpenUI, exit_kw: Frame, words: str) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    server.exit(**exit_kw)
    expect(page.get_by_test_id("status")).to_contain_text(words)
    expect(page.get_by_test_id("console")).to_contain_text(words)


@pytest.mark.parametrize(
    ("code", "close_code", "words"),
    [
        ("busy", 1013, "The server is busy: slow down"),
        ("unavailable", 1011, "The sandbox is unavailable: slow down"),
        ("code_too_large", 1009, "The program is too large: slow down"),
        ("bad_message", 1008, "The server rejected the request: slow down"),
        ("internal", 1011, "Internal server error: slow down"),
    ],
)
def test_errors_are_plain_and_retry_runs_again(ui: OpenUI, code: str, close_code: int, words: str) -> None:
    page, server = ui("print(1)\n")
    start_run(page, server)
    server.send({"type": "error", "code": code, "message": "slow down"})
    server.ws.close(code=close_code)
    status = page.get_by_test_id("status")
    expect(status).to_contain_text(words)
    retry = status.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()
    retry.click()
    server.wait_until(lambda: len(server.sockets) == 2 and len(server.received[1]) == 1)
    assert server.received[1][0]["type"] == "run"
    expect(retry).to_be_hidden()


def test_a_connection_that_closes_without_exit_says_so(ui: OpenUI) -> None:
    page, server = ui("print(1)\n")
    start_run(page, server)
    server.start()
    server.out("partial")
    server.ws.close(code=1011)
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("Connection closed before the run finished (code 1011)")
    expect(status.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_test_id("stdin")).to_be_disabled()
    assert lines(page, "stdout") == ["partial"]


def test_frames_cut_anywhere_render_as_lines(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    for piece in ["one\ntw", "o\n", "", "three", "\r\n", "four\nfive\n\nsix"]:
        server.out(piece)
    expect(page.get_by_test_id("console").locator(".line")).to_have_count(7)
    assert lines(page) == ["one", "two", "three", "four", "five", "", "six"]


def test_carriage_return_redraws_the_line_across_frames(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    server.out("start\n")
    for i in range(0, 101, 10):
        server.out(f"\r{i:3d}% [{'#' * (i // 10)}{'.' * (10 - i // 10)}]")
    server.out("\r")  # a lone CR at the end of a frame ...
    server.out("\ndone\n")  # ... then a newline: the bar stays
    expect(page.get_by_test_id("console")).to_contain_text("done")
    assert lines(page) == ["start", "100% [##########]", "done"]


def test_prompt_shows_at_once_and_the_answer_is_echoed_and_sent(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    server.out("name? ")
    console = page.get_by_test_id("console")
    expect(console.locator(".line")).to_have_text(["name? "])
    stdin = page.get_by_test_id("stdin")
    stdin.fill("Ada <b>")
    stdin.press("Enter")
    server.wait_until(lambda: len(server.sent()) >= 2)
    assert server.sent()[1] == {"type": "stdin", "data": "Ada <b>\n"}
    expect(console.locator(".line")).to_have_text(["name? Ada <b>"])
    server.out("hello Ada\n")
    expect(console.locator(".line")).to_have_text(["name? Ada <b>", "hello Ada"])
    assert console.locator("b").count() == 0
    stdin.press("Control+d")
    server.wait_until(lambda: len(server.sent()) >= 3)
    assert server.sent()[2] == {"type": "stdin", "eof": True}
    expect(stdin).to_be_disabled()


def test_stop_sends_kill(ui: OpenUI) -> None:
    page, server = ui("while True: pass\n")
    start_run(page, server)
    server.start()
    stop = page.get_by_test_id("stop")
    expect(stop).to_be_enabled()
    stop.click()
    server.wait_until(lambda: len(server.sent()) >= 2)
    assert server.sent()[1] == {"type": "kill"}
    expect(page.get_by_test_id("status")).to_contain_text("Stopping")
    server.exit(reason="killed", exit_code=None)
    expect(page.get_by_test_id("status")).to_contain_text("Stopped")


def test_ansi_colours_are_kept_per_stream_and_html_is_escaped(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    server.out("\x1b[31mred ")  # stdout turns red and stays red ...
    server.out("<script>alert(1)</script>\n", "stderr")  # ... which stderr must not inherit
    server.out("still red\x1b[0m plain\n")
    server.out("\x1b[3")  # an escape cut across frames
    server.out("2mgreen\x1b[0m\n")
    console = page.get_by_test_id("console")
    expect(console.locator(".line")).to_have_count(4)
    assert lines(page) == ["red ", "<script>alert(1)</script>", "still red plain", "green"]
    assert console.locator("script").count() == 0
    assert console.locator(".line[data-stream=stdout] .ansi-red-fg").all_text_contents() == ["red ", "still red"]
    assert console.locator(".line[data-stream=stderr] span").count() == 0
    assert console.locator(".ansi-green-fg").all_text_contents() == ["green"]


def test_stderr_looks_different(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    server.out("out\n")
    server.out("err\n", "stderr")
    console = page.get_by_test_id("console")
    expect(console.locator(".line")).to_have_count(2)
    style = "el => { const s = getComputedStyle(el); return [s.color, s.backgroundColor, s.borderLeftColor]; }"
    out = console.locator('[data-stream="stdout"]').evaluate(style)
    err = console.locator('[data-stream="stderr"]').evaluate(style)
    assert out[0] != err[0]
    assert out[2] != err[2]  # a marker bar, not colour alone


def test_long_output_is_capped_with_a_notice(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    for block in range(6):
        server.out("".join(f"line {block * 2000 + i}\n" for i in range(2000)))
    server.exit()
    console = page.get_by_test_id("console")
    expect(console).to_contain_text("line 11999")
    expect(console.locator(".trim-notice")).to_contain_text("earlier output trimmed")
    assert console.locator(".line").count() <= 5001
    texts = lines(page, "stdout")
    assert texts[-1] == "line 11999"
    assert texts[0] != "line 0"


def test_auto_scroll_stops_when_scrolled_up_and_resumes_at_the_bottom(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    server.start()
    server.out("".join(f"row {i}\n" for i in range(200)))
    console = page.get_by_test_id("console")
    expect(console).to_contain_text("row 199")
    at_bottom = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 24"
    page.wait_for_function(f"() => ({at_bottom})(document.querySelector('[data-testid=console]'))")
    console.evaluate("el => { el.scrollTop = 0; }")
    jump = page.get_by_role("button", name="Latest output")
    expect(jump).to_be_visible()
    server.out("".join(f"more {i}\n" for i in range(50)))
    expect(console).to_contain_text("more 49")
    assert console.evaluate("el => el.scrollTop") == 0
    jump.click()
    expect(jump).to_be_hidden()
    server.out("last\n")
    expect(console).to_contain_text("last")
    page.wait_for_function(f"() => ({at_bottom})(document.querySelector('[data-testid=console]'))")


def test_examples_load_into_the_editor(ui: OpenUI) -> None:
    page, _ = ui()
    select = page.get_by_label("Examples")
    values = [v for v in select.locator("option").evaluate_all("os => os.map(o => o.value)") if v]
    for needed in [
        "hello",
        "input",
        "live",
        "progress",
        "traceback",
        "infinite",
        "memory",
        "readonly",
        "network",
        "passwd",
        "forkbomb",
    ]:
        assert needed in values
    select.select_option("hello")
    editor = page.get_by_test_id("editor")
    expect(editor.locator(".cm-content")).to_have_text("print(2 + 2)")
    select.select_option("network")
    expect(editor).to_contain_text("127.0.0.1")
    page.keyboard.press("ControlOrMeta+z")  # loading an example is undoable
    expect(editor.locator(".cm-content")).to_have_text("print(2 + 2)")


def test_ctrl_enter_runs_from_the_editor(ui: OpenUI) -> None:
    page, server = ui("print(1)\n")
    page.get_by_test_id("editor").locator(".cm-content").click()
    page.keyboard.press("ControlOrMeta+Enter")
    server.wait_until(lambda: len(server.sockets) == 1 and len(server.sent()) == 1)
    assert server.sent()[0]["code"] == "print(1)\n"  # no newline was inserted


def test_tab_indents_in_the_editor(ui: OpenUI) -> None:
    page, _ = ui("x = 1\n")
    content = page.get_by_test_id("editor").locator(".cm-content")
    content.click()
    page.keyboard.press("ControlOrMeta+Home")
    page.keyboard.press("Tab")
    expect(content.locator(".cm-line").first).to_have_text("    x = 1")
    expect(content).to_be_focused()


def test_damaged_share_link_is_reported(ui: OpenUI) -> None:
    page, _ = ui(query="", code=None)
    page.goto(ORIGIN + "/ui#code=%%%")
    expect(page.get_by_test_id("status")).to_contain_text("shared link is damaged")


def test_phone_width_stacks_console_below_editor(ui: OpenUI) -> None:
    page, _ = ui("print(1)\n", width=375, height=740)
    editor = page.get_by_test_id("editor").bounding_box()
    console = page.get_by_test_id("console").bounding_box()
    assert editor and console
    assert console["y"] >= editor["y"] + editor["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_every_control_has_a_label(ui: OpenUI) -> None:
    page, _ = ui()
    unnamed = page.evaluate(
        """() => Array.from(document.querySelectorAll('button, input, select, [contenteditable=true]'))
            .filter(el => !el.closest('[hidden]'))
            .filter(el => {
              const name = (el.labels && el.labels.length ? el.labels[0].textContent : '')
                || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.textContent;
              return !name || !name.trim();
            })
            .map(el => el.outerHTML.slice(0, 80))"""
    )
    assert unnamed == []
    console = page.get_by_test_id("console")
    expect(console).to_have_attribute("role", "log")
    expect(console).to_have_attribute("aria-live", "polite")
