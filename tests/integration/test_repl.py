"""``sce repl`` in a real pseudo-terminal against the real server: what a person at the prompt
notices (continuation lines, values printed, names kept, Ctrl+C interrupting, Ctrl+D leaving)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pexpect
import pytest

from tests.conftest import ROOT, ServerProcess, module_server, server_containers

pytestmark = [pytest.mark.docker, pytest.mark.timeout(120)]

served = module_server({"SCE_POOL_SIZE": "0", "SCE_TIMEOUT_MAX_S": "60"})


def repl(served: ServerProcess, tmp_path: Path, *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "app", "repl", "--url", served.url, *args],
        cwd=str(ROOT),
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "TERM": "dumb"},
        timeout=30,
        encoding="utf-8",
        codec_errors="replace",
    )


def test_names_live_on_and_continuation_lines_work_as_locally(served: ServerProcess, tmp_path: Path) -> None:
    child = repl(served, tmp_path)
    child.expect(r"sce: session \S+ \(python\)")
    child.expect_exact(">>> ")
    child.sendline("def square(n):")
    child.expect_exact("... ")
    child.sendline("    return n * n")
    child.expect_exact("... ")
    child.sendline("")
    child.expect_exact(">>> ")
    child.sendline("x = square(12)")
    child.expect_exact(">>> ")
    child.sendline("x + 1")
    child.expect(r"\r\n145\r\n>>> ")
    child.sendline("print('hi'); None")
    child.expect(r"\r\nhi\r\n>>> ")
    child.sendline("1 / 0")
    child.expect("ZeroDivisionError: division by zero")
    child.expect_exact(">>> ")
    child.sendline("x")  # an exception does not end the session
    child.expect(r"\r\n144\r\n>>> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_interrupts_the_code_not_the_prompt_and_ctrl_d_ends_the_session(
    served: ServerProcess, tmp_path: Path
) -> None:
    child = repl(served, tmp_path, "--runtime", "python")
    child.expect_exact(">>> ")
    child.sendline("n = 7")
    child.expect_exact(">>> ")
    held = len(server_containers(served.proc.pid))  # the session's sandbox among them (no pool here)
    assert held >= 1
    child.sendline("import time")
    child.expect_exact(">>> ")
    child.sendline("while True: print('tick', flush=True); time.sleep(0.2)")
    child.expect_exact("... ")
    child.sendline("")
    child.expect("tick")
    child.sendintr()  # Ctrl+C while it runs: a KeyboardInterrupt in the remote code
    child.expect("KeyboardInterrupt")
    child.expect_exact(">>> ")
    child.sendline("n * 6")
    child.expect(r"\r\n42\r\n>>> ")  # the session lived on, with its names
    child.sendintr()  # Ctrl+C at the prompt: a new prompt, not leaving
    child.expect("KeyboardInterrupt")
    child.expect_exact(">>> ")
    child.sendline("n")
    child.expect(r"\r\n7\r\n>>> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    deadline = time.monotonic() + 15
    while len(server_containers(served.proc.pid)) >= held:  # nothing announces a container's removal
        assert time.monotonic() < deadline, "the session's sandbox was not removed"
        time.sleep(0.2)


def test_history_is_kept_between_prompts(served: ServerProcess, tmp_path: Path) -> None:
    child = repl(served, tmp_path)
    child.expect_exact(">>> ")
    child.sendline("'remembered' * 2")
    child.expect("rememberedremembered")
    child.expect_exact(">>> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert "'remembered' * 2" in (tmp_path / ".sce_repl_history").read_text()
