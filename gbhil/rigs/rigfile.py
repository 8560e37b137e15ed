"""Rig files: which radios, instruments, relays, devices, bus and PKI make up a rig.

A rig file (TOML, read with :mod:`tomllib`) is the one place that says whether a
device is simulated or real, which USB stick serves which HAN, which VISA
instrument is the mains and how the parts of a rig talk to each other
(architecture rule 2: tests and suites never know, the rig file decides). It
is a resource description in the labgrid manner; ``gbhil rig check``
(:mod:`gbhil.rigs.check`) then probes every resource it names.

:func:`load_rig` parses and validates in one pass and reports *every* problem
it finds, each naming the file, the table and the key (:class:`RigProblem`),
so an operator fixes a rig file in one go rather than one error per run.
Everything the validation knows (roles, drivers, defaults, pages) is in the
catalogue at the top of this module; docs/rigs.md is the reference.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from gbhil.devices.core import DeviceType
from gbhil.devices.trust import Role
from gbhil.han.channels import (
    PAGE_2_4_GHZ,
    PAGES,
    SUB_GHZ_PAGES,
    ChannelError,
    ChannelMask,
    is_sub_ghz,
    page_info,
    validate,
)
from gbhil.han.ezsp.frames import EMULATED_VERSIONS, MIN_PROTOCOL_VERSION
from gbhil.han.joining import JoinError, check_install_code
from gbhil.rigs.instruments import SIM_PSU_DEFINITIONS
from gbhil.rigs.instruments.model import MAINS_SPEC
from gbhil.rigs.instruments.psu import ModelSpec
from gbhil.rigs.instruments.scpi import CATALOGUE
from gbhil.rigs.simulated import PARTIES, ROLE_NAMES
from gbhil.smki.keystore import parse_eui

_Named = TypeVar("_Named")
_Choice = TypeVar("_Choice", bound=StrEnum)

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------


class RadioDriver(StrEnum):
    """How a place reaches its HAN."""

    EZSP = "ezsp"  #: a Silicon Labs EmberZNet NCP over ASH (USB stick), or gbhil's emulator
    SIMULATED = "simulated"  #: gbhil's in-process SimulatedMedium


class DeviceRole(StrEnum):
    """What a device is on the HAN (GBCS device types, plus the HHT)."""

    ESME = "esme"
    GSME = "gsme"
    CHF = "chf"
    GPF = "gpf"
    PPMID = "ppmid"
    HHT = "hht"


class DeviceKind(StrEnum):
    """Whether gbhil simulates a device or a real one sits on the bench."""

    SIMULATED = "simulated"
    REAL = "real"


class InstrumentRole(StrEnum):
    """What a rig uses an instrument for."""

    MAINS = "mains"  #: the supply that feeds the Comms Hub and the ESME: power-outage scenarios
    SUPPLY = "supply"  #: any other bench supply (relays, auxiliary power)


class PkiSource(StrEnum):
    """Where the rig's keys and certificates come from."""

    GENERATED = "generated"  #: a fresh test PKI per run (``gbhil.smki.generate_pki``)
    FOLDER = "folder"  #: a folder ``KeyStore.load`` reads (PKI, RTDS or orgkeys layout)
    ZAZ1 = "zaz1"  #: a ZAZ1 ``keystore.json``


class BusKind(StrEnum):
    """How the parts of a rig exchange events."""

    IN_PROCESS = "in-process"
    MQTT = "mqtt"


#: GBCS device type behind each role.
DEVICE_TYPES: Final[Mapping[DeviceRole, DeviceType]] = {
    DeviceRole.ESME: DeviceType.ESME,
    DeviceRole.GSME: DeviceType.GSME,
    DeviceRole.CHF: DeviceType.CHF,
    DeviceRole.GPF: DeviceType.GPF,
    DeviceRole.PPMID: DeviceType.PPMID,
    DeviceRole.HHT: DeviceType.HHT,
}
#: Model profile (under the profile folder) a simulated device uses when the rig file names none;
#: roles missing here take no profile.
DEFAULT_PROFILES: Final[Mapping[DeviceRole, str]] = {
    DeviceRole.ESME: "esme.toml",
    DeviceRole.GSME: "gsme.toml",
    DeviceRole.CHF: "chf.toml",
    DeviceRole.GPF: "gpf.toml",
}
#: Where profiles live unless ``[rig] profiles`` says otherwise (the repository's devices/).
DEFAULT_PROFILE_DIR: Final = Path(__file__).resolve().parents[2] / "devices"
#: Roles whose *simulated* device talks on sub-GHz only (the simulated GSME, see simulated.py).
SUB_GHZ_ROLES: Final = frozenset({DeviceRole.GSME})
#: Roles that are the Comms Hub: one of each per place, both real or both simulated.
HUB_ROLES: Final = frozenset({DeviceRole.CHF, DeviceRole.GPF})
#: Real devices that join the HAN and so need their install code in the CHF Device Log.
JOINING_ROLES: Final = frozenset(set(DeviceRole) - HUB_ROLES)

#: DCC parties a rig's PKI holds, by the names ``[pki.parties]`` uses.
PARTY_ROLES: Final[Mapping[str, Role]] = {name: role for role, name in ROLE_NAMES.items()}
DEFAULT_PARTIES: Final[Mapping[str, bytes]] = {ROLE_NAMES[r]: e for r, e in PARTIES.items()}

#: EZSP protocol versions accepted unless a radio says otherwise: gbhil's minimum (EmberZNet
#: 7.4) to the newest bellows 1.2 has a handler for.
EZSP_NEWEST_KNOWN: Final = 19
DEFAULT_EZSP_VERSIONS: Final = (MIN_PROTOCOL_VERSION, EZSP_NEWEST_KNOWN)
#: EmberZNet NCP UART defaults (docs/radios.md).
DEFAULT_BAUDRATE: Final = 115200
FLOW_CONTROLS: Final = ("software", "hardware")
DEFAULT_FLOW_CONTROL: Final = "software"
#: PHY count of a dual-PHY (2.4 GHz + sub-GHz) NCP; the emulator models 1 or 2.
DUAL_PHY: Final = 2
EMULATOR_PHY_CHOICES: Final = (1, DUAL_PHY)

INSTRUMENT_DRIVER_AUTO: Final = "auto"  #: pick the driver from the *IDN? reply
INSTRUMENT_DRIVER_SIMULATED: Final = "simulated"  #: gbhil's behavioural PSU, no VISA
INSTRUMENT_CATALOGUE: Final[Mapping[str, ModelSpec]] = {e.key: e.spec for e in CATALOGUE}
INSTRUMENT_DRIVERS: Final = (
    INSTRUMENT_DRIVER_AUTO,
    INSTRUMENT_DRIVER_SIMULATED,
    *INSTRUMENT_CATALOGUE,
)
VISA_SIM_BACKEND: Final = "@sim"

