"""A running rig from a rig file: the one place that picks the builder.

The HIL harness (``pytest --rig``, ``gbhil run --rig``) and ``gbhil serve --rig`` call
:func:`build_rig`; what comes back follows the rig contract of
:class:`~gbhil.rigs.simulated.SimulatedRig` (``run``, ``start``, ``send``, ``settle``,
``close``, the device attributes, ``on_wan`` / ``on_power``). The builders:

* the **embedded simulated rig**, when the file describes it (``rigs/simulated.toml``):
  one process, stepped virtual time;
* the **MQTT bus** (``[bus] url = "mqtt://host:port"``): the hub side in this process,
  the devices of every other ``process`` in ``python -m gbhil.bus.device_host`` children
  the rig starts and stops (:mod:`gbhil.bus.split_rig`), all on a shared real-time clock;
* **EZSP radios**: :func:`gbhil.rigs.ezsp_rig.build_ezsp_rig`, imported when needed;
* a **bench** (one place whose EZSP stick has a ``port``, real devices around it, in one
  process): :func:`gbhil.rigs.bench_rig.build_bench_rig`, on the wall clock.

:func:`unbuildable` says, before anything is built, why a rig file cannot be (so a run
stops with a usage error rather than in its first test).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import secrets
import socket
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from gbhil.han.channels import PAGE_2_4_GHZ
from gbhil.rigs.rigfile import BusKind, PkiSource, RadioDriver, RigFile, load_rig
from gbhil.rigs.simulated import DEFAULT_START, DEVICE_CHANNELS, DEVICES, PARTIES, SimulatedRig

#: Environment overrides of the rig file's bus (the broker a CI job started on a free port)
#: and of the shared clock's rate (rig seconds per wall second).
BUS_URL_ENV: Final = "GBHIL_BUS_URL"
BUS_RATE_ENV: Final = "GBHIL_BUS_RATE"
#: Rate of the shared clock unless told otherwise: real time (real hardware needs it).
DEFAULT_RATE: Final = 1.0
#: How long (wall seconds) the pre-run probe waits for the broker's TCP port.
BROKER_PROBE_S: Final = 3.0
#: The process a device runs in unless its ``process`` says otherwise.
MAIN_PROCESS: Final = "main"
#: Devices of the embedded rig that a device host can run (gbhil.bus.device_host).
REMOTE_ROLES: Final = ("esme", "ppmid", "gsme")
EZSP_MODULE: Final = "gbhil.rigs.ezsp_rig"
EZSP_BUILDER: Final = "build_ezsp_rig"


class RigBuildError(ValueError):
    """The rig file names something no builder can make (the message says what)."""


class RigKind(StrEnum):
    """Which builder a rig file needs."""

    EMBEDDED = "embedded"
    MQTT = "mqtt"
    EZSP = "ezsp"
    #: the hub behind an emulated EZSP NCP, the meters behind the MQTT bus
    MQTT_EZSP = "mqtt-ezsp"
    #: the hub on a real EZSP stick (``port``), real devices on its air, wall clock
    BENCH = "bench"


#: Kinds whose devices span processes over a broker (a rate and a bus URL apply).
BUS_KINDS: Final = frozenset({RigKind.MQTT, RigKind.MQTT_EZSP})


RigSource = RigFile | str | os.PathLike[str]


def _load(rig_file: RigSource) -> RigFile:
    return rig_file if isinstance(rig_file, RigFile) else load_rig(Path(rig_file))


def rig_kind(rig: RigFile) -> RigKind:
    if any(place.radio.driver is RadioDriver.EZSP for place in rig.places):
        if rig.bus.kind is BusKind.MQTT:
            return RigKind.MQTT_EZSP
        return RigKind.BENCH if any(p.radio.is_real for p in rig.places) else RigKind.EZSP
    if rig.bus.kind is BusKind.MQTT:
        return RigKind.MQTT
    return RigKind.EMBEDDED


def embedded_mismatches(rig: RigFile, *, split: bool = False) -> list[str]:
    """Why the embedded rig cannot stand in for ``rig`` (empty: it can).

    With ``split`` the rig may put the embedded rig's meters in other processes behind
    an MQTT bus (what :mod:`gbhil.bus.split_rig` builds).
    """
    out: list[str] = []
    if rig.bus.kind is not BusKind.IN_PROCESS and not split:
        out.append(f"bus {rig.bus.url}")
    out += [
        f"{p.name}: {p.radio.describe()}"
        for p in rig.places
        if p.radio.driver is not RadioDriver.SIMULATED
    ]
    for device in rig.devices:
        role = device.role.value
        expected = DEVICES.get(role)
        if not device.simulated:
            out.append(f"real {role} {device.name!r}")
        elif expected is None or expected[0] != device.eui:
            out.append(f"{role} {device.eui.hex().upper()} is not the embedded one")
        if device.process != MAIN_PROCESS and role not in REMOTE_ROLES:
            out.append(
                f"{role} {device.name!r} in process {device.process!r}: only "
                f"{', '.join(REMOTE_ROLES)} can run in another process"
            )
    if rig.pki.source is not PkiSource.GENERATED:
        out.append(f"PKI from {rig.pki.describe()}")
    if rig.pki.party_roles != PARTIES:
        out.append("[pki.parties] differ from the embedded rig's")
    if rig.mains is not None and not rig.mains.simulated:
        out.append(f"mains {rig.mains.name!r} is a real instrument")
    return out


def ezsp_available() -> bool:
    """Whether the EZSP rig builder (written separately) is installed."""
    try:
        return importlib.util.find_spec(EZSP_MODULE) is not None
    except (ImportError, ValueError):  # ValueError: a module entry without a spec
        return False


def unbuildable(rig: RigFile) -> list[str]:
    """Why :func:`build_rig` cannot build ``rig`` (empty: it can), without building it."""
    kind = rig_kind(rig)
    if kind is RigKind.BENCH:
        if not ezsp_available():
            return [f"EZSP radios: {EZSP_MODULE} is not available"]
        try:
            from gbhil.rigs.bench_rig import bench_mismatches
        except ImportError as exc:  # bellows / zigpy missing
            return [f"EZSP radios: the bench rig builder is not available ({exc})"]
        return bench_mismatches(rig)
    if kind is RigKind.EZSP:
        return [] if ezsp_available() else [f"EZSP radios: {EZSP_MODULE} is not available"]
    if kind is RigKind.MQTT_EZSP:
        return split_ezsp_mismatches(rig)
    return embedded_mismatches(rig, split=kind is RigKind.MQTT)


def split_ezsp_mismatches(rig: RigFile) -> list[str]:
    """Why the MQTT + EZSP builder cannot build ``rig`` (empty: it can).

    It builds the split rig with the hub behind one emulated EZSP stick: the rest must be
    what the split rig builds, and the stick's bands those the device hosts' meters use.
    """
    if not ezsp_available():
        return [f"EZSP radios: {EZSP_MODULE} is not available"]
    ezsp = [p for p in rig.places if p.radio.driver is RadioDriver.EZSP]
    out = [m for m in embedded_mismatches(rig, split=True) if not _is_ezsp_radio(m, ezsp)]
    if len(ezsp) != 1 or len(rig.places) != 1:
        out.append("an MQTT + EZSP rig has exactly one place, with the EZSP radio")
        return out
    radio = ezsp[0].radio
    if not radio.emulated:
        out.append(
            f"{ezsp[0].name}: the stick at {radio.port} cannot carry simulated devices "
            "(use emulated = true)"
        )
    bands = {name: [b] for name, b in _place_channels(ezsp[0]).items()}
    for device in rig.devices:
        role = device.role.value
        if device.process != MAIN_PROCESS and bands.get(role) != DEVICE_CHANNELS.get(role):
            out.append(
                f"{role} {device.name!r} in process {device.process!r} listens on "
                f"{DEVICE_CHANNELS.get(role)} in a device host, "
                f"not on the place's {bands.get(role)}"
            )
    return out


def _is_ezsp_radio(mismatch: str, places: list[Any]) -> bool:
    return any(mismatch == f"{p.name}: {p.radio.describe()}" for p in places)


def _place_channels(place: Any) -> dict[str, tuple[int, int]]:
    """(page, channel) each device listens on at an EZSP place (the GSME on sub-GHz)."""
    radio = place.radio
    two_four = (PAGE_2_4_GHZ, radio.band.first_channel)
    sub = radio.sub_ghz
    out = {name: two_four for name in ("esme", "ppmid", "hht")}
    out["gsme"] = (sub.page, sub.first_channel) if sub is not None else two_four
    return out


def split_ezsp_plan(rig: RigFile, **options: Any) -> Any:
    """The :class:`~gbhil.bus.split_rig.SplitPlan` of an MQTT + EZSP rig file."""
    from dataclasses import replace

    from gbhil.bus.split_ezsp import EzspPlan
    from gbhil.rigs.check import emulator_config

    [place] = [p for p in rig.places if p.radio.driver is RadioDriver.EZSP]
    radio = place.radio
    config = replace(emulator_config(rig, place), eui64=DEVICES["chf"][0])
    if radio.sub_ghz is not None and config.phy_interfaces < 2:
        raise RigBuildError(
            f"place {place.name!r} configures sub-GHz page {radio.sub_ghz.page} but its "
            "emulated NCP has one PHY: set [place.radio.emulator] phy_interfaces = 2"
        )
    channels = _place_channels(place)
    ezsp = EzspPlan(
        place.name,
        config,
        radio.band.first_channel,
        None if radio.sub_ghz is None else channels["gsme"],
        {name: [pc] for name, pc in channels.items()},
    )
    return replace(split_plan(rig, **options), ezsp=ezsp)


def bus_address(rig: RigFile, override: str | None = None) -> Any:
    """The broker of an MQTT rig: ``override``, else $GBHIL_BUS_URL, else the rig file's."""
    from gbhil.bus.mqtt import BrokerAddress, BusError

    url = override or os.environ.get(BUS_URL_ENV) or rig.bus.url
    try:
        return BrokerAddress.parse(url)
    except BusError as exc:
        raise RigBuildError(f"bus URL {url!r}: {exc}") from None


