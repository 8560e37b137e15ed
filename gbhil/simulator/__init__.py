"""Simulation infrastructure shared by every simulated part of a rig: the clock first."""

from gbhil.simulator.clock import (
    DEFAULT_START,
    Clock,
    ClockError,
    ClockMode,
    RealTimeClock,
    SteppedClock,
    TimerHandle,
    create_clock,
)

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
