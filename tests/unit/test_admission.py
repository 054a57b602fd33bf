"""Admission on its own: slots, the FIFO wait queue with its positions, the per-client share, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import Busy
from app.server.admission import Admission

pytestmark = pytest.mark.timeout(10)

WAIT_S = 2.0


class Holder:
    """One run holding (or waiting for) a slot until released; records its queue positions."""

    def __init__(self, admission: Admission, client: str, entered_order: list[str] | None = None) -> None:
        self.admission = admission
        self.client = client
        self.positions: list[int] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self._position_seen = asyncio.Event()
        self._order = entered_order
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _on_position(self, position: int) -> None:
        self.positions.append(position)
        self._position_seen.set()

    async def _run(self) -> None:
        async with self.admission.slot(self.client, self._on_position):
            if self._order is not None:
                self._order.append(self.client)
            self.entered.set()
            await self.release.wait()

    async def wait_entered(self) -> None:
        async with asyncio.timeout(WAIT_S):
            await self.entered.wait()

    async def wait_position(self, position: int) -> None:
        async with asyncio.timeout(WAIT_S):
            while not self.positions or self.positions[-1] != position:
                self._position_seen.clear()
                await self._position_seen.wait()

    async def finish(self) -> None:
        self.release.set()
        async with asyncio.timeout(WAIT_S):
            await self.task


async def settle() -> None:
    """Let every ready task run (no timing involved: only already-scheduled callbacks)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_fast_path_enters_at_once_without_positions() -> None:
    admission = Admission(max_running=2, queue_size=4, per_client=2)
    positions: list[int] = []

    async def on_position(p: int) -> None:
        positions.append(p)

    async with admission.slot("a", on_position):
        assert admission.running == 1
        async with admission.slot("b", on_position):
            assert admission.running == 2
            assert admission.queued == 0
    assert admission.running == 0
    assert positions == []


async def test_slot_is_released_when_the_block_raises() -> None:
    admission = Admission(max_running=1, queue_size=0, per_client=1)
    with pytest.raises(RuntimeError):
        async with admission.slot("a"):
            raise RuntimeError("boom")
    assert admission.running == 0
    async with admission.slot("a"):  # the slot and the client's share are both back
        pass


async def test_waiters_queue_in_fifo_order_with_positions_from_one() -> None:
    admission = Admission(max_running=1, queue_size=8, per_client=8)
    order: list[str] = []
    first = Holder(admission, "first", order)
    await first.wait_entered()
    waiters = [Holder(admission, name, order) for name in ("a", "b", "c")]
    for i, w in enumerate(waiters):
        await w.wait_position(i + 1)
    assert admission.queued == 3
    assert [w.positions for w in waiters] == [[1], [2], [3]]

    await first.finish()
    await waiters[0].wait_entered()
    await waiters[1].wait_position(1)
    await waiters[2].wait_position(2)
    assert [w.positions for w in waiters] == [[1], [2, 1], [3, 2]]
    assert admission.running == 1 and admission.queued == 2

    for w in waiters:
        await w.finish()
    assert order == ["first", "a", "b", "c"]
    assert admission.running == 0 and admission.queued == 0


async def test_new_arrival_does_not_overtake_waiters() -> None:
    admission = Admission(max_running=2, queue_size=8, per_client=8)
    order: list[str] = []
    h1, h2 = Holder(admission, "h1", order), Holder(admission, "h2", order)
    await h1.wait_entered()
    await h2.wait_entered()
    waiter = Holder(admission, "waiter", order)
    await waiter.wait_position(1)
    await h1.finish()  # the freed slot goes straight to the waiter ...
    late = Holder(admission, "late", order)  # ... not to one arriving just then
    await waiter.wait_entered()
    await late.wait_position(1)
    assert order == ["h1", "h2", "waiter"]
    for h in (h2, waiter, late):
        await h.finish()
    assert order == ["h1", "h2", "waiter", "late"]
    assert admission.running == 0


async def test_full_queue_is_busy() -> None:
    admission = Admission(max_running=1, queue_size=2, per_client=8)
    holder = Holder(admission, "h")
    await holder.wait_entered()
    w1, w2 = Holder(admission, "w1"), Holder(admission, "w2")
    await w2.wait_position(2)
    with pytest.raises(Busy) as caught:
        async with admission.slot("late"):
            pytest.fail("entered a full admission")
    assert caught.value.code == "busy" and caught.value.close_code == 1013
    assert admission.queued == 2
    for h in (holder, w1, w2):
        await h.finish()
    assert admission.running == 0


async def test_no_queue_is_busy_as_soon_as_every_slot_is_taken() -> None:
    admission = Admission(max_running=1, queue_size=0, per_client=8)
    holder = Holder(admission, "h")
    await holder.wait_entered()
    with pytest.raises(Busy):
        async with admission.slot("other"):
            pass
    await holder.finish()
    async with admission.slot("other"):
        pass


async def test_a_client_over_its_share_is_busy_while_others_run() -> None:
    admission = Admission(max_running=4, queue_size=8, per_client=1)
    mine = Holder(admission, "me")
    await mine.wait_entered()
    with pytest.raises(Busy):
        async with admission.slot("me"):
            pass
    other = Holder(admission, "you")  # free slots remain for everyone else
    await other.wait_entered()
    await mine.finish()
    again = Holder(admission, "me")  # the share is back once the run ends
    await again.wait_entered()
    await other.finish()
    await again.finish()


