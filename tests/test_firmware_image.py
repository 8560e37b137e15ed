"""gbhil.firmware: the GBCS OTA Upgrade Image, its manifest and the CPL entry it yields."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbhil.dcc.cpl import Cpl, CplEntry
from gbhil.dcc.inventory import DeviceType
from gbhil.firmware import (
    FirmwareImageError,
    FirmwareManifest,
    ImageSpec,
    build_image,
    decode_image,
    image_hash,
    sign_image,
    verify_image,
)
from gbhil.firmware.image import file_version_from_text, firmware_version_text

PROPS = settings(
    max_examples=int(os.environ.get("GBHIL_HYPOTHESIS_EXAMPLES", "200")),
    suppress_health_check=[HealthCheck.too_slow],
    deadline=None,
)
SUPPLIER = ec.derive_private_key(0x5EED, ec.SECP256R1())
OTHER = ec.derive_private_key(0xBAD, ec.SECP256R1())
SPEC = ImageSpec(0x121D, 0x0000, 0x01000200, b"gbhil test", (0x1111, 0x1212))
PAYLOAD = bytes(range(256)) * 3
#: The DUIS templates holding OTA images (read from ../shared at run time).
TEMPLATE_11_1 = "11.1_UPDATE_FIRMWARE_REQUEST_DUIS.XML"
TEMPLATE_11_4 = "11.4_UPDATE_PPMID_FIRMWARE_REQUEST_DUIS.XML"
RTDS_SUPPLIER_DS = "rtds-keystore/90b3d51f30010000-ds.pem"

specs = st.builds(
    ImageSpec,
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=32).map(
        str.encode),
    st.one_of(st.none(), st.tuples(st.integers(0, 0x7FFF), st.integers(0x8000, 0xFFFF))),
)


def _template_image(conformance_dir: Path, name: str) -> bytes:
    path = conformance_dir / "duis" / "templates" / name
    if not path.exists():
        pytest.skip(f"DUIS template {path} not found")
    text = path.read_text(encoding="utf-8")
    found = re.search(r"<sr:FirmwareImage>(.*?)</sr:FirmwareImage>", text, re.S)
    assert found is not None
    return base64.b64decode("".join(found.group(1).split()))


# --- conformance: the bytes of the DUIS templates -------------------------------------------


def test_the_11_1_template_image_verifies_with_the_rtds_supplier_ds_key(
    conformance_dir: Path,
) -> None:
    """The signature is the authorising Supplier's DS signature over the Manufacturer Image."""
    data = _template_image(conformance_dir, TEMPLATE_11_1)
    cert = x509.load_pem_x509_certificate((conformance_dir / RTDS_SUPPLIER_DS).read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)

    result = verify_image(data, key=key)

    assert result.ok, result.problems
    h = result.file.header
    assert (h.manufacturer_code, h.image_type, h.total_image_size) == (0x121D, 0, len(data))
    assert len(result.file.manufacturer_image) == 235


def test_the_11_4_template_image_is_unsigned(conformance_dir: Path) -> None:
    data = _template_image(conformance_dir, TEMPLATE_11_4)

    file = decode_image(data, signed=False)

    assert file.signature is None and len(file.manufacturer_image) == 235
    assert file.header.image_type == 0x0084


def test_rebuilding_the_template_from_its_fields_gives_its_bytes_but_the_signature(
    conformance_dir: Path,
) -> None:
    data = _template_image(conformance_dir, TEMPLATE_11_1)
    file = decode_image(data, signed=True)
    h = file.header
    spec = ImageSpec(h.manufacturer_code, h.image_type, h.file_version, h.header_string,
                     (h.min_hardware_version or 0, h.max_hardware_version or 0))

    rebuilt = build_image(file.manufacturer_image, spec, signer=SUPPLIER)

    assert rebuilt[:-64] == data[:-64]  # ECDSA signatures differ run to run


# --- build / sign / verify -----------------------------------------------------------------


def test_a_signed_image_verifies_and_its_hash_is_the_manufacturer_image_hash() -> None:
    data = build_image(PAYLOAD, SPEC, signer=SUPPLIER)

    result = verify_image(data, key=SUPPLIER.public_key(), expected=SPEC,
                          expected_hash=image_hash(PAYLOAD))

    assert result.ok, result.problems
    assert result.firmware_version == "01000200"
    assert len(data) == 60 + len(PAYLOAD) + 66


def test_another_suppliers_key_does_not_verify() -> None:
    data = build_image(PAYLOAD, SPEC, signer=SUPPLIER)

    result = verify_image(data, key=OTHER.public_key())

    assert result.problems == ("signature does not verify over the manufacturer image",)


def test_signing_an_unsigned_image_adds_the_trailer() -> None:
    unsigned = build_image(PAYLOAD, SPEC)

    signed = sign_image(unsigned, SUPPLIER)

    assert signed[:52] == unsigned[:52] and signed[56:60 + len(PAYLOAD)] == unsigned[56:]
    assert verify_image(signed, key=SUPPLIER.public_key(), expected=SPEC).ok
    with pytest.raises(FirmwareImageError, match="already ends in a signature trailer"):
        sign_image(signed, SUPPLIER)  # already signed: its trailer is not an image


def test_a_header_changed_after_signing_is_caught_against_the_manifest() -> None:
    """The signature covers the Manufacturer Image only; the header is checked by value."""
    data = bytearray(build_image(PAYLOAD, SPEC, signer=SUPPLIER))
    data[14] ^= 0x01  # file version

    result = verify_image(bytes(data), key=SUPPLIER.public_key(), expected=SPEC)

    assert [p.split(" ")[0:2] for p in result.problems] == [["file", "version"]]


