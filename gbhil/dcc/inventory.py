"""The Smart Metering Inventory (SMI): the DCC's record of every Device, on SQLite.

What the SMI records comes from SEC Section A as amended by SECMP0011 (seed 000): device
type, Device ID, Device Model (manufacturer, model, hardware and firmware version; no
firmware for Type 2 Devices), for non-Type 2 Devices the SMI Status with the date it
applies from and its history, for installed Smart Meters the MPxN and the CHF they are
associated with, for other Devices the meter or GPF they are associated with, and for Smart
Meters the MAP ID. gbhil adds what the DUIS services around the SMI need: who pre-notified
a Device and who is responsible for it, premises keys for Read Inventory, the install code
(E081111, seed 004), comms hub status updates (SR 8.14.x, seed 002) and the SM WAN
coverage answered by SR 12.1 (incl. the blank WAN variant, seed 002).

Rules live in catalogues (:data:`TRANSITIONS`, :data:`CONDITIONS`, :data:`WAN_VARIANTS`)
so a DUIS text gbhil lacks today can correct them without touching the code. Every change
runs in one transaction: bad input leaves nothing half-written. Time comes only from the
``now`` callable (the simulator's clock), never from the wall clock.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import sqlite3
import string
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gbhil.duis.model import DuisModelError, format_eui

# --- Device types and statuses (DUIS V5.4 XSD enumerations) ---------------------------------


class DeviceType(enum.StrEnum):
    """``sr:DeviceType``: the device types the DUIS XSD knows."""

    ESME = "ESME"
    GSME = "GSME"
    GPF = "GPF"
    CHF = "CHF"
    HCALCS = "HCALCS"
    PPMID = "PPMID"
    IHD = "IHD"
    CAD = "CAD"

    @property
    def is_smart_meter(self) -> bool:
        return self in SMART_METERS

    @property
    def is_comms_hub(self) -> bool:
        return self in COMMS_HUB

    @property
    def has_status(self) -> bool:
        """Type 2 Devices have neither SMI Status nor status history (seed 000, (d)/(e))."""
        return self not in TYPE_2

    @property
    def needs_firmware_version(self) -> bool:
        """The Device Model of a Type 2 Device has no firmware version (seed 000, (c))."""
        return self not in TYPE_2


#: Smart Meters: the only devices with an MPxN and a MAP ID (seed 000, (f)/(h)).
SMART_METERS = frozenset({DeviceType.ESME, DeviceType.GSME})
#: The two functions of a Communications Hub.
COMMS_HUB = frozenset({DeviceType.CHF, DeviceType.GPF})
#: Type 2 Devices (IHD, CAD): no SMI status, no firmware version in the Device Model.
TYPE_2 = frozenset({DeviceType.IHD, DeviceType.CAD})
#: Type 1 Devices: their model must be on the CPL before they may be pre-notified (seed 000).
TYPE_1 = frozenset({DeviceType.ESME, DeviceType.GSME, DeviceType.PPMID, DeviceType.HCALCS})
#: Type 1 Devices other than Smart Meters (join a meter or GPF, SR 8.7).
TYPE_1_OTHER = TYPE_1 - SMART_METERS
_WITH_STATUS = frozenset(DeviceType) - TYPE_2


class DeviceStatus(enum.StrEnum):
    """``sr:DeviceStatus``: exactly the SMI statuses of the DUIS XSD."""

    PENDING = "Pending"
    WHITELISTED = "Whitelisted"
    INSTALLED_NOT_COMMISSIONED = "InstalledNotCommissioned"
    COMMISSIONED = "Commissioned"
    DECOMMISSIONED = "Decommissioned"
    WITHDRAWN = "Withdrawn"
    SUSPENDED = "Suspended"
    RECOVERY = "Recovery"
    RECOVERED = "Recovered"


# --- MAP ID (SECMP0011, seed 000) ------------------------------------------------------------

#: Stored for an ESME/GSME pre-notified before MAP IDs existed (business requirements 5, 6).
#: The DUIS table 214 text says 'Unknown', which the 4-character sr:MAPID cannot carry.
MAP_ID_UNKNOWN = "UKN"
MAP_ID_MAX_LENGTH = 4
#: "between 1 and 4 alphanumeric characters" (business requirement 3): ASCII only, like
#: the overlay's XSD pattern ``[A-Za-z0-9]{1,4}``; ``str.isalnum`` would accept any script.
MAP_ID_ALPHABET = frozenset(string.ascii_letters + string.digits)


def is_valid_map_id(value: str) -> bool:
    """True when ``value`` is 1-4 ASCII letters or digits (no trimming: xs:string keeps
    whitespace, so ``" AB"`` is invalid on the wire too)."""
    return 1 <= len(value) <= MAP_ID_MAX_LENGTH and all(c in MAP_ID_ALPHABET for c in value)


# --- Install code (E081111, seed 004) --------------------------------------------------------

#: A SMETS2 install code is 16 octets, i.e. 32 hex characters (CR1277, seed 004).
SMETS2_INSTALL_CODE_OCTETS = 16
#: What the XSD allows for any device (xs:hexBinary, 6-16 octets; shorter for SMETS1).
INSTALL_CODE_OCTETS = range(6, 17)


# --- Response conditions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Condition:
    """A reason to refuse a request and the DUIS response code gbhil answers with.

    ``basis`` says where the code comes from. Where DUIS has an SR-specific code whose
    text is not public (E0802xx, E0804xx, E1202xx), gbhil answers with the nearest generic
    code of seed 003 and says so; a rig can remap any condition (InventoryService codes=).
    """

    key: str
    code: str
    basis: str


CONDITIONS: Mapping[str, Condition] = MappingProxyType({
    c.key: c
    for c in (
        Condition("user.role", "E2",
                  "seed 003 E2: User Role not permitted to send the Service Reference "
                  "(eligible roles: duis-request-matrix.json)"),
        Condition("user.device", "E4",
                  "seed 003 E4 (takes precedence); seed 000: only the pre-notifying User "
                  "while Pending, else only the Responsible Supplier, may amend a Device"),
        Condition("status.transition", "E5",
                  "seed 003 E5: Device SMI Status incompatible with the Service Reference"),
        Condition("device.type", "E11",
                  "seed 003 E11: Service Reference not compatible with the device type"),
        Condition("request.command_variant", "E12",
                  "seed 003 E12; allowed CVs per SRV from the XSD's enumeration comments"),
        Condition("device.unknown", "E19", "seed 003 E19: Device ID invalid"),
        Condition("request.srv_mismatch", "E48",
                  "seed 003 E48: Service Reference and Variant do not belong together"),
        Condition("request.body", "E49",
                  "seed 003 E49: body format does not match the Service Reference Variant"),
        Condition("value.invalid", "E49",
                  "gbhil stand-in: a value the XSD would refuse (E49, format mismatch)"),
        Condition("device.exists", "E5",
                  "gbhil stand-in: 12.2 for a Device ID already in the SMI; the 12.2 codes "
                  "E120201-07 have no public text, E5 (status incompatible) is nearest"),
        Condition("cpl.model_unknown", "E57",
                  "gbhil stand-in: a Type 1 Device Model not Current on the CPL may not be "
                  "pre-notified (seed 000); E57 is the generic SMI-model-vs-CPL code"),
        Condition("mapid.missing", "E11",
                  "gbhil stand-in for SECMP0011's '[TBC]' code (seed 000 req. 4: reject an "
                  "ESME/GSME pre-notification without a MAP ID)"),
        Condition("mapid.invalid", "E11",
                  "gbhil stand-in for SECMP0011's '[TBC]' code (seed 000 req. 3/4/9a: "
                  "1-4 alphanumerics)"),
        Condition("mapid.not_applicable", "E11",
                  "gbhil stand-in for SECMP0011's '[TBC]' 'MAP ID is not applicable to the "
                  "Device Type' (seed 000 req. 7/9b, 3.8.93.3)"),
        Condition("search.no_match", "E19",
                  "gbhil stand-in: Read Inventory found nothing (E080201/02 have no public "
                  "text; DSPInventory needs at least one Device)"),
        Condition("install_code.length", "E081111",
                  "seed 004 CR1277: SMETS2 install code is not 32 hex characters"),
        Condition("install_code.format", "E49",
                  "gbhil stand-in: install code not 6-16 octets of hex (XSD hexBinary)"),
        Condition("chf.not_chf", "E081401",
                  "seed 002/004: the device being notified is not a CHF (SR 8.14)"),
        Condition("chf.future_install", "E081402",
                  "seed 002/004: the install date & time is in the future (SR 8.14)"),
    )
})


class InventoryError(Exception):
    """A change or lookup the SMI refuses; ``condition`` names the :data:`CONDITIONS` row."""

    def __init__(self, condition: str, message: str):
        if condition not in CONDITIONS:
            raise KeyError(f"unknown inventory condition {condition!r}")
        self.condition = condition
        super().__init__(message)

    @property
    def response_code(self) -> str:
        """The default DUIS code for this refusal (a service may remap it)."""
        return CONDITIONS[self.condition].code


class InvalidValue(InventoryError, ValueError):
    """A value the DUIS XSD could not carry (too long, wrong charset...)."""

    def __init__(self, message: str):
        super().__init__("value.invalid", message)


# --- SMI status change rules -----------------------------------------------------------------


class Trigger(enum.StrEnum):
    """What moves a Device from one SMI status to another."""

    PRENOTIFIED = "12.2 Device Pre-notification"
    ADDED = "added outside DUIS (migration, rig set-up)"
    WHITELISTED = "8.11 Update HAN Device Log (Add) succeeded"
    JOINED = "8.7 Join Service succeeded"
    COMMISSIONED = "8.1.1 Commission Device succeeded"
    CH_INSTALLED_NO_WAN = "8.14.2 Install No SM WAN on a Pending CHF (W081401)"
    CH_ON_WAN = "the Communications Hub connected to the SM WAN"
    UPDATE_INVENTORY = "8.4 Update Inventory (UpdateDeviceStatusExceptCH)"
    UPDATE_INVENTORY_CH = "8.4 Update Inventory (UpdateDeviceStatusCH)"
    DECOMMISSIONED = "8.3 Decommission Device"
    SUSPENDED = "Device suspended"
    RESTORED = "Device restored after suspension"
    WITHDRAWN = "Device withdrawn from DCC services"
    RECOVERY = "DCC recovery started"
    RECOVERED = "DCC recovery completed"


@dataclass(frozen=True, slots=True)
class Transition:
    """One allowed SMI status change. ``target`` None means 'the status held before the
    last suspension' (restore). ``basis`` cites the seed, or says it is gbhil's model."""

    trigger: Trigger
    sources: frozenset[DeviceStatus | None]
    target: DeviceStatus | None
    device_types: frozenset[DeviceType]
    basis: str


_S = DeviceStatus
_ACTIVE = frozenset({_S.WHITELISTED, _S.INSTALLED_NOT_COMMISSIONED, _S.COMMISSIONED})
_METER_LIKE = SMART_METERS | TYPE_1_OTHER
_XSD = "XSD sr:DeviceStatus set; sources are gbhil's model (no public DUIS state table)"

#: Every status change the SMI accepts. Anything not listed is refused with E5.
TRANSITIONS: tuple[Transition, ...] = (
    Transition(Trigger.PRENOTIFIED, frozenset({None}), _S.PENDING, _WITH_STATUS,
               "seed 000: Devices enter the SMI by Device Pre-notification, as Pending"),
    Transition(Trigger.WHITELISTED, frozenset({_S.PENDING}), _S.WHITELISTED, _METER_LIKE,
               "gbhil model: 8.11 puts the Device on the CH whitelist (" + _XSD + ")"),
    Transition(Trigger.JOINED, frozenset({_S.WHITELISTED}), _S.INSTALLED_NOT_COMMISSIONED,
               SMART_METERS, "gbhil model: a meter on the HAN awaits 8.1.1 commissioning"),
    Transition(Trigger.JOINED, frozenset({_S.WHITELISTED, _S.INSTALLED_NOT_COMMISSIONED}),
               _S.COMMISSIONED, TYPE_1_OTHER,
               "gbhil model: a PPMID/HCALCS is commissioned by joining its meter"),
    Transition(Trigger.COMMISSIONED, frozenset({_S.INSTALLED_NOT_COMMISSIONED}),
               _S.COMMISSIONED, SMART_METERS, "gbhil model: SRV 8.1.1 Commission Device"),
    Transition(Trigger.CH_INSTALLED_NO_WAN, frozenset({_S.PENDING}),
               _S.INSTALLED_NOT_COMMISSIONED, COMMS_HUB,
               "seed 002 (MP081) / seed 004 (DUIS 4.0 3.8.119.4): a Pending CHF, and its "
               "GPF if also Pending, becomes InstalledNotCommissioned"),
    Transition(Trigger.CH_ON_WAN, frozenset({_S.PENDING, _S.INSTALLED_NOT_COMMISSIONED}),
               _S.COMMISSIONED, COMMS_HUB, "gbhil model: the CSP reports the CH on the WAN"),
    Transition(Trigger.UPDATE_INVENTORY, frozenset({_S.WHITELISTED,
                                                    _S.INSTALLED_NOT_COMMISSIONED}),
               _S.PENDING, _METER_LIKE,
               "XSD UpdateDeviceStatusExceptCH = Pending | InstalledNotCommissioned; "
               "sources are gbhil's model"),
    Transition(Trigger.UPDATE_INVENTORY, frozenset({_S.PENDING, _S.WHITELISTED}),
               _S.INSTALLED_NOT_COMMISSIONED, _METER_LIKE,
               "XSD UpdateDeviceStatusExceptCH; sources are gbhil's model"),
    Transition(Trigger.UPDATE_INVENTORY_CH, frozenset({_S.PENDING}),
               _S.INSTALLED_NOT_COMMISSIONED, COMMS_HUB,
               "XSD UpdateDeviceStatusCH = Commissioned | Withdrawn | InstalledNotCommissioned;"
               " Pending -> INC mirrors seed 002"),
    Transition(Trigger.UPDATE_INVENTORY_CH, frozenset({_S.INSTALLED_NOT_COMMISSIONED}),
               _S.COMMISSIONED, COMMS_HUB, "XSD UpdateDeviceStatusCH; source gbhil's model"),
    Transition(Trigger.UPDATE_INVENTORY_CH, frozenset({_S.PENDING, _S.INSTALLED_NOT_COMMISSIONED,
                                                       _S.COMMISSIONED}),
               _S.WITHDRAWN, COMMS_HUB, "XSD UpdateDeviceStatusCH; sources gbhil's model"),
    Transition(Trigger.DECOMMISSIONED, _ACTIVE | {_S.SUSPENDED}, _S.DECOMMISSIONED, _METER_LIKE,
               "gbhil model: SRV 8.3 Decommission Device"),
    Transition(Trigger.SUSPENDED, _ACTIVE, _S.SUSPENDED, _WITH_STATUS,
               "XSD DeviceStatusChange/DeviceSuspended; sources gbhil's model"),
    Transition(Trigger.RESTORED, frozenset({_S.SUSPENDED}), None, _WITH_STATUS,
               "XSD DeviceStatusChange/DeviceRestored: back to the status held before"),
    Transition(Trigger.WITHDRAWN, _ACTIVE | {_S.PENDING, _S.SUSPENDED}, _S.WITHDRAWN,
               _WITH_STATUS, _XSD),
    Transition(Trigger.RECOVERY, _ACTIVE | {_S.SUSPENDED}, _S.RECOVERY, _WITH_STATUS, _XSD),
    Transition(Trigger.RECOVERED, frozenset({_S.RECOVERY}), _S.RECOVERED, _WITH_STATUS, _XSD),
)


def find_transition(
    trigger: Trigger, device_type: DeviceType, source: DeviceStatus | None,
    target: DeviceStatus | None,
) -> Transition | None:
    """The catalogue row allowing this change, or None. ``target`` None: any target."""
    for row in TRANSITIONS:
        if (row.trigger is trigger and device_type in row.device_types
                and source in row.sources and (target is None or row.target in (target, None))):
            return row
    return None


# --- Associations ------------------------------------------------------------------------------


class AssociationKind(enum.StrEnum):
    """How two Devices are linked in the SMI (stored ``device -> other``)."""

    #: Smart Meter -> the CHF it is associated with (seed 000, (f)).
    COMMS_HUB = "comms hub"
    #: CHF -> its GPF (one physical Communications Hub).
    GAS_PROXY = "gas proxy"
    #: Device -> the Smart Meter or GPF it is joined to (seed 000, (g); SR 8.7).
    JOINED = "joined"
    #: Device -> the CHF/GPF whose device log (whitelist) holds it (SR 8.11).
    HAN_LOG = "HAN device log"


@dataclass(frozen=True, slots=True)
class Association:
    device_id: str
    other_id: str
    kind: AssociationKind
    since: dt.datetime


# --- Records -------------------------------------------------------------------------------


def _eui(value: str) -> str:
    try:
        return format_eui(value)
    except DuisModelError as exc:
        raise InvalidValue(str(exc)) from None


def _text(value: str | None, what: str, lo: int, hi: int) -> str | None:
    if value is None:
        return None
    if not lo <= len(value) <= hi:
        raise InvalidValue(f"{what} {value!r} must be {lo}-{hi} characters")
    return value


@dataclass(frozen=True, slots=True)
class NewDevice:
    """What a Device Pre-notification (or a rig) tells the SMI about a new Device.

    Lengths follow the XSD types the values travel in (DeviceManufacturer / DeviceModel
    max 30, FirmwareVersion 1-8, SMETSCHTSVersion 1-20), so whatever the SMI holds can be
    answered by Read Inventory.
    """

    device_id: str
    device_type: DeviceType
    manufacturer: str
    model: str
    hardware_version: str = ""
    firmware_version: str | None = None
    smets_chts_version: str | None = None
    esme_variant: str | None = None
    map_id: str | None = None
    smets1: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_id", _eui(self.device_id))
        object.__setattr__(self, "device_type", DeviceType(self.device_type))
        _text(self.manufacturer, "DeviceManufacturer", 0, 30)
        _text(self.model, "DeviceModel", 0, 30)
        _text(self.firmware_version, "FirmwareVersion", 1, 8)
        _text(self.smets_chts_version, "SMETSCHTSVersion", 1, 20)
        if self.esme_variant is not None and self.device_type is not DeviceType.ESME:
            raise InventoryError("device.type", "ESMEVariant applies to an ESME only")
        _check_map_id(self.device_type, self.map_id)


def _check_map_id(device_type: DeviceType, map_id: str | None) -> None:
    if map_id is None:
        return
    if device_type not in SMART_METERS:
        raise InventoryError("mapid.not_applicable",
                             f"MAP ID is not applicable to device type {device_type}")
    if not is_valid_map_id(map_id):
        raise InventoryError("mapid.invalid", f"MAP ID {map_id!r} is not 1-4 alphanumerics")


@dataclass(frozen=True, slots=True)
class Device:
    """One SMI entry as read back."""

    device_id: str
    device_type: DeviceType
    manufacturer: str
    model: str
    hardware_version: str
    firmware_version: str | None
    smets_chts_version: str | None
    esme_variant: str | None
    status: DeviceStatus | None
    status_since: dt.datetime | None
    map_id: str | None
    import_mpxn: str | None
    secondary_import_mpan: str | None
    export_mpan: str | None
    uprn: int | None
    postcode: str | None
    address_identifier: str | None
    csp_region: str | None
    han_variant: str | None
    connectivity: str | None
    smets1: bool
    install_code: str | None
    prenotified_by: str | None
    date_commissioned: dt.date | None
    created_at: dt.datetime
    record_id: int


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One entry of a Device's SMI status history (append-only)."""

    status: DeviceStatus
    since: dt.datetime
    trigger: Trigger
    by_user: str | None