IN_PROCESS_URL: Final = "in-process"
MQTT_SCHEME: Final = "mqtt"
MQTT_DEFAULT_PORT: Final = 1883

#: The process that runs a device unless ``process`` names another (needs an MQTT bus).
DEFAULT_PROCESS: Final = "main"
#: Names of places, instruments, relays, devices, processes: safe in topics and file names.
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VERSION_TEXT: Final = re.compile(r"(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?")

# Keys of each table; a key of another radio driver gets a message saying so.
RIG_KEYS: Final = ("name", "description", "profiles")
PKI_KEYS: Final = ("generated", "seed", "folder", "zaz1", "parties")
BUS_KEYS: Final = ("url",)
PLACE_KEYS: Final = ("name", "description", "radio")
RADIO_COMMON_KEYS: Final = ("driver", "eui", "page", "channel", "mask", "sub_ghz")
RADIO_EZSP_KEYS: Final = (
    "port",
    "emulated",
    "ezsp_versions",
    "stack_min",
    "baudrate",
    "flow_control",
    "cbke",
    "emulator",
)
RADIO_KEYS: Final[Mapping[RadioDriver, tuple[str, ...]]] = {
    RadioDriver.EZSP: RADIO_COMMON_KEYS + RADIO_EZSP_KEYS,
    RadioDriver.SIMULATED: RADIO_COMMON_KEYS,
}
BAND_KEYS: Final = ("page", "channel", "mask")
EMULATOR_KEYS: Final = ("protocol_version", "stack_version", "phy_interfaces", "cbke_certificate")
INSTRUMENT_KEYS: Final = (
    "name",
    "description",
    "resource",
    "driver",
    "backend",
    "definitions",
    "model",
    "serial",
    "role",
    "channel",
    "write_termination",
    "timeout_ms",
)
RELAY_KEYS: Final = ("name", "description", "instrument", "channel")
DEVICE_KEYS: Final = (
    "name",
    "description",
    "role",
    "eui",
    "kind",
    "place",
    "process",
    "profile",
    "install_code",
    "relay",
)
TOP_KEYS: Final = ("rig", "pki", "bus", "place", "instrument", "relay", "device")


# ---------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RigProblem:
    """One thing wrong with a rig file, located as precisely as TOML allows.

    ``table`` is the TOML table name (``place.radio``), ``index`` the 1-based
    position of the ``[[array]]`` entry it belongs to, ``name`` that entry's
    ``name`` when it has one, ``key`` the offending key (None for the table).
    """

    path: Path | None
    table: str
    message: str
    key: str | None = None
    index: int | None = None
    name: str | None = None

    @property
    def where(self) -> str:
        """``[place.radio] of place #1 'bench'``: the table as an operator finds it."""
        if not self.table:
            return "top level"
        top = self.table.split(".", 1)[0]
        if self.index is None:
            return f"[{self.table}]"
        entry = f"#{self.index}" + (f" {self.name!r}" if self.name else "")
        if self.table == top:
            return f"[[{top}]] {entry}"
        return f"[{self.table}] of {top} {entry}"

    def __str__(self) -> str:
        parts = [str(self.path)] if self.path is not None else []
        if self.table or self.key is not None:
            parts.append(self.where)
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        return ": ".join([*parts, self.message])