def test_an_empty_manufacturer_image_is_refused() -> None:
    with pytest.raises(FirmwareImageError, match="must not be empty"):
        build_image(b"", SPEC)


def test_bad_spec_values_are_refused() -> None:
    with pytest.raises(FirmwareImageError, match="printable ASCII"):
        ImageSpec(0x121D, 0, 1, b"\x00bad")
    with pytest.raises(FirmwareImageError, match="at most 32"):
        ImageSpec(0x121D, 0, 1, b"x" * 33)
    with pytest.raises(FirmwareImageError, match="file version"):
        ImageSpec(0x121D, 0, 1 << 32)
    with pytest.raises(FirmwareImageError, match="hardware versions"):
        ImageSpec(0x121D, 0, 1, b"", (2, 1))


def test_a_non_p256_key_is_refused() -> None:
    with pytest.raises(FirmwareImageError, match="P-256"):
        build_image(PAYLOAD, SPEC, signer=ec.generate_private_key(ec.SECP384R1()))


def test_the_size_limit_is_checked_before_parsing() -> None:
    data = build_image(PAYLOAD, SPEC, signer=SUPPLIER)
    with pytest.raises(FirmwareImageError, match="more than 100"):
        decode_image(data, signed=True, max_octets=100)


def test_a_nonzero_trailer_flag_is_refused() -> None:
    data = bytearray(build_image(PAYLOAD, SPEC, signer=SUPPLIER))
    data[-66] = 0x01
    with pytest.raises(FirmwareImageError, match="trailer flag at byte"):
        decode_image(bytes(data), signed=True)


def test_firmware_version_text_round_trips() -> None:
    assert firmware_version_text(0x0100ABCD) == "0100ABCD"
    assert file_version_from_text("0100abcd") == 0x0100ABCD
    with pytest.raises(FirmwareImageError, match="8 hex digits"):
        file_version_from_text("1.0.0")


# --- manifest and CPL ------------------------------------------------------------------------


def _manifest(data: bytes) -> FirmwareManifest:
    return FirmwareManifest.for_image(
        decode_image(data, signed=True), len(data), device_type=DeviceType.ESME,
        manufacturer="gbhil", model="GBHIL-ESME", hardware_version="1.0",
        gbcs_versions=("4.0",), technical_specifications=("SMETS2 v5.0",))


def test_the_manifest_round_trips_and_yields_the_cpl_entry() -> None:
    data = build_image(PAYLOAD, SPEC, signer=SUPPLIER)
    manifest = _manifest(data)

    again = FirmwareManifest.loads(manifest.dumps())
    entry = again.cpl_entry()
    cpl = Cpl(now=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    listed = cpl.add(entry)

    assert again == manifest
    assert isinstance(entry, CplEntry)
    assert listed.firmware_version == "01000200"
    assert cpl.hash_matches(manifest.device_model, "01000200", image_hash(PAYLOAD))


@pytest.mark.parametrize(("change", "message"), [
    ({"signed": "yes"}, "signed must be"),
    ({"image_hash": "00"}, "not 32"),
    ({"firmware_version": "01000201"}, "is not file_version"),
    ({"extra": 1}, "unknown keys"),
    ({"format": 2}, "format 2"),
    ({"file_version": True}, "file_version must be"),
])
def test_a_bad_manifest_is_refused_clearly(change: dict[str, object], message: str) -> None:
    good = _manifest(build_image(PAYLOAD, SPEC, signer=SUPPLIER)).to_json()
    with pytest.raises(FirmwareImageError, match=message):
        FirmwareManifest.from_json({**good, **change})


def test_a_manifest_that_is_not_json_is_refused() -> None:
    with pytest.raises(FirmwareImageError, match="not JSON"):
        FirmwareManifest.loads("{")
    assert json.loads(_manifest(build_image(PAYLOAD, SPEC, signer=SUPPLIER)).dumps())


# --- properties -------------------------------------------------------------------------------


@PROPS
@given(payload=st.binary(min_size=1, max_size=600), spec=specs, signed=st.booleans())
def test_build_then_decode_round_trips(payload: bytes, spec: ImageSpec, signed: bool) -> None:
    data = build_image(payload, spec, signer=SUPPLIER if signed else None)

    file = decode_image(data, signed=signed)
    result = verify_image(data, key=SUPPLIER.public_key(), signed=signed, expected=spec,
                          expected_hash=image_hash(payload))

    assert file.manufacturer_image == payload
    assert file.encode() == data
    assert result.ok, result.problems


_BASE_IMAGE = build_image(PAYLOAD[:200], SPEC, signer=SUPPLIER)


@PROPS
@given(st.data())
def test_mutated_images_never_crash_and_never_verify(data: st.DataObject) -> None:
    """Fuzz: flip, insert, delete or truncate; the decoder raises FirmwareImageError or the
    verification (signature, hash, header vs the manifest) reports a problem."""
    image = bytearray(_BASE_IMAGE)
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    at = data.draw(st.integers(0, len(image) - 1))
    if kind == "flip":
        image[at] ^= data.draw(st.integers(1, 255))
    elif kind == "insert":
        image[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        del image[at:at + data.draw(st.integers(1, 8))]
    else:
        del image[at:]
    try:
        result = verify_image(bytes(image), key=SUPPLIER.public_key(), expected=SPEC,
                              expected_hash=image_hash(PAYLOAD[:200]))
    except FirmwareImageError:
        return
    assert not result.ok
