"""The GBCS OTA Upgrade Image: build, sign, strictly decode and verify.

Byte layout (little-endian header fields), and what fixed each field:

=====================  ========  ============================================================
field                  octets    source
=====================  ========  ============================================================
file identifier        4         0x0BEEF11E: Zigbee OTA; seen in both DUIS 11.1/11.4 template
                                 images (gbcs-facts 6.1) [confirmed on bytes]
header version         2         0x0100 [templates]
header length          2         56 + optional fields; 60 in the templates [templates]
field control          2         bit 0 credential version, bit 1 device-specific, bit 2
                                 hardware versions (Zigbee OTA); templates use 0x0004
manufacturer code      2         Zigbee manufacturer code (0x121D in the templates)
image type             2         manufacturer-defined (0x0000 ESME, 0x0084 PPMID template)
file version           4         uint32; gbhil writes DUIS ``FirmwareVersion`` as its 8 hex
                                 digits, most significant first **[assumption]** (the 11.1
                                 template pairs file version 0xACDCACDC with FirmwareVersion
                                 00000000: the template does not tie the two)
stack version          2         0x0002 Zigbee PRO [templates]
header string          32        ASCII, zero padded [templates]
total image size       4         the whole file [templates: 361 / 295]
optional fields        1/8/4     per field control; hardware min/max in the templates
Manufacturer Image     n         opaque [templates: 235 octets]
trailer flag           1         0x00 in the template; "force replace" for Comms Hubs per
                                 one public decoder **[meaning unconfirmed]**; gbhil accepts
                                 only 0x00 **[assumption]**
signature length       1         0x40 [template]
signature              64        ECDSA P-256/SHA-256 r||s over the Manufacturer Image
                                 **only**, by the authorising Supplier's Digital Signing key:
                                 the 11.1 template verifies with the RTDS supplier
                                 ``90B3D51F30010000-ds`` certificate [confirmed on bytes]
=====================  ========  ============================================================

The SR 11.4 (PPMID) image has no trailer [template]. The Manufacturer Image Hash that CS06,
the FDRA alerts and the CPL carry is SHA-256 of the Manufacturer Image (gbcs-facts 6.1).

The signature covers only the Manufacturer Image, so a verified signature says nothing
about the header: :func:`verify_image` also compares every header field with what the
builder recorded (a :class:`~gbhil.firmware.manifest.FirmwareManifest`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.gbcs.security import sign_raw, verify_raw
from gbhil.han.ota import (
    GBCS_SIGNATURE_LEN,
    GBCS_TRAILER_LEN,
    ZIGBEE_STACK_PRO,
    OtaError,
    OtaFile,
    OtaHeader,
    build_ota_file,
    parse_ota_file,
)

#: DUIS ``FirmwareImage``: base64Binary maxLength 10 240 000 (decoded octets, duis-facts 1.6).
MAX_IMAGE_OCTETS: Final = 10_240_000
#: The only trailer flag gbhil builds and accepts (the template's value).
TRAILER_FLAG: Final = 0x00
#: DUIS ``FirmwareVersion`` is 1-8 characters; gbhil uses the file version's 8 hex digits.
FIRMWARE_VERSION_DIGITS: Final = 8
HEADER_STRING_OCTETS: Final = 32


class FirmwareImageError(ValueError):
    """An image that cannot be built, decoded or verified; says which field and why."""


def firmware_version_text(file_version: int) -> str:
    """The DUIS ``FirmwareVersion`` gbhil pairs with an OTA file version (8 hex digits)."""
    if not 0 <= file_version <= 0xFFFFFFFF:
        raise FirmwareImageError(f"file version {file_version!r} is not a uint32")
    return f"{file_version:0{FIRMWARE_VERSION_DIGITS}X}"


def file_version_from_text(version: str) -> int:
    """Inverse of :func:`firmware_version_text` (``"01000102"`` -> 0x01000102)."""
    if len(version) != FIRMWARE_VERSION_DIGITS:
        raise FirmwareImageError(f"firmware version {version!r}: gbhil expects 8 hex digits")
    try:
        return int(version, 16)
    except ValueError:
        raise FirmwareImageError(f"firmware version {version!r} is not hexadecimal") from None


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """The OTA header fields of an image to build."""

    manufacturer_code: int
    image_type: int
    file_version: int
    header_string: bytes = b"gbhil firmware image"
    hardware_versions: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name, value, bits in (("manufacturer code", self.manufacturer_code, 16),
                                  ("image type", self.image_type, 16),
                                  ("file version", self.file_version, 32)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
                raise FirmwareImageError(f"{name}: must be an unsigned {bits}-bit integer, "
                                         f"got {value!r}")
        if len(self.header_string) > HEADER_STRING_OCTETS or not _printable(self.header_string):
            raise FirmwareImageError("header string: at most 32 printable ASCII characters, "
                                     f"got {self.header_string!r}")
        if self.hardware_versions is not None:
            lo, hi = self.hardware_versions
            if not (0 <= lo <= hi <= 0xFFFF):
                raise FirmwareImageError(f"hardware versions {self.hardware_versions!r}: need "
                                         "0 <= minimum <= maximum <= 0xFFFF")

    @property
    def firmware_version(self) -> str:
        return firmware_version_text(self.file_version)


def _printable(text: bytes) -> bool:
    return all(0x20 <= b < 0x7F for b in text)


def image_hash(manufacturer_image: bytes) -> bytes:
    """The Manufacturer Image Hash (SHA-256): CS06, FDRA alerts and the CPL carry it."""
    return hashlib.sha256(manufacturer_image).digest()


def build_image(payload: bytes, spec: ImageSpec, *,
                signer: ec.EllipticCurvePrivateKey | None = None,
                max_octets: int = MAX_IMAGE_OCTETS) -> bytes:
    """An OTA Upgrade Image around ``payload`` (the Manufacturer Image); signed when a
    supplier DS key is given (SR 11.1), unsigned otherwise (SR 11.4 PPMID images)."""
    if not payload:
        raise FirmwareImageError("manufacturer image: must not be empty")
    if signer is not None:
        _check_p256(signer.curve, "signing key")
    try:
        data = build_ota_file(payload, manufacturer_code=spec.manufacturer_code,
                              image_type=spec.image_type, file_version=spec.file_version,
                              header_string=spec.header_string,
                              hardware_versions=spec.hardware_versions, signer=signer,
                              trailer_flag=TRAILER_FLAG)
    except OtaError as exc:
        raise FirmwareImageError(str(exc)) from None
    if len(data) > max_octets:
        raise FirmwareImageError(f"image is {len(data)} octets, more than {max_octets}")
    return data


def _check_p256(curve: ec.EllipticCurve, what: str) -> None:
    if not isinstance(curve, ec.SECP256R1):
        raise FirmwareImageError(f"{what}: GBCS signs with ECDSA P-256, not {curve.name}")


def decode_image(data: bytes, *, signed: bool,
                 max_octets: int = MAX_IMAGE_OCTETS) -> OtaFile:
    """Strictly parse a whole image. ``signed`` says which form is expected (11.1 signed,
    11.4 unsigned): the trailer cannot be told from manufacturer bytes that look like one.

    Raises :class:`FirmwareImageError` naming the field and byte offset."""
    if len(data) > max_octets:
        raise FirmwareImageError(f"image is {len(data)} octets, more than {max_octets}")
    try:
        file = parse_ota_file(bytes(data), signed=signed)
    except OtaError as exc:
        raise FirmwareImageError(str(exc)) from None
    header = file.header
    if not file.manufacturer_image:
        raise FirmwareImageError(f"manufacturer image at byte {header.header_length}: empty")
    if not _printable(header.header_string):
        raise FirmwareImageError("header string at byte 20: not printable ASCII")
    lo, hi = header.min_hardware_version, header.max_hardware_version
    if lo is not None and hi is not None and lo > hi:
        raise FirmwareImageError(f"hardware versions: minimum 0x{lo:04X} above maximum "
                                 f"0x{hi:04X}")
    if signed and file.trailer_flag != TRAILER_FLAG:
        at = len(data) - GBCS_TRAILER_LEN
        raise FirmwareImageError(f"trailer flag at byte {at}: 0x{file.trailer_flag:02X}, "
                                 f"gbhil accepts only 0x{TRAILER_FLAG:02X}")
    return file


def _looks_signed(data: bytes) -> bool:
    """Ends in ``00 40`` + 64 octets (a manufacturer image doing so by chance: 1 in 65 536)."""
    return (len(data) > GBCS_TRAILER_LEN + 56
            and data[-GBCS_TRAILER_LEN] == TRAILER_FLAG
            and data[-GBCS_SIGNATURE_LEN - 1] == GBCS_SIGNATURE_LEN)


def sign_image(data: bytes, signer: ec.EllipticCurvePrivateKey) -> bytes:
    """Add the GBCS signature trailer to an unsigned image (total size updated)."""
    _check_p256(signer.curve, "signing key")
    if _looks_signed(data):
        raise FirmwareImageError("image already ends in a signature trailer (0x00, 0x40, "
                                 "64 octets); sign the unsigned image")
    file = decode_image(data, signed=False)
    h = file.header
    total = h.total_image_size + GBCS_TRAILER_LEN
    if total > MAX_IMAGE_OCTETS:
        raise FirmwareImageError(f"signed image would be {total} octets, more than "
                                 f"{MAX_IMAGE_OCTETS}")
    header = OtaHeader(h.manufacturer_code, h.image_type, h.file_version, total,
                       h.header_string, h.stack_version, h.security_credential_version,
                       h.upgrade_file_destination, h.min_hardware_version,
                       h.max_hardware_version, h.header_version)
    signature = sign_raw(signer, file.manufacturer_image)
    return OtaFile(header, file.manufacturer_image, signature, TRAILER_FLAG).encode()


@dataclass(frozen=True, slots=True)
class Verification:
    """What :func:`verify_image` found: the parsed file and every problem (none = valid)."""

    file: OtaFile
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def image_hash(self) -> bytes:
        return self.file.image_hash

    @property
    def firmware_version(self) -> str:
        return firmware_version_text(self.file.header.file_version)


def verify_signature(file: OtaFile, key: ec.EllipticCurvePublicKey) -> bool:
    """Does the trailer's r||s verify over the Manufacturer Image with ``key``?"""
    _check_p256(key.curve, "verifying key")
    return file.signature is not None and len(file.signature) == GBCS_SIGNATURE_LEN and (
        verify_raw(key, file.manufacturer_image, file.signature))


