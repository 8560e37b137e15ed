"""Device hosting: the default rig split over processes, and the device-host entry point.

The default rig (:mod:`gbhil.rigs.simulated`) can run with some of its always-on
meters in another process:

* the **hub side** (:func:`start_hub_side`, process A) builds the rig on a
  :class:`~gbhil.bus.han_bridge.SharedRealTimeClock` with the remote meters
  replaced by :class:`~gbhil.bus.han_bridge.RemoteNode` stand-ins, puts their
  radios on the medium through a :class:`~gbhil.bus.han_bridge.MediumGateway`
  and serves the trust center; ``rig.start()``, ``rig.send()`` and the mains
  wiring then work as in the all-in-one rig;
* a **device host** (:class:`DeviceHost`, process B, ``python -m
  gbhil.bus.device_host``) builds the same devices from the same PKI seed,
  gives each a :class:`~gbhil.bus.han_bridge.MqttHanTransport`, and obeys the
  rig's node commands (join, mains on/off, leave, stop).

The ESME, the PPMID and the GSME can be hosted elsewhere. The GPF takes its
first copy of the GSME's data at commissioning from the hub process's own
instance of the GSME model (same seed, same clock: the same data), then
follows the remote GSME's reports over the HAN. The HHT stays with the hub:
its local-delivery result is collected in process.

Usage::

    python -m gbhil.bus.device_host --broker 127.0.0.1:1883 --rig bench1 \\
        --run 20260101T000000-1a2b3c4d --rig-seed 4 --devices esme,ppmid
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gbhil.bus.han_bridge import (
    JOIN_TIMEOUT_S,
    OP_JOIN,
    OP_LEAVE,
    OP_POWER,
    OP_STOP,
    OP_WAKE,
    MediumGateway,
    MqttHan,
    RemoteJoiningDevice,
    RemoteNode,
    RemoteTrustCenter,
    SharedRealTimeClock,
    TrustCenterService,
    fetch_clock,
    join_result_meta,
)
from gbhil.bus.mqtt import BusError, BusRpc, MqttBus, Subscription
from gbhil.bus.topics import RunTopics, eui_text
from gbhil.devices.core import Device
from gbhil.devices.registry import device_class
from gbhil.devices.trust import DeviceKeys
from gbhil.firmware.rig_delivery import OP_CHECK_FIRMWARE, SLEEPY
from gbhil.han.network import GsmeNode, MeterNode
from gbhil.rigs.simulated import (
    DEVICE_CHANNELS,
    DEVICES,
    PARTIES,
    SimulatedRig,
    install_code_for,
    rig_keystore,
)
from gbhil.smki import KeyStore

LOG = logging.getLogger(__name__)

#: Devices of the default rig that may run in a device host.
REMOTE_CAPABLE: Final = ("esme", "ppmid", "gsme")
#: State metadata keys (state/<device>).
S_DEVICE: Final = "device"
S_EUI: Final = "eui"
S_HOST: Final = "host"
S_ONLINE: Final = "online"
S_JOINED: Final = "joined"
S_POWERED: Final = "powered"
#: How long (wall seconds) a device host waits for the run's retained clock.
CLOCK_TIMEOUT_S: Final = 10.0
#: How long (wall seconds) the rig waits for device hosts to confirm a stop.
STOP_TIMEOUT_S: Final = 10.0
#: Exit codes of the entry point.
EXIT_OK: Final = 0
EXIT_BUS_ERROR: Final = 2


def check_remote(names: Sequence[str]) -> tuple[str, ...]:
    """Device names a device host may run (no duplicates, only :data:`REMOTE_CAPABLE`)."""
    out: list[str] = []
    for name in names:
        if name not in REMOTE_CAPABLE:
            raise BusError(
                f"device {name!r} cannot be hosted in another process "
                f"(possible: {', '.join(REMOTE_CAPABLE)})"
            )
        if name in out:
            raise BusError(f"device {name!r} named twice")
        out.append(name)
    return tuple(out)


def make_device(name: str, keystore: KeyStore, clock: Any) -> Device:
    eui, kind = DEVICES[name]
    return device_class(kind)(eui, DeviceKeys.from_keystore(eui, keystore, PARTIES), clock)


def _link_peers(keystore: KeyStore, devices: Mapping[str, Device]) -> None:
    """HAN peers: the PPMID and the GSME MAC their PCS commands with device KA keys."""
    for a, b in (("ppmid", "gsme"), ("gsme", "ppmid")):
        if a in devices:
            pub = keystore.ka_public(DEVICES[b][0])
            if pub is not None:
                devices[a].keys.peers_ka[DEVICES[b][0]] = pub


def state_meta(
    name: str, host: str, *, online: bool, joined: bool, powered: bool
) -> dict[str, Any]:
    return {
        S_DEVICE: name,
        S_EUI: eui_text(DEVICES[name][0]),
        S_HOST: host,
        S_ONLINE: online,
        S_JOINED: joined,
        S_POWERED: powered,
    }


# ---------------------------------------------------------------------------
# Process A: the hub side
# ---------------------------------------------------------------------------

_TASKS: set[asyncio.Task[Any]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def build_hub_rig(
    clock: SharedRealTimeClock,
    remote: Mapping[str, RemoteNode],
    *,
    seed: int,
    capture: str | Path | None = None,
    rig_class: type[SimulatedRig] = SimulatedRig,
    **radio: Any,
) -> SimulatedRig:
    """The default rig on the shared real-time ``clock``, with ``remote`` nodes.

    The remote devices still exist here as local objects (``rig.esme``...) with the
    same keys; they are not on the HAN: their radios are stand-ins that a
    :class:`MediumGateway` connects to the broker. ``rig_class`` is a subclass of
    :class:`SimulatedRig` that owns the bus side (gbhil.bus.split_rig); ``radio``
    (``medium``, ``hub_transport``, ``device_channels``) puts the hub on another radio,
    as :meth:`SimulatedRig.build` says (gbhil.bus.split_ezsp: an EZSP NCP).
    """
    return rig_class.build(
        seed=seed,
        capture=capture,
        keystore=rig_keystore(seed),
        clock=clock,
        remote=remote,
        **radio,
    )


@dataclass
class HubSide:
    """Process A of a split rig: the rig, its gateway and trust-center service."""

    rig: SimulatedRig
    gateway: MediumGateway
    trust_center: TrustCenterService
    remote: dict[str, RemoteNode]
    rpc: BusRpc

    async def stop_hosts(
        self, timeout: float = STOP_TIMEOUT_S, names: Sequence[str] | None = None
    ) -> None:
        """Ask the device hosts of the remote nodes (of ``names``) to shut down.

        All at once. A host stops at the first ``stop`` it answers, so a caller that knows
        which nodes share a host names one node per host: a second ``stop`` to the same
        host would wait ``timeout`` for an answer that never comes.
        """
        nodes = [n for name, n in self.remote.items() if names is None or name in names]
        for node in nodes:
            node.timeout = timeout
        results = await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)
        for node, result in zip(nodes, results, strict=True):
            if isinstance(result, BaseException):
                LOG.warning("device host of %s did not confirm stop: %s", node.name, result)

    async def close(self) -> None:
        await self.gateway.close()
        await self.trust_center.close()
        self.rig.close()


async def start_hub_side(
    bus: MqttBus,
    topics: RunTopics,
    clock: SharedRealTimeClock,
    *,
    seed: int,
    remote_devices: Sequence[str],
    capture: str | Path | None = None,
    rpc: BusRpc | None = None,
    rig_class: type[SimulatedRig] = SimulatedRig,
    **radio: Any,
) -> HubSide:
    """Build the rig with ``remote_devices`` hosted elsewhere; serve gateway and trust center.

    ``radio`` goes to :func:`build_hub_rig`. Then ``await side.rig.start()`` commissions
    everything, remote nodes included.
    """
    names = check_remote(remote_devices)
    rpc = rpc or BusRpc(bus)
    remote = {n: RemoteNode(rpc, topics, DEVICES[n][0], n) for n in names}
    rig = build_hub_rig(clock, remote, seed=seed, capture=capture, rig_class=rig_class, **radio)
    channels = {**DEVICE_CHANNELS, **(radio.get("device_channels") or {})}
    gateway = MediumGateway(bus, topics, rig.medium, {DEVICES[n][0]: channels[n] for n in names})
    by_eui = {node.eui: node for node in remote.values()}
    service = TrustCenterService(
        rpc,
        topics,
        rig.hub.trust_center,
        leave_for=lambda eui: by_eui[eui].leave if eui in by_eui else None,
    )
    await gateway.start()
    await service.start()
    return HubSide(rig, gateway, service, remote, rpc)


# ---------------------------------------------------------------------------
# Process B: the device host
# ---------------------------------------------------------------------------


@dataclass
class HostedDevice:
    name: str
    device: Device
    node: MeterNode | GsmeNode
    subscription: Subscription | None = None


@dataclass
class DeviceHost:
    """Runs some meters of a rig in this process, commanded by the rig over the bus."""

    bus: MqttBus
    topics: RunTopics
    seed: int
    names: tuple[str, ...]
    clock_timeout: float = CLOCK_TIMEOUT_S
    clock: SharedRealTimeClock | None = field(default=None, init=False)
    hosted: dict[str, HostedDevice] = field(default_factory=dict, init=False)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _han: MqttHan | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.names = check_remote(self.names)

    async def start(self) -> None:
        """Learn the run's clock, build the devices and answer the rig's commands."""
        self.clock = clock = await fetch_clock(self.bus, self.topics, timeout=self.clock_timeout)
        keystore = rig_keystore(self.seed)
        devices = {n: make_device(n, keystore, clock) for n in self.names}
        _link_peers(keystore, devices)
        self._han = han = MqttHan(self.bus, self.topics)
        await han.start()
        rpc = BusRpc(self.bus, timeout=JOIN_TIMEOUT_S)
        chf_eui = DEVICES["chf"][0]
        trust_center = RemoteTrustCenter(rpc, self.topics, chf_eui)
        for name, device in devices.items():
            eui = device.eui
            transport = han.transport(eui, DEVICE_CHANNELS[name], clock)
            kind = GsmeNode if name == "gsme" else MeterNode
            node = kind(device, transport, clock, install_code=install_code_for(eui))
            node.joining = RemoteJoiningDevice(
                eui, install_code_for(eui), transport, clock, node.joining.role
            )
            hosted = HostedDevice(name, device, node)
            self.hosted[name] = hosted
            hosted.subscription = await rpc.serve(
                self.topics.node_command(eui), self._handlers(hosted, trust_center)
            )
        self.bus.on_connect.append(self.publish_states)
        self.publish_states()

    def _handlers(self, hosted: HostedDevice, trust_center: RemoteTrustCenter) -> dict[str, Any]:
        node = hosted.node

        async def join() -> dict[str, Any]:
            result = await node.join(trust_center)  # type: ignore[arg-type]
            self.publish_states()
            return join_result_meta(result)

        def power(on: bool) -> dict[str, Any]:
            if on:
                node.power_on()
            else:
                node.power_off()
            self.publish_states()
            return {}

        async def leave() -> dict[str, Any]:
            await node.leave()
            self.publish_states()
            return {}

        async def wake() -> dict[str, Any]:
            if not isinstance(node, GsmeNode):
                raise BusError(f"{hosted.name} is not a sleepy device: it has no wake-up")
            report = await node.wake()
            return {"messages": report.messages, "sent": report.sent, "mirrored": report.mirrored}

        def check_firmware(on: bool = True) -> dict[str, Any]:
            # the CSP's delivery (gbhil.firmware.rig_delivery): a sleepy device asks the
            # CHF at its next wake; an always-on one is sent an Image Notify instead
            sleepy = isinstance(node, GsmeNode)
            if sleepy:
                node.check_firmware = on
            return {SLEEPY: sleepy}

        def stop() -> dict[str, Any]:
            self.request_stop()
            return {}

        return {
            OP_JOIN: join,
            OP_POWER: power,
            OP_LEAVE: leave,
            OP_WAKE: wake,
            OP_CHECK_FIRMWARE: check_firmware,
            OP_STOP: stop,
        }

    def publish_states(self, *, online: bool = True) -> None:
        """Each hosted device's state, retained."""
        for hosted in self.hosted.values():
            meta = state_meta(
                hosted.name,
                self.bus.client_id,
                online=online,
                joined=hosted.node.joined,
                powered=hosted.node.powered,
            )
            self.bus.publish(self.topics.state(hosted.name), meta=meta, retain=True)

    def request_stop(self) -> None:
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def close(self) -> None:
        """Say the devices are offline, stop their work, leave the bus's topics."""
        with contextlib.suppress(ValueError):
            self.bus.on_connect.remove(self.publish_states)
        self.publish_states(online=False)
        for hosted in self.hosted.values():
            if hosted.subscription is not None:
                await hosted.subscription.cancel()
            hosted.node.power_off()  # cancels the node's tasks
        if self._han is not None:
            await self._han.close()
        with contextlib.suppress(BusError):
            await self.bus.flush(2.0)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gbhil.bus.device_host",
        description="Run meters of a gbhil rig in this process, connected through MQTT.",
    )
    parser.add_argument("--broker", required=True, help="host:port of the MQTT broker")
    parser.add_argument("--rig", required=True, help="rig name (topic level)")
    parser.add_argument("--run", required=True, help="run ID (topic level)")
    parser.add_argument("--rig-seed", type=int, required=True, help="PKI seed of the rig")
    parser.add_argument(
        "--devices",
        default="esme",
        help=f"comma-separated devices to host ({', '.join(REMOTE_CAPABLE)})",
    )
    parser.add_argument("--client-id", default=None, help="MQTT client ID (default: per process)")
    parser.add_argument(
        "--clock-timeout", type=float, default=CLOCK_TIMEOUT_S, help="wait for the run's clock"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def _amain(args: argparse.Namespace) -> None:
    topics = RunTopics(args.rig, args.run)
    names = tuple(n.strip() for n in args.devices.split(",") if n.strip())
    bus = MqttBus(args.broker, args.client_id, role="devices")
    host = DeviceHost(bus, topics, args.rig_seed, names, clock_timeout=args.clock_timeout)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, host.request_stop)
    try:
        await bus.start()
        await host.start()
        LOG.info("hosting %s for %s", ", ".join(names), topics.prefix)
        await host.wait_stopped()
    finally:
        await host.close()
        # a per-process client ID can never resume its session: do not leave it on the broker
        await bus.close(end_session=args.client_id is None)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s device-host %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(_amain(args))
    except (BusError, ValueError) as exc:
        print(f"device host: {exc}", file=sys.stderr)
        return EXIT_BUS_ERROR
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
