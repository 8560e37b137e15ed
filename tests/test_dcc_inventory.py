"""gbhil.dcc.inventory and gbhil.dcc.inventory_requests: the SMI on SQLite and the DUIS
requests answered from it.

Seeds: 000 (SECMP0011, MAP ID, appendix A scenarios), 002 (SR 8.14.2, W081401, WAN
variants), 003 (response codes), 004 (E081111, N49-N51). Requests are built here as XML
text (never copied from ../shared); the schema tests check they and every response body
built from them are valid against the DUIS V5.4 XSD + gbhil's MAP ID overlay.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gbhil.dcc.cpl import Cpl, CplEntry, DeviceModel, RemovalReason, simulated_certificates
from gbhil.dcc.inventory import (
    BLANK_WAN_VARIANT,
    CONDITIONS,
    MAP_ID_UNKNOWN,
    MAX_READ_DEVICES,
    TRANSITIONS,
    WAN_VARIANTS,
    AssociationKind,
    DeviceStatus,
    DeviceType,
    InvalidValue,
    Inventory,
    InventoryError,
    NewDevice,
    Trigger,
    WanCoverage,
    check_install_code,
    is_valid_map_id,
)
from gbhil.dcc.inventory_requests import (
    ACKNOWLEDGED,
    CH_STATUS_NOT_INSTALLED,
    FIRMWARE_REMOVED_FROM_CPL,
    FIRMWARE_UNKNOWN,
    FIRMWARE_UPDATED_IN_SMI,
    SERVICES,
    SUCCESS,
    FirmwareReport,
    InventoryService,
    ServiceOutcome,
    UnsupportedRequest,
    UserContext,
)
from gbhil.duis.model import DCC_EUI, Request
from gbhil.duis.schema import SR_NS, DuisSchema, load_schema
from gbhil.duis.xmldsig import compact

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CONFORMANCE = Path(os.environ.get("GBHIL_CONFORMANCE", SHARED / "conformance"))
SR = f"{{{SR_NS}}}"

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
SUPPLIER = "90-B3-D5-1F-30-01-00-00"        # the templates' originator
OTHER_SUPPLIER = "90-B3-D5-1F-30-01-00-01"
GAS_SUPPLIER = "90-B3-D5-1F-30-02-00-00"
NETWORK = "90-B3-D5-1F-30-03-00-00"
ESME, GSME, CHF, GPF, PPMID, IHD = (f"00-DB-12-34-56-78-90-{x}"
                                    for x in ("A0", "A1", "A2", "A3", "A4", "A5"))
CHF2, GPF2 = "00-DB-12-34-56-78-90-B2", "00-DB-12-34-56-78-90-B3"
FW = "01000000"
CODE_16 = "30313233343536373839414243444546"

# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def duis_dir() -> Path:
    path = CONFORMANCE / "duis"
    if not (path / "schema").is_dir():
        pytest.skip(f"DUIS conformance data not found at {path} (checkout ../shared)")
    return path


@pytest.fixture(scope="session")
def seeds() -> Path:
    path = SHARED / "seeds"
    if not path.is_dir():
        pytest.skip(f"seeds not found at {path} (checkout ../shared)")
    return path


@pytest.fixture(scope="session")
def schema(duis_dir: Path) -> DuisSchema:
    return load_schema(folder=duis_dir / "schema")


def seed_text(seeds: Path, number: str) -> str:
    return next(seeds.glob(f"{number}_*")).read_text()


class Clock:
    """A settable clock (the SMI only ever asks it for the time)."""

    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> dt.datetime:
        return self.at


@dataclass
class World:
    clock: Clock
    inventory: Inventory
    cpl: Cpl
    service: InventoryService

    def process(self, request: Request, user: UserContext) -> ServiceOutcome:
        return self.service.process(request, user)


def cpl_with_models(clock: Callable[[], dt.datetime]) -> Cpl:
    cpl = Cpl(now=clock)
    for device_type, model in ((DeviceType.ESME, "ESME-1"), (DeviceType.GSME, "GSME-1"),
                               (DeviceType.PPMID, "PPMID-1"), (DeviceType.HCALCS, "HCALCS-1"),
                               (DeviceType.CHF, "CH-1")):
        cpl.add(CplEntry(device_type, DeviceModel("GBH1", model), FW, ("4.0",), ("SMETS V5",),
                         certificates=simulated_certificates(device_type)))
    return cpl


def make_world(**service_options: object) -> World:
    clock = Clock()
    inventory = Inventory(now=clock)
    cpl = cpl_with_models(clock)
    return World(clock, inventory, cpl, InventoryService(inventory, cpl, **service_options))


@pytest.fixture
def world() -> World:
    return make_world()


IS_USER = UserContext(SUPPLIER, frozenset({"IS"}))
IS_GS_USER = UserContext(SUPPLIER, frozenset({"IS", "GS"}))
OTHER_IS = UserContext(OTHER_SUPPLIER, frozenset({"IS", "GS"}))
GS_USER = UserContext(GAS_SUPPLIER, frozenset({"GS"}))
ED_USER = UserContext(NETWORK, frozenset({"ED"}))

# --- request builders (XML text in XSD order) ---------------------------------------------------

_counter = iter(range(1000, 10**9))


def request(srv: str, body: str, *, cv: int = 8, target: str = DCC_EUI,
            originator: str = SUPPLIER, schema_version: str = "5.4",
            sr: str | None = None) -> Request:
    sr = sr if sr is not None else SERVICES[srv].service_reference if srv in SERVICES else srv
    xml = (f'<sr:Request xmlns:sr="{SR_NS}" schemaVersion="{schema_version}"><sr:Header>'
           f"<sr:RequestID>{originator}:{target}:{next(_counter)}</sr:RequestID>"
           f"<sr:CommandVariant>{cv}</sr:CommandVariant>"
           f"<sr:ServiceReference>{sr}</sr:ServiceReference>"
           f"<sr:ServiceReferenceVariant>{srv}</sr:ServiceReferenceVariant>"
           f"</sr:Header><sr:Body>{body}</sr:Body></sr:Request>")
    return Request.from_element(etree.fromstring(xml))


def _opt(local: str, value: str | None) -> str:
    return "" if value is None else f"<sr:{local}>{value}</sr:{local}>"


def prenotification(device_id: str, device_type: str, *, model: str | None = None,
                    map_id: str | None = None, firmware: str | None = FW,
                    esme_variant: str | None = None, gpf: str | None = None,
                    schema_version: str = "5.4") -> Request:
    model = model or {"CHF": "CH-1"}.get(device_type, f"{device_type}-1")
    body = (f"<sr:DevicePrenotification><sr:DeviceID>{device_id}</sr:DeviceID>"
            f"<sr:DeviceManufacturer>GBH1</sr:DeviceManufacturer>"
            f"<sr:DeviceModel>{model}</sr:DeviceModel><sr:DeviceType>{device_type}</sr:DeviceType>"
            f"{_opt('MAPID', map_id)}{_opt('SMETSCHTSVersion', 'SMETS V5')}"
            f"{_opt('FirmwareVersion', firmware)}{_opt('ESMEVariant', esme_variant)}"
            f"{_opt('AssociatedGPFDeviceID', gpf)}</sr:DevicePrenotification>")
    return request("12.2", body, schema_version=schema_version)


def read_inventory(key: str, value: str) -> Request:
    return request("8.2", f"<sr:ReadInventory><sr:{key}>{value}</sr:{key}></sr:ReadInventory>")


def read_by_property(postcode: str, address: str) -> Request:
    return request("8.2", "<sr:ReadInventory><sr:PropertyFilter>"
                          f"<sr:PostCode>{postcode}</sr:PostCode>"
                          f"<sr:AddressIdentifier>{address}</sr:AddressIdentifier>"
                          "</sr:PropertyFilter></sr:ReadInventory>")


def update_inventory(device_id: str, update: str) -> Request:
    return request("8.4", f"<sr:UpdateInventory><sr:DeviceID>{device_id}</sr:DeviceID>"
                          f"{update}</sr:UpdateInventory>")


def set_map_id(device_id: str, map_id: str) -> Request:
    return update_inventory(device_id, f"<sr:MAPID>{map_id}</sr:MAPID>")


def status_except_ch(device_id: str, status: str) -> Request:
    return update_inventory(device_id, f"<sr:UpdateDeviceStatusExceptCH>{status}"
                                       "</sr:UpdateDeviceStatusExceptCH>")


def status_ch(device_id: str, status: str) -> Request:
    return update_inventory(device_id, f"<sr:UpdateDeviceStatusCH>{status}"
                                       "</sr:UpdateDeviceStatusCH>")


def ch_install(srv: str, device_id: str, *, install: str | None = None) -> Request:
    element = {"8.14.1": "CHFInstallSuccessSMWAN", "8.14.2": "CHFInstallSuccessNoSMWAN"}[srv]
    install_type = "New CHF Install" if srv == "8.14.1" else "CHF Install - no SM WAN"
    no_wan = ("<sr:PremiseType>Terraced</sr:PremiseType>"
              "<sr:MetalObstructionCheck>false</sr:MetalObstructionCheck>"
              "<sr:ConnectivityObstructionCheck>true</sr:ConnectivityObstructionCheck>"
              "<sr:SharedObstructionCheck>false</sr:SharedObstructionCheck>"
              if srv == "8.14.2" else "")
    return request(srv, f"<sr:{element}><sr:DeviceID>{device_id}</sr:DeviceID>"
                        f"<sr:CHFInstallType>{install_type}</sr:CHFInstallType>"
                        f"{_opt('InstallDateTime', install)}<sr:MPxN>1000999888</sr:MPxN>"
                        "<sr:AerialInstall>false</sr:AerialInstall>"
                        "<sr:CHFLocation>Deep indoors</sr:CHFLocation>"
                        f"{no_wan}</sr:{element}>")


def ch_return(srv: str, device_id: str) -> Request:
    if srv == "8.14.3":
        return request(srv, f"<sr:CHFFaultReturn><sr:DeviceID>{device_id}</sr:DeviceID>"
                            "<sr:CHFFaultReturnType>Fault identified post installation"
                            f"</sr:CHFFaultReturnType><sr:OtherDeviceID>{ESME}</sr:OtherDeviceID>"
                            "<sr:CHFConnectionMethod>Hot-shoe</sr:CHFConnectionMethod>"
                            "<sr:CHFFaultReason>Damaged case</sr:CHFFaultReason>"
                            "</sr:CHFFaultReturn>")
    return request(srv, f"<sr:CHFNoFaultReturn><sr:DeviceID>{device_id}</sr:DeviceID>"
                        "<sr:CHFNoFaultReturnType>No Fault Return (general)"
                        "</sr:CHFNoFaultReturnType></sr:CHFNoFaultReturn>")


def wan_matrix_by_uprn(uprn: int) -> Request:
    return request("12.1", f"<sr:RequestWANMatrix><sr:UPRN>{uprn}</sr:UPRN></sr:RequestWANMatrix>")


def wan_matrix_by_address(postcode: str, address: str) -> Request:
    return request("12.1", "<sr:RequestWANMatrix><sr:PartialAddress>"
                           f"<sr:PostCode>{postcode}</sr:PostCode>"
                           f"<sr:AddressIdentifier>{address}</sr:AddressIdentifier>"
                           "</sr:PartialAddress></sr:RequestWANMatrix>")


def decommission(device_id: str) -> Request:
    return request("8.3", f"<sr:DecommissionDevice><sr:DeviceID>{device_id}</sr:DeviceID>"
                          "</sr:DecommissionDevice>")


def commission(target: str, cv: int = 4) -> Request:
    return request("8.1.1", "<sr:CommissionDeviceSynchroniseClock>"
                            "<sr:CurrentDateTime>2026-03-01T12:00:00Z</sr:CurrentDateTime>"
                            "<sr:TolerancePeriod>60</sr:TolerancePeriod>"
                            "</sr:CommissionDeviceSynchroniseClock>", cv=cv, target=target)


def join(target: str, other: str, *, unjoin: bool = False) -> Request:
    srv, element = ("8.8.2", "UnjoinServiceNonCritical") if unjoin else (
        "8.7.2", "JoinServiceNonCritical")
    return request(srv, f"<sr:{element}><sr:OtherDeviceID>{other}</sr:OtherDeviceID>"
                        f"</sr:{element}>", cv=1, target=target)


def han_log(target: str, device_id: str, *, install_code: str = CODE_16,
            remove: bool = False) -> Request:
    add = ("" if remove else "<sr:AddDeviceToCHFWhitelist><sr:JoinTimePeriod>90"
           f"</sr:JoinTimePeriod><sr:InstallCode>{install_code}</sr:InstallCode>"
           "<sr:ImportMPxN>1312345678111</sr:ImportMPxN></sr:AddDeviceToCHFWhitelist>")
    return request("8.11", f"<sr:UpdateHANDeviceLog><sr:DeviceID>{device_id}</sr:DeviceID>"
                           f"<sr:RequestType>{'Remove' if remove else 'Add'}</sr:RequestType>"
                           f"{add}</sr:UpdateHANDeviceLog>", cv=1, target=target)


# --- world builders -----------------------------------------------------------------------------


def prenotified_meter(world: World, device_id: str = ESME, device_type: str = "ESME", *,
                      map_id: str = "M1", user: UserContext = IS_GS_USER) -> None:
    outcome = world.process(prenotification(device_id, device_type, map_id=map_id), user)
    assert outcome.response_code == ACKNOWLEDGED, outcome.detail


def installed_site(world: World) -> None:
    """ESME (IS = SUPPLIER) + GSME (GS = GAS_SUPPLIER) on CHF/GPF, everything commissioned
    except the devices a test moves itself."""
    inv = world.inventory
    inv.add_device(NewDevice(CHF, DeviceType.CHF, "GBH1", "CH-1", firmware_version=FW),
                   status=DeviceStatus.COMMISSIONED)
    inv.add_device(NewDevice(GPF, DeviceType.GPF, "GBH1", "CH-1", firmware_version=FW),
                   status=DeviceStatus.COMMISSIONED)
    inv.associate(CHF, GPF, AssociationKind.GAS_PROXY)
    for device_id, kind, role, user in ((ESME, DeviceType.ESME, "IS", SUPPLIER),
                                        (GSME, DeviceType.GSME, "GS", GAS_SUPPLIER)):
        inv.add_device(NewDevice(device_id, kind, "GBH1", f"{kind}-1", firmware_version=FW),
                       status=DeviceStatus.COMMISSIONED)
        inv.set_party(device_id, role, user)
        inv.associate(device_id, CHF, AssociationKind.COMMS_HUB)
    inv.set_party(ESME, "ED", NETWORK)


def snapshot(inv: Inventory) -> list[tuple[object, ...]]:
    """Everything in the SMI, for 'nothing changed' assertions."""
    tables = ("smi_device", "smi_status_history", "smi_party", "smi_association",
              "smi_ch_event", "smi_record", "smi_wan_coverage")
    return [(t, *tuple(r)) for t in tables for r in inv._rows(f"SELECT * FROM {t}")]


def history(inv: Inventory, device_id: str) -> list[tuple[DeviceStatus, Trigger]]:
    return [(h.status, h.trigger) for h in inv.status_history(device_id)]


def devices_in(outcome: ServiceOutcome) -> list[etree._Element]:
    assert outcome.body is not None and outcome.body.tag == f"{SR}DSPInventory"
    return outcome.body.findall(f"{SR}Device")


def field(device: etree._Element, local: str) -> str | None:
    return device.findtext(f"{SR}{local}")


# ================================================================================================
# SECMP0011 appendix A: the User testing scenarios (seed 000)
# ================================================================================================


def test_seed_000_appendix_a_lists_the_scenarios(seeds: Path) -> None:
    text = seed_text(seeds, "000")
    appendix = text[text.index("Appendix A - Examples of SECMP0011"):]
    for step in ("SR12.2 - Device Pre-notification", "SR8.2 - Read Inventory",
                 "SR8.4 - Update Inventory", "MAP ID SSI Report", "RSMI_001"):
        assert step in appendix


def test_SECMP0011_DUI_1_sr12_2_prenotification_populates_map_id(world: World) -> None:
    """DUI step 1: 12.2 * (n) devices; acknowledgement received for every request."""
    meters = [(f"00-DB-12-34-56-78-91-{i:02X}", kind, f"M{i}")
              for i, kind in enumerate(["ESME", "GSME"] * 3)]
    for device_id, kind, map_id in meters:
        outcome = world.process(prenotification(device_id, kind, map_id=map_id), IS_GS_USER)
        assert outcome.response_code == ACKNOWLEDGED == "I99"
    for device_id, _, map_id in meters:
        device = world.inventory.get(device_id)
        assert (device.status, device.map_id) == (DeviceStatus.PENDING, map_id)


def test_SECMP0011_DUI_2_sr8_2_read_inventory_returns_map_id(world: World) -> None:
    """DUI step 2: 8.2 * (n) devices; the Service Response displays the MAP ID."""
    prenotified_meter(world, ESME, "ESME", map_id="AB12")
    prenotified_meter(world, GSME, "GSME", map_id="Z9")
    world.inventory.add_device(NewDevice("00-DB-12-34-56-78-91-00", DeviceType.ESME, "GBH1",
                                         "ESME-1", firmware_version=FW))  # pre-SECMP0011
    for device_id, expected in ((ESME, "AB12"), (GSME, "Z9"),
                                ("00-DB-12-34-56-78-91-00", MAP_ID_UNKNOWN)):
        outcome = world.process(read_inventory("DeviceID", device_id), IS_GS_USER)
        assert outcome.response_code == SUCCESS == "I0"
        (device,) = devices_in(outcome)
        assert field(device, "MAPID") == expected


def test_SECMP0011_DUI_3_sr8_4_update_map_id_of_a_meter(world: World) -> None:
    """DUI step 3 (req. 24.a.ii): update MAP ID for a Device ID which is a Meter."""
    prenotified_meter(world, ESME, "ESME", map_id="OLD1")
    world.inventory.add_device(NewDevice(GSME, DeviceType.GSME, "GBH1", "GSME-1",
                                         firmware_version=FW), status=DeviceStatus.COMMISSIONED)
    world.inventory.set_party(GSME, "GS", GAS_SUPPLIER)
    assert world.process(set_map_id(ESME, "NEW1"), IS_GS_USER).response_code == ACKNOWLEDGED
    assert world.process(set_map_id(GSME, "G7"), GS_USER).response_code == ACKNOWLEDGED
    assert world.inventory.get(ESME).map_id == "NEW1"
    assert world.inventory.get(GSME).map_id == "G7"  # 'UKN' back-filled (req. 13)


@pytest.mark.parametrize("device_type", ["CHF", "PPMID", "IHD"])
def test_SECMP0011_DUI_3_sr8_4_map_id_for_a_non_meter_is_rejected(
        world: World, device_type: str) -> None:
    """DUI step 3 (req. 24.a.ii, 9b): update MAP ID to a Device ID which is not a Meter."""
    world.process(prenotification(CHF if device_type == "CHF" else PPMID, device_type,
                                  firmware=None if device_type == "IHD" else FW), IS_GS_USER)
    device_id = CHF if device_type == "CHF" else PPMID
    before = snapshot(world.inventory)
    outcome = world.process(set_map_id(device_id, "AB12"), IS_GS_USER)
    assert outcome.response_code == CONDITIONS["mapid.not_applicable"].code
    assert snapshot(world.inventory) == before


def test_SECMP0011_SSI_1_rsmi_001_report_displays_map_id(world: World) -> None:
    """SSI step 1: RSMI_001 Installation Status Smart Meter Report shows the MAP ID."""
    prenotified_meter(world, ESME, "ESME", map_id="AB12")
    prenotified_meter(world, GSME, "GSME", map_id="G1", user=OTHER_IS)
    world.process(prenotification(CHF, "CHF"), IS_GS_USER)
    rows = world.inventory.installation_status_report(SUPPLIER)
    assert [(r.device_id, r.device_type, r.status, r.map_id) for r in rows] == [
        (ESME, DeviceType.ESME, DeviceStatus.PENDING, "AB12")]
    assert [r.map_id for r in world.inventory.installation_status_report(OTHER_SUPPLIER)] == [
        "G1"]


# ================================================================================================
# MAP ID rules (seed 000)
# ================================================================================================


@pytest.mark.parametrize("device_type", ["ESME", "GSME"])
def test_map_id_is_mandatory_for_meters(world: World, device_type: str) -> None:
    outcome = world.process(prenotification(ESME, device_type), IS_GS_USER)
    assert outcome.response_code == CONDITIONS["mapid.missing"].code
    assert ESME not in world.inventory


@pytest.mark.parametrize(("device_type", "firmware"), [
    ("CHF", FW), ("GPF", FW), ("PPMID", FW), ("HCALCS", FW), ("IHD", None), ("CAD", None)])
def test_map_id_is_rejected_for_other_device_types(world: World, device_type: str,
                                                   firmware: str | None) -> None:
    outcome = world.process(prenotification(CHF, device_type, map_id="AB12", firmware=firmware),
                            IS_GS_USER)
    assert outcome.response_code == CONDITIONS["mapid.not_applicable"].code
    assert CHF not in world.inventory


@pytest.mark.parametrize("bad", ["ABCDE", "A-1", "AB 1", "ÄB", "١٢"])
def test_map_id_must_be_1_to_4_alphanumerics(world: World, bad: str) -> None:
    outcome = world.process(prenotification(ESME, "ESME", map_id=bad), IS_GS_USER)
    assert outcome.response_code == CONDITIONS["mapid.invalid"].code
    assert ESME not in world.inventory
    prenotified_meter(world, ESME, "ESME", map_id="OK")
    assert world.process(set_map_id(ESME, bad), IS_GS_USER).response_code == \
        CONDITIONS["mapid.invalid"].code
    assert world.inventory.get(ESME).map_id == "OK"


def test_map_id_is_unknown_for_devices_prenotified_with_an_older_duis(world: World) -> None:
    """Table 214: 'Unknown' = pre-notified with a DUIS schema version prior to 2.x."""
    outcome = world.process(prenotification(ESME, "ESME", schema_version="1.0"), IS_GS_USER)
    assert outcome.response_code == ACKNOWLEDGED
    assert world.inventory.get(ESME).map_id == MAP_ID_UNKNOWN == "UKN"


def test_map_id_rules_off_behaves_as_official_v5_4() -> None:
    world = make_world(mapid_enforced=False, include_map_id=False)
    assert world.process(prenotification(ESME, "ESME"), IS_USER).response_code == ACKNOWLEDGED
    assert world.inventory.get(ESME).map_id == MAP_ID_UNKNOWN
    (device,) = devices_in(world.process(read_inventory("DeviceID", ESME), IS_USER))
    assert field(device, "MAPID") is None


def test_devices_added_before_secmp0011_read_back_ukn(world: World) -> None:
    for device_id, kind in ((ESME, DeviceType.ESME), (GSME, DeviceType.GSME)):
        world.inventory.add_device(NewDevice(device_id, kind, "GBH1", f"{kind}-1",
                                             firmware_version=FW))
        assert world.inventory.get(device_id).map_id == MAP_ID_UNKNOWN
    world.inventory.add_device(NewDevice(CHF, DeviceType.CHF, "GBH1", "CH-1",
                                         firmware_version=FW))
    assert world.inventory.get(CHF).map_id is None


def test_pending_map_id_only_by_the_prenotifying_user(world: World) -> None:
    """3.8.93.4 5(b)(a): while Pending only the User who pre-notified may update it."""
    prenotified_meter(world, ESME, "ESME", map_id="AB12")
    outcome = world.process(set_map_id(ESME, "XX"), OTHER_IS)
    assert outcome.response_code == "E4"
    assert world.inventory.get(ESME).map_id == "AB12"
    # any eligible role of the pre-notifier will do while Pending
    prenotified_meter(world, GSME, "GSME", map_id="G1", user=ED_USER)
    assert world.process(set_map_id(GSME, "G2"), ED_USER).response_code == ACKNOWLEDGED


def test_map_id_after_pending_only_by_the_responsible_is_or_gs(world: World) -> None:
    """3.8.93.4 5(b)(b): User Roles EIS and GIS, and only the Responsible Supplier."""
    installed_site(world)
    for user in (OTHER_IS, ED_USER, UserContext(SUPPLIER, frozenset({"ED"}))):
        assert world.process(set_map_id(ESME, "X1"), user).response_code == "E4"
    assert world.process(set_map_id(GSME, "X1"), IS_GS_USER).response_code == "E4"
    assert world.inventory.get(ESME).map_id == MAP_ID_UNKNOWN
    assert world.process(set_map_id(ESME, "E1"), IS_USER).response_code == ACKNOWLEDGED
    assert world.process(set_map_id(GSME, "G1"), GS_USER).response_code == ACKNOWLEDGED


def test_map_id_keeps_no_history(world: World) -> None:
    """Req. 8: no historic MAP IDs; a MAP ID change is not a status change either."""
    prenotified_meter(world, ESME, "ESME", map_id="A")
    before = history(world.inventory, ESME)
    for map_id in ("B", "C"):
        world.process(set_map_id(ESME, map_id), IS_USER)
    assert world.inventory.get(ESME).map_id == "C"
    assert history(world.inventory, ESME) == before


def test_backfilling_requirement(world: World) -> None:
    """Seed 000 req. 14: UKN meters Pending for the pre-notifier (a), Whitelisted /
    InstalledNotCommissioned / Commissioned for the Import / Gas Supplier (b)."""
    legacy = UserContext(SUPPLIER, frozenset({"IS", "GS"}))
    world.process(prenotification(ESME, "ESME", schema_version="1.0"), legacy)     # (a)
    world.process(prenotification(GSME, "GSME", map_id="G1"), legacy)             # has one
    installed_site_ids = ("00-DB-12-34-56-78-92-00", "00-DB-12-34-56-78-92-01")
    for device_id, status in zip(installed_site_ids, (DeviceStatus.COMMISSIONED,
                                                      DeviceStatus.DECOMMISSIONED), strict=True):
        world.inventory.add_device(NewDevice(device_id, DeviceType.ESME, "GBH1", "ESME-1",
                                             firmware_version=FW), status=status)
        world.inventory.set_party(device_id, "IS", SUPPLIER)
    assert world.inventory.backfilling_requirement(SUPPLIER) == 2   # (a) + Commissioned
    assert world.inventory.backfilling_requirement(OTHER_SUPPLIER) == 0
    world.process(set_map_id(ESME, "A1"), legacy)
    assert world.inventory.backfilling_requirement(SUPPLIER) == 1


ALNUM_ORACLE = re.compile(r"[A-Za-z0-9]{1,4}")


@settings(max_examples=500)
@given(st.text(max_size=6) | st.text(alphabet="aZ09-_ ", max_size=6))
def test_map_id_validator_matches_a_regex_oracle(value: str) -> None:
    assert is_valid_map_id(value) == (ALNUM_ORACLE.fullmatch(value) is not None)


_XML_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co"))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=_XML_CHARS, max_size=6) | st.text(alphabet="Ab9 é-", max_size=6))
def test_map_id_validator_matches_the_xsd_overlay(schema: DuisSchema, value: str) -> None:
    req = set_map_id(ESME, "X")
    req.body[-1].text = value
    doc = etree.fromstring(etree.tostring(req.body.getroottree().getroot()))
    assert schema.is_valid(doc) == is_valid_map_id(value)


# ================================================================================================
# SMI status: catalogue, transitions, history
# ================================================================================================


def test_statuses_and_types_are_exactly_the_xsd_sets(schema: DuisSchema) -> None:
    assert [str(s) for s in DeviceStatus] == list(schema.enumeration("DeviceStatus"))
    assert [str(t) for t in DeviceType] == list(schema.enumeration("DeviceType"))
    assert {"Pending", "InstalledNotCommissioned"} == set(
        schema.enumeration("UpdateDeviceStatusExceptCH"))
    targets = {t.target for t in TRANSITIONS
               if t.trigger is Trigger.UPDATE_INVENTORY_CH}
    assert {str(s) for s in targets} == set(schema.enumeration("UpdateDeviceStatusCH"))


def test_every_status_is_reachable_and_every_row_cites_a_basis() -> None:
    targets = {t.target for t in TRANSITIONS if t.target is not None}
    assert targets == set(DeviceStatus)
    assert all(t.basis for t in TRANSITIONS)


def test_type_2_devices_have_no_status(world: World) -> None:
    assert world.process(prenotification(IHD, "IHD", firmware=None), IS_USER).response_code \
        == ACKNOWLEDGED
    device = world.inventory.get(IHD)
    assert (device.status, device.status_since, device.firmware_version) == (None, None, None)
    assert world.inventory.status_history(IHD) == ()
    outcome = world.process(status_except_ch(IHD, "InstalledNotCommissioned"), IS_USER)
    assert outcome.response_code == "E11"
    (element,) = devices_in(world.process(read_inventory("DeviceID", IHD), IS_USER))
    assert field(element, "DeviceStatus") is None


def test_update_status_except_ch(world: World) -> None:
    prenotified_meter(world, ESME, "ESME")
    outcome = world.process(status_except_ch(ESME, "InstalledNotCommissioned"), IS_GS_USER)
    assert outcome.response_code == ACKNOWLEDGED
    assert history(world.inventory, ESME) == [
        (DeviceStatus.PENDING, Trigger.PRENOTIFIED),
        (DeviceStatus.INSTALLED_NOT_COMMISSIONED, Trigger.UPDATE_INVENTORY)]


@pytest.mark.parametrize(("start", "target"), [
    (DeviceStatus.COMMISSIONED, "Pending"),
    (DeviceStatus.DECOMMISSIONED, "InstalledNotCommissioned"),
    (DeviceStatus.INSTALLED_NOT_COMMISSIONED, "InstalledNotCommissioned"),
    (DeviceStatus.WITHDRAWN, "Pending"),
])
def test_invalid_status_change_is_e5_and_changes_nothing(
        world: World, start: DeviceStatus, target: str) -> None:
    world.inventory.add_device(NewDevice(ESME, DeviceType.ESME, "GBH1", "ESME-1",
                                         firmware_version=FW), status=start)
    world.inventory.set_party(ESME, "IS", SUPPLIER)
    before = snapshot(world.inventory)
    outcome = world.process(status_except_ch(ESME, target), IS_USER)
    assert outcome.response_code == "E5"
    assert world.inventory.get(ESME).status is start
    assert snapshot(world.inventory) == before


def test_update_status_ch_lifecycle(world: World) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    assert world.process(status_ch(CHF, "Commissioned"), IS_USER).response_code == "E5"
    for status in ("InstalledNotCommissioned", "Commissioned", "Withdrawn"):
        if status != "InstalledNotCommissioned":
            # not Pending any more: only a Responsible Supplier amends it
            world.inventory.set_party(ESME if ESME in world.inventory else CHF, "IS", SUPPLIER)
        assert world.process(status_ch(CHF, status), IS_USER).response_code == ACKNOWLEDGED
    assert world.process(status_ch(CHF, "InstalledNotCommissioned"), IS_USER).response_code \
        == "E5"
    assert [s for s, _ in history(world.inventory, CHF)] == [
        DeviceStatus.PENDING, DeviceStatus.INSTALLED_NOT_COMMISSIONED,
        DeviceStatus.COMMISSIONED, DeviceStatus.WITHDRAWN]


def test_status_update_variant_must_match_the_device_kind(world: World) -> None:
    world.process(prenotification(CHF, "CHF"), IS_USER)
    prenotified_meter(world, ESME, "ESME")
    assert world.process(status_except_ch(CHF, "InstalledNotCommissioned"),
                         IS_USER).response_code == "E11"
    assert world.process(status_ch(ESME, "InstalledNotCommissioned"),
                         IS_GS_USER).response_code == "E11"
    assert world.inventory.get(CHF).status is DeviceStatus.PENDING


def test_update_by_a_stranger_is_e4_before_anything_else(world: World) -> None:
    """Seed 003: 'In cases where error is generated, the E4 error takes precedence'."""
    prenotified_meter(world, ESME, "ESME")
    before = snapshot(world.inventory)
    for req in (status_except_ch(ESME, "Pending"),          # would be E5
                status_ch(ESME, "Commissioned"),            # would be E11
                update_inventory(ESME, "<sr:DeleteDevice/>")):
        assert world.process(req, OTHER_IS).response_code == "E4"
    assert snapshot(world.inventory) == before


def test_delete_device_only_while_pending(world: World) -> None:
    prenotified_meter(world, ESME, "ESME")
    assert world.process(update_inventory(ESME, "<sr:DeleteDevice/>"),
                         IS_GS_USER).response_code == ACKNOWLEDGED
    assert ESME not in world.inventory
    installed_site(world)
    assert world.process(update_inventory(ESME, "<sr:DeleteDevice/>"),
                         IS_USER).response_code == "E5"
    assert ESME in world.inventory


def test_delete_then_prenotify_again_starts_a_fresh_history(world: World) -> None:
    prenotified_meter(world, ESME, "ESME")
    world.process(status_except_ch(ESME, "InstalledNotCommissioned"), IS_GS_USER)
    world.process(status_except_ch(ESME, "Pending"), IS_GS_USER)
    world.process(update_inventory(ESME, "<sr:DeleteDevice/>"), IS_GS_USER)
    prenotified_meter(world, ESME, "ESME")
    assert history(world.inventory, ESME) == [(DeviceStatus.PENDING, Trigger.PRENOTIFIED)]
    assert len(world.inventory._rows("SELECT * FROM smi_status_history")) == 4


def test_update_device_details_and_mpxn(world: World) -> None:
    prenotified_meter(world, ESME, "ESME")
    world.cpl.add(CplEntry(DeviceType.ESME, DeviceModel("GBH1", "ESME-1"), "02000000", ("4.0",),
                           (), certificates=simulated_certificates(DeviceType.ESME)))
    details = ("<sr:UpdateDeviceDetails><sr:FirmwareVersion>02000000</sr:FirmwareVersion>"
               "<sr:ESMEVariant>A</sr:ESMEVariant></sr:UpdateDeviceDetails>")
    assert world.process(update_inventory(ESME, details), IS_GS_USER).response_code == \
        ACKNOWLEDGED
    mpxn = ("<sr:UpdateMPxN><sr:SecondaryImportMPAN>1312345678222</sr:SecondaryImportMPAN>"
            "</sr:UpdateMPxN>")
    assert world.process(update_inventory(ESME, mpxn), IS_GS_USER).response_code == ACKNOWLEDGED
    device = world.inventory.get(ESME)
    assert (device.firmware_version, device.esme_variant, device.secondary_import_mpan) == (
        "02000000", "A", "1312345678222")
    unlisted = ("<sr:UpdateDeviceDetails><sr:FirmwareVersion>0BADF00D</sr:FirmwareVersion>"
                "</sr:UpdateDeviceDetails>")
    assert world.process(update_inventory(ESME, unlisted), IS_GS_USER).response_code == "E57"
    assert world.inventory.get(ESME).firmware_version == "02000000"


def test_mpxn_is_for_meters_only(world: World) -> None:
    world.process(prenotification(CHF, "CHF"), IS_USER)
    mpxn = "<sr:UpdateMPxN><sr:ImportMPxN>123</sr:ImportMPxN></sr:UpdateMPxN>"
    assert world.process(update_inventory(CHF, mpxn), IS_USER).response_code == "E11"


_TRIGGERS = [t for t in Trigger if t not in (Trigger.ADDED, Trigger.PRENOTIFIED)]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([t for t in DeviceType if t.has_status]),
       st.lists(st.tuples(st.sampled_from(_TRIGGERS), st.sampled_from(list(DeviceStatus))),
                max_size=25))
def test_status_history_is_append_only(device_type: DeviceType,
                                       attempts: list[tuple[Trigger, DeviceStatus]]) -> None:
    clock = Clock()
    inv = Inventory(now=clock)
    inv.prenotify(NewDevice(ESME, device_type, "GBH1", "M", firmware_version=FW,
                            map_id="A" if device_type.is_smart_meter else None),
                  by_user=SUPPLIER)
    seen = inv.status_history(ESME)
    for step, (trigger, target) in enumerate(attempts):
        clock.at = NOW + dt.timedelta(minutes=step + 1)
        try:
            if trigger is Trigger.RESTORED:
                inv.restore(ESME)
            else:
                inv.change_status(ESME, target, trigger)
            changed = True
        except InventoryError as exc:
            assert exc.response_code == "E5"
            changed = False
        now_seen = inv.status_history(ESME)
        assert now_seen[:len(seen)] == seen
        assert len(now_seen) == len(seen) + changed
        assert now_seen[-1].status is inv.get(ESME).status
        assert inv.get(ESME).status_since == now_seen[-1].since
        seen = now_seen


def test_status_history_cannot_be_rewritten_in_the_database(world: World) -> None:
    prenotified_meter(world, ESME, "ESME")
    for sql in ("UPDATE smi_status_history SET status = 'Commissioned'",
                "DELETE FROM smi_status_history"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"), \
                world.inventory.transaction() as conn:
            conn.execute(sql)
    assert history(world.inventory, ESME) == [(DeviceStatus.PENDING, Trigger.PRENOTIFIED)]


def test_suspend_and_restore(world: World) -> None:
    installed_site(world)
    inv = world.inventory
    inv.change_status(ESME, DeviceStatus.SUSPENDED, Trigger.SUSPENDED)
    assert inv.restore(ESME).status is DeviceStatus.COMMISSIONED
    with pytest.raises(InventoryError) as err:
        inv.restore(ESME)
    assert err.value.response_code == "E5"


# ================================================================================================
# 12.2 Device Pre-notification
# ================================================================================================


def test_prenotify_chf_with_its_gpf(world: World) -> None:
    assert world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER).response_code == \
        ACKNOWLEDGED
    assert world.inventory.get(GPF).status is DeviceStatus.PENDING
    assert world.inventory.associated(CHF, AssociationKind.GAS_PROXY) == [GPF]


def test_prenotify_chf_and_gpf_with_one_id_writes_nothing(world: World) -> None:
    """DP316 (duis-facts): equal CHF and GPF IDs are refused as a duplicate Device ID; the
    CHF inserted first is rolled back with the rest of the request."""
    outcome = world.process(prenotification(CHF, "CHF", gpf=CHF), IS_USER)
    assert outcome.response_code == CONDITIONS["device.exists"].code
    assert world.inventory.devices() == []


def test_prenotify_duplicate_device(world: World) -> None:
    prenotified_meter(world, ESME, "ESME")
    before = snapshot(world.inventory)
    outcome = world.process(prenotification(ESME, "ESME", map_id="X"), OTHER_IS)
    assert outcome.response_code == CONDITIONS["device.exists"].code == "E5"
    assert snapshot(world.inventory) == before


def test_condition_codes_can_be_remapped() -> None:
    world = make_world(codes={"device.exists": "E120201"})
    prenotified_meter(world, ESME, "ESME")
    assert world.process(prenotification(ESME, "ESME", map_id="X"),
                         IS_USER).response_code == "E120201"
    with pytest.raises(KeyError):
        make_world(codes={"no.such.condition": "E1"})
    with pytest.raises(ValueError):
        make_world(codes={"device.exists": "X1"})   # not a DUIS response code


def test_type_1_model_must_be_current_on_the_cpl(world: World) -> None:
    outcome = world.process(prenotification(ESME, "ESME", model="NOT-LISTED", map_id="A"),
                            IS_USER)
    assert outcome.response_code == CONDITIONS["cpl.model_unknown"].code == "E57"
    (entry,) = world.cpl.entries_for(DeviceModel("GBH1", "PPMID-1"))
    world.cpl.remove(entry.entry_id, RemovalReason.WITHDRAWN)
    assert world.process(prenotification(PPMID, "PPMID"), IS_USER).response_code == "E57"
    assert world.inventory.devices() == []
    # Type 2 Devices need no CPL entry to be pre-notified (seed 000)
    assert world.process(prenotification(IHD, "IHD", model="ANY", firmware=None),
                         IS_USER).response_code == ACKNOWLEDGED


def test_prenotify_field_rules(world: World) -> None:
    assert world.process(prenotification(GSME, "GSME", map_id="A", esme_variant="A"),
                         IS_GS_USER).response_code == "E11"
    assert world.process(prenotification(ESME, "ESME", map_id="A", gpf=GPF),
                         IS_GS_USER).response_code == "E11"
    assert world.inventory.devices() == []


def test_prenotifier_becomes_the_meters_supplier(world: World) -> None:
    prenotified_meter(world, ESME, "ESME", user=IS_GS_USER)
    prenotified_meter(world, GSME, "GSME", user=ED_USER)
    assert dict(world.inventory.parties(ESME)) == {"IS": SUPPLIER}
    assert dict(world.inventory.parties(GSME)) == {}
    assert world.inventory.get(GSME).prenotified_by == NETWORK


def test_role_not_eligible_is_e2(world: World) -> None:
    mdr = UserContext(SUPPLIER, frozenset({"MDR"}))
    assert world.process(prenotification(ESME, "ESME", map_id="A"), mdr).response_code == "E2"
    assert world.process(ch_install("8.14.2", CHF), ED_USER).response_code == "E2"
    assert world.process(decommission(ESME), ED_USER).response_code == "E2"


# ================================================================================================
# 8.2 Read Inventory
# ================================================================================================


def test_read_inventory_by_device_returns_its_premises(world: World) -> None:
    installed_site(world)
    outcome = world.process(read_inventory("DeviceID", CHF.lower()), ED_USER)
    ids = [field(d, "DeviceID") for d in devices_in(outcome)]
    assert ids[0] == CHF and sorted(ids) == sorted([CHF, GPF, ESME, GSME])


def test_read_inventory_by_mpxn_uprn_and_property(world: World) -> None:
    installed_site(world)
    inv = world.inventory
    inv.set_mpxn(ESME, import_mpxn="1312345678111")
    inv.set_premises(ESME, uprn=123456789012, postcode="M22 0RR",
                     address_identifier="12 Threapwood Road", csp_region="Central")
    for req in (read_inventory("MPxN", "1312345678111"), read_inventory("UPRN", "123456789012"),
                read_by_property("m220rr", "12  threapwood ROAD")):
        outcome = world.process(req, IS_USER)
        assert outcome.response_code == SUCCESS
        ids = [field(d, "DeviceID") for d in devices_in(outcome)]
        assert ids[0] == ESME and set(ids) == {ESME, CHF, GPF, GSME}


@pytest.mark.parametrize("req", [
    read_inventory("DeviceID", "00-00-00-00-00-00-00-01"), read_inventory("MPxN", "999"),
    read_inventory("UPRN", "42"), read_by_property("AB1 2CD", "1 Nowhere")])
def test_read_inventory_finding_nothing_is_e19(world: World, req: Request) -> None:
    installed_site(world)
    assert world.process(req, IS_USER).response_code == "E19"


def test_read_inventory_caps_at_17_devices(world: World) -> None:
    inv = world.inventory
    inv.add_device(NewDevice(CHF, DeviceType.CHF, "GBH1", "CH-1", firmware_version=FW))
    for i in range(20):
        device_id = f"00-DB-12-34-56-78-93-{i:02X}"
        inv.add_device(NewDevice(device_id, DeviceType.IHD, "GBH1", "IHD"))
        inv.associate(device_id, CHF, AssociationKind.HAN_LOG)
    assert len(devices_in(world.process(read_inventory("DeviceID", CHF), IS_USER))) == \
        MAX_READ_DEVICES == 17


def test_read_inventory_reports_cpl_and_dates(world: World) -> None:
    installed_site(world)
    world.clock.at = NOW + dt.timedelta(days=3)
    prenotified_meter(world, "00-DB-12-34-56-78-94-00", "ESME")
    (entry,) = world.cpl.entries_for(DeviceModel("GBH1", "GSME-1"))
    world.cpl.remove(entry.entry_id, RemovalReason.EXPIRED)
    world.inventory.change_status(ESME, DeviceStatus.SUSPENDED, Trigger.SUSPENDED)
    world.inventory.restore(ESME)
    outcome = world.process(read_inventory("DeviceID", ESME), IS_USER)
    by_id = {field(d, "DeviceID"): d for d in devices_in(outcome)}
    esme, gsme = by_id[ESME], by_id[GSME]
    assert (field(esme, "CPLStatus"), field(esme, "DeviceFirmwareVersionStatus"),
            field(esme, "DeviceGBCSVersion")) == ("Active", "Active", "4.0")
    assert (field(gsme, "CPLStatus"), field(gsme, "DeviceFirmwareVersionStatus")) == (
        "Expired", "Expired")
    assert field(esme, "DateCommissioned") == NOW.date().isoformat()  # kept over a restore


# ================================================================================================
# 8.14.x Communications Hub Status Update (seed 002)
# ================================================================================================


def test_seed_002_states_the_w081401_rule(seeds: Path) -> None:
    text = seed_text(seeds, "002")
    assert "Where the CHF Device status is 'Pending' and response code W081401 is returned" in text
    assert "If the GPF Device status is also 'Pending'" in text


def test_sr_8_14_2_pending_chf_and_gpf_become_installed_not_commissioned(world: World) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    outcome = world.process(ch_install("8.14.2", CHF), IS_USER)
    assert outcome.response_code == CH_STATUS_NOT_INSTALLED == "W081401"
    for device_id in (CHF, GPF):
        assert history(world.inventory, device_id)[-1] == (
            DeviceStatus.INSTALLED_NOT_COMMISSIONED, Trigger.CH_INSTALLED_NO_WAN)
    (event,) = world.inventory.ch_events(CHF)
    assert event.service_reference_variant == "8.14.2"
    assert event.details["PremiseType"] == "Terraced"


def test_sr_8_14_2_gpf_not_pending_is_left_alone(world: World) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    world.inventory.change_status(GPF, DeviceStatus.INSTALLED_NOT_COMMISSIONED,
                                  Trigger.UPDATE_INVENTORY_CH)
    world.inventory.change_status(GPF, DeviceStatus.COMMISSIONED, Trigger.UPDATE_INVENTORY_CH)
    assert world.process(ch_install("8.14.2", CHF), IS_USER).response_code == "W081401"
    assert world.inventory.get(CHF).status is DeviceStatus.INSTALLED_NOT_COMMISSIONED
    assert world.inventory.get(GPF).status is DeviceStatus.COMMISSIONED


def test_sr_8_14_2_on_an_installed_chf_is_plain_success(world: World) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    world.process(ch_install("8.14.2", CHF), IS_USER)
    outcome = world.process(ch_install("8.14.2", CHF), IS_USER)
    assert outcome.response_code == ACKNOWLEDGED
    assert len(world.inventory.status_history(CHF)) == 2


def test_sr_8_14_2_commissioned_chf_warns_without_change(world: World) -> None:
    installed_site(world)
    before = [history(world.inventory, d) for d in (CHF, GPF)]
    assert world.process(ch_install("8.14.2", CHF), IS_USER).response_code == "W081401"
    assert [history(world.inventory, d) for d in (CHF, GPF)] == before


def test_sr_8_14_1_warns_but_only_8_14_2_moves_a_pending_chf(world: World) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    assert world.process(ch_install("8.14.1", CHF), IS_USER).response_code == "W081401"
    assert world.inventory.get(CHF).status is DeviceStatus.PENDING


@pytest.mark.parametrize("srv", ["8.14.1", "8.14.2", "8.14.3", "8.14.4"])
def test_sr_8_14_on_a_non_chf_is_e081401(world: World, srv: str) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    req = ch_install(srv, GPF) if srv in ("8.14.1", "8.14.2") else ch_return(srv, GPF)
    assert world.process(req, IS_USER).response_code == "E081401"
    unknown = ch_install(srv, CHF2) if srv in ("8.14.1", "8.14.2") else ch_return(srv, CHF2)
    assert world.process(unknown, IS_USER).response_code == "E19"
    assert world.inventory.ch_events(GPF) == ()


def test_sr_8_14_future_install_date_is_e081402(world: World) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    before = snapshot(world.inventory)
    future = (NOW + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert world.process(ch_install("8.14.2", CHF, install=future), IS_USER).response_code == \
        "E081402"
    assert snapshot(world.inventory) == before
    past = (NOW - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert world.process(ch_install("8.14.2", CHF, install=past), IS_USER).response_code == \
        "W081401"


@pytest.mark.parametrize("srv", ["8.14.3", "8.14.4"])
def test_sr_8_14_returns_are_recorded(world: World, srv: str) -> None:
    installed_site(world)
    assert world.process(ch_return(srv, CHF), IS_USER).response_code == ACKNOWLEDGED
    (event,) = world.inventory.ch_events(CHF)
    assert event.service_reference_variant == srv and event.by_user == SUPPLIER
    assert world.inventory.get(CHF).status is DeviceStatus.COMMISSIONED


# ================================================================================================
# 12.1 Request WAN Matrix (seed 002: WAN variants incl. the blank one)
# ================================================================================================


def test_wan_variants_match_seed_002_table_3(seeds: Path) -> None:
    text = seed_text(seeds, "002")
    table = text[text.index("Table 3; Summary"):text.index("To note: on Table 3")]
    for variant in WAN_VARIANTS:
        if variant.confirmed:
            assert re.search(rf"{re.escape(variant.dcc13_name)}\s+{re.escape(variant.value)}\s+"
                             rf"{re.escape(variant.csp)}", table), variant
    assert "Space" in table and "CSP South & Central" in table


def test_wan_matrix_with_the_blank_variant(world: World) -> None:
    world.inventory.set_wan_coverage([
        WanCoverage("Central", "I0", True, dt.date(2026, 9, 1), BLANK_WAN_VARIANT, "Medium"),
        WanCoverage("North", "I0", False, None, "No Coverage Intended", "Low"),
    ], postcode="M22 0RR", address_identifier="Threapwood Road")
    outcome = world.process(wan_matrix_by_address("M220RR", "threapwood road"), IS_USER)
    assert outcome.response_code == SUCCESS and outcome.body is not None
    answers = outcome.body.findall(f"{SR}DSPWANMatrixResponse")
    assert [a.findtext(f"{SR}WANTechnology") for a in answers] == [" ", "No Coverage Intended"]
    assert answers[0].findtext(f"{SR}AnticipatedCoverageDate") == "2026-09-01"
    echo = outcome.body.find(f"{SR}Request/{SR}PartialAddress")
    assert echo is not None and echo.findtext(f"{SR}PostCode") == "M220RR"
    # the single space survives the signer's whitespace compaction (leaf text is kept)
    assert compact(outcome.body).findtext(f"{SR}DSPWANMatrixResponse/{SR}WANTechnology") == " "


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"region": "North", "wan_technology": " "}, "not offered"),
    ({"region": "South", "wan_technology": " ", "date": None}, "anticipated"),
    ({"region": "North", "wan_technology": "Cellular"}, "not offered"),
    ({"region": "Central", "wan_technology": "420"}, "not offered"),
    ({"region": "Atlantis", "wan_technology": "420"}, "CSPRegion"),
])
def test_wan_coverage_refuses_what_seed_002_does_not_allow(kwargs: dict[str, object],
                                                           why: str) -> None:
    date = kwargs.pop("date", dt.date(2026, 9, 1))
    with pytest.raises(InvalidValue, match=why):
        WanCoverage(str(kwargs["region"]), "I0", True, date,  # type: ignore[arg-type]
                    str(kwargs["wan_technology"]), "High")


def test_wan_matrix_by_uprn_and_unknown_address(world: World) -> None:
    world.inventory.set_wan_coverage([WanCoverage("4G North", "I0", True, None, "4G", "High")],
                                     uprn=123)
    outcome = world.process(wan_matrix_by_uprn(123), IS_USER)
    assert outcome.body is not None
    assert outcome.body.findtext(f"{SR}DSPWANMatrixResponse/{SR}CSPRegion") == "4G North"
    unknown = world.process(wan_matrix_by_uprn(456), IS_USER)
    assert unknown.response_code == SUCCESS and unknown.body is not None
    (answer,) = unknown.body.findall(f"{SR}DSPWANMatrixResponse")
    assert answer.findtext(f"{SR}CSPRegion") == "Unknown"
    assert answer.find(f"{SR}CoverageAvailability") is None


# ================================================================================================
# 8.3 Decommission Device
# ================================================================================================


def test_decommission(world: World) -> None:
    installed_site(world)
    assert world.process(decommission(ESME), OTHER_IS).response_code == "E4"
    assert world.process(decommission(CHF), IS_USER).response_code == "E11"
    assert world.process(decommission(ESME), IS_USER).response_code == ACKNOWLEDGED
    assert world.inventory.get(ESME).status is DeviceStatus.DECOMMISSIONED
    assert world.inventory.associations(ESME) == ()
    assert world.process(decommission(ESME), IS_USER).response_code == "E5"


# ================================================================================================
# header checks and the device requests (8.1.1, 8.7, 8.8, 8.11)
# ================================================================================================


def test_header_checks(world: World) -> None:
    body = f"<sr:ReadInventory><sr:DeviceID>{ESME}</sr:DeviceID></sr:ReadInventory>"
    assert world.process(request("8.2", body, cv=1), IS_USER).response_code == "E12"
    assert world.process(request("8.2", body, sr="8.4"), IS_USER).response_code == "E48"
    assert world.process(request("8.4", body), IS_USER).response_code == "E49"
    with pytest.raises(UnsupportedRequest):
        world.process(request("4.1.1", "<sr:ReadInstantaneousImportRegisters/>", cv=1),
                      IS_USER)


def test_commission_device(world: World) -> None:
    installed_site(world)
    inv = world.inventory
    inv.add_device(NewDevice("00-DB-12-34-56-78-95-00", DeviceType.ESME, "GBH1", "ESME-1",
                             firmware_version=FW), status=DeviceStatus.INSTALLED_NOT_COMMISSIONED)
    new = "00-DB-12-34-56-78-95-00"
    inv.set_party(new, "IS", SUPPLIER)
    assert world.process(commission(new), OTHER_IS).response_code == "E4"
    assert world.process(commission(CHF), IS_USER).response_code == "E11"
    assert world.process(commission(ESME), IS_USER).response_code == "E5"   # Commissioned
    req = commission(new)
    assert world.process(req, IS_USER).response_code == ACKNOWLEDGED
    assert inv.get(new).status is DeviceStatus.INSTALLED_NOT_COMMISSIONED  # not until it answers
    world.clock.at = NOW + dt.timedelta(days=1)
    world.service.complete(req)
    device = inv.get(new)
    assert (device.status, device.date_commissioned) == (DeviceStatus.COMMISSIONED,
                                                         (NOW + dt.timedelta(days=1)).date())
    signed = request("8.1.1", "<sr:SignedPreCommand><sr:GBCSPayload>AA==</sr:GBCSPayload>"
                              "</sr:SignedPreCommand>", cv=5, target=new)
    assert world.process(signed, IS_USER).response_code == "E5"   # checked, now Commissioned


def test_han_device_log_add_then_join(world: World) -> None:
    installed_site(world)
    inv = world.inventory
    world.process(prenotification(PPMID, "PPMID"), IS_USER)
    add = han_log(CHF, PPMID)
    assert world.process(add, IS_USER).response_code == ACKNOWLEDGED
    world.service.complete(add)
    assert inv.get(PPMID).status is DeviceStatus.WHITELISTED
    assert inv.get(PPMID).install_code == CODE_16
    assert inv.associated(PPMID, AssociationKind.HAN_LOG) == [CHF]
    pair = join(ESME, PPMID)
    assert world.process(pair, IS_USER).response_code == ACKNOWLEDGED
    world.service.complete(pair)
    assert inv.get(PPMID).status is DeviceStatus.COMMISSIONED
    assert inv.associated(PPMID, AssociationKind.JOINED) == [ESME]
    assert inv.responsible_suppliers(PPMID) == {SUPPLIER, GAS_SUPPLIER}
    world.service.complete(join(ESME, PPMID, unjoin=True))
    assert inv.associated(PPMID, AssociationKind.JOINED) == []
    remove = han_log(CHF, PPMID, remove=True)
    world.service.complete(remove)
    assert inv.associated(PPMID) == []


def test_han_device_log_add_meter_sets_mpxn_and_comms_hub(world: World) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    prenotified_meter(world, GSME, "GSME", user=GS_USER)
    add = han_log(GPF, GSME)
    assert world.process(add, GS_USER).response_code == ACKNOWLEDGED
    world.service.complete(add)
    device = world.inventory.get(GSME)
    assert (device.status, device.import_mpxn) == (DeviceStatus.WHITELISTED, "1312345678111")
    assert world.inventory.associated(GSME, AssociationKind.COMMS_HUB) == [CHF]


def test_install_code_length_is_e081111_for_smets2(world: World) -> None:
    installed_site(world)
    world.process(prenotification(PPMID, "PPMID"), IS_USER)
    before = snapshot(world.inventory)
    outcome = world.process(han_log(CHF, PPMID, install_code=CODE_16[:30]), IS_USER)
    assert outcome.response_code == "E081111"
    assert snapshot(world.inventory) == before
    smets1 = "00-DB-12-34-56-78-96-00"
    world.inventory.add_device(NewDevice(smets1, DeviceType.PPMID, "S1", "OLD", smets1=True,
                                         firmware_version="01"))
    assert world.process(han_log(CHF, smets1, install_code=CODE_16[:24]),
                         IS_USER).response_code == ACKNOWLEDGED


@pytest.mark.parametrize(("code", "smets2", "condition"), [
    (CODE_16, True, None), (CODE_16.lower(), True, None), (bytes(16), True, None),
    (CODE_16[:30], True, "install_code.length"), (CODE_16 + "00", True, "install_code.format"),
    (CODE_16[:12], False, None), (CODE_16[:10], False, "install_code.format"),
    ("ZZ" * 16, True, "install_code.format"), ("123", True, "install_code.format"),
])
def test_check_install_code(code: str | bytes, smets2: bool, condition: str | None) -> None:
    if condition is None:
        assert check_install_code(code, smets2=smets2) == (
            code.hex() if isinstance(code, bytes) else code).upper()
        return
    with pytest.raises(InventoryError) as err:
        check_install_code(code, smets2=smets2)
    assert err.value.condition == condition
    if condition == "install_code.length":
        assert err.value.response_code == "E081111"


def test_inventory_install_code_uses_the_devices_generation(world: World) -> None:
    prenotified_meter(world, ESME, "ESME")
    with pytest.raises(InventoryError) as err:
        world.inventory.set_install_code(ESME, CODE_16[:24])
    assert err.value.response_code == "E081111"
    assert world.inventory.get(ESME).install_code is None


def test_seed_004_defines_e081111(seeds: Path) -> None:
    text = seed_text(seeds, "004")
    assert "E081111" in text and "32 characters (representing 16 octets)" in text


# ================================================================================================
# firmware versions reported by devices (seed 004 N49 / N50 / N51)
# ================================================================================================


def _listed(world: World, version: str, *, removed: bool = False) -> None:
    entry = world.cpl.add(CplEntry(DeviceType.ESME, DeviceModel("GBH1", "ESME-1"), version,
                                   ("4.0",), (), certificates=simulated_certificates(
                                       DeviceType.ESME)))
    if removed:
        world.cpl.remove(entry.entry_id)


def test_n49_firmware_updated_when_current(world: World) -> None:
    installed_site(world)
    _listed(world, "02000000")
    (alert,) = world.service.firmware_version_reported(ESME, "02000000",
                                                       via=FirmwareReport.READ_FIRMWARE,
                                                       requested_by=ED_USER)
    assert (alert.code, alert.recipients) == (FIRMWARE_UPDATED_IN_SMI, (SUPPLIER,))
    assert alert.body.findtext(f"{SR}FirmwareVersionSMI") == FW
    assert world.inventory.get(ESME).firmware_version == "02000000"


def test_n49_not_sent_to_the_supplier_that_asked(world: World) -> None:
    installed_site(world)
    _listed(world, "02000000")
    assert world.service.firmware_version_reported(
        ESME, "02000000", via=FirmwareReport.READ_FIRMWARE, requested_by=IS_USER) == ()
    assert world.inventory.get(ESME).firmware_version == "02000000"


def test_n49_for_a_chf_goes_to_both_suppliers(world: World) -> None:
    installed_site(world)
    world.cpl.add(CplEntry(DeviceType.CHF, DeviceModel("GBH1", "CH-1"), "02000000", ("4.0",), (),
                           certificates=simulated_certificates(DeviceType.CHF)))
    (alert,) = world.service.firmware_version_reported(CHF, "02000000",
                                                       via=FirmwareReport.READ_FIRMWARE)
    assert alert.recipients == tuple(sorted((SUPPLIER, GAS_SUPPLIER)))


def test_activation_to_a_current_version_updates_silently(world: World) -> None:
    installed_site(world)
    _listed(world, "02000000")
    assert world.service.firmware_version_reported(
        ESME, "02000000", via=FirmwareReport.ACTIVATE_FIRMWARE) == ()
    assert world.inventory.get(ESME).firmware_version == "02000000"


@pytest.mark.parametrize("via", list(FirmwareReport))
def test_n50_removed_version_updates_smi_without_suspending(world: World,
                                                            via: FirmwareReport) -> None:
    installed_site(world)
    _listed(world, "03000000", removed=True)
    (alert,) = world.service.firmware_version_reported(ESME, "03000000", via=via)
    assert alert.code == FIRMWARE_REMOVED_FROM_CPL
    device = world.inventory.get(ESME)
    assert (device.firmware_version, device.status) == ("03000000", DeviceStatus.COMMISSIONED)


@pytest.mark.parametrize("via", list(FirmwareReport))
def test_n51_unknown_version_keeps_the_smi(world: World, via: FirmwareReport) -> None:
    installed_site(world)
    (alert,) = world.service.firmware_version_reported(GSME, "0BADF00D", via=via)
    assert (alert.code, alert.recipients) == (FIRMWARE_UNKNOWN, (GAS_SUPPLIER,))
    assert world.inventory.get(GSME).firmware_version == FW


def test_firmware_reports_that_raise_nothing(world: World) -> None:
    installed_site(world)
    assert world.service.firmware_version_reported(ESME, FW, via=FirmwareReport.READ_FIRMWARE) \
        == ()
    world.process(prenotification(PPMID, "PPMID"), IS_USER)   # SMETS2 PPMID: not in table 41
    assert world.service.firmware_version_reported(PPMID, "0BAD",
                                                   via=FirmwareReport.READ_FIRMWARE) == ()


def test_smets1_ppmid_reports_like_a_meter(world: World) -> None:
    """Seed 004 CR1045: N49-N51 cover SMETS1 PPMIDs (a SMETS2 PPMID raises nothing); the
    PPMID's suppliers are those of the meters it serves, the reader excepted for N49."""
    installed_site(world)
    world.inventory.add_device(NewDevice(PPMID, DeviceType.PPMID, "GBH1", "PPMID-1",
                                         firmware_version=FW, smets1=True),
                               status=DeviceStatus.COMMISSIONED)
    world.inventory.associate(PPMID, ESME, AssociationKind.JOINED)
    world.inventory.associate(PPMID, GSME, AssociationKind.JOINED)
    world.cpl.add(CplEntry(DeviceType.PPMID, DeviceModel("GBH1", "PPMID-1"), "02000000", (),
                           (), smets1=True))
    (alert,) = world.service.firmware_version_reported(PPMID, "02000000",
                                                       via=FirmwareReport.READ_FIRMWARE,
                                                       requested_by=IS_USER)
    assert (alert.code, alert.recipients) == (FIRMWARE_UPDATED_IN_SMI, (GAS_SUPPLIER,))
    assert world.inventory.get(PPMID).firmware_version == "02000000"
    (unknown,) = world.service.firmware_version_reported(
        PPMID, "0BAD", via=FirmwareReport.ACTIVATE_FIRMWARE)
    assert unknown.code == FIRMWARE_UNKNOWN
    assert world.inventory.get(PPMID).firmware_version == "02000000"