def broker_unreachable(rig: RigFile, override: str | None = None) -> str | None:
    """Why the MQTT rig's broker does not accept a TCP connection (None: it does).

    A cheap probe before a run (the full MQTT CONNECT happens when the rig is built).
    """
    address = bus_address(rig, override)
    try:
        with socket.create_connection((address.host, address.port), BROKER_PROBE_S):
            return None
    except OSError as exc:
        return f"the MQTT broker at {address} is not reachable ({exc.strerror or exc})"


def clock_rate(rate: float | None = None) -> float:
    """``rate``, else $GBHIL_BUS_RATE, else real time; a positive number either way."""
    if rate is None:
        text = os.environ.get(BUS_RATE_ENV)
        if text is None:
            return DEFAULT_RATE
        try:
            rate = float(text)
        except ValueError:
            raise RigBuildError(f"${BUS_RATE_ENV}={text!r} is not a number") from None
    if not rate > 0:
        raise RigBuildError(f"clock rate must be positive, got {rate!r}")
    return float(rate)


def device_processes(rig: RigFile) -> dict[str, tuple[str, ...]]:
    """Device process name -> roles it runs, for every process but the main one."""
    out: dict[str, list[str]] = {}
    for device in rig.devices:
        if device.process != MAIN_PROCESS:
            out.setdefault(device.process, []).append(device.role.value)
    return {name: tuple(roles) for name, roles in out.items()}


