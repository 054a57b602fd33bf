"""Either event loop an operator may choose (``SCE_EVENT_LOOP``) serves the same runs: input,
live output, an exit code and a timeout kill, which lean on the loop's sockets and timers."""

from __future__ import annotations

import pytest

from tests.conftest import ServerFactory
from tests.wsclient import run_ws

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_each_event_loop_serves_input_output_exit_and_timeout(server_factory: ServerFactory, loop: str) -> None:
    server = server_factory(SCE_EVENT_LOOP=loop, SCE_POOL_SIZE="1")
    assert f"event loop: {loop}" in server.log()

    echoed = await run_ws(server.ws_url, "import sys\nprint(input()[::-1])\nsys.exit(3)", stdin="abc\n")
    assert echoed.text() == "cba\n"
    assert echoed.exit["reason"] == "exit" and echoed.exit["exit_code"] == 3

    stuck = await run_ws(server.ws_url, "print('up', flush=True)\nwhile True: pass", run_timeout=0.5)
    assert stuck.text() == "up\n"
    assert stuck.exit["reason"] == "timeout"
    assert 500 <= stuck.exit["duration_ms"] < 2000