def test_e57_from_the_smi_model(world: World) -> None:
    installed_site(world)
    assert world.service.gbcs_problem(ESME, at_least="4.0") is None
    assert world.service.gbcs_problem(ESME, at_least="4.1") == "E57"


# ================================================================================================
# transactions: bad input leaves nothing half-written
# ================================================================================================


def test_a_failure_mid_request_leaves_the_smi_unchanged(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(world.inventory)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(world.inventory, "set_party", boom)
    with pytest.raises(RuntimeError):
        world.process(prenotification(ESME, "ESME", map_id="A"), IS_USER)  # after the insert
    assert snapshot(world.inventory) == before
    monkeypatch.undo()
    prenotified_meter(world, ESME, "ESME")   # the connection is usable afterwards


def test_a_failure_promoting_the_gpf_rolls_back_the_chf(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.process(prenotification(CHF, "CHF", gpf=GPF), IS_USER)
    before = snapshot(world.inventory)
    real = world.inventory.change_status

    def second_fails(device_id: str, *args: object, **kwargs: object) -> object:
        if device_id == GPF:
            raise RuntimeError("lost the GPF")
        return real(device_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(world.inventory, "change_status", second_fails)
    with pytest.raises(RuntimeError):
        world.process(ch_install("8.14.2", CHF), IS_USER)
    assert snapshot(world.inventory) == before
    assert world.inventory.get(CHF).status is DeviceStatus.PENDING


def test_nested_transactions_roll_back_to_their_savepoint(world: World) -> None:
    inv = world.inventory
    with inv.transaction():
        inv.add_device(NewDevice(CHF, DeviceType.CHF, "GBH1", "CH-1", firmware_version=FW))
        with pytest.raises(InventoryError), inv.transaction():
            inv.add_device(NewDevice(GPF, DeviceType.GPF, "GBH1", "CH-1", firmware_version=FW))
            inv.add_device(NewDevice(GPF, DeviceType.GPF, "GBH1", "CH-1", firmware_version=FW))
    assert [d.device_id for d in inv.devices()] == [CHF]


def test_inventory_on_disk_uses_wal_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "smi.sqlite"
    with Inventory(path, now=lambda: NOW) as inv:
        inv.prenotify(NewDevice(ESME, DeviceType.ESME, "GBH1", "ESME-1", map_id="A1",
                                firmware_version=FW), by_user=SUPPLIER)
        assert inv._rows("PRAGMA journal_mode")[0][0] == "wal"
    with Inventory(path, now=lambda: NOW) as again:
        assert again.get(ESME).map_id == "A1"
        assert history(again, ESME) == [(DeviceStatus.PENDING, Trigger.PRENOTIFIED)]


def test_naive_clock_is_refused() -> None:
    inv = Inventory(now=lambda: dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        inv.add_device(NewDevice(CHF, DeviceType.CHF, "GBH1", "CH-1", firmware_version=FW))
    assert inv.devices() == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"manufacturer": "M" * 31}, "DeviceManufacturer"),
    ({"firmware_version": "123456789"}, "FirmwareVersion"),
    ({"device_id": "not-an-eui"}, "EUI"),
])
def test_new_device_values_must_fit_the_xsd(kwargs: dict[str, str], match: str) -> None:
    spec = {"device_id": CHF, "device_type": DeviceType.CHF, "manufacturer": "GBH1",
            "model": "CH-1", "firmware_version": FW} | kwargs
    with pytest.raises(InvalidValue, match=match):
        NewDevice(**spec)  # type: ignore[arg-type]


