"""A rig whose Comms Hub reaches its HAN through an EZSP NCP and the unmodified bellows stack.

Why: :class:`~gbhil.rigs.simulated.SimulatedRig` puts the hub straight on the
simulated medium, so a HIL suite never exercises the code a bench uses: ASH
framing, EZSP commands, bellows' send/ack and timeouts. Here the hub's
transport is an :class:`~gbhil.han.ezsp.radio.EzspRadio` that bellows opens on
the pty of an :class:`~gbhil.han.ezsp.emulator.EzspEmulator`; the emulator is
the NCP node of a :class:`~gbhil.han.medium.SimulatedMedium` carrying the
simulated ESME, PPMID, GSME (sub-GHz on a dual-PHY NCP) and HHT. Every APS
frame between hub and devices crosses real serial I/O.

Time stays virtual: bellows runs on the rig's loop (``use_thread = False``)
on a :class:`~gbhil.han.ezsp.serial_clock.SerialSteppedClock`, whose loop
polls ptys with poll(2) and stands still while serialx opens the port in an
executor (the module docstring there says why a plain stepped loop fails).
A 3-minute outage therefore takes well under a second and gives the same
results as the embedded rig.

Joining: the gbhil trust centre (the CHF Device Log, install codes) decides
as in the embedded rig, while bellows has permit-joining open on the NCP; the
emulator then reports each accepted device with ``trustCenterJoinHandler``,
so bellows/zigpy know the devices as they would on a bench.

Mains: the rig file's ``role = "mains"`` instrument. ``driver = "simulated"``
is the behavioural PSU; any VISA driver (pyvisa-sim in CI) is opened through
:mod:`gbhil.rigs.instruments` and wrapped in
:class:`~gbhil.rigs.instruments.observed.ObservedPsu`, so switching its
output gives the same hub power events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import pyvisa

from gbhil.han.channels import PAGE_2_4_GHZ
from gbhil.han.ezsp.emulator import EzspEmulator
from gbhil.han.ezsp.radio import PERMIT_S, EzspRadio, RadioSettings
from gbhil.han.ezsp.serial_clock import SerialSteppedClock
from gbhil.han.medium import SimulatedMedium
from gbhil.rigs.build import RigBuildError
from gbhil.rigs.check import emulator_config
from gbhil.rigs.instruments.observed import ObservedPsu
from gbhil.rigs.instruments.psu import PsuError
from gbhil.rigs.instruments.scpi import open_psu
from gbhil.rigs.rigfile import (
    Device,
    DeviceKind,
    Instrument,
    PkiSource,
    Place,
    RadioDriver,
    RigFile,
    load_rig,
)
from gbhil.rigs.simulated import DEFAULT_START, DEVICES, PARTIES, ROLE_NAMES, SimulatedRig

#: Instrument driver name of the behavioural PSU (no VISA).
SIMULATED_INSTRUMENT: Final = "simulated"
#: How long (virtual s) bellows may take to handle the NCP's join reports, and the poll step.
JOIN_REPORT_TIMEOUT_S: Final = 10.0
JOIN_REPORT_POLL_S: Final = 0.01
#: Device names of the rig models, in the order the embedded rig attaches them.
SIMULATED_ROLES: Final = ("chf", "gpf", "esme", "ppmid", "gsme", "hht")


@dataclass(slots=True)
class EzspRig(SimulatedRig):
    """The embedded rig with the hub behind bellows and an EZSP NCP (see the module docstring)."""

    radio: EzspRadio | None = None
    emulator: EzspEmulator | None = None
    place: str = ""
    mains_channel: int = 1

    async def start(self) -> None:
        """Commission as the embedded rig does, with permit joining open on the NCP."""
        if self.started:
            return
        assert self.radio is not None
        await self.radio.permit(PERMIT_S)
        await SimulatedRig.start(self)
        if self.emulator is not None:
            joined = [n.eui for n in (*self.nodes.values(), self.hht) if n.joined]
            for eui in joined:
                self.emulator.announce_join(eui)
            await self._until_bellows_knows(joined)

    async def _until_bellows_knows(self, euis: list[bytes]) -> None:
        """Wait (virtual time) until bellows has handled every ``trustCenterJoinHandler``."""
        assert self.radio is not None
        deadline = self.clock.monotonic() + JOIN_REPORT_TIMEOUT_S
        while True:
            known = self.radio.known_euis()
            missing = [e for e in euis if e not in known]
            if not missing:
                return
            if self.clock.monotonic() >= deadline:
                names = ", ".join(e.hex().upper() for e in missing)
                raise RigBuildError(f"bellows was not told of the join of {names}")
            await self.clock.sleep(JOIN_REPORT_POLL_S)

    def close(self) -> None:
        """Close everything, each step even if one before it raised (the first error wins)."""
        try:
            if self._loop is not None and not self._loop.is_closed():
                self.run(self._close_radio())
        finally:
            try:
                SimulatedRig.close(self)
            finally:
                if isinstance(self.mains, ObservedPsu):
                    self.mains.close()

    async def _close_radio(self) -> None:
        try:
            if self.radio is not None:
                await self.radio.close()
        finally:
            if self.emulator is not None:
                await self.emulator.close()


def build_ezsp_rig(
    rig_file: RigFile | str | Path,
    *,
    seed: int | None = None,
    start: datetime | None = None,
    capture: str | Path | None = None,
) -> EzspRig:
    """Build the rig a rig file describes whose place has an EZSP radio (not yet started).

    ``seed`` overrides the rig file's PKI seed; ``start`` is the virtual time
    the rig starts at. Raises :class:`RigBuildError` naming the place, device
    or instrument it cannot build.
    """
    rig = rig_file if isinstance(rig_file, RigFile) else load_rig(rig_file)
    place = _ezsp_place(rig)
    _check_devices(rig, place)
    pki_seed = _pki_seed(rig, seed)
    radio_cfg = place.radio
    if not radio_cfg.emulated:
        raise RigBuildError(
            f"place {place.name!r}: the stick at {radio_cfg.port} cannot carry gbhil's simulated "
            "devices (a simulated device has no radio of its own); use emulated = true"
        )
    chf_eui = DEVICES["chf"][0]
    config = replace(emulator_config(rig, place), eui64=chf_eui)
    channel = radio_cfg.band.first_channel
    sub_ghz = None
    if radio_cfg.sub_ghz is not None:
        if config.phy_interfaces < 2:
            raise RigBuildError(
                f"place {place.name!r} configures sub-GHz page {radio_cfg.sub_ghz.page} but its "
                "emulated NCP has one PHY (2.4 GHz only): set [place.radio.emulator] "
                "phy_interfaces = 2, or drop [place.radio.sub_ghz]"
            )
        sub_ghz = (radio_cfg.sub_ghz.page, radio_cfg.sub_ghz.first_channel)
    two_four = (PAGE_2_4_GHZ, channel)
    device_channels = {name: [two_four] for name in ("esme", "ppmid", "hht")}
    device_channels["gsme"] = [sub_ghz or two_four]

    clock = SerialSteppedClock(start or DEFAULT_START)
    loop = clock.new_event_loop()
    medium = SimulatedMedium(clock)
    emulator = EzspEmulator(medium, config)  # attached first: the coordinator's short 0x0000
    try:
        radio = loop.run_until_complete(_open_radio(emulator, channel, sub_ghz, clock))
    except BaseException:
        loop.run_until_complete(emulator.close())
        loop.close()
        raise
    built = EzspRig.build(
        seed=pki_seed,
        start=start or DEFAULT_START,
        capture=capture,
        clock=clock,
        medium=medium,
        hub_transport=radio,
        device_channels=device_channels,
    )
    built._loop = loop
    built.radio, built.emulator, built.place = radio, emulator, place.name
    try:
        _wire_mains(built, rig)
    except BaseException:
        built.close()
        raise
    return built


async def _open_radio(
    emulator: EzspEmulator, channel: int, sub_ghz: tuple[int, int] | None, clock: Any
) -> EzspRadio:
    await emulator.start()
    settings = RadioSettings(emulator.port, channel=channel, use_thread=False)
    radio = await EzspRadio.open(settings, clock=clock)
    if sub_ghz is not None:
        await radio.set_channel(*sub_ghz)
    return radio


# -- checks -------------------------------------------------------------------------------


def _ezsp_place(rig: RigFile) -> Place:
    places = [p for p in rig.places if p.radio.driver is RadioDriver.EZSP]
    if len(places) != 1:
        names = ", ".join(repr(p.name) for p in places) or "none"
        raise RigBuildError(
            f'rig {rig.name!r}: the EZSP rig needs exactly one place with driver = "ezsp" '
            f"(found {names})"
        )
    return places[0]


def _check_devices(rig: RigFile, place: Place) -> None:
    """Every device is one of the rig's models at the EZSP place; real ones cannot be built."""
    seen: dict[str, Device] = {}
    for device in rig.devices:
        label = f"device {device.name!r} ({device.role.value}, {device.eui.hex().upper()})"
        if device.kind is DeviceKind.REAL:
            if place.radio.emulated:
                raise RigBuildError(
                    f'{label} is kind = "real": gbhil cannot simulate it, and place '
                    f"{place.name!r} has no stick (emulated = true); set the stick's port, "
                    "or declare the device simulated"
                )
            raise RigBuildError(
                f'{label} is kind = "real" behind the stick at {place.radio.port}: a real '
                "device runs on wall-clock time, which this virtual-time builder cannot drive; "
                "build the file with gbhil.rigs.build.build_rig (the wall-clock bench rig, "
                "gbhil.rigs.bench_rig), or declare it simulated to use this rig file in CI"
            )
        if device.place != place.name:
            raise RigBuildError(f"{label} is at place {device.place!r}, not at {place.name!r}")
        role = device.role.value
        if role in seen:
            raise RigBuildError(f"{label}: a second {role}; the rig has one of each device")
        expected = DEVICES[role][0]
        if device.eui != expected:
            raise RigBuildError(
                f"{label}: the simulated {role} model of the rig has EUI-64 "
                f"{expected.hex().upper()} (its PKI identity); use that EUI-64"
            )
        seen[role] = device
    missing = [r for r in SIMULATED_ROLES if r not in seen]
    if missing:
        raise RigBuildError(
            f"rig {rig.name!r}: the EZSP rig simulates every device of the embedded rig; "
            f"add [[device]] entries for: {', '.join(missing)}"
        )