@dataclass(frozen=True, slots=True)
class CommsHubEvent:
    """An SR 8.14.x comms hub status update as recorded."""

    device_id: str
    service_reference_variant: str
    at: dt.datetime
    by_user: str | None
    details: Mapping[str, str]


# --- SM WAN coverage (SR 12.1, seed 002) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WanVariant:
    """A row of CHISM Annex E table 3 (seed 002): WAN variant values for SR 12.1."""

    value: str
    dcc13_name: str
    csp: str
    regions: frozenset[str]
    #: False for the blank variant: coverage dated, variant not yet confirmed.
    confirmed: bool = True


_NORTH = frozenset({"North"})
_SOUTH_CENTRAL = frozenset({"Central", "South"})
#: Seed 002 table 3. The 4G regions postdate it and accept any non-blank WANTechnology.
WAN_VARIANTS: tuple[WanVariant, ...] = (
    WanVariant("420", "Standard 420", "CSP North", _NORTH),
    WanVariant("450", "Variant 450", "CSP North", _NORTH),
    WanVariant("Cellular", "Cellular", "CSP South & Central", _SOUTH_CENTRAL),
    WanVariant("Cellular+Mesh", "Cellular+Mesh", "CSP South & Central", _SOUTH_CENTRAL),
    WanVariant("No Coverage Intended", "No Coverage Intended", "N/A",
               _NORTH | _SOUTH_CENTRAL),
    WanVariant(" ", '" " Space', "CSP South & Central", _SOUTH_CENTRAL, confirmed=False),
)
#: The unconfirmed ("blank") WAN variant: a single space (MP081, seed 002).
BLANK_WAN_VARIANT = " "
#: ``sr:CSPRegion`` values.
CSP_REGIONS = ("North", "Central", "South", "4G North", "4G Central", "4G South", "Unknown",
               "SMETS1")
