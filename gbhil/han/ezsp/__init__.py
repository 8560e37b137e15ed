"""Real radios: EZSP network co-processors (Silicon Labs EmberZNet) over ASH.

* :mod:`gbhil.han.ezsp.ash` — the ASH serial framing codec.
* :mod:`gbhil.han.ezsp.frames` — EZSP headers and the command catalogue.
* :mod:`gbhil.han.ezsp.emulator` — an EZSP NCP on a pseudo-terminal, attached
  to the simulated medium, for CI without hardware.
* :mod:`gbhil.han.ezsp.radio` — :class:`EzspRadio`, the :class:`HanTransport`
  on a real (or emulated) stick through bellows/zigpy.
* :mod:`gbhil.han.ezsp.probe` — ``probe_radio`` for ``gbhil rig check``.

bellows and zigpy are imported only by :mod:`~gbhil.han.ezsp.radio`, so the
codec, the emulator and the probe work without them.
"""

from gbhil.han.ezsp.ash import AshError
from gbhil.han.ezsp.emulator import EmulatorConfig, EmulatorError, EzspEmulator
from gbhil.han.ezsp.frames import MIN_PROTOCOL_VERSION, EzspError, EzspFrameError
from gbhil.han.ezsp.probe import (
    ProbeFinding,
    ProbeProblem,
    ProbeResult,
    RadioExpectation,
    probe_radio,
)

__all__ = [
    "MIN_PROTOCOL_VERSION",
    "AshError",
    "EmulatorConfig",
    "EmulatorError",
    "EzspEmulator",
    "EzspError",
    "EzspFrameError",
    "ProbeFinding",
    "ProbeProblem",
    "ProbeResult",
    "RadioExpectation",
    "probe_radio",
]
