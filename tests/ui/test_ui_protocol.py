"""The editor page against a scripted stand-in for the server: no server, no Docker.

Playwright answers the page's requests from static/ and plays the server's side of the WebSocket
(`page.route_web_socket`), so each test chooses exactly how frames are cut, which errors come
and when the connection closes: the cases a real sandbox cannot produce on demand.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import re
import struct
import zlib
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


def _serve_static(route: Route, runtimes: list[Frame] | None = None) -> None:
    path = route.request.url[len(ORIGIN) :].split("?")[0].split("#")[0]
    if path == "/runtimes" and runtimes is not None:
        route.fulfill(status=200, body=json.dumps(runtimes), headers={"Content-Type": "application/json"})
        return
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
    """open(code=None, query="", runtimes=None, fragment="") -> (page, server)

    `runtimes`: what GET /runtimes answers (None: 404, as a version-1 server).
    """

    def open_page(
        code: str | None = None,
        query: str = "",
        runtimes: list[Frame] | None = None,
        fragment: str = "",
        **kw: object,
    ) -> tuple[Page, FakeServer]:
        page = new_page(**kw)
        page.context.route(re.compile(r"^https?://.*"), lambda route: _serve_static(route, runtimes))
        server = FakeServer(page)
        page.goto(ORIGIN + "/ui" + query + (code_fragment(code) if code is not None else fragment))
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
    assert frame == {"type": "run", "code": "print('hi')\n", "timeout": 3, "stats": True, "filename": "main.py"}
    assert server.ws.url == ORIGIN.replace("http", "ws") + "/run"


def test_no_time_limit_means_the_servers_default(ui: OpenUI) -> None:
    page, server = ui("print(1)\n")
    assert start_run(page, server) == {"type": "run", "code": "print(1)\n", "stats": True, "filename": "main.py"}


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


# --- protocol v2: runtimes, rich output, resources, resume and watch ---------------------------------

RUNTIMES = [
    {"name": "python", "default": True, "python": "3.11.2", "description": "Standard library", "packages": {}},
    {
        "name": "scientific",
        "default": False,
        "python": "3.11.2",
        "description": "numpy, pandas, matplotlib",
        "packages": {"numpy": "1.24.2", "matplotlib": "3.6.3"},
    },
]


def png(width: int, height: int) -> bytes:
    """A valid PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xd0\x30\x30" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def started_v2(server: FakeServer, run_id: str = "r1") -> None:
    server.send(
        {
            "type": "started",
            "id": run_id,
            "limits": LIMITS,
            "token": "drive-" + run_id,
            "watch_token": "watch-" + run_id,
        }
    )


def test_runtime_picker_lists_the_servers_runtimes_and_sends_the_choice(ui: OpenUI) -> None:
    page, server = ui("print(1)\n", runtimes=RUNTIMES)
    picker = page.get_by_test_id("runtime")
    assert picker.locator("option").evaluate_all("os => os.map(o => o.value)") == ["python", "scientific"]
    expect(picker).to_have_value("python")
    first = start_run(page, server)
    assert first == {"type": "run", "code": "print(1)\n", "stats": True, "filename": "main.py"}  # default: not named
    server.start()
    server.exit()
    picker.select_option("scientific")
    expect(picker.locator("option:checked")).to_have_text("scientific")  # short enough for a phone
    assert "Python 3.11.2" in (picker.get_attribute("title") or "")
    assert "numpy 1.24.2" in (picker.get_attribute("title") or "")
    frame = start_run(page, server, count=2)
    assert frame["runtime"] == "scientific"


def test_without_get_runtimes_only_python_is_offered(ui: OpenUI) -> None:
    page, server = ui("print(1)\n")  # GET /runtimes answers 404: a version-1 server
    picker = page.get_by_test_id("runtime")
    assert picker.locator("option").evaluate_all("os => os.map(o => o.value)") == ["python"]
    assert "runtime" not in start_run(page, server)