def _pki_seed(rig: RigFile, seed: int | None) -> int | None:
    if rig.pki.source is not PkiSource.GENERATED:
        raise RigBuildError(
            f"rig {rig.name!r}: [pki] {rig.pki.source.value} is not supported by the EZSP rig "
            "builder (its simulated devices use a generated test PKI): use generated = true"
        )
    parties = {ROLE_NAMES[r]: eui for r, eui in PARTIES.items()}
    if dict(rig.pki.parties) != parties:
        raise RigBuildError(
            f"rig {rig.name!r}: [pki.parties] differ from the rig PKI's parties (the RTDS / ZAZ1 "
            "identities); remove the table or use those identities"
        )
    return seed if seed is not None else rig.pki.seed


# -- mains --------------------------------------------------------------------------------


def _wire_mains(built: EzspRig, rig: RigFile) -> None:
    """The rig file's mains instrument as ``built.mains``; the behavioural PSU if none."""
    instrument = rig.mains
    if instrument is None or instrument.driver == SIMULATED_INSTRUMENT:
        return
    psu = open_mains(rig, instrument, built.clock)
    built.mains = psu  # type: ignore[assignment]
    built.mains_channel = instrument.channel
    psu.subscribe(built._mains_changed, instrument.channel)


def open_mains(rig: RigFile, instrument: Instrument, clock: Any) -> ObservedPsu:
    """Open a VISA mains supply, check it is the one the rig file names, switch it on."""
    psu = open_supply(rig, instrument, clock, purpose="the mains")
    try:
        psu.set_output(True, instrument.channel)  # the hub starts powered
    except PsuError as exc:
        psu.close()
        where = f"instrument {instrument.name!r} ({instrument.resource})"
        raise RigBuildError(f"{where}: cannot switch the mains on: {exc}") from exc
    return psu


