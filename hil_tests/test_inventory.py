"""Inventory suite: the SECMP0011 (MAP ID) scenarios of seed 000 appendix A that the DCC
emulator supports, and SR 8.14.2 (seed 002 MP081 / seed 004).

These are non-device requests (CV 8) the DCC answers from its Smart Metering Inventory.
MAP ID rejections use gbhil's stand-in E11 for SECMP0011's "[TBC]" code (docs/inventory.md).
"""

from __future__ import annotations

from lxml import etree

from gbhil.devices.core import Device
from gbhil.duis.codes import ACKNOWLEDGED
from gbhil.duis.model import Response, format_eui
from gbhil.pytest_plugin import srv
from gbhil.pytest_plugin.plugin import DccClient

#: Device IDs the rig's inventory does not hold yet (pre-notified by the tests).
NEW_ESME = "00-DB-12-34-56-78-91-A0"
NEW_PPMID = "00-DB-12-34-56-78-91-A3"
UNNOTIFIED_ESME = "00-DB-12-34-56-78-91-A4"
SUCCESS_WITH_DATA = "I0"
MAP_ID_REJECTED = "E11"  # stand-in for SECMP0011's "[TBC]"
CH_NOT_INSTALLED_NOT_COMMISSIONED = "W081401"
NOT_A_CHF = "E081401"


def _opt(name: str, value: str | None) -> str:
    return "" if value is None else f"<sr:{name}>{value}</sr:{name}>"


def _prenotification(dcc: DccClient, like: Device, device_id: str, device_type: str,
                     map_id: str | None) -> str:
    """12.2 body for a new device of the rig device ``like``'s model (Current on the CPL)."""
    record = dcc.inventory.get(format_eui(like.eui))
    return (
        f"<sr:DevicePrenotification><sr:DeviceID>{device_id}</sr:DeviceID>"
        f"<sr:DeviceManufacturer>{record.manufacturer}</sr:DeviceManufacturer>"
        f"<sr:DeviceModel>{record.model}</sr:DeviceModel>"
        f"<sr:DeviceType>{device_type}</sr:DeviceType>{_opt('MAPID', map_id)}"
        f"<sr:SMETSCHTSVersion>SMETS V5</sr:SMETSCHTSVersion>"
        f"{_opt('FirmwareVersion', record.firmware_version)}"
        f"{'<sr:ESMEVariant>A</sr:ESMEVariant>' if device_type == 'ESME' else ''}"
        f"</sr:DevicePrenotification>"
    )


def _read_inventory(device_id: str) -> str:
    return f"<sr:ReadInventory><sr:DeviceID>{device_id}</sr:DeviceID></sr:ReadInventory>"


def _ack(dcc: DccClient, service: str, device_id: str, body: str) -> Response:
    """The DCC's synchronous answer to a non-device request (CV 8)."""
    return dcc.submit(dcc.request(service, device_id, body=body, cv=8)).await_ack()


def _set_map_id(device_id: str, map_id: str) -> str:
    return (f"<sr:UpdateInventory><sr:DeviceID>{device_id}</sr:DeviceID>"
            f"<sr:MAPID>{map_id}</sr:MAPID></sr:UpdateInventory>")


def _map_id_in_inventory(dcc: DccClient, device_id: str) -> str | None:
    submission = dcc.submit(dcc.request("8.2", device_id, body=_read_inventory(device_id), cv=8))
    ack = submission.await_ack()
    assert ack.header.response_code == SUCCESS_WITH_DATA
    inventory = ack.body.other  # type: ignore[union-attr]
    assert inventory is not None and etree.QName(inventory).localname == "DSPInventory"
    for device in inventory.iter("{*}Device"):
        if device.findtext("{*}DeviceID") == device_id:
            return device.findtext("{*}MAPID")
    raise AssertionError(f"8.2 did not return {device_id}")


@srv("12.2", "8.2")
def test_prenotified_esme_with_map_id_shows_it_in_read_inventory(
    dcc: DccClient, esme: Device
) -> None:
    """SECMP0011 DUI 1 + DUI 2: 12.2 with a MAP ID, then 8.2 returns it."""
    body = _prenotification(dcc, esme, NEW_ESME, "ESME", map_id="AB12")
    ack = _ack(dcc, "12.2", NEW_ESME, body)

    assert ack.header.response_code == ACKNOWLEDGED
    assert _map_id_in_inventory(dcc, NEW_ESME) == "AB12"