def test_share_link_keeps_the_runtime_and_small_files(ui: OpenUI) -> None:
    page, _ = ui("print(open('a.txt').read())\n", runtimes=RUNTIMES)
    page.get_by_test_id("runtime").select_option("scientific")
    page.get_by_test_id("file-input").set_input_files(
        [{"name": "a.txt", "mimeType": "text/plain", "buffer": b"shared text\n"}]
    )
    expect(page.get_by_test_id("file-chips").locator("li")).to_have_count(1)
    page.get_by_test_id("share").click()
    url = link_value(page)
    assert re.fullmatch(r"http://[^#?]+/ui#z=[A-Za-z0-9_-]+", url)  # one compressed part: code, runtime, files
    other, server = ui(runtimes=RUNTIMES, fragment=url[url.index("#") :])
    expect(other.get_by_test_id("runtime")).to_have_value("scientific")
    expect(other.get_by_test_id("file-chips")).to_contain_text("a.txt")
    frame = start_run(other, server)
    assert frame["runtime"] == "scientific"
    assert frame["files"] == [{"path": "a.txt", "content": b64(b"shared text\n"), "encoding": "base64"}]


def test_images_show_inline_in_order_and_open_full_size(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    started_v2(server)
    server.out("before\n")
    server.send({"type": "image", "mime": "image/png", "data": b64(png(40, 20)), "width": 40, "height": 20, "seq": 2})
    server.out("between\n")
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="30" height="30">'
        b'<script>parent.pwned=1</script><circle cx="15" cy="15" r="10" fill="teal"/></svg>'
    )
    server.send({"type": "image", "mime": "image/svg+xml", "data": b64(svg), "width": 30, "height": 30})
    server.send({"type": "image", "mime": "image/png", "width": 9000, "height": 9000, "omitted": "too_large"})
    server.out("after\n")
    console = page.get_by_test_id("console")
    expect(console.locator(".line")).to_have_count(6)
    kinds = console.locator(".line").evaluate_all("ls => ls.map(l => l.dataset.stream + ':' + l.textContent)")
    assert kinds == [
        "stdout:before",
        "image:",
        "stdout:between",
        "image:",
        "note:[image not shown: larger than the server sends]",
        "stdout:after",
    ]
    images = console.locator("img")
    expect(images).to_have_count(2)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.console img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert images.first.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [40, 20]
    assert str(images.nth(1).get_attribute("src")).startswith("blob:")
    assert console.locator("svg, script").count() == 0  # the SVG is an <img>, never markup
    assert page.evaluate("window.pwned") is None
    # Scaled to the console's width: a wide image never overflows it.
    server.send({"type": "image", "mime": "image/png", "data": b64(png(3000, 100)), "width": 3000, "height": 100})
    expect(images).to_have_count(3)
    width = console.evaluate("c => c.clientWidth")
    assert images.nth(2).evaluate("i => i.getBoundingClientRect().width") <= width
    images.first.click()
    viewer = page.get_by_test_id("viewer")
    expect(viewer).to_be_visible()
    assert viewer.locator("img").evaluate("i => i.src") == images.first.evaluate("i => i.src")
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


def test_file_frames_become_download_chips(ui: OpenUI, tmp_path: Path) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    started_v2(server)
    server.out("writing\n")
    report = "total: 42\nünïcødé ✓\n".encode()
    server.send(
        {"type": "file", "path": "out/report.txt", "size": len(report), "mime": "text/plain", "data": b64(report)}
    )
    server.send(
        {"type": "file", "path": "page.html", "size": 20, "mime": "text/html", "data": b64(b"<script>x</script>")}
    )
    server.send(
        {
            "type": "file",
            "path": "huge.bin",
            "size": 5_000_000,
            "mime": "application/octet-stream",
            "omitted": "too_large",
        }
    )
    server.exit(files_truncated=True)
    console = page.get_by_test_id("console")
    chips = console.locator(".file-chip")
    expect(chips).to_have_count(3)
    expect(chips.nth(0)).to_contain_text("out/report.txt")
    expect(chips.nth(2)).to_contain_text("too large")
    assert chips.nth(2).evaluate("c => c.tagName") == "SPAN"  # nothing to download
    expect(console.locator('.line[data-stream="note"]')).to_contain_text("more files were written")
    with page.expect_download() as info:
        chips.nth(0).click()
    download = info.value
    assert download.suggested_filename == "report.txt"
    target = tmp_path / "report.txt"
    download.save_as(target)
    assert target.read_bytes() == report
    # A program's HTML is downloaded as bytes, never opened as a page of this origin.
    assert chips.nth(1).evaluate("a => a.hasAttribute('download')")
    with page.expect_download() as info2:
        chips.nth(1).click()
    assert info2.value.suggested_filename == "page.html"


