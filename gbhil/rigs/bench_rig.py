"""The bench rig: gbhil's Comms Hub on a real EZSP stick, real meters on its air, wall clock.

Why (issue 6): manufacturers put real meters on a bench and the same HIL suites must drive
them. Here the simulated Comms Hub (CHF + GPF, as in
:class:`~gbhil.rigs.simulated.SimulatedRig`) runs in the harness's process on an
:class:`~gbhil.han.ezsp.radio.EzspRadio` that the unmodified bellows stack opens on the
stick's ``port``; the place's other devices are ``kind = "real"``: gbhil knows their
identity (role, EUI-64, install code, certificates), never their state.

* **Time** is the wall clock (a :class:`~gbhil.simulator.RealTimeClock`, UTC unless
  ``start`` is given): real devices cannot be sped up. bellows runs on the rig's loop
  (``use_thread = False``).
* **Joining** is the stick's: for each real device the rig puts it in the CHF Device Log
  (as CCS01 does), installs the link key derived from its install code on the NCP
  (bellows' ``permit_with_link_key``: EZSP ``importTransientKey`` on v13+) and opens
  permit joining; the NCP admits the device and reports it (the EZSP
  ``trustCenterJoinHandler`` callback), and the hub's trust-centre model records the join
  in the Device Log. :meth:`BenchRig.start` waits, bounded, for every device to join and
  open its tunnel (a GSME: to ask the GPF for its mirror), and names those that did not.
  After a leave the rig installs the key again, and admits the device whenever the stick
  reports it back. CBKE is not implemented (docs/radios.md).
* **Capture**: gbhil cannot hear a real stick's air (a sniffer's job). ``rig.medium`` is a
  :class:`HostTap` instead: every APS frame the hub hands to the stick or gets from it,
  for the harness's per-test frames and pcap, and ``capture=`` writes them to a pcap.
* **The DCC** sees the CHF, the GPF and the real meters (``devices()``); their
  certificates come from the rig's PKI: ``generated`` (the real devices must then carry
  the generated identities, as the CI stand-in does) or a ``folder`` / ``zaz1`` PKI
  holding the devices' certificates and the hub's private keys.

Refused with a :class:`RigBuildError` naming the reason: a simulated meter at the stick's
place (it has no radio of its own to reach the stick's air), an HHT (gbhil's has no radio
there either, and the harness cannot drive a real one), a second device of
a role, a real device without certificates in the PKI, a PKI generated afresh, a stick
whose EUI-64 is not the CHF's, sub-GHz on a one-PHY stick.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import zigpy.types as zt

from gbhil.devices.chf import Chf, DeviceLogEntry
from gbhil.devices.core import Device, DeviceType
from gbhil.devices.registry import device_class
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs.security import SecurityContext
from gbhil.han.channels import PageChannel
from gbhil.han.ezsp.frames import DeviceUpdate, JoinDecision
from gbhil.han.ezsp.radio import PERMIT_S, EzspRadio, RadioError, RadioSettings
from gbhil.han.joining import JoinRole, link_key_from_install_code, verify_key_hash
from gbhil.han.medium import TapCallback
from gbhil.han.network import HubNode
from gbhil.han.pcap import PcapWriter
from gbhil.han.transport import ApsFrame, CapturedFrame, HanTransport, TxResult
from gbhil.rigs.build import RigBuildError
from gbhil.rigs.ezsp_rig import SIMULATED_INSTRUMENT, open_mains, open_supply
from gbhil.rigs.instruments.model import mains_supply
from gbhil.rigs.instruments.observed import ObservedPsu
from gbhil.rigs.instruments.psu import PsuError
from gbhil.rigs.rigfile import (
    DEVICE_TYPES,
    DeviceKind,
    DeviceRole,
    PkiSource,
    Place,
    RadioDriver,
    RigFile,
    load_rig,
)
from gbhil.rigs.simulated import (
    HubPowerEvent,
    PowerEvent,
    SimulatedRig,
    _spawn,
    rig_keystore,
    wire_hub,
)
from gbhil.simulator import RealTimeClock
from gbhil.smki import KeyStore, SmkiError

LOGGER = logging.getLogger(__name__)

#: How long (wall s) :meth:`BenchRig.start` waits for the real devices to join, and the poll.
JOIN_TIMEOUT_S: Final = 60.0
JOIN_POLL_S: Final = 0.1
#: ``settle``: the HAN counts as quiet after this long (wall s) without a frame.
QUIET_S: Final = 0.5
#: Longest wait (wall s) for quiet air after the joins, before a run's first command.
START_SETTLE_S: Final = 10.0
#: Device Log key type of an install-code entry (CCS01).
INSTALL_CODE_KEY_TYPE: Final = 1
#: Roles a bench device may have at the stick's place besides the hub's CHF and GPF.
REAL_ROLES: Final = (DeviceRole.ESME, DeviceRole.GSME, DeviceRole.PPMID)
HUB_ROLES: Final = (DeviceRole.CHF, DeviceRole.GPF)
#: How each real device presents itself to the trust centre.
JOIN_ROLES: Final = {
    DeviceRole.ESME: JoinRole.ALWAYS_ON,
    DeviceRole.PPMID: JoinRole.ALWAYS_ON,
    DeviceRole.GSME: JoinRole.SLEEPY,
}
#: EZSP callback by which the NCP reports a device's join or leave.
TC_JOIN_HANDLER: Final = "trustCenterJoinHandler"
#: Short address the host-side tap gives a node the NCP has not reported.
UNKNOWN_SHORT: Final = 0xFFFE


@dataclass(slots=True)
class RealDevice:
    """A device on the bench: gbhil knows who it is, not what state it is in."""

    name: str
    role: DeviceRole
    eui: bytes
    device_type: DeviceType
    install_code: bytes = field(repr=False)  # a link key derives from it
    profile: Any = None  # no device profile: the DCC lists it with default identity data

    @property
    def label(self) -> str:
        return f"{self.role.value} {self.name!r} ({self.eui.hex().upper()})"


@dataclass(slots=True)
class BenchNode:
    """A real device as the hub sees it on the HAN: there once the stick let it in.

    ``rig.nodes`` holds one per real meter, so what serves "the devices on the HAN" (the
    DCC's firmware delivery sends them an OTA Image Notify) finds the bench's devices.
    """

    eui: bytes
    role: DeviceRole
    hub: HubNode

    @property
    def joined(self) -> bool:
        return self.hub.trust_center.role_of(self.eui) is not None


@dataclass(slots=True)
class SleepyBenchNode(BenchNode):
    """A real GSME: it sleeps, so a new image waits for it to ask at its next wake."""

    check_firmware: bool = False


@dataclass(slots=True)
class BenchRig(SimulatedRig):
    """The hub on a real stick with real devices around it (see the module docstring)."""

    radio: EzspRadio | None = None
    place: str = ""
    real: dict[str, RealDevice] = field(default_factory=dict)
    acb: bytes = b""
    join_timeout: float = JOIN_TIMEOUT_S
    mains_channel: int = 1
    #: (supply, channel) of each real device's relay, switched with the mains
    relays: dict[str, tuple[Any, int]] = field(default_factory=dict)
    _opened: list[Any] = field(default_factory=list)  # relay supplies the rig opened
    #: devices the stick let in whose join the Device Log refused: the reason
    _refusals: dict[bytes, str] = field(default_factory=dict)
    #: devices the stick let in while the simulated hub was off: recorded at power-on
    _unrecorded: set[bytes] = field(default_factory=set)
    _callback_id: int | None = None

    @property
    def dcc(self) -> SecurityContext:
        """The DCC's view (ACB and every User key of the rig PKI) for building commands."""
        return SecurityContext(self.keystore, self.acb)

    def devices(self) -> dict[str, Any]:
        """The CHF, the GPF and the real meters (what the DCC's inventory holds)."""
        out: dict[str, Any] = {"chf": self.chf, "gpf": self.gpf}
        out.update(self.real)
        return out

    def run(self, coro: Any) -> Any:
        """Run ``coro`` on the rig's real-time loop (bellows and the hub live on it)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    async def start(self) -> None:
        """Let the real devices join through the stick; wait (bounded) until they did."""
        if self.started:
            return
        assert self.radio is not None
        self.hub.start()
        log = self.chf.device_log
        for device in self.real.values():
            log.add(DeviceLogEntry(device.eui, INSTALL_CODE_KEY_TYPE, device.install_code))
        log.join_enabled = True
        self._callback_id = self.radio.app._ezsp.add_callback(self._ncp_report)
        for eui in self._joined_on_ncp():
            self._ncp_join(eui)  # already on the stick's network (a rejoin needs no key)
        for device in self.real.values():
            key = zt.KeyData(link_key_from_install_code(device.install_code))
            await self.radio.app.permit_with_link_key(
                zt.EUI64(device.eui[::-1]), key, time_s=PERMIT_S
            )
        await self._until_joined()
        # The hub counts a tunnel open when it answers the request; the meter only once
        # that answer arrived. Quiet air first, so a test's first command is not lost.
        await self.settle(START_SETTLE_S)
        log.join_enabled = False
        self.wan.clear()  # commissioning CS14 alerts are not part of a test
        self.started = True

    def _joined_on_ncp(self) -> list[bytes]:
        assert self.radio is not None
        known = self.radio.known_euis()
        return [d.eui for d in self.real.values() if d.eui in known]

    def _real_device(self, eui: bytes) -> RealDevice | None:
        return next((d for d in self.real.values() if d.eui == eui), None)

    def _ncp_report(self, frame_name: str, args: list[Any]) -> None:
        """EZSP callbacks: the NCP's ``trustCenterJoinHandler`` for a join, rejoin or leave.

        Read here rather than from zigpy's ``device_joined``, which zigpy raises only for a
        device new to it (or at a new short address), never for a rejoin.
        """
        if frame_name != TC_JOIN_HANDLER or len(args) < 4:
            return
        eui, status, decision = bytes(args[1])[::-1], int(args[2]), int(args[3])
        if status == DeviceUpdate.DEVICE_LEFT:
            self._ncp_leave(eui)
        elif decision != JoinDecision.DENY_JOIN:
            self._ncp_join(eui)

    def _ncp_join(self, eui: bytes) -> None:
        """The NCP let ``eui`` in: the hub's trust-centre model records it in the Device Log.

        The key exchange happened in the stick, which admits only with the install-code key
        the rig installed; so a device in the Device Log is let in whenever the stick
        reports it (a rejoin after a power cut or a leave too), with joining enabled for
        that moment. The Device Log may still refuse (entry removed, join deadline past):
        :meth:`start` then names its reason. While the simulated hub is off the join waits
        for its power to return.
        """
        device = self._real_device(eui)
        tc = self.hub.trust_center
        if device is None or tc.role_of(eui) is not None:
            return
        if not tc.powered:
            self._unrecorded.add(eui)
            return
        log = self.chf.device_log
        enabled, log.join_enabled = log.join_enabled, True
        try:
            offer = tc.request_join(eui, JOIN_ROLES[device.role])
        finally:
            log.join_enabled = enabled
        if offer.transport_key is None:
            reason = offer.reason.name if offer.reason is not None else "refused"
            self._refusals[eui] = reason  # the reason only: a detail may quote the code
            return
        self._refusals.pop(eui, None)
        tc.verify_key(eui, verify_key_hash(link_key_from_install_code(device.install_code)))

    def _ncp_leave(self, eui: bytes) -> None:
        """The NCP reported ``eui`` gone: forget the join, and let the stick admit it again.

        bellows drops a device's install-code key from the NCP once it has joined, so the
        key is installed again (with permit joining) for the device's next join.
        """
        device = self._real_device(eui)
        if device is None:
            return
        self._unrecorded.discard(eui)
        self._refusals.pop(eui, None)
        self.hub.trust_center.device_left(eui)
        _spawn(self._let_in_again(device))

    async def _let_in_again(self, device: RealDevice) -> None:
        if self.radio is None:
            return
        key = zt.KeyData(link_key_from_install_code(device.install_code))
        try:
            await self.radio.app.permit_with_link_key(
                zt.EUI64(device.eui[::-1]), key, time_s=PERMIT_S
            )
        except Exception as exc:  # bellows/zigpy errors vary; the rig goes on
            LOGGER.warning("%s left; its link key could not be installed again on the stick "
                           "(%s): it cannot rejoin", device.label, type(exc).__name__)  # fmt: skip

    async def _until_joined(self) -> None:
        deadline = time.monotonic() + self.join_timeout
        while True:
            missing = self._not_ready()
            if not missing:
                return
            if time.monotonic() >= deadline:
                raise RigBuildError(
                    f"rig on {self.place!r}: within {self.join_timeout:g} s "
                    + "; ".join(missing)
                    + " (is it powered and looking for a network? is the install code in the "
                    "rig file the one on its label?)"
                )
            await asyncio.sleep(JOIN_POLL_S)

    def _not_ready(self) -> list[str]:
        out = []
        tc = self.hub.trust_center
        for device in self.real.values():
            refusal = self._refusals.get(device.eui)
            if tc.role_of(device.eui) is None and refusal is not None:
                out.append(
                    f"{device.label} was let in by the stick but the CHF Device Log refused "
                    f"it ({refusal})"
                )
            elif tc.role_of(device.eui) is None:
                out.append(f"{device.label} did not join")
            elif device.role is DeviceRole.GSME and device.eui not in self.hub.mirrors:
                out.append(f"{device.label} joined but asked the GPF for no mirror")
            elif (
                device.role is not DeviceRole.GSME
                and self.hub.tunnels.tunnel_for(device.eui) is None
            ):
                out.append(f"{device.label} joined but opened no tunnel to the CHF")
        return out

    async def settle(self, seconds: float = 60.0) -> None:
        """Until the radio has been quiet for :data:`QUIET_S`, or ``seconds`` (wall) passed.

        A real device's work cannot be seen from here; quiet air is the best sign.
        """
        assert self.radio is not None
        deadline = time.monotonic() + seconds
        counters = self.radio.counters
        while (remaining := deadline - time.monotonic()) > 0:
            before = counters.sent + counters.received
            await asyncio.sleep(min(QUIET_S, remaining))
            if counters.sent + counters.received == before:
                return

    def close(self) -> None:
        """The stick, the loop and capture, the mains and the relay supplies: every one is
        closed even if closing another raised (the first error is raised at the end)."""
        opened, self._opened = self._opened, []
        mains = self.mains if isinstance(self.mains, ObservedPsu) else None
        _close_each([self._close_radio, lambda: SimulatedRig.close(self),
                     *([mains.close] if mains is not None else []),
                     *(supply.close for supply in opened)])  # fmt: skip

    def _close_radio(self) -> None:
        if self._loop is None or self._loop.is_closed() or self.radio is None:
            return
        radio, self.radio = self.radio, None
        if self._callback_id is not None:
            radio.app._ezsp.remove_callback(self._callback_id)
            self._callback_id = None
        self.run(radio.close())

    def _mains_changed(self, on: bool, at: datetime) -> None:
        """The mains feeds the simulated hub, and each real device through its relay (the
        relay's output on = the device fed); unrelayed devices are the bench's wiring."""
        event = HubPowerEvent(PowerEvent.RESTORED if on else PowerEvent.OUTAGE, self.chf.eui, at)
        for supply, channel in self.relays.values():
            supply.set_output(on, channel)
        if on:
            self.hub.power_on()
            waiting, self._unrecorded = self._unrecorded, set()
            for eui in sorted(waiting):  # the stick let them in while the hub was off
                self._ncp_join(eui)
        else:
            self.hub.power_off()
        self.power_events.append(event)
        if self.on_power is not None:
            self.on_power(event)


class HostTap(HanTransport):
    """The stick as the hub's transport, with a tap on the host side of it.

    Why: a real stick's air is out of gbhil's reach (a sniffer's job), but every APS frame
    the hub hands to the NCP, and every one the NCP hands up, passes here. ``add_tap``
    (the medium's tap interface, which the HIL harness's per-test frames and pcap use)
    sees those as :class:`~gbhil.han.transport.CapturedFrame`: the hub's own traffic, at
    the time the host sent or got it, with no airtime; nothing between devices. EZSP does
    not tell the host which PHY carried a frame, so a frame the hub did not pin to a page
    is labelled with the stick's first (2.4 GHz) channel.
    """

    def __init__(self, radio: EzspRadio, clock: Any) -> None:
        super().__init__(radio.eui64)
        self.radio = radio
        self.clock = clock
        self._taps: list[TapCallback] = []
        self._aps_counter = 0
        radio.add_listener(self._heard)

    def add_tap(self, tap: TapCallback) -> Callable[[], None]:
        """Call ``tap(CapturedFrame)`` for every frame sent or received; returns a remover."""
        self._taps.append(tap)

        def remove() -> None:
            if tap in self._taps:
                self._taps.remove(tap)

        return remove

    def _tap(self, frame: ApsFrame, where: PageChannel | None) -> None:
        if not self._taps:
            return
        where = frame.page_channel or where or self.radio.channels[0]
        captured = CapturedFrame(self._addressed(frame), where.page, where.channel,
                                 self.clock.now())  # fmt: skip
        for tap in tuple(self._taps):
            tap(captured)

    def _addressed(self, frame: ApsFrame) -> ApsFrame:
        """Short addresses from the NCP's tables, and an APS counter of the tap's own when
        bellows numbers the frame: a pcap needs both."""
        changes: dict[str, int] = {}
        if frame.src_short is None:
            changes["src_short"] = self._nwk_of(frame.src_eui64)
        if frame.dst_short is None and frame.dst_eui64 is not None:
            changes["dst_short"] = self._nwk_of(frame.dst_eui64)
        if frame.aps_counter is None:  # bellows numbers it inside; the tap numbers its own
            self._aps_counter = (self._aps_counter + 1) & 0xFF
            changes["aps_counter"] = self._aps_counter
        return replace(frame, **changes) if changes else frame

    def _nwk_of(self, eui: bytes) -> int:
        app = self.radio.app
        if eui == self.radio.eui64:
            return int(app.state.node_info.nwk)
        device = app.devices.get(zt.EUI64(eui[::-1]))
        return UNKNOWN_SHORT if device is None else int(device.nwk)

    def _heard(self, frame: ApsFrame) -> None:
        self._tap(frame, None)
        self._deliver(frame)

    async def send(self, frame: ApsFrame) -> TxResult:
        result = await self.radio.send(frame)
        self._tap(frame, result.channels[0] if result.channels else None)
        return result

    async def join(self) -> None:
        await self.radio.join()

    async def leave(self) -> None:
        await self.radio.leave()

    async def set_channel(self, page: int, channel: int) -> bool:
        return await self.radio.set_channel(page, channel)

    async def move_network(self, page: int, channel: int) -> bool:
        return await self.radio.move_network(page, channel)

    @property
    def channels(self) -> tuple[PageChannel, ...]:
        return self.radio.channels

    @property
    def joined(self) -> bool:
        return self.radio.joined


# -- building -----------------------------------------------------------------------------


def build_bench_rig(
    rig_file: RigFile | str | Path,
    *,
    seed: int | None = None,
    start: datetime | None = None,
    capture: str | Path | None = None,
    join_timeout: float = JOIN_TIMEOUT_S,
) -> BenchRig:
    """Open the stick of the rig file's bench and build the hub on it (not yet started).

    ``seed`` overrides a generated PKI's seed; ``start`` sets the CHF's clock (default:
    the wall-clock UTC time, as the real devices keep); ``capture`` writes the host-side
    frames (:class:`HostTap`) to a pcap; ``join_timeout`` bounds
    :meth:`BenchRig.start`. Raises :class:`RigBuildError` naming what it cannot build.
    """
    rig = rig_file if isinstance(rig_file, RigFile) else load_rig(rig_file)
    problems = bench_mismatches(rig)
    if problems:
        raise RigBuildError(f"cannot build bench rig {rig.name!r}: {'; '.join(problems)}")
    place = stick_place(rig)
    assert place is not None
    keystore = _keystore(rig, seed)
    hub_euis = {d.role: d.eui for d in rig.devices if d.role in HUB_ROLES}
    parties = rig.pki.party_roles
    missing = _missing_keys(keystore, rig, hub_euis, parties)
    if missing:
        raise RigBuildError(f"rig {rig.name!r}: [pki] {rig.pki.describe()}: " + "; ".join(missing))
    clock = RealTimeClock(start)
    loop = asyncio.new_event_loop()
    try:
        radio = loop.run_until_complete(_open_stick(place, clock, hub_euis[DeviceRole.CHF]))
    except BaseException:
        loop.close()
        raise
    try:
        built = _assemble(rig, place, keystore, parties, hub_euis, clock, radio)
    except BaseException:
        loop.run_until_complete(radio.close())
        loop.close()
        raise
    built._loop = loop
    built.join_timeout = join_timeout
    try:
        if capture is not None:  # the host side of the stick, not the air
            built.capture = PcapWriter(capture)
            built.medium.add_tap(built.capture)
        _wire_mains(built, rig)
    except BaseException:
        built.close()  # the stick, the loop and any supply opened so far
        raise
    return built


def stick_place(rig: RigFile) -> Place | None:
    """The place whose radio is an EZSP stick on a ``port`` (None: there is none)."""
    places = [p for p in rig.places if p.radio.driver is RadioDriver.EZSP and not p.radio.emulated]
    return places[0] if len(places) == 1 else None


def bench_mismatches(rig: RigFile) -> list[str]:
    """Why :func:`build_bench_rig` cannot build ``rig`` (empty: it can), without opening it."""
    out: list[str] = []
    place = stick_place(rig)
    if place is None or len(rig.places) != 1:
        return ["a bench rig has exactly one place, with an EZSP stick on a port"]
    if rig.bus.url != "in-process":
        out.append(f"bus {rig.bus.url}: the bench rig runs in one process")
    seen: dict[DeviceRole, str] = {}
    for device in rig.devices:
        label = f"device {device.name!r} ({device.role.value}, {device.eui.hex().upper()})"
        if device.place != place.name:
            out.append(f"{label} is at place {device.place!r}, not at {place.name!r}")
        if device.role in seen:
            out.append(f"{label}: a second {device.role.value} (the rig has one of each role)")
        seen[device.role] = device.name
        if device.role in HUB_ROLES:
            if device.kind is DeviceKind.REAL:
                out.append(f"{label}: the Comms Hub is gbhil's (simulated) on the stick")
        elif device.role is DeviceRole.HHT:
            out.append(
                f"{label}: an HHT cannot be on a bench rig (local delivery drives gbhil's "
                "HHT, which has no radio of its own to reach the stick's air, and the "
                "harness cannot drive a real one); leave it out"
            )
        elif device.kind is not DeviceKind.REAL:
            out.append(
                f"{label} is simulated: a simulated device has no radio of its own to reach "
                f"the air of the stick at {place.radio.port}; declare the real device "
                'there (kind = "real", its EUI-64 and install code)'
            )
        elif device.install_code is None:
            out.append(f"{label}: a real device needs its install code")
    for role in HUB_ROLES:
        if role not in seen:
            out.append(f"add a [[device]] with role = {role.value!r} (the hub on the stick)")
    if rig.pki.source is PkiSource.GENERATED and rig.pki.seed is None:
        out.append(
            "[pki] generated afresh: the real devices carry certificates from a fixed PKI; "
            "give the seed they were provisioned with, or a folder / zaz1 PKI"
        )
    mains = rig.mains
    if mains is not None and mains.driver != SIMULATED_INSTRUMENT and mains.resource is None:
        out.append(f"instrument {mains.name!r}: the mains needs a VISA resource")
    if mains is not None and mains.driver == SIMULATED_INSTRUMENT:
        out += [
            f"device {d.name!r} (esme) is real and mains {mains.name!r} is simulated: a "
            "simulated supply cannot feed a real meter; make the mains a bench supply that "
            "feeds it, give the ESME a relay, or drop the mains"
            for d in rig.devices
            if d.role is DeviceRole.ESME and d.kind is DeviceKind.REAL and d.relay is None
        ]
    for device in rig.devices:
        if device.relay is not None and device.kind is DeviceKind.REAL:
            relay = rig.relay(device.relay)
            if rig.instrument(relay.instrument).driver == SIMULATED_INSTRUMENT:
                out.append(f"relay {relay.name!r} of {device.name!r}: needs a bench supply")
    return out


def _keystore(rig: RigFile, seed: int | None) -> KeyStore:
    pki = rig.pki
    if pki.source is PkiSource.GENERATED:
        return rig_keystore(seed if seed is not None else pki.seed)
    path = rig.pki_path
    try:
        if pki.source is PkiSource.ZAZ1:
            return KeyStore.from_zaz1_json(path)
        return KeyStore.load(path)  # type: ignore[arg-type]
    except (SmkiError, OSError, ValueError) as exc:
        raise RigBuildError(
            f"rig {rig.name!r}: cannot load the PKI {pki.describe()}: {exc}"
        ) from exc


def _missing_keys(
    keystore: KeyStore, rig: RigFile, hub: dict[DeviceRole, bytes], parties: dict[Role, bytes]
) -> list[str]:
    out = []
    for role, eui in hub.items():
        if keystore.ds_private(eui) is None or keystore.ka_private(eui) is None:
            out.append(f"no private keys for the {role.value} {eui.hex().upper()}")
    for device in rig.devices:
        if device.role in REAL_ROLES and keystore.ds_public(device.eui) is None:
            out.append(
                f"no certificates for {device.role.value} {device.name!r} "
                f"({device.eui.hex().upper()}): point [pki] at the PKI it was provisioned with"
            )
    if Role.ACB not in parties:
        out.append("no ACB in [pki.parties]")
    return out


async def _open_stick(place: Place, clock: RealTimeClock, chf_eui: bytes) -> EzspRadio:
    """bellows on the stick; its EUI-64 must be the CHF's (the meters know the hub by it)."""
    radio_cfg = place.radio
    assert radio_cfg.port is not None
    flow = radio_cfg.flow_control if radio_cfg.flow_control == "hardware" else None
    settings = RadioSettings(
        radio_cfg.port,
        channel=radio_cfg.band.first_channel,
        baudrate=radio_cfg.baudrate,
        flow_control=flow,
        use_thread=False,
    )
    try:
        radio = await EzspRadio.open(settings, clock=clock)
    except RadioError as exc:
        raise RigBuildError(f"place {place.name!r}: {exc}") from exc
    try:
        if radio.eui64 != chf_eui:
            raise RigBuildError(
                f"place {place.name!r}: the stick at {radio_cfg.port} is "
                f"{radio.eui64.hex().upper()}, the rig's CHF is {chf_eui.hex().upper()}: the "
                "meters know the hub by the stick's EUI-64, so give the chf device that EUI-64 "
                "(and a PKI with its keys)"
            )
        sub = radio_cfg.sub_ghz
        if sub is not None:
            try:
                await radio.set_channel(sub.page, sub.first_channel)
            except RadioError as exc:
                raise RigBuildError(f"place {place.name!r}: sub-GHz: {exc}") from exc
    except BaseException:
        await radio.close()
        raise
    return radio


def _assemble(
    rig: RigFile,
    place: Place,
    keystore: KeyStore,
    parties: dict[Role, bytes],
    hub_euis: dict[DeviceRole, bytes],
    clock: RealTimeClock,
    radio: EzspRadio,
) -> BenchRig:
    """The CHF and GPF models and the hub on ``radio``, wired as the embedded rig wires them."""

    def make(role: DeviceRole) -> Device:
        eui = hub_euis[role]
        keys = DeviceKeys.from_keystore(eui, keystore, parties)
        return device_class(DEVICE_TYPES[role])(eui, keys, clock)

    chf, gpf = make(DeviceRole.CHF), make(DeviceRole.GPF)
    assert isinstance(chf, Chf)
    box: list[BenchRig] = []
    tap = HostTap(radio, clock)
    hub = wire_hub(chf, gpf, tap, clock, box)
    real = {
        d.role.value: RealDevice(d.name, d.role, d.eui, DEVICE_TYPES[d.role], d.install_code)
        for d in rig.devices
        if d.role in REAL_ROLES and d.install_code is not None
    }
    nodes = {
        role: (SleepyBenchNode if d.role is DeviceRole.GSME else BenchNode)(d.eui, d.role, hub)
        for role, d in real.items()
    }
    mains = mains_supply(clock, name="mains", on=True)
    built = BenchRig(
        clock, keystore, tap, chf, gpf,  # type: ignore[arg-type]  # the host-side tap
        real.get("esme"), real.get("gsme"), real.get("ppmid"),  # type: ignore[arg-type]
        hub, nodes, None, mains,  # type: ignore[arg-type]  # no HHT on a bench
        radio=radio, place=place.name, real=real, acb=parties[Role.ACB],
    )  # fmt: skip
    box.append(built)
    mains.subscribe(built._mains_changed)
    return built


def _wire_mains(built: BenchRig, rig: RigFile) -> None:
    """A VISA mains switches the simulated hub's power (as on the EZSP rig), and the relay
    of each real device that has one follows it."""
    instrument = rig.mains
    supplies: dict[str, Any] = {}
    if instrument is not None and instrument.driver != SIMULATED_INSTRUMENT:
        psu = open_mains(rig, instrument, built.clock)
        built.mains = psu  # type: ignore[assignment]
        built.mains_channel = instrument.channel
        psu.subscribe(built._mains_changed, instrument.channel)
        supplies[instrument.name] = psu
    for device in rig.devices:
        if device.relay is None or device.kind is not DeviceKind.REAL:
            continue
        relay = rig.relay(device.relay)
        if relay.instrument not in supplies:
            supply = open_supply(rig, rig.instrument(relay.instrument), built.clock,
                                 purpose=f"relay {relay.name!r}")  # fmt: skip
            built._opened.append(supply)
            supplies[relay.instrument] = supply
        supply = supplies[relay.instrument]
        try:
            supply.set_output(True, relay.channel)  # the device starts fed
        except PsuError as exc:
            raise RigBuildError(
                f"relay {relay.name!r} of {device.name!r} (instrument {relay.instrument!r} "
                f"channel {relay.channel}): cannot switch it on: {exc}"
            ) from exc
        built.relays[device.role.value] = (supply, relay.channel)


def _close_each(closers: list[Callable[[], Any]]) -> None:
    """Call every closer even if one raises; then raise the first error, if any."""
    first: BaseException | None = None
    for close in closers:
        try:
            close()
        except BaseException as exc:  # the rest must still be closed
            if first is None:
                first = exc
    if first is not None:
        raise first


__all__ = [
    "JOIN_TIMEOUT_S",
    "BenchNode",
    "BenchRig",
    "HostTap",
    "RealDevice",
    "RigBuildError",
    "SleepyBenchNode",
    "bench_mismatches",
    "build_bench_rig",
    "stick_place",
]