class RigFileError(Exception):
    """A rig file that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: Collection[RigProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in rig file"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RadioBand:
    """One radio band of a place: a page and a channel, or a set of channels (a mask)."""

    page: int
    channel: int | None = None
    mask: frozenset[int] | None = None

    @property
    def channels(self) -> tuple[int, ...]:
        """The channels the radio may use, ascending."""
        if self.channel is not None:
            return (self.channel,)
        return tuple(sorted(self.mask or ()))

    @property
    def first_channel(self) -> int:
        """The channel a radio starts on: the channel, or the lowest of the mask."""
        return self.channels[0]

    @property
    def sub_ghz(self) -> bool:
        return is_sub_ghz(self.page)

    @property
    def channel_mask(self) -> ChannelMask:
        """As a 32-bit Zigbee channel mask (page in the top bits)."""
        return ChannelMask.of(self.page, self.channels)

    def __str__(self) -> str:
        if self.channel is not None:
            return f"page {self.page} channel {self.channel}"
        return f"page {self.page} mask 0x{self.channel_mask.encode():08X}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"page": self.page}
        if self.channel is not None:
            out["channel"] = self.channel
        else:
            out["mask"] = list(self.channels)
        return out


@dataclass(frozen=True)
class EmulatorSettings:
    """What kind of stick the EZSP emulator plays; None = follow what the rig needs."""

    protocol_version: int | None = None
    stack_version: tuple[int, int, int, int] | None = None
    phy_interfaces: int | None = None
    cbke_certificate: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.protocol_version is not None:
            out["protocol_version"] = self.protocol_version
        if self.stack_version is not None:
            out["stack_version"] = ".".join(map(str, self.stack_version))
        if self.phy_interfaces is not None:
            out["phy_interfaces"] = self.phy_interfaces
        if self.cbke_certificate is not None:
            out["cbke_certificate"] = self.cbke_certificate
        return out


@dataclass(frozen=True)
class Radio:
    """The radio of a place: a simulated medium, a USB EZSP stick or the emulator on a pty."""

    driver: RadioDriver
    band: RadioBand
    sub_ghz: RadioBand | None = None
    eui: bytes | None = None
    port: str | None = None
    emulated: bool = False
    ezsp_versions: tuple[int, int] = DEFAULT_EZSP_VERSIONS
    stack_min: tuple[int, int, int] | None = None
    baudrate: int = DEFAULT_BAUDRATE
    flow_control: str = DEFAULT_FLOW_CONTROL
    cbke: bool | None = None
    emulator: EmulatorSettings | None = None

    @property
    def bands(self) -> tuple[RadioBand, ...]:
        return (self.band,) if self.sub_ghz is None else (self.band, self.sub_ghz)

    @property
    def has_sub_ghz(self) -> bool:
        """Whether the rig file gives this radio a GB868 band."""
        return any(b.sub_ghz for b in self.bands)

    @property
    def channels(self) -> list[tuple[int, int]]:
        """``(page, channel)`` per band, as the medium and ``HUB_CHANNELS`` spell them."""
        return [(b.page, b.first_channel) for b in self.bands]

    @property
    def is_real(self) -> bool:
        """A physical stick: probed on its serial port."""
        return self.driver is RadioDriver.EZSP and not self.emulated

    def describe(self) -> str:
        if self.driver is RadioDriver.SIMULATED:
            where = "simulated medium"
        elif self.emulated:
            where = "EZSP emulator on a pty"
        else:
            where = f"EZSP at {self.port}"
        return f"{where}, " + " + ".join(str(b) for b in self.bands)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"driver": self.driver.value, **self.band.to_dict()}
        if self.eui is not None:
            out["eui"] = self.eui.hex().upper()
        if self.sub_ghz is not None:
            out["sub_ghz"] = self.sub_ghz.to_dict()
        if self.driver is RadioDriver.SIMULATED:
            return out
        if self.port is not None:
            out["port"] = self.port
        out["emulated"] = self.emulated
        out["ezsp_versions"] = list(self.ezsp_versions)
        if self.stack_min is not None:
            out["stack_min"] = ".".join(map(str, self.stack_min))
        out["baudrate"] = self.baudrate
        out["flow_control"] = self.flow_control
        if self.cbke is not None:
            out["cbke"] = self.cbke
        if self.emulator is not None:
            out["emulator"] = self.emulator.to_dict()
        return out


@dataclass(frozen=True)
class Place:
    """A bench position: one HAN, served by one radio."""

    name: str
    radio: Radio
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["radio"] = self.radio.to_dict()
        return out


@dataclass(frozen=True)
class Instrument:
    """A bench instrument (a PSU), real over VISA or gbhil's behavioural model."""

    name: str
    driver: str = INSTRUMENT_DRIVER_AUTO
    resource: str | None = None
    backend: str | None = None
    definitions: str | None = None
    model: str | None = None
    serial: str | None = None
    role: InstrumentRole = InstrumentRole.SUPPLY
    channel: int = 1
    write_termination: str | None = None
    timeout_ms: int | None = None
    description: str = ""

    @property
    def simulated(self) -> bool:
        return self.driver == INSTRUMENT_DRIVER_SIMULATED

    @property
    def spec(self) -> ModelSpec | None:
        """The model's channels when the rig file pins the driver; None for ``auto``."""
        if self.simulated:
            return MAINS_SPEC
        return INSTRUMENT_CATALOGUE.get(self.driver)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["driver"] = self.driver
        for key in ("resource", "backend", "definitions", "model", "serial"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["role"] = self.role.value
        out["channel"] = self.channel
        if self.write_termination is not None:
            out["write_termination"] = self.write_termination
        if self.timeout_ms is not None:
            out["timeout_ms"] = self.timeout_ms
        return out


@dataclass(frozen=True)
class Relay:
    """An instrument output used as a relay (e.g. the coil of a mains contactor)."""

    name: str
    instrument: str
    channel: int
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update(instrument=self.instrument, channel=self.channel)
        return out


@dataclass(frozen=True)
class Device:
    """A device of the rig: role, identity, where it is and whether gbhil simulates it."""

    name: str
    role: DeviceRole
    eui: bytes
    place: str
    kind: DeviceKind = DeviceKind.SIMULATED
    process: str = DEFAULT_PROCESS
    profile: str | None = None
    install_code: bytes | None = None
    relay: str | None = None
    description: str = ""

    @property
    def simulated(self) -> bool:
        return self.kind is DeviceKind.SIMULATED

    @property
    def device_type(self) -> DeviceType:
        return DEVICE_TYPES[self.role]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update(
            role=self.role.value,
            eui=self.eui.hex().upper(),
            kind=self.kind.value,
            place=self.place,
            process=self.process,
        )
        if self.profile is not None:
            out["profile"] = self.profile
        if self.install_code is not None:
            out["install_code"] = self.install_code.hex().upper()
        if self.relay is not None:
            out["relay"] = self.relay
        return out


@dataclass(frozen=True)
class Pki:
    """The rig's keys: generated per run (optionally seeded) or loaded from disk."""

    source: PkiSource = PkiSource.GENERATED
    seed: int | None = None
    path: str | None = None
    parties: Mapping[str, bytes] = field(default_factory=lambda: dict(DEFAULT_PARTIES))

    @property
    def party_roles(self) -> dict[Role, bytes]:
        """``[pki.parties]`` keyed like :data:`gbhil.rigs.simulated.PARTIES`."""
        return {PARTY_ROLES[name]: eui for name, eui in self.parties.items()}

    def describe(self) -> str:
        if self.source is PkiSource.GENERATED:
            return "generated " + ("afresh" if self.seed is None else f"from seed {self.seed}")
        return f"{self.source.value} {self.path}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.source is PkiSource.GENERATED:
            out["generated"] = True
            if self.seed is not None:
                out["seed"] = self.seed
        else:
            out[self.source.value] = self.path
        out["parties"] = {name: eui.hex().upper() for name, eui in self.parties.items()}
        return out


@dataclass(frozen=True)
class Bus:
    """The event bus: in-process, or an MQTT broker shared by several processes."""

    url: str = IN_PROCESS_URL

    @property
    def kind(self) -> BusKind:
        return BusKind.IN_PROCESS if self.url == IN_PROCESS_URL else BusKind.MQTT

    @property
    def host(self) -> str | None:
        return urlsplit(self.url).hostname if self.kind is BusKind.MQTT else None

    @property
    def port(self) -> int | None:
        if self.kind is not BusKind.MQTT:
            return None
        return urlsplit(self.url).port or MQTT_DEFAULT_PORT

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url}