@srv("8.2")
def test_read_inventory_shows_the_rig_meters_map_id(dcc: DccClient, esme: Device) -> None:
    """SECMP0011 DUI 2: 8.2 carries the MAP ID of an installed meter."""
    assert _map_id_in_inventory(dcc, format_eui(esme.eui)) == "GBHL"


@srv("8.4", "8.2")
def test_update_inventory_sets_a_new_map_id(dcc: DccClient, esme: Device) -> None:
    """SECMP0011 DUI 3 (meter): 8.4 MAPID overwrites it; 8.2 shows the new one."""
    device_id = format_eui(esme.eui)
    try:
        ack = _ack(dcc, "8.4", device_id, _set_map_id(device_id, "Z9"))

        assert ack.header.response_code == ACKNOWLEDGED
        assert _map_id_in_inventory(dcc, device_id) == "Z9"
    finally:  # the rig is shared by the session: put the rig's MAP ID back
        dcc.submit(dcc.request("8.4", device_id, body=_set_map_id(device_id, "GBHL"), cv=8))


@srv("12.2")
def test_prenotification_of_an_esme_without_map_id_is_refused(
    dcc: DccClient, esme: Device
) -> None:
    """SECMP0011 DUI 1, negative: MAP ID is mandatory for a Smart Meter."""
    body = _prenotification(dcc, esme, UNNOTIFIED_ESME, "ESME", map_id=None)
    ack = _ack(dcc, "12.2", UNNOTIFIED_ESME, body)

    assert ack.header.response_code == MAP_ID_REJECTED
    assert UNNOTIFIED_ESME not in dcc.inventory


@srv("12.2")
def test_prenotification_of_a_ppmid_with_map_id_is_refused(dcc: DccClient, ppmid: Device) -> None:
    """SECMP0011 DUI 1, negative: no MAP ID for a device that is not a Smart Meter."""
    body = _prenotification(dcc, ppmid, NEW_PPMID, "PPMID", map_id="AB12")
    ack = _ack(dcc, "12.2", NEW_PPMID, body)

    assert ack.header.response_code == MAP_ID_REJECTED
    assert NEW_PPMID not in dcc.inventory


@srv("8.4")
def test_map_id_update_for_a_non_meter_is_refused(dcc: DccClient, chf: Device) -> None:
    """SECMP0011 DUI 3 (non-meter), negative: 8.4 MAPID on the CHF."""
    device_id = format_eui(chf.eui)
    ack = _ack(dcc, "8.4", device_id, _set_map_id(device_id, "AB12"))

    assert ack.header.response_code == MAP_ID_REJECTED
    assert _map_id_in_inventory(dcc, format_eui(chf.eui)) is None


def _install_no_sm_wan(device_id: str) -> str:
    return (
        f"<sr:CHFInstallSuccessNoSMWAN><sr:DeviceID>{device_id}</sr:DeviceID>"
        "<sr:CHFInstallType>CHF Install - no SM WAN</sr:CHFInstallType>"
        "<sr:MPxN>7000000001</sr:MPxN><sr:AerialInstall>false</sr:AerialInstall>"
        "<sr:CHFLocation>Basement or Cellar</sr:CHFLocation>"
        "<sr:PremiseType>Low Rise Apartment (MDU &lt;= 5 floors)</sr:PremiseType>"
        "<sr:MetalObstructionCheck>false</sr:MetalObstructionCheck>"
        "<sr:ConnectivityObstructionCheck>false</sr:ConnectivityObstructionCheck>"
        "<sr:SharedObstructionCheck>false</sr:SharedObstructionCheck>"
        "</sr:CHFInstallSuccessNoSMWAN>"
    )


@srv("8.14.2")
def test_install_no_sm_wan_on_a_commissioned_chf_warns_w081401(
    dcc: DccClient, chf: Device
) -> None:
    """The rig's CHF is already Commissioned: processed, with the warning."""
    device_id = format_eui(chf.eui)
    before = dcc.inventory.get(device_id).status
    ack = _ack(dcc, "8.14.2", device_id, _install_no_sm_wan(device_id))

    assert ack.header.response_code == CH_NOT_INSTALLED_NOT_COMMISSIONED
    assert dcc.inventory.get(device_id).status == before


@srv("8.14.2")
def test_install_no_sm_wan_on_an_esme_is_refused_with_e081401(
    dcc: DccClient, esme: Device
) -> None:
    """Negative: 8.14 is for a Communications Hub Function only."""
    device_id = format_eui(esme.eui)
    ack = _ack(dcc, "8.14.2", device_id, _install_no_sm_wan(device_id))

    assert ack.header.response_code == NOT_A_CHF
