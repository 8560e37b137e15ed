"""DCC alert N54 (DualBandCHAlert) from the CHF's DBCH alerts, and E59 (seed 003)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbhil.dcc.dual_band_alerts import (
    DUAL_BAND_CH_ALERT,
    SUB_GHZ_ERROR,
    dual_band_alert_body,
    response_code,
)
from gbhil.duis.model import dcc_alert
from gbhil.duis.schema import load_schema
from gbhil.gbcs.axdr import OctetString, Structure, Uint16
from tests.conftest import CONFORMANCE

CHF = "00-DB-12-34-56-78-90-A2"
GSME = bytes.fromhex("00DB1234567890A1")
SUPPLIER = bytes.fromhex("90B3D51F30010000")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
#: The seven alerts seed 003 lists under E59 "Dual Band CHF Sub GHz Error".
E59_ALERTS = (0x8F22, 0x8F24, 0x8F29, 0x8F2B, 0x8F20, 0x8F2C, 0x8F2D)


def _notification(code: int, *extra: object) -> Structure:
    return Structure((Uint16(code), OctetString(bytes(12)), *extra))  # type: ignore[arg-type]


def test_e59_exactly_for_the_sub_ghz_errors() -> None:
    for code in range(0x8F20, 0x8F2E):
        expected = SUB_GHZ_ERROR if code in E59_ALERTS else "I0"
        assert response_code(code, "I0") == expected, hex(code)


def test_limited_duty_cycle_names_the_device_to_suspend() -> None:
    body = dual_band_alert_body(CHF, 0x8F20, 0x0110, _notification(0x8F20, OctetString(GSME)))
    assert body.findtext("{*}CHFDeviceID") == CHF
    assert body.findtext("{*}DeviceAlertCode") == "8F20"
    assert body.findtext("{*}GBCSHexadecimalMessageCode") == "0110"
    assert body.findtext("{*}LimitedDutyCycleActionTaken/{*}DeviceIDToSuspend") == (
        "00-DB-12-34-56-78-90-A1"
    )


def test_discarded_gbcs_message_is_named_by_request_id_and_cra() -> None:
    routing = SUPPLIER + GSME + b"\x01" + (4097).to_bytes(8, "big")
    body = dual_band_alert_body(CHF, 0x8F2C, 0x0114, _notification(0x8F2C, OctetString(routing)))
    held = body.find("{*}MessageDiscardedDueToDutyCycleManagement")
    assert held is not None
    assert held.findtext("{*}RequestID") == (
        "90-B3-D5-1F-30-01-00-00:00-DB-12-34-56-78-90-A1:4097"
    )
    assert held.findtext("{*}CRAFlag") == "Command"


@pytest.mark.parametrize(
    "routing",
    [bytes(25), SUPPLIER + GSME + b"\x07" + bytes(8), b"short"],
    ids=["not GBCS", "unknown CRA", "wrong length"],
)
def test_unreadable_discard_routing_gives_no_payload(routing: bytes) -> None:
    body = dual_band_alert_body(CHF, 0x8F2C, 0x0114, _notification(0x8F2C, OctetString(routing)))
    assert body.find("{*}MessageDiscardedDueToDutyCycleManagement") is None
    assert body.findtext("{*}DeviceAlertCode") == "8F2C"


@given(code=st.integers(0x8F20, 0x8F2D), extra=st.binary(max_size=30))
def test_property_any_alert_body_builds(code: int, extra: bytes) -> None:
    body = dual_band_alert_body(CHF, code, None, _notification(code, OctetString(extra)))
    assert body.findtext("{*}DeviceAlertCode") == f"{code:04X}"
    assert len(body) <= 3  # CHFDeviceID, DeviceAlertCode and at most one payload choice


def test_n54_alerts_validate_against_the_duis_xsd() -> None:
    folder = CONFORMANCE / "duis" / "schema"
    if not folder.is_dir():
        pytest.skip(f"DUIS XSD not found at {folder} (checkout ../shared)")
    schema = load_schema(folder=folder)
    routing = SUPPLIER + GSME + b"\x03" + (5).to_bytes(8, "big")
    cases = [
        (0x8F20, _notification(0x8F20, OctetString(GSME))),
        (0x8F2C, _notification(0x8F2C, OctetString(routing))),
        (0x8F2D, _notification(0x8F2D, OctetString(GSME))),
        (0x8F22, _notification(0x8F22)),
        (0x8F26, _notification(0x8F26)),
    ]
    for code, notification in cases:
        body = dual_band_alert_body(CHF, code, 0x0110, notification)
        alert = dcc_alert(DUAL_BAND_CH_ALERT, body, at=NOW, code=response_code(code, "I0"))
        schema.validate(alert.to_element())