@dataclass(frozen=True)
class RigFile:
    """A validated rig: build it with :func:`load_rig` or :func:`parse_rig`."""

    name: str
    description: str = ""
    profiles: str | None = None
    pki: Pki = field(default_factory=Pki)
    bus: Bus = field(default_factory=Bus)
    places: tuple[Place, ...] = ()
    instruments: tuple[Instrument, ...] = ()
    relays: tuple[Relay, ...] = ()
    devices: tuple[Device, ...] = ()
    path: Path | None = field(default=None, compare=False)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the file are relative to the file's folder."""
        return self.path.parent if self.path is not None else Path.cwd()

    def resolve(self, relative: str) -> Path:
        """A path from the rig file, made absolute against :attr:`base_dir`."""
        return resolve_path(self.base_dir, relative)

    @property
    def pki_path(self) -> Path | None:
        """The PKI folder or ZAZ1 keystore.json, absolute; None for a generated PKI."""
        return None if self.pki.path is None else self.resolve(self.pki.path)

    @property
    def profile_dir(self) -> Path:
        return DEFAULT_PROFILE_DIR if self.profiles is None else self.resolve(self.profiles)

    def profile_path(self, device: Device) -> Path | None:
        """The model profile a simulated device loads (None: real, or a role without one)."""
        if not device.simulated:
            return None
        name = device.profile if device.profile is not None else DEFAULT_PROFILES.get(device.role)
        return None if name is None else resolve_path(self.profile_dir, name)

    def instrument_definitions(self, instrument: Instrument) -> Path | None:
        """The pyvisa-sim YAML of an ``@sim`` instrument (gbhil's own unless named)."""
        if instrument.backend != VISA_SIM_BACKEND:
            return None
        if instrument.definitions is None:
            return SIM_PSU_DEFINITIONS
        return self.resolve(instrument.definitions)

    def place(self, name: str) -> Place:
        return _by_name(self.places, name, "place")

    def instrument(self, name: str) -> Instrument:
        return _by_name(self.instruments, name, "instrument")

    def relay(self, name: str) -> Relay:
        return _by_name(self.relays, name, "relay")

    def device(self, name: str) -> Device:
        return _by_name(self.devices, name, "device")

    def devices_at(self, place: str) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.place == place)

    @property
    def mains(self) -> Instrument | None:
        """The instrument whose output is the mains of the hub and the ESME, if any."""
        return next((i for i in self.instruments if i.role is InstrumentRole.MAINS), None)

    @property
    def processes(self) -> tuple[str, ...]:
        return tuple(sorted({d.process for d in self.devices} | {DEFAULT_PROCESS}))

    def needs_cbke(self, place: Place) -> bool:
        """Whether the place's radio needs a CBKE certificate: real SMETS2 devices on its HAN."""
        if place.radio.cbke is not None:
            return place.radio.cbke
        return any(not d.simulated for d in self.devices_at(place.name))

    def to_dict(self) -> dict[str, Any]:
        """Canonical form: what :func:`parse_rig` reads back into an equal rig."""
        rig: dict[str, Any] = {"name": self.name}
        if self.description:
            rig["description"] = self.description
        if self.profiles is not None:
            rig["profiles"] = self.profiles
        out: dict[str, Any] = {"rig": rig, "pki": self.pki.to_dict(), "bus": self.bus.to_dict()}
        for key, items in (
            ("place", self.places),
            ("instrument", self.instruments),
            ("relay", self.relays),
            ("device", self.devices),
        ):
            if items:
                out[key] = [item.to_dict() for item in items]
        return out


