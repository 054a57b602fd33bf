"""Resource accounting on the real engine: what a run used, reported on ``exit``, in ``stats`` frames
and in POST /run's answer; and no parent cgroup left behind, however a sandbox ends.

Programs that must burn CPU measure their own CPU time (``time.process_time``), so the figures
compare with what the program got, whatever else loads the machine.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from app.core.events import Exit, Stats
from app.protocol import RunRequest
from app.sandbox.docker.cgroups import CgroupTree, parent_name
from app.sandbox.docker.engine import DockerEngine, _process_start_time
from app.sandbox.service import SandboxService
from app.settings import Settings
from tests.conftest import ServerProcess

pytestmark = [pytest.mark.docker, pytest.mark.timeout(90)]

MIB = 1 << 20
LIMIT = Settings().memory_mb * MIB
BUSY_1S = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0:\n    pass\nprint('done')"
BUSY_2S = "import time\nt = time.process_time()\nwhile time.process_time() - t < 2.0:\n    pass\nprint('done')"
TOUCH_60MB = "b = bytearray(60 * 1024 * 1024)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\nprint(len(b))"


def my_parents() -> list[str]:
    """Parent cgroups this test process's engines made and have not removed."""
    return glob.glob(f"/sys/fs/cgroup/*/sce-{os.getpid()}-*") + glob.glob(f"/sys/fs/cgroup/sce-{os.getpid()}-*")


@pytest.fixture
async def service() -> AsyncIterator[SandboxService]:
    settings = Settings(pool_size=1, scientific_pool_size=0)
    svc = SandboxService(settings, DockerEngine(settings))
    await svc.start()
    await svc.ready.wait()
    await svc.pool.wait_until(lambda p: p.ready >= 1)  # warm: the interpreter's start is not the program's
    yield svc
    await svc.stop()


def engine_of(svc: SandboxService) -> DockerEngine:
    engine = svc.engine
    assert isinstance(engine, DockerEngine)
    return engine


async def run(svc: SandboxService, code: str, **kw: Any) -> tuple[list[Any], Exit]:
    async with asyncio.timeout(60), svc.run(RunRequest(code, **kw)) as r:
        events = [e async for e in r.events()]
    assert isinstance(events[-1], Exit)
    return events, events[-1]


# -- exit figures on the engine ------------------------------------------------------------------
async def test_figures_come_from_the_sandboxs_cgroup_here(service: SandboxService) -> None:
    await run(service, "pass")
    assert engine_of(service).usage_source in ("cgroup v1", "cgroup v2")


def busy_second_floor(settings: Settings) -> int:
    """Under gVisor the program's own CPU clock runs on while the host preempts its threads: on a
    loaded host (load 6 to 10 on 2 cores) a "busy second" got 660 to 1000 ms of real CPU, as its
    cgroup counts it. The floor is lower there; the ceiling is the same."""
    return 500 if settings.runtime == "runsc" else 850


async def test_a_busy_second_reports_about_a_second_of_cpu(service: SandboxService) -> None:
    _, exit_ = await run(service, BUSY_1S)
    assert exit_.reason == "exit" and exit_.cpu_ms is not None
    assert busy_second_floor(service.settings) <= exit_.cpu_ms <= 1150, exit_


async def test_a_sleeping_program_reports_almost_no_cpu(service: SandboxService) -> None:
    _, exit_ = await run(service, "import time\ntime.sleep(1)")
    # under gVisor the sandbox's own kernel (the sentry) spends CPU in the same cgroup while it idles
    bound = 250 if service.settings.runtime == "runsc" else 100
    assert exit_.cpu_ms is not None and exit_.cpu_ms < bound, exit_
    assert exit_.memory_peak_bytes is not None and exit_.memory_peak_bytes > 0


async def test_touching_60_mb_reports_a_peak_between_that_and_the_limit(service: SandboxService) -> None:
    _, exit_ = await run(service, TOUCH_60MB)
    assert exit_.reason == "exit"
    assert exit_.memory_peak_bytes is not None and 60 * MIB <= exit_.memory_peak_bytes <= LIMIT, exit_


