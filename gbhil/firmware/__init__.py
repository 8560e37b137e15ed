"""Firmware images for GB smart metering: the GBCS OTA Upgrade Image, its CPL manifest,
signing keys, and the DCC side of SR 11.1 / 11.4 distribution (see docs/firmware.md)."""

from gbhil.firmware.image import (
    MAX_IMAGE_OCTETS,
    FirmwareImageError,
    ImageSpec,
    Verification,
    build_image,
    decode_image,
    firmware_version_text,
    image_hash,
    sign_image,
    verify_image,
)
from gbhil.firmware.manifest import FirmwareManifest

__all__ = [
    "MAX_IMAGE_OCTETS", "FirmwareImageError", "FirmwareManifest", "ImageSpec", "Verification",
    "build_image", "decode_image", "firmware_version_text", "image_hash", "sign_image",
    "verify_image",
]
