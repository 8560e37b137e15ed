"""A bench stand-in for CI: "an EZSP stick plus meters on the air", in its own process.

Why: the wall-clock bench rig (:mod:`gbhil.rigs.bench_rig`) drives a real stick and real
meters, and CI has neither. This process plays both, in real time: gbhil's EZSP emulator
on a pseudo-terminal (the stick) and simulated meters on the emulator's
:class:`~gbhil.han.medium.SimulatedMedium` (the air around it). The harness only gets
the pty path; it opens it with bellows as it would open ``/dev/ttyUSB0`` and reaches the
meters through ASH, EZSP and the NCP, never through this process's objects.

The meters behave as bench devices do: each keeps trying to join (every
:data:`JOIN_RETRY_S` seconds) through the NCP's own trust centre
(:class:`~gbhil.han.ezsp.emulator.NcpTrustCenter`), which admits a device only with the
link key the host installed for it (``importTransientKey``, from its install code) while
permit joining is open, and reports the join with ``trustCenterJoinHandler``. A meter's
install code is the rig's own (:func:`~gbhil.rigs.simulated.install_code_for`), its keys
and certificates those of the generated rig PKI for ``--seed``.

    python -m gbhil.han.ezsp.bench_standin --seed 7 --devices esme,gsme

prints one JSON line when ready: ``{"port": "/dev/pts/N", "stick_eui": EUI, "devices":
{role: EUI}}`` (no keys, no install codes), then serves until SIGTERM or SIGINT, or with
``--watch-stdin`` until its stdin ends (a parent that dies takes it along).

SIGUSR1 makes every joined meter leave the network (a Zigbee Leave, as after a reset on
the bench); the stick reports each leave to the host (``trustCenterJoinHandler``,
``DEVICE_LEFT``) and the meters then try to join again, which the stick allows once the
host has installed their link keys again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from gbhil.devices.registry import device_class
from gbhil.devices.trust import DeviceKeys
from gbhil.han.channels import PAGE_2_4_GHZ, ChannelError, validate
from gbhil.han.ezsp.emulator import EmulatorConfig, EzspEmulator
from gbhil.han.ezsp.frames import DeviceUpdate, JoinDecision
from gbhil.han.medium import SimulatedMedium
from gbhil.han.network import GsmeNode, MeterNode
from gbhil.han.transport import EUI64_LEN
from gbhil.rigs.simulated import DEVICES, PARTIES, install_code_for, rig_keystore
from gbhil.simulator import RealTimeClock

LOG = logging.getLogger(__name__)

#: Meters the stand-in can put on the air, and the node model of each.
NODE_CLASSES: Final = {"esme": MeterNode, "ppmid": MeterNode, "gsme": GsmeNode}
DEFAULT_DEVICES: Final = ("esme",)
#: How often (wall s) a meter that is not on the HAN tries to join, as bench meters do.
JOIN_RETRY_S: Final = 1.0
#: The stick: EZSP v14, 2.4 GHz channel 11; dual-PHY (sub-GHz page 28 channel 5) with a GSME.
PROTOCOL_VERSION: Final = 14
CHANNEL: Final = 11
SUB_GHZ: Final = (28, 5)
#: The GSME's wake interval on the stand-in (wall s): short, so a test does not wait 30 min.
GSME_WAKE_S: Final = 5.0


class StandinError(ValueError):
    """Bad stand-in arguments (unknown device role, bad channel)."""


@dataclass(frozen=True, slots=True)
class StandinConfig:
    seed: int
    devices: tuple[str, ...] = DEFAULT_DEVICES
    channel: int = CHANNEL
    gsme_wake_s: float = GSME_WAKE_S
    watch_stdin: bool = False
    #: the stick's EUI-64: the rig's CHF unless a test wants a stick that is not the hub's
    stick_eui: bytes = DEVICES["chf"][0]

    def __post_init__(self) -> None:
        unknown = [d for d in self.devices if d not in NODE_CLASSES]
        if unknown or not self.devices:
            raise StandinError(
                f"devices {', '.join(unknown) or '(none)'}: the stand-in plays "
                f"{', '.join(NODE_CLASSES)}"
            )
        if len(set(self.devices)) != len(self.devices):
            raise StandinError(f"devices {', '.join(self.devices)}: each role once")
        if len(self.stick_eui) != EUI64_LEN:
            raise StandinError(f"stick EUI-64 {self.stick_eui.hex()}: 8 octets needed")
        try:
            validate(PAGE_2_4_GHZ, self.channel)
        except ChannelError as exc:
            raise StandinError(str(exc)) from None


class BenchStandin:
    """The stick (emulator on a pty) and the meters on its air; :meth:`start` / :meth:`close`."""

    def __init__(self, config: StandinConfig) -> None:
        self.config = config
        self.clock = RealTimeClock()  # wall-clock UTC, as a meter's own clock runs
        self.medium = SimulatedMedium(self.clock)
        dual = "gsme" in config.devices
        self.emulator = EzspEmulator(  # attached first: the coordinator's short 0x0000
            self.medium,
            EmulatorConfig(
                eui64=config.stick_eui,
                protocol_version=PROTOCOL_VERSION,
                phy_interfaces=2 if dual else 1,
                initial_channel=config.channel,
                sub_ghz_page=SUB_GHZ[0],
                sub_ghz_channel=SUB_GHZ[1],
            ),
        )
        keystore = rig_keystore(config.seed)
        self.nodes: dict[str, Any] = {}
        for role in config.devices:
            eui, kind = DEVICES[role]
            device = device_class(kind)(eui, DeviceKeys.from_keystore(eui, keystore, PARTIES),
                                        self.clock)  # fmt: skip
            channels = [SUB_GHZ] if role == "gsme" else [(PAGE_2_4_GHZ, config.channel)]
            transport = self.medium.attach(eui, channels, joined=False)
            extra: dict[str, Any] = {"wake_interval": config.gsme_wake_s} if role == "gsme" else {}
            self.nodes[role] = NODE_CLASSES[role](
                device, transport, self.clock, install_code=install_code_for(eui), **extra
            )
        self._peers(keystore)
        self._tasks: list[asyncio.Task[None]] = []

    def _peers(self, keystore: Any) -> None:
        """HAN peers MAC their PCS commands with each other's KA keys (PPMID <-> GSME)."""
        for a, b in (("ppmid", "gsme"), ("gsme", "ppmid")):
            if a in self.nodes and b in self.nodes:
                peer = self.nodes[b].device.eui
                pub = keystore.ka_public(peer)
                if pub is not None:
                    self.nodes[a].device.keys.peers_ka[peer] = pub

    def ready_line(self) -> str:
        """The one JSON line the harness reads: the stick's port and who is on the air."""
        devices = {role: node.eui.hex().upper() for role, node in self.nodes.items()}
        stick = self.emulator.config.eui64.hex().upper()
        return json.dumps({"port": self.emulator.port, "stick_eui": stick, "devices": devices})

    async def start(self) -> None:
        await self.emulator.start()
        for role, node in self.nodes.items():
            self._tasks.append(asyncio.create_task(self._keep_joining(role, node)))

    async def _keep_joining(self, role: str, node: Any) -> None:
        """Try to join through the NCP until admitted; after a leave, try again.

        A failed attempt (any error) is logged and retried: a bench meter does not give up.
        """
        while True:
            if not node.joined:
                try:
                    result = await node.join(self.emulator.trust_center)
                except Exception as exc:  # a meter keeps trying, whatever went wrong
                    # the type only: a joining error's text may quote the install code
                    LOG.warning("%s join attempt failed (%s); retrying", role, type(exc).__name__)
                else:
                    if result.accepted:
                        LOG.info("%s %s joined through the NCP", role, node.eui.hex().upper())
                    else:
                        LOG.debug("%s not admitted: %s", role, result.reason)
            await asyncio.sleep(JOIN_RETRY_S)

    async def leave_all(self) -> None:
        """Every joined meter leaves (Zigbee Leave); the stick reports it as an NCP does."""
        for role, node in self.nodes.items():
            if not node.joined:
                continue
            await node.leave()
            self._report_left(node.eui)
            LOG.info("%s %s left the network", role, node.eui.hex().upper())

    def _report_left(self, eui: bytes) -> None:
        """``trustCenterJoinHandler`` with ``DEVICE_LEFT``: how the NCP tells the host."""
        short = next(n.short_address for n in self.medium.nodes if n.eui64 == eui)
        self.emulator.callback(
            "trustCenterJoinHandler",
            {
                "newNodeId": short,
                "newNodeEui64": eui,
                "status": DeviceUpdate.DEVICE_LEFT,
                "policyDecision": JoinDecision.NO_ACTION,
                "parentOfNewNodeId": self.emulator.config.short_address,
            },
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await self.emulator.close()


def parse_args(argv: Sequence[str] | None = None) -> StandinConfig:
    parser = argparse.ArgumentParser(
        prog="python -m gbhil.han.ezsp.bench_standin",
        description="An emulated EZSP stick with simulated meters on its air, in real time.",
    )
    parser.add_argument("--seed", type=int, required=True, help="seed of the generated rig PKI")
    parser.add_argument(
        "--devices",
        default=",".join(DEFAULT_DEVICES),
        help=f"comma-separated meters on the air ({', '.join(NODE_CLASSES)})",
    )
    parser.add_argument("--channel", type=int, default=CHANNEL, help="2.4 GHz channel")
    parser.add_argument("--verbose", action="store_true", help="log joins and refusals")
    parser.add_argument("--watch-stdin", action="store_true", help="stop when stdin ends")
    parser.add_argument(
        "--stick-eui", default=DEVICES["chf"][0].hex(), help="the stick's EUI-64 (hex)"
    )
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    devices = tuple(d.strip() for d in args.devices.split(",") if d.strip())
    try:
        stick = bytes.fromhex(args.stick_eui)
        return StandinConfig(
            args.seed, devices, args.channel, watch_stdin=args.watch_stdin, stick_eui=stick
        )
    except (StandinError, ValueError) as exc:
        parser.error(str(exc))
    raise AssertionError("unreachable")  # parser.error exits


def _stdin_ended(stop: asyncio.Event) -> None:
    try:
        data = os.read(sys.stdin.fileno(), 4096)
    except BlockingIOError:
        return
    if not data:
        stop.set()


async def serve(config: StandinConfig) -> None:
    """Run the stand-in until SIGTERM / SIGINT (or the end of stdin with ``watch_stdin``)."""
    standin = BenchStandin(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.watch_stdin:
        loop.add_reader(sys.stdin.fileno(), _stdin_ended, stop)
    leaving: set[asyncio.Task[None]] = set()

    def leave() -> None:
        task = asyncio.create_task(standin.leave_all())
        leaving.add(task)
        task.add_done_callback(leaving.discard)

    loop.add_signal_handler(signal.SIGUSR1, leave)
    try:
        await standin.start()  # inside: a failing start still closes the emulator's pty
        print(standin.ready_line(), flush=True)
        await stop.wait()
    finally:
        for task in leaving:
            task.cancel()
        await standin.close()


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(serve(parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
