"""The one clock every simulated component reads time from.

Architecture rule 3: nothing in simulation code calls ``time.time()`` or
``asyncio.sleep()``; it asks the shared clock. That lets one switch decide
whether a rig runs in **stepped** (virtual) time, where a 3-minute outage or a
future-dated activation costs milliseconds, or in **real** time against
hardware.

Stepped mode works by giving asyncio an event loop whose ``time()`` is the
virtual clock and whose selector, instead of blocking when every task waits,
jumps virtual time to the next scheduled event (a clock timer or an asyncio
timer, whichever is earlier). Events at the same instant fire in the order
they were scheduled (FIFO), so runs are reproducible. Real file descriptors are
still polled, but waiting on real I/O or threads in stepped mode does not hold
virtual time back: use real-time mode for rigs with hardware.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import selectors
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Final, TypeVar

T = TypeVar("T")

#: Default start of stepped time: a fixed instant keeps runs reproducible.
DEFAULT_START: Final = datetime(2026, 1, 1, tzinfo=UTC)


class ClockError(RuntimeError):
    """Misuse of the clock: bad durations or times, or an operation the mode lacks."""


class ClockMode(Enum):
    """Stepped = virtual time that jumps over idle periods; real = wall-clock time."""

    STEPPED = "stepped"
    REAL_TIME = "real-time"


def _check_seconds(what: str, seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ClockError(f"{what} must be a number of seconds, got {type(seconds).__name__}")
    value = float(seconds)
    if not math.isfinite(value) or value < 0:
        raise ClockError(f"{what} must be a finite, non-negative number of seconds, got {seconds}")
    return value


def _check_aware(what: str, dt: datetime) -> datetime:
    if not isinstance(dt, datetime):
        raise ClockError(f"{what} must be a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ClockError(f"{what} must be timezone-aware (UTC), got naive {dt.isoformat()}")
    return dt.astimezone(UTC)


class TimerHandle:
    """A scheduled callback; :meth:`cancel` stops it if it has not run yet."""

    __slots__ = ("_args", "_callback", "_cancelled", "_clock", "_done", "_internal", "_seq", "when")

    def __init__(
        self,
        clock: Clock,
        when: float,
        seq: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        internal: bool = False,
    ) -> None:
        self._clock = clock
        self.when = when  #: clock monotonic seconds at which the callback runs
        self._seq = seq
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._done = False
        self._internal = internal

    def __lt__(self, other: TimerHandle) -> bool:
        return (self.when, self._seq) < (other.when, other._seq)

    def cancel(self) -> None:
        """Stop the callback from running; harmless after it ran or was cancelled."""
        if not self._cancelled and not self._done:
            self._cancelled = True
            self._clock._timer_finished(self)

    def cancelled(self) -> bool:
        """True once :meth:`cancel` took effect."""
        return self._cancelled

    def done(self) -> bool:
        """True once the callback ran."""
        return self._done

    def _run(self) -> None:
        self._done = True
        self._clock._timer_finished(self)
        self._callback(*self._args)

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "done" if self._done else "pending"
        name = getattr(self._callback, "__qualname__", repr(self._callback))
        return f"<TimerHandle when={self.when:.6f} {name} {state}>"


class Clock(ABC):
    """Time for simulation code: now, monotonic, sleeps and timers.

    One instance is shared by the DCC emulator, the HAN medium and every
    simulated device of a rig.
    """

    def __init__(self) -> None:
        self._seq = itertools.count()
        self._pending = 0  # scheduled, not cancelled, not run, not internal

    @property
    @abstractmethod
    def mode(self) -> ClockMode:
        """Which of the two modes this clock runs in."""

    @abstractmethod
    def monotonic(self) -> float:
        """Seconds since the clock started; never goes backwards."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""

    @abstractmethod
    def _schedule(self, handle: TimerHandle) -> None:
        """Arrange for ``handle._run()`` at ``handle.when``."""

    @abstractmethod
    def _unschedule(self, handle: TimerHandle) -> None:
        """Forget a cancelled handle (if the mode needs to)."""

    def to_monotonic(self, when: datetime) -> float:
        """Clock monotonic seconds of an aware datetime (may lie in the past)."""
        when = _check_aware("when", when)
        return self.monotonic() + (when - self.now()).total_seconds()

    def to_datetime(self, monotonic: float) -> datetime:
        """Aware UTC datetime of a clock monotonic instant."""
        return self.now() + timedelta(seconds=monotonic - self.monotonic())

    # -- timers --------------------------------------------------------------
    def call_at(
        self, when: float | datetime, callback: Callable[..., object], *args: Any
    ) -> TimerHandle:
        """Run ``callback(*args)`` at ``when`` (monotonic seconds or an aware datetime).

        A time in the past means "as soon as possible", after callbacks already
        due. Same-instant callbacks run in scheduling order.
        """
        return self._call_at(when, callback, args, internal=False)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``delay`` seconds."""
        delay = _check_seconds("delay", delay)
        return self._call_at(self.monotonic() + delay, callback, args, internal=False)

    def _call_at(
        self,
        when: float | datetime,
        callback: Callable[..., object],
        args: tuple[Any, ...],
        *,
        internal: bool,
    ) -> TimerHandle:
        if not callable(callback):
            raise ClockError(f"callback must be callable, got {callback!r}")
        if isinstance(when, datetime):
            at = self.to_monotonic(when)
        elif isinstance(when, bool) or not isinstance(when, int | float):
            raise ClockError(f"when must be monotonic seconds or a datetime, got {when!r}")
        else:
            at = float(when)
            if not math.isfinite(at):
                raise ClockError(f"when must be finite, got {when}")
        at = max(at, self.monotonic())
        handle = TimerHandle(self, at, next(self._seq), callback, args, internal)
        self._schedule(handle)
        if not internal:
            self._pending += 1
        return handle

    def _timer_finished(self, handle: TimerHandle) -> None:
        if not handle._internal:
            self._pending -= 1
        if handle._cancelled:
            self._unschedule(handle)

    @property
    def pending(self) -> int:
        """Number of scheduled callbacks (sleeps included) that have not run yet."""
        return self._pending

    # -- awaitables ------------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of clock time."""
        seconds = _check_seconds("sleep duration", seconds)
        await self._sleep_until(self.monotonic() + seconds)

    async def sleep_until(self, monotonic: float) -> None:
        """Suspend until the clock's monotonic time reaches ``monotonic``."""
        if isinstance(monotonic, bool) or not isinstance(monotonic, int | float):
            raise ClockError(f"monotonic deadline must be a number, got {monotonic!r}")
        if not math.isfinite(monotonic):
            raise ClockError(f"monotonic deadline must be finite, got {monotonic}")
        await self._sleep_until(float(monotonic))

    async def wait_until(self, when: datetime) -> None:
        """Suspend until ``when`` (aware datetime); returns at once if it has passed."""
        await self._sleep_until(self.to_monotonic(when))

    async def _sleep_until(self, at: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        handle = self._call_at(at, _resolve, (future, None), internal=False)
        try:
            await future
        finally:
            handle.cancel()

    @abstractmethod
    async def run_until_idle(self, max_seconds: float | None = None) -> bool:
        """Let every other task run until nothing is scheduled any more.

        Returns True when the system went idle, False when ``max_seconds`` of
        clock time passed first (periodic tasks never go idle).
        """

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """Move time forward, running due callbacks in order (stepped mode only)."""

    @abstractmethod
    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to completion on an event loop that follows this clock."""


def _resolve(future: asyncio.Future[Any], value: object) -> None:
    if not future.done():
        future.set_result(value)


# ---------------------------------------------------------------------------
# Stepped (virtual) time
# ---------------------------------------------------------------------------


#: Cancelled timers tolerated in the stepped clock's heap before it may be compacted.
_HEAP_COMPACT_MIN = 256


class SteppedClock(Clock):
    """Virtual time that only moves when everything waits, or on :meth:`advance`."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        super().__init__()
        self._start = _check_aware("start", start)
        self._now = 0.0
        self._heap: list[TimerHandle] = []
        self._cancelled_in_heap = 0
        self._loop: _SteppedEventLoop | None = None
        self._idle_waiters: list[asyncio.Future[bool]] = []

    @property
    def mode(self) -> ClockMode:
        return ClockMode.STEPPED

    @property
    def start(self) -> datetime:
        """The datetime at monotonic 0."""
        return self._start

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._now)

    def to_datetime(self, monotonic: float) -> datetime:
        return self._start + timedelta(seconds=monotonic)

    def to_monotonic(self, when: datetime) -> float:
        return (_check_aware("when", when) - self._start).total_seconds()

    def _schedule(self, handle: TimerHandle) -> None:
        heapq.heappush(self._heap, handle)

    def _unschedule(self, handle: TimerHandle) -> None:
        # Lazily dropped when it reaches the top; but cancelled long timeouts (a DCC
        # response timer per request) would pile up and slow every push, so once they
        # are most of the heap it is rebuilt without them (in place: callers hold it).
        self._cancelled_in_heap += 1
        heap = self._heap
        if self._cancelled_in_heap > _HEAP_COMPACT_MIN and 2 * self._cancelled_in_heap > len(heap):
            heap[:] = [h for h in heap if not (h._cancelled or h._done)]
            heapq.heapify(heap)
            self._cancelled_in_heap = 0

    def next_event(self) -> float | None:
        """Monotonic time of the next pending callback, or None."""
        heap = self._heap
        while heap and (heap[0]._cancelled or heap[0]._done):
            heapq.heappop(heap)
        return heap[0].when if heap else None

    def _has_user_timers(self) -> bool:
        return self._pending > 0

    def _run_due(self, until: float, *, one_instant: bool) -> None:
        """Run callbacks due by ``until`` in (time, FIFO) order; time follows each one."""
        first: float | None = None
        while True:
            nxt = self.next_event()
            if nxt is None or nxt > until or (one_instant and first is not None and nxt > first):
                break
            handle = heapq.heappop(self._heap)
            first = handle.when if first is None else first
            self._now = max(self._now, handle.when)
            handle._run()

    def advance(self, seconds: float) -> None:
        seconds = _check_seconds("advance", seconds)
        target = self._now + seconds
        self._run_due(target, one_instant=False)
        self._now = max(self._now, target)

    def advance_to(self, when: float | datetime) -> None:
        """Advance to an absolute instant (monotonic seconds or aware datetime)."""
        at = self.to_monotonic(when) if isinstance(when, datetime) else float(when)
        if at < self._now:
            raise ClockError(f"cannot go back in time: {at} < now {self._now}")
        self.advance(at - self._now)

    def _step(self, loop_deadline: float | None) -> bool:
        """Jump to the next event (clock or loop timer); False when nothing is scheduled."""
        nxt = self.next_event()
        candidates = [t for t in (nxt, loop_deadline) if t is not None]
        if not candidates:
            return False
        target = min(candidates)
        if nxt is not None and nxt <= target:
            try:
                self._run_due(nxt, one_instant=True)
            except Exception as exc:  # report like asyncio does for a failing callback
                if self._loop is None:
                    raise
                self._loop.call_exception_handler(
                    {"message": "exception in a clock callback", "exception": exc}
                )
        self._now = max(self._now, target)
        return True

    def _on_idle(self) -> bool:
        """Everything waits and nothing is scheduled: release run_until_idle() waiters."""
        waiters, self._idle_waiters = self._idle_waiters, []
        woke = False
        for fut in waiters:
            if not fut.done():
                fut.set_result(True)
                woke = True
        return woke

    async def run_until_idle(self, max_seconds: float | None = None) -> bool:
        loop = asyncio.get_running_loop()
        if not isinstance(loop, _SteppedEventLoop) or loop.clock is not self:
            raise ClockError(
                "run_until_idle() needs the stepped event loop: run the simulation with "
                "clock.run(main()) (or drive time with clock.advance() instead)"
            )
        future: asyncio.Future[bool] = loop.create_future()
        self._idle_waiters.append(future)
        limit: TimerHandle | None = None
        if max_seconds is not None:
            at = self._now + _check_seconds("max_seconds", max_seconds)
            limit = self._call_at(at, _resolve, (future, False), internal=True)
        try:
            return await future
        finally:
            if limit is not None:
                limit.cancel()
            if future in self._idle_waiters:
                self._idle_waiters.remove(future)

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """An event loop whose time is this clock (one at a time per clock)."""
        return _SteppedEventLoop(self)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
            return runner.run(main)


