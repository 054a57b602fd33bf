"""py-spy on the server while a workload runs: where the server's Python time goes.

Sampled with ``--gil``: only the thread holding the GIL is recorded, so the samples are the
server's Python CPU time (threads parked on a lock or a socket do not count), and samples /
(rate x seconds) is the share of one core the server's Python kept busy. Stacks are folded per
thread group (the event loop's ``MainThread``, the engine executor ``sce-engine``...), then
summarised by self time (the innermost frame) and by inclusive time (any frame on the stack,
leaving out the frames every stack of a thread shares: thread bootstraps, the event loop's run).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shutil
import signal
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

_LINE_NO = re.compile(r":\d+\)$")
_THREAD = re.compile(r"^thread \(\d+\): (.*?)(_\d+)?$")


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def _frame(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``: functions, not lines."""
    frame = _LINE_NO.sub(")", frame)
    name, _, where = frame.partition(" (")
    if where:
        parts = where.rstrip(")").split("/")
        keep = 2 if len(parts) > 1 and parts[-2] in ("app", "sandbox", "server", "core", "asyncio") else 1
        short = "/".join(parts[-keep:])
        return f"{name} ({short})"
    return frame


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    total = 0
    threads: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    loop_self: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        m = _THREAD.match(frames[0])
        thread = m.group(1) if m else "?"
        frames = [_frame(f) for f in frames[1:]] if m else [_frame(f) for f in frames]
        if not frames:
            continue
        total += count
        threads[thread] += count
        self_time[frames[-1]] += count
        if thread == "MainThread":
            loop_self[frames[-1]] += count
        for f in set(frames):
            if not _PLUMBING.match(f):
                inclusive[f] += count

    def shares(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [{"function": f, "samples": n, "share": n / total} for f, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "threads": shares(threads),
        "self": shares(self_time),
        "inclusive": shares(inclusive),
        "event_loop_self": shares(loop_self),
    }


_PLUMBING = re.compile(
    r"^(Thread\.|_worker |Runner\.|run \(asyncio/runners|<module> |main \(app|_run_code |_run_module_as_main |"
    r"run_server |serve_forever |BaseEventLoop\.run_|BaseEventLoop\._run_once |Handle\._run |serve \(asyncio/run|"
    r"_WorkItem\.run )"
)


async def profile(pid: int, workload: Awaitable[Any], raw_path: Path, rate: int = 200) -> dict[str, Any]:
    """Record the server while ``workload`` runs; return the summary (or why there is none)."""
    exe = py_spy()
    if exe is None:
        with contextlib.suppress(BaseException):
            await workload
        return {"error": "py-spy is not installed (pip install py-spy)"}
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--threads",
        "--gil",
        "--rate",
        str(rate),
        "-o",
        str(raw_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.sleep(0.5)  # let py-spy attach
        t0 = time.perf_counter()
        await workload
        seconds = time.perf_counter() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        out, _ = await proc.communicate()
    if not await asyncio.to_thread(raw_path.exists):
        return {"error": f"py-spy wrote nothing: {out.decode(errors='replace')[-500:]}"}
    result = summarise(await asyncio.to_thread(raw_path.read_text, errors="replace"))
    result["raw"] = str(raw_path)
    result["seconds"] = seconds
    result["busy_share_of_one_core"] = result["samples"] / (rate * (seconds + 0.5))
    return result