async def test_an_oom_kill_reports_a_peak_at_the_limit(service: SandboxService) -> None:
    _, exit_ = await run(service, "b = b'x' * (512 * 1024 * 1024)")
    assert exit_.reason == "oom"
    assert exit_.memory_peak_bytes is not None and exit_.memory_peak_bytes >= 0.9 * LIMIT, exit_
    assert exit_.cpu_ms is not None


async def test_a_timed_out_run_still_reports_both(service: SandboxService) -> None:
    _, exit_ = await run(service, "while True:\n    pass", timeout=1)
    assert exit_.reason == "timeout"
    # it spun as far as the machine let it (262 ms in its 1 s at load 20 on 2 cores, measured)
    assert exit_.cpu_ms is not None and exit_.cpu_ms >= 50, exit_
    assert exit_.memory_peak_bytes is not None and exit_.memory_peak_bytes > 0


async def test_a_run_stopped_by_the_client_still_reports_both(service: SandboxService) -> None:
    async with asyncio.timeout(60), service.run(RunRequest("print('go', flush=True)\nwhile True:\n    pass")) as r:
        async for event in r.events():
            if getattr(event, "data", None) == "go\n":
                r.kill()
            last = event
    assert isinstance(last, Exit) and last.reason == "killed"
    assert last.cpu_ms is not None and last.memory_peak_bytes is not None


async def test_stats_events_while_it_runs_and_none_unless_asked(service: SandboxService) -> None:
    events, exit_ = await run(service, BUSY_2S, stats=True)
    stats = [e for e in events if isinstance(e, Stats)]
    assert len(stats) >= 3, events
    cpu = [s.cpu_ms for s in stats]
    assert cpu == sorted(cpu) and cpu[-1] > cpu[0]
    assert all(s.memory_limit_bytes == LIMIT and s.memory_bytes > 0 and s.pids >= 1 for s in stats)
    assert exit_.cpu_ms is not None and exit_.cpu_ms >= cpu[-1]
    events, _ = await run(service, BUSY_1S)
    assert not [e for e in events if isinstance(e, Stats)]


# -- no parent cgroup left behind ----------------------------------------------------------------
@pytest.mark.timeout(180)
async def test_no_parent_cgroup_outlives_its_sandbox_however_it_ends() -> None:
    settings = Settings(pool_size=1, scientific_pool_size=0, pool_idle_max_s=1.0)
    engine = DockerEngine(settings)
    svc = SandboxService(settings, engine)
    await svc.start()
    await svc.ready.wait()
    try:
        await svc.pool.wait_until(lambda p: p.ready >= 1)
        assert len(my_parents()) > 0  # a warm sandbox sits in its own
        for code, kw in [
            ("print(1)", {}),
            ("while True:\n    pass", {"timeout": 0.5}),
            ("b = b'x' * (512 * 1024 * 1024)", {}),
            ("import os\nos._exit(3)", {}),
        ]:
            await run(svc, code, **kw)
        warmed = svc.pool.warmed
        await svc.pool.wait_until(lambda p: p.warmed >= warmed + 2)  # one recycled idle, unused
        await engine.drain_cleanup()
        # what is left belongs to sandboxes that still exist (a start may be in flight meanwhile),
        # or is an emptied parent kept for the next one
        assert engine.parents is not None
        tree = engine.parents.tree
        left = {p.rsplit("/", 1)[1] for p in my_parents()}
        free = set(engine.parents.free)
        assert all(tree.is_empty(name) for name in free)
        assert len(left - set(engine.parents.by_container.values()) - free) <= 1, left
    finally:
        await svc.stop()
    assert my_parents() == []