CONNECTIVITY_LIKELIHOODS = ("High", "Medium", "Low")


@dataclass(frozen=True, slots=True)
class WanCoverage:
    """One CSP region's answer to SR 12.1 (``sr:DSPWANMatrixResponse``).

    ``coverage_available`` None means the region answered with a code only (no coverage
    data block); otherwise ``wan_technology`` and ``connectivity_likelihood`` are required
    by the XSD. The blank variant is only valid in CSP South & Central and only with an
    anticipated coverage date, exactly the exception seed 002 describes.
    """

    region: str
    response_code: str = "I0"
    coverage_available: bool | None = None
    anticipated_coverage_date: dt.date | None = None
    wan_technology: str | None = None
    connectivity_likelihood: str | None = None
    auxiliary_equipment_required: str | None = None
    additional_information: str | None = None

    def __post_init__(self) -> None:
        if self.region not in CSP_REGIONS:
            raise InvalidValue(f"CSPRegion {self.region!r} is not one of {CSP_REGIONS}")
        _text(self.auxiliary_equipment_required, "AuxiliaryEquipmentRequired", 0, 50)
        _text(self.additional_information, "AdditionalInformation", 0, 250)
        data = (self.anticipated_coverage_date, self.wan_technology,
                self.connectivity_likelihood, self.auxiliary_equipment_required,
                self.additional_information)
        if self.coverage_available is None:
            if any(v is not None for v in data):
                raise InvalidValue("coverage data needs coverage_available")
            return
        if self.wan_technology is None or self.connectivity_likelihood is None:
            raise InvalidValue("coverage data needs wan_technology and connectivity_likelihood")
        _text(self.wan_technology, "WANTechnology", 1, 30)
        if self.connectivity_likelihood not in CONNECTIVITY_LIKELIHOODS:
            raise InvalidValue(f"ConnectivityLikelihood {self.connectivity_likelihood!r}")
        allowed = [v for v in WAN_VARIANTS if self.region in v.regions]
        if allowed and self.wan_technology not in {v.value for v in allowed}:
            raise InvalidValue(f"WAN variant {self.wan_technology!r} is not offered in region "
                               f"{self.region} (seed 002 table 3)")
        if self.wan_technology == BLANK_WAN_VARIANT:
            if self.region not in _SOUTH_CENTRAL:
                raise InvalidValue("the blank WAN variant is CSP South & Central only")
            if self.anticipated_coverage_date is None:
                raise InvalidValue("the blank WAN variant comes with an anticipated date")


