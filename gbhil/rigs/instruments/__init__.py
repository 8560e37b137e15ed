"""Bench instruments: the PSU protocol, its VISA drivers, a behavioural model, a probe.

:data:`SIM_PSU_DEFINITIONS` is the pyvisa-sim file emulating every supported
supply; CI opens it with ``pyvisa.ResourceManager(f"{SIM_PSU_DEFINITIONS}@sim")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from .psu import (
    ChannelSpec,
    Identity,
    ModelSpec,
    PsuChannelError,
    PsuError,
    PsuIdentityError,
    PsuInstrumentError,
    PsuNotAnswering,
    PsuProtocol,
    PsuRangeError,
    PsuReplyError,
    PsuResourceMissing,
    PsuUnknownModel,
    Range,
)

#: pyvisa-sim definitions of the supported supplies (shipped as package data).
SIM_PSU_DEFINITIONS: Final = Path(__file__).resolve().parent / "sim" / "psu.yaml"

__all__ = [
    "SIM_PSU_DEFINITIONS",
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
]