def test_added_files_are_sent_with_the_run_and_can_be_removed(ui: OpenUI) -> None:
    page, server = ui("print(open('data.csv').read())\n")
    page.get_by_test_id("file-input").set_input_files(
        [
            {"name": "data.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"},
            {"name": "extra.bin", "mimeType": "application/octet-stream", "buffer": bytes(range(256))},
        ]
    )
    chips = page.get_by_test_id("file-chips").locator("li")
    expect(chips).to_have_count(2)
    expect(chips.nth(0)).to_contain_text("data.csv")
    expect(chips.nth(0)).to_contain_text("8 B")
    page.get_by_role("button", name="Remove extra.bin").click()
    expect(chips).to_have_count(1)
    frame = start_run(page, server)
    assert frame["files"] == [{"path": "data.csv", "content": b64(b"a,b\n1,2\n"), "encoding": "base64"}]


def test_a_file_over_the_limit_is_refused_with_a_clear_message(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    page.get_by_test_id("file-input").set_input_files(
        [{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": bytes(1024 * 1024 + 1)}]
    )
    note = page.get_by_test_id("files-note")
    expect(note).to_contain_text("“big.bin” is 1.0 MB: a run takes files of at most 700 KB")
    expect(page.get_by_test_id("file-chips").locator("li")).to_have_count(0)
    assert "files" not in start_run(page, server)


def test_a_file_dropped_on_the_editor_is_added_not_pasted(ui: OpenUI) -> None:
    page, server = ui("print(1)\n")
    page.get_by_test_id("editor").locator(".cm-content").evaluate(
        """el => {
            const dt = new DataTransfer();
            dt.items.add(new File(['x,y\\n3,4\\n'], 'dropped.csv', { type: 'text/csv' }));
            for (const type of ['dragenter', 'dragover', 'drop']) {
              el.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
            }
        }"""
    )
    expect(page.get_by_test_id("file-chips").locator("li")).to_contain_text(["dropped.csv"])
    expect(page.get_by_test_id("editor").locator(".cm-content")).to_have_text("print(1)")
    frame = start_run(page, server)
    assert frame["files"][0]["path"] == "dropped.csv"


def test_stats_move_the_meter_and_the_status_shows_the_figures(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    frame = start_run(page, server)
    assert frame["stats"] is True
    started_v2(server)
    meter = page.get_by_test_id("meter")
    expect(meter).to_be_hidden()
    mib = 2**20
    server.send(
        {"type": "stats", "memory_bytes": 32 * mib, "memory_limit_bytes": 128 * mib, "cpu_ms": 120, "pids": 2, "seq": 1}
    )
    expect(meter).to_be_visible()
    expect(meter).to_contain_text("32 MB / 128 MB · 0.12 s CPU")
    expect(meter).to_have_attribute("data-level", "ok")
    fill = meter.locator(".meter-fill")
    expect(fill).to_have_attribute("style", re.compile(r"width: 25%"))
    server.send(
        {
            "type": "stats",
            "memory_bytes": 110 * mib,
            "memory_limit_bytes": 128 * mib,
            "cpu_ms": 900,
            "pids": 2,
            "seq": 2,
        }
    )
    expect(meter).to_contain_text("110 MB / 128 MB · 0.90 s CPU")
    expect(meter).to_have_attribute("data-level", "warn")
    expect(fill).to_have_attribute("style", re.compile(r"width: 86%"))
    server.exit(duration_ms=1500, cpu_ms=840, memory_peak_bytes=61 * mib)
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("Exited with code 0 · 1.50 s · 0.84 s CPU · 61 MB peak")
    expect(meter).to_be_hidden()


def test_exit_without_figures_shows_none(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    started_v2(server)
    server.exit(duration_ms=85, cpu_ms=None, memory_peak_bytes=None)
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("Exited with code 0 · 85 ms")
    assert "CPU" not in status.inner_text()


def test_a_dropped_connection_is_resumed_without_loss_or_repeats(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    started_v2(server, "run-7")
    for n in range(1, 4):
        server.send({"type": "stdout", "data": f"line {n}\n", "seq": n})
    console = page.get_by_test_id("console")
    expect(console).to_contain_text("line 3")
    server.ws.close(code=1006)  # no close frame: a network drop
    expect(page.get_by_test_id("status")).to_contain_text("reconnecting")
    server.wait_until(lambda: len(server.sockets) == 2 and len(server.received[1]) >= 1)
    assert server.received[1][0] == {"type": "resume", "id": "run-7", "token": "drive-run-7", "after": 3}
    # The server replays from what it kept; a frame the page already has must not show twice.
    for n in range(2, 7):
        server.send({"type": "stdout", "data": f"line {n}\n", "seq": n})
    expect(page.get_by_test_id("status")).to_contain_text("Running")
    server.ws.close(code=1006)  # and again
    server.wait_until(lambda: len(server.sockets) == 3 and len(server.received[2]) >= 1)
    assert server.received[2][0]["after"] == 6
    server.send({"type": "stdout", "data": "line 7\n", "seq": 7})
    stdin = page.get_by_test_id("stdin")
    expect(stdin).to_be_enabled()
    stdin.fill("typed after the drop")
    stdin.press("Enter")
    server.wait_until(lambda: len(server.received[2]) >= 2)
    assert server.received[2][1] == {"type": "stdin", "data": "typed after the drop\n"}
    server.exit()
    expect(page.get_by_test_id("status")).to_contain_text("Exited with code 0")
    assert lines(page, "stdout") == [f"line {n}" for n in range(1, 8)]


def test_a_resume_the_server_no_longer_knows_says_so(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    started_v2(server)
    server.send({"type": "stdout", "data": "one\n", "seq": 1})
    server.ws.close(code=1006)
    server.wait_until(lambda: len(server.sockets) == 2 and len(server.received[1]) >= 1)
    assert server.received[1][0]["type"] == "resume"
    server.send({"type": "error", "code": "not_found", "message": "no such run"})
    server.ws.close(code=1008)
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("could not be resumed")
    expect(status.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.get_by_test_id("run")).to_be_enabled()


def test_a_clean_close_or_a_stop_is_not_resumed(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    started_v2(server)
    page.get_by_test_id("stop").click()
    server.wait_until(lambda: len(server.sent()) >= 2)
    server.ws.close(code=1006)  # dropped after the kill: the user wanted it over
    expect(page.get_by_test_id("status")).to_contain_text("Stopped")
    page.wait_for_timeout(600)
    assert len(server.sockets) == 1


def test_watch_link_opens_a_read_only_live_view(ui: OpenUI) -> None:
    page, server = ui("for i in range(3): print(i)\n")
    start_run(page, server)
    watch_button = page.get_by_test_id("watch-link")
    expect(watch_button).to_be_hidden()
    started_v2(server, "run-9")
    server.send({"type": "stdout", "data": "0\n", "seq": 1})
    expect(watch_button).to_be_visible()
    watch_button.click()
    url = link_value(page)
    assert "#watch=run-9%3Awatch-run-9" in url or "#watch=run-9:watch-run-9" in url
    assert "drive-run-9" not in url  # never the driver's token
    expect(page.get_by_test_id("share-open")).to_have_attribute("href", url)
    expect(page.get_by_test_id("share-open")).to_have_attribute("target", "_blank")
    viewer, vserver = ui(fragment=url[url.index("#") :])
    vserver.wait_until(lambda: len(vserver.sockets) == 1 and len(vserver.sent()) >= 1)
    assert vserver.sent()[0] == {"type": "watch", "id": "run-9", "token": "watch-run-9"}
    vserver.send({"type": "started", "id": "run-9", "limits": LIMITS, "watch_token": "watch-run-9"})
    vserver.send({"type": "stdout", "data": "0\n1\n", "seq": 1})
    vserver.send({"type": "stdout", "data": "2\n", "seq": 2})
    expect(viewer.get_by_test_id("status")).to_contain_text("Watching")
    expect(viewer.get_by_test_id("watch-badge")).to_be_visible()
    assert lines(viewer, "stdout") == ["0", "1", "2"]
    expect(viewer.get_by_test_id("editor")).to_contain_text("for i in range(3)")  # the code rides along
    expect(viewer.get_by_test_id("editor").locator(".cm-content")).to_have_attribute("contenteditable", "false")
    expect(viewer.get_by_test_id("run")).to_be_hidden()
    expect(viewer.get_by_test_id("stop")).to_be_hidden()
    expect(viewer.get_by_test_id("stdin")).to_be_hidden()
    vserver.exit()
    expect(viewer.get_by_test_id("status")).to_contain_text("Exited with code 0")
    assert len(vserver.sent()) == 1  # a watcher never sends stdin or kill
    viewer.get_by_test_id("edit-copy").click()  # the code becomes the viewer's own
    expect(viewer.locator("body")).to_have_attribute("data-ready", "true")
    expect(viewer.get_by_test_id("run")).to_be_visible()
    expect(viewer.get_by_test_id("watch-badge")).to_be_hidden()
    expect(viewer.get_by_test_id("editor")).to_contain_text("for i in range(3)")
    expect(viewer).to_have_url(re.compile(r"^[^#]*$"))  # the copy's link is opened once, then gone


# --- #27: the editor as a newcomer meets it ------------------------------------------------------------

SHOTS = Path(os.environ.get("UI_SCREENSHOTS_DIR", "/tmp/sce-ui-shots"))  # never the tracked docs/images


def link_value(page: Page) -> str:
    """The link in the share panel, once it is made (compressing it takes a moment)."""
    expect(page.get_by_test_id("share-link")).to_have_value(re.compile(r"^https?://.+#"))
    return page.get_by_test_id("share-link").input_value()


def editor_text(page: Page) -> str:
    return "\n".join(page.get_by_test_id("editor").locator(".cm-line").all_text_contents())


def type_code(page: Page, code: str) -> None:
    content = page.get_by_test_id("editor").locator(".cm-content")
    content.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    page.keyboard.type(code)
    expect(content).to_have_text(code)


def reload(page: Page) -> None:
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")


def test_an_example_is_opened_once_and_a_reload_keeps_the_edits(ui: OpenUI) -> None:
    page, _ = ui(query="?example=colors&timeout=5")
    assert "ansi" not in editor_text(page) and "names = [" in editor_text(page)
    assert page.url == ORIGIN + "/ui?timeout=5"  # the example is gone from the address
    type_code(page, "print('my edit')")
    reload(page)
    assert editor_text(page) == "print('my edit')"
    page.goto(ORIGIN + "/ui")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert editor_text(page) == "print('my edit')"


def test_a_shared_link_wins_over_the_example_once_and_the_edits_survive(ui: OpenUI) -> None:
    page, _ = ui(query="?example=memory", fragment="#code=cHJpbnQoJ3NoYXJlZCcpCg")  # a link made before compression
    assert editor_text(page) == "print('shared')\n"
    assert page.url == ORIGIN + "/ui"
    type_code(page, "print('shared, then edited')")
    reload(page)
    assert editor_text(page) == "print('shared, then edited')"


def test_picking_an_example_sets_its_runtime_and_files_and_clears_the_others(ui: OpenUI) -> None:
    page, server = ui(runtimes=RUNTIMES)
    examples, picker = page.get_by_label("Examples"), page.get_by_test_id("runtime")
    examples.select_option("csv")
    expect(picker).to_have_value("scientific")
    expect(page.get_by_test_id("file-chips").locator("li")).to_have_count(1)
    examples.select_option("memory")
    expect(picker).to_have_value("python")
    expect(page.get_by_test_id("file-chips").locator("li")).to_have_count(0)
    frame = start_run(page, server)
    assert "runtime" not in frame and "files" not in frame
    reload(page)  # the runtime the example chose is remembered with its code
    expect(picker).to_have_value("python")


def test_a_share_link_is_short_and_carries_only_code_runtime_and_files(ui: OpenUI) -> None:
    code = "import time\n" + "".join(f"print('step {i}', flush=True)\ntime.sleep(0.1)\n" for i in range(30))
    page, _ = ui(code, "?timeout=5&token=s3cret")
    page.get_by_test_id("share").click()
    url = link_value(page)
    assert re.fullmatch(ORIGIN + r"/ui#z=[A-Za-z0-9_-]+", url)
    assert len(url) * 3 < len(code_fragment(code))  # compressed
    other, server = ui(fragment=url[url.index("#") :])
    assert start_run(other, server)["code"] == code  # (the editor draws only the lines in view)


def test_typed_input_shows_once_with_old_and_new_servers(ui: OpenUI) -> None:
    page, server = ui("pass\n")
    start_run(page, server)
    started_v2(server)
    server.send({"type": "stdout", "data": "more? ", "seq": 1})
    stdin = page.get_by_test_id("stdin")
    stdin.fill("yes")
    stdin.press("Enter")
    server.wait_until(lambda: len(server.sent()) >= 2)
    server.send({"type": "input", "data": "yes\n", "eof": False, "seq": 2})  # a v3 server's echo
    server.send({"type": "stdout", "data": "got yes\n", "seq": 3})
    expect(page.get_by_test_id("console").locator(".line")).to_have_text(["more? yes", "got yes"])
    # input the page did not type (another driver's, before a resume) is shown from the frame
    server.send({"type": "input", "data": "no\n", "eof": True, "seq": 4})
    expect(page.get_by_test_id("console").locator(".line")).to_have_text(["more? yes", "got yes", "no"])


def test_a_watcher_sees_what_the_driver_typed_where_it_was_typed(ui: OpenUI) -> None:
    viewer, server = ui(fragment="#watch=r1%3Aw1")
    server.wait_until(lambda: len(server.sockets) == 1 and len(server.sent()) >= 1)
    server.send({"type": "started", "id": "r1", "limits": LIMITS, "watch_token": "w1"})
    server.send({"type": "stdout", "data": "more? ", "seq": 1})
    server.send({"type": "input", "data": "yes\n", "eof": False, "seq": 2})
    server.send({"type": "stdout", "data": "got yes\n", "seq": 3})
    console = viewer.get_by_test_id("console")
    expect(console.locator(".line")).to_have_text(["more? yes", "got yes"])
    expect(console.locator(".echo")).to_have_text(["yes"])


def test_the_file_name_is_sent_checked_and_remembered(ui: OpenUI) -> None:
    page, server = ui("1/0\n")
    name = page.get_by_test_id("filename")
    expect(name).to_have_value("main.py")
    name.fill("sub/x.py")
    page.get_by_test_id("run").click()
    expect(page.get_by_test_id("status")).to_contain_text("without folders")
    assert server.sockets == []  # nothing was sent
    name.fill("hottest.py")
    assert start_run(page, server)["filename"] == "hottest.py"
    reload(page)
    expect(page.get_by_test_id("filename")).to_have_value("hottest.py")


def test_word_wrap_and_theme_are_toggles_that_are_remembered(ui: OpenUI) -> None:
    page, _ = ui("print('" + "long " * 80 + "')\n", color_scheme="light")
    wrap, content = page.get_by_test_id("wrap"), page.get_by_test_id("editor").locator(".cm-content")
    expect(wrap).to_have_attribute("aria-pressed", "false")
    wide = page.get_by_test_id("editor").locator(".cm-scroller").evaluate("el => el.scrollWidth > el.clientWidth")
    assert wide
    wrap.click()
    expect(wrap).to_have_attribute("aria-pressed", "true")
    expect(content).to_have_class(re.compile("cm-lineWrapping"))
    page.get_by_test_id("theme").select_option("dark")
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(13, 16, 22)"
    reload(page)
    expect(page.get_by_test_id("wrap")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("theme")).to_have_value("dark")
    assert page.evaluate(background) == "rgb(13, 16, 22)"
    page.get_by_test_id("theme").select_option("light")  # over a dark system, light stays light
    dark_system, _ = ui("print(1)\n", color_scheme="dark")
    assert dark_system.evaluate(background) == "rgb(13, 16, 22)"  # "system" follows the system
    dark_system.get_by_test_id("theme").select_option("light")
    assert dark_system.evaluate(background) == "rgb(243, 245, 248)"


def _box(page: Page, selector: str) -> dict[str, float]:
    return page.evaluate(
        f"() => JSON.parse(JSON.stringify(document.querySelector('{selector}').getBoundingClientRect()))"
    )


def _cut(page: Page) -> list[str]:
    """Visible controls whose text does not fit them (an ellipsis or a clipped label)."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('button, select, .field-label, .watch-badge'))
            .filter(el => el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
            .map(el => el.id || el.textContent.trim())"""
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_phone_shows_everything_and_scrolls_the_input_line_into_view(ui: OpenUI, scheme: str) -> None:
    page, server = ui("pass\n", runtimes=RUNTIMES, width=390, height=844, color_scheme=scheme)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_test_id("runtime").locator("option:checked")).to_have_text("python")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"phone-top-{scheme}.png"))
    start_run(page, server)
    started_v2(server)
    server.send({"type": "stdout", "data": "".join(f"line {i}\n" for i in range(40)), "seq": 1})
    expect(page.get_by_test_id("watch-link")).to_be_visible()
    assert _cut(page) == []
    page.evaluate("window.scrollTo(0, 0)")  # the user went back to the code
    server.send({"type": "stdout", "data": "name? ", "seq": 2})
    expect(page.locator("#stdin-form.prompting")).to_be_visible()
    page.wait_for_function(
        """() => {
          const row = document.getElementById('stdin-form').getBoundingClientRect();
          const bar = document.getElementById('statusbar').getBoundingClientRect();
          return row.top >= 0 && row.bottom <= bar.top + 0.5;
        }"""
    )
    console, bar = _box(page, "#console"), _box(page, "#statusbar")
    assert console["bottom"] <= bar["top"] + 0.5  # the status bar covers none of the console
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"phone-prompt-{scheme}.png"))
    page.get_by_test_id("stdin").fill("Ada")
    page.get_by_test_id("stdin").press("Enter")
    expect(page.get_by_test_id("console").locator(".line").last).to_have_text("name? Ada")


def test_desktop_dark_theme_screenshot(ui: OpenUI) -> None:
    page, server = ui("name = input('name? ')\nprint('hello', name)\n", runtimes=RUNTIMES, color_scheme="light")
    page.get_by_test_id("theme").select_option("dark")
    start_run(page, server)
    started_v2(server)
    server.send({"type": "stdout", "data": "\x1b[36mname?\x1b[0m ", "seq": 1})
    server.send({"type": "input", "data": "Ada\n", "eof": False, "seq": 2})
    server.send({"type": "stdout", "data": "hello Ada\n", "seq": 3})
    server.send({"type": "stderr", "data": "a warning\n", "seq": 4})
    expect(page.get_by_test_id("console")).to_contain_text("a warning")
    assert _cut(page) == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "desktop-dark.png"))


def test_a_phone_watch_view_and_share_panel_fit(ui: OpenUI) -> None:
    viewer, server = ui(fragment="#watch=r1%3Aw1", width=390, height=844)
    server.wait_until(lambda: len(server.sockets) == 1 and len(server.sent()) >= 1)
    server.send({"type": "started", "id": "r1", "limits": LIMITS, "watch_token": "w1"})
    server.send({"type": "stdout", "data": "more? ", "seq": 1})
    server.send({"type": "input", "data": "yes\n", "eof": False, "seq": 2})
    expect(viewer.get_by_test_id("watch-badge")).to_be_visible()
    expect(viewer.get_by_test_id("console").locator(".line")).to_have_text(["more? yes"])
    assert _cut(viewer) == []
    assert viewer.evaluate("document.documentElement.scrollWidth") <= 390
    SHOTS.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(path=str(SHOTS / "phone-watch.png"))
    page, _ = ui("print(1)\n", width=390, height=844)
    page.get_by_test_id("share").click()
    expect(page.get_by_test_id("share-link")).to_have_value(re.compile("#z="))
    assert _cut(page) == [] and page.evaluate("document.documentElement.scrollWidth") <= 390
    assert _box(page, "#share-link")["width"] >= 300  # the link itself can be read
    page.screenshot(path=str(SHOTS / "phone-share.png"))