def _postcode_key(postcode: str) -> str:
    return "".join(postcode.split()).upper()


def _address_key(address_identifier: str) -> str:
    return " ".join(address_identifier.split()).casefold()


def _coverage_key(uprn: int | None, postcode: str | None, address: str | None) -> str:
    if uprn is not None:
        if postcode is not None or address is not None:
            raise ValueError("give a UPRN or a partial address, not both")
        return f"uprn:{int(uprn)}"
    if postcode is None or address is None:
        raise ValueError("a partial address needs a postcode and an address identifier")
    return f"addr:{_postcode_key(postcode)}|{_address_key(address)}"


# --- SQLite plumbing -------------------------------------------------------------------------

Now = Callable[[], dt.datetime]


def _iso(when: dt.datetime) -> str:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{when!r} is naive; the SMI keeps aware UTC times")
    return when.astimezone(dt.UTC).isoformat()


def _from_iso(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


#: Distinct SELECTs remembered between changes (cleared wholesale when full).
_READ_MEMO_SIZE = 1024


class SqliteStore:
    """SQLite plumbing shared by the DCC's stores: one connection, WAL on disk, foreign
    keys on, and :meth:`transaction` (nestable via savepoints) so a multi-row change is
    all-or-nothing."""

    SCHEMA = ""

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, now: Now) -> None:
        self.path = str(path)
        self._now = now
        self._lock = threading.RLock()
        self._depth = 0
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys = ON")
        if self.path != ":memory:" and not self.path.startswith("file::memory:"):
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(f"BEGIN;\n{self.SCHEMA}\nCOMMIT;")
        # Read memo: valid while neither this connection (total_changes) nor another one
        # on the same database (PRAGMA data_version) changed anything.
        self._shared = self.path != ":memory:"
        self._reads: dict[tuple[str, tuple[Any, ...]], list[sqlite3.Row]] = {}
        self._records: dict[int, tuple[sqlite3.Row, Any]] = {}  # id(row) -> (row, record)
        self._reads_stamp: tuple[int, int] = (-1, -1)

    def now(self) -> dt.datetime:
        """The injected clock's time, checked to be aware (stored as UTC)."""
        when = self._now()
        _iso(when)
        return when.astimezone(dt.UTC)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All-or-nothing: an exception inside rolls back everything done inside."""
        with self._lock:
            depth = self._depth
            self._conn.execute("BEGIN IMMEDIATE" if depth == 0 else f"SAVEPOINT sp{depth}")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth = depth
                if depth == 0:
                    self._conn.execute("ROLLBACK")
                else:
                    self._conn.execute(f"ROLLBACK TO sp{depth}")
                    self._conn.execute(f"RELEASE sp{depth}")
                raise
            self._depth = depth
            self._conn.execute("COMMIT" if depth == 0 else f"RELEASE sp{depth}")

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """SELECT results; repeated reads of an unchanged database come from the memo
        (every request looks the same few devices up several times)."""
        key = (sql, tuple(params))
        with self._lock:
            conn = self._conn
            if self._depth:  # inside a transaction: always read through
                return conn.execute(sql, key[1]).fetchall()
            stamp = (conn.total_changes,
                     conn.execute("PRAGMA data_version").fetchone()[0] if self._shared else 0)
            if stamp != self._reads_stamp:
                self._reads.clear()
                self._reads_stamp = stamp
            rows = self._reads.get(key)
            if rows is None:
                rows = conn.execute(sql, key[1]).fetchall()
                if len(self._reads) >= _READ_MEMO_SIZE:
                    self._reads.clear()
                self._reads[key] = rows
            return list(rows)


# --- The inventory ---------------------------------------------------------------------------

_STATUS_LIST = ", ".join(f"'{s}'" for s in DeviceStatus)
_TYPE_LIST = ", ".join(f"'{t}'" for t in DeviceType)

_SMI_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS smi_record (
    record_id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS smi_device (
    device_id TEXT PRIMARY KEY,
    record_id INTEGER NOT NULL UNIQUE REFERENCES smi_record(record_id),
    device_type TEXT NOT NULL CHECK (device_type IN ({_TYPE_LIST})),
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    hardware_version TEXT NOT NULL DEFAULT '',
    firmware_version TEXT,
    smets_chts_version TEXT,
    esme_variant TEXT,
    status TEXT CHECK (status IS NULL OR status IN ({_STATUS_LIST})),
    status_since TEXT,
    map_id TEXT,
    import_mpxn TEXT,
    secondary_import_mpan TEXT,
    export_mpan TEXT,
    uprn INTEGER,
    postcode TEXT,
    address_identifier TEXT,
    csp_region TEXT,
    han_variant TEXT,
    connectivity TEXT,
    smets1 INTEGER NOT NULL DEFAULT 0,
    install_code TEXT,
    prenotified_by TEXT,
    date_commissioned TEXT,
    created_at TEXT NOT NULL,
    CHECK ((status IS NULL) = (device_type IN ('IHD', 'CAD')))
);
CREATE INDEX IF NOT EXISTS smi_device_mpxn ON smi_device(import_mpxn);
CREATE INDEX IF NOT EXISTS smi_device_uprn ON smi_device(uprn);
CREATE TABLE IF NOT EXISTS smi_status_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id INTEGER NOT NULL REFERENCES smi_record(record_id),
    device_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({_STATUS_LIST})),
    since TEXT NOT NULL,
    trigger TEXT NOT NULL,
    by_user TEXT
);
CREATE TRIGGER IF NOT EXISTS smi_status_history_no_update
BEFORE UPDATE ON smi_status_history
BEGIN SELECT RAISE(ABORT, 'SMI status history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS smi_status_history_no_delete
BEFORE DELETE ON smi_status_history
BEGIN SELECT RAISE(ABORT, 'SMI status history is append-only'); END;
CREATE TABLE IF NOT EXISTS smi_party (
    device_id TEXT NOT NULL REFERENCES smi_device(device_id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (device_id, role)
);
CREATE TABLE IF NOT EXISTS smi_association (
    device_id TEXT NOT NULL REFERENCES smi_device(device_id) ON DELETE CASCADE,
    other_id TEXT NOT NULL REFERENCES smi_device(device_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (device_id, other_id, kind),
    CHECK (device_id <> other_id)
);
CREATE TABLE IF NOT EXISTS smi_ch_event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    srv TEXT NOT NULL,
    at TEXT NOT NULL,
    by_user TEXT,
    details TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS smi_wan_coverage (
    address_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    coverage TEXT NOT NULL,
    PRIMARY KEY (address_key, seq)
);
"""

