"""ASN.1 DER payloads: strict typed decoding, byte-exact re-encoding, named fields."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhil.gbcs import asn1_schemas as sch
from gbhil.gbcs.asn1 import (
    CLASS_APPLICATION,
    CLASS_CONTEXT,
    CLASS_PRIVATE,
    CLASS_UNIVERSAL,
    MAX_DEPTH,
    Asn1Node,
    BitString,
    Boolean,
    Enumerated,
    GeneralizedTime,
    Ia5String,
    Integer,
    Null,
    ObjectIdentifier,
    OctetString,
    PrintableString,
    Sequence,
    Set,
    TaggedConstructed,
    TaggedPrimitive,
    UtcTime,
    Utf8String,
    alert_code,
    certificate_der,
    decode_asn1,
    encode_asn1,
    is_certificate,
    node_to_json,
)
from gbhil.gbcs.asn1_schemas import ASN1_SCHEMAS, Direction, asn1_to_json, json_to_asn1
from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.message import PayloadFamily
from tests.corpus import CorpusPayload, corpus_payloads


def kind(p: CorpusPayload) -> str:
    return p.name.split("_")[-2] if "_ALERT_" not in p.name else "ALERT"


@pytest.fixture(scope="session")
def asn1_payloads(rtds_dir: Path) -> list[CorpusPayload]:
    return corpus_payloads(rtds_dir, PayloadFamily.ASN1)


def by_name(payloads: list[CorpusPayload], prefix: str) -> CorpusPayload:
    hits = [p for p in payloads if p.name.startswith(prefix)]
    assert len(hits) == 1, (prefix, [p.name for p in hits])
    return hits[0]


def named(p: CorpusPayload) -> dict:
    node = decode_asn1(p.content, p.offset)
    return asn1_to_json(node, p.gs.message_code, p.gs.cra, strict=True)


def _clear_wide(node: Asn1Node) -> Asn1Node:
    if isinstance(node, Sequence):
        node.wide_length = False
    for item in getattr(node, "items", ()):
        _clear_wide(item)
    return node


# --- the RTDS corpus --------------------------------------------------------------


def test_rtds_every_asn1_payload_round_trips(asn1_payloads: list[CorpusPayload]) -> None:
    kinds = Counter(kind(p) for p in asn1_payloads)
    wide = 0
    for p in asn1_payloads:
        node = decode_asn1(p.content, base=p.offset)
        assert node.offset == p.offset
        assert encode_asn1(node) == p.content, p.name
        wide += b"\x30\x82\x00" in p.content
    print(f"\nASN.1 payloads: {len(asn1_payloads)} {dict(kinds)}; with 82 00 nn lengths: {wide}")
    # The shared subset holds 140 (the full RTDS set more); all four kinds occur.
    assert len(asn1_payloads) >= 140
    assert set(kinds) == {"COMMAND", "PRECOMMAND", "RESPONSE", "ALERT"}
    assert wide > 0


def test_rtds_every_asn1_payload_has_a_schema(asn1_payloads: list[CorpusPayload]) -> None:
    seen: Counter[tuple[int, int]] = Counter()
    for p in asn1_payloads:
        key = (p.gs.message_code, Direction(p.gs.cra))
        assert key in ASN1_SCHEMAS, (p.name, hex(p.gs.message_code))
        out = named(p)
        assert "schemaError" not in out and out is not None
        seen[key] += 1
    print(f"\nschemas exercised by RTDS: {len(seen)} of {len(ASN1_SCHEMAS)}")
    assert len(seen) >= 40


def test_rtds_named_fields_rebuild_byte_exact(asn1_payloads: list[CorpusPayload]) -> None:
    """asn1_to_json is lossless: its JSON rebuilds the payload (minimal DER lengths)."""
    for p in asn1_payloads:
        out = json.loads(json.dumps(named(p)))
        rebuilt = encode_asn1(json_to_asn1(out, p.gs.message_code, p.gs.cra))
        minimal = encode_asn1(_clear_wide(decode_asn1(p.content)))
        assert rebuilt == minimal, p.name
        if b"\x30\x82\x00" not in p.content:
            assert rebuilt == p.content, p.name


def test_rtds_certificates_are_x509(asn1_payloads: list[CorpusPayload]) -> None:
    certs = csrs = 0

    def walk(node: Asn1Node) -> None:
        nonlocal certs, csrs
        if is_certificate(node):
            der = certificate_der(node)
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                x509.load_der_x509_csr(der)
                csrs += 1
                return
            assert cert.public_bytes(Encoding.DER) == der
            certs += 1
            return
        for item in getattr(node, "items", ()):
            walk(item)

    for p in asn1_payloads:
        walk(decode_asn1(p.content))
    print(f"\nX.509 certificates in payloads: {certs}, PKCS#10 requests: {csrs}")
    assert certs >= 100 and csrs >= 1


def test_rtds_alert_codes_match_file_names(asn1_payloads: list[CorpusPayload]) -> None:
    alerts = [p for p in asn1_payloads if p.gs.cra == 3]
    assert alerts
    for p in alerts:
        code = alert_code(decode_asn1(p.content))
        m = re.search(r"_([0-9A-F]{4})_", p.name)
        assert code is not None
        if m:
            assert code == int(m.group(1), 16), p.name


# --- named fields on known schemas --------------------------------------------------


def test_cs06_command_counter_matches_header(asn1_payloads: list[CorpusPayload]) -> None:
    cmds = [p for p in asn1_payloads if p.gs.message_code == 0x0012 and p.gs.cra == 1]
    assert cmds
    for p in cmds:
        out = named(p)
        assert out["originatorCounter"] == p.gs.originator_counter, p.name
        assert len(bytes.fromhex(out["manufacturerImageHash"])) == 32
    cancel = named(by_name(asn1_payloads, "CS06_11.3_CANCELLATION_SUCCESS_COMMAND"))
    assert cancel["executionDateTime"] == "9999-12-31T23:59:59Z"
    now = named(by_name(asn1_payloads, "CS06_11.3_IMMEDIATE_SUCCESS_COMMAND"))
    assert "executionDateTime" not in now


def test_cs06_response_and_alert(asn1_payloads: list[CorpusPayload]) -> None:
    ok = named(by_name(asn1_payloads, "CS06_11.3_IMMEDIATE_SUCCESS_RESPONSE"))
    assert ok == {
        "executionOutcome": {
            "responseCode": 0,
            "responseCodeText": "Success",
            "firmwareVersion": "0123ABCE",
        }
    }
    err = named(by_name(asn1_payloads, "CS06_11.3_IMMEDIATE_ERROR_RESPONSE"))
    assert err["executionOutcome"]["responseCodeText"] == "No Image Held"
    assert named(by_name(asn1_payloads, "CS06_11.3_FUTURE_DATED_SUCCESS_RESPONSE")) == {
        "commandAccepted": True
    }
    alert = named(by_name(asn1_payloads, "CS06_11.3_8F67"))
    assert alert["alertCode"] == "8F67"
    assert alert["executionDateTime"] == "2030-01-01T00:00:00Z"
    assert alert["originatorCounter"] == 1004  # the counter of the future-dated command
    assert alert["executionOutcome"]["responseCodeText"] == "Hash Mismatch"


def test_cs02b_command_fields(asn1_payloads: list[CorpusPayload]) -> None:
    cmds = [p for p in asn1_payloads if p.gs.cra == 1 and p.gs.message_code in sch.CS02B_CODES]
    assert cmds
    for p in cmds:
        ctrl = named(p)["authorisingRemotePartyControl"]
        # The authorising seq number is the command's Originator Counter on RTDS.
        assert ctrl["authorisingRemotePartySeqNumber"] == p.gs.originator_counter, p.name
    out = named(
        by_name(asn1_payloads, "CS02bSupplierBySupplier_6.15.1_CANCELLATION_SUCCESS_COMMAND")
    )
    ctrl = out["authorisingRemotePartyControl"]
    assert ctrl["credentialsReplacementModeText"] == "Supplier by Supplier"
    assert ctrl["authorisingRemotePartyTaCellIdentifier"]["keyUsage"] == ["digitalSignature"]
    assert ctrl["newRemotePartySpecialistFloorSeqNumbers"][0]["seqNumberUsageText"] == (
        "Prepayment Top Up"
    )
    cells = [r["targetTrustAnchorCell"] for r in out["replacements"]]
    assert cells[2] == {
        "remotePartyRole": 2,
        "remotePartyRoleText": "Supplier",
        "keyUsage": ["keyAgreement"],
        "cellUsage": 1,
        "cellUsageText": "Prepayment Top Up",
    }
    cert = out["replacements"][0]["replacingCertificate"]
    assert cert["subject"].endswith("x500UniqueIdentifier=90B3D51F30010000")
    assert out["executionDateTime"] == "9999-12-31T23:59:59Z"
    lc = named(
        by_name(
            asn1_payloads, "CS02gLoadControllerByLoadController_NA_CANCELLATION_SUCCESS_COMMAND"
        )
    )
    assert lc["authorisingRemotePartyControl"]["credentialsReplacementMode"] == 10
    assert lc["authorisingRemotePartyControl"]["applyTimeBasedCpvChecksText"] == "Disapply"


def test_cs02b_response_and_alert(asn1_payloads: list[CorpusPayload]) -> None:
    resp = named(by_name(asn1_payloads, "CS02bSupplierBySupplier_6.15.1_IMMEDIATE_ERROR_RESPONSE"))
    assert resp["commandAccepted"] is True
    outcomes = resp["executionOutcome"]["replacementOutcomes"]
    assert [o["statusCodeText"] for o in outcomes] == ["Success", "No Trust Anchor", "Success"]
    assert outcomes[0]["replacingSubjectUniqueId"] == "90-B3-D5-1F-30-01-00-00"
    alert = named(by_name(asn1_payloads, "CS02gLoadControllerBySupplier_6.15.1_8F67"))
    assert alert["alertCode"] == "8F67"
    assert alert["executionOutcome"]["credentialsReplacementModeText"] == (
        "Load Controller by Supplier"
    )


def test_cs02a_response_error_entries_are_short(asn1_payloads: list[CorpusPayload]) -> None:
    out = named(by_name(asn1_payloads, "CS02aMAC_6.24.1_ERROR_RESPONSE"))
    first, second = out["remotePartyDetails"]
    assert first["trustAnchorCellDetails"][0]["subjectUniqueId"] == "90-B3-D5-1F-30-00-00-02"
    assert second == {
        "remotePartyRole": 3,
        "remotePartyRoleText": "Network Operator",
        "statusCode": 25,
        "statusCodeText": "Trust Anchor Not Found",
    }


def test_join_unjoin_and_device_logs(asn1_payloads: list[CorpusPayload]) -> None:
    join = named(by_name(asn1_payloads, "CS03CCritical_8.7.1_SUCCESS_COMMAND"))
    assert join["joinMethodAndRoleText"] == "Method C"
    assert join["entityId"] == "00-DB-12-34-56-78-90-98"
    assert join["deviceTypeText"] == "PPMID"
    assert "der" in join["otherDeviceKeyAgreementCertificate"]
    assert named(by_name(asn1_payloads, "CS03A1_8.7.1_ERROR_RESPONSE"))["responseCodeText"] == (
        "Incompatible with Existing Entry"
    )
    assert named(by_name(asn1_payloads, "CS04ACCritical_8.8.1_ERROR_RESPONSE")) == {
        "responseCode": 1,
        "responseCodeText": "Not in Device Log",
    }
    cs07 = named(by_name(asn1_payloads, "CS07_8.9_SUCCESS_RESPONSE"))
    assert [e["deviceTypeText"] for e in cs07["deviceLogEntries"]] == ["GPF", "GPF", "PPMID"]
    assert named(by_name(asn1_payloads, "CS07_8.9_ERROR_RESPONSE")) == {
        "responseCode": 1,
        "responseCodeText": "Read Failure",
    }
    assert named(by_name(asn1_payloads, "CS07_8.9_SUCCESS_COMMAND")) == {}
    gcs62 = named(by_name(asn1_payloads, "GCS62_NA_8071_ALERT"))
    assert gcs62["alertCode"] == "8071" and gcs62["backupDateTime"] == "2015-01-01T00:00:00Z"
    assert gcs62["deviceLogEntries"][0]["deviceTypeText"] == "Type 2"


def test_firmware_alerts_and_clock(asn1_payloads: list[CorpusPayload]) -> None:
    ccs08 = named(by_name(asn1_payloads, "CCS08_NA_NA_ALERT"))
    assert ccs08["alertCode"] == "8F8A"
    assert ccs08["entityId"] == "00-DB-12-34-56-78-90-A4"
    assert ccs08["responseCodeText"] == "Success"
    cs09 = named(by_name(asn1_payloads, "CS09_NA_8F8B_ALERT"))
    assert cs09["firmwareVersion"] == "1234ABCD" and cs09["activateImageResultText"] == "Success"
    cs08 = named(by_name(asn1_payloads, "CS08_11.2_SUCCESS_RESPONSE"))
    assert cs08 == {
        "firmwareVersion": "0123ABCD",
        "responseCode": 0,
        "responseCodeText": "Read Success",
    }
    gcs28 = named(by_name(asn1_payloads, "GCS28_6.11_ERROR_RESPONSE"))
    assert gcs28["deviceTimeStatusText"] == "Unreliable"
    cs02c = named(by_name(asn1_payloads, "CS02c_6.17_SUCCESS_RESPONSE"))
    assert "der" in cs02c["certificationRequest"]
    assert named(by_name(asn1_payloads, "CS02d_6.15.2_ERROR_RESPONSE"))["responseCodeText"] == (
        "Invalid Key Usage"
    )


# --- builders: the simulator's encoders reproduce RTDS bytes -----------------------


def test_builders_reproduce_rtds(asn1_payloads: list[CorpusPayload]) -> None:
    def content(prefix: str) -> bytes:
        return by_name(asn1_payloads, prefix).content

    v = bytes.fromhex("0123ABCF")
    cases = {
        "CS06_11.3_IMMEDIATE_SUCCESS_RESPONSE": sch.build_cs06_response(
            0, bytes.fromhex("0123ABCE")
        ),
        "CS06_11.3_IMMEDIATE_ERROR_RESPONSE": sch.build_cs06_response(1, v),
        "CS06_11.3_FUTURE_DATED_SUCCESS_RESPONSE": sch.build_cs06_response(),
        "CS06_11.3_8F66": sch.build_cs06_alert("20300115090000Z", 1001, 0, v),
        "CS06_11.3_8F67": sch.build_cs06_alert(datetime(2030, 1, 1, tzinfo=UTC), 1004, 2, v),
        "CS03A1_8.7.1_SUCCESS_RESPONSE": sch.build_join_response(0),
        "CS03CCritical_8.7.1_SUCCESS_RESPONSE": sch.build_join_response(0, 0x00AF),
        "CS04ACCritical_8.8.1_ERROR_RESPONSE": sch.build_unjoin_response(1),
        "CS07_8.9_ERROR_RESPONSE": sch.build_cs07_response(1),
        "CS07_8.9_SUCCESS_RESPONSE": sch.build_cs07_response(
            0,
            [
                (bytes.fromhex("0102030405060708"), 3),
                (bytes.fromhex("00DB123456789099"), 3),
                (bytes.fromhex("00DB123456789097"), 5),
            ],
        ),
        "CS08_11.2_SUCCESS_RESPONSE": sch.build_cs08_response(bytes.fromhex("0123ABCD")),
        "CS08_11.2_ERROR_RESPONSE": sch.build_cs08_response(bytes(4), 1),
        "CS09_NA_8F8B_ALERT": sch.build_cs09_alert(
            "2015-01-01T00:00:00Z", bytes.fromhex("1234ABCD")
        ),
        "CCS08_NA_NA_ALERT": sch.build_ccs08_alert(
            "20150101000000Z", bytes.fromhex("00DB1234567890A4"), bytes.fromhex("0123ABCD")
        ),
        "CS02d_6.15.2_SUCCESS_RESPONSE": sch.build_cs02d_response(0),
        "CS02d_6.15.2_ERROR_RESPONSE": sch.build_cs02d_response(3),
        "CS02c_6.17_ERROR_RESPONSE": sch.build_cs02c_response(response_code=3),
        "CS02bSupplierBySupplier_6.15.1_CANCELLATION_SUCCESS_RESPONSE": (
            sch.build_cs02b_accepted_response()
        ),
        "GCS28_6.11_ERROR_RESPONSE": sch.build_gcs28_response("20150101000000Z", 2),
    }
    for prefix, node in cases.items():
        assert encode_asn1(node) == content(prefix), prefix
    csr = decode_asn1(content("CS02c_6.17_SUCCESS_RESPONSE"))
    assert encode_asn1(sch.build_cs02c_response(certificate_der(csr))) == encode_asn1(csr)
    cert = certificate_der(decode_asn1(content("CS02d_6.15.2_SUCCESS_COMMAND")))
    assert encode_asn1(sch.build_cs02e_response(cert)) == cert
    assert encode_asn1(sch.build_cs02e_response(response_code=2)) == bytes.fromhex("020102")


def test_builder_errors() -> None:
    with pytest.raises(GbcsEncodeError):
        sch.build_join_response(0, 0x0012)
    with pytest.raises(GbcsEncodeError):
        sch.build_cs02e_response()
    with pytest.raises(GbcsEncodeError):
        sch.build_cs06_alert("not a time", 1, 0, b"")
    with pytest.raises(GbcsEncodeError):
        sch.build_cs02e_response(b"\x30\x00")  # not a certificate
    with pytest.raises(GbcsEncodeError):
        json_to_asn1({}, 0x0059, 1)  # ECS52 is DLMS
    with pytest.raises(GbcsEncodeError):
        json_to_asn1({"responseCode": "0"}, 0x000B, 2)
    gcs62 = sch.build_gcs62_alert("20150101000000Z", [(bytes.fromhex("0102030405060708"), 6)])
    assert alert_code(gcs62) == 0x8071


# --- schema catalogue and generic fallback ------------------------------------------


def test_generic_tree_and_schema_mismatch() -> None:
    node = decode_asn1(bytes.fromhex("3005020105a000"))
    generic = asn1_to_json(node, None, None)
    assert generic == {
        "type": "SEQUENCE",
        "items": [{"type": "INTEGER", "value": 5}, {"type": "[0]", "items": []}],
    }
    assert asn1_to_json(node, 0x0059, 1) == generic  # no ASN.1 schema for ECS52
    # CS07 command must be NULL: lenient view reports, strict raises with the offset.
    lenient = asn1_to_json(node, 0x0013, 1)
    assert "schemaError" in lenient and lenient["tree"] == generic
    with pytest.raises(GbcsDecodeError) as exc:
        asn1_to_json(decode_asn1(bytes.fromhex("020105"), base=40), 0x0012, 2, strict=True)
    assert exc.value.offset == 40
    # A trailing element after the schema's last field is an error too.
    extra = decode_asn1(bytes.fromhex("3009040201230201000500"))
    with pytest.raises(GbcsDecodeError, match="unexpected trailing"):
        asn1_to_json(extra, 0x0129, 2, strict=True)


def test_catalogue_covers_the_facts_sheet() -> None:
    codes = {code for code, _ in ASN1_SCHEMAS}
    expected = {0x0008, 0x011B, 0x000A, 0x000B, 0x000C, 0x000D, 0x000E, 0x00AB, 0x00AF}
    expected |= {0x000F, 0x0010, 0x0012, 0x00CA, 0x0013, 0x0129, 0x012B, 0x0128}
    expected |= {0x007F, 0x008C, 0x00B2, 0x00CB, 0x0124, 0x0125, 0x0126}
    expected |= set(range(0x0100, 0x010A))
    assert expected <= codes
    for (code, direction), schema in ASN1_SCHEMAS.items():
        assert schema.use_case and schema.title, hex(code)
        assert direction in Direction


# --- strict DER ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hexdata", "field"),
    [
        ("", "asn1 tag"),
        ("02", "asn1 length"),
        ("0203 0001", "asn1 contents"),
        ("3080 0000", "asn1 length"),  # indefinite
        ("0481 05 0102030405", "asn1 length"),  # 81 form for < 128
        ("308200 05 0203010001", "asn1 length"),  # 82 00 nn only for 128..255 on SEQUENCE
        ("0482 0080" + "00" * 128, "asn1 length"),  # wide form not allowed on OCTET STRING
        ("0285 0000000001 00", "asn1 length"),  # 5 length octets
        ("020200 05", "INTEGER"),  # padded integer
        ("0202FF 80", "INTEGER"),
        ("0200", "INTEGER"),
        ("0A0200 01", "ENUMERATED"),
        ("010101", "BOOLEAN"),
        ("0301 08", "BIT STRING"),  # unused bits without data
        ("0302 0181", "BIT STRING"),  # padding bit set
        ("0302 0880", "BIT STRING"),  # unused > 7
        ("0501 00", "NULL"),
        ("1000", "asn1 tag"),  # primitive SEQUENCE
        ("2403 040100", "asn1 tag"),  # constructed OCTET STRING
        ("1F0500", "asn1 tag number"),  # high form for a low tag number
        ("1F80 0100", "asn1 tag number"),  # non-minimal high tag
        ("0000", "asn1 tag"),  # end-of-contents
        ("0603 2A8001", "OBJECT IDENTIFIER"),  # 0x80 leading sub-identifier octet
        ("0602 2A86", "OBJECT IDENTIFIER"),  # truncated sub-identifier
        ("0600", "OBJECT IDENTIFIER"),
        ("180F 32303330313331353030303030305A", "GeneralizedTime"),  # month 13
        ("180E 3230333030313135303030303030", "GeneralizedTime"),  # no Z
        ("1711 3330303131353030303030302B30313030", "UTCTime"),  # offset instead of Z
        ("1301 40", "PrintableString"),  # '@'
        ("1601 80", "IA5String"),
        ("0C01 FF", "UTF8String"),
        ("0500 00", "asn1 trailing data"),
    ],
)
def test_non_der_is_rejected(hexdata: str, field: str) -> None:
    data = bytes.fromhex(hexdata.replace(" ", ""))
    with pytest.raises(GbcsDecodeError) as exc:
        decode_asn1(data, base=100)
    assert exc.value.field == field
    assert 100 <= exc.value.offset <= 100 + len(data)


def test_wide_length_sequence_round_trip() -> None:
    inner = OctetString(bytes(126))
    assert len(encode_asn1(inner)) == 128
    raw = b"\x30\x82\x00\x80" + encode_asn1(inner)
    node = decode_asn1(raw)
    assert isinstance(node, Sequence) and node.wide_length
    assert encode_asn1(node) == raw
    assert encode_asn1(Sequence([inner])) == b"\x30\x81\x80" + encode_asn1(inner)
    with pytest.raises(GbcsEncodeError):
        encode_asn1(Sequence([Null()], wide_length=True))


def test_depth_cap() -> None:
    ok = b"\x05\x00"
    for _ in range(MAX_DEPTH):
        ok = b"\x30" + bytes((len(ok),)) + ok
    assert encode_asn1(decode_asn1(ok)) == ok
    deep = b"\x30" + bytes((len(ok),)) + ok
    with pytest.raises(GbcsDecodeError, match="nesting"):
        decode_asn1(deep)
    node: Asn1Node = Null()
    for _ in range(MAX_DEPTH + 1):
        node = Sequence([node])
    with pytest.raises(GbcsEncodeError, match="nesting"):
        encode_asn1(node)


def test_node_offsets_are_absolute() -> None:
    node = decode_asn1(bytes.fromhex("3008020101a103040100"), base=1000)
    assert isinstance(node, Sequence)
    assert [i.offset for i in node.items] == [1002, 1005]
    inner = node.items[1]
    assert isinstance(inner, TaggedConstructed) and inner.items[0].offset == 1007


def test_typed_values() -> None:
    node = decode_asn1(
        bytes.fromhex(
            "304F"
            "0101FF"  # BOOLEAN
            "0203008F66"  # INTEGER with the DER leading zero (alert code 8F66)
            "0A017F"  # ENUMERATED
            "0303060840"  # BIT STRING, 6 unused bits
            "06082A8648CE3D040302"  # OID ecdsa-with-SHA256
            "0C02C3A9"  # UTF8String
            "13025A31"  # PrintableString
            "160141"  # IA5String
            "170D3135313032393030303030305A"  # UTCTime
            "180F39393939313233313233353935395A"  # GeneralizedTime
            "810203EA"  # [1] primitive
            "5F200100"  # [APPLICATION 32], high tag number form
            "3100"  # SET
        )
    )
    assert isinstance(node, Sequence)
    b, i, e, bits, oid, u8, ps, ia5, utc, gt, ctx, app, st_ = node.items
    assert b == Boolean(True) and i == Integer(0x8F66) and e == Enumerated(127)
    assert bits == BitString(b"\x08\x40", 6) and bits.set_bits() == [4, 9]
    assert oid == ObjectIdentifier("1.2.840.10045.4.3.2")
    assert u8 == Utf8String("é") and ps == PrintableString("Z1") and ia5 == Ia5String("A")
    assert isinstance(utc, UtcTime) and utc.to_datetime() == datetime(2015, 10, 29, tzinfo=UTC)
    assert isinstance(gt, GeneralizedTime) and gt.to_datetime().year == 9999
    assert ctx == TaggedPrimitive(CLASS_CONTEXT, 1, b"\x03\xea") and ctx.as_int() == 1002
    assert app == TaggedPrimitive(CLASS_APPLICATION, 32, b"\x00")
    assert st_ == Set([])
    assert alert_code(node) is None  # first element is a BOOLEAN
    assert node_to_json(bits) == {"type": "BIT STRING", "value": "0840", "unusedBits": 6}
    assert BitString.from_named_bits([4]) == BitString(b"\x08", 3)
    assert BitString.from_named_bits([0]) == BitString(b"\x80", 7)
    assert GeneralizedTime.from_datetime(datetime(2030, 1, 15, 9, tzinfo=UTC)).value == (
        "20300115090000Z"
    )


@pytest.mark.parametrize(
    "node",
    [
        BitString(b"\x01", 1),
        BitString(b"", 3),
        ObjectIdentifier("3.1"),
        ObjectIdentifier("1.40"),
        ObjectIdentifier("1.2.03"),
        PrintableString("a@b"),
        Ia5String("é"),
        GeneralizedTime("2030"),
        UtcTime("20300101000000Z"),
        TaggedPrimitive(CLASS_UNIVERSAL, 2, b"\x01"),  # has its own node type
        TaggedConstructed(CLASS_UNIVERSAL, 4, []),  # DER primitive-only type
        TaggedPrimitive(0x33, 1, b""),
        Integer(True),  # type: ignore[arg-type]
    ],
)
def test_unencodable_nodes(node: Asn1Node) -> None:
    with pytest.raises(GbcsEncodeError):
        encode_asn1(node)


# --- property tests --------------------------------------------------------------------

_digits = st.text("0123456789", min_size=2, max_size=2)


def _times() -> st.SearchStrategy[str]:
    return st.datetimes(
        min_value=datetime(1950, 1, 1), max_value=datetime(2049, 12, 31, 23, 59, 59)
    ).map(lambda d: d.replace(microsecond=0))


_leaves = st.one_of(
    st.booleans().map(Boolean),
    st.integers(min_value=-(2**80), max_value=2**80).map(Integer),
    st.integers(min_value=-1000, max_value=1000).map(Enumerated),
    st.binary(max_size=40).map(OctetString),
    st.lists(st.integers(0, 40), max_size=6).map(BitString.from_named_bits),
    st.just(Null()),
    st.builds(
        lambda a, b, rest: ObjectIdentifier(".".join(str(x) for x in (a, b, *rest))),
        st.integers(0, 2),
        st.integers(0, 39),
        st.lists(st.integers(0, 2**40), max_size=5),
    ),
    st.text(max_size=12).map(Utf8String),
    st.text("ABCxyz019 '()+,-./:=?", max_size=12).map(PrintableString),
    st.text(st.characters(max_codepoint=127), max_size=12).map(Ia5String),
    _times().map(GeneralizedTime.from_datetime),
    _times().map(UtcTime.from_datetime),
    st.builds(
        TaggedPrimitive,
        st.sampled_from([CLASS_CONTEXT, CLASS_APPLICATION, CLASS_PRIVATE]),
        st.integers(0, 300),
        st.binary(max_size=20),
    ),
)


def _containers(children: st.SearchStrategy[Asn1Node]) -> st.SearchStrategy[Asn1Node]:
    kids = st.lists(children, max_size=5)
    return st.one_of(
        kids.map(Sequence),
        kids.map(Set),
        st.builds(
            TaggedConstructed,
            st.sampled_from([CLASS_CONTEXT, CLASS_APPLICATION, CLASS_PRIVATE]),
            st.integers(0, 300),
            kids,
        ),
    )


trees = st.recursive(_leaves, _containers, max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(trees)
def test_generated_trees_round_trip(node: Asn1Node) -> None:
    raw = encode_asn1(node)
    back = decode_asn1(raw)
    assert back == node
    assert encode_asn1(back) == raw


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_raise_only_decode_errors(data: bytes) -> None:
    try:
        node = decode_asn1(data)
    except GbcsDecodeError as exc:
        assert 0 <= exc.offset <= len(data)
        return
    # Whatever is accepted is canonical: it re-encodes to exactly the input.
    assert encode_asn1(node) == data
    json.dumps(node_to_json(node))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_rtds_payloads(asn1_payloads: list[CorpusPayload], data: st.DataObject) -> None:
    p = data.draw(st.sampled_from(asn1_payloads))
    raw = bytearray(p.content)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    try:
        node = decode_asn1(bytes(raw))
    except GbcsDecodeError:
        return
    assert encode_asn1(node) == bytes(raw)
    out = asn1_to_json(node, p.gs.message_code, p.gs.cra)  # lenient: never raises
    json.dumps(out)


def test_truncated_rtds_payloads_raise(asn1_payloads: list[CorpusPayload]) -> None:
    for p in asn1_payloads[::7]:
        c = p.content
        for cut in range(len(c)):
            with pytest.raises(GbcsDecodeError):
                decode_asn1(c[:cut], base=p.offset)


def test_huge_integer_renders_as_hex_in_json() -> None:
    """Found by hypothesis: a garbled length made a 2 KB INTEGER, whose decimal text
    exceeds Python's int-to-str limit and crashed json.dumps."""
    from gbhil.gbcs.asn1 import asn1_to_json

    body = b"\x01" + bytes(2047)
    node = decode_asn1(b"\x02\x82\x08\x00" + body)
    out = json.dumps(asn1_to_json(node, None, None))
    assert "0x1" in out
