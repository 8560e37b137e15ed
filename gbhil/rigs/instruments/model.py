"""A behavioural PSU for the all-simulated rig: no VISA, same protocol as the drivers.

pyvisa-sim checks that a driver speaks its instrument's language, but its
properties are independent (a measurement cannot follow the output switch).
Power-outage scenarios need the physics instead: switching the output off
must tell the simulated CHF/ESME power model that mains went away, and when.
:class:`SimulatedPsu` does that: listeners subscribed with :meth:`subscribe`
are called as ``listener(on, at)`` on every output change, with ``at`` taken
from the rig's shared clock (never from ``time.time()``). A simple load model
(a resistance in parallel with a constant-current sink) gives CV/CC
behaviour for the measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Final, Protocol

from .psu import ChannelSpec, Identity, ModelSpec, PsuProtocol, Range, check_switch


class ClockLike(Protocol):
    """What the model needs of :class:`gbhil.simulator.clock.Clock`."""

    def now(self) -> datetime:
        """Current time, aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds since the clock started."""
        ...


#: A listener gets the new output state and the clock time it changed at.
OutputListener = Callable[[bool, datetime], object]

#: GB nominal single-phase mains and its statutory upper limit (ESQCR: 230 V +10 %/-6 %).
MAINS_NOMINAL_V: Final = 230.0
MAINS_MAX_V: Final = 253.0
#: Largest GB domestic service fuse; the simulated mains never limits a meter.
MAINS_MAX_A: Final = 100.0

#: The mains feed of a simulated CHF or ESME, as one output channel.
MAINS_SPEC: Final = ModelSpec(
    "gbhil",
    "SIM-MAINS",
    {1: ChannelSpec("L", Range(0.0, MAINS_MAX_V, "V"), Range(0.0, MAINS_MAX_A, "A"))},
    notes="behavioural mains supply for the all-simulated rig",
)


class Regulation(Enum):
    """What the output is doing: off, holding voltage (CV) or limiting current (CC)."""

    OFF = "off"
    CV = "constant voltage"
    CC = "constant current"


@dataclass(frozen=True)
class Load:
    """What hangs on an output: a resistance in parallel with a constant-current sink.

    The defaults are an open circuit. Current is drawn only while the output
    voltage is not zero; it is reported as a magnitude, also on negative
    channels.
    """

    resistance_ohms: float = math.inf
    current_a: float = 0.0

    def __post_init__(self) -> None:
        if not (self.resistance_ohms > 0):  # also rejects NaN
            raise ValueError(f"load resistance must be > 0 ohm, got {self.resistance_ohms}")
        if not (math.isfinite(self.current_a) and self.current_a >= 0):
            raise ValueError(f"load current must be finite and >= 0 A, got {self.current_a}")

    def draw(self, volts: float) -> float:
        """Current the load takes at ``volts`` (magnitude)."""
        magnitude = abs(volts)
        if magnitude == 0:
            return 0.0
        return magnitude / self.resistance_ohms + self.current_a


@dataclass(frozen=True)
class OutputEvent:
    """One output change, for assertions on power-cut choreography."""

    channel: int
    on: bool
    at: datetime
    monotonic: float


@dataclass
class _Output:
    voltage: float
    current_limit: float
    on: bool = False
    load: Load = field(default_factory=Load)
    listeners: list[OutputListener] = field(default_factory=list)


class SimulatedPsu(PsuProtocol):
    """A PSU made of state, a load model and the shared clock.

    Any :class:`~gbhil.rigs.instruments.psu.ModelSpec` works: :data:`MAINS_SPEC`
    for the mains feed, or a catalogue model's spec to stand in for a bench
    supply with the same channels and ranges. Outputs start off, at 0 V, with
    the current limit at the channel's maximum.
    """

    def __init__(
        self,
        clock: ClockLike,
        spec: ModelSpec = MAINS_SPEC,
        *,
        name: str = "sim-psu",
        loads: Mapping[int, Load] | None = None,
    ) -> None:
        self._clock = clock
        self._spec = spec
        self.name = name
        self._outputs = {
            n: _Output(voltage=0.0, current_limit=ch.current.high)
            for n, ch in spec.channels.items()
        }
        self._events: list[OutputEvent] = []
        for channel, load in (loads or {}).items():
            self.set_load(load, channel)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def events(self) -> tuple[OutputEvent, ...]:
        """Every output change so far, oldest first."""
        return tuple(self._events)

    def __repr__(self) -> str:
        return f"<SimulatedPsu {self.name} {self._spec.name}>"

    # -- listeners -----------------------------------------------------------
    def subscribe(self, listener: OutputListener, channel: int = 1) -> Callable[[], None]:
        """Call ``listener(on, at)`` whenever ``channel``'s output switches.

        Returns a function that unsubscribes. Listeners run in subscription
        order, after the new state is in place, so they may read it back.
        """
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        listeners = self._output(channel).listeners
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    # -- protocol ------------------------------------------------------------
    def identify(self) -> Identity:
        spec = self._spec
        return Identity(spec.manufacturer, spec.model, self.name, "behavioural model")

    def set_output(self, on: bool, channel: int = 1) -> None:
        """Switch ``channel`` (all channels on ganged models); listeners hear only real changes."""
        state = check_switch(on)
        self._spec.channel(channel)
        targets = self.channels if self._spec.ganged_output else (channel,)
        changed = [n for n in targets if self._outputs[n].on != state]
        if not changed:
            return
        at, mono = self._clock.now(), self._clock.monotonic()
        for n in changed:
            self._outputs[n].on = state
            self._events.append(OutputEvent(n, state, at, mono))
        errors: list[Exception] = []
        for n in changed:
            for listener in list(self._outputs[n].listeners):
                try:
                    listener(state, at)
                except Exception as exc:  # every listener hears the change; failures reported after
                    errors.append(exc)
        if errors:
            raise ExceptionGroup(
                f"{self.name}: {len(errors)} output listener(s) failed on switching "
                f"{'on' if state else 'off'} at {at.isoformat()}",
                errors,
            )

    def output_enabled(self, channel: int = 1) -> bool:
        return self._output(channel).on

    def set_voltage(self, volts: float, channel: int = 1) -> None:
        self._output(channel).voltage = self._spec.check_voltage(channel, volts)

    def set_current_limit(self, amps: float, channel: int = 1) -> None:
        self._output(channel).current_limit = self._spec.check_current(channel, amps)

    def measure_voltage(self, channel: int = 1) -> float:
        return self._solve(channel)[0]

    def measure_current(self, channel: int = 1) -> float:
        return self._solve(channel)[1]

    # -- model ---------------------------------------------------------------
    def set_load(self, load: Load, channel: int = 1) -> None:
        """Change what hangs on ``channel`` (a meter's relay closing, a short...)."""
        if not isinstance(load, Load):
            raise TypeError(f"load must be a Load, got {load!r}")
        self._output(channel).load = load

    def load(self, channel: int = 1) -> Load:
        """What hangs on ``channel``."""
        return self._output(channel).load

    def set_point(self, channel: int = 1) -> tuple[float, float]:
        """Programmed (voltage, current limit) of ``channel``."""
        out = self._output(channel)
        return out.voltage, out.current_limit

    def regulation(self, channel: int = 1) -> Regulation:
        """Whether ``channel`` is off, in CV or in CC with its present load."""
        return self._solve(channel)[2]

    def _output(self, channel: int) -> _Output:
        self._spec.channel(channel)  # precise PsuChannelError for a bad channel
        return self._outputs[channel]

    def _solve(self, channel: int) -> tuple[float, float, Regulation]:
        """Operating point: CV while the load takes no more than the limit, else CC."""
        out = self._output(channel)
        if not out.on:
            return 0.0, 0.0, Regulation.OFF
        demand = out.load.draw(out.voltage)
        if demand <= out.current_limit:
            return out.voltage, demand, Regulation.CV
        # CC: the voltage falls until the load takes exactly the limit.
        headroom = max(out.current_limit - out.load.current_a, 0.0)
        if headroom == 0:  # the sink alone exceeds the limit: the output collapses
            magnitude = 0.0
        else:
            magnitude = min(headroom * out.load.resistance_ohms, abs(out.voltage))
        return math.copysign(magnitude, out.voltage) + 0.0, out.current_limit, Regulation.CC


def mains_supply(
    clock: ClockLike, *, name: str = "mains", load: Load | None = None, on: bool = False
) -> SimulatedPsu:
    """The mains feed of a simulated device: 230 V programmed, output ``on`` or off."""
    psu = SimulatedPsu(clock, MAINS_SPEC, name=name, loads={1: load or Load()})
    psu.set_voltage(MAINS_NOMINAL_V)
    if on:
        psu.set_output(True)
    return psu


__all__ = [
    "MAINS_MAX_A",
    "MAINS_MAX_V",
    "MAINS_NOMINAL_V",
    "MAINS_SPEC",
    "ClockLike",
    "Load",
    "OutputEvent",
    "OutputListener",
    "Regulation",
    "SimulatedPsu",
    "mains_supply",
]