#: Supplier and network roles the SMI records per Device (DUIS User Role codes).
PARTY_ROLES = frozenset({"IS", "ES", "GS", "ED", "GT", "RSA"})
#: The Responsible Supplier role of each Smart Meter (seed 000 req. 14b: the Import
#: Supplier for ESME, the Gas Supplier for GSME; 3.8.93.4: User Roles EIS and GIS).
SUPPLIER_ROLE = MappingProxyType({DeviceType.ESME: "IS", DeviceType.GSME: "GS"})
#: Statuses whose Smart Meters count for the Responsible Supplier's MAP ID backfilling
#: requirement (seed 000 req. 14b); Pending ones count for the pre-notifying User (14a).
BACKFILL_STATUSES = frozenset({_S.WHITELISTED, _S.INSTALLED_NOT_COMMISSIONED, _S.COMMISSIONED})
#: Read Inventory answers at most this many Devices (``sr:DSPInventory`` maxOccurs).
MAX_READ_DEVICES = 17


@dataclass(frozen=True, slots=True)
class ReportRow:
    """A row of RSMI_001 Installation Status Smart Meter Report, with MAP ID (seed 000)."""

    device_id: str
    device_type: DeviceType
    status: DeviceStatus | None
    status_since: dt.datetime | None
    import_mpxn: str | None
    map_id: str | None