async def test_a_reused_parent_reports_its_new_sandbox_alone() -> None:
    """An emptied parent serves the next sandbox (cgroup v1): its figures start from nothing."""
    settings = Settings(pool_size=0, scientific_pool_size=0)
    engine = DockerEngine(settings)
    svc = SandboxService(settings, engine)
    await svc.start()
    await svc.ready.wait()
    try:
        _, heavy = await run(svc, BUSY_1S.replace("print('done')", TOUCH_60MB))
        await engine.drain_cleanup()
        assert engine.parents is not None and engine.parents.tree.reusable
        assert len(engine.parents.free) == 1
        reused = engine.parents.free[0]
        async with svc.run(RunRequest("print(4)")) as r:
            # gVisor usually leaves ~280 KiB charged to an emptied parent, too much to reuse it
            # exactly, but not always (CI, 2026-12-01): there it is reused only when its leftover
            # was under PARENT_LEFTOVER_MAX_BYTES; either way the figures below start from nothing
            if settings.runtime != "runsc":
                assert engine.parents.by_container[r.sandbox.id] == reused
            async for _ in r.events():
                pass
            light = r.exit
        assert light is not None and heavy.memory_peak_bytes is not None and heavy.cpu_ms is not None
        assert heavy.memory_peak_bytes >= 60 * MIB and heavy.cpu_ms >= 1000
        assert light.memory_peak_bytes is not None and light.memory_peak_bytes < 30 * MIB, light
        assert light.cpu_ms is not None and light.cpu_ms < 500, light
    finally:
        await svc.stop()
    assert my_parents() == []


async def test_a_starting_server_removes_empty_parents_of_dead_servers(service: SandboxService) -> None:
    engine = engine_of(service)
    assert engine.parents is not None
    tree = engine.parents.tree
    dead = "sce-999999999-1-0123456789ab"  # a pid that cannot run
    alive = parent_name(os.getpid(), _process_start_time(os.getpid()))  # a live server's, unknown to this engine
    tree.create(dead)
    tree.create(alive)
    try:
        await engine.reap_orphans()
        names = tree.parents()
        assert dead not in names and alive in names
    finally:
        tree.remove(dead)
        tree.remove(alive)


# -- where the cgroup tree is out of sight: the stats API --------------------------------------
async def test_the_stats_api_fallback_reports_both(service: SandboxService) -> None:
    engine = engine_of(service)
    await run(service, "pass")  # settles the source
    engine._fall_back_to_stats_api("test")
    _, exit_ = await run(service, BUSY_2S)
    assert exit_.cpu_ms is not None and exit_.cpu_ms >= 500, exit_  # the last sample's, up to a second old
    assert exit_.memory_peak_bytes is not None and exit_.memory_peak_bytes > 0
    _, exit_ = await run(service, "b = b'x' * (512 * 1024 * 1024)")
    assert exit_.reason == "oom" and exit_.memory_peak_bytes is not None and exit_.memory_peak_bytes >= 0.9 * LIMIT


def test_the_cgroup_tree_is_seen_from_here() -> None:
    """This host: local engine, cgroupfs, root; anything else would quietly use the fallback."""
    tree, why = CgroupTree.detect(local=True, driver="cgroupfs", version="1")
    assert tree is not None, why


# -- over the wire ----------------------------------------------------------------------------------
async def ws_run(server: ServerProcess, frame: dict[str, Any]) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(60), websockets.connect(server.ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "run", **frame}))
        try:
            async for message in ws:
                frames.append(json.loads(message))
        except websockets.ConnectionClosed:
            pass
    return frames


async def test_stats_frames_over_the_websocket(server: ServerProcess) -> None:
    frames = await ws_run(server, {"code": BUSY_2S, "stats": True})
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "started" and kinds[-1] == "exit", kinds
    stats = [f for f in frames if f["type"] == "stats"]
    assert len(stats) >= 3, kinds
    assert set(stats[0]) == {"type", "seq", "memory_bytes", "memory_limit_bytes", "cpu_ms", "pids"}
    cpu = [f["cpu_ms"] for f in stats]
    assert cpu == sorted(cpu) and cpu[-1] > cpu[0]
    assert [f["seq"] for f in frames[1:]] == list(range(1, len(frames)))  # in the one sequence, no gaps
    exit_ = frames[-1]
    assert exit_["cpu_ms"] >= 2 * busy_second_floor(Settings()) and 0 < exit_["memory_peak_bytes"] <= LIMIT + MIB


async def test_no_stats_frames_unless_asked(server: ServerProcess) -> None:
    frames = await ws_run(server, {"code": "import time\ntime.sleep(1.2)\nprint('ok')"})
    assert "stats" not in [f["type"] for f in frames]
    assert frames[-1]["type"] == "exit" and frames[-1]["cpu_ms"] is not None