# ================================================================================================
# every request and response body built here validates (DUIS V5.4 + MAP ID overlay)
# ================================================================================================


def _exercise(world: World) -> Iterator[tuple[Request, ServiceOutcome]]:
    """One run through every SRV, yielding each request with its outcome."""
    installed_site(world)
    inv = world.inventory
    inv.set_mpxn(ESME, import_mpxn="1312345678111", secondary_import_mpan="1312345678222",
                 export_mpan="1312345678333")
    inv.set_premises(ESME, uprn=123456789012, postcode="M22 0RR", address_identifier="12 Road",
                     csp_region="4G Central", han_variant="Single Band", connectivity="Cellular")
    inv.update_details(ESME, esme_variant="ADF", smets_chts_version="SMETS V5")
    inv.set_wan_coverage([WanCoverage("South", "I0", True, dt.date(2026, 9, 1), " ", "High",
                                      "ladder", "info"),
                          WanCoverage("North", "E120101")], uprn=123456789012)
    world.clock.at = NOW + dt.timedelta(hours=1)
    steps = [
        (prenotification(CHF2, "CHF", gpf=GPF2), IS_USER),
        (prenotification("00-DB-12-34-56-78-97-00", "ESME", map_id="Ab1", esme_variant="ADEG"),
         IS_USER),
        (prenotification("00-DB-12-34-56-78-97-01", "GSME", map_id="UKN"), GS_USER),
        (prenotification(IHD, "IHD", firmware=None), IS_USER),
        (prenotification(PPMID, "PPMID"), IS_USER),
        (prenotification(ESME, "ESME"), IS_USER),
        (ch_install("8.14.2", CHF2, install="2026-03-01T11:00:00Z"), IS_USER),
        (ch_install("8.14.1", CHF2), IS_USER),
        (ch_return("8.14.3", CHF2), IS_USER), (ch_return("8.14.4", CHF2), IS_USER),
        (read_inventory("DeviceID", ESME), IS_USER), (read_inventory("DeviceID", IHD), IS_USER),
        (read_inventory("MPxN", "1312345678111"), IS_USER),
        (read_inventory("UPRN", "123456789012"), IS_USER),
        (read_by_property("M22 0RR", "12 Road"), IS_USER),
        (set_map_id(ESME, "Z9"), IS_USER), (set_map_id(CHF, "Z9"), IS_USER),
        (status_except_ch(PPMID, "InstalledNotCommissioned"), IS_USER),
        (status_ch(CHF2, "Commissioned"), IS_USER),
        (update_inventory("00-DB-12-34-56-78-97-00", "<sr:DeleteDevice/>"), IS_USER),
        (update_inventory(ESME, "<sr:UpdateMPxN><sr:ImportMPxN>99</sr:ImportMPxN>"
                                "</sr:UpdateMPxN>"), IS_USER),
        (update_inventory(ESME, "<sr:UpdateDeviceDetails><sr:SMETSCHTSVersion>SMETS V6"
                                "</sr:SMETSCHTSVersion></sr:UpdateDeviceDetails>"), IS_USER),
        (wan_matrix_by_uprn(123456789012), IS_USER),
        (wan_matrix_by_address("AB1 2CD", "Nowhere"), IS_USER),
        (decommission(GSME), GS_USER),
        (commission(ESME), IS_USER), (join(ESME, PPMID), IS_USER),
        (join(ESME, PPMID, unjoin=True), IS_USER), (han_log(CHF, PPMID), IS_USER),
    ]
    for req, user in steps:
        yield req, world.process(req, user)


