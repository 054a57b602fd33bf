"""Telling an OOM when the engine's flag is unset (gVisor; runc under load), without Docker."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.core.exits import ExitObservation, classify_exit
from app.sandbox.docker import sandbox as engine_module
from app.sandbox.docker.accounting import ParentCgroups
from app.sandbox.docker.attach import AttachStream
from app.sandbox.docker.cgroups import CgroupTree
from app.sandbox.docker.oomwatch import OomWatch
from app.sandbox.docker.sandbox import DockerSandbox
from app.sandbox.interface import SandboxSpec

pytestmark = pytest.mark.timeout(30)

LIMIT = 128 * 1024 * 1024
SPEC = SandboxSpec("python", "test", 128, 64, 1.0, 256, 16)
PARENT = "sce-1-2-aa"


def _sandbox(
    tree: CgroupTree, runtime: str, code: int, *, oom_flag: bool = False, stats_api: bool = False
) -> DockerSandbox:
    # with figures from the stats API the engine measures by no tree, but its parents are still made in one
    fake_engine: Any = SimpleNamespace(
        cgroups=None if stats_api else tree, parents=ParentCgroups(tree, 8), settings=SimpleNamespace(runtime=runtime)
    )
    a, b = socket.socketpair()
    b.close()
    sandbox = DockerSandbox(fake_engine, SPEC, "c0ffee", AttachStream(a), PARENT)

    async def state() -> dict[str, Any]:
        return {"Running": False, "Status": "exited", "ExitCode": code, "OOMKilled": oom_flag}

    sandbox._state = state  # type: ignore[method-assign]
    return sandbox


def _v1(tmp_path: Path, peak: int) -> CgroupTree:
    mounts = {c: str(tmp_path / c) for c in ("memory", "cpuacct", "pids")}
    tree = CgroupTree(1, mounts, list(mounts.values()))
    tree.create(PARENT)
    (tmp_path / "memory" / PARENT / "memory.max_usage_in_bytes").write_text(f"{peak}\n")
    return tree


@pytest.fixture(autouse=True)
def _no_flag_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "OOM_FLAG_INTERVAL_S", 0.0)


async def test_a_sigkill_we_did_not_send_with_the_peak_at_the_limit_is_oom(tmp_path: Path) -> None:
    observed = await _sandbox(_v1(tmp_path, 134_230_016), "runsc", 137).wait()  # measured under runsc
    assert observed == ExitObservation(137, oom_killed=True)
    assert classify_exit(observed, None).reason == "oom"


async def test_a_sigkill_far_below_the_limit_is_the_programs_own(tmp_path: Path) -> None:
    observed = await _sandbox(_v1(tmp_path, 20 << 20), "runsc", 137).wait()
    assert observed == ExitObservation(137, oom_killed=False)
    assert classify_exit(observed, None).exit_code == 137


async def test_our_own_kill_is_never_asked_about(tmp_path: Path) -> None:
    sandbox = _sandbox(_v1(tmp_path, LIMIT + 4096), "runc", 137)
    sandbox.killed = True
    assert await sandbox.wait() == ExitObservation(137, oom_killed=False)


async def test_a_gvisor_sentry_that_died_at_the_limit_is_oom(tmp_path: Path) -> None:
    assert await _sandbox(_v1(tmp_path, LIMIT), "runsc", 2).wait() == ExitObservation(137, oom_killed=True)
    # below the limit, or under runc, exit 2 is the program's own status
    assert await _sandbox(_v1(tmp_path / "b", 10 << 20), "runsc", 2).wait() == ExitObservation(2)
    assert await _sandbox(_v1(tmp_path / "c", LIMIT), "runc", 2).wait() == ExitObservation(2)


async def test_cgroup_v2_counts_oom_kills_under_the_parent(tmp_path: Path) -> None:
    tree = CgroupTree(2, {"": str(tmp_path)}, [str(tmp_path)])
    (tmp_path / PARENT).mkdir()
    (tmp_path / PARENT / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert await _sandbox(tree, "runsc", 137).wait() == ExitObservation(137, oom_killed=True)
    (tmp_path / PARENT / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    assert await _sandbox(tree, "runsc", 137).wait() == ExitObservation(137, oom_killed=False)


async def test_an_oom_is_still_told_when_figures_come_from_the_stats_api(tmp_path: Path) -> None:
    """The fallback changes where figures come from, not who made the parent: a stats sample (up to a
    second old) misses a fast allocation, the parent's peak does not (a runsc flake in CI before)."""
    assert await _sandbox(_v1(tmp_path, LIMIT), "runsc", 2, stats_api=True).wait() == ExitObservation(137, True)
    assert await _sandbox(_v1(tmp_path / "b", 134_230_016), "runsc", 137, stats_api=True).wait() == ExitObservation(
        137, oom_killed=True
    )
    assert await _sandbox(_v1(tmp_path / "c", 10 << 20), "runsc", 2, stats_api=True).wait() == ExitObservation(2)


async def test_under_runc_a_full_memory_and_its_own_137_is_no_oom(tmp_path: Path) -> None:
    """issue #30.7: a program that fills its memory to the limit then calls ``os._exit(137)`` reports
    exit 137 (the engine's flag, the kernel's event, is unset); the peak alone is no verdict."""
    assert await _sandbox(_v1(tmp_path, LIMIT), "runc", 137).wait() == ExitObservation(137, oom_killed=False)
    assert await _sandbox(_v1(tmp_path / "b", LIMIT), "runc", 137, oom_flag=True).wait() == ExitObservation(137, True)


# --- cgroup v1 under runc: the kernel's OOM events on an eventfd of the server's own ---------------------


def _watch(tmp_path: Path, oom_kill: int | None = None) -> OomWatch:
    """A watch on a stand-in leaf; the test writes the kernel's signals into its eventfd itself."""
    leaf = tmp_path / "leaf"
    leaf.mkdir(parents=True)
    (leaf / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    (leaf / "cgroup.event_control").write_text("")
    watch = OomWatch(str(leaf))
    if oom_kill is None:
        shutil.rmtree(leaf)  # the container has exited and the runtime removed its cgroup
    else:
        (leaf / "memory.oom_control").write_text(f"oom_kill_disable 0\nunder_oom 0\noom_kill {oom_kill}\n")
    return watch


async def test_while_the_cgroup_exists_its_own_counter_decides(tmp_path: Path) -> None:
    assert await _watch(tmp_path / "a", oom_kill=1).died_of_oom(0.0) is True
    assert await _watch(tmp_path / "b", oom_kill=0).died_of_oom(0.0) is False


async def test_with_the_cgroup_gone_an_oom_signal_and_a_removal_signal_are_an_oom(tmp_path: Path) -> None:
    watch = _watch(tmp_path)
    os.eventfd_write(watch.fd, 2)
    assert await watch.died_of_oom(0.0) is True


async def test_a_removal_signal_alone_is_no_oom_once_no_second_one_comes(tmp_path: Path) -> None:
    watch = _watch(tmp_path)
    os.eventfd_write(watch.fd, 1)
    assert await watch.died_of_oom(0.05) is False
    assert await _watch(tmp_path / "quiet").died_of_oom(0.05) is None  # no signal at all: no verdict


async def test_a_removal_signal_that_trails_the_oom_signal_is_waited_for(tmp_path: Path) -> None:
    watch = _watch(tmp_path)
    os.eventfd_write(watch.fd, 1)  # the OOM's; the cgroup's removal signals later
    asyncio.get_running_loop().call_later(0.05, os.eventfd_write, watch.fd, 1)
    assert await watch.died_of_oom(5.0) is True
    watch.close()
    assert watch.fd == -1
