"""The bench power-supply protocol: what a rig may ask of any PSU.

A rig powers CHF, ESME and friends from a PSU, real (a VISA instrument, see
:mod:`.scpi`) or simulated (:mod:`.model`). Tests and suites only ever see
:class:`PsuProtocol`, so the rig file alone decides which one is behind it,
labgrid-style: a tiny abstract protocol, drivers bound to resources.

Everything that can go wrong is a :class:`PsuError` subclass naming the
instrument, the channel and the value, never a bare pyvisa exception.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class PsuError(Exception):
    """Base of every PSU failure; the message names the instrument and what failed."""


class PsuNotAnswering(PsuError):
    """The instrument did not answer in time, or the link to it failed."""


class PsuResourceMissing(PsuNotAnswering):
    """The VISA resource does not exist (unplugged, wrong address, bad name)."""


class PsuIdentityError(PsuError):
    """The instrument is not the one expected (model or serial differs)."""

    def __init__(self, message: str, identity: Identity | None = None) -> None:
        super().__init__(message)
        self.identity = identity  #: who did answer, when known


class PsuUnknownModel(PsuIdentityError):
    """The ``*IDN?`` reply matches no driver in the catalogue."""


class PsuRangeError(PsuError, ValueError):
    """A value is not a finite number within the instrument's range for that channel."""


class PsuChannelError(PsuError, ValueError):
    """The instrument has no such output channel."""


class PsuReplyError(PsuError):
    """The instrument answered something the driver cannot parse."""


class PsuInstrumentError(PsuError):
    """The instrument reported an error in its SCPI error queue after a command."""

    def __init__(self, message: str, code: int, instrument_message: str) -> None:
        super().__init__(message)
        self.code = code  #: SCPI error number, e.g. -222
        self.instrument_message = instrument_message  #: e.g. "Data out of range"


# ---------------------------------------------------------------------------
# What an instrument is and can do
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who answered ``*IDN?``: the four IEEE 488.2 fields plus the raw reply."""

    manufacturer: str
    model: str
    serial: str = ""
    firmware: str = ""
    raw: str = ""

    def __str__(self) -> str:
        parts = (f"s/n {self.serial}" if self.serial else "", self.firmware)
        extra = ", ".join(p for p in parts if p)
        return f"{self.manufacturer} {self.model}" + (f" ({extra})" if extra else "")


@dataclass(frozen=True)
class Range:
    """Closed interval of programmable values of one quantity, in its SI unit."""

    low: float
    high: float
    unit: str

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"bad range {self.low}..{self.high} {self.unit}")

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g} {self.unit}"


@dataclass(frozen=True)
class ChannelSpec:
    """One output: the name the instrument uses for it and its programmable ranges."""

    name: str
    voltage: Range
    current: Range


@dataclass(frozen=True)
class ModelSpec:
    """An instrument model's outputs, as its programming manual gives them.

    ``ganged_output`` marks models whose output switch acts on every channel at
    once (e.g. the E3631A's ``OUTP``), so switching one channel switches all.
    """

    manufacturer: str
    model: str
    channels: Mapping[int, ChannelSpec]
    ganged_output: bool = False
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError(f"{self.model}: a model needs at least one channel")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.channels):
            raise ValueError(f"{self.model}: channel numbers must be integers >= 1")
        object.__setattr__(self, "channels", MappingProxyType(dict(self.channels)))

    @property
    def name(self) -> str:
        """Manufacturer and model, for messages."""
        return f"{self.manufacturer} {self.model}"

    @property
    def channel_numbers(self) -> tuple[int, ...]:
        """The channel numbers, ascending."""
        return tuple(sorted(self.channels))

    def channel(self, channel: object) -> ChannelSpec:
        """The spec of ``channel``, or :class:`PsuChannelError` naming the valid ones."""
        if isinstance(channel, int) and not isinstance(channel, bool) and channel in self.channels:
            return self.channels[channel]
        valid = ", ".join(str(n) for n in self.channel_numbers)
        raise PsuChannelError(f"{self.name} has no channel {channel!r} (channels: {valid})")

    def check_voltage(self, channel: int, volts: object) -> float:
        """``volts`` as a float if ``channel`` can be programmed to it, else a precise error."""
        spec = self.channel(channel)
        return _check(self.name, spec, "voltage", volts, spec.voltage)

    def check_current(self, channel: int, amps: object) -> float:
        """``amps`` as a float if ``channel``'s current limit can be set to it."""
        spec = self.channel(channel)
        return _check(self.name, spec, "current limit", amps, spec.current)


def _check(model: str, spec: ChannelSpec, what: str, value: object, rng: Range) -> float:
    where = f"{model} channel {spec.name}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PsuRangeError(f"{where}: {what} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise PsuRangeError(f"{where}: {what} must be finite, got {value!r}")
    if number not in rng:
        raise PsuRangeError(f"{where}: {what} {number:g} {rng.unit} is outside {rng}")
    return number + 0.0  # folds -0.0 into 0.0 so it never prints as "-0"


def check_switch(on: object) -> bool:
    """``on`` if it is a bool: a truthy string like ``"off"`` must not switch an output on."""
    if not isinstance(on, bool):
        raise TypeError(f"output state must be True or False, got {on!r}")
    return on


# ---------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------


class PsuProtocol(ABC):
    """What a rig may ask of a bench power supply, channel by channel.

    Channels are numbered from 1 as on the front panel; single-output
    supplies have channel 1 only. Setters validate against :attr:`spec`
    before anything is sent, so a refused value leaves the instrument as it
    was.
    """

    @property
    @abstractmethod
    def spec(self) -> ModelSpec:
        """The model's channels and ranges."""

    @property
    def channels(self) -> tuple[int, ...]:
        """The channel numbers this supply has."""
        return self.spec.channel_numbers

    @abstractmethod
    def identify(self) -> Identity:
        """Ask the instrument who it is."""

    @abstractmethod
    def set_output(self, on: bool, channel: int = 1) -> None:
        """Switch an output on or off (all outputs on ganged models)."""

    @abstractmethod
    def output_enabled(self, channel: int = 1) -> bool:
        """Whether an output is on, as the instrument reports it."""

    @abstractmethod
    def set_voltage(self, volts: float, channel: int = 1) -> None:
        """Program the output voltage (the CV set point)."""

    @abstractmethod
    def set_current_limit(self, amps: float, channel: int = 1) -> None:
        """Program the current limit (the CC set point)."""

    @abstractmethod
    def measure_voltage(self, channel: int = 1) -> float:
        """Measured voltage at the output, in volts."""

    @abstractmethod
    def measure_current(self, channel: int = 1) -> float:
        """Measured output current, in amperes."""

    def apply(self, volts: float, amps: float, channel: int = 1) -> None:
        """Program voltage and current limit together; both are checked before either is sent."""
        self.spec.check_voltage(channel, volts)
        self.spec.check_current(channel, amps)
        self.set_current_limit(amps, channel)
        self.set_voltage(volts, channel)


__all__ = [
    "ChannelSpec",
    "Identity",
    "ModelSpec",
    "PsuChannelError",
    "PsuError",
    "PsuIdentityError",
    "PsuInstrumentError",
    "PsuNotAnswering",
    "PsuProtocol",
    "PsuRangeError",
    "PsuReplyError",
    "PsuResourceMissing",
    "PsuUnknownModel",
    "Range",
    "check_switch",
]