def resolve_path(base: Path, relative: str) -> Path:
    """``relative`` against ``base``, ``~`` expanded, made canonical (pyvisa-sim caches by path)."""
    path = Path(relative).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _by_name(items: tuple[_Named, ...], name: str, what: str) -> _Named:
    for item in items:
        if getattr(item, "name", None) == name:
            return item
    known = ", ".join(str(getattr(i, "name", "?")) for i in items) or "none"
    raise KeyError(f"no {what} named {name!r} (known: {known})")


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_rig(path: str | Path) -> RigFile:
    """Read and validate a rig file; :class:`RigFileError` lists every problem."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RigFileError([RigProblem(file, "", "no such rig file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RigFileError([RigProblem(file, "", f"cannot read the rig file: {exc}")]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RigFileError([RigProblem(file, "", f"not valid TOML: {exc}")]) from None
    return parse_rig(data, path=file)


def parse_rig(data: Mapping[str, Any], *, path: Path | None = None) -> RigFile:
    """Validate a rig file's parsed TOML; relative paths resolve against ``path``'s folder."""
    parser = _Parser(path)
    rig = parser.parse(data)
    if parser.problems or rig is None:
        raise RigFileError(parser.problems)
    return rig


# ---------------------------------------------------------------------------
# The parser: collects problems instead of stopping at the first
# ---------------------------------------------------------------------------

_MISSING: Final = object()


class _Table:
    """One TOML table being read: typed getters that record problems, unknown-key check."""

    def __init__(
        self,
        parser: _Parser,
        data: Mapping[str, Any],
        table: str,
        known: Collection[str],
        *,
        index: int | None = None,
        name: str | None = None,
        elsewhere: Mapping[str, str] | None = None,
    ) -> None:
        self.parser = parser
        self.data = data
        self.table = table
        self.index = index
        own = data.get("name")
        self.name = own if isinstance(own, str) else name
        for key in data:
            if key in known:
                continue
            if elsewhere and key in elsewhere:
                self.problem(key, elsewhere[key])
            else:
                self.problem(key, "unknown key" + _did_you_mean(key, known))

    def problem(self, key: str | None, message: str) -> None:
        self.parser.problems.append(
            RigProblem(self.parser.path, self.table, message, key, self.index, self.name)
        )

    def sub(
        self,
        key: str,
        known: Collection[str],
        *,
        required: bool = False,
        elsewhere: Mapping[str, str] | None = None,
    ) -> _Table | None:
        """The sub-table ``key`` (TOML name ``<this table>.<key>``), or None."""
        value = self.data.get(key, _MISSING)
        table = f"{self.table}.{key}" if self.table else key
        if value is _MISSING:
            if required:
                self.problem(key, f"missing: a [{table}] table is required")
            return None
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table, got {_kind(value)}")
            return None
        return _Table(
            self.parser, value, table, known, index=self.index, name=self.name, elsewhere=elsewhere
        )

    def value(self, key: str, types: type | tuple[type, ...], what: str, required: bool) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self.problem(key, f"missing ({what} is required)")
            return None
        allowed = types if isinstance(types, tuple) else (types,)
        # bool is an int subclass: `channel = true` must not read as channel 1.
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            self.problem(key, f"expected {what}, got {_kind(value)} {value!r}")
            return None
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.value(key, str, "a string", required)
        if value is not None and not value.strip():
            self.problem(key, "must not be empty")
            return None
        return value

    def name_(self, key: str = "name", *, required: bool = True) -> str | None:
        value = self.text(key, required=required)
        if value is not None and not NAME_PATTERN.fullmatch(value):
            self.problem(
                key,
                f"{value!r} is not a name (up to 64 letters, digits, '_', '.', '-', "
                "starting with a letter or digit)",
            )
            return None
        return value

    def integer(
        self, key: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        value = self.value(key, int, "an integer", required)
        if value is not None and minimum is not None and value < minimum:
            self.problem(key, f"{value} is below the minimum {minimum}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        value: bool | None = self.value(key, bool, "true or false", False)
        return value

    def choice(
        self, key: str, enum: type[_Choice], *, default: _Choice | None = None
    ) -> _Choice | None:
        value = self.text(key, required=default is None)
        if value is None:
            return None if key in self.data else default
        try:
            return enum(value)
        except ValueError:
            self.problem(key, f"{value!r} is not one of: " + ", ".join(e.value for e in enum))
            return None

    def eui(self, key: str, *, required: bool = False) -> bytes | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            return parse_eui(value)
        except ValueError as exc:
            self.problem(key, f"bad EUI-64: {exc} (16 hex digits, e.g. '00DB1234567890A0')")
            return None

    def tables(self, key: str) -> list[Mapping[str, Any]]:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self.problem(key, f"expected an array of tables ([[{key}]]), got {_kind(value)}")
            return []
        return value


def _kind(value: object) -> str:
    """TOML's name for a value's type, for messages."""
    kinds = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (Mapping, "a table"),
    )
    for cls, name in kinds:
        if isinstance(value, cls):
            return name
    return f"a {type(value).__name__}"


def _did_you_mean(key: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return " (known: " + (", ".join(known) or "none") + ")"


def _raw_names(data: Mapping[str, Any], key: str) -> set[str]:
    """``name`` of every ``[[key]]`` entry, also of those that failed validation.

    References are checked against these, so a device on a place whose table
    has an error gets no second, misleading "no such place".
    """
    items = data.get(key)
    if not isinstance(items, list):
        return set()
    return {i["name"] for i in items if isinstance(i, Mapping) and isinstance(i.get("name"), str)}


class _Parser:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.base = path.parent if path is not None else Path.cwd()
        self.problems: list[RigProblem] = []

    def _failed_since(self, count: int) -> bool:
        return len(self.problems) > count

    # -- top level ------------------------------------------------------------------
    def parse(self, data: Mapping[str, Any]) -> RigFile | None:
        top = _Table(self, data, "", TOP_KEYS)
        rig = top.sub("rig", RIG_KEYS, required=True)
        name = rig.name_() if rig is not None else None
        description = (rig.text("description") if rig is not None else None) or ""
        profiles = rig.text("profiles") if rig is not None else None
        profile_dir = DEFAULT_PROFILE_DIR if profiles is None else resolve_path(self.base, profiles)
        if rig is not None and profiles is not None and not profile_dir.is_dir():
            rig.problem("profiles", f"profile folder {profile_dir} does not exist")
        pki = self._pki(top.sub("pki", PKI_KEYS))
        bus = self._bus(top.sub("bus", BUS_KEYS))
        places = self._items(top, "place", PLACE_KEYS, self._place)
        instruments = self._items(top, "instrument", INSTRUMENT_KEYS, self._instrument)
        relays = self._items(top, "relay", RELAY_KEYS, self._relay)
        devices = self._items(top, "device", DEVICE_KEYS, lambda t: self._device(t, profile_dir))
        if "place" not in data:
            top.problem("place", "missing: a rig needs at least one [[place]] with a [place.radio]")
        # Cross-checks run even when [rig], [pki] or [bus] failed: report everything at once.
        rig_file = RigFile(
            name or "?",
            description,
            profiles,
            pki or Pki(),
            bus or Bus(),
            tuple(p for p, _ in places),
            tuple(i for i, _ in instruments),
            tuple(r for r, _ in relays),
            tuple(d for d, _ in devices),
            self.path,
        )
        refs = {key: _raw_names(data, key) for key in ("place", "instrument", "relay")}
        self._check_names(places, instruments, relays, devices)
        self._check_relays(instruments, relays, refs["instrument"])
        self._check_devices(rig_file, devices, refs)
        return None if name is None or pki is None or bus is None else rig_file

    def _items(
        self, top: _Table, key: str, known: Collection[str], read: Any
    ) -> list[tuple[Any, _Table]]:
        out: list[tuple[Any, _Table]] = []
        for number, data in enumerate(top.tables(key), start=1):
            table = _Table(self, data, key, known, index=number)
            before = len(self.problems)
            item = read(table)
            if item is not None and not self._failed_since(before):
                out.append((item, table))
        return out

    # -- [pki], [bus] ---------------------------------------------------------------
    def _pki(self, table: _Table | None) -> Pki | None:
        if table is None:
            return Pki()
        before = len(self.problems)
        generated = table.boolean("generated")
        seed = table.integer("seed", minimum=0)
        paths = {PkiSource.FOLDER: table.text("folder"), PkiSource.ZAZ1: table.text("zaz1")}
        chosen = [source for source, path in paths.items() if path is not None]
        if generated:
            chosen.insert(0, PkiSource.GENERATED)
        if len(chosen) > 1:
            table.problem(
                chosen[1].value,
                "give exactly one of generated = true, folder, zaz1 "
                f"(found {', '.join(c.value for c in chosen)})",
            )
        elif generated is False and not chosen:
            table.problem(
                "generated", "false, but neither folder nor zaz1 says where the keys come from"
            )
        source = chosen[0] if chosen else PkiSource.GENERATED
        if seed is not None and source is not PkiSource.GENERATED:
            table.problem("seed", f"a seed only applies to a generated PKI, not to {source.value}")
        parties = self._parties(table)
        if self._failed_since(before):
            return None
        return Pki(source, seed, paths.get(source), parties)

    def _parties(self, pki: _Table) -> dict[str, bytes]:
        table = pki.sub("parties", tuple(PARTY_ROLES))
        if table is None:
            return dict(DEFAULT_PARTIES)
        parties: dict[str, bytes] = {}
        seen: dict[bytes, str] = {}
        for name in PARTY_ROLES:
            eui = table.eui(name)
            if eui is None:
                continue
            if eui in seen:
                table.problem(name, f"EUI {eui.hex().upper()} is also party {seen[eui]!r}")
            seen[eui] = name
            parties[name] = eui
        return parties

    def _bus(self, table: _Table | None) -> Bus | None:
        if table is None:
            return Bus()
        before = len(self.problems)
        url = table.text("url") or IN_PROCESS_URL
        problem = _bus_problem(url)
        if problem is not None:
            table.problem("url", problem)
        return None if self._failed_since(before) else Bus(url)

    # -- [[place]] and its radio ----------------------------------------------------
    def _place(self, table: _Table) -> Place | None:
        name = table.name_()
        description = table.text("description") or ""
        radio = self._radio(table)
        if name is None or radio is None:
            return None
        return Place(name, radio, description)

    def _radio(self, place: _Table) -> Radio | None:
        data = place.data.get("radio")
        raw_driver = data.get("driver") if isinstance(data, Mapping) else None
        driver = RadioDriver(raw_driver) if raw_driver in set(RadioDriver) else None
        elsewhere = None
        if driver is RadioDriver.SIMULATED:
            elsewhere = {k: "only for driver 'ezsp', not 'simulated'" for k in RADIO_EZSP_KEYS}
        known = RADIO_KEYS[driver or RadioDriver.EZSP]
        table = place.sub("radio", known, required=True, elsewhere=elsewhere)
        if table is None:
            return None
        before = len(self.problems)
        driver = table.choice("driver", RadioDriver)
        eui = table.eui("eui")
        band = self._band(table, PAGE_2_4_GHZ)
        sub = table.sub("sub_ghz", BAND_KEYS)
        sub_band = self._band(sub, min(SUB_GHZ_PAGES)) if sub is not None else None
        if sub is not None and sub_band is not None:
            if not sub_band.sub_ghz:
                sub.problem(
                    "page",
                    f"page {sub_band.page} is not a sub-GHz page "
                    f"({', '.join(map(str, sorted(SUB_GHZ_PAGES)))})",
                )
            elif band is not None and band.sub_ghz:
                sub.problem(
                    None,
                    f"the radio's main band is already sub-GHz (page {band.page}); "
                    "a radio has one sub-GHz band",
                )
        if driver is RadioDriver.EZSP and band is not None and band.page != PAGE_2_4_GHZ:
            table.problem(
                "page" if "page" in table.data else "mask",
                f"page {band.page} is invalid for an EZSP radio: an EZSP NCP "
                "forms its network on 2.4 GHz (page 0); give the sub-GHz band "
                "in [place.radio.sub_ghz]",
            )
        if driver is RadioDriver.EZSP:
            radio = self._ezsp(table, band, sub_band, eui)
        elif driver is RadioDriver.SIMULATED and band is not None:
            radio = Radio(driver, band, sub_band, eui)
        else:
            radio = None
        return None if self._failed_since(before) else radio

    def _band(self, table: _Table, default_page: int) -> RadioBand | None:
        """``page`` with ``channel`` or ``mask`` (a 32-bit mask, or channels of ``page``)."""
        before = len(self.problems)
        page = table.integer("page")
        channel = table.integer("channel")
        mask = table.data.get("mask")
        if "channel" in table.data and mask is not None:
            table.problem("mask", "give either channel or mask, not both")
        elif "channel" not in table.data and mask is None:
            table.problem("channel", "missing (a channel, or a mask of channels)")
        if self._failed_since(before):
            return None
        if mask is not None:
            return self._mask(table, mask, page, default_page)
        page = default_page if page is None else page
        try:
            validate(page, channel if channel is not None else -1)
        except ChannelError as exc:
            table.problem("page" if page not in PAGES else "channel", str(exc))
            return None
        return RadioBand(page, channel=channel)

    def _mask(
        self, table: _Table, value: object, page: int | None, default_page: int
    ) -> RadioBand | None:
        try:
            if isinstance(value, int) and not isinstance(value, bool):
                mask = ChannelMask.decode(value)
                if page is not None and page != mask.page:
                    raise ChannelError(
                        f"mask 0x{value:08X} is for page {mask.page}, but page = {page}"
                    )
            elif isinstance(value, list) and all(
                isinstance(c, int) and not isinstance(c, bool) for c in value
            ):
                page = default_page if page is None else page
                page_info(page)
                if len(set(value)) != len(value):
                    raise ChannelError(f"channel mask {value} lists a channel twice")
                mask = ChannelMask.of(page, value)
            else:
                raise ChannelError(
                    f"a mask is a 32-bit integer or an array of channels, got {_kind(value)}"
                )
        except ChannelError as exc:
            table.problem("page" if page is not None and page not in PAGES else "mask", str(exc))
            return None
        return RadioBand(mask.page, mask=mask.channels)

    def _ezsp(
        self, table: _Table, band: RadioBand | None, sub: RadioBand | None, eui: bytes | None
    ) -> Radio | None:
        port = table.text("port")
        emulated = bool(table.boolean("emulated"))
        if emulated and "port" in table.data:
            table.problem(
                "port",
                "port and emulated = true exclude each other: the emulator "
                "serves its own pseudo-terminal",
            )
        elif not emulated and "port" not in table.data:
            table.problem(
                "port",
                "missing: the serial port of the stick (a /dev/serial/by-id/... "
                "path or a serialx URL), or emulated = true",
            )
        versions = self._versions(table)
        stack_min = self._version_text(table, "stack_min", parts=3)
        baudrate = table.integer("baudrate", minimum=1)
        flow_control = table.text("flow_control") or DEFAULT_FLOW_CONTROL
        if flow_control not in FLOW_CONTROLS:
            table.problem(
                "flow_control", f"{flow_control!r} is not one of: " + ", ".join(FLOW_CONTROLS)
            )
        cbke = table.boolean("cbke")
        emulator = self._emulator(table, emulated, versions)
        if band is None or versions is None:
            return None
        return Radio(
            RadioDriver.EZSP,
            band,
            sub,
            eui,
            port,
            emulated,
            versions,
            stack_min,
            baudrate or DEFAULT_BAUDRATE,
            flow_control,
            cbke,
            emulator,
        )

    def _versions(self, table: _Table) -> tuple[int, int] | None:
        value = table.data.get("ezsp_versions", _MISSING)
        if value is _MISSING:
            return DEFAULT_EZSP_VERSIONS
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            table.problem(
                "ezsp_versions", f"expected [lowest, highest] EZSP protocol versions, got {value!r}"
            )
            return None
        low, high = value
        if low < MIN_PROTOCOL_VERSION:
            table.problem(
                "ezsp_versions",
                f"EZSP protocol {low} is too old: gbhil drives "
                f"{MIN_PROTOCOL_VERSION} and later (EmberZNet 7.4+)",
            )
            return None
        if low > high:
            table.problem("ezsp_versions", f"lowest version {low} is above highest {high}")
            return None
        return low, high

    def _version_text(self, table: _Table, key: str, parts: int) -> Any:
        """An EmberZNet version ``7.4.0`` (or ``8.0.2.0``) as a tuple of ints."""
        text = table.text(key)
        if text is None:
            return None
        match = _VERSION_TEXT.fullmatch(text)
        numbers = [int(g) for g in match.groups() if g is not None] if match else []
        if parts == 4 and len(numbers) == 3:
            numbers.append(0)
        if len(numbers) != parts or any(n > 15 for n in numbers):
            example = "7.4.0" if parts == 3 else "8.0.2.0"
            table.problem(
                key, f"{text!r} is not an EmberZNet version like {example!r} (each part 0-15)"
            )
            return None
        return tuple(numbers)

    def _emulator(
        self, radio: _Table, emulated: bool, versions: tuple[int, int] | None
    ) -> EmulatorSettings | None:
        table = radio.sub("emulator", EMULATOR_KEYS)
        if table is None:
            return EmulatorSettings() if emulated else None
        if not emulated:
            radio.problem("emulator", "a [place.radio.emulator] table needs emulated = true")
            return None
        protocol = table.integer("protocol_version")
        emulated_versions = ", ".join(map(str, sorted(EMULATED_VERSIONS)))
        if protocol is not None and protocol not in EMULATED_VERSIONS:
            table.problem(
                "protocol_version",
                f"EZSP protocol {protocol} is not emulated (emulated: {emulated_versions})",
            )
        elif (
            protocol is not None
            and versions is not None
            and not (versions[0] <= protocol <= versions[1])
        ):
            table.problem(
                "protocol_version",
                f"EZSP protocol {protocol} is outside the radio's "
                f"ezsp_versions {versions[0]}..{versions[1]}",
            )
        stack = self._version_text(table, "stack_version", parts=4)
        phys = table.integer("phy_interfaces")
        if phys is not None and phys not in EMULATOR_PHY_CHOICES:
            table.problem(
                "phy_interfaces",
                f"{phys}: the emulator models 1 (2.4 GHz stick) or 2 (dual-PHY GB868 NCP)",
            )
        cert = table.boolean("cbke_certificate")
        return EmulatorSettings(protocol, stack, phys, cert)

    # -- [[instrument]], [[relay]] ----------------------------------------------------
    def _instrument(self, table: _Table) -> Instrument | None:
        name = table.name_()
        description = table.text("description") or ""
        driver = table.text("driver") or INSTRUMENT_DRIVER_AUTO
        if driver not in INSTRUMENT_DRIVERS:
            table.problem(
                "driver",
                f"{driver!r} is not a driver: 'auto', 'simulated' or a "
                "catalogue key" + _did_you_mean(driver, INSTRUMENT_DRIVERS),
            )
        resource = table.text("resource")
        backend = table.text("backend")
        definitions = table.text("definitions")
        model = table.text("model")
        serial = table.text("serial")
        role = table.choice("role", InstrumentRole, default=InstrumentRole.SUPPLY)
        channel = table.integer("channel", minimum=1)
        write_termination = table.value("write_termination", str, "a string", False)
        timeout_ms = table.integer("timeout_ms", minimum=1)
        if driver == INSTRUMENT_DRIVER_SIMULATED:
            for key in (
                "resource",
                "backend",
                "definitions",
                "model",
                "serial",
                "write_termination",
                "timeout_ms",
            ):
                if key in table.data:
                    table.problem(key, "not used by driver 'simulated' (gbhil's behavioural PSU)")
        elif "resource" not in table.data:
            table.problem(
                "resource",
                "missing: the VISA resource name, e.g. 'TCPIP0::192.168.0.32::inst0::INSTR'",
            )
        if backend is not None and not backend.startswith("@"):
            table.problem(
                "backend",
                f"{backend!r} is not a pyvisa backend (e.g. '@py', '@ivi', '{VISA_SIM_BACKEND}')",
            )
        if definitions is not None:
            where = resolve_path(self.base, definitions)
            if backend != VISA_SIM_BACKEND:
                table.problem(
                    "definitions", f"pyvisa-sim definitions need backend = '{VISA_SIM_BACKEND}'"
                )
            elif not where.is_file():
                table.problem("definitions", f"pyvisa-sim file {where} does not exist")
        spec = INSTRUMENT_CATALOGUE.get(driver)
        if driver == INSTRUMENT_DRIVER_SIMULATED:
            spec = MAINS_SPEC
        if channel is not None and spec is not None and channel not in spec.channels:
            table.problem("channel", _channel_message(spec, channel))
        if name is None or role is None:
            return None
        return Instrument(
            name,
            driver,
            resource,
            backend,
            definitions,
            model,
            serial,
            role,
            channel or 1,
            write_termination,
            timeout_ms,
            description,
        )

    def _relay(self, table: _Table) -> Relay | None:
        name = table.name_()
        description = table.text("description") or ""
        instrument = table.text("instrument", required=True)
        channel = table.integer("channel", required=True, minimum=1)
        if name is None or instrument is None or channel is None:
            return None
        return Relay(name, instrument, channel, description)

    # -- [[device]] -----------------------------------------------------------------
    def _device(self, table: _Table, profile_dir: Path) -> Device | None:
        role = table.choice("role", DeviceRole)
        if table.name is None and role is not None:
            table.name = role.value  # problems name the device as the file will
        name = table.name_(required=False) or (role.value if role is not None else None)
        description = table.text("description") or ""
        eui = table.eui("eui", required=True)
        kind = table.choice("kind", DeviceKind, default=DeviceKind.SIMULATED)
        place = table.text("place", required=True)
        process = table.name_("process", required=False) or DEFAULT_PROCESS
        profile = table.text("profile")
        code_text = table.text("install_code")
        relay = table.text("relay")
        install_code = None
        if code_text is not None:
            try:
                install_code = check_install_code(bytes.fromhex(re.sub(r"[\s:-]", "", code_text)))
            except JoinError as exc:
                table.problem("install_code", str(exc))
            except ValueError:
                table.problem("install_code", f"{code_text!r} is not hexadecimal")
        if kind is DeviceKind.SIMULATED:
            for key, why in (
                ("install_code", "gbhil derives a simulated device's install code"),
                ("relay", "a simulated device is powered by the rig's mains"),
            ):
                if key in table.data:
                    table.problem(key, f"only for real devices: {why}")
            if profile is not None and role is not None and role not in DEFAULT_PROFILES:
                table.problem("profile", f"a simulated {role.value} takes no model profile")
            elif role is not None and (profile or role in DEFAULT_PROFILES):
                where = resolve_path(profile_dir, profile or DEFAULT_PROFILES[role])
                if not where.is_file():
                    implied = "" if profile else " (the default; set profile = ...)"
                    table.problem("profile", f"profile file {where} does not exist{implied}")
        elif kind is DeviceKind.REAL:
            if "profile" in table.data:
                table.problem(
                    "profile", "a real device has no model profile: gbhil does not simulate it"
                )
            if role in JOINING_ROLES and "install_code" not in table.data:
                table.problem(
                    "install_code",
                    "missing: a real device joins the HAN with the install code printed on it",
                )
        if role is None or eui is None or kind is None or place is None or name is None:
            return None
        return Device(
            name, role, eui, place, kind, process, profile, install_code, relay, description
        )

    # -- across tables --------------------------------------------------------------
    def _check_names(self, *groups: list[tuple[Any, _Table]]) -> None:
        for items in groups:
            _unique(items, "name", lambda item: item.name)
        places, _instruments, _relays, devices = groups
        _unique(devices, "eui", lambda d: d.eui, lambda e: f"EUI {e.hex().upper()}")
        radios = [(p, t) for p, t in places if p.radio.eui is not None]
        _unique(
            radios,
            "eui",
            lambda p: p.radio.eui,
            lambda e: f"radio EUI {e.hex().upper()}",
            "place.radio",
        )
        sticks = [(p, t) for p, t in places if p.radio.port is not None]
        _unique(
            sticks,
            "port",
            lambda p: p.radio.port,
            lambda port: f"serial port {port}",
            "place.radio",
        )

    def _check_relays(
        self,
        instruments: list[tuple[Instrument, _Table]],
        relays: list[tuple[Relay, _Table]],
        instrument_names: set[str],
    ) -> None:
        mains = [(i, t) for i, t in instruments if i.role is InstrumentRole.MAINS]
        for _, table in mains[1:]:
            table.problem("role", f"a rig has one mains, and {mains[0][0].name!r} is it")
        by_name = {i.name: i for i, _ in instruments}
        used = {(i.name, i.channel): f"its {i.role.value} output" for i, _ in instruments}
        for relay, table in relays:
            instrument = by_name.get(relay.instrument)
            if instrument is None:
                if relay.instrument not in instrument_names:
                    table.problem(
                        "instrument",
                        f"no [[instrument]] named {relay.instrument!r}"
                        + _did_you_mean(relay.instrument, sorted(instrument_names)),
                    )
                continue
            if instrument.simulated:
                table.problem(
                    "instrument",
                    f"{instrument.name!r} is gbhil's behavioural mains "
                    "model: a relay needs a real instrument output",
                )
                continue
            spec = instrument.spec
            if spec is not None and relay.channel not in spec.channels:
                table.problem("channel", _channel_message(spec, relay.channel))
                continue
            taken = used.setdefault((relay.instrument, relay.channel), f"relay {relay.name!r}")
            if taken != f"relay {relay.name!r}":
                table.problem(
                    "channel", f"channel {relay.channel} of {relay.instrument!r} is already {taken}"
                )

    def _check_devices(
        self, rig: RigFile, devices: list[tuple[Device, _Table]], refs: Mapping[str, set[str]]
    ) -> None:
        parties = {eui: name for name, eui in rig.pki.parties.items()}
        places = {p.name: p for p in rig.places}
        hubs: dict[tuple[str, DeviceRole], Device] = {}
        for device, table in devices:
            if device.eui in parties:
                table.problem(
                    "eui",
                    f"EUI {device.eui.hex().upper()} is also the PKI party {parties[device.eui]!r}",
                )
            if device.relay is not None and device.relay not in refs["relay"]:
                table.problem(
                    "relay",
                    f"no [[relay]] named {device.relay!r}"
                    + _did_you_mean(device.relay, sorted(refs["relay"])),
                )
            if device.process != DEFAULT_PROCESS and rig.bus.kind is BusKind.IN_PROCESS:
                table.problem(
                    "process",
                    f"a device in process {device.process!r} needs an MQTT "
                    "bus to reach the others: set [bus] url = "
                    "'mqtt://host:port'",
                )
            place = places.get(device.place)
            if place is None:
                if device.place not in refs["place"]:
                    table.problem(
                        "place",
                        f"no [[place]] named {device.place!r}"
                        + _did_you_mean(device.place, sorted(refs["place"])),
                    )
                continue
            radio = place.radio
            if device.simulated and device.role in SUB_GHZ_ROLES and not radio.has_sub_ghz:
                table.problem(
                    "place",
                    f"a simulated {device.role.value} talks on sub-GHz, but "
                    f"the radio of place {place.name!r} has no sub-GHz band (add a "
                    "[place.radio.sub_ghz] page and channel)",
                )
            if not device.simulated and radio.driver is RadioDriver.SIMULATED:
                table.problem(
                    "kind",
                    "a real device needs a real radio, but the radio of place "
                    f"{place.name!r} is simulated",
                )
            if device.role in HUB_ROLES:
                other = hubs.setdefault((device.place, device.role), device)
                if other is not device:
                    table.problem(
                        "role",
                        f"place {device.place!r} already has a {device.role.value}: {other.name!r}",
                    )
        for device, table in devices:
            if device.role is not DeviceRole.GPF or device.place not in places:
                continue
            chf = hubs.get((device.place, DeviceRole.CHF))
            if chf is None:
                table.problem(
                    "role",
                    f"a GPF is part of the Comms Hub, but place {device.place!r} has no chf device",
                )
            elif chf.kind is not device.kind:
                table.problem(
                    "kind",
                    f"the GPF is part of the Comms Hub: it is {device.kind}, "
                    f"but chf {chf.name!r} is {chf.kind}",
                )


def _unique(
    items: list[tuple[Any, _Table]],
    key: str,
    value: Any,
    show: Any = repr,
    sub_table: str | None = None,
) -> None:
    """A problem on every entry whose ``value`` an earlier entry already had.

    ``sub_table`` names where the key lives when it is not the entry's own table
    (a radio's port is in ``place.radio``).
    """
    seen: dict[Any, _Table] = {}
    for item, table in items:
        v = value(item)
        first = seen.setdefault(v, table)
        if first is not table:
            owner = f"#{first.index}" + (f" {first.name!r}" if first.name else "")
            message = f"duplicate {show(v)}: {first.table} {owner} has it too"
            table.parser.problems.append(
                RigProblem(
                    table.parser.path,
                    sub_table or table.table,
                    message,
                    key,
                    table.index,
                    table.name,
                )
            )


def _channel_message(spec: ModelSpec, channel: int) -> str:
    valid = ", ".join(str(n) for n in spec.channel_numbers)
    return f"{spec.name} has no channel {channel} (channels: {valid})"


def _bus_problem(url: str) -> str | None:
    """Why ``url`` is not a bus URL, or None."""
    if url == IN_PROCESS_URL:
        return None
    parts = urlsplit(url)
    if parts.scheme != MQTT_SCHEME:
        return f"{url!r}: use '{IN_PROCESS_URL}' or '{MQTT_SCHEME}://host:port'"
    try:
        port = parts.port
    except ValueError as exc:
        return f"{url!r}: bad port ({exc})"
    if not parts.hostname:
        return f"{url!r}: no broker host"
    if parts.username or parts.password:
        return f"{url!r}: no credentials in rig files (configure them on the broker side)"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"{url!r}: only mqtt://host:port, without path or query"
    if port == 0:
        return f"{url!r}: port 0 is not a broker port"
    return None


__all__ = [
    "DEFAULT_EZSP_VERSIONS",
    "DEFAULT_PARTIES",
    "DEFAULT_PROFILES",
    "DEFAULT_PROFILE_DIR",
    "DEVICE_TYPES",
    "INSTRUMENT_CATALOGUE",
    "Bus",
    "BusKind",
    "Device",
    "DeviceKind",
    "DeviceRole",
    "EmulatorSettings",
    "Instrument",
    "InstrumentRole",
    "Pki",
    "PkiSource",
    "Place",
    "Radio",
    "RadioBand",
    "RadioDriver",
    "Relay",
    "RigFile",
    "RigFileError",
    "RigProblem",
    "load_rig",
    "parse_rig",
    "resolve_path",
]
