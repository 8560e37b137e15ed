"""The memos added for DUIS throughput never change what callers see.

Each test would fail if a memo served a stale or shared-mutable answer: the SMI read memo
after a write on this or another connection, the GBCS decode memo for mutable ASN.1 trees
or bad input, the XML-DSig signer cache for a mismatched key, the EUI text memo for bad
text, and the stepped clock's heap compaction for timers still pending.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gbhil.dcc.inventory import DeviceStatus, DeviceType, Inventory, NewDevice
from gbhil.duis.model import DuisModelError, format_eui
from gbhil.duis.xmldsig import SigningError, sign, verify
from gbhil.gbcs import message as gbcs_message
from gbhil.gbcs.errors import GbcsDecodeError
from gbhil.gbcs.frame import decode_frame
from gbhil.gbcs.message import PayloadFamily, payload_family
from gbhil.gbcs.recent import RecentDecodes
from gbhil.simulator.clock import SteppedClock
from tests.conftest import rtds_files

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ESME = "00-DB-12-34-56-78-90-A0"


def _esme(inv: Inventory) -> None:
    inv.add_device(NewDevice(ESME, DeviceType.ESME, "GBH1", "ESME-1", firmware_version="0101"),
                   status=DeviceStatus.COMMISSIONED)


def test_smi_reads_see_own_writes(tmp_path: Path) -> None:
    with Inventory(tmp_path / "smi.db", now=lambda: NOW) as inv:
        assert inv.find(ESME) is None
        assert inv.find(ESME) is None  # memoised "absent"...
        _esme(inv)
        assert inv.get(ESME).firmware_version == "0101"  # ...forgotten after the insert
        before = inv.get(ESME)
        assert inv.get(ESME) is before  # unchanged row: the same frozen record
        inv.set_map_id(ESME, "AB12")
        assert inv.get(ESME).map_id == "AB12" and before.map_id != "AB12"
        inv.set_party(ESME, "IS", "90-B3-D5-1F-30-01-00-00")
        assert inv.parties(ESME) == {"IS": "90-B3-D5-1F-30-01-00-00"}
        inv.set_party(ESME, "IS", None)
        assert inv.parties(ESME) == {}


def test_smi_reads_see_another_connections_writes(tmp_path: Path) -> None:
    path = tmp_path / "smi.db"
    with Inventory(path, now=lambda: NOW) as reader, Inventory(path, now=lambda: NOW) as writer:
        assert reader.find(ESME) is None
        _esme(writer)
        found = reader.find(ESME)
        assert found is not None and found.status is DeviceStatus.COMMISSIONED
        writer.delete(ESME)
        assert reader.find(ESME) is None


def test_smi_memo_hands_out_copies() -> None:
    inv = Inventory(now=lambda: NOW)
    _esme(inv)
    rows = inv._rows("SELECT * FROM smi_device")
    rows.clear()  # a caller mangling its list must not empty the memo
    assert len(inv._rows("SELECT * FROM smi_device")) == 1


def test_decode_memo_shares_only_frozen_payloads(rtds_dir: Path) -> None:
    raw = _first_of(rtds_dir, PayloadFamily.DLMS)
    first = gbcs_message.decode_message(raw)
    assert gbcs_message.decode_message(raw) is first  # deep-frozen: shared
    copy = gbcs_message.decode_message(bytearray(raw))  # mutable input: decoded afresh
    assert copy == first and copy is not first


def test_decode_memo_never_remembers_failures() -> None:
    bad = bytes.fromhex("DD00000000")
    for _ in range(2):
        with pytest.raises(GbcsDecodeError):
            gbcs_message.decode_message(bad)


def test_asn1_trees_are_not_shared(rtds_dir: Path) -> None:
    raw = _first_of(rtds_dir, PayloadFamily.ASN1)
    first = gbcs_message.decode_message(raw)
    second = gbcs_message.decode_message(raw)
    assert first == second
    assert first.payload is not second.payload  # mutable: each caller gets its own


def test_recent_decodes_is_bounded() -> None:
    memo: RecentDecodes[int] = RecentDecodes(capacity=3)
    for i in range(10):
        memo.put(i, i)
    assert len(memo) == 3 and memo.get(9) == 9 and memo.get(0) is None


def test_format_eui_text_memo_still_rejects_bad_text() -> None:
    assert format_eui("90-b3-d5-1f-30-01-00-00") == "90-B3-D5-1F-30-01-00-00"
    assert format_eui(bytes.fromhex("90b3d51f30010000")) == "90-B3-D5-1F-30-01-00-00"
    for _ in range(2):
        with pytest.raises(DuisModelError, match="not an EUI-64"):
            format_eui("90-B3-D5-1F-30-01-00")


def test_signer_cache_still_checks_the_key(
    signing_pair: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    key, certificate = signing_pair
    xml = b'<a:Request xmlns:a="urn:x"><a:B>1</a:B></a:Request>'
    for _ in range(2):  # the second signature comes from the cached skeleton
        assert verify(sign(xml, key, certificate), lambda s, i: certificate, at=NOW).serial == 4242
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SigningError, match="does not match"):
        sign(xml, other, certificate)


def test_stepped_clock_compacts_cancelled_timers_and_keeps_pending_ones() -> None:
    clock = SteppedClock()
    fired: list[int] = []
    keep = [clock.call_later(10.0 + i, fired.append, i) for i in range(5)]
    for _ in range(2000):
        clock.call_later(3600.0, fired.append, -1).cancel()
    assert len(clock._heap) < 600  # the cancelled ones do not pile up
    keep[2].cancel()
    clock.advance(7200.0)
    assert fired == [0, 1, 3, 4]


# --- helpers ----------------------------------------------------------------------------


def _first_of(rtds_dir: Path, family: PayloadFamily) -> bytes:
    for path in rtds_files(rtds_dir):
        raw = bytes.fromhex(path.read_text().strip())
        if payload_family(decode_frame(raw).gs.content) is family:
            return raw
    raise AssertionError(f"no {family} message in the RTDS corpus")


@pytest.fixture
def signing_pair() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Z1")])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(4242)
        .not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def test_response_outcome_matches_the_full_description(rtds_dir: Path) -> None:
    from gbhil.dcc.transform import describe_response, response_outcome

    checked = 0
    for path in rtds_files(rtds_dir):
        if "_RESPONSE" not in path.name:
            continue
        raw = bytes.fromhex(path.read_text().strip())
        assert response_outcome(raw) == describe_response(raw).get("outcome", {}), path.name
        checked += 1
    assert checked > 100


def test_signing_a_built_response_in_place_equals_signing_its_bytes(
    signing_pair: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """The DCC signs the element it built (no serialise/reparse): same document, same
    digest, and the signature verifies over the bytes a User receives."""
    import re

    from lxml import etree

    from gbhil.duis.alerts import body_for
    from gbhil.duis.model import (
        CommandVariant,
        RequestHeader,
        RequestID,
        acknowledgement,
        dcc_alert,
        device_alert,
        gbcs_response,
        power_outage_alert,
    )
    from gbhil.duis.schema import SR_NS

    key, certificate = signing_pair
    rid = RequestID.parse(f"90-B3-D5-1F-30-01-00-00:{ESME}:1000")
    header = RequestHeader(rid, CommandVariant.SEND, "ECS52", "11.2")
    name = body_for("N42")
    body = etree.fromstring(f'<sr:{name} xmlns:sr="{SR_NS}"><sr:Y>1</sr:Y></sr:{name}>')
    responses = [
        acknowledgement(header, at=NOW),
        gbcs_response(header, b"\xdd\x00\x01", at=NOW),
        device_alert(0x8F0A, b"\xdf\x09\x00", at=NOW, response_id=rid),
        dcc_alert("N42", body, at=NOW, request_id=rid),
        power_outage_alert(ESME, NOW, "1234567890123", at=NOW, throttled_alert_count=2),
    ]
    strip = re.compile(rb"<ds:SignatureValue>[^<]*</ds:SignatureValue>")
    for response in responses:
        from_bytes = sign(response.to_xml(), key, certificate)
        in_place = sign(response.to_element(), key, certificate, in_place=True)
        assert strip.sub(b"", in_place) == strip.sub(b"", from_bytes)
        assert verify(in_place, lambda s, i: certificate, at=NOW).serial == 4242
