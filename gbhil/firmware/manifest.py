"""What the CPL needs to list an image, kept next to the image as JSON.

The OTA header names the manufacturer code, image type and file version; the CPL names the
Device Model (manufacturer, model, hardware version), the firmware version, the GBCS and
Technical Specification versions and the Manufacturer Image Hash (seed 001 4.1, SR 11.3).
The manifest joins both, so ``gbhil firmware verify`` can check an image against what was
built and the CPL entry can be produced from it. The format is gbhil's own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from gbhil.dcc.cpl import (
    AssuranceCertificate,
    CplEntry,
    DeviceModel,
    simulated_certificates,
)
from gbhil.dcc.inventory import DeviceType
from gbhil.firmware.image import (
    FirmwareImageError,
    ImageSpec,
    firmware_version_text,
)
from gbhil.han.ota import OtaFile

MANIFEST_FORMAT: Final = 1
HASH_OCTETS: Final = 32
#: DUIS DeviceManufacturer / DeviceModel: at most 30 characters.
MODEL_TEXT_MAX: Final = 30


@dataclass(frozen=True, slots=True)
class FirmwareManifest:
    """An image's CPL metadata and OTA header, plus its size, hash and form."""

    device_type: DeviceType
    manufacturer: str
    model: str
    hardware_version: str
    gbcs_versions: tuple[str, ...]
    technical_specifications: tuple[str, ...]
    spec: ImageSpec
    image_size: int
    image_hash: bytes
    signed: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_type", DeviceType(self.device_type))
        for name, text in (("manufacturer", self.manufacturer), ("model", self.model)):
            if not 1 <= len(text) <= MODEL_TEXT_MAX:
                raise FirmwareImageError(f"{name} {text!r}: 1-{MODEL_TEXT_MAX} characters")
        if len(self.image_hash) != HASH_OCTETS:
            raise FirmwareImageError(f"image hash: {len(self.image_hash)} octets, not 32")
        if self.image_size <= 0:
            raise FirmwareImageError(f"image size {self.image_size} must be positive")

    @property
    def firmware_version(self) -> str:
        return firmware_version_text(self.spec.file_version)

    @property
    def device_model(self) -> DeviceModel:
        return DeviceModel(self.manufacturer, self.model, self.hardware_version)

    @classmethod
    def for_image(cls, file: OtaFile, size: int, *, device_type: DeviceType | str,
                  manufacturer: str, model: str, hardware_version: str = "",
                  gbcs_versions: tuple[str, ...] = (),
                  technical_specifications: tuple[str, ...] = ()) -> FirmwareManifest:
        from gbhil.firmware.image import spec_of

        return cls(DeviceType(device_type), manufacturer, model, hardware_version,
                   tuple(gbcs_versions), tuple(technical_specifications), spec_of(file),
                   size, file.image_hash, file.signature is not None)

    def cpl_entry(self, certificates: tuple[AssuranceCertificate, ...] | None = None,
                  ) -> CplEntry:
        """The CPL entry for this image (its hash is what SR 11.3 activates). Without
        ``certificates``, gbhil's placeholder assurance certificates (never real ones)."""
        certs = (simulated_certificates(self.device_type) if certificates is None
                 else certificates)
        return CplEntry(self.device_type, self.device_model, self.firmware_version,
                        self.gbcs_versions, self.technical_specifications,
                        firmware_hash=self.image_hash, certificates=certs)

    def to_json(self) -> dict[str, Any]:
        s = self.spec
        return {
            "format": MANIFEST_FORMAT,
            "device_type": str(self.device_type),
            "manufacturer": self.manufacturer,
            "model": self.model,
            "hardware_version": self.hardware_version,
            "firmware_version": self.firmware_version,
            "gbcs_versions": list(self.gbcs_versions),
            "technical_specifications": list(self.technical_specifications),
            "manufacturer_code": s.manufacturer_code,
            "image_type": s.image_type,
            "file_version": s.file_version,
            "header_string": s.header_string.decode("ascii"),
            "hardware_versions": None if s.hardware_versions is None
            else list(s.hardware_versions),
            "image_size": self.image_size,
            "image_hash": self.image_hash.hex(),
            "signed": self.signed,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: object) -> FirmwareManifest:
        """Strict: every key present with its type, no unknown key, versions consistent."""
        if not isinstance(data, dict):
            raise FirmwareImageError("manifest: expected a JSON object")
        want = set(_FIELDS)
        extra, missing = set(data) - want, want - set(data)
        if extra or missing:
            raise FirmwareImageError(f"manifest: unknown keys {sorted(extra)}, missing "
                                     f"{sorted(missing)}")
        for key, kind in _FIELDS.items():
            value = data[key]
            ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            if not ok:
                raise FirmwareImageError(f"manifest: {key} must be {kind}, got {value!r}")
        if data["format"] != MANIFEST_FORMAT:
            raise FirmwareImageError(f"manifest: format {data['format']} (only 1 is known)")
        lists = {k: data[k] for k in ("gbcs_versions", "technical_specifications")}
        for key, value in lists.items():
            if not all(isinstance(v, str) for v in value):
                raise FirmwareImageError(f"manifest: {key} must be a list of strings")
        hw = data["hardware_versions"]
        if hw is not None and (len(hw) != 2 or not all(type(v) is int for v in hw)):
            raise FirmwareImageError("manifest: hardware_versions must be [min, max] or null")
        try:
            image_hash = bytes.fromhex(data["image_hash"])
            device_type = DeviceType(data["device_type"])
            header_string = data["header_string"].encode("ascii")
        except ValueError as exc:
            raise FirmwareImageError(f"manifest: {exc}") from None
        spec = ImageSpec(data["manufacturer_code"], data["image_type"], data["file_version"],
                         header_string, None if hw is None else (hw[0], hw[1]))
        manifest = cls(device_type, data["manufacturer"], data["model"],
                       data["hardware_version"], tuple(data["gbcs_versions"]),
                       tuple(data["technical_specifications"]), spec, data["image_size"],
                       image_hash, data["signed"])
        if manifest.firmware_version != data["firmware_version"]:
            raise FirmwareImageError(f"manifest: firmware_version {data['firmware_version']!r} "
                                     f"is not file_version {manifest.firmware_version}")
        return manifest

    @classmethod
    def loads(cls, text: str) -> FirmwareManifest:
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise FirmwareImageError(f"manifest: not JSON ({exc})") from None


_FIELDS: Final[dict[str, type | tuple[type, ...]]] = {
    "format": int, "device_type": str, "manufacturer": str, "model": str,
    "hardware_version": str, "firmware_version": str, "gbcs_versions": list,
    "technical_specifications": list, "manufacturer_code": int, "image_type": int,
    "file_version": int, "header_string": str, "hardware_versions": (list, type(None)),
    "image_size": int, "image_hash": str, "signed": bool,
}

__all__ = ["MANIFEST_FORMAT", "FirmwareManifest"]
