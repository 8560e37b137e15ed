"""The shared clock: ordering, stepping, cancellation and virtual sleeps (virtual times only)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbhil.simulator import (
    DEFAULT_START,
    ClockError,
    ClockMode,
    RealTimeClock,
    SteppedClock,
    create_clock,
)


def test_default_start_and_now() -> None:
    clock = SteppedClock()
    assert datetime(2026, 1, 1, tzinfo=UTC) == DEFAULT_START
    assert clock.now() == DEFAULT_START
    assert clock.now().tzinfo is UTC
    assert clock.monotonic() == 0.0
    clock.advance(90.5)
    assert clock.monotonic() == 90.5
    assert clock.now() == DEFAULT_START + timedelta(seconds=90.5)


def test_configurable_start() -> None:
    start = datetime(2030, 6, 1, 12, tzinfo=UTC)
    clock = create_clock("stepped", start=start)
    assert clock.mode is ClockMode.STEPPED
    assert clock.now() == start


def test_naive_start_rejected() -> None:
    with pytest.raises(ClockError, match="timezone-aware"):
        SteppedClock(datetime(2026, 1, 1))


def test_unknown_mode_rejected() -> None:
    with pytest.raises(ClockError, match="unknown clock mode"):
        create_clock("warp")


def test_advance_runs_callbacks_in_time_then_fifo_order() -> None:
    clock = SteppedClock()
    log: list[tuple[str, float]] = []

    def record(name: str) -> None:
        log.append((name, clock.monotonic()))

    clock.call_later(5, record, "c")
    clock.call_later(1, record, "a")
    clock.call_later(5, record, "d")  # same instant as "c": scheduled later, runs later
    clock.call_at(1.0, record, "b")
    clock.advance(4)
    assert log == [("a", 1.0), ("b", 1.0)]
    assert clock.monotonic() == 4.0
    clock.advance(10)
    assert log[2:] == [("c", 5.0), ("d", 5.0)]
    assert clock.monotonic() == 14.0


def test_call_at_accepts_datetime() -> None:
    clock = SteppedClock()
    seen: list[datetime] = []
    clock.call_at(DEFAULT_START + timedelta(minutes=3), lambda: seen.append(clock.now()))
    clock.advance(179.999)
    assert seen == []
    clock.advance(0.001)
    assert seen == [DEFAULT_START + timedelta(minutes=3)]


def test_past_times_run_next_after_due_ones() -> None:
    clock = SteppedClock()
    clock.advance(10)
    log: list[str] = []
    clock.call_later(0, log.append, "due-now")
    clock.call_at(3.0, log.append, "in-the-past")
    clock.advance(0)
    assert log == ["due-now", "in-the-past"]
    assert clock.monotonic() == 10.0


def test_cancel() -> None:
    clock = SteppedClock()
    log: list[str] = []
    keep = clock.call_later(1, log.append, "keep")
    drop = clock.call_later(1, log.append, "drop")
    assert clock.pending == 2
    drop.cancel()
    drop.cancel()  # idempotent
    assert drop.cancelled() and not keep.cancelled()
    assert clock.pending == 1
    clock.advance(2)
    assert log == ["keep"]
    assert keep.done()
    assert clock.pending == 0
    keep.cancel()  # after it ran: harmless, does not count twice
    assert clock.pending == 0
    assert clock.next_event() is None


def test_callback_scheduling_more_callbacks_runs_them_in_the_same_advance() -> None:
    clock = SteppedClock()
    log: list[float] = []

    def tick(n: int) -> None:
        log.append(clock.monotonic())
        if n:
            clock.call_later(2, tick, n - 1)

    clock.call_later(1, tick, 3)
    clock.advance(100)
    assert log == [1.0, 3.0, 5.0, 7.0]


def test_callback_error_propagates_from_advance() -> None:
    clock = SteppedClock()
    clock.call_later(1, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        clock.advance(5)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "3"])
def test_bad_durations(bad: object) -> None:
    clock = SteppedClock()
    with pytest.raises(ClockError):
        clock.advance(bad)  # type: ignore[arg-type]
    with pytest.raises(ClockError):
        clock.call_later(bad, print)  # type: ignore[arg-type]

    async def main() -> None:
        await clock.sleep(bad)  # type: ignore[arg-type]

    with pytest.raises(ClockError):
        clock.run(main())


def test_call_at_rejects_naive_datetime_and_non_callables() -> None:
    clock = SteppedClock()
    with pytest.raises(ClockError, match="timezone-aware"):
        clock.call_at(datetime(2026, 1, 1, 0, 5), print)
    with pytest.raises(ClockError, match="callable"):
        clock.call_later(1, "not callable")  # type: ignore[arg-type]


def test_advance_to_refuses_the_past() -> None:
    clock = SteppedClock()
    clock.advance_to(DEFAULT_START + timedelta(hours=1))
    assert clock.monotonic() == 3600.0
    with pytest.raises(ClockError, match="back in time"):
        clock.advance_to(10.0)


def test_three_minute_sleep_is_virtual() -> None:
    clock = SteppedClock()

    async def outage() -> datetime:
        await clock.sleep(180)
        return clock.now()

    assert clock.run(outage()) == DEFAULT_START + timedelta(minutes=3)
    assert clock.monotonic() == 180.0


def test_tasks_wake_in_virtual_time_order_and_fifo() -> None:
    clock = SteppedClock()
    log: list[tuple[str, float]] = []

    async def worker(name: str, delay: float) -> None:
        await clock.sleep(delay)
        log.append((name, clock.monotonic()))

    async def main() -> None:
        await asyncio.gather(
            worker("slow", 60),
            worker("first-at-5", 5),
            worker("second-at-5", 5),
            worker("fast", 0.5),
        )

    clock.run(main())
    assert log == [("fast", 0.5), ("first-at-5", 5.0), ("second-at-5", 5.0), ("slow", 60.0)]


def test_wait_until_and_past_deadline() -> None:
    clock = SteppedClock()
    activation = DEFAULT_START + timedelta(days=30)

    async def main() -> list[datetime]:
        await clock.wait_until(activation)
        first = clock.now()
        await clock.wait_until(DEFAULT_START)  # already passed: returns at once
        return [first, clock.now()]

    assert clock.run(main()) == [activation, activation]


def test_asyncio_timers_follow_virtual_time_in_the_stepped_loop() -> None:
    clock = SteppedClock()

    async def main() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        assert loop.time() == clock.monotonic()
        await asyncio.sleep(30)  # third-party code calling asyncio directly still steps
        after_sleep = clock.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), timeout=8)
        after_timeout = clock.monotonic()
        fired: list[float] = []
        loop.call_later(2, lambda: fired.append(clock.monotonic()))
        await clock.sleep(5)
        return after_sleep, after_timeout, fired[0]

    assert clock.run(main()) == (30.0, 38.0, 40.0)


def test_clock_and_asyncio_timers_interleave_by_time() -> None:
    clock = SteppedClock()
    log: list[str] = []

    async def via_clock() -> None:
        await clock.sleep(3)
        log.append("clock@3")

    async def via_asyncio() -> None:
        await asyncio.sleep(2)
        log.append("asyncio@2")
        await asyncio.sleep(2)
        log.append("asyncio@4")

    async def main() -> None:
        await asyncio.gather(via_clock(), via_asyncio())

    clock.run(main())
    assert log == ["asyncio@2", "clock@3", "asyncio@4"]


def test_run_until_idle() -> None:
    clock = SteppedClock()
    done: list[float] = []

    async def job(delay: float) -> None:
        await clock.sleep(delay)
        done.append(clock.monotonic())

    async def main() -> bool:
        tasks = [asyncio.create_task(job(d)) for d in (10, 20, 3600)]
        idle = await clock.run_until_idle()
        assert all(t.done() for t in tasks)
        return idle

    assert clock.run(main()) is True
    assert done == [10.0, 20.0, 3600.0]
    assert clock.pending == 0


def test_run_until_idle_time_limit_with_a_periodic_task() -> None:
    clock = SteppedClock()
    ticks: list[float] = []

    async def heartbeat() -> None:
        while True:
            await clock.sleep(30)
            ticks.append(clock.monotonic())

    async def main() -> bool:
        task = asyncio.create_task(heartbeat())
        idle = await clock.run_until_idle(max_seconds=100)
        task.cancel()
        return idle

    assert clock.run(main()) is False
    assert clock.monotonic() == 100.0
    assert ticks == [30.0, 60.0, 90.0]
    assert clock.pending == 0  # the cancelled task's sleep left no timer behind


def test_run_until_idle_needs_the_stepped_loop() -> None:
    clock = SteppedClock()

    async def main() -> None:
        await clock.run_until_idle()

    with pytest.raises(ClockError, match=r"clock\.run"):
        asyncio.run(main())


def test_cancelled_sleep_removes_its_timer() -> None:
    clock = SteppedClock()

    async def main() -> float:
        task = asyncio.create_task(clock.sleep(1000))
        await clock.sleep(1)
        assert clock.pending == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert clock.pending == 0
        await clock.run_until_idle()
        return clock.monotonic()

    assert clock.run(main()) == 1.0


def test_callback_error_in_the_loop_goes_to_the_exception_handler() -> None:
    clock = SteppedClock()
    errors: list[BaseException] = []

    async def main() -> float:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, ctx: errors.append(ctx["exception"])
        )
        clock.call_later(1, lambda: 1 / 0)
        await clock.sleep(2)
        return clock.monotonic()

    assert clock.run(main()) == 2.0
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)


def test_stepped_runs_are_reproducible() -> None:
    def scenario() -> list[tuple[int, float]]:
        clock = SteppedClock()
        log: list[tuple[int, float]] = []

        async def worker(i: int) -> None:
            for k in range(3):
                await clock.sleep((i * 7 + k * 3) % 5 + 0.25)
                log.append((i, clock.monotonic()))

        async def main() -> None:
            await asyncio.gather(*(worker(i) for i in range(6)))

        clock.run(main())
        return log

    assert scenario() == scenario()


def test_time_persists_across_runs() -> None:
    clock = SteppedClock()
    clock.run(clock.sleep(10))
    clock.run(clock.sleep(5))
    assert clock.monotonic() == 15.0


@given(
    st.lists(
        st.tuples(st.floats(0, 1000, allow_nan=False), st.booleans()), min_size=1, max_size=40
    ),
    st.floats(0, 1200, allow_nan=False),
)
def test_property_callbacks_fire_sorted_and_never_early(
    plan: list[tuple[float, bool]], horizon: float
) -> None:
    clock = SteppedClock()
    fired: list[tuple[float, int, float]] = []
    handles = []
    for i, (when, _cancel) in enumerate(plan):
        handles.append(
            clock.call_at(when, lambda i=i, w=when: fired.append((w, i, clock.monotonic())))
        )
    for handle, (_when, cancel) in zip(handles, plan, strict=True):
        if cancel:
            handle.cancel()
    clock.advance(horizon)
    expected = sorted((w, i) for i, (w, c) in enumerate(plan) if not c and w <= horizon)
    assert [(w, i) for w, i, _ in fired] == expected
    assert all(at == w for w, _, at in fired)
    assert clock.monotonic() == horizon
    assert clock.pending == sum(1 for w, c in plan if not c and w > horizon)


def test_real_time_clock_basics() -> None:
    clock = RealTimeClock()
    assert clock.mode is ClockMode.REAL_TIME
    assert clock.now().tzinfo is not None
    with pytest.raises(ClockError, match="stepped"):
        clock.advance(1)
    with pytest.raises(ClockError, match="running asyncio event loop"):
        clock.call_later(0, print)

    async def main() -> list[str]:
        log: list[str] = []
        clock.call_later(0, log.append, "timer")
        await clock.sleep(0)
        assert await clock.run_until_idle(max_seconds=5)
        t0 = clock.monotonic()
        assert clock.monotonic() >= t0
        return log

    assert clock.run(main()) == ["timer"]
    assert clock.pending == 0


def test_real_time_clock_with_fixed_start() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    clock = create_clock(ClockMode.REAL_TIME, start=start)
    assert start <= clock.now() < start + timedelta(minutes=1)