class _IdleSelector(selectors.BaseSelector):
    """A selector that turns "block until something happens" into a virtual-time jump."""

    def __init__(self, clock: SteppedClock, loop_time: Callable[[], float]) -> None:
        self._inner = selectors.DefaultSelector()
        self._clock = clock
        self._loop_time = loop_time

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        # The loop has nothing ready to run: every task waits.
        clock = self._clock
        if timeout is None and not clock._has_user_timers() and clock._on_idle():
            return []  # idle: run_until_idle() waiters win over their own time limits
        deadline = None if timeout is None else self._loop_time() + timeout
        if clock._step(deadline):
            return []
        # Nothing scheduled anywhere: only real I/O or another thread can wake us.
        return self._inner.select(None)

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()


class _SteppedEventLoop(asyncio.SelectorEventLoop):
    """asyncio loop on virtual time: ``loop.time()``, asyncio.sleep and timeouts follow it."""

    def __init__(self, clock: SteppedClock) -> None:
        if clock._loop is not None and not clock._loop.is_closed():
            raise ClockError("this clock already drives a running event loop")
        self.clock = clock
        super().__init__(selector=_IdleSelector(clock, self.time))
        clock._loop = self

    def time(self) -> float:
        return self.clock._now

    def close(self) -> None:
        super().close()
        if self.clock._loop is self:
            self.clock._loop = None