def test_every_request_and_response_body_validates(schema: DuisSchema, world: World) -> None:
    codes = set()
    for req, outcome in _exercise(world):
        doc = etree.fromstring(etree.tostring(req.body.getroottree().getroot()))
        schema.validate(doc)                      # the request as built here
        response = outcome.to_response(req, at=NOW)
        schema.validate(response.to_element())    # what the DCC answers
        codes.add(outcome.response_code)
    assert {"I0", "I99", "W081401", "E11", "E5"} <= codes


def test_alert_bodies_validate(schema: DuisSchema, world: World) -> None:
    installed_site(world)
    _listed(world, "02000000")
    _listed(world, "03000000", removed=True)
    alerts = [*world.service.firmware_version_reported(ESME, "02000000",
                                                       via=FirmwareReport.READ_FIRMWARE),
              *world.service.firmware_version_reported(ESME, "03000000",
                                                       via=FirmwareReport.ACTIVATE_FIRMWARE),
              *world.service.firmware_version_reported(ESME, "0BAD",
                                                       via=FirmwareReport.READ_FIRMWARE)]
    assert [a.code for a in alerts] == ["N49", "N50", "N51"]
    for alert in alerts:
        schema.validate(alert.to_response(at=NOW).to_element())


def test_condition_codes_are_xsd_response_codes(schema: DuisSchema) -> None:
    allowed = set(schema.enumeration("ResponseCode"))
    assert {c.code for c in CONDITIONS.values()} <= allowed
    assert {ACKNOWLEDGED, SUCCESS, CH_STATUS_NOT_INSTALLED} <= allowed