class Inventory(SqliteStore):
    """The SMI. Reads return frozen records; every change is one transaction."""

    SCHEMA = _SMI_SCHEMA

    # --- reading ---------------------------------------------------------------------

    def find(self, device_id: str) -> Device | None:
        rows = self._rows("SELECT * FROM smi_device WHERE device_id = ?", (_eui(device_id),))
        if not rows:
            return None
        # The read memo hands back the same Row while nothing changed: reuse its record.
        row = rows[0]
        made = self._records.get(id(row))
        if made is None or made[0] is not row:
            made = (row, _device(row))
            if len(self._records) >= _READ_MEMO_SIZE:
                self._records.clear()
            self._records[id(row)] = made
        return made[1]

    def get(self, device_id: str) -> Device:
        """The Device, or InventoryError('device.unknown') (E19)."""
        device = self.find(device_id)
        if device is None:
            raise InventoryError("device.unknown", f"{device_id} is not in the SMI")
        return device

    def __contains__(self, device_id: object) -> bool:
        return isinstance(device_id, str) and self.find(device_id) is not None

    def devices(self) -> list[Device]:
        return [_device(r) for r in self._rows("SELECT * FROM smi_device ORDER BY device_id")]

    def status_history(self, device_id: str) -> tuple[StatusChange, ...]:
        """Every status of the current SMI entry, oldest first (append-only)."""
        device = self.get(device_id)
        rows = self._rows(
            "SELECT status, since, trigger, by_user FROM smi_status_history "
            "WHERE record_id = ? ORDER BY seq", (device.record_id,))
        return tuple(StatusChange(DeviceStatus(r["status"]), _req_dt(r["since"]),
                                  Trigger(r["trigger"]), r["by_user"]) for r in rows)

    def associations(self, device_id: str) -> tuple[Association, ...]:
        """Links in either direction (``device_id`` may be on either side)."""
        key = _eui(device_id)
        rows = self._rows(
            "SELECT * FROM smi_association WHERE device_id = ? OR other_id = ? "
            "ORDER BY device_id, other_id, kind", (key, key))
        return tuple(Association(r["device_id"], r["other_id"], AssociationKind(r["kind"]),
                                 _req_dt(r["since"])) for r in rows)

    def associated(self, device_id: str, kind: AssociationKind | None = None) -> list[str]:
        """IDs linked to ``device_id`` (one hop), optionally of one kind."""
        key = _eui(device_id)
        out = {a.other_id if a.device_id == key else a.device_id
               for a in self.associations(key) if kind is None or a.kind is kind}
        return sorted(out)

    def connected(self, device_id: str) -> list[str]:
        """The Device and everything reachable through associations (its premises' SMS),
        the Device first, then by device type and ID."""
        start = self.get(device_id).device_id
        seen, todo = {start}, [start]
        while todo:
            for other in self.associated(todo.pop()):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        order = list(DeviceType)
        rest = sorted((self.get(d) for d in seen - {start}),
                      key=lambda d: (order.index(d.device_type), d.device_id))
        return [start, *(d.device_id for d in rest)]

    def parties(self, device_id: str) -> Mapping[str, str]:
        """Role -> User ID recorded for the Device itself (e.g. {"IS": ..., "ED": ...})."""
        rows = self._rows("SELECT role, user_id FROM smi_party WHERE device_id = ?",
                          (_eui(device_id),))
        return MappingProxyType({r["role"]: r["user_id"] for r in rows})

    def suppliers(self, device_id: str) -> Mapping[str, frozenset[str]]:
        """Supplier role (IS/GS) -> Users responsible for ``device_id``.

        A Smart Meter's own party; for any other Device, its own parties plus those of
        the Smart Meters on the same premises (CHF, GPF, PPMID... serve those meters).
        """
        device = self.get(device_id)
        ids = [device.device_id] if device.device_type in SMART_METERS else [
            d for d in self.connected(device.device_id)
            if d == device.device_id or self.get(d).device_type in SMART_METERS]
        found: dict[str, set[str]] = {"IS": set(), "GS": set()}
        for each in ids:
            for role, user in self.parties(each).items():
                if role in found:
                    found[role].add(user)
        return MappingProxyType({k: frozenset(v) for k, v in found.items()})

    def responsible_suppliers(self, device_id: str) -> frozenset[str]:
        """Every User that is a Responsible Supplier of the Device (any supplier role)."""
        return frozenset().union(*self.suppliers(device_id).values())

    def search(
        self, *, device_id: str | None = None, mpxn: str | None = None,
        uprn: int | None = None, postcode: str | None = None,
        address_identifier: str | None = None,
    ) -> list[Device]:
        """Read Inventory: the Devices matching one key, each with its associated Devices
        (seed 000: by Device ID, MPAN/MPRN, post code + premises, or UPRN), capped at
        :data:`MAX_READ_DEVICES`."""
        keys = [k for k in (device_id, mpxn, uprn, postcode) if k is not None]
        if len(keys) != 1 or (postcode is None) != (address_identifier is None):
            raise ValueError("search by exactly one of device_id, mpxn, uprn, "
                             "postcode + address_identifier")
        if device_id is not None:
            hits = [d.device_id for d in [self.find(device_id)] if d is not None]
        elif mpxn is not None:
            hits = [r["device_id"] for r in self._rows(
                "SELECT device_id FROM smi_device WHERE ? IN "
                "(import_mpxn, secondary_import_mpan, export_mpan) ORDER BY device_id",
                (mpxn,))]
        elif uprn is not None:
            hits = [r["device_id"] for r in self._rows(
                "SELECT device_id FROM smi_device WHERE uprn = ? ORDER BY device_id",
                (int(uprn),))]
        else:
            assert postcode is not None and address_identifier is not None
            hits = [d.device_id for d in self.devices()
                    if d.postcode is not None and d.address_identifier is not None
                    and _postcode_key(d.postcode) == _postcode_key(postcode)
                    and _address_key(d.address_identifier) == _address_key(address_identifier)]
        ordered: list[str] = []
        for hit in hits:
            for each in self.connected(hit):
                if each not in ordered:
                    ordered.append(each)
        return [self.get(d) for d in ordered[:MAX_READ_DEVICES]]

    def ch_events(self, device_id: str) -> tuple[CommsHubEvent, ...]:
        rows = self._rows("SELECT * FROM smi_ch_event WHERE device_id = ? ORDER BY seq",
                          (_eui(device_id),))
        return tuple(CommsHubEvent(r["device_id"], r["srv"], _req_dt(r["at"]), r["by_user"],
                                   MappingProxyType(json.loads(r["details"]))) for r in rows)

    # --- SECMP0011 reports (Self-Service Interface) ---------------------------------------

    def installation_status_report(self, user_id: str) -> list[ReportRow]:
        """RSMI_001 Installation Status Smart Meter Report for ``user_id``, with the MAP ID
        column SECMP0011 adds (seed 000 req. 12, SSI test step 1): the Smart Meters the
        User pre-notified (while Pending) or is Responsible Supplier of."""
        user = _eui(user_id)
        rows = []
        for device in self.devices():
            if device.device_type not in SMART_METERS or not self._pertains(device, user):
                continue
            rows.append(ReportRow(device.device_id, device.device_type, device.status,
                                  device.status_since, device.import_mpxn, device.map_id))
        return rows

    def backfilling_requirement(self, user_id: str) -> int:
        """The User Backfilling Requirement of seed 000 req. 14: ESME/GSME still without a
        MAP ID that are Pending and pre-notified by the User (a), or Whitelisted /
        InstalledNotCommissioned / Commissioned with the User as Import Supplier (ESME) or
        Gas Supplier (GSME) (b)."""
        user = _eui(user_id)
        count = 0
        for device in self.devices():
            if device.device_type not in SMART_METERS or device.map_id != MAP_ID_UNKNOWN:
                continue
            if device.status is _S.PENDING:
                count += device.prenotified_by == user
            elif device.status in BACKFILL_STATUSES:
                count += self.parties(device.device_id).get(
                    SUPPLIER_ROLE[device.device_type]) == user
        return count

    def _pertains(self, device: Device, user: str) -> bool:
        if device.status is _S.PENDING and device.prenotified_by == user:
            return True
        return user in self.responsible_suppliers(device.device_id)

    # --- adding and removing ------------------------------------------------------------

    def prenotify(
        self, spec: NewDevice, *, by_user: str, associated_gpf_id: str | None = None,
    ) -> Device:
        """SR 12.2: add the Device as Pending (a CHF with ``associated_gpf_id`` brings its
        GPF, also Pending, in the same transaction). An ESME/GSME without a MAP ID gets
        'UKN' (the pre-SECMP0011 path; whether a MAP ID is mandatory is the request's
        business, since it depends on the DUIS version used)."""
        user = _eui(by_user)
        with self.transaction():
            device = self._insert(spec, _S.PENDING, Trigger.PRENOTIFIED, user)
            if associated_gpf_id is not None:
                if spec.device_type is not DeviceType.CHF:
                    raise InventoryError("device.type", "AssociatedGPFDeviceID needs a CHF")
                gpf = NewDevice(associated_gpf_id, DeviceType.GPF, spec.manufacturer,
                                spec.model, spec.hardware_version, spec.firmware_version,
                                spec.smets_chts_version, smets1=spec.smets1)
                self._insert(gpf, _S.PENDING, Trigger.PRENOTIFIED, user)
                self.associate(device.device_id, gpf.device_id, AssociationKind.GAS_PROXY)
            return self.get(device.device_id)

    def add_device(
        self, spec: NewDevice, *, status: DeviceStatus | None = _S.PENDING,
        by_user: str | None = None,
    ) -> Device:
        """Add a Device outside DUIS (rig set-up, migrated estate) in any status; Smart
        Meters without a MAP ID get 'UKN', as pre-SECMP0011 Devices do (req. 6)."""
        if spec.device_type in TYPE_2:
            status = None
        elif status is None:
            raise InvalidValue(f"a {spec.device_type} has an SMI status")
        with self.transaction():
            return self._insert(spec, status, Trigger.ADDED,
                                None if by_user is None else _eui(by_user))

    def _insert(
        self, spec: NewDevice, status: DeviceStatus | None, trigger: Trigger,
        by_user: str | None,
    ) -> Device:
        if self.find(spec.device_id) is not None:
            raise InventoryError("device.exists", f"{spec.device_id} is already in the SMI")
        if spec.device_type in TYPE_2:
            status = None
        map_id = spec.map_id
        if spec.device_type in SMART_METERS and map_id is None:
            map_id = MAP_ID_UNKNOWN
        stamp = _iso(self.now())
        conn = self._conn
        record = conn.execute("INSERT INTO smi_record (device_id, created_at) VALUES (?, ?)",
                              (spec.device_id, stamp)).lastrowid
        conn.execute(
            "INSERT INTO smi_device (device_id, record_id, device_type, manufacturer, model, "
            "hardware_version, firmware_version, smets_chts_version, esme_variant, status, "
            "status_since, map_id, smets1, prenotified_by, date_commissioned, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (spec.device_id, record, str(spec.device_type), spec.manufacturer, spec.model,
             spec.hardware_version,
             spec.firmware_version if spec.device_type.needs_firmware_version else None,
             spec.smets_chts_version, spec.esme_variant,
             None if status is None else str(status), None if status is None else stamp,
             map_id, int(spec.smets1), by_user if trigger is Trigger.PRENOTIFIED else None,
             self.now().date().isoformat() if status is _S.COMMISSIONED else None, stamp))
        if status is not None:
            self._history(record, spec.device_id, status, stamp, trigger, by_user)
        return self.get(spec.device_id)

    def _history(self, record: int | None, device_id: str, status: DeviceStatus, stamp: str,
                 trigger: Trigger, by_user: str | None) -> None:
        self._conn.execute(
            "INSERT INTO smi_status_history (record_id, device_id, status, since, trigger, "
            "by_user) VALUES (?, ?, ?, ?, ?, ?)",
            (record, device_id, str(status), stamp, str(trigger), by_user))

    def delete(self, device_id: str) -> None:
        """SR 8.4 DeleteDevice: remove the entry (history rows stay, tied to the old
        record, so a later re-pre-notification starts a fresh history)."""
        device = self.get(device_id)
        with self.transaction() as conn:
            conn.execute("DELETE FROM smi_device WHERE device_id = ?", (device.device_id,))

    # --- status -------------------------------------------------------------------------

    def change_status(
        self, device_id: str, target: DeviceStatus, trigger: Trigger, *,
        by_user: str | None = None,
    ) -> Device:
        """Apply one catalogue transition, or InventoryError('status.transition') (E5)
        with the SMI unchanged. Type 2 Devices have no status ('device.type', E11)."""
        device = self.get(device_id)
        target = DeviceStatus(target)
        if not device.device_type.has_status:
            raise InventoryError("device.type", f"a {device.device_type} has no SMI status")
        row = find_transition(trigger, device.device_type, device.status, target)
        if row is None or row.target is None:
            raise InventoryError(
                "status.transition",
                f"{device.device_type} {device.device_id}: {device.status} -> {target} is not "
                f"allowed by '{trigger}'")
        return self._set_status(device, target, trigger, by_user)

    def can_change(self, device_id: str, target: DeviceStatus, trigger: Trigger) -> bool:
        device = self.get(device_id)
        row = find_transition(trigger, device.device_type, device.status, target)
        return device.device_type.has_status and row is not None and row.target is not None

    def restore(self, device_id: str, *, by_user: str | None = None) -> Device:
        """End a suspension: back to the status held before the last 'Suspended'."""
        device = self.get(device_id)
        if find_transition(Trigger.RESTORED, device.device_type, device.status, None) is None:
            raise InventoryError("status.transition",
                                 f"{device.device_id} is {device.status}, not Suspended")
        history = self.status_history(device.device_id)
        previous = next((h.status for h in reversed(history) if h.status is not _S.SUSPENDED),
                        None)
        if previous is None:
            raise InventoryError("status.transition", f"{device.device_id} has no status "
                                 "to restore")
        return self._set_status(device, previous, Trigger.RESTORED, by_user)

    def _set_status(self, device: Device, target: DeviceStatus, trigger: Trigger,
                    by_user: str | None) -> Device:
        now = self.now()
        stamp = _iso(now)
        user = None if by_user is None else _eui(by_user)
        with self.transaction() as conn:
            extra = ""
            params: list[Any] = [str(target), stamp]
            if (target is _S.COMMISSIONED and device.date_commissioned is None
                    and trigger is not Trigger.RESTORED):
                extra = ", date_commissioned = ?"
                params.append(now.date().isoformat())
            conn.execute(f"UPDATE smi_device SET status = ?, status_since = ?{extra} "
                         "WHERE device_id = ?", (*params, device.device_id))
            self._history(device.record_id, device.device_id, target, stamp, trigger, user)
        return self.get(device.device_id)

    # --- details -------------------------------------------------------------------------

    def update_details(
        self, device_id: str, *, manufacturer: str | None = None, model: str | None = None,
        hardware_version: str | None = None, smets_chts_version: str | None = None,
        firmware_version: str | None = None, esme_variant: str | None = None,
    ) -> Device:
        """SR 8.4 UpdateDeviceDetails (and firmware bookkeeping): only the given fields."""
        device = self.get(device_id)
        _text(manufacturer, "DeviceManufacturer", 0, 30)
        _text(model, "DeviceModel", 0, 30)
        _text(smets_chts_version, "SMETSCHTSVersion", 1, 20)
        _text(firmware_version, "FirmwareVersion", 1, 8)
        if esme_variant is not None and device.device_type is not DeviceType.ESME:
            raise InventoryError("device.type", "ESMEVariant applies to an ESME only")
        if firmware_version is not None and not device.device_type.needs_firmware_version:
            raise InventoryError("device.type", f"a {device.device_type} has no firmware "
                                 "version in the SMI")
        changes = {k: v for k, v in (
            ("manufacturer", manufacturer), ("model", model),
            ("hardware_version", hardware_version), ("smets_chts_version", smets_chts_version),
            ("firmware_version", firmware_version), ("esme_variant", esme_variant),
        ) if v is not None}
        self._update(device.device_id, changes)
        return self.get(device.device_id)

    def set_map_id(self, device_id: str, map_id: str) -> Device:
        """Overwrite the MAP ID (ESME/GSME only, 1-4 alphanumerics); SECMP0011 keeps no
        MAP ID history (req. 8)."""
        device = self.get(device_id)
        if map_id is None:
            raise InventoryError("mapid.invalid", "a MAP ID cannot be cleared")
        _check_map_id(device.device_type, map_id)
        self._update(device.device_id, {"map_id": map_id})
        return self.get(device.device_id)

    def set_mpxn(
        self, device_id: str, *, import_mpxn: str | None = None,
        secondary_import_mpan: str | None = None, export_mpan: str | None = None,
    ) -> Device:
        """Smart Meters only; MPANs beyond the import MPxN are ESME-only and 13 digits."""
        device = self.get(device_id)
        if device.device_type not in SMART_METERS:
            raise InventoryError("device.type", f"a {device.device_type} has no MPxN")
        if device.device_type is not DeviceType.ESME and (secondary_import_mpan or export_mpan):
            raise InventoryError("device.type", "secondary/export MPANs are ESME-only")
        _text(import_mpxn, "ImportMPxN", 1, 13)
        _text(secondary_import_mpan, "SecondaryImportMPAN", 13, 13)
        _text(export_mpan, "ExportMPAN", 13, 13)
        changes = {k: v for k, v in (
            ("import_mpxn", import_mpxn), ("secondary_import_mpan", secondary_import_mpan),
            ("export_mpan", export_mpan)) if v is not None}
        self._update(device.device_id, changes)
        return self.get(device.device_id)

    def set_premises(
        self, device_id: str, *, uprn: int | None = None, postcode: str | None = None,
        address_identifier: str | None = None, csp_region: str | None = None,
        han_variant: str | None = None, connectivity: str | None = None,
    ) -> Device:
        """Registration-side data Read Inventory searches and returns (not a DUIS SR)."""
        device = self.get(device_id)
        if uprn is not None and not 0 < int(uprn) < 10**12:
            raise InvalidValue(f"UPRN {uprn} is not a positive integer of up to 12 digits")
        _text(postcode, "PostCode", 6, 8)
        _text(address_identifier, "AddressIdentifier", 0, 30)
        if csp_region is not None and csp_region not in CSP_REGIONS:
            raise InvalidValue(f"CSPRegion {csp_region!r} is not one of {CSP_REGIONS}")
        if connectivity is not None and connectivity not in ("Cellular", "Virtual"):
            raise InvalidValue(f"Connectivity {connectivity!r} is not Cellular or Virtual")
        changes = {k: v for k, v in (
            ("uprn", None if uprn is None else int(uprn)), ("postcode", postcode),
            ("address_identifier", address_identifier), ("csp_region", csp_region),
            ("han_variant", han_variant), ("connectivity", connectivity)) if v is not None}
        self._update(device.device_id, changes)
        return self.get(device.device_id)

    def set_party(self, device_id: str, role: str, user_id: str | None) -> None:
        """Record (or with None clear) the User holding a supplier/network role for the
        Device, as registration data would (e.g. a change of supplier)."""
        device = self.get(device_id)
        if role not in PARTY_ROLES:
            raise InvalidValue(f"role {role!r} is not one of {sorted(PARTY_ROLES)}")
        with self.transaction() as conn:
            conn.execute("DELETE FROM smi_party WHERE device_id = ? AND role = ?",
                         (device.device_id, role))
            if user_id is not None:
                conn.execute("INSERT INTO smi_party (device_id, role, user_id) VALUES (?, ?, ?)",
                             (device.device_id, role, _eui(user_id)))

    def set_install_code(self, device_id: str, install_code: str | bytes) -> Device:
        """Keep the install code used to whitelist the Device. A SMETS2 Device's code must
        be 16 octets, 32 hex characters (E081111, seed 004); any code is 6-16 octets."""
        device = self.get(device_id)
        code = check_install_code(install_code, smets2=not device.smets1)
        self._update(device.device_id, {"install_code": code})
        return self.get(device.device_id)

    def _update(self, device_id: str, changes: Mapping[str, Any]) -> None:
        if not changes:
            return
        columns = ", ".join(f"{name} = ?" for name in changes)
        with self.transaction() as conn:
            conn.execute(f"UPDATE smi_device SET {columns} WHERE device_id = ?",
                         (*changes.values(), device_id))

    # --- associations ---------------------------------------------------------------------

    def associate(self, device_id: str, other_id: str, kind: AssociationKind) -> None:
        """Link two SMI Devices (idempotent). Both must exist (E19)."""
        a, b = self.get(device_id), self.get(other_id)
        if a.device_id == b.device_id:
            raise InvalidValue("a Device cannot be associated with itself")
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO smi_association (device_id, other_id, kind, since) "
                "VALUES (?, ?, ?, ?)", (a.device_id, b.device_id, str(AssociationKind(kind)),
                                        _iso(self.now())))

    def dissociate(self, device_id: str, other_id: str | None = None,
                   kind: AssociationKind | None = None) -> int:
        """Remove links of ``device_id`` (with ``other_id`` / of ``kind`` when given), in
        either direction; returns how many went."""
        key = _eui(device_id)
        sql = "DELETE FROM smi_association WHERE (device_id = ? OR other_id = ?)"
        params: list[str] = [key, key]
        if other_id is not None:
            other = _eui(other_id)
            sql += " AND (device_id = ? OR other_id = ?)"
            params += [other, other]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(str(AssociationKind(kind)))
        with self.transaction() as conn:
            return conn.execute(sql, params).rowcount

    # --- comms hub events ----------------------------------------------------------------

    def record_ch_event(self, device_id: str, srv: str, details: Mapping[str, str], *,
                        by_user: str | None = None) -> None:
        """Keep what an SR 8.14.x update said about the CH (install or return)."""
        device = self.get(device_id)
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO smi_ch_event (device_id, srv, at, by_user, details) "
                "VALUES (?, ?, ?, ?, ?)",
                (device.device_id, srv, _iso(self.now()),
                 None if by_user is None else _eui(by_user),
                 json.dumps(dict(details), sort_keys=True)))

    # --- SM WAN coverage ------------------------------------------------------------------

    def set_wan_coverage(
        self, responses: Iterable[WanCoverage], *, uprn: int | None = None,
        postcode: str | None = None, address_identifier: str | None = None,
    ) -> None:
        """What SR 12.1 answers for a UPRN or a partial address (replaces earlier data)."""
        key = _coverage_key(uprn, postcode, address_identifier)
        items = list(responses)
        if not items:
            raise InvalidValue("a WAN matrix needs at least one CSP region response")
        with self.transaction() as conn:
            conn.execute("DELETE FROM smi_wan_coverage WHERE address_key = ?", (key,))
            for seq, item in enumerate(items):
                conn.execute("INSERT INTO smi_wan_coverage (address_key, seq, coverage) "
                             "VALUES (?, ?, ?)", (key, seq, _coverage_json(item)))

    def wan_coverage(
        self, *, uprn: int | None = None, postcode: str | None = None,
        address_identifier: str | None = None,
    ) -> tuple[WanCoverage, ...]:
        """The stored answer for the address; empty when nothing is known."""
        key = _coverage_key(uprn, postcode, address_identifier)
        rows = self._rows("SELECT coverage FROM smi_wan_coverage WHERE address_key = ? "
                          "ORDER BY seq", (key,))
        return tuple(_coverage_from_json(r["coverage"]) for r in rows)