# ---------------------------------------------------------------------------
# Real time
# ---------------------------------------------------------------------------


class RealTimeClock(Clock):
    """Wall-clock time for rigs with real hardware; same API as the stepped clock."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__()
        self._origin = time.monotonic()
        self._start = None if start is None else _check_aware("start", start)
        self._handles: dict[TimerHandle, asyncio.TimerHandle] = {}
        self._idle_event: asyncio.Event | None = None

    @property
    def mode(self) -> ClockMode:
        return ClockMode.REAL_TIME

    def monotonic(self) -> float:
        return time.monotonic() - self._origin

    def now(self) -> datetime:
        if self._start is None:
            return datetime.now(UTC)
        return self._start + timedelta(seconds=self.monotonic())

    def _schedule(self, handle: TimerHandle) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ClockError("real-time timers need a running asyncio event loop") from None
        delay = max(0.0, handle.when - self.monotonic())
        self._handles[handle] = loop.call_later(delay, self._fire, handle)

    def _fire(self, handle: TimerHandle) -> None:
        self._handles.pop(handle, None)
        if not handle._cancelled:
            handle._run()

    def _unschedule(self, handle: TimerHandle) -> None:
        inner = self._handles.pop(handle, None)
        if inner is not None:
            inner.cancel()

    def _timer_finished(self, handle: TimerHandle) -> None:
        super()._timer_finished(handle)
        if self._pending == 0 and self._idle_event is not None:
            self._idle_event.set()

    async def run_until_idle(self, max_seconds: float | None = None) -> bool:
        if self._idle_event is None:
            self._idle_event = asyncio.Event()
        if self._pending == 0:
            return True
        self._idle_event.clear()
        waiter: Awaitable[Any] = self._idle_event.wait()
        if max_seconds is None:
            await waiter
            return True
        try:
            await asyncio.wait_for(waiter, _check_seconds("max_seconds", max_seconds))
        except TimeoutError:
            return False
        return True

    def advance(self, seconds: float) -> None:
        raise ClockError("advance() needs a stepped clock; real time moves by itself")

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(main)


def create_clock(mode: ClockMode | str = ClockMode.STEPPED, start: datetime | None = None) -> Clock:
    """The rig's clock: stepped (default start 2026-01-01T00:00:00Z) or real time."""
    try:
        mode = ClockMode(mode)
    except ValueError:
        raise ClockError(
            f"unknown clock mode {mode!r} (use {', '.join(m.value for m in ClockMode)})"
        ) from None
    if mode is ClockMode.STEPPED:
        return SteppedClock(DEFAULT_START if start is None else start)
    return RealTimeClock(start)


__all__ = [
    "DEFAULT_START",
    "Clock",
    "ClockError",
    "ClockMode",
    "RealTimeClock",
    "SteppedClock",
    "TimerHandle",
    "create_clock",
]
