"""DLMS COSEM codec (A-XDR Data + APDUs): RTDS round trips, decryption, errors, properties."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import load_pem_x509_certificate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbhil.gbcs import axdr
from gbhil.gbcs.axdr import (
    DATE_TIME_NEVER,
    DATE_TIME_NOW,
    DEVIATION_NOT_SPECIFIED,
    MAX_DEPTH,
    NULL,
    Array,
    Bcd,
    BitString,
    Boolean,
    CompactArray,
    Data,
    DateTimeValue,
    DateValue,
    DlmsDateTime,
    DontCare,
    Enum,
    Float32,
    Float64,
    Int8,
    Int16,
    Int32,
    Int64,
    OctetString,
    Structure,
    TimeValue,
    TypeDesc,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Utf8String,
    VisibleString,
    data_to_json,
    decode_data,
    decode_data_all,
    decode_datetime,
    encode_data,
    encode_datetime,
    looks_like_datetime,
)
from gbhil.gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    DataNotification,
    DlmsApdu,
    RequestKind,
    RequestSpec,
    ResponseKind,
    ResponseSpec,
    alert_code,
    decode_dlms,
    dlms_to_json,
    encode_dlms,
    encrypted_blocks,
    format_obis,
    gbcs_invoke_id,
    parse_obis,
)
from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.kdf import SC_ENCRYPTED, TYPE_PAYLOAD_ENCRYPTION, derive_key, gcm_decrypt
from gbhil.gbcs.message import PayloadFamily
from gbhil.gbcs.obis import COSEM_CLASSES, OBIS_NAMES
from gbhil.gbcs.reader import Reader
from tests.corpus import CorpusPayload, corpus_payloads

DLMS_TAGS = (0xD9, 0xDA, 0x0F)
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ESME = bytes.fromhex("00DB1234567890A0")


@pytest.fixture(scope="module")
def dlms_payloads(rtds_dir: Path) -> list[CorpusPayload]:
    return corpus_payloads(rtds_dir, PayloadFamily.DLMS)


# --- RTDS corpus -------------------------------------------------------------------------


@pytest.mark.conformance
def test_rtds_every_dlms_payload_decodes_and_reencodes_exactly(
    dlms_payloads: list[CorpusPayload],
) -> None:
    failures = []
    exact = 0
    kinds = {t: 0 for t in DLMS_TAGS}
    for pl in dlms_payloads:
        try:
            apdu = decode_dlms(pl.content, base=pl.offset)
        except GbcsDecodeError as e:
            failures.append(f"{pl.name}: {e}")
            continue
        kinds[pl.content[0]] += 1
        if encode_dlms(apdu) == pl.content:
            exact += 1
        else:
            failures.append(f"{pl.name}: re-encoding differs")
    print(
        f"\nDLMS payloads: {len(dlms_payloads)}, decoded {sum(kinds.values())}, "
        f"re-encoded exactly {exact} (access-request {kinds[0xD9]}, "
        f"access-response {kinds[0xDA]}, data-notification {kinds[0x0F]})"
    )
    assert dlms_payloads, "no DLMS payload found in the corpus"
    assert not failures, failures[:10]
    assert all(kinds.values())


@pytest.mark.conformance
def test_rtds_invoke_id_is_0x20_and_low_counter_bits(dlms_payloads: list[CorpusPayload]) -> None:
    """gbcs-facts 3.1.1 / pitfall 8, on every APDU (alerts use the device's counter)."""
    for pl in dlms_payloads:
        apdu = decode_dlms(pl.content)
        assert apdu.long_invoke_id == gbcs_invoke_id(pl.gs.originator_counter), pl.name
        assert apdu.date_time is None, pl.name


@pytest.mark.conformance
def test_rtds_json_view_and_catalogue(dlms_payloads: list[CorpusPayload]) -> None:
    unnamed_classes = set()
    for pl in dlms_payloads:
        apdu = decode_dlms(pl.content)
        view = dlms_to_json(apdu)
        json.dumps(view)  # JSON-able
        specs = apdu.specs if isinstance(apdu, AccessRequest) else ()
        for s in specs:
            if s.class_id not in COSEM_CLASSES:
                unnamed_classes.add(s.class_id)
        if isinstance(apdu, AccessRequest):
            assert [r["kind"] for r in view["requests"]] == [  # type: ignore[index]
                s.kind.name.lower().replace("_", "-") for s in apdu.specs
            ]
    assert not unnamed_classes


@pytest.mark.conformance
def test_rtds_alert_codes(dlms_payloads: list[CorpusPayload]) -> None:
    """Every DLMS alert body starts with uint16 alert code and octet-string(12) time (3.1.5)."""
    alerts = [pl for pl in dlms_payloads if pl.content[0] == 0x0F]
    assert alerts
    for pl in alerts:
        apdu = decode_dlms(pl.content)
        assert pl.gs.cra == 3
        code = alert_code(apdu)
        assert code is not None and code >> 8 in (0x80, 0x81, 0x8F), pl.name
        assert isinstance(apdu, DataNotification) and isinstance(apdu.body, Structure)
        stamp = apdu.body.items[1]
        assert isinstance(stamp, OctetString) and looks_like_datetime(stamp.value), pl.name


#: Message codes whose successful responses carry one protected block (gbcs-facts 2.5).
PROTECTED_READS = {0x0027, 0x0029, 0x002A, 0x002D, 0x002F, 0x0030, 0x0033, 0x0034, 0x0037, 0x0060}


def _payload_key(pl: CorpusPayload, keystore: Path) -> bytes:
    """Payload-encryption key of a device response (gbcs-facts 2.3, type byte 0x04)."""
    gs, other = pl.gs, pl.gs.other_information
    device = gs.business_originator
    recipient = other.supplementary_remote_party_id or gs.business_target
    counter = other.supplementary_originator_counter
    if counter is None:
        counter = gs.originator_counter
    priv = load_pem_private_key((keystore / f"{recipient.hex()}-ka.key").read_bytes(), None)
    cert = load_pem_x509_certificate((keystore / f"{device.hex()}-ka.pem").read_bytes())
    assert isinstance(priv, ec.EllipticCurvePrivateKey)
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    z = priv.exchange(ec.ECDH(), pub)
    return derive_key(z, device, TYPE_PAYLOAD_ENCRYPTION, counter, recipient)


@pytest.mark.conformance
def test_rtds_encrypted_blocks_found_decrypted_and_decoded(
    dlms_payloads: list[CorpusPayload], rtds_keystore_dir: Path
) -> None:
    found = decoded = 0
    for pl in dlms_payloads:
        apdu = decode_dlms(pl.content)
        blocks = encrypted_blocks(apdu)
        protected = (
            isinstance(apdu, AccessResponse)
            and pl.gs.message_code in PROTECTED_READS
            and all(r.result == 0 for r in apdu.results)
        )
        assert len(blocks) == (1 if protected else 0), pl.name
        for block in blocks:
            found += 1
            assert block[0] == SC_ENCRYPTED and len(block) >= 17
            key = _payload_key(pl, rtds_keystore_dir)
            iv = pl.gs.business_originator + block[1:5]
            plain = gcm_decrypt(key, iv, block[5:-12], block[-12:], bytes((SC_ENCRYPTED,)))
            assert plain is not None, f"{pl.name}: GCM tag does not verify"
            value = decode_data_all(plain)
            assert encode_data(value) == plain
            json.dumps(data_to_json(value))
            decoded += 1
    print(f"\nDLMS encrypted blocks: {found} found, {decoded} decrypted and decoded")
    assert found and found == decoded


@pytest.mark.conformance
def test_rtds_every_truncation_is_a_decode_error(dlms_payloads: list[CorpusPayload]) -> None:
    for pl in dlms_payloads[::3]:
        for cut in range(len(pl.content)):
            with pytest.raises(GbcsDecodeError) as ei:
                decode_dlms(pl.content[:cut], base=pl.offset)
            assert pl.offset <= ei.value.offset <= pl.offset + cut, pl.name


@pytest.mark.conformance
def test_rtds_trailing_byte_is_a_decode_error(dlms_payloads: list[CorpusPayload]) -> None:
    for pl in dlms_payloads[:50]:
        with pytest.raises(GbcsDecodeError, match="trailing") as ei:
            decode_dlms(pl.content + b"\x00", base=pl.offset)
        assert ei.value.offset == pl.offset + len(pl.content)


@pytest.mark.conformance
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_rtds_mutations_decode_canonically_or_fail_cleanly(
    dlms_payloads: list[CorpusPayload], data: st.DataObject
) -> None:
    """A corrupted byte either gives a precise GbcsDecodeError or re-encodes to itself."""
    pl = data.draw(st.sampled_from(dlms_payloads))
    pos = data.draw(st.integers(0, len(pl.content) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = pl.content[:pos] + bytes((value,)) + pl.content[pos + 1 :]
    try:
        apdu = decode_dlms(mutated)
    except GbcsDecodeError as e:
        assert 0 <= e.offset <= len(mutated)
        return
    assert encode_dlms(apdu) == mutated


# --- worked example and unit tests -------------------------------------------------------

#: gbcs-facts 1.7: ECS52 read firmware version, the content field.
ECS52_CONTENT = bytes.fromhex("D9200003EA00010100010000000201FF020100")


def test_ecs52_worked_example() -> None:
    apdu = decode_dlms(ECS52_CONTENT)
    assert apdu == AccessRequest(
        0x200003EA,
        (RequestSpec(RequestKind.GET, 1, bytes.fromhex("0000000201FF"), 2),),
        (NULL,),
    )
    assert apdu.invoke_id == 1002
    assert encode_dlms(apdu) == ECS52_CONTENT
    view = dlms_to_json(apdu)
    assert view["apdu"] == "access-request"
    (req,) = view["requests"]  # type: ignore[misc]
    assert req == {
        "kind": "get",
        "class_id": 1,
        "class": "Data",
        "obis": "0-0:0.2.1.255",
        "name": OBIS_NAMES["0-0:0.2.1.255"],
        "attribute": 2,
    }


def test_access_response_and_selection_round_trip() -> None:
    sel = Structure(
        (
            Structure(
                (Uint16(1), OctetString(parse_obis("0-0:94.44.100.255")), Int8(2), Uint16(0))
            ),
            Uint32(473212740),
            Uint32(473385600),
            Array(()),
        )
    )
    req = AccessRequest(
        gbcs_invoke_id(0x1_0000_03EB),
        (
            RequestSpec(
                RequestKind.GET_WITH_SELECTION, 7, parse_obis("1-0:32.24.0.255"), 2, 1, sel
            ),
            RequestSpec(RequestKind.ACTION, 9, parse_obis("0-0:10.0.106.255"), 1),
        ),
        (NULL, Uint16(1)),
    )
    raw = encode_dlms(req)
    assert raw[:5] == bytes.fromhex("D9200003EB")
    assert decode_dlms(raw) == req
    view = dlms_to_json(req)
    assert view["requests"][0]["selector"] == 1  # type: ignore[index]
    assert view["requests"][1]["method"] == 1  # type: ignore[index]

    rsp = AccessResponse(
        req.long_invoke_id,
        (Array((Structure((Uint32(1), Uint32(2))),)), NULL),
        (ResponseSpec(ResponseKind.GET, 0), ResponseSpec(ResponseKind.ACTION, 250)),
        date_time=DlmsDateTime(2015, 1, 1, 4, 0, 0, 0, 0, 0, 0),
        request_specs=req.specs,
    )
    raw = encode_dlms(rsp)
    assert raw[5] == 12 and raw[18] == 1  # date-time present, request specs present
    assert decode_dlms(raw) == rsp
    assert [r["name"] for r in dlms_to_json(rsp)["results"]] == ["success", "other-reason"]  # type: ignore[index]


#: Data values with their exact A-XDR bytes.
ENCODINGS: list[tuple[Data, str]] = [
    (NULL, "00"),
    (DontCare(), "FF"),
    (Boolean(True), "03FF"),
    (Boolean(False), "0300"),
    (Boolean(True, 1), "0301"),
    (BitString(10, b"\xff\xc0"), "040AFFC0"),
    (BitString(0, b""), "0400"),
    (Int32(-2), "05FFFFFFFE"),
    (Uint32(0x1C34A744), "061C34A744"),
    (OctetString(b""), "0900"),
    (OctetString(b"\xaa" * 128), "098180" + "AA" * 128),
    (OctetString(b"\xbb" * 256), "09820100" + "BB" * 256),
    (VisibleString(b"E-ON"), "0A04452D4F4E"),
    (Utf8String("é".encode()), "0C02C3A9"),
    (Bcd(-1), "0DFF"),
    (Int8(-5), "0FFB"),
    (Int16(-1), "10FFFF"),
    (Uint8(200), "11C8"),
    (Uint16(0x8F66), "128F66"),
    (Int64(-1), "14" + "FF" * 8),
    (Uint64(2**64 - 1), "15" + "FF" * 8),
    (Enum(27), "161B"),
    (Float32.of(1.5), "173FC00000"),
    (Float64.of(-2.0), "18C000000000000000"),
    (DateTimeValue(DATE_TIME_NOW), "19" + "00" * 9 + "8000FF"),
    (DateValue(b"\x07\xdf\x01\x01\xff"), "1A07DF0101FF"),
    (TimeValue(b"\x17\x3b\x00\x00"), "1B173B0000"),
    (Array((Uint8(1), Uint8(2))), "0102110111 02".replace(" ", "")),
    (Structure((Uint16(1), NULL)), "0202120001 00".replace(" ", "")),
    (
        CompactArray(
            TypeDesc(2, 0, (TypeDesc(6), TypeDesc(6))),
            (Structure((Uint32(1), Uint32(2))), Structure((Uint32(3), Uint32(4)))),
        ),
        "1302020606 10 00000001 00000002 00000003 00000004".replace(" ", ""),
    ),
    (
        CompactArray(
            TypeDesc(1, 2, (TypeDesc(0x11),)),
            (Array((Uint8(1), Uint8(2))),),
        ),
        "13 01 0002 11 02 01 02".replace(" ", ""),
    ),
    (
        CompactArray(TypeDesc(9), (OctetString(b"\x01"), OctetString(b""))),
        "1309 03 0101 00".replace(" ", ""),
    ),
]


@pytest.mark.parametrize(("value", "hex_"), ENCODINGS, ids=[h[:12] for _, h in ENCODINGS])
def test_data_encodings(value: Data, hex_: str) -> None:
    raw = bytes.fromhex(hex_)
    assert encode_data(value) == raw
    assert decode_data_all(raw) == value
    json.dumps(data_to_json(value))


def test_decode_data_advances_reader_with_absolute_offsets() -> None:
    r = Reader(bytes.fromhex("1200010F"), base=40)
    assert decode_data(r) == Uint16(1)
    assert r.offset == 43
    with pytest.raises(GbcsDecodeError) as ei:
        decode_data(r)
    assert ei.value.offset == 44 and ei.value.field == "int8"


def test_datetime_helpers() -> None:
    raw = bytes.fromhex("07DE0C1FFF173B00008000FF")
    dt = decode_datetime(raw)
    assert (dt.year, dt.month, dt.day, dt.day_of_week, dt.hour, dt.minute) == (
        2014,
        12,
        31,
        255,
        23,
        59,
    )
    assert dt.deviation == DEVIATION_NOT_SPECIFIED and dt.clock_status == 0xFF
    assert encode_datetime(dt) == raw
    assert dt.text() == "2014-12-31T23:59:00.00"
    assert DlmsDateTime(2015, 1, 1, 4, 0, 0, 0, 0xFF, 0, 0).text() == "2015-01-01T00:00:00Z"
    assert DlmsDateTime(2015, 1, 1, 4, 0, 0, 0, 0, 60, 0).text().endswith("(deviation +60 min)")
    assert DlmsDateTime(hour=1, minute=30).text() == "****-**-**T01:30:**"
    assert DATE_TIME_NOW.text() == "now" and DATE_TIME_NEVER.text() == "never"
    assert encode_datetime(DATE_TIME_NEVER) == b"\xff" * 9 + b"\x80\x00\xff"
    assert decode_datetime(b"\xff" * 9 + b"\x80\x00\xff").is_never()
    assert looks_like_datetime(raw) and not looks_like_datetime(raw[:11])
    assert not looks_like_datetime(bytes.fromhex("07DE0D1FFF173B00008000FF"))  # month 13
    assert data_to_json(OctetString(raw)) == {
        "octet-string": raw.hex().upper(),
        "date-time": dt.text(),
    }
    assert data_to_json(OctetString(b"E-ON")) == {"octet-string": "452D4F4E", "ascii": "E-ON"}
    with pytest.raises(GbcsDecodeError):
        decode_datetime(raw[:11])
    with pytest.raises(GbcsEncodeError):
        encode_datetime(DlmsDateTime(month=256))


@given(st.binary(min_size=12, max_size=12))
def test_datetime_round_trip_any_12_bytes(raw: bytes) -> None:
    assert encode_datetime(decode_datetime(raw)) == raw


def test_obis_text() -> None:
    assert format_obis(bytes.fromhex("0000010000FF")) == "0-0:1.0.0.255"
    assert parse_obis("0-0:1.0.0.255") == bytes.fromhex("0000010000FF")
    assert format_obis(b"\x01\x02") == "0102"
    for bad in ("0-0:1.0.0", "0.0.1.0.0.255", "0-0:1.0.0.256", "a-0:1.0.0.255"):
        with pytest.raises(ValueError):
            parse_obis(bad)
    for name in OBIS_NAMES:
        assert format_obis(parse_obis(name)) == name


def test_encrypted_blocks_in_response_and_flat_alert_body() -> None:
    params = Array(
        (
            Structure(
                (
                    Enum(2),
                    Structure(
                        (
                            OctetString(b"\x04" + (1001).to_bytes(8, "big")),
                            OctetString(ESME),
                            OctetString(SUPPLIER),
                            OctetString(b""),
                            Structure(
                                (Enum(2), Structure((OctetString(b"\x02"), OctetString(b""))))
                            ),
                        )
                    ),
                )
            ),
        )
    )
    block = b"\x31" + bytes(4) + b"\x55" * 20 + b"\xaa" * 12
    rsp = AccessResponse(
        gbcs_invoke_id(1001),
        (Structure((params, OctetString(block))),),
        (ResponseSpec(ResponseKind.ACTION, 0),),
    )
    assert encrypted_blocks(rsp) == [block]
    # ECS68 billing-data-log alert: parameters and block sit directly in the body.
    alert = DataNotification(
        gbcs_invoke_id(2001),
        Structure(
            (
                Uint16(0x8F0A),
                OctetString(bytes.fromhex("07DF0101FF000000008000FF")),
                params,
                OctetString(block),
            )
        ),
    )
    assert encrypted_blocks(alert) == [block]
    assert alert_code(alert) == 0x8F0A
    assert decode_dlms(encode_dlms(alert)) == alert
    # An ASCII "1..." string after an ordinary array is not a block.
    plain = DataNotification(0, Structure((Array((Uint8(1),)), OctetString(b"1312345678"))))
    assert encrypted_blocks(plain) == []
    assert alert_code(plain) is None and alert_code(rsp) is None


# --- precise decode errors ---------------------------------------------------------------

DECODE_ERRORS: list[tuple[str, str, str, int]] = [
    # (content hex, field substring, reason substring, offset)
    ("", "apdu tag", "only 0 left", 0),
    ("C0", "apdu tag", "0xC0", 0),
    ("0F200000010007", "data tag", "unknown A-XDR Data tag 0x07", 6),
    ("0F2000000100", "data tag", "only 0 left", 6),
    ("0F200000010009", "octet-string length", "only 0 left", 7),
    ("0F20000001000903AABB", "octet-string", "needs 3", 8),
    ("0F20000001000981050102030405", "octet-string length", "non-minimal length form 8105", 7),
    ("0F2000000100098500", "octet-string length", "unsupported length form 0x85", 7),
    ("0F200000010005", "int32", "needs 4", 7),
    ("0F20000001000205", "structure count", "cannot fit", 7),
    ("0F200000010000FF", "data-notification", "1 unexpected trailing", 7),
    ("0F20000001050102030405", "date-time", "empty or 12 bytes", 5),
    ("D92000000100010900", "request-spec kind", "unknown choice 9", 7),
    (
        "D920000001000101000100000000000002020000",
        "access-request data count",
        "2 entries for 1",
        17,
    ),
    ("DA20000001000200", "access-request-specification presence", "0x00/0x01", 6),
    ("DA2000000100000100010400", "response-spec kind", "unknown choice 4", 10),
    ("DA20000001000001000201", "response-spec count", "2 entries for 1", 9),
    ("0F200000010013000100", "compact-array", "zero size", 9),
    ("0F20000001001300", "contents length", "only 0 left", 8),
    ("0F200000010013130100", "type-description tag", "0x13 not allowed", 7),
    ("0F2000000100130702", "type-description tag", "0x07 not allowed", 7),
    ("0F20000001001302020606030000000001", "uint32", "needs 4 byte(s), only 3 left", 12),
]


@pytest.mark.parametrize(("hex_", "field", "reason", "offset"), DECODE_ERRORS)
def test_decode_errors_are_precise(hex_: str, field: str, reason: str, offset: int) -> None:
    with pytest.raises(GbcsDecodeError) as ei:
        decode_dlms(bytes.fromhex(hex_), base=1000)
    assert field in ei.value.field
    assert reason in ei.value.reason
    assert ei.value.offset == 1000 + offset


def _nested(levels: int) -> bytes:
    return b"\x02\x01" * levels + b"\x00"


def test_nesting_depth_is_capped() -> None:
    assert isinstance(decode_data_all(_nested(MAX_DEPTH)), Structure)
    with pytest.raises(GbcsDecodeError, match="nesting deeper"):
        decode_data_all(_nested(MAX_DEPTH + 1))
    with pytest.raises(GbcsDecodeError, match="nesting deeper"):
        decode_data_all(_nested(10_000))
    deep: Data = NULL
    for _ in range(MAX_DEPTH + 1):
        deep = Structure((deep,))
    with pytest.raises(GbcsEncodeError, match="nesting deeper"):
        encode_data(deep)
    with pytest.raises(GbcsDecodeError, match="nesting deeper"):
        decode_data_all(b"\x13" + b"\x01\x00\x01" * (MAX_DEPTH + 1) + b"\x11\x00")


# --- encode errors -----------------------------------------------------------------------

OBIS = parse_obis("0-0:1.0.0.255")
ENCODE_ERRORS: list[tuple[object, str]] = [
    (Uint8(256), "does not fit"),
    (Int16(40000), "does not fit"),
    (Uint32(-1), "does not fit"),
    (Uint16("1"), "must be int"),  # type: ignore[arg-type]
    (OctetString("text"), "must be bytes"),  # type: ignore[arg-type]
    (BitString(9, b"\x00"), "need 2 byte"),
    (Boolean(False, 1), "needs value True"),
    (Boolean(True, 0xFF), "needs value True"),
    (Float32(b"\x00"), "exactly 4"),
    (DateTimeValue(DlmsDateTime(year=-1)), "out of range"),
    (CompactArray(TypeDesc(0x11), (Uint16(1),)), "does not match"),
    (CompactArray(TypeDesc(2, 0, (TypeDesc(0x11),)), (Structure(()),)), "needs 1 element"),
    (CompactArray(TypeDesc(0), (NULL,)), "zero size"),
    (CompactArray(TypeDesc(0x13), ()), "not allowed"),
    (CompactArray(TypeDesc(1, 0, ()), ()), "array needs one member"),
    (object(), "not an A-XDR Data value"),
    (
        AccessRequest(1, (RequestSpec(RequestKind.GET, 1, OBIS, 2),), ()),
        "one data value per request spec",
    ),
    (AccessRequest(1, (RequestSpec(RequestKind.GET, 1, b"\x00", 2),), (NULL,)), "needs 6 bytes"),
    (AccessRequest(1, (RequestSpec(RequestKind.GET, 70000, OBIS, 2),), (NULL,)), "does not fit"),
    (
        AccessRequest(1, (RequestSpec(RequestKind.GET_WITH_SELECTION, 7, OBIS, 2),), (NULL,)),
        "needs selector",
    ),
    (
        AccessRequest(1, (RequestSpec(RequestKind.GET, 8, OBIS, 2, 1, NULL),), (NULL,)),
        "has no selector",
    ),
    (AccessResponse(1, (NULL,), ()), "counts differ"),
    (AccessResponse(2**32, (), ()), "does not fit"),
    (DataNotification(1, Uint8(-1)), "does not fit"),
]


@pytest.mark.parametrize(("value", "reason"), ENCODE_ERRORS)
def test_encode_errors(value: object, reason: str) -> None:
    with pytest.raises(GbcsEncodeError, match=reason):
        if isinstance(value, AccessRequest | AccessResponse | DataNotification):
            encode_dlms(value)
        else:
            encode_data(value)  # type: ignore[arg-type]


def test_encode_dlms_rejects_non_apdu() -> None:
    with pytest.raises(GbcsEncodeError):
        encode_dlms(NULL)  # type: ignore[arg-type]


# --- property tests ----------------------------------------------------------------------

INTEGER_CLASSES = (Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Enum, Bcd)


def _integers(cls: type) -> st.SearchStrategy[Data]:
    bits = 8 * cls.size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if cls.signed else (0, (1 << bits) - 1)
    return st.integers(lo, hi).map(cls)


def _bit_strings() -> st.SearchStrategy[Data]:
    return st.binary(max_size=8).flatmap(
        lambda b: st.integers(max(len(b) * 8 - 7, 0), len(b) * 8).map(lambda n: BitString(n, b))
    )


datetimes = st.builds(
    DlmsDateTime,
    *(st.integers(0, 0xFFFF), *(st.integers(0, 0xFF) for _ in range(7))),
    st.integers(-0x8000, 0x7FFF),
    st.integers(0, 0xFF),
)

#: Leaf strategies by tag (also used to fill compact arrays).
LEAVES: dict[int, st.SearchStrategy[Data]] = {
    0x00: st.just(NULL),
    0xFF: st.just(DontCare()),
    0x03: st.one_of(
        st.booleans().map(Boolean), st.integers(1, 0xFE).map(lambda o: Boolean(True, o))
    ),
    0x04: _bit_strings(),
    0x09: st.binary(max_size=300).map(OctetString),
    0x0A: st.binary(max_size=20).map(VisibleString),
    0x0C: st.binary(max_size=20).map(Utf8String),
    0x17: st.binary(min_size=4, max_size=4).map(Float32),
    0x18: st.binary(min_size=8, max_size=8).map(Float64),
    0x19: datetimes.map(DateTimeValue),
    0x1A: st.binary(min_size=5, max_size=5).map(DateValue),
    0x1B: st.binary(min_size=4, max_size=4).map(TimeValue),
    **{c.tag: _integers(c) for c in INTEGER_CLASSES},
}
#: Element types with a non-zero encoded size (allowed in compact arrays).
SIZED_TAGS = sorted(set(LEAVES) - {0x00, 0xFF})

type_descs: st.SearchStrategy[TypeDesc] = st.recursive(
    st.sampled_from(SIZED_TAGS).map(TypeDesc),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda ms: TypeDesc(2, 0, tuple(ms))),
        st.tuples(st.integers(1, 3), inner).map(lambda t: TypeDesc(1, t[0], (t[1],))),
    ),
    max_leaves=5,
)


def _typed_value(desc: TypeDesc) -> st.SearchStrategy[Data]:
    if desc.tag == 2:
        return st.tuples(*(_typed_value(m) for m in desc.members)).map(Structure)
    if desc.tag == 1:
        return st.tuples(*(_typed_value(desc.members[0]) for _ in range(desc.count))).map(Array)
    return LEAVES[desc.tag]


compact_arrays: st.SearchStrategy[Data] = type_descs.flatmap(
    lambda d: st.lists(_typed_value(d), max_size=4).map(lambda items: CompactArray(d, tuple(items)))
)

data_values: st.SearchStrategy[Data] = st.recursive(
    st.one_of(*LEAVES.values(), compact_arrays),
    lambda children: st.one_of(
        st.lists(children, max_size=5).map(lambda xs: Array(tuple(xs))),
        st.lists(children, max_size=5).map(lambda xs: Structure(tuple(xs))),
    ),
    max_leaves=25,
)

request_specs = st.one_of(
    st.builds(
        RequestSpec,
        st.sampled_from([RequestKind.GET, RequestKind.SET, RequestKind.ACTION]),
        st.integers(0, 0xFFFF),
        st.binary(min_size=6, max_size=6),
        st.integers(0, 0xFF),
    ),
    st.builds(
        RequestSpec,
        st.sampled_from([RequestKind.GET_WITH_SELECTION, RequestKind.SET_WITH_SELECTION]),
        st.integers(0, 0xFFFF),
        st.binary(min_size=6, max_size=6),
        st.integers(0, 0xFF),
        st.integers(0, 0xFF),
        data_values,
    ),
)
invoke_ids = st.integers(0, 0xFFFFFFFF)
optional_datetimes = st.none() | datetimes


@st.composite
def apdus(draw: st.DrawFn) -> DlmsApdu:
    kind = draw(st.sampled_from(["request", "response", "notification"]))
    invoke, dt = draw(invoke_ids), draw(optional_datetimes)
    if kind == "notification":
        return DataNotification(invoke, draw(data_values), dt)
    n = draw(st.integers(0, 4))
    specs = tuple(draw(request_specs) for _ in range(n))
    values = tuple(draw(data_values) for _ in range(n))
    if kind == "request":
        return AccessRequest(invoke, specs, values, dt)
    results = tuple(
        ResponseSpec(draw(st.sampled_from(list(ResponseKind))), draw(st.integers(0, 255)))
        for _ in range(n)
    )
    return AccessResponse(invoke, values, results, dt, draw(st.none() | st.just(specs)))


@settings(max_examples=400, deadline=None)
@given(data_values)
def test_property_data_round_trip(value: Data) -> None:
    raw = encode_data(value)
    back = decode_data_all(raw)
    assert back == value
    assert encode_data(back) == raw
    json.dumps(data_to_json(value))


@settings(max_examples=300, deadline=None)
@given(apdus())
def test_property_apdu_round_trip(apdu: DlmsApdu) -> None:
    raw = encode_dlms(apdu)
    back = decode_dlms(raw)
    assert back == apdu
    assert encode_dlms(back) == raw
    json.dumps(dlms_to_json(apdu))


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from([b"", b"\xd9", b"\xda", b"\x0f", b"\x0f\x20\x00\x00\x01\x00"]),
    st.binary(max_size=80),
)
def test_property_arbitrary_bytes_fail_cleanly_or_are_canonical(prefix: bytes, tail: bytes) -> None:
    raw = prefix + tail
    try:
        apdu = decode_dlms(raw, base=7)
    except GbcsDecodeError as e:
        assert 7 <= e.offset <= 7 + len(raw)
        return
    assert encode_dlms(apdu) == raw


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=80))
def test_property_arbitrary_data_bytes_fail_cleanly_or_are_canonical(raw: bytes) -> None:
    try:
        value = decode_data_all(raw)
    except GbcsDecodeError as e:
        assert 0 <= e.offset <= len(raw)
        return
    assert encode_data(value) == raw


def test_random_structured_garbage_never_escapes() -> None:
    """Bytes biased towards valid tags/lengths reach deep paths; only GbcsDecodeError may escape."""
    rng = random.Random(1234)
    alphabet = [0x00, 0x01, 0x02, 0x03, 0x04, 0x09, 0x12, 0x13, 0x16, 0x81, 0x82, 0xFF]
    for _ in range(5000):
        raw = bytes(
            rng.choice(alphabet) if rng.random() < 0.7 else rng.randrange(256) for _ in range(40)
        )
        try:
            value = decode_data_all(raw)
        except GbcsDecodeError:
            continue
        assert encode_data(value) == raw


def test_catalogue_sanity() -> None:
    """Catalogue sanity: class names and OBIS keys are well-formed."""
    assert COSEM_CLASSES[8] == "Clock" and COSEM_CLASSES[115] == "Token gateway"
    assert all(isinstance(k, int) and v for k, v in COSEM_CLASSES.items())
    assert axdr.TAG_NAMES[0x13] == "compact-array"
