"""The heap trimmer: a trim returns what finished runs held, cycles included, and only when idle."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from app.sandbox.heap import HeapTrimmer
from app.server.runs import RunRegistry

pytestmark = pytest.mark.timeout(10)


class Held:
    """Stands for a finished run: objects that refer to each other (a task, its closures, a session)."""

    def __init__(self) -> None:
        self.me = self
        self.frames = [b"x" * 1024 for _ in range(64)]


async def test_a_trim_comes_after_the_cycles_of_finished_runs_are_collected() -> None:
    alive_at_trim: list[bool] = []
    gc.disable()  # as if the collector's thresholds had not been reached yet
    try:
        held = Held()
        ref = weakref.ref(held)
        del held
        assert ref() is not None  # garbage, but in a cycle: only a collection frees it
        done = asyncio.Event()

        def trim(pad: int) -> int:
            alive_at_trim.append(ref() is not None)
            done.set()
            return 1

        trimmer = HeapTrimmer((0.0,), trim=trim)
        trimmer.run_ended(lambda: 0)
        await done.wait()
    finally:
        gc.enable()
    assert alive_at_trim == [False]


async def test_no_trim_while_a_run_is_active_and_one_when_the_last_ends() -> None:
    trims: list[int] = []
    trimmed = asyncio.Event()

    def trim(pad: int) -> int:
        trims.append(pad)
        trimmed.set()
        return 1

    active = [1]
    trimmer = HeapTrimmer((0.0,), trim=trim)
    trimmer.run_ended(lambda: active[0])
    # a trim scheduled now would be due at once: a timer due after it marks that it did not come
    later = asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, later.set)
    await later.wait()
    assert trims == []
    active[0] = 0
    trimmer.run_ended(lambda: active[0])
    await trimmed.wait()
    assert trims == [0]
    trimmer.close()


async def test_the_registry_says_when_a_finished_run_is_let_go() -> None:
    forgotten = asyncio.Event()
    registry = RunRegistry(keep_finished_s=0.01, on_forget=forgotten.set)

    class Live:
        id = "r1"
        transport = "websocket"

    registry.add(Live())  # type: ignore[arg-type]
    registry.finished(Live())  # type: ignore[arg-type]
    await forgotten.wait()
    assert "r1" not in registry.known
