"""DUIS service requests answered from the Smart Metering Inventory and the CPL.

The DCC answers the non-device (CV 8) requests about its inventory itself: 8.2 Read
Inventory, 8.3 Decommission Device, 8.4 Update Inventory, 8.14.1-8.14.4 Communications
Hub Status Updates, 12.1 Request WAN Matrix and 12.2 Device Pre-notification. For the
device requests whose outcome changes the SMI (8.1.1 Commission, 8.7 Join, 8.8 Unjoin,
8.11 Update HAN Device Log) this module does the inventory side only: :meth:`process`
runs the SMI checks before the command goes out (I99 or an error), :meth:`complete`
does the bookkeeping once the device has answered with success. Firmware versions
reported by devices update the SMI and raise N49/N50/N51 (:meth:`firmware_version_reported`).

Each request runs in one SMI transaction: a refusal or a failure half-way leaves the
inventory exactly as it was. Response codes come from :mod:`gbhil.duis.codes` (seed 003
and the SR-specific codes of seeds 002/004); conditions without a public DUIS code use the
stand-ins of :data:`gbhil.dcc.inventory.CONDITIONS`, remappable per service.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from lxml import etree

from gbhil.dcc.cpl import Cpl, CplStatus, DeviceModel
from gbhil.dcc.inventory import (
    COMMS_HUB,
    CONDITIONS,
    SMART_METERS,
    SUPPLIER_ROLE,
    TYPE_1,
    AssociationKind,
    Device,
    DeviceStatus,
    DeviceType,
    InvalidValue,
    Inventory,
    InventoryError,
    NewDevice,
    Trigger,
    WanCoverage,
    check_install_code,
)
from gbhil.duis import codes as duis_codes
from gbhil.duis.alerts import dcc_alert_code
from gbhil.duis.model import (
    DuisModelError,
    Request,
    Response,
    ResponseHeader,
    ResponseMessage,
    dcc_alert,
    format_eui,
    parse_datetime,
)
from gbhil.duis.schema import SR_NS
from gbhil.duis.xmldsig import compact


def _catalogued(code: str) -> str:
    """A response code gbhil.duis.codes knows (import fails if the catalogue lacks it)."""
    return duis_codes.response_code(code).code


#: Lexical shape of a DUIS response code: generic (I0, E19, E1000) or SR-specific
#: ([E|W]ssvvnn). Remapped codes may lack a public meaning (E120201), so only the shape
#: is checked; the XSD enumeration still has the last word on the wire.
_CODE_SHAPE = re.compile(r"I0|I99|E\d{1,4}|[EW]\d{6}")


def _alert(code: str) -> str:
    return dcc_alert_code(code).code


# --- Codes this module answers with (seed 003 generic, seeds 002/004 SR-specific) ----------

SUCCESS = duis_codes.SUCCESS
#: I99 also means "a non-device request succeeded and its response has no specific XML".
ACKNOWLEDGED = duis_codes.ACKNOWLEDGED
CH_STATUS_NOT_INSTALLED = _catalogued("W081401")
#: Every code a :data:`CONDITIONS` row may produce, checked against the catalogue.
CONDITION_CODES = frozenset(_catalogued(c.code) for c in CONDITIONS.values())

#: DCC alerts raised here (seed 004 table 41 rows), checked against the alert catalogue.
FIRMWARE_UPDATED_IN_SMI = _alert("N49")
FIRMWARE_REMOVED_FROM_CPL = _alert("N50")
FIRMWARE_UNKNOWN = _alert("N51")


# --- Who is asking, and what comes back ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserContext:
    """The authenticated DCC User: its User ID (EUI-64) and its User Roles (IS, ES, GS,
    ED, GT, RSA, MDR, OU...)."""

    user_id: str
    roles: frozenset[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "user_id", format_eui(self.user_id))
        object.__setattr__(self, "roles", frozenset(r.strip().upper() for r in self.roles))


@dataclass(frozen=True, slots=True)
class AlertNotice:
    """A DCC alert to send: its code, the User IDs to send it to and its DCCAlert body."""

    code: str
    recipients: tuple[str, ...]
    body: etree._Element

    def to_response(self, *, at: dt.datetime) -> Response:
        """The ``sr:Response`` carrying the alert (the code must match the body)."""
        return dcc_alert(self.code, self.body, at=at)


@dataclass(frozen=True, slots=True)
class ServiceOutcome:
    """What the DCC answers: response code, the ResponseMessage content (DSPInventory,
    DSPWANMatrix) or None, the DCC alerts to send, and a reason for logs and tests."""

    response_code: str
    body: etree._Element | None = None
    alerts: tuple[AlertNotice, ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.response_code.startswith("E")

    def to_response(self, request: Request, *, at: dt.datetime) -> Response:
        """The synchronous ``sr:Response`` to ``request`` embedding :attr:`body`."""
        header = request.header
        return Response(
            ResponseHeader(self.response_code, at, request_id=header.request_id),
            ResponseMessage(header.service_reference, header.service_reference_variant,
                            other=None if self.body is None else copy.deepcopy(self.body)),
        )


class UnsupportedRequest(LookupError):
    """The service reference variant is not one this module processes."""


# --- The service requests handled --------------------------------------------------------------

_ALL = frozenset({"IS", "ES", "GS", "RSA", "ED", "GT", "OU"})
_SUPPLIERS = frozenset({"IS", "GS"})


@dataclass(frozen=True, slots=True)
class ServiceRule:
    """One SRV: its SR, body element, eligible User Roles (duis-request-matrix.json),
    allowed Command Variants (XSD comments on ``ServiceReferenceVariant``) and whether
    the DCC answers it alone."""

    service_reference: str
    body: str
    eligible_roles: frozenset[str]
    command_variants: frozenset[int]
    non_device: bool


SERVICES: Mapping[str, ServiceRule] = MappingProxyType({
    "8.1.1": ServiceRule("8.1", "CommissionDeviceSynchroniseClock", _SUPPLIERS,
                         frozenset({4, 5}), False),
    "8.2": ServiceRule("8.2", "ReadInventory", _ALL, frozenset({8}), True),
    "8.3": ServiceRule("8.3", "DecommissionDevice", _SUPPLIERS, frozenset({8}), True),
    "8.4": ServiceRule("8.4", "UpdateInventory", _ALL, frozenset({8}), True),
    "8.7.1": ServiceRule("8.7", "JoinServiceCritical", _SUPPLIERS, frozenset({4, 5, 6, 7}),
                         False),
    "8.7.2": ServiceRule("8.7", "JoinServiceNonCritical", _SUPPLIERS | {"OU"},
                         frozenset({1, 2, 3}), False),
    "8.8.1": ServiceRule("8.8", "UnjoinServiceCritical", _SUPPLIERS, frozenset({4, 5, 6, 7}),
                         False),
    "8.8.2": ServiceRule("8.8", "UnjoinServiceNonCritical", _SUPPLIERS | {"OU"},
                         frozenset({1, 2, 3}), False),
    "8.11": ServiceRule("8.11", "UpdateHANDeviceLog", _SUPPLIERS | {"OU"},
                        frozenset({1, 2, 3}), False),
    "8.14.1": ServiceRule("8.14", "CHFInstallSuccessSMWAN", _SUPPLIERS, frozenset({8}), True),
    "8.14.2": ServiceRule("8.14", "CHFInstallSuccessNoSMWAN", _SUPPLIERS, frozenset({8}), True),
    "8.14.3": ServiceRule("8.14", "CHFFaultReturn", _SUPPLIERS, frozenset({8}), True),
    "8.14.4": ServiceRule("8.14", "CHFNoFaultReturn", _SUPPLIERS, frozenset({8}), True),
    "12.1": ServiceRule("12.1", "RequestWANMatrix", _ALL, frozenset({8}), True),
    "12.2": ServiceRule("12.2", "DevicePrenotification", _ALL, frozenset({8}), True),
})

#: Roles a pre-notifying User takes on for the new Smart Meter, if it holds them (gbhil's
#: stand-in for registration data: the pre-notifier is the supplier / network operator).
PRENOTIFIER_PARTY_ROLES: Mapping[DeviceType, frozenset[str]] = MappingProxyType({
    DeviceType.ESME: frozenset({"IS", "ED"}),
    DeviceType.GSME: frozenset({"GS", "GT"}),
})
#: SR 8.14 variants carrying InstallDateTime (E081402) and answering W081401 when the CHF
#: is not InstalledNotCommissioned (seed 004: the table in DUIS 4.0 3.8.118.3).
CH_INSTALL_SRVS = frozenset({"8.14.1", "8.14.2"})
#: Variants whose W081401 moves a Pending CHF (and Pending GPF) to InstalledNotCommissioned
#: (seed 002 MP081 / seed 004 3.8.119.4: SR 8.14.2 Install No SM WAN).
PROMOTE_PENDING_CH_ON = frozenset({"8.14.2"})
#: SECMP0011's table 214 text: 'Unknown' marks Devices pre-notified with a DUIS schema
#: version "prior to 2.x"; from this version on ESME/GSME pre-notifications need a MAP ID.
MAPID_SINCE_SCHEMA_VERSION = Decimal("2.0")
#: What 12.1 answers for an address gbhil has no coverage data for (gbhil's choice: the
#: DSP places it in no CSP region and gives no coverage data).
NO_COVERAGE = (WanCoverage("Unknown"),)


class FirmwareReport(enum.StrEnum):
    """Where a device's firmware version came from (seed 004, N49-N51 triggers)."""

    READ_FIRMWARE = "11.2"
    ACTIVATE_FIRMWARE = "11.3"
    FUTURE_DATED_ACTIVATION = "0x8F66 / 0x00CA"


