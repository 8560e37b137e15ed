"""The embedded default rig: every device simulated, on a dual-band simulated HAN.

One Comms Hub (CHF + GPF, radios on 2.4 GHz and sub-GHz), an ESME and a PPMID
on 2.4 GHz, a GSME on sub-GHz, and an HHT; a freshly generated test PKI (or a
fixed seed), the shared stepped clock, and the mains as a behavioural PSU that
feeds the hub and the ESME.  The WAN side is two callbacks: GBCS messages the
hub sends up, and power events of the hub (the CSP's last gasp) from which
the DCC raises AD1.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from gbhil.devices.chf import Chf, DeviceLogEntry
from gbhil.devices.core import Device, DeviceType
from gbhil.devices.registry import device_class
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs.security import SecurityContext
from gbhil.han import PcapWriter, SimulatedMedium
from gbhil.han.joining import with_crc
from gbhil.han.network import Delivery, GsmeNode, HhtNode, HubNode, MeterNode
from gbhil.han.transport import HanTransport
from gbhil.rigs.instruments.model import SimulatedPsu, mains_supply
from gbhil.simulator import SteppedClock
from gbhil.smki import KeyStore, generate_pki

#: Remote parties of the default rig: the RTDS / ZAZ1 identities users know.
PARTIES: dict[Role, bytes] = {
    Role.RECOVERY: bytes.fromhex("90B3D51F30000001"),
    Role.SUPPLIER: bytes.fromhex("90B3D51F30010000"),
    Role.NETWORK_OPERATOR: bytes.fromhex("90B3D51F30020000"),
    Role.ACB: bytes.fromhex("90B3D51F30000002"),
    Role.TRANSITIONAL_COS: bytes.fromhex("90B3D51F30000004"),
    Role.WAN_PROVIDER: bytes.fromhex("90B3D51F30000007"),
    Role.LOAD_CONTROLLER: bytes.fromhex("90B3D51F30010008"),
}
ROLE_NAMES: dict[Role, str] = {
    Role.RECOVERY: "recovery",
    Role.SUPPLIER: "supplier",
    Role.NETWORK_OPERATOR: "network_operator",
    Role.ACB: "acb",
    Role.TRANSITIONAL_COS: "transitional_cos",
    Role.WAN_PROVIDER: "wan_provider",
    Role.LOAD_CONTROLLER: "load_controller",
}
#: Devices of the default rig (RTDS device identities, plus an HHT).
DEVICES: dict[str, tuple[bytes, DeviceType]] = {
    "esme": (bytes.fromhex("00DB1234567890A0"), DeviceType.ESME),
    "gsme": (bytes.fromhex("00DB1234567890A1"), DeviceType.GSME),
    "chf": (bytes.fromhex("00DB1234567890A2"), DeviceType.CHF),
    "gpf": (bytes.fromhex("00DB1234567890A3"), DeviceType.GPF),
    "ppmid": (bytes.fromhex("00DB1234567890A4"), DeviceType.PPMID),
    "hht": (bytes.fromhex("00DB1234567890A7"), DeviceType.HHT),
}
#: Radios: page 0 = 2.4 GHz; page 28 = GB sub-GHz.
HUB_CHANNELS = [(0, 11), (28, 5)]
DEVICE_CHANNELS: dict[str, list[tuple[int, int]]] = {
    "esme": [(0, 11)],
    "ppmid": [(0, 11)],
    "hht": [(0, 11)],
    "gsme": [(28, 5)],
}
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
#: Join window opened at commissioning (class 104 join timeout), seconds.
COMMISSIONING_JOIN_TIMEOUT = 3600


class PowerEvent(Enum):
    OUTAGE = "outage"
    RESTORED = "restored"


@dataclass(slots=True)
class HubPowerEvent:
    """What the Comms Hub tells the WAN side when mains fails or returns."""

    kind: PowerEvent
    chf: bytes
    at: datetime


WanSink = Callable[[bytes], Any]
PowerSink = Callable[[HubPowerEvent], Any]


def rig_keystore(seed: int | None) -> KeyStore:
    """The default rig's PKI for ``seed``: every process of a split rig derives the same one."""
    orgs = {ROLE_NAMES[r]: e.hex() for r, e in PARTIES.items()}
    devs = {e.hex(): t.value for e, t in DEVICES.values()}
    return generate_pki(None, organisations=orgs, devices=devs, seed=seed).keystore


