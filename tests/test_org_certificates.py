"""The DCC's tracking of Organisation Certificates on devices from CS02b responses."""

from __future__ import annotations

import datetime as dt

import pytest

from gbhil.dcc.org_certificates import OrgCertificateRegister
from gbhil.gbcs.message import decode_message
from tests.conftest import CONFORMANCE

RTDS = CONFORMANCE / "rtds-4.5.0" / "6.15.1_CS02bSupplierBySupplier"
ESME = "00-DB-12-34-56-78-90-A0"
SUPPLIER = "90-B3-D5-1F-30-01-00-00"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _rtds(name: str) -> bytes:
    path = RTDS / name
    if not path.exists():
        pytest.skip(f"RTDS message {path} not found (checkout ../shared)")
    return bytes.fromhex(path.read_text().strip())


def test_immediate_response_records_every_replaced_cell() -> None:
    msg = decode_message(
        _rtds("CS02bSupplierBySupplier_6.15.1_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX"))
    register = OrgCertificateRegister()

    recorded = register.record_response(ESME, "6.15.1", msg, NOW, local=True)

    assert [(h.role, h.usage, h.key_id) for h in recorded] == [
        (2, "DS", "43046B4FB7C4F11B"), (2, "KA", "429667C1B8BB1E34"),
        (2, "KA-TopUp", "4EB07A1BCA0DD58C"),
    ]
    assert all(h.subject_id == SUPPLIER and h.local for h in recorded)
    assert register.held(ESME) == sorted(recorded, key=lambda h: (h.role, h.usage))
    assert register.held("00-DB-12-34-56-78-90-A1") == []


def test_other_services_and_acceptances_record_nothing() -> None:
    immediate = decode_message(
        _rtds("CS02bSupplierBySupplier_6.15.1_IMMEDIATE_SUCCESS_RESPONSE_GBCS.HEX"))
    future = decode_message(
        _rtds("CS02bSupplierBySupplier_6.15.1_FUTURE_DATED_SUCCESS_RESPONSE_GBCS.HEX"))
    register = OrgCertificateRegister()
    assert register.record_response(ESME, "11.2", immediate, NOW) == []
    assert register.record_response(ESME, "6.15.1", future, NOW) == [], "nothing installed yet"
    assert register.held(ESME) == []