def verify_image(data: bytes, *, key: ec.EllipticCurvePublicKey | None, signed: bool = True,
                 expected: ImageSpec | None = None, expected_hash: bytes | None = None,
                 max_octets: int = MAX_IMAGE_OCTETS) -> Verification:
    """Structure (raises :class:`FirmwareImageError`), then signature, hash and header
    fields against what was built (collected as problems)."""
    file = decode_image(data, signed=signed, max_octets=max_octets)
    problems: list[str] = []
    if signed:
        if key is None:
            problems.append("no verifying key given for a signed image")
        elif not verify_signature(file, key):
            problems.append("signature does not verify over the manufacturer image")
    if expected_hash is not None and file.image_hash != expected_hash:
        problems.append(f"manufacturer image hash {file.image_hash.hex()} is not the "
                        f"expected {expected_hash.hex()}")
    if expected is not None:
        h = file.header
        hw = (None if h.min_hardware_version is None or h.max_hardware_version is None
              else (h.min_hardware_version, h.max_hardware_version))
        for name, got, want in (
                ("manufacturer code", h.manufacturer_code, expected.manufacturer_code),
                ("image type", h.image_type, expected.image_type),
                ("file version", h.file_version, expected.file_version),
                ("header string", h.header_string, expected.header_string),
                ("hardware versions", hw, expected.hardware_versions),
                ("stack version", h.stack_version, ZIGBEE_STACK_PRO),
                ("security credential version", h.security_credential_version, None),
                ("upgrade file destination", h.upgrade_file_destination, None)):
            if got != want:
                problems.append(f"{name} {got!r} is not the expected {want!r}")
    return Verification(file, tuple(problems))


def spec_of(file: OtaFile) -> ImageSpec:
    """The :class:`ImageSpec` an image was built from (read back from its header)."""
    h = file.header
    hw = (None if h.min_hardware_version is None or h.max_hardware_version is None
          else (h.min_hardware_version, h.max_hardware_version))
    return ImageSpec(h.manufacturer_code, h.image_type, h.file_version, h.header_string, hw)


__all__ = [
    "MAX_IMAGE_OCTETS", "TRAILER_FLAG", "FirmwareImageError", "ImageSpec", "Verification",
    "build_image", "decode_image", "file_version_from_text", "firmware_version_text",
    "image_hash", "sign_image", "spec_of", "verify_image", "verify_signature",
]