def install_code_for(eui: bytes) -> bytes:
    """A deterministic 16-octet install code (+CRC) per device: the rig's own values."""
    return with_crc(hashlib.sha256(b"gbhil install code" + eui).digest()[:16])


@dataclass(slots=True)
class SimulatedRig:
    """Everything of the default rig; build it with :meth:`build`, then ``await start()``."""

    clock: SteppedClock
    keystore: KeyStore
    medium: SimulatedMedium
    chf: Chf
    gpf: Device
    esme: Device
    gsme: Device
    ppmid: Device
    hub: HubNode
    nodes: dict[str, Any]
    hht: HhtNode
    mains: SimulatedPsu
    wan: list[bytes] = field(default_factory=list)
    power_events: list[HubPowerEvent] = field(default_factory=list)
    on_wan: WanSink | None = None
    on_power: PowerSink | None = None
    capture: PcapWriter | None = None
    started: bool = False
    _loop: asyncio.AbstractEventLoop | None = None

    @property
    def dcc(self) -> SecurityContext:
        """The DCC's view (ACB and every User key of the rig PKI) for building commands."""
        return SecurityContext(self.keystore, PARTIES[Role.ACB])

    def devices(self) -> dict[str, Device]:
        return {"chf": self.chf, "gpf": self.gpf, "esme": self.esme, "gsme": self.gsme,
                "ppmid": self.ppmid}  # fmt: skip

    @classmethod
    def build(
        cls,
        *,
        seed: int | None = 1,
        start: datetime = DEFAULT_START,
        capture: str | Path | None = None,
        keystore: KeyStore | None = None,
        clock: Any = None,
        remote: Mapping[str, Any] | None = None,
        medium: SimulatedMedium | None = None,
        hub_transport: HanTransport | None = None,
        device_channels: Mapping[str, list[tuple[int, int]]] | None = None,
    ) -> SimulatedRig:
        """Build the rig; ``clock`` defaults to a stepped clock at ``start``.

        ``remote`` maps device names ("esme", "ppmid", "gsme") to node objects that
        run elsewhere (gbhil.bus): the rig attaches a stand-in radio for each, in the
        same order as local nodes so short addresses match, and uses the given node.

        ``medium``, ``hub_transport`` and ``device_channels`` let another builder
        (gbhil.rigs.ezsp_rig) put the hub on another radio, e.g. an EZSP NCP that is
        itself a node of ``medium``, with the devices on that radio's channels.
        """
        clock = SteppedClock(start) if clock is None else clock
        remote = remote or {}
        channels = {**DEVICE_CHANNELS, **(device_channels or {})}
        if keystore is None:
            keystore = rig_keystore(seed)
        if medium is None:
            medium = SimulatedMedium(clock)
        writer = PcapWriter(capture) if capture is not None else None
        if writer is not None:
            medium.add_tap(writer)

        def make(name: str) -> Device:
            eui, kind = DEVICES[name]
            keys = DeviceKeys.from_keystore(eui, keystore, PARTIES)
            return device_class(kind)(eui, keys, clock)

        chf, gpf, esme, gsme, ppmid = (make(n) for n in ("chf", "gpf", "esme", "gsme", "ppmid"))
        assert isinstance(chf, Chf)
        # HAN peers: the PPMID and the GSME MAC their PCS commands with device KA keys.
        for a, b in ((ppmid, gsme), (gsme, ppmid)):
            pub = keystore.ka_public(b.eui)
            if pub is not None:
                a.keys.peers_ka[b.eui] = pub
        rig_box: list[SimulatedRig] = []
        hub = wire_hub(
            chf,
            gpf,
            hub_transport if hub_transport is not None else medium.attach(chf.eui, HUB_CHANNELS),
            clock,
            rig_box,
        )
        nodes: dict[str, Any] = {}
        for name, device, node_class in (
            ("esme", esme, MeterNode),
            ("ppmid", ppmid, MeterNode),
            ("gsme", gsme, GsmeNode),
        ):
            if name in remote:
                medium.attach(device.eui, channels[name], joined=True)  # stand-in radio
                nodes[name] = remote[name]
                continue
            transport = medium.attach(device.eui, channels[name], joined=False)
            code = install_code_for(device.eui)
            nodes[name] = node_class(device, transport, clock, install_code=code)
        hht_eui = DEVICES["hht"][0]
        hht = HhtNode(
            medium.attach(hht_eui, channels["hht"], joined=False),
            clock,
            install_code=install_code_for(hht_eui),
        )

        def han_alert(node: bytes, code: int, details: dict[str, Any]) -> None:
            for raw in chf.han_alert(code, {**details, "node": node}):
                _spawn(hub.to_wan(raw))

        medium.add_alert_listener(han_alert)
        mains = mains_supply(clock, name="mains", on=True)
        rig = cls(clock, keystore, medium, chf, gpf, esme, gsme, ppmid, hub, nodes, hht, mains,
                  capture=writer)  # fmt: skip
        rig_box.append(rig)
        mains.subscribe(rig._mains_changed)
        return rig

    # -- life cycle ------------------------------------------------------------------
    def run(self, coro: Any) -> Any:
        """Run ``coro`` on the rig's one stepped event loop (virtual time).

        The loop lives as long as the rig: the HAN's tasks (tunnels, wake cycles,
        deferred work) carry on between calls, unlike ``clock.run`` which starts a
        fresh loop each time.
        """
        if self._loop is None:
            self._loop = self.clock.new_event_loop()
        return self._loop.run_until_complete(coro)

    async def start(self) -> None:
        """Commission: every device in the CHF Device Log with its install code, then join."""
        if self.started:
            return
        self.hub.start()
        log = self.chf.device_log
        for name in ("esme", "ppmid", "gsme", "hht"):
            eui = DEVICES[name][0]
            log.add(DeviceLogEntry(eui, 1, install_code_for(eui)))
        log.join_enabled = True
        for name, node in (*self.nodes.items(), ("hht", self.hht)):
            result = await node.join(self.hub.trust_center)
            if not result.accepted:
                raise RuntimeError(f"{name} could not join the HAN: {result}")
        log.join_enabled = False
        if hasattr(self.gpf, "mirror_from"):
            self.gpf.mirror_from(self.gsme)
        self.wan.clear()  # commissioning CS14 alerts are not part of a test
        self.started = True

    async def send(self, raw: bytes) -> Delivery:
        """A GBCS message from the WAN (the DCC) to its Business Target on this rig."""
        return await self.hub.deliver_from_wan(raw)

    async def settle(self, seconds: float = 60.0) -> None:
        """Let the HAN work (virtual time) until idle or ``seconds`` have passed."""
        await self.clock.run_until_idle(max_seconds=seconds)

    def close(self) -> None:
        if self.capture is not None:
            self.capture.close()
        if self._loop is not None:
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            if tasks:
                self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()
            self._loop = None

    # -- power -----------------------------------------------------------------------
    def _mains_changed(self, on: bool, at: datetime) -> None:
        """Mains feeds the Comms Hub and the ESME (the GSME and PPMID run on batteries)."""
        event = HubPowerEvent(PowerEvent.RESTORED if on else PowerEvent.OUTAGE, self.chf.eui, at)
        if on:
            self.hub.power_on()
            self.nodes["esme"].power_on()
        else:
            self.nodes["esme"].power_off()
            self.hub.power_off()
        self.power_events.append(event)
        if self.on_power is not None:
            self.on_power(event)


def wire_hub(chf: Chf, gpf: Device, transport: Any, clock: Any, box: list[Any]) -> HubNode:
    """The Comms Hub on ``transport``, wired as every rig wires it: WAN messages go to
    ``box[0]`` (the rig, once built: its ``wan`` list and ``on_wan``), and the CHF's Device
    Log changes and undeliverable-command alerts go up the WAN."""

    def to_wan(raw: bytes) -> Any:
        rig = box[0]
        rig.wan.append(raw)
        return rig.on_wan(raw) if rig.on_wan is not None else None

    def log_changed(entry: Any) -> None:
        for raw in chf.han_device_log_changed(entry):
            _spawn(hub.to_wan(raw))

    def undeliverable(raw: bytes, reason: str) -> None:
        del reason
        for alert in chf.undeliverable_alert(raw):
            _spawn(hub.to_wan(alert))

    hub = HubNode(chf, gpf, transport, clock, on_wan_message=to_wan,
                  on_device_log_changed=log_changed, on_undeliverable=undeliverable)  # fmt: skip
    return hub


def _spawn(coro: Any) -> None:
    """Run a coroutine on the clock's loop from a synchronous callback."""
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_TASKS: set[asyncio.Task[Any]] = set()
