"""The split rig with the hub behind an emulated EZSP NCP: MQTT bus and EZSP radio together.

Why: issue 5 asks the suites to pass on a rig whose devices sit behind the MQTT bus *and*
the emulated EZSP radio. Here the Comms Hub's transport is an
:class:`~gbhil.han.ezsp.radio.EzspRadio` that the unmodified bellows stack opens on the pty
of an :class:`~gbhil.han.ezsp.emulator.EzspEmulator` in the harness's process; the
emulator is the NCP node of the hub process's :class:`~gbhil.han.medium.SimulatedMedium`,
which the split rig's :class:`~gbhil.bus.han_bridge.MediumGateway` bridges to the broker,
so the meters in ``python -m gbhil.bus.device_host`` children reach the hub through
Mosquitto, the medium, the emulator, ASH/EZSP and bellows.

Time: every process runs the shared real-time clock at ``rate`` times real time. bellows'
own timeouts (ASH acknowledgement and retransmission, EZSP command answers) are asyncio
wall-clock timers, so the emulator's ASH acknowledgement timer is stretched by ``rate`` to
stay the same number of wall seconds as bellows' (a ``t_rx_ack`` of 1.6 rig seconds would
be 40 ms of wall time at rate 40: retransmissions under the slightest CPU load).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from gbhil.bus.han_bridge import SharedRealTimeClock
from gbhil.bus.split_rig import SplitRig, SplitRigError
from gbhil.han.ezsp.emulator import EmulatorConfig, EzspEmulator
from gbhil.han.ezsp.radio import PERMIT_S, EzspRadio, RadioSettings
from gbhil.han.medium import SimulatedMedium
from gbhil.rigs.simulated import SimulatedRig

#: How long (wall seconds) bellows may take to handle the NCP's join reports, and the poll.
JOIN_REPORT_TIMEOUT_S: Final = 10.0
JOIN_REPORT_POLL_S: Final = 0.02


@dataclass(frozen=True, slots=True)
class EzspPlan:
    """The emulated stick of the hub: what gbhil.rigs.build derives from the rig file."""

    place: str
    config: EmulatorConfig
    #: 2.4 GHz channel of the network bellows forms, and the sub-GHz (page, channel) if any
    channel: int
    sub_ghz: tuple[int, int] | None
    #: device name -> (page, channel) list it listens on (the place's bands)
    device_channels: Mapping[str, list[tuple[int, int]]]


@dataclass(slots=True)
class SplitEzspRig(SplitRig):
    """A :class:`SplitRig` whose hub reaches the medium through bellows and the emulated NCP."""

    radio: EzspRadio | None = None
    emulator: EzspEmulator | None = None
    place: str = ""

    async def start(self) -> None:
        """Commission as the split rig does, then tell bellows of every joined device.

        Permit joining is opened for the joins and again before the NCP's join reports:
        at a high clock rate the remote joins may outlast one window.
        """
        if self.started:
            return
        assert self.radio is not None and self.emulator is not None
        await self.radio.permit(PERMIT_S)
        await SimulatedRig.start(self)
        await self.radio.permit(PERMIT_S)
        joined = self._joined()
        for eui in joined:
            self.emulator.announce_join(eui)
        await self._until_bellows_knows(joined)

    def _joined(self) -> list[bytes]:
        out = []
        for node in (*self.nodes.values(), self.hht):
            result = getattr(node, "last_result", None)  # RemoteNode: the host's answer
            if getattr(node, "joined", False) or (result is not None and result.accepted):
                out.append(bytes(node.eui))
        return out

    async def _until_bellows_knows(self, euis: list[bytes]) -> None:
        assert self.radio is not None
        deadline = time.monotonic() + JOIN_REPORT_TIMEOUT_S
        while True:
            known = self.radio.known_euis()
            missing = [e for e in euis if e not in known]
            if not missing:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(e.hex().upper() for e in missing)
                raise SplitRigError(f"bellows was not told of the join of {names}")
            await self.clock.sleep(JOIN_REPORT_POLL_S * self._rate)

    @property
    def _rate(self) -> float:
        return float(getattr(self.clock, "rate", 1.0))

    async def _shutdown(self) -> None:
        """Radio, emulator, then the split rig: each closed even if one before it raised."""
        radio, emulator = self.radio, self.emulator
        self.radio = self.emulator = None
        try:
            if radio is not None:
                await radio.close()
        finally:
            try:
                if emulator is not None:
                    await emulator.close()
            finally:
                await SplitRig._shutdown(self)


async def open_hub_radio(
    plan: EzspPlan, clock: SharedRealTimeClock, made: list[Any]
) -> tuple[dict[str, Any], EzspEmulator]:
    """Medium, emulator (its first node) and bellows on its pty: ``start_hub_side``
    arguments, and the emulator.

    What is opened goes into ``made`` so a failure later is cleaned up by the caller.
    """
    medium = SimulatedMedium(clock)
    config = replace(plan.config, t_rx_ack=plan.config.t_rx_ack * clock.rate)
    emulator = EzspEmulator(medium, config)  # attached first: the coordinator's short 0x0000
    made.append(emulator)
    await emulator.start()
    settings = RadioSettings(emulator.port, channel=plan.channel, use_thread=False)
    radio = await EzspRadio.open(settings, clock=clock)
    made.append(radio)
    if plan.sub_ghz is not None:
        await radio.set_channel(*plan.sub_ghz)
    build = {
        "medium": medium,
        "hub_transport": radio,
        "device_channels": {k: list(v) for k, v in plan.device_channels.items()},
    }
    return build, emulator


__all__ = ["EzspPlan", "SplitEzspRig", "open_hub_radio"]
