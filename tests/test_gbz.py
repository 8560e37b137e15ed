"""GBZ / ZCL codec: RTDS round trips, payload decryption, precise errors, properties."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509 import load_pem_x509_certificate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.gbz import (
    EncryptedComponent,
    FirmwareReceiptAlertBody,
    FutureDatedAlertBody,
    GbzAlert,
    GbzComponent,
    GbzMessage,
    IntegrityWarningAlertBody,
    PlainComponent,
    decode_decrypted_zcl,
    decode_gbz,
    encode_gbz,
    encrypted_blocks,
    gbz_to_json,
)
from gbhil.gbcs.kdf import SC_ENCRYPTED, TYPE_PAYLOAD_ENCRYPTION, derive_key, gcm_decrypt
from gbhil.gbcs.message import PayloadFamily
from gbhil.gbcs.reader import Reader
from gbhil.gbcs.zcl import (
    AttributeInfo,
    AttributeSelector,
    AttributeStatus,
    AttributeValue,
    ConfigureReporting,
    ConfigureReportingResponse,
    DefaultResponse,
    DiscoverAttributes,
    DiscoverAttributesResponse,
    RawPayload,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    ReadReportingConfiguration,
    ReadReportingConfigurationResponse,
    ReportAttributes,
    ReportingConfiguration,
    ReportingConfigurationStatus,
    ReportingStatus,
    WriteAttributes,
    WriteAttributesResponse,
    ZclFrame,
    ZclHeader,
    ZclPayload,
    ZclValue,
    decode_value,
    decode_zcl_frame,
    encode_typed_value,
    encode_zcl_frame,
)
from tests.corpus import corpus_payloads

# --- RTDS corpus ------------------------------------------------------------------


def test_rtds_gbz_round_trip(rtds_dir: Path) -> None:
    """Every GBZ payload decodes fully and re-encodes byte-exact from its typed fields."""
    corpus = corpus_payloads(rtds_dir, PayloadFamily.GBZ)
    by_cra = {1: 0, 2: 0, 3: 0}
    components = encrypted = plain_typed = 0
    failures = []
    for p in corpus:
        try:
            msg = decode_gbz(p.content, alert=p.gs.cra == 3, base=p.offset)
            if encode_gbz(msg) != p.content:
                failures.append((p.name, "re-encode differs"))
                continue
            gbz_to_json(msg)
        except Exception as exc:  # report every file, not just the first
            failures.append((p.name, repr(exc)))
            continue
        by_cra[p.gs.cra] += 1
        components += len(msg.components)
        encrypted += len(encrypted_blocks(msg))
        plain_typed += sum(
            isinstance(c, PlainComponent) and not isinstance(c.payload, RawPayload)
            for c in msg.components
        )
    print(
        f"\nGBZ: {len(corpus)} messages (commands+precommands {by_cra[1]}, responses {by_cra[2]}, "
        f"alerts {by_cra[3]}), {components} components, {encrypted} encrypted, "
        f"{plain_typed} plain general-command payloads typed; failures {len(failures)}"
    )
    assert not failures, failures[:10]
    assert len(corpus) >= 290
    assert by_cra[3] >= 16 and encrypted >= 34 and plain_typed >= 421


def test_rtds_gbz_prefixes_fail_cleanly(rtds_dir: Path) -> None:
    """A truncated GBZ payload never decodes and never leaks a non-codec exception."""
    for p in corpus_payloads(rtds_dir, PayloadFamily.GBZ):
        content = p.content
        for n in range(len(content)):
            with pytest.raises(GbcsDecodeError):
                decode_gbz(content[:n], alert=p.gs.cra == 3)
        with pytest.raises(GbcsDecodeError):
            decode_gbz(content + b"\x00", alert=p.gs.cra == 3)


def test_rtds_gbz_mutations_are_canonical(rtds_dir: Path) -> None:
    """Random byte flips either fail with GbcsDecodeError or re-encode to the same bytes."""
    rng = random.Random(1234)
    decoded = 0
    for p in corpus_payloads(rtds_dir, PayloadFamily.GBZ):
        for _ in range(20):
            b = bytearray(p.content)
            for _ in range(rng.randint(1, 3)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            try:
                msg = decode_gbz(bytes(b), alert=p.gs.cra == 3)
            except GbcsDecodeError:
                continue
            decoded += 1
            assert encode_gbz(msg) == bytes(b)
    assert decoded > 1000


# --- payload decryption through encrypted_blocks / decode_decrypted_zcl ------------


def _ka_private(keystore: Path, eui: bytes) -> ec.EllipticCurvePrivateKey:
    key = load_pem_private_key((keystore / f"{eui.hex()}-ka.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _ka_public(keystore: Path, eui: bytes) -> ec.EllipticCurvePublicKey:
    cert = load_pem_x509_certificate((keystore / f"{eui.hex()}-ka.pem").read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def test_rtds_gbz_encrypted_components_decrypt(rtds_dir: Path, rtds_keystore_dir: Path) -> None:
    """The extracted blocks are exact: the GCM tag verifies and the plaintext types fully.

    Keys per gbcs-facts 2.3 (payload encryption): remote party KA x device KA,
    KDF originator = device, type 0x04, counter = supplementary originator
    counter when Other Information carries one (URP), recipient = supplementary
    remote party when present, else the business target; IV = device || IC.
    """
    decrypted = typed = 0
    for p in corpus_payloads(rtds_dir, PayloadFamily.GBZ):
        msg = decode_gbz(p.content, alert=p.gs.cra == 3)
        blocks = encrypted_blocks(msg)
        if not blocks:
            continue
        comps = [c for c in msg.components if isinstance(c, EncryptedComponent)]
        assert [c.block for c in comps] == blocks
        other = p.gs.other_information
        device = p.gs.business_originator
        recipient = other.supplementary_remote_party_id or p.gs.business_target
        counter = p.gs.originator_counter
        if other.supplementary_originator_counter is not None:
            counter = other.supplementary_originator_counter
        z = _ka_private(rtds_keystore_dir, recipient).exchange(
            ec.ECDH(), _ka_public(rtds_keystore_dir, device)
        )
        key = derive_key(z, device, TYPE_PAYLOAD_ENCRYPTION, counter, recipient)
        for comp, block in zip(comps, blocks, strict=True):
            assert block[0] == SC_ENCRYPTED
            plain = gcm_decrypt(key, device + block[1:5], block[5:-12], block[-12:], b"\x31")
            assert plain is not None, p.name
            payload = decode_decrypted_zcl(comp, plain)
            decrypted += 1
            if comp.header.is_global:
                assert not isinstance(payload, RawPayload)
                typed += 1
            else:
                assert payload == RawPayload(plain)
    print(f"\nGBZ encrypted components decrypted: {decrypted} ({typed} typed general commands)")
    assert decrypted >= 34 and typed >= 12


# --- unit tests: GBZ framing ---------------------------------------------------------

# GCS40a command: one Prepayment Credit Adjustment component, last bit set.
GCS40A = bytes.fromhex("0109010107050010010005804A371C00000000005A5A0000")
# GCS46 response: Read Attributes Response, Metering Site ID as octet string.
GCS46 = bytes.fromhex("0109010107020012080001070300410A31303030393939383838")
FUTURE_DATED = bytes.fromhex("0109018F66388188900E006B00000000000003ED07070900")
FDRA = bytes.fromhex("0109018F721C374A800920" + "A1" * 32)
MIIWA = bytes.fromhex("01090181A01C374A800005")
GENERIC = bytes.fromhex("0109008F301C374A80")


def test_plain_component_fields() -> None:
    msg = decode_gbz(GCS46, alert=False)
    (c,) = msg.components
    assert isinstance(c, PlainComponent)
    assert c.cluster_id == cat.CLUSTER_METERING and c.from_datetime is None
    assert c.header == ZclHeader(0x08, 0x00, cat.CMD_READ_ATTRIBUTES_RESPONSE)
    assert c.payload == ReadAttributesResponse(
        (ReadAttributeRecord(0x0307, 0, ZclValue(0x41, b"1000999888")),)
    )
    assert msg.control(0) == cat.GBZ_CTRL_LAST
    j = gbz_to_json(msg)
    rec = j["components"][0]["payload"]["records"][0]  # type: ignore[index]
    assert rec["name"] == "Site ID" and rec["value"] == "31303030393939383838"


def test_cluster_specific_payload_stays_raw() -> None:
    (c,) = decode_gbz(GCS40A, alert=False).components
    assert isinstance(c, PlainComponent)
    assert c.payload == RawPayload(bytes.fromhex("804A371C00000000005A5A0000"))
    zcl = gbz_to_json(decode_gbz(GCS40A, alert=False))["components"][0]["zcl"]  # type: ignore[index]
    assert zcl["command"]["name"] == "Credit Adjustment"


def test_alert_variants() -> None:
    fd = decode_gbz(FUTURE_DATED, alert=True)
    assert fd.components == ()
    assert fd.alert == GbzAlert(
        0x8F66, 0x38818890, FutureDatedAlertBody(0x006B, 1005, 0x0707, 0x09, 0x00)
    )
    fdra = decode_gbz(FDRA, alert=True)
    assert fdra.alert is not None and fdra.alert.body == FirmwareReceiptAlertBody(b"\xa1" * 32)
    mi = decode_gbz(MIIWA, alert=True)
    assert mi.alert is not None and mi.alert.body == IntegrityWarningAlertBody(5)
    gen = decode_gbz(GENERIC, alert=True)
    assert gen == GbzMessage((), GbzAlert(0x8F30, 0x1C374A80))
    for raw in (FUTURE_DATED, FDRA, MIIWA, GENERIC):
        assert encode_gbz(decode_gbz(raw, alert=True)) == raw
    j = gbz_to_json(fd)
    assert j["alert"]["timestamp"] == "2030-01-15T09:00:00Z"  # type: ignore[index]
    assert j["alert"]["body"]["command"]["name"] == "Publish Calendar"  # type: ignore[index]
    assert gbz_to_json(gen)["alert"]["timestamp"] == "2015-01-01T00:00:00Z"  # type: ignore[index]


def test_epoch_is_2000() -> None:
    msg = GbzMessage((), GbzAlert(0x8F30, 0))
    assert gbz_to_json(msg)["alert"]["timestamp"] == "2000-01-01T00:00:00Z"  # type: ignore[index]


def test_components_alert_gcs53_shape() -> None:
    """GCS53 (0x008B): alert header followed by one encrypted component (gbcs-facts 3.2)."""
    comp = EncryptedComponent(
        cat.CLUSTER_METERING, ZclHeader(0x19, 0, 0x06), b"\x31" + bytes(4) + b"ct" + bytes(12)
    )
    msg = GbzMessage((comp,), GbzAlert(0x8F0A, 0x1C374A80))
    raw = encode_gbz(msg)
    assert raw[:9] == bytes.fromhex("0109018F0A1C374A80")
    assert raw[9] == cat.GBZ_CTRL_LAST | cat.GBZ_CTRL_ENCRYPTED
    assert decode_gbz(raw, alert=True) == msg
    assert encrypted_blocks(msg) == [comp.block]
    assert comp.invocation_counter == 0 and comp.ciphertext == b"ct" and comp.tag == bytes(12)


def _err(raw: bytes, alert: bool = False, base: int = 0) -> GbcsDecodeError:
    with pytest.raises(GbcsDecodeError) as ei:
        decode_gbz(raw, alert=alert, base=base)
    return ei.value


def test_errors_name_field_and_absolute_offset() -> None:
    e = _err(b"\x01\x0a\x01", base=1000)
    assert e.field == "gbz.profile_id" and e.offset == 1000
    e = _err(GCS40A[:-1], base=50)
    assert e.field == "gbz.component" and e.offset == 50 + 8  # after control, cluster, length
    e = _err(GCS40A + b"\x00", base=7)
    assert e.field == "gbz.payload" and e.offset == 7 + len(GCS40A)
    e = _err(bytes.fromhex("010900"))
    assert e.field == "gbz.component_count"


def test_last_component_bit_checked() -> None:
    no_last = bytearray(GCS40A)
    no_last[3] = 0x00
    e = _err(bytes(no_last), base=10)
    assert e.field == "gbz.control" and e.offset == 13
    two = bytes.fromhex("010902") + GCS40A[3:] + GCS40A[3:]  # both components marked last
    e = _err(two)
    assert e.field == "gbz.control" and e.offset == 3
    reserved = bytearray(GCS40A)
    reserved[3] = 0x05
    assert _err(bytes(reserved)).field == "gbz.control"


def test_encrypted_component_checks() -> None:
    block = b"\x31" + bytes(4) + b"\xaa" * 3 + bytes(12)
    comp = EncryptedComponent(0x0702, ZclHeader(0x19, 0, 6), block, frame_counter=2)
    raw = encode_gbz(GbzMessage((comp,)))
    assert raw[3] == 0x03 and raw[8:10] == b"\x00\x02"
    assert decode_gbz(raw, alert=False) == GbzMessage((comp,))
    bad_sc = raw.replace(block, b"\x30" + block[1:])
    assert _err(bad_sc).field == "gbz.security_control"
    short = bytes.fromhex("01090103070200090000190006000531000000")  # ciphered length 5
    assert _err(short).field == "gbz.ciphered_length"
    with pytest.raises(GbcsEncodeError):
        encode_gbz(GbzMessage((EncryptedComponent(0x0702, ZclHeader(0x19, 0, 6), b"\x31"),)))


def test_alert_body_checks() -> None:
    bad_len = bytearray(FUTURE_DATED)
    bad_len[9] = 0x0D
    assert _err(bytes(bad_len), alert=True).field == "gbz.future_dated_length"
    long_form = bytes.fromhex("0109018F721C374A80098120" + "A1" * 32)
    assert _err(long_form, alert=True).field == "gbz.hash_length"
    two = bytearray(MIIWA)
    two[2] = 2
    assert _err(bytes(two), alert=True).field == "gbz.component_count"
    assert _err(GENERIC + b"\x00", alert=True).field == "gbz.alert"


def test_encode_rejects_inconsistent_models() -> None:
    plain = decode_gbz(GCS40A, alert=False).components[0]
    with pytest.raises(GbcsEncodeError):
        encode_gbz(GbzMessage(()))
    with pytest.raises(GbcsEncodeError):  # body together with components
        encode_gbz(GbzMessage((plain,), GbzAlert(0x81A0, 0, IntegrityWarningAlertBody(1))))
    with pytest.raises(GbcsEncodeError):  # body type does not match the alert code
        encode_gbz(GbzMessage((), GbzAlert(0x81A0, 0, FirmwareReceiptAlertBody(b"x"))))
    with pytest.raises(GbcsEncodeError):  # code with a body shape but components given
        encode_gbz(GbzMessage((plain,), GbzAlert(0x8F66, 0)))
    with pytest.raises(GbcsEncodeError):
        encode_gbz(GbzMessage((PlainComponent(0x10000, ZclHeader(1, 0, 5), RawPayload(b"")),)))
    with pytest.raises(GbcsEncodeError):  # general Read Attributes with a raw payload
        encode_gbz(GbzMessage((PlainComponent(0x0702, ZclHeader(0, 0, 0), RawPayload(b"")),)))
    big = PlainComponent(0x0702, ZclHeader(1, 0, 0), RawPayload(bytes(0x10000)))
    with pytest.raises(GbcsEncodeError):
        encode_gbz(GbzMessage((big,)))


def test_from_datetime_json() -> None:
    def fdt(v: int) -> object:
        c = PlainComponent(0x0705, ZclHeader(1, 0, 9), RawPayload(b"\x00" * 4), v)
        return gbz_to_json(GbzMessage((c,)))["components"][0]["from_datetime"]  # type: ignore[index]

    assert fdt(0) == "immediate"
    assert fdt(0xFFFFFFFF) == "never"
    assert fdt(0x38818890) == "2030-01-15T09:00:00Z"


# --- unit tests: ZCL ------------------------------------------------------------------


def _frame(fc: int, cmd: int, payload: ZclPayload) -> ZclFrame:
    return ZclFrame(ZclHeader(fc, 7, cmd), payload)


def test_zcl_values_little_endian() -> None:
    cases = [
        (ZclValue(0x25, 0x0102030405), "250504030201 00"),
        (ZclValue(0x2B, -2), "2B FEFFFFFF"),
        (ZclValue(0x28, -128), "28 80"),
        (ZclValue(0xE2, 0x1C374A80), "E2 804A371C"),
        (ZclValue(0x10, True), "10 01"),
        (ZclValue(0x10, None), "10 FF"),
        (ZclValue(0x42, b"abc"), "42 03616263"),
        (ZclValue(0x41, None), "41 FF"),
        (ZclValue(0x43, b"\x01\x02"), "43 0200 0102"),
        (ZclValue(0x44, None), "44 FFFF"),
        (ZclValue(0x48, (ZclValue(0x21, 1), ZclValue(0x21, 0x0203)), 0x21), "48 21 0200 0100 0302"),
        (ZclValue(0x4C, (ZclValue(0x20, 5), ZclValue(0x41, b"\x09"))), "4C 0200 2005 410109"),
        (ZclValue(0x4C, None), "4C FFFF"),
        (ZclValue(0xE0, b"\x01\x02\x03\x04"), "E0 01020304"),
        (ZclValue(0x00, None), "00"),
    ]
    for value, hexstr in cases:
        raw = bytes.fromhex(hexstr.replace(" ", ""))
        assert encode_typed_value(value) == raw, value
        r = Reader(raw)
        assert decode_value(r, r.u8("t")) == value
        assert r.at_end()


def test_zcl_value_errors() -> None:
    for hexstr, field in [
        ("10 02", "zcl.bool"),
        ("77", "zcl.data_type"),
        ("41 05 0102", "zcl.string"),
        ("48 00 0100", "zcl.element_type"),
        ("23 010203", "zcl.value"),
    ]:
        r = Reader(bytes.fromhex(hexstr.replace(" ", "")), base=100)
        with pytest.raises(GbcsDecodeError) as ei:
            decode_value(r, r.u8("t"))
        assert ei.value.field == field and ei.value.offset >= 100
    nested = b"\x4c\x01\x00" * 20 + b"\x20\x00"
    r = Reader(nested)
    with pytest.raises(GbcsDecodeError):
        decode_value(r, r.u8("t"))
    for bad in [
        ZclValue(0x20, 256),
        ZclValue(0x28, 128),
        ZclValue(0x10, 1),
        ZclValue(0x41, b"x" * 255),
        ZclValue(0xE0, b"\x00"),
        ZclValue(0x48, (ZclValue(0x20, 1),), 0x21),
        ZclValue(0x20, 1, 0x20),
        ZclValue(0x99, 0),
    ]:
        with pytest.raises(GbcsEncodeError):
            encode_typed_value(bad)


def test_zcl_general_commands_wire_format() -> None:
    cases: list[tuple[ZclFrame, str]] = [
        (_frame(0x00, 0x00, ReadAttributes((0x0206, 0x0000))), "00 07 00 0602 0000"),
        (
            _frame(0x08, 0x01, ReadAttributesResponse((ReadAttributeRecord(0x0001, 0x86),))),
            "08 07 01 0100 86",
        ),
        (
            _frame(0x00, 0x02, WriteAttributes((AttributeValue(0x0011, ZclValue(0x23, 9)),))),
            "00 07 02 1100 23 09000000",
        ),
        (_frame(0x08, 0x04, WriteAttributesResponse((AttributeStatus(0),))), "08 07 04 00"),
        (
            _frame(0x08, 0x04, WriteAttributesResponse((AttributeStatus(0x88, 0x0011),))),
            "08 07 04 88 1100",
        ),
        (
            _frame(
                0x00,
                0x06,
                ConfigureReporting(
                    (
                        ReportingConfiguration(0, 0x0000, 0x25, 1, 60, ZclValue(0x25, 10)),
                        ReportingConfiguration(0, 0x0014, 0x30, 0, 0xFFFF),
                        ReportingConfiguration(1, 0x0001, timeout=30),
                    )
                ),
            ),
            "00 07 06 00 0000 25 0100 3C00 0A0000000000 00 1400 30 0000 FFFF 01 0100 1E00",
        ),
        (_frame(0x08, 0x07, ConfigureReportingResponse((ReportingStatus(0),))), "08 07 07 00"),
        (
            _frame(0x08, 0x07, ConfigureReportingResponse((ReportingStatus(0x8C, 0, 0x0001),))),
            "08 07 07 8C 00 0100",
        ),
        (
            _frame(0x00, 0x08, ReadReportingConfiguration((AttributeSelector(0, 0x0000),))),
            "00 07 08 00 0000",
        ),
        (
            _frame(
                0x08,
                0x09,
                ReadReportingConfigurationResponse(
                    (
                        ReportingConfigurationStatus(0, ReportingConfiguration(1, 2, timeout=5)),
                        ReportingConfigurationStatus(0x86, ReportingConfiguration(0, 3)),
                    )
                ),
            ),
            "08 07 09 00 01 0200 0500 86 00 0300",
        ),
        (
            _frame(0x18, 0x0A, ReportAttributes((AttributeValue(0, ZclValue(0x25, 1)),))),
            "18 07 0A 0000 25 010000000000",
        ),
        (_frame(0x08, 0x0B, DefaultResponse(0x05, 0xC0)), "08 07 0B 05 C0"),
        (_frame(0x00, 0x0C, DiscoverAttributes(0x0000, 10)), "00 07 0C 0000 0A"),
        (
            _frame(0x08, 0x0D, DiscoverAttributesResponse(True, (AttributeInfo(0x0206, 0x41),))),
            "08 07 0D 01 0602 41",
        ),
        (_frame(0x01, 0x07, RawPayload(b"\x01\x02")), "01 07 07 0102"),
        (ZclFrame(ZclHeader(0x04, 1, 0x00, 0x1234), ReadAttributes((1,))), "04 3412 01 00 0100"),
    ]
    for frame, hexstr in cases:
        raw = bytes.fromhex(hexstr.replace(" ", ""))
        assert encode_zcl_frame(frame) == raw, frame
        assert decode_zcl_frame(raw) == frame, hexstr


def test_zcl_payload_errors() -> None:
    for hexstr, field in [
        ("00 07 00 0602 00", "zcl.attribute_id"),
        ("08 07 0B 05", "zcl.status"),
        ("08 07 0B 05 00 00", "zcl.default_response"),
        ("08 07 04 00 00", "zcl.attribute_id"),
        ("00 07 06 02 0000", "zcl.direction"),
        ("08 07 0D 02", "zcl.discovery_complete"),
        ("04 34", "zcl.manufacturer_code"),
    ]:
        with pytest.raises(GbcsDecodeError) as ei:
            decode_zcl_frame(bytes.fromhex(hexstr.replace(" ", "")), base=20)
        assert ei.value.field == field, hexstr
        assert ei.value.offset >= 20
    with pytest.raises(GbcsEncodeError):  # lone status must be alone
        encode_zcl_frame(
            _frame(0x08, 0x04, WriteAttributesResponse((AttributeStatus(0), AttributeStatus(0))))
        )
    with pytest.raises(GbcsEncodeError):  # analog type without reportable change
        encode_zcl_frame(
            _frame(0x00, 0x06, ConfigureReporting((ReportingConfiguration(0, 0, 0x21, 1, 2),)))
        )
    with pytest.raises(GbcsEncodeError):  # manufacturer code without the frame control bit
        encode_zcl_frame(ZclFrame(ZclHeader(0x00, 0, 0, 0x1234), ReadAttributes(())))


def test_decode_decrypted_zcl_types_general_commands() -> None:
    comp = EncryptedComponent(0x0702, ZclHeader(0x18, 0, 0x01), b"\x31" + bytes(16))
    plain = bytes.fromhex("0000 00 25 010000000000".replace(" ", ""))
    assert decode_decrypted_zcl(comp, plain) == ReadAttributesResponse(
        (ReadAttributeRecord(0, 0, ZclValue(0x25, 1)),)
    )
    with pytest.raises(GbcsDecodeError):
        decode_decrypted_zcl(comp, plain[:-1])
    raw_comp = EncryptedComponent(0x0702, ZclHeader(0x19, 0, 0x06), b"\x31" + bytes(16))
    assert decode_decrypted_zcl(raw_comp, b"\x01\x02") == RawPayload(b"\x01\x02")


def test_catalogue_consistency() -> None:
    for tid, t in cat.ZCL_TYPES.items():
        assert 0 <= tid <= 0xFF and t.size >= 0
        if t.kind in (cat.KIND_UINT, cat.KIND_INT, cat.KIND_FIXED_BYTES):
            assert t.size > 0, t
    assert cat.ZCL_TYPES[0xE2].name == "UTC" and cat.ZCL_TYPES[0x25].size == 6
    assert (
        cat.command_name(0x0705, cat.ZCL_FRAME_TYPE_CLUSTER, False, 0x07) == "Get Prepay Snapshot"
    )
    assert cat.command_name(0x0702, cat.ZCL_FRAME_TYPE_CLUSTER, True, 0x06) == "Publish Snapshot"
    assert cat.command_name(0x0702, cat.ZCL_FRAME_TYPE_GLOBAL, True, 0x0B) == "Default Response"
    assert cat.attribute_name(0x0702, 0x0206) == "Current Meter ID"
    assert set(cat.GBZ_ALERT_BODY_BY_CODE.values()) == {
        cat.ALERT_BODY_FUTURE_DATED,
        cat.ALERT_BODY_FIRMWARE_RECEIPT,
        cat.ALERT_BODY_INTEGRITY_WARNING,
    }


def test_rtds_names_resolve(rtds_dir: Path) -> None:
    """Every cluster, command and attribute id in the corpus has a catalogue name."""
    missing = set()
    for p in corpus_payloads(rtds_dir, PayloadFamily.GBZ):
        j = gbz_to_json(decode_gbz(p.content, alert=p.gs.cra == 3))
        for comp in j["components"]:  # type: ignore[attr-defined]
            if comp["cluster"]["name"] is None:
                missing.add(("cluster", comp["cluster"]["id"]))
            if comp["zcl"]["command"]["name"] is None:
                missing.add(("command", comp["cluster"]["id"], comp["zcl"]["command"]["id"]))
            for rec in comp.get("payload", {}).get("records", []) + comp.get("payload", {}).get(
                "attributes", []
            ):
                if rec.get("name") is None:
                    missing.add(("attribute", comp["cluster"]["id"], rec["id"]))
    assert not missing, sorted(missing)


# --- property tests ---------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

_SCALAR_TYPES = sorted(
    tid for tid, t in cat.ZCL_TYPES.items() if t.kind not in (cat.KIND_ARRAY, cat.KIND_STRUCT)
)
_ELEMENT_TYPES = [tid for tid in _SCALAR_TYPES if cat.ZCL_TYPES[tid].kind != cat.KIND_NONE]


def scalar_of(tid: int) -> st.SearchStrategy[object]:
    t = cat.ZCL_TYPES[tid]
    if t.kind == cat.KIND_UINT:
        return st.integers(0, (1 << (8 * t.size)) - 1)
    if t.kind == cat.KIND_INT:
        half = 1 << (8 * t.size - 1)
        return st.integers(-half, half - 1)
    if t.kind == cat.KIND_BOOL:
        return st.sampled_from([True, False, None])
    if t.kind == cat.KIND_FIXED_BYTES:
        return st.binary(min_size=t.size, max_size=t.size)
    if t.kind in (cat.KIND_STRING, cat.KIND_LONG_STRING):
        return st.none() | st.binary(max_size=20)
    return st.none()


scalar_values = st.sampled_from(_SCALAR_TYPES).flatmap(
    lambda tid: scalar_of(tid).map(lambda v: ZclValue(tid, v))  # type: ignore[arg-type]
)
array_values = st.tuples(
    st.sampled_from([0x48, 0x50, 0x51]), st.sampled_from(_ELEMENT_TYPES)
).flatmap(
    lambda p: (
        st.none().map(lambda _: ZclValue(p[0], None, p[1]))
        | st.lists(scalar_of(p[1]), max_size=4).map(
            lambda xs: ZclValue(p[0], tuple(ZclValue(p[1], x) for x in xs), p[1])  # type: ignore[arg-type]
        )
    )
)
zcl_values = st.recursive(
    scalar_values | array_values,
    lambda children: (
        st.none().map(lambda _: ZclValue(0x4C, None))
        | st.lists(children, max_size=4).map(lambda xs: ZclValue(0x4C, tuple(xs)))
    ),
    max_leaves=8,
)


def reporting_config(direction: int) -> st.SearchStrategy[ReportingConfiguration]:
    if direction == 1:
        return st.builds(ReportingConfiguration, st.just(1), u16, timeout=u16)

    def build(tid: int) -> st.SearchStrategy[ReportingConfiguration]:
        change = (
            scalar_of(tid).map(lambda v: ZclValue(tid, v))  # type: ignore[arg-type]
            if cat.ZCL_TYPES[tid].analog
            else st.none()
        )
        return st.builds(ReportingConfiguration, st.just(0), u16, st.just(tid), u16, u16, change)

    return st.sampled_from(sorted(cat.ZCL_TYPES)).flatmap(build)


any_reporting = st.sampled_from([0, 1]).flatmap(reporting_config)


def lone_or_records(one: st.SearchStrategy[object], lone: object) -> st.SearchStrategy[tuple]:
    return st.just((lone,)) | st.lists(one, max_size=4).map(tuple)


GENERAL_PAYLOADS: dict[int, st.SearchStrategy[ZclPayload]] = {
    0x00: st.lists(u16, max_size=6).map(lambda x: ReadAttributes(tuple(x))),
    0x01: st.lists(
        st.builds(ReadAttributeRecord, u16, st.just(0), zcl_values)
        | st.builds(ReadAttributeRecord, u16, st.integers(1, 0xFF))
    ).map(lambda x: ReadAttributesResponse(tuple(x))),
    0x02: st.lists(st.builds(AttributeValue, u16, zcl_values), max_size=4).map(
        lambda x: WriteAttributes(tuple(x))
    ),
    0x04: st.one_of(
        u8.map(lambda s: WriteAttributesResponse((AttributeStatus(s),))),
        st.lists(st.builds(AttributeStatus, u8, u16), max_size=4).map(
            lambda x: WriteAttributesResponse(tuple(x))
        ),
    ),
    0x06: st.lists(any_reporting, max_size=3).map(lambda x: ConfigureReporting(tuple(x))),
    0x07: st.one_of(
        u8.map(lambda s: ConfigureReportingResponse((ReportingStatus(s),))),
        st.lists(st.builds(ReportingStatus, u8, st.sampled_from([0, 1]), u16), max_size=4).map(
            lambda x: ConfigureReportingResponse(tuple(x))
        ),
    ),
    0x08: st.lists(st.builds(AttributeSelector, st.sampled_from([0, 1]), u16), max_size=4).map(
        lambda x: ReadReportingConfiguration(tuple(x))
    ),
    0x09: st.lists(
        st.builds(ReportingConfigurationStatus, st.just(0), any_reporting)
        | st.builds(
            lambda s, d, a: ReportingConfigurationStatus(s, ReportingConfiguration(d, a)),
            st.integers(1, 0xFF),
            st.sampled_from([0, 1]),
            u16,
        ),
        max_size=3,
    ).map(lambda x: ReadReportingConfigurationResponse(tuple(x))),
    0x0A: st.lists(st.builds(AttributeValue, u16, zcl_values), max_size=4).map(
        lambda x: ReportAttributes(tuple(x))
    ),
    0x0B: st.builds(DefaultResponse, u8, u8),
    0x0C: st.builds(DiscoverAttributes, u16, u8),
    0x0D: st.builds(
        DiscoverAttributesResponse,
        st.booleans(),
        st.lists(st.builds(AttributeInfo, u16, u8), max_size=4).map(tuple),
    ),
}
GENERAL_PAYLOADS[0x03] = GENERAL_PAYLOADS[0x05] = GENERAL_PAYLOADS[0x02]


@st.composite
def zcl_frames(draw: st.DrawFn) -> ZclFrame:
    fc = draw(u8)
    mc = draw(u16) if fc & cat.ZCL_FC_MANUFACTURER_SPECIFIC else None
    cmd = draw(u8)
    header = ZclHeader(fc, draw(u8), cmd, mc)
    if fc & cat.ZCL_FC_FRAME_TYPE_MASK == 0 and cmd in GENERAL_PAYLOADS:
        payload = draw(GENERAL_PAYLOADS[cmd])
    else:
        payload = RawPayload(draw(st.binary(max_size=40)))
    return ZclFrame(header, payload)


@st.composite
def components(draw: st.DrawFn) -> GbzComponent:
    frame = draw(zcl_frames())
    fdt = draw(st.none() | u32)
    cluster = draw(st.sampled_from(sorted(cat.CLUSTERS)) | u16)
    if draw(st.booleans()):
        block = bytes((SC_ENCRYPTED,)) + draw(st.binary(min_size=16, max_size=60))
        return EncryptedComponent(cluster, frame.header, block, draw(u8), draw(u8), fdt)
    return PlainComponent(cluster, frame.header, frame.payload, fdt)


_BODY_CODES = sorted(cat.GBZ_ALERT_BODY_BY_CODE)
alert_bodies = st.one_of(
    st.builds(
        lambda b: GbzAlert(0x8F66, 0, b),
        st.builds(FutureDatedAlertBody, u16, st.integers(0, 2**64 - 1), u16, u8, u8),
    ),
    st.builds(lambda b: GbzAlert(0x8F72, 0, b), st.builds(FirmwareReceiptAlertBody, st.binary())),
    st.builds(lambda b: GbzAlert(0x81A0, 0, b), st.builds(IntegrityWarningAlertBody, u16)),
)


@st.composite
def messages(draw: st.DrawFn) -> tuple[GbzMessage, bool]:
    shape = draw(st.sampled_from(["plain", "generic", "body", "components"]))
    if shape == "plain":
        return GbzMessage(tuple(draw(st.lists(components(), min_size=1, max_size=4)))), False
    ts = draw(u32)
    if shape == "generic":
        return GbzMessage((), GbzAlert(draw(u16), ts)), True
    if shape == "body":
        a = draw(alert_bodies)
        return GbzMessage((), GbzAlert(a.code, ts, a.body)), True
    code = draw(u16.filter(lambda c: c not in cat.GBZ_ALERT_BODY_BY_CODE))
    comps = tuple(draw(st.lists(components(), min_size=1, max_size=3)))
    return GbzMessage(comps, GbzAlert(code, ts)), True


#: Examples per property; raise with GBHIL_HYPOTHESIS_EXAMPLES for a longer soak.
PROPS = settings(
    max_examples=int(os.environ.get("GBHIL_HYPOTHESIS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPS
@given(messages())
def test_property_typed_round_trip(case: tuple[GbzMessage, bool]) -> None:
    msg, alert = case
    raw = encode_gbz(msg)
    assert decode_gbz(raw, alert=alert) == msg
    gbz_to_json(msg)


@PROPS
@given(zcl_frames())
def test_property_zcl_frame_round_trip(frame: ZclFrame) -> None:
    raw = encode_zcl_frame(frame)
    assert decode_zcl_frame(raw) == frame


@PROPS
@given(messages(), st.data())
def test_property_truncation_and_extension_fail(
    case: tuple[GbzMessage, bool], data: st.DataObject
) -> None:
    msg, alert = case
    raw = encode_gbz(msg)
    n = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(GbcsDecodeError):
        decode_gbz(raw[:n], alert=alert)
    with pytest.raises(GbcsDecodeError):
        decode_gbz(raw + data.draw(st.binary(min_size=1, max_size=4)), alert=alert)


def _decode_or_codec_error(raw: bytes, alert: bool) -> None:
    try:
        msg = decode_gbz(raw, alert=alert, base=3)
    except GbcsDecodeError as exc:
        assert exc.offset >= 3
        return
    assert encode_gbz(msg) == raw  # anything accepted is canonical


@PROPS
@given(st.binary(max_size=80), st.booleans())
def test_property_arbitrary_bytes(raw: bytes, alert: bool) -> None:
    _decode_or_codec_error(raw, alert)


@PROPS
@given(st.booleans(), u8, st.binary(max_size=120))
def test_property_arbitrary_after_valid_header(alert: bool, count: int, rest: bytes) -> None:
    _decode_or_codec_error(b"\x01\x09" + bytes((count % 4,)) + rest, alert)


@PROPS
@given(messages(), st.data())
def test_property_mutated_messages(case: tuple[GbzMessage, bool], data: st.DataObject) -> None:
    msg, alert = case
    raw = bytearray(encode_gbz(msg))
    for _ in range(data.draw(st.integers(1, 3))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(u8)
    _decode_or_codec_error(bytes(raw), alert)


@PROPS
@given(st.binary(max_size=60))
def test_property_arbitrary_zcl(raw: bytes) -> None:
    try:
        frame = decode_zcl_frame(raw)
    except GbcsDecodeError:
        return
    assert encode_zcl_frame(frame) == raw