# --- helpers ---------------------------------------------------------------------------------


def check_install_code(install_code: str | bytes, *, smets2: bool) -> str:
    """The install code as upper-case hex, or InventoryError: E081111 when a SMETS2 code
    is not 16 octets (seed 004), 'install_code.format' when it is not 6-16 octets of hex."""
    if isinstance(install_code, bytes | bytearray):
        raw = bytes(install_code)
    else:
        text = install_code.strip()
        try:
            raw = bytes.fromhex(text) if len(text) % 2 == 0 and " " not in text else None
        except ValueError:
            raw = None
        if raw is None:
            raise InventoryError("install_code.format", f"install code {install_code!r} is "
                                 "not hexadecimal octets")
    if len(raw) not in INSTALL_CODE_OCTETS:
        raise InventoryError("install_code.format",
                             f"install code is {len(raw)} octets, not 6-16")
    if smets2 and len(raw) != SMETS2_INSTALL_CODE_OCTETS:
        raise InventoryError("install_code.length",
                             f"a SMETS2 install code is 32 hex characters, got {len(raw) * 2}")
    return raw.hex().upper()


def _req_dt(text: str) -> dt.datetime:
    value = _from_iso(text)
    assert value is not None
    return value


def _device(row: sqlite3.Row) -> Device:
    status = row["status"]
    return Device(
        device_id=row["device_id"], device_type=DeviceType(row["device_type"]),
        manufacturer=row["manufacturer"], model=row["model"],
        hardware_version=row["hardware_version"], firmware_version=row["firmware_version"],
        smets_chts_version=row["smets_chts_version"], esme_variant=row["esme_variant"],
        status=None if status is None else DeviceStatus(status),
        status_since=_from_iso(row["status_since"]), map_id=row["map_id"],
        import_mpxn=row["import_mpxn"], secondary_import_mpan=row["secondary_import_mpan"],
        export_mpan=row["export_mpan"], uprn=row["uprn"], postcode=row["postcode"],
        address_identifier=row["address_identifier"], csp_region=row["csp_region"],
        han_variant=row["han_variant"], connectivity=row["connectivity"],
        smets1=bool(row["smets1"]), install_code=row["install_code"],
        prenotified_by=row["prenotified_by"],
        date_commissioned=None if row["date_commissioned"] is None
        else dt.date.fromisoformat(row["date_commissioned"]),
        created_at=_req_dt(row["created_at"]), record_id=row["record_id"],
    )


