"""Resource accounting without Docker: the cgroup tree as files, stats events in order, metrics."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from prometheus_client.utils import floatToGoString

from app.core.events import Exit, Output, RunLimits, Started, Stats
from app.core.rich import RichLimits
from app.protocol import RunRequest
from app.protocol.outbound import StatsFrame
from app.sandbox.docker.cgroups import CgroupTree, parent_name, parent_owner
from app.sandbox.interface import SandboxSpec, Usage
from app.sandbox.run import FINAL_USAGE_S, Run
from app.server.frames import sequenced
from app.server.metrics import Metrics
from tests.fakes import FakeSandbox

pytestmark = pytest.mark.timeout(30)

SPEC = SandboxSpec("python", "test", 128, 64, 1.0, 256, 16)
LIMITS = RunLimits(timeout_s=10, memory_mb=128, output_bytes=100_000, pids=64)
RICH = RichLimits(image_max_bytes=1 << 20, file_max_bytes=1 << 20, files_max_count=20, total_bytes=4 << 20)

V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


# -- the tree ------------------------------------------------------------------------------------
def test_v1_mounts_found_with_co_mounted_controllers() -> None:
    tree = CgroupTree.from_mountinfo(1, V1_MOUNTINFO)
    assert tree is not None
    assert tree.mounts == {
        "memory": "/sys/fs/cgroup/memory",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "pids": "/sys/fs/cgroup/pids",
    }
    # the parent is removed from every hierarchy a runtime makes it in, the hybrid v2 one included
    assert "/sys/fs/cgroup/systemd" in tree.all_mounts and "/sys/fs/cgroup/unified" in tree.all_mounts


def test_a_namespaced_view_of_the_tree_is_not_the_engines() -> None:
    # inside a container, the hierarchy is mounted from the container's own cgroup, not the root
    text = V1_MOUNTINFO.replace("0:32 / /sys/fs/cgroup/memory", "0:32 /docker/abc /sys/fs/cgroup/memory")
    assert CgroupTree.from_mountinfo(1, text) is None


def test_v2_mount() -> None:
    tree = CgroupTree.from_mountinfo(2, "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    assert tree is not None and tree.mounts == {"": "/sys/fs/cgroup"}


@pytest.mark.parametrize(
    ("local", "driver", "version", "why"),
    [
        (False, "cgroupfs", "1", "remote engine"),
        (True, "systemd", "2", "cgroup driver systemd"),
        (True, "cgroupfs", None, "cgroup version None"),
    ],
)
def test_where_the_tree_is_out_of_sight_the_reason_is_named(
    local: bool, driver: str, version: str | None, why: str
) -> None:
    assert CgroupTree.detect(local=local, driver=driver, version=version) == (None, why)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v1_reading(tmp_path: Path) -> None:
    mounts = {c: str(tmp_path / c) for c in ("memory", "cpuacct", "pids")}
    tree = CgroupTree(1, mounts, list(mounts.values()))
    tree.create("sce-1-2-aa")
    _write(tmp_path / "cpuacct/sce-1-2-aa/cpuacct.usage", "557169052\n")
    _write(tmp_path / "memory/sce-1-2-aa/memory.usage_in_bytes", "1000\n")
    _write(tmp_path / "memory/sce-1-2-aa/memory.max_usage_in_bytes", "67899392\n")
    _write(tmp_path / "pids/sce-1-2-aa/pids.current", "3\n")
    r = tree.read("sce-1-2-aa")
    assert (r.cpu_ns, r.memory_bytes, r.memory_peak_bytes, r.pids) == (557169052, 1000, 67899392, 3)
    assert tree.read("sce-gone").cpu_ns is None  # a missing parent reads as unknown, never fails


def test_v2_reading_with_and_without_memory_peak(tmp_path: Path) -> None:
    tree = CgroupTree(2, {"": str(tmp_path)}, [str(tmp_path)])
    base = tmp_path / "sce-1-2-bb"
    _write(base / "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    _write(base / "memory.current", "4096\n")
    _write(base / "pids.current", "2\n")
    _write(base / "memory.peak", "8192\n")
    r = tree.read("sce-1-2-bb")
    assert (r.cpu_ns, r.memory_bytes, r.memory_peak_bytes, r.pids) == (1_500_000, 4096, 8192, 2)
    (base / "memory.peak").unlink()  # a kernel before 5.19
    assert tree.read("sce-1-2-bb").memory_peak_bytes is None
    assert tree.has_peak is False  # the sandbox samples memory.current instead


def test_a_parent_still_holding_a_cgroup_is_kept_for_later(tmp_path: Path) -> None:
    mounts = {c: str(tmp_path / c) for c in ("memory", "cpuacct", "pids")}
    tree = CgroupTree(1, mounts, [*mounts.values(), str(tmp_path / "freezer")])
    tree.create("sce-1-2-cc")
    (tmp_path / "memory/sce-1-2-cc/container").mkdir()
    assert tree.parents() == {"sce-1-2-cc"}
    assert tree.remove("sce-1-2-cc") is False
    (tmp_path / "memory/sce-1-2-cc/container").rmdir()
    assert tree.remove("sce-1-2-cc") is True
    assert tree.parents() == set()


def test_an_emptied_v1_parent_is_reused_only_when_clean(tmp_path: Path) -> None:
    mounts = {c: str(tmp_path / c) for c in ("memory", "cpuacct", "pids")}
    tree = CgroupTree(1, mounts, list(mounts.values()))
    assert tree.reusable and not CgroupTree(2, {"": str(tmp_path)}, [str(tmp_path)]).reusable
    tree.create("sce-1-2-dd")
    base = tmp_path / "memory/sce-1-2-dd"
    (base / "container").mkdir()
    assert tree.is_empty("sce-1-2-dd") is False  # its sandbox's cgroup is still there
    (base / "container").rmdir()
    assert tree.is_empty("sce-1-2-dd") is True
    _write(base / "memory.max_usage_in_bytes", "67108864\n")
    _write(base / "memory.usage_in_bytes", "8192\n")
    assert tree.reset_peak("sce-1-2-dd", leftover_max=256 * 1024) is True
    assert (base / "memory.max_usage_in_bytes").read_text() == "0"  # the kernel restarts it from usage
    _write(base / "memory.usage_in_bytes", str(4 << 20))
    assert tree.reset_peak("sce-1-2-dd", leftover_max=256 * 1024) is False  # still charged: not reused


def test_a_parent_names_its_server() -> None:
    name = parent_name(4242, "987654")
    assert name.startswith("sce-4242-987654-")
    assert parent_owner(name) == (4242, "987654")
    assert parent_owner("sce-sandbox") is None and parent_owner("docker") is None


# -- stats events from the run -----------------------------------------------------------------------
class MeteredSandbox(FakeSandbox):
    """A fake whose CPU grows with the wall clock, and whose final reading can hang."""

    def __init__(self, script: object, *, final_hangs: bool = False) -> None:
        super().__init__(SPEC, script)  # type: ignore[arg-type]
        self.t0 = time.monotonic()
        self.final_hangs = final_hangs

    async def usage(self, *, final: bool) -> Usage:
        if final and self.final_hangs:
            await asyncio.Event().wait()
        cpu = round((time.monotonic() - self.t0) * 1000)
        return Usage(cpu_ms=cpu, memory_peak_bytes=2 << 20, memory_bytes=1 << 20, pids=2)


async def _events(sandbox: FakeSandbox, *, stats: bool) -> list[object]:
    run = Run(
        sandbox, RunRequest("x", stats=stats), LIMITS, max_line_chars=1000, flush_interval_s=0.01, rich_limits=RICH
    )
    return [e async for e in run.events()]


async def chatty(sb: FakeSandbox) -> int:
    for i in range(6):
        sb.out(f"line {i}\n")
        await asyncio.sleep(0.25)  # the program's own pace
    return 0


async def test_stats_come_twice_a_second_in_order_with_output_and_never_after_exit() -> None:
    events = await _events(MeteredSandbox(chatty), stats=True)
    assert isinstance(events[0], Started) and isinstance(events[-1], Exit)
    stats = [e for e in events if isinstance(e, Stats)]
    assert 2 <= len(stats) <= 3  # 1.5 s of program at one every 0.5 s
    assert [s.cpu_ms for s in stats] == sorted(s.cpu_ms for s in stats)
    assert all(s.memory_limit_bytes == 128 << 20 and s.pids == 2 for s in stats)
    # interleaved with the output, not bunched at the end
    kinds = ["stats" if isinstance(e, Stats) else "out" for e in events if isinstance(e, Stats | Output)]
    assert "out" in kinds[kinds.index("stats") :]
    assert isinstance(sequenced(stats[0], 1), StatsFrame)  # what the protocol promises


async def test_no_stats_unless_asked() -> None:
    events = await _events(MeteredSandbox(chatty), stats=False)
    assert not [e for e in events if isinstance(e, Stats)]


async def test_a_reading_that_hangs_costs_the_exit_no_more_than_its_bound() -> None:
    async def quick(sb: FakeSandbox) -> int:
        sb.out("done\n")
        return 0

    loop = asyncio.get_running_loop()
    started = loop.time()
    events = await _events(MeteredSandbox(quick, final_hangs=True), stats=False)
    exit_ = events[-1]
    assert isinstance(exit_, Exit) and exit_.reason == "exit"
    assert exit_.cpu_ms is None and exit_.memory_peak_bytes is None
    assert loop.time() - started < FINAL_USAGE_S + 0.5


# -- metrics ------------------------------------------------------------------------------------------
def test_metrics_observe_cpu_and_peak_per_runtime() -> None:
    m = Metrics()
    m.observe_usage(Exit("exit", 0, None, 1200, 0, 0, False, cpu_ms=1000, memory_peak_bytes=60 << 20), "python")
    m.observe_usage(Exit("timeout", None, None, 5000, 0, 0, False), "python")  # unknown figures: not observed
    get = m.registry.get_sample_value
    assert get("sce_run_cpu_seconds_count", {"runtime": "python"}) == 1
    assert get("sce_run_cpu_seconds_sum", {"runtime": "python"}) == 1.0
    assert get("sce_run_memory_peak_bytes_count", {"runtime": "python"}) == 1
    assert get("sce_run_memory_peak_bytes_bucket", {"runtime": "python", "le": floatToGoString(64 << 20)}) == 1


def test_sweeps_remove_dead_servers_parents_and_on_stop_this_engines_own_only(tmp_path: Path) -> None:
    from app.sandbox.docker.accounting import ParentCgroups
    from app.sandbox.docker.ownership import process_start_time

    mounts = {c: str(tmp_path / c) for c in ("memory", "cpuacct", "pids")}
    tree = CgroupTree(1, mounts, list(mounts.values()))
    me = (os.getpid(), process_start_time(os.getpid()))
    engine, neighbour = ParentCgroups(tree, 8), ParentCgroups(tree, 8)  # two engines, one process
    dead = "sce-999999999-1-0123456789ab"
    own = parent_name(*me, engine.tag)
    other = parent_name(*me, neighbour.tag)
    for name in (dead, own, other):
        tree.create(name)
    assert engine.sweep(mine=False) == 1  # a start: only the dead server's
    assert tree.parents() == {own, other}
    assert engine.sweep(mine=True) == 1  # a stop: its own too, never the neighbour's
    assert tree.parents() == {other}