def test_service_rules_match_the_request_matrix(duis_dir: Path) -> None:
    import json

    matrix = {row["Service Reference Variant"]: row
              for row in json.loads((duis_dir / "duis-request-matrix.json").read_text())}
    for srv, rule in SERVICES.items():
        row = matrix[srv]
        assert set(row["Eligible User Roles"]) == rule.eligible_roles, srv
        assert (row["Non-Device Request"] == "Yes") == rule.non_device, srv
        assert row["Service Reference"] == rule.service_reference, srv


def test_duis_templates_run_through_the_service(duis_dir: Path, schema: DuisSchema) -> None:
    """The public DCC-only templates are processed without a crash, each with a code the
    XSD knows (the SMI is empty, so most find no Device)."""
    from gbhil.duis.model import parse_request

    world = make_world(mapid_enforced=False)
    allowed = set(schema.enumeration("ResponseCode"))
    names = sorted(p.name for p in (duis_dir / "templates").glob("*.XML")
                   if p.name.split("_")[0] in SERVICES)
    assert names, "no DCC-only templates found"
    for name in names:
        req = parse_request((duis_dir / "templates" / name).read_bytes(), schema=schema)
        outcome = world.process(req, IS_GS_USER)
        assert outcome.response_code in allowed, name
        schema.validate(outcome.to_response(req, at=NOW).to_element())


def test_docs_name_every_condition_and_trigger() -> None:
    text = (ROOT / "docs" / "inventory.md").read_text()
    for key, condition in CONDITIONS.items():
        assert f"`{key}`" in text and condition.code in text, key
    for srv in SERVICES:
        assert srv in text, srv
