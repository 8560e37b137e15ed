"""Virtual time for a rig whose hub talks to its NCP over a pseudo-terminal.

Why: the stepped clock (:class:`gbhil.simulator.SteppedClock`) jumps to the
next timer as soon as nothing on its loop is ready. bellows (with
``use_thread = False``) and the EZSP emulator can share that loop, and so
keep virtual time, only if "nothing is ready" really means "everybody
waits". Measured on Linux 6.x, two things break that with the stock loop:

* **epoll and ptys.** A byte written to one end of a pty reaches the other
  end's line discipline through a kernel work queue (``flush_to_ldisc``), so
  an epoll wait with timeout 0 right after the write often reports nothing;
  the stepped loop then jumps virtual time (1.6 s ASH ACK timeout, 2.5 s
  reset timeout) and bellows gives up. ``poll()`` asks the tty driver
  directly (``n_tty_poll`` flushes pending input first), so with a
  :class:`selectors.PollSelector` a pty is ready as soon as the peer wrote,
  like a loopback socket.
* **Executor jobs.** serialx opens and closes the port with ``os.open`` /
  ``os.close`` in the default executor. While such a job runs nothing is
  ready on the loop, yet the program is not idle: virtual time must not move.
  The loop counts jobs in flight and, while there are any, waits for real.

:class:`SerialSteppedClock` is a :class:`SteppedClock` whose loop does both;
everything else (timers, ``run_until_idle``, ``advance``) is unchanged.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Final, TypeVar

from gbhil.simulator.clock import ClockError, SteppedClock, _IdleSelector, _SteppedEventLoop

T = TypeVar("T")

#: Real seconds between checks while an executor job runs (it wakes the loop when done).
EXECUTOR_WAIT_S: Final = 0.05


class _PollIdleSelector(_IdleSelector):
    """The stepped selector on poll(2), standing still while executor jobs run."""

    def __init__(self, clock: SteppedClock, loop: _SerialSteppedLoop) -> None:
        super().__init__(clock, loop.time)
        self._inner.close()
        self._inner = selectors.PollSelector()
        self._loop_ref = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._loop_ref.executor_jobs:
            # A thread works for the loop: virtual time stands still until it is done.
            wait = EXECUTOR_WAIT_S if timeout is None else min(timeout, EXECUTOR_WAIT_S)
            return self._inner.select(max(wait, 0.0))
        return super().select(timeout)


class _SerialSteppedLoop(_SteppedEventLoop):
    """A stepped event loop safe for pty I/O and executor jobs (see the module docstring)."""

    def __init__(self, clock: SteppedClock) -> None:
        if clock._loop is not None and not clock._loop.is_closed():
            raise ClockError("this clock already drives a running event loop")
        self.clock = clock
        self.executor_jobs = 0
        asyncio.SelectorEventLoop.__init__(self, selector=_PollIdleSelector(clock, self))
        clock._loop = self

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.executor_jobs += 1
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, _future: asyncio.Future[Any]) -> None:
        self.executor_jobs -= 1


class SerialSteppedClock(SteppedClock):
    """A stepped clock whose event loop can serve a pty to bellows in virtual time."""

    #: The EZSP emulator accepts this clock although it is not real time.
    serial_safe: Final = True

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _SerialSteppedLoop(self)


__all__ = ["EXECUTOR_WAIT_S", "SerialSteppedClock"]