async def test_post_run_answers_with_both_figures(server: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(server.url + "/run", json={"code": BUSY_1S})
    body = r.json()
    assert r.status_code == 200 and body["reason"] == "exit", body
    assert busy_second_floor(Settings()) <= body["cpu_ms"] <= 1150, body
    assert 0 < body["memory_peak_bytes"] <= LIMIT


async def test_metrics_have_cpu_and_peak_histograms_per_runtime(server: ServerProcess) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(server.url + "/run", json={"code": "print(1)"})
        assert r.status_code == 200
        text = (await client.get(server.url + "/metrics")).text
    for name in ("sce_run_cpu_seconds_count", "sce_run_memory_peak_bytes_count"):
        line = next(line for line in text.splitlines() if line.startswith(f'{name}{{runtime="python"}}'))
        assert float(line.split()[-1]) >= 1


CGROUP_V1 = os.path.isdir("/sys/fs/cgroup/memory")
# issue #30.7: fills its memory to within a charge batch of the limit (its own cgroup says how
# close), tells so, then exits by itself
NEAR_LIMIT_THEN_EXIT = """
import os
def read(name):
    with open('/sys/fs/cgroup/memory/' + name) as f:
        return int(f.read())
limit, kept = read('memory.limit_in_bytes'), []
while read('memory.usage_in_bytes') < limit - (768 << 10):
    kept.append(b'\\x01' * (128 << 10))
print('near', read('memory.max_usage_in_bytes') >= limit - (1 << 20), flush=True)
os._exit({status})
"""
# gVisor shows the program no cgroup files: it fills what the test tells it to, then exits by itself
FILL_THEN_EXIT = "import os\nkept = b'\\x01' * {n}\nprint('filled', flush=True)\nos._exit({status})\n"


def said(events: list[Any]) -> str:
    return "".join(e.data for e in events if hasattr(e, "data"))


async def exit_at_the_limit(service: SandboxService, status: int) -> Exit:
    """A program that fills its memory to within 1 MiB of the limit, then calls ``os._exit(status)``.
    Under runc its own cgroup tells it how close it is; under runsc the test steers the fill by the
    peak each run reports (the sentry's own memory counts too), and runs the kernel killed before
    the print (a real OOM) step back."""
    if service.settings.runtime != "runsc":
        events, exit_ = await run(service, NEAR_LIMIT_THEN_EXIT.format(status=status))
        assert "near True" in said(events), said(events)  # the program really was at its limit
        return exit_
    limit = service.settings.memory_mb << 20
    n, seen = 64 << 20, []
    for _ in range(8):
        events, exit_ = await run(service, FILL_THEN_EXIT.format(n=n, status=status))
        if "filled" not in said(events):
            assert exit_.reason == "oom", exit_
            n -= 1 << 20
            continue
        assert exit_.memory_peak_bytes is not None
        seen.append(exit_)
        if exit_.memory_peak_bytes >= limit - (1 << 20) or exit_.reason != "exit":
            return exit_
        n += limit - (512 << 10) - exit_.memory_peak_bytes
    pytest.fail(f"never within 1 MiB of the limit: {seen}")


@pytest.mark.parametrize("status", [137, 2])
async def test_a_program_at_its_limit_that_exits_by_itself_is_no_oom(service: SandboxService, status: int) -> None:
    """issue #30.7: a 137 is settled by the kernel's OOM count, not the peak, under both runtimes.
    Under runsc an exit 2 is also what gVisor's sentry does when an allocation fails at the limit,
    with no OOM kill for the kernel to count: that one is still judged by the peak, so a program at
    its limit that exits 2 by itself is called oom there (a known gap, docs/SECURITY_NOTES.md)."""
    if not CGROUP_V1:
        pytest.skip("cgroup v1 only (v2 counts OOM kills itself)")
    exit_ = await exit_at_the_limit(service, status)
    if status == 2 and service.settings.runtime == "runsc" and exit_.reason == "oom":
        pytest.xfail(f"runsc: an exit 2 at the limit is judged by the peak ({exit_.memory_peak_bytes} bytes)")
    assert (exit_.reason, exit_.exit_code) == ("exit", status), exit_
