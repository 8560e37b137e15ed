"""The DSP checks of SR 11.1 / 11.4 (W110101 lists) on a real SMI and CPL."""

from __future__ import annotations

import datetime as dt

from lxml import etree

from gbhil.dcc.cpl import Cpl
from gbhil.dcc.inventory import DeviceStatus, DeviceType, Inventory, NewDevice
from gbhil.dcc.inventory_requests import UserContext
from gbhil.duis.codes import ACKNOWLEDGED
from gbhil.firmware.distribution import (
    UPDATE_FIRMWARE,
    UPDATE_PPMID_FIRMWARE,
    FirmwareService,
    UpdateFirmwareRequest,
)

SUPPLIER = "90-B3-D5-1F-30-01-00-00"
OTHER_SUPPLIER = "90-B3-D5-1F-30-03-00-00"
ESME, GSME, PPMID = "00-DB-00-00-00-00-00-01", "00-DB-00-00-00-00-00-02", "00-DB-00-00-00-00-00-03"
PENDING_ESME, SMETS1_PPMID = "00-DB-00-00-00-00-00-04", "00-DB-00-00-00-00-00-05"
UNKNOWN = "00-DB-00-00-00-00-00-FF"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _service() -> FirmwareService:
    inventory = Inventory(now=lambda: NOW)
    for device_id, kind, status, smets1 in (
            (ESME, DeviceType.ESME, DeviceStatus.COMMISSIONED, False),
            (GSME, DeviceType.GSME, DeviceStatus.COMMISSIONED, False),
            (PPMID, DeviceType.PPMID, DeviceStatus.COMMISSIONED, False),
            (PENDING_ESME, DeviceType.ESME, DeviceStatus.PENDING, False),
            (SMETS1_PPMID, DeviceType.PPMID, DeviceStatus.COMMISSIONED, True)):
        inventory.add_device(NewDevice(device_id, kind, "gbhil", "M", "1.0", "01000000",
                                       smets1=smets1), status=status)
    inventory.set_party(ESME, "IS", SUPPLIER)
    inventory.set_party(PENDING_ESME, "IS", SUPPLIER)
    inventory.set_party(GSME, "GS", OTHER_SUPPLIER)
    for device_id in (PPMID, SMETS1_PPMID):
        inventory.set_party(device_id, "IS", SUPPLIER)
    return FirmwareService(inventory=inventory, cpl=Cpl(now=lambda: NOW))


def _request(srv: str, *ids: str) -> UpdateFirmwareRequest:
    return UpdateFirmwareRequest(srv, f"{SUPPLIER}:90-B3-D5-1F-30-00-00-02:1", SUPPLIER,
                                 b"image", "01000200", ids)


def _lists(outcome_body: etree._Element | None) -> dict[str, str]:
    assert outcome_body is not None
    return {etree.QName(e).localname: str(e.text) for e in outcome_body}


USER = UserContext(SUPPLIER, frozenset({"IS", "GS"}))


def test_every_device_fine_is_i99_and_all_go_on() -> None:
    outcome, go_on = _service().accept(_request(UPDATE_FIRMWARE, ESME), USER)

    assert outcome.response_code == ACKNOWLEDGED and outcome.body is None
    assert go_on == (ESME,)


def test_w110101_lists_each_device_by_its_reason() -> None:
    service = _service()
    service.in_progress.add(ESME)

    outcome, go_on = service.accept(
        _request(UPDATE_FIRMWARE, ESME, GSME, PPMID, PENDING_ESME, SMETS1_PPMID, UNKNOWN), USER)

    assert outcome.response_code == "W110101"
    assert etree.QName(outcome.body).localname == "DSPUpdateFirmwareWarning"
    assert _lists(outcome.body) == {
        # another supplier's GSME, the SMETS2 PPMID (seed 004 CR1045), an unknown ID
        "InvalidDeviceIDList": f"{GSME},{PPMID},{UNKNOWN}",
        "NotCommissionedDeviceIDList": PENDING_ESME,
        "OtherRequestInProgressList": ESME,
    }
    assert go_on == (SMETS1_PPMID,), "11.1 serves SMETS1 PPMIDs"


def test_11_4_serves_the_smets2_ppmid_only() -> None:
    outcome, go_on = _service().accept(_request(UPDATE_PPMID_FIRMWARE, PPMID, ESME), USER)

    assert etree.QName(outcome.body).localname == "DSPUpdatePPMIDFirmwareWarning"
    assert _lists(outcome.body) == {"InvalidDeviceIDList": ESME}
    assert go_on == (PPMID,)
