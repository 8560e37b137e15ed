"""A VISA supply as a rig's mains: its output switch becomes power events.

Why: the all-simulated rig's mains (:class:`.model.SimulatedPsu`) tells the
hub's power model when its output goes off or on. A real bench supply (or
its pyvisa-sim double in CI) knows nothing of the rig, so
:class:`ObservedPsu` wraps its driver: every :meth:`set_output` is sent to
the instrument, the state is read back from it (the instrument is the
truth), and on a change the listeners are called as ``listener(on, at)``
with ``at`` from the rig's clock, exactly like the behavioural model.
Everything else goes straight to the driver.
"""

from __future__ import annotations

from collections.abc import Callable

from .model import ClockLike, OutputListener
from .psu import Identity, ModelSpec, PsuError, PsuProtocol, check_switch


class ObservedPsu(PsuProtocol):
    """``inner`` (any PSU driver) with output listeners; see the module docstring."""

    def __init__(
        self,
        inner: PsuProtocol,
        clock: ClockLike,
        *,
        name: str = "",
        release: Callable[[], object] | None = None,
    ) -> None:
        self.inner = inner
        self.release = release  #: also called by close(), e.g. the VISA ResourceManager's
        self.clock = clock
        self.name = name or str(inner)
        self._listeners: dict[int, list[OutputListener]] = {}
        self._known: dict[int, bool] = {}

    def __repr__(self) -> str:
        return f"ObservedPsu({self.name!r}, {self.inner!r})"

    @property
    def spec(self) -> ModelSpec:
        return self.inner.spec

    def subscribe(self, listener: OutputListener, channel: int = 1) -> Callable[[], None]:
        """Call ``listener(on, at)`` whenever ``channel``'s output changes state."""
        self.spec.channel(channel)
        self._known.setdefault(channel, self.inner.output_enabled(channel))
        self._listeners.setdefault(channel, []).append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners.get(channel, []):
                self._listeners[channel].remove(listener)

        return unsubscribe

    def identify(self) -> Identity:
        return self.inner.identify()

    def set_output(self, on: bool, channel: int = 1) -> None:
        check_switch(on)
        self.inner.set_output(on, channel)
        at = self.clock.now()
        watched = self.spec.channel_numbers if self.spec.ganged_output else (channel,)
        for number in watched:
            if number not in self._listeners:
                continue
            state = self.inner.output_enabled(number)
            if number == channel and state is not on:
                raise PsuError(
                    f"{self.name}: output {channel} reads {'on' if state else 'off'} after "
                    f"switching it {'on' if on else 'off'}"
                )
            if state is not self._known.get(number):
                self._known[number] = state
                for listener in tuple(self._listeners[number]):
                    listener(state, at)

    def output_enabled(self, channel: int = 1) -> bool:
        return self.inner.output_enabled(channel)

    def set_voltage(self, volts: float, channel: int = 1) -> None:
        self.inner.set_voltage(volts, channel)

    def set_current_limit(self, amps: float, channel: int = 1) -> None:
        self.inner.set_current_limit(amps, channel)

    def measure_voltage(self, channel: int = 1) -> float:
        return self.inner.measure_voltage(channel)

    def measure_current(self, channel: int = 1) -> float:
        return self.inner.measure_current(channel)

    def close(self) -> None:
        """Release the instrument (VISA drivers hold a session)."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
        if self.release is not None:
            self.release()
            self.release = None


__all__ = ["ObservedPsu"]