def open_supply(rig: RigFile, instrument: Instrument, clock: Any, *, purpose: str) -> ObservedPsu:
    """Open a VISA supply and check it is the one the rig file names; switch nothing.

    ``purpose`` says what it is for in error messages ("the mains", "relay 'x'").
    """
    definitions = rig.instrument_definitions(instrument)
    backend = f"{definitions}{instrument.backend}" if definitions else instrument.backend or ""
    where = f"instrument {instrument.name!r} ({instrument.resource}, {purpose})"
    if instrument.resource is None:
        raise RigBuildError(f"{where}: {purpose} needs a VISA resource")
    try:
        manager = pyvisa.ResourceManager(backend)
    except (ValueError, OSError, pyvisa.errors.Error) as exc:
        raise RigBuildError(
            f"{where}: cannot open VISA backend {backend or 'default'}: {exc}"
        ) from exc
    try:
        driver = open_psu(
            instrument.resource,
            manager,
            expected_model=instrument.model,
            expected_serial=instrument.serial,
            write_termination=instrument.write_termination,
            timeout_ms=instrument.timeout_ms,
        )
    except PsuError as exc:
        manager.close()
        raise RigBuildError(f"{where}: {exc}") from exc
    if instrument.driver not in ("auto", driver.catalogue_key):
        driver.close()
        manager.close()
        raise RigBuildError(
            f"{where}: the rig file says driver {instrument.driver!r}, the instrument is "
            f"{driver.catalogue_key!r}"
        )
    return ObservedPsu(driver, clock, name=instrument.name, release=manager.close)


__all__ = [
    "SIMULATED_INSTRUMENT",
    "EzspRig",
    "RigBuildError",
    "build_ezsp_rig",
    "open_mains",
    "open_supply",
]