#: Devices whose firmware version reports raise N49-N51 (seed 004: ESME, GSME, CHF and
#: SMETS1 PPMID).
FIRMWARE_ALERT_TYPES = frozenset({DeviceType.ESME, DeviceType.GSME, DeviceType.CHF})


# --- XML helpers ------------------------------------------------------------------------------


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _children(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _find(parent: etree._Element, local: str) -> str | None:
    child = parent.find(_sr(local))
    return None if child is None else (child.text or "")


def _need(parent: etree._Element, local: str) -> str:
    value = _find(parent, local)
    if value is None:
        raise InventoryError("request.body", f"{_local(parent)} has no sr:{local}")
    return value.strip()


def _sub(parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _sr(local))
    if text is not None:
        element.text = text
    return element


def _eui(text: str) -> str:
    try:
        return format_eui(text)
    except DuisModelError as exc:
        raise InventoryError("request.body", str(exc)) from None


def _int(text: str | None, what: str) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        raise InventoryError("request.body", f"{what} {text!r} is not an integer") from None


def _status(text: str) -> DeviceStatus:
    try:
        return DeviceStatus(text.strip())
    except ValueError:
        raise InventoryError("request.body", f"{text!r} is not an SMI status") from None


# --- The service ------------------------------------------------------------------------------


class InventoryService:
    """Processes inventory service requests for one SMI and CPL.

    ``codes`` remaps :data:`CONDITIONS` keys to other response codes (e.g. once the real
    12.2 code for a duplicate Device ID is known). ``mapid_enforced`` False runs the
    emulator as official DUIS V5.4 (no MAP ID rules; ESME/GSME get 'UKN');
    ``include_map_id`` False leaves MAPID out of Read Inventory (needed when responses
    are validated against the plain V5.4 schema set).
    """

    def __init__(
        self, inventory: Inventory, cpl: Cpl, *, codes: Mapping[str, str] | None = None,
        mapid_enforced: bool = True,
        mapid_since_schema_version: Decimal = MAPID_SINCE_SCHEMA_VERSION,
        include_map_id: bool = True,
        promote_pending_ch_on: Iterable[str] = PROMOTE_PENDING_CH_ON,
        no_coverage: Sequence[WanCoverage] = NO_COVERAGE,
    ) -> None:
        self.inventory = inventory
        self.cpl = cpl
        overrides = dict(codes or {})
        unknown = set(overrides) - set(CONDITIONS)
        if unknown:
            raise KeyError(f"unknown inventory conditions {sorted(unknown)}")
        bad = {code for code in overrides.values() if not _CODE_SHAPE.fullmatch(code)}
        if bad:
            raise ValueError(f"{sorted(bad)} are not DUIS response codes (I0, E19, E120201...)")
        self._codes = {key: overrides.get(key, c.code) for key, c in CONDITIONS.items()}
        self.mapid_enforced = mapid_enforced
        self.mapid_since_schema_version = mapid_since_schema_version
        self.include_map_id = include_map_id
        self.promote_pending_ch_on = frozenset(promote_pending_ch_on)
        if not no_coverage:
            raise ValueError("no_coverage needs at least one region response")
        self.no_coverage = tuple(no_coverage)

    def code_for(self, condition: str) -> str:
        """The response code this service answers ``condition`` with."""
        return self._codes[condition]

    # --- entry point ---------------------------------------------------------------------

    def process(self, request: Request, user: UserContext) -> ServiceOutcome:
        """Answer ``request`` from the SMI/CPL (non-device SRVs), or run the SMI checks of
        a device SRV before its command goes out (I99 when it may go). Raises
        :class:`UnsupportedRequest` for any other SRV."""
        srv = request.header.service_reference_variant
        rule = SERVICES.get(srv)
        if rule is None:
            raise UnsupportedRequest(f"SRV {srv} is not an inventory service request")
        try:
            self._check_header(request, rule)
            if not user.roles & rule.eligible_roles:
                raise InventoryError("user.role", f"roles {sorted(user.roles)} may not send "
                                     f"SRV {srv} (eligible: {sorted(rule.eligible_roles)})")
            with self.inventory.transaction():
                return _HANDLERS[srv](self, request, user)
        except InventoryError as exc:
            return ServiceOutcome(self.code_for(exc.condition), detail=str(exc))

    def _check_header(self, request: Request, rule: ServiceRule) -> None:
        header = request.header
        if header.service_reference != rule.service_reference:
            raise InventoryError("request.srv_mismatch",
                                 f"SR {header.service_reference} does not own SRV "
                                 f"{header.service_reference_variant}")
        cv = int(header.command_variant)
        if cv not in rule.command_variants:
            raise InventoryError("request.command_variant",
                                 f"CV {cv} is not allowed for SRV "
                                 f"{header.service_reference_variant}")
        expected = "SignedPreCommand" if cv in (5, 6, 7) else rule.body
        if request.body_name != expected:
            raise InventoryError("request.body", f"body {request.body_name} does not match "
                                 f"SRV {header.service_reference_variant} ({expected})")

    # --- authorisation (seed 000) ----------------------------------------------------------

    def _authorise_amend(self, device: Device, user: UserContext) -> None:
        """Seed 000: while Pending only the User who pre-notified the Device may update or
        delete it; otherwise only its Responsible Supplier may amend it (E4)."""
        if device.status is DeviceStatus.PENDING:
            if device.prenotified_by != user.user_id:
                raise InventoryError("user.device", f"{device.device_id} is Pending: only "
                                     f"{device.prenotified_by} may amend it")
            return
        allowed = set(self.inventory.responsible_suppliers(device.device_id))
        if device.status is None and device.prenotified_by is not None:
            allowed.add(device.prenotified_by)  # Type 2: no status to go by
        if user.user_id not in allowed:
            raise InventoryError("user.device", f"{user.user_id} is not the Responsible "
                                 f"Supplier of {device.device_id}")

    def _authorise_map_id(self, device: Device, user: UserContext) -> None:
        """SECMP0011 3.8.93.4 5(b): Pending -> only the pre-notifying User; otherwise User
        Roles EIS / GIS and only the Responsible Supplier (ESME: IS, GSME: GS)."""
        if device.device_type not in SMART_METERS or device.status is DeviceStatus.PENDING:
            self._authorise_amend(device, user)
            return
        role = SUPPLIER_ROLE[device.device_type]
        if role not in user.roles or self.inventory.parties(device.device_id).get(role) != \
                user.user_id:
            raise InventoryError("user.device", f"only the {role} Responsible Supplier may "
                                 f"update the MAP ID of {device.device_id}")

    def _authorise_supplier(self, device: Device, user: UserContext) -> None:
        if user.user_id not in self.inventory.responsible_suppliers(device.device_id):
            raise InventoryError("user.device", f"{user.user_id} is not the Responsible "
                                 f"Supplier of {device.device_id}")

    # --- 8.2 Read Inventory ----------------------------------------------------------------

    def _read_inventory(self, request: Request, user: UserContext) -> ServiceOutcome:
        choice = _children(request.body)
        if len(choice) != 1:
            raise InventoryError("request.body", "ReadInventory needs exactly one search key")
        key = choice[0]
        name, text = _local(key), (key.text or "").strip()
        inv = self.inventory
        if name == "DeviceID":
            devices = inv.search(device_id=_eui(text))
            if not devices:
                raise InventoryError("device.unknown", f"{text} is not in the SMI")
        elif name == "MPxN":
            devices = inv.search(mpxn=text)
        elif name == "UPRN":
            devices = inv.search(uprn=_int(text, "UPRN"))
        elif name == "PropertyFilter":
            devices = inv.search(postcode=_need(key, "PostCode"),
                                 address_identifier=_need(key, "AddressIdentifier"))
        else:
            raise InventoryError("request.body", f"ReadInventory cannot search by {name}")
        if not devices:
            raise InventoryError("search.no_match", f"no Device matches {name} {text!r}")
        body = etree.Element(_sr("DSPInventory"), nsmap={"sr": SR_NS})
        for device in devices:
            body.append(self.device_element(device))
        return ServiceOutcome(SUCCESS, body, detail=f"{len(devices)} device(s)")

    def device_element(self, device: Device) -> etree._Element:
        """``sr:Device`` of a Read Inventory response, in XSD order; MAPID (SECMP0011) last,
        where gbhil's overlay puts it, for ESME/GSME only."""
        model = DeviceModel(device.manufacturer, device.model, device.hardware_version)
        entry = self.cpl.entry_for(model, device.firmware_version)
        element = etree.Element(_sr("Device"), nsmap={"sr": SR_NS})
        _sub(element, "DeviceID", device.device_id)
        _sub(element, "DeviceType", str(device.device_type))
        if device.status is not None:
            _sub(element, "DeviceStatus", str(device.status))
        _sub(element, "DeviceManufacturer", device.manufacturer)
        _sub(element, "DeviceModel", device.model)
        optional: list[tuple[str, str | None]] = [
            ("SMETSCHTSVersion", device.smets_chts_version),
            ("DeviceFirmwareVersion", device.firmware_version),
            ("DeviceFirmwareVersionStatus",
             entry.xsd_status if entry is not None and device.firmware_version else None),
            ("CPLStatus", self.cpl.model_status(model)),
            ("DateCommissioned",
             None if device.date_commissioned is None else device.date_commissioned.isoformat()),
            ("ImportMPxN", device.import_mpxn),
            ("SecondaryImportMPAN", device.secondary_import_mpan),
            ("ExportMPAN", device.export_mpan),
            ("ESMEVariant", device.esme_variant),
            ("UPRN", None if device.uprn is None else str(device.uprn)),
        ]
        for local, value in optional:
            if value is not None:
                _sub(element, local, value)
        if device.postcode is not None and device.address_identifier is not None:
            prop = _sub(element, "PropertyFilter")
            _sub(prop, "PostCode", device.postcode)
            _sub(prop, "AddressIdentifier", device.address_identifier)
        for local, value in (
            ("CSPRegion", device.csp_region),
            ("DeviceGBCSVersion", None if entry is None else entry.latest_gbcs_version),
            ("HANVariant", device.han_variant),
            ("Connectivity", device.connectivity),
        ):
            if value is not None:
                _sub(element, local, value)
        if (self.include_map_id and device.device_type in SMART_METERS
                and device.map_id is not None):
            _sub(element, "MAPID", device.map_id)
        return element

    # --- 8.3 Decommission Device -------------------------------------------------------------

    def _decommission(self, request: Request, user: UserContext) -> ServiceOutcome:
        device = self.inventory.get(_eui(_need(request.body, "DeviceID")))
        self._authorise_supplier(device, user)
        if device.device_type not in TYPE_1:
            raise InventoryError("device.type", f"a {device.device_type} is not decommissioned "
                                 "by SRV 8.3")
        self.inventory.change_status(device.device_id, DeviceStatus.DECOMMISSIONED,
                                     Trigger.DECOMMISSIONED, by_user=user.user_id)
        self.inventory.dissociate(device.device_id)
        return ServiceOutcome(ACKNOWLEDGED, detail=f"{device.device_id} decommissioned")

    # --- 8.4 Update Inventory ----------------------------------------------------------------

    def _update_inventory(self, request: Request, user: UserContext) -> ServiceOutcome:
        inv = self.inventory
        device = inv.get(_eui(_need(request.body, "DeviceID")))
        updates = [c for c in _children(request.body) if _local(c) != "DeviceID"]
        if len(updates) != 1:
            raise InventoryError("request.body", "UpdateInventory needs exactly one update")
        update = updates[0]
        name, text = _local(update), (update.text or "")
        if name == "MAPID":
            self._authorise_map_id(device, user)
            inv.set_map_id(device.device_id, text)
        else:
            self._authorise_amend(device, user)
            if name == "UpdateDeviceStatusExceptCH":
                if device.device_type in COMMS_HUB:
                    raise InventoryError("device.type", "a CHF/GPF takes UpdateDeviceStatusCH")
                inv.change_status(device.device_id, _status(text), Trigger.UPDATE_INVENTORY,
                                  by_user=user.user_id)
            elif name == "UpdateDeviceStatusCH":
                if device.device_type not in COMMS_HUB:
                    raise InventoryError("device.type", "UpdateDeviceStatusCH is for a CHF/GPF")
                inv.change_status(device.device_id, _status(text), Trigger.UPDATE_INVENTORY_CH,
                                  by_user=user.user_id)
            elif name == "UpdateDeviceDetails":
                self._update_details(device, update)
            elif name == "DeleteDevice":
                if device.status not in (DeviceStatus.PENDING, None):
                    raise InventoryError("status.transition", f"{device.device_id} is "
                                         f"{device.status}: only a Pending Device is deleted")
                inv.delete(device.device_id)
            elif name == "UpdateMPxN":
                fields = {_local(c): (c.text or "").strip() for c in _children(update)}
                inv.set_mpxn(device.device_id, import_mpxn=fields.get("ImportMPxN"),
                             secondary_import_mpan=fields.get("SecondaryImportMPAN"),
                             export_mpan=fields.get("ExportMPAN"))
            else:
                raise InventoryError("request.body", f"UpdateInventory has no update {name}")
        return ServiceOutcome(ACKNOWLEDGED, detail=f"{device.device_id}: {name}")

    def _update_details(self, device: Device, update: etree._Element) -> None:
        fields = {_local(c): (c.text or "").strip() for c in _children(update)}
        manufacturer = fields.get("DeviceManufacturer", device.manufacturer)
        model = fields.get("DeviceModel", device.model)
        firmware = fields.get("FirmwareVersion", device.firmware_version)
        if device.device_type in TYPE_1 and not self.cpl.model_listed(
                DeviceModel(manufacturer, model), firmware):
            raise InventoryError("cpl.model_unknown", f"{manufacturer} {model} {firmware} is "
                                 "not Current on the CPL")
        self.inventory.update_details(
            device.device_id, manufacturer=fields.get("DeviceManufacturer"),
            model=fields.get("DeviceModel"), smets_chts_version=fields.get("SMETSCHTSVersion"),
            firmware_version=fields.get("FirmwareVersion"),
            esme_variant=fields.get("ESMEVariant"))

    # --- 8.14.x Communications Hub Status Update ----------------------------------------------

    def _ch_status(self, request: Request, user: UserContext) -> ServiceOutcome:
        inv = self.inventory
        srv = request.header.service_reference_variant
        chf = inv.get(_eui(_need(request.body, "DeviceID")))
        if chf.device_type is not DeviceType.CHF:
            raise InventoryError("chf.not_chf", f"{chf.device_id} is a {chf.device_type}, "
                                 "not a CHF")
        install = _find(request.body, "InstallDateTime")
        if srv in CH_INSTALL_SRVS and install is not None:
            try:
                when = parse_datetime(install)
            except DuisModelError as exc:
                raise InventoryError("request.body", str(exc)) from None
            if when > inv.now():
                raise InventoryError("chf.future_install", f"InstallDateTime {install} is in "
                                     "the future")
        details = {_local(c): (c.text or "").strip() for c in _children(request.body)
                   if _local(c) != "DeviceID"}
        inv.record_ch_event(chf.device_id, srv, details, by_user=user.user_id)
        if srv not in CH_INSTALL_SRVS or chf.status is DeviceStatus.INSTALLED_NOT_COMMISSIONED:
            return ServiceOutcome(ACKNOWLEDGED, detail=f"{srv} recorded")
        moved = []
        if srv in self.promote_pending_ch_on and chf.status is DeviceStatus.PENDING:
            for device_id in [chf.device_id, *inv.associated(chf.device_id,
                                                             AssociationKind.GAS_PROXY)]:
                if inv.get(device_id).status is DeviceStatus.PENDING:
                    inv.change_status(device_id, DeviceStatus.INSTALLED_NOT_COMMISSIONED,
                                      Trigger.CH_INSTALLED_NO_WAN, by_user=user.user_id)
                    moved.append(device_id)
        return ServiceOutcome(CH_STATUS_NOT_INSTALLED,
                              detail=f"CHF was {chf.status}; moved to InstalledNotCommissioned: "
                                     f"{moved or 'none'}")

    # --- 12.1 Request WAN Matrix -------------------------------------------------------------

    def _wan_matrix(self, request: Request, user: UserContext) -> ServiceOutcome:
        choice = _children(request.body)
        if len(choice) != 1:
            raise InventoryError("request.body", "RequestWANMatrix needs a UPRN or an address")
        key = choice[0]
        if _local(key) == "UPRN":
            coverage = self.inventory.wan_coverage(uprn=_int(key.text, "UPRN"))
        elif _local(key) == "PartialAddress":
            coverage = self.inventory.wan_coverage(
                postcode=_need(key, "PostCode"),
                address_identifier=_need(key, "AddressIdentifier"))
        else:
            raise InventoryError("request.body", f"RequestWANMatrix has no key {_local(key)}")
        body = etree.Element(_sr("DSPWANMatrix"), nsmap={"sr": SR_NS})
        echo = _sub(body, "Request")
        for child in _children(request.body):
            clone = compact(copy.deepcopy(child))
            clone.tail = None
            echo.append(clone)
        for item in coverage or self.no_coverage:
            body.append(wan_response_element(item))
        return ServiceOutcome(SUCCESS, body, detail=f"{len(coverage)} region(s) known")

    # --- 12.2 Device Pre-notification ---------------------------------------------------------

    def _prenotify(self, request: Request, user: UserContext) -> ServiceOutcome:
        body = request.body
        try:
            device_type = DeviceType(_need(body, "DeviceType"))
        except ValueError:
            raise InventoryError("request.body", "unknown DeviceType") from None
        map_id = _find(body, "MAPID")
        if device_type in SMART_METERS:
            if map_id is None and self.mapid_enforced and not self._legacy(request):
                raise InventoryError("mapid.missing", f"a {device_type} pre-notification "
                                     "needs a MAP ID (SECMP0011)")
        elif map_id is not None:
            raise InventoryError("mapid.not_applicable", f"MAP ID is not applicable to device "
                                 f"type {device_type}")
        gpf = _find(body, "AssociatedGPFDeviceID")
        if gpf is not None and device_type is not DeviceType.CHF:
            raise InventoryError("device.type", "AssociatedGPFDeviceID is for a CHF")
        spec = NewDevice(
            device_id=_eui(_need(body, "DeviceID")), device_type=device_type,
            manufacturer=_need(body, "DeviceManufacturer"), model=_need(body, "DeviceModel"),
            firmware_version=_find(body, "FirmwareVersion"),
            smets_chts_version=_find(body, "SMETSCHTSVersion"),
            esme_variant=_find(body, "ESMEVariant"), map_id=map_id)
        if device_type in TYPE_1 and not self.cpl.model_listed(
                DeviceModel(spec.manufacturer, spec.model), spec.firmware_version):
            raise InventoryError("cpl.model_unknown", f"{spec.manufacturer} {spec.model} "
                                 f"{spec.firmware_version or ''} is not Current on the CPL")
        device = self.inventory.prenotify(spec, by_user=user.user_id,
                                          associated_gpf_id=None if gpf is None else _eui(gpf))
        for role in PRENOTIFIER_PARTY_ROLES.get(device_type, frozenset()) & user.roles:
            self.inventory.set_party(device.device_id, role, user.user_id)
        return ServiceOutcome(ACKNOWLEDGED, detail=f"{device.device_id} Pending, MAP ID "
                                                   f"{device.map_id}")

    def _legacy(self, request: Request) -> bool:
        """Was the request written with a DUIS schema version before MAP IDs?"""
        try:
            return Decimal(request.schema_version) < self.mapid_since_schema_version
        except (InvalidOperation, ValueError):
            return False

    # --- device requests: checks before sending, bookkeeping after --------------------------

    def _device_precheck(self, request: Request, user: UserContext) -> ServiceOutcome:
        inv = self.inventory
        srv = request.header.service_reference_variant
        target = inv.get(request.header.business_target_id)
        body = request.body if request.body_name == SERVICES[srv].body else None
        if srv == "8.1.1":
            self._authorise_supplier(target, user)
            if target.device_type not in SMART_METERS:
                raise InventoryError("device.type", "8.1.1 commissions an ESME or GSME")
            if not inv.can_change(target.device_id, DeviceStatus.COMMISSIONED,
                                  Trigger.COMMISSIONED):
                raise InventoryError("status.transition", f"{target.device_id} is "
                                     f"{target.status}, not InstalledNotCommissioned")
        elif srv == "8.11":
            if target.device_type not in COMMS_HUB:
                raise InventoryError("device.type", "8.11 targets a CHF or GPF")
            if body is not None:
                device = inv.get(_eui(_need(body, "DeviceID")))
                whitelist = body.find(_sr("AddDeviceToCHFWhitelist"))
                if whitelist is not None:
                    check_install_code(_need(whitelist, "InstallCode"), smets2=not device.smets1)
        elif body is not None:  # 8.7.x / 8.8.x: the other Device must be known
            inv.get(_eui(_need(body, "OtherDeviceID")))
        return ServiceOutcome(ACKNOWLEDGED, detail=f"{srv} may be sent to {target.device_id}")

    def complete(self, request: Request, *, other_device_id: str | None = None) -> None:
        """Inventory bookkeeping once a device SRV succeeded on the device: 8.1.1 ->
        Commissioned; 8.7 -> joined (a PPMID/HCALCS is then Commissioned, a Whitelisted
        meter InstalledNotCommissioned); 8.8 -> unjoined; 8.11 Add -> on the CH's device
        log, Pending -> Whitelisted, install code and MPxNs kept, a meter associated with
        its CHF; 8.11 Remove -> off the log. For critical SRVs answered with CV 5-7, give
        the CV 4 request (it has the body) or ``other_device_id``. Status changes the
        catalogue does not allow are skipped: the device has already acted."""
        srv = request.header.service_reference_variant
        if srv not in SERVICES or SERVICES[srv].non_device:
            raise UnsupportedRequest(f"SRV {srv} has no device-side bookkeeping here")
        inv = self.inventory
        target = inv.get(request.header.business_target_id)
        body = request.body if request.body_name == SERVICES[srv].body else None
        with inv.transaction():
            if srv == "8.1.1":
                self._try_status(target.device_id, DeviceStatus.COMMISSIONED,
                                 Trigger.COMMISSIONED)
            elif srv.startswith(("8.7.", "8.8.")):
                other_text = other_device_id if other_device_id is not None else (
                    None if body is None else _need(body, "OtherDeviceID"))
                if other_text is None:
                    raise ValueError(f"{srv} bookkeeping needs the OtherDeviceID")
                other = inv.get(_eui(other_text))
                if srv.startswith("8.7."):
                    inv.associate(other.device_id, target.device_id, AssociationKind.JOINED)
                    for device in (other, target):
                        for status in (DeviceStatus.INSTALLED_NOT_COMMISSIONED,
                                       DeviceStatus.COMMISSIONED):
                            self._try_status(device.device_id, status, Trigger.JOINED)
                else:
                    inv.dissociate(other.device_id, target.device_id, AssociationKind.JOINED)
            elif srv == "8.11" and body is not None:
                self._han_log(target, body)

    def _han_log(self, target: Device, body: etree._Element) -> None:
        inv = self.inventory
        device = inv.get(_eui(_need(body, "DeviceID")))
        if _need(body, "RequestType") == "Remove":
            inv.dissociate(device.device_id, target.device_id, AssociationKind.HAN_LOG)
            return
        inv.associate(device.device_id, target.device_id, AssociationKind.HAN_LOG)
        self._try_status(device.device_id, DeviceStatus.WHITELISTED, Trigger.WHITELISTED)
        whitelist = body.find(_sr("AddDeviceToCHFWhitelist"))
        if whitelist is not None:
            inv.set_install_code(device.device_id, _need(whitelist, "InstallCode"))
            if device.device_type in SMART_METERS:
                mpxns = {k: _find(whitelist, k) for k in
                         ("ImportMPxN", "SecondaryImportMPAN", "ExportMPAN")}
                if device.device_type is DeviceType.GSME:
                    mpxns["SecondaryImportMPAN"] = mpxns["ExportMPAN"] = None
                inv.set_mpxn(device.device_id, import_mpxn=mpxns["ImportMPxN"],
                             secondary_import_mpan=mpxns["SecondaryImportMPAN"],
                             export_mpan=mpxns["ExportMPAN"])
        if device.device_type in SMART_METERS:
            chfs = ([target.device_id] if target.device_type is DeviceType.CHF
                    else inv.associated(target.device_id, AssociationKind.GAS_PROXY))
            for chf in chfs:
                inv.associate(device.device_id, chf, AssociationKind.COMMS_HUB)

    def _try_status(self, device_id: str, status: DeviceStatus, trigger: Trigger) -> bool:
        if self.inventory.can_change(device_id, status, trigger):
            self.inventory.change_status(device_id, status, trigger)
            return True
        return False

    # --- firmware versions reported by devices (seed 004) -----------------------------------

    def firmware_version_reported(
        self, device_id: str, version: str, *, via: FirmwareReport,
        requested_by: UserContext | None = None,
    ) -> tuple[AlertNotice, ...]:
        """A device reported ``version`` (11.2 / 11.3 response or a 0x8F66 activation
        alert). Seed 004 table 41: different from the SMI and Current on the CPL -> SMI
        updated, N49 after 11.2 to IS/GS unless they sent it; Removed -> SMI updated, N50,
        status not Suspended; not on the CPL -> SMI kept, N51. Only ESME, GSME, CHF and
        SMETS1 PPMID raise these; other Devices are left alone."""
        via = FirmwareReport(via)
        if not 1 <= len(version) <= 8:
            raise InvalidValue(f"firmware version {version!r} is not 1-8 characters")
        inv = self.inventory
        device = inv.get(device_id)
        if version == device.firmware_version or device.firmware_version is None:
            return ()
        if device.device_type not in FIRMWARE_ALERT_TYPES and not (
                device.device_type is DeviceType.PPMID and device.smets1):
            return ()
        model = DeviceModel(device.manufacturer, device.model, device.hardware_version)
        status = self.cpl.firmware_status(model, version)
        code: str | None
        with inv.transaction():
            if status is CplStatus.CURRENT:
                inv.update_details(device.device_id, firmware_version=version)
                code = FIRMWARE_UPDATED_IN_SMI if via is FirmwareReport.READ_FIRMWARE else None
            elif status is CplStatus.REMOVED:
                inv.update_details(device.device_id, firmware_version=version)
                code = FIRMWARE_REMOVED_FROM_CPL
            else:
                code = FIRMWARE_UNKNOWN
        if code is None:
            return ()
        suppliers = inv.suppliers(device.device_id)
        recipients = sorted(suppliers["IS"] | suppliers["GS"])
        if code == FIRMWARE_UPDATED_IN_SMI and requested_by is not None:
            recipients = [r for r in recipients if r != requested_by.user_id]
        if not recipients:
            return ()
        body = etree.Element(_sr("FirmwareVersionMismatch"), nsmap={"sr": SR_NS})
        _sub(body, "DeviceID", device.device_id)
        _sub(body, "DeviceType", str(device.device_type))
        _sub(body, "FirmwareVersionSMI", device.firmware_version)
        _sub(body, "FirmwareVersionDevice", version)
        return (AlertNotice(code, tuple(recipients), body),)

    def gbcs_problem(self, device_id: str, *, at_least: str | None = None,
                     below: str | None = None) -> str | None:
        """E57 when the GBCS version of the Device's SMI model on the CPL does not fit
        (seed 003); None when it does."""
        device = self.inventory.get(device_id)
        return self.cpl.gbcs_problem(
            DeviceModel(device.manufacturer, device.model, device.hardware_version),
            device.firmware_version, at_least=at_least, below=below)


def wan_response_element(item: WanCoverage) -> etree._Element:
    """``sr:DSPWANMatrixResponse`` in XSD order (the blank variant is written as is)."""
    element = etree.Element(_sr("DSPWANMatrixResponse"), nsmap={"sr": SR_NS})
    _sub(element, "CSPRegion", item.region)
    _sub(element, "CSPRegionResponseCode", item.response_code)
    if item.coverage_available is None:
        return element
    _sub(element, "CoverageAvailability", "true" if item.coverage_available else "false")
    if item.anticipated_coverage_date is not None:
        _sub(element, "AnticipatedCoverageDate", item.anticipated_coverage_date.isoformat())
    _sub(element, "WANTechnology", item.wan_technology)
    _sub(element, "ConnectivityLikelihood", item.connectivity_likelihood)
    if item.auxiliary_equipment_required is not None:
        _sub(element, "AuxiliaryEquipmentRequired", item.auxiliary_equipment_required)
    if item.additional_information is not None:
        _sub(element, "AdditionalInformation", item.additional_information)
    return element


_HANDLERS = {
    "8.1.1": InventoryService._device_precheck,
    "8.2": InventoryService._read_inventory,
    "8.3": InventoryService._decommission,
    "8.4": InventoryService._update_inventory,
    "8.7.1": InventoryService._device_precheck,
    "8.7.2": InventoryService._device_precheck,
    "8.8.1": InventoryService._device_precheck,
    "8.8.2": InventoryService._device_precheck,
    "8.11": InventoryService._device_precheck,
    "8.14.1": InventoryService._ch_status,
    "8.14.2": InventoryService._ch_status,
    "8.14.3": InventoryService._ch_status,
    "8.14.4": InventoryService._ch_status,
    "12.1": InventoryService._wan_matrix,
    "12.2": InventoryService._prenotify,
}
assert set(_HANDLERS) == set(SERVICES)

__all__ = [
    "ACKNOWLEDGED", "CH_INSTALL_SRVS", "CH_STATUS_NOT_INSTALLED", "CONDITION_CODES",
    "FIRMWARE_ALERT_TYPES", "FIRMWARE_REMOVED_FROM_CPL", "FIRMWARE_UNKNOWN",
    "FIRMWARE_UPDATED_IN_SMI", "MAPID_SINCE_SCHEMA_VERSION", "NO_COVERAGE",
    "PRENOTIFIER_PARTY_ROLES", "PROMOTE_PENDING_CH_ON", "SERVICES", "SUCCESS", "AlertNotice",
    "FirmwareReport", "InventoryService", "ServiceOutcome", "ServiceRule",
    "UnsupportedRequest", "UserContext", "wan_response_element",
]