async def test_a_waiting_run_counts_against_the_share() -> None:
    admission = Admission(max_running=1, queue_size=8, per_client=2)
    blocker = Holder(admission, "blocker")
    await blocker.wait_entered()
    running = Holder(admission, "me")
    await running.wait_position(1)
    second = Holder(admission, "me")
    await second.wait_position(2)
    with pytest.raises(Busy):
        async with admission.slot("me"):
            pass
    for h in (blocker, running, second):
        await h.finish()
    assert admission.running == 0 and admission.queued == 0


async def test_a_cancelled_waiter_leaves_and_the_others_move_up() -> None:
    admission = Admission(max_running=1, queue_size=8, per_client=8)
    order: list[str] = []
    holder = Holder(admission, "h", order)
    await holder.wait_entered()
    a, b, c = (Holder(admission, name, order) for name in ("a", "b", "c"))
    await c.wait_position(3)

    b.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b.task
    await c.wait_position(2)
    assert admission.queued == 2
    assert a.positions == [1]  # unaffected: it was ahead

    await holder.finish()
    await a.wait_entered()
    await c.wait_position(1)
    await a.finish()
    await c.finish()
    assert order == ["h", "a", "c"]
    assert admission.running == 0 and admission.queued == 0
    async with admission.slot("b"):  # the cancelled client holds nothing any more
        pass


async def test_a_slot_granted_as_the_waiter_is_cancelled_is_passed_on() -> None:
    admission = Admission(max_running=1, queue_size=8, per_client=1)
    order: list[str] = []
    held = admission.slot("h")
    await held.__aenter__()
    a, b = Holder(admission, "a", order), Holder(admission, "b", order)
    await b.wait_position(2)

    # free the slot (handed straight to "a"), and cancel "a" before it gets to run again
    await held.__aexit__(None, None, None)
    a.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await a.task
    assert not a.entered.is_set()

    await b.wait_entered()  # the slot was not lost with "a"
    assert admission.running == 1 and admission.queued == 0
    await b.finish()
    assert order == ["b"]
    assert admission.running == 0
    async with admission.slot("a"):  # and "a" holds no share
        pass


async def test_a_slot_granted_during_a_slow_position_callback_is_taken() -> None:
    admission = Admission(max_running=1, queue_size=8, per_client=8)
    holder = Holder(admission, "h")
    await holder.wait_entered()
    in_callback = asyncio.Event()
    go_on = asyncio.Event()
    entered = asyncio.Event()

    async def slow(position: int) -> None:
        in_callback.set()
        await go_on.wait()  # e.g. a client slow to accept its "queued" frame

    async def waiter() -> None:
        async with admission.slot("w", slow):
            entered.set()

    task = asyncio.get_running_loop().create_task(waiter())
    async with asyncio.timeout(WAIT_S):
        await in_callback.wait()
    await holder.finish()  # granted while the waiter is still in its callback
    go_on.set()
    async with asyncio.timeout(WAIT_S):
        await task
    assert entered.is_set()
    assert admission.running == 0 and admission.queued == 0


async def test_a_failing_position_callback_leaves_the_queue() -> None:
    admission = Admission(max_running=1, queue_size=8, per_client=8)
    holder = Holder(admission, "h")
    await holder.wait_entered()

    async def broken(position: int) -> None:
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        async with admission.slot("w", broken):
            pass
    assert admission.queued == 0
    await holder.finish()
    assert admission.running == 0


async def test_many_waiters_all_get_through_in_order() -> None:
    admission = Admission(max_running=3, queue_size=50, per_client=100)
    order: list[int] = []
    done = asyncio.Event()

    async def one(i: int) -> None:
        async with admission.slot(f"c{i % 7}"):
            order.append(i)
            await asyncio.sleep(0)
            if len(order) == 40:
                done.set()

    tasks = [asyncio.get_running_loop().create_task(one(i)) for i in range(40)]
    async with asyncio.timeout(WAIT_S):
        await done.wait()
        await asyncio.gather(*tasks)
    assert order == list(range(40))
    assert admission.running == 0 and admission.queued == 0


async def test_a_reservation_holds_a_slot_without_waiting_and_passes_it_on() -> None:
    """A session's slot: taken at once or refused, never queued; given back to a waiting run."""
    admission = Admission(max_running=2, queue_size=4, per_client=4)
    assert admission.reserve()
    run = Holder(admission, "a")
    async with asyncio.timeout(WAIT_S):
        await run.entered.wait()
    assert not admission.reserve()  # both slots held: a session is refused, not queued
    waiting = Holder(admission, "b")
    async with asyncio.timeout(WAIT_S):
        await waiting._position_seen.wait()
    assert waiting.positions == [1] and not admission.reserve()  # a waiting run goes first
    admission.unreserve()
    async with asyncio.timeout(WAIT_S):
        await waiting.entered.wait()
    run.release.set()
    waiting.release.set()
    await asyncio.gather(run.task, waiting.task)
    assert admission.running == 0