def split_plan(
    rig: RigFile,
    *,
    seed: int | None = None,
    start: datetime | None = None,
    capture: str | Path | None = None,
    bus_url: str | None = None,
    rate: float | None = None,
) -> Any:
    """The :class:`gbhil.bus.split_rig.SplitPlan` of an MQTT rig file."""
    from gbhil.bus.split_rig import SplitPlan

    if seed is None:
        seed = rig.pki.seed
    if seed is None:  # a fresh PKI, but every process must derive the same one
        seed = secrets.randbelow(2**31)
    return SplitPlan(
        rig.name,
        bus_address(rig, bus_url),
        seed,
        device_processes(rig),
        start or DEFAULT_START,
        clock_rate(rate),
        capture,
    )


def build_rig(
    rig_file: RigSource,
    *,
    seed: int | None = None,
    start: datetime | None = None,
    capture: str | Path | None = None,
    bus_url: str | None = None,
    rate: float | None = None,
) -> Any:
    """Build the rig ``rig_file`` describes (not started: ``rig.run(rig.start())`` next).

    ``seed`` overrides the file's PKI seed; ``bus_url`` and ``rate`` (MQTT rigs only)
    override the broker and the shared clock's rate, else $GBHIL_BUS_URL /
    $GBHIL_BUS_RATE, else the file's broker and real time.
    """
    rig = _load(rig_file)
    kind = rig_kind(rig)
    if kind is RigKind.BENCH:
        if not ezsp_available():
            raise RigBuildError(
                f"cannot build rig {rig.name!r}: EZSP radios: {EZSP_MODULE} is not available"
            )
        try:
            from gbhil.rigs.bench_rig import build_bench_rig
        except ImportError as exc:  # bellows / zigpy missing
            raise RigBuildError(
                f"cannot build rig {rig.name!r}: the bench rig builder is not available ({exc})"
            ) from None
        return build_bench_rig(rig, seed=seed, start=start, capture=capture)
    problems = unbuildable(rig)
    if kind is RigKind.EZSP:
        if problems:
            raise RigBuildError(f"cannot build rig {rig.name!r}: {'; '.join(problems)}")
        try:
            builder = getattr(importlib.import_module(EZSP_MODULE), EZSP_BUILDER)
        except (ImportError, AttributeError) as exc:
            raise RigBuildError(
                f"cannot build rig {rig.name!r}: the EZSP rig builder is not available ({exc})"
            ) from None
        return builder(rig_file, seed=seed, start=start, capture=capture)
    if problems:
        raise RigBuildError(
            f"cannot build rig {rig.name!r}: it differs from the embedded simulated rig in: "
            + "; ".join(problems)
        )
    if kind in BUS_KINDS:
        from gbhil.bus.split_rig import open_split_rig

        make_plan = split_ezsp_plan if kind is RigKind.MQTT_EZSP else split_plan
        return open_split_rig(
            make_plan(rig, seed=seed, start=start, capture=capture, bus_url=bus_url, rate=rate)
        )
    return SimulatedRig.build(
        seed=seed if seed is not None else rig.pki.seed,
        start=start or DEFAULT_START,
        capture=capture,
    )


__all__ = [
    "BUS_KINDS",
    "BUS_RATE_ENV",
    "BUS_URL_ENV",
    "DEFAULT_RATE",
    "RigBuildError",
    "RigKind",
    "broker_unreachable",
    "build_rig",
    "bus_address",
    "clock_rate",
    "device_processes",
    "embedded_mismatches",
    "rig_kind",
    "split_ezsp_mismatches",
    "split_ezsp_plan",
    "split_plan",
    "unbuildable",
]