def _coverage_json(item: WanCoverage) -> str:
    data: dict[str, Any] = {
        "region": item.region, "response_code": item.response_code,
        "coverage_available": item.coverage_available,
        "anticipated_coverage_date": None if item.anticipated_coverage_date is None
        else item.anticipated_coverage_date.isoformat(),
        "wan_technology": item.wan_technology,
        "connectivity_likelihood": item.connectivity_likelihood,
        "auxiliary_equipment_required": item.auxiliary_equipment_required,
        "additional_information": item.additional_information,
    }
    return json.dumps(data, sort_keys=True)


def _coverage_from_json(text: str) -> WanCoverage:
    data = json.loads(text)
    date = data.pop("anticipated_coverage_date")
    return WanCoverage(**data, anticipated_coverage_date=None if date is None
                       else dt.date.fromisoformat(date))


__all__ = [
    "BACKFILL_STATUSES", "BLANK_WAN_VARIANT", "COMMS_HUB", "CONDITIONS", "CSP_REGIONS",
    "MAP_ID_UNKNOWN", "MAX_READ_DEVICES", "SMART_METERS", "SMETS2_INSTALL_CODE_OCTETS",
    "SUPPLIER_ROLE", "TRANSITIONS", "TYPE_1", "TYPE_1_OTHER", "TYPE_2", "WAN_VARIANTS",
    "Association", "AssociationKind", "CommsHubEvent", "Condition", "Device", "DeviceStatus",
    "DeviceType", "InvalidValue", "Inventory", "InventoryError", "NewDevice", "ReportRow",
    "SqliteStore", "StatusChange", "Transition", "Trigger", "WanCoverage", "WanVariant",
    "check_install_code", "find_transition", "is_valid_map_id",
]

