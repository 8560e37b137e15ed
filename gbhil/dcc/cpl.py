"""The Central Products List (CPL): which Device Models may be used, on SQLite.

Seed 001 (SEC guidance on Technical Specifications and the CPL) defines an entry: the
Device Type and the Device Model attributes (manufacturer, model, hardware and firmware
version), the applicable Technical Specification versions (SMETS / CHTS) and GBCS
version(s), a status "Current" or "Removed", and for SMETS2+ Devices the Assurance
Certificates (CPA for all but PPMID and Type 2, DLMS for ESME only, ZigBee for all).
Existing entries cannot be amended: a new firmware, TS or GBCS version is a new entry, and
an entry can only go from Current to Removed (certificate withdrawn, cancelled or expired).

The DCC uses the CPL to accept pre-notifications (Type 1 models must be listed, seed 000),
to check firmware (the hash DUIS 11.3 activates, N49/N50/N51 on a version change, seed
004) and to answer E57 when a request does not fit the GBCS version of the Device's model
(seed 003). Those lookups are here; the flows that call them live elsewhere.
"""

from __future__ import annotations

import datetime as dt
import enum
import hmac
import os
import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gbhil.dcc.inventory import (
    TYPE_2,
    DeviceType,
    InvalidValue,
    Now,
    SqliteStore,
)

#: seed 003: "Failed Validation - Invalid Service Request / GBCS version combination".
GBCS_VERSION_MISMATCH = "E57"
#: DUIS 11.3 FirmwareHash: exactly 32 octets (SHA-256).
FIRMWARE_HASH_OCTETS = 32


class CplStatus(enum.StrEnum):
    """Seed 001 §4.1: a CPL entry is Current or Removed."""

    CURRENT = "Current"
    REMOVED = "Removed"


class RemovalReason(enum.StrEnum):
    """Why an entry left the CPL (seed 001 §4.4), in the words of the XSD's ``CPLStatus``
    / ``FirmwareVersionStatus`` (Active, Cancelled, Expired, Withdrawn)."""

    WITHDRAWN = "Withdrawn"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"


#: XSD value for a Current entry.
XSD_ACTIVE = "Active"


class CertificateKind(enum.StrEnum):
    """Assurance certificates a SMETS2+ entry needs (seed 001 §4.1)."""

    CPA = "CPA"
    DLMS = "DLMS"
    ZIGBEE = "ZigBee"


def required_certificates(device_type: DeviceType) -> frozenset[CertificateKind]:
    """Seed 001 §4.1: CPA for every Device but PPMID and Type 2, DLMS for ESME only
    (single/twin/polyphase), ZigBee for all."""
    kinds = {CertificateKind.ZIGBEE}
    if device_type is not DeviceType.PPMID and device_type not in TYPE_2:
        kinds.add(CertificateKind.CPA)
    if device_type is DeviceType.ESME:
        kinds.add(CertificateKind.DLMS)
    return frozenset(kinds)


@dataclass(frozen=True, slots=True)
class AssuranceCertificate:
    kind: CertificateKind
    reference: str
    expires: dt.date | None = None


def simulated_certificates(device_type: DeviceType, expires: dt.date | None = None,
                           ) -> tuple[AssuranceCertificate, ...]:
    """Placeholder certificates for gbhil's simulated models (never real assurance)."""
    return tuple(AssuranceCertificate(kind, f"gbhil-simulated-{kind}", expires)
                 for kind in sorted(required_certificates(device_type)))


@dataclass(frozen=True, slots=True)
class DeviceModel:
    """Manufacturer, model and hardware version: the Device Model without firmware.

    DUIS carries ``DeviceManufacturer`` and ``DeviceModel`` (max 30 characters each, the
    model string usually encoding the hardware version); ``hardware_version`` is kept for
    the CPL's own record and matches any value when left empty in a lookup.
    """

    manufacturer: str
    model: str
    hardware_version: str = ""


def gbcs_key(version: str) -> tuple[int, ...]:
    """``"v3.2"`` / ``"GBCS v4.0"`` / ``"4.2"`` -> ``(3, 2)`` ... for ordering."""
    text = version.strip().lower().removeprefix("gbcs").strip().removeprefix("v")
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        raise InvalidValue(f"GBCS version {version!r} is not dotted numbers") from None


@dataclass(frozen=True, slots=True)
class CplEntry:
    """One CPL entry. ``entry_id``, ``status``, ``removal_reason`` and the times are set
    by the list; everything else is fixed once listed."""

    device_type: DeviceType
    device_model: DeviceModel
    firmware_version: str | None
    gbcs_versions: tuple[str, ...]
    technical_specifications: tuple[str, ...]
    firmware_hash: bytes | None = None
    smets1: bool = False
    certificates: tuple[AssuranceCertificate, ...] = ()
    entry_id: int = 0
    status: CplStatus = CplStatus.CURRENT
    removal_reason: RemovalReason | None = None
    added_at: dt.datetime | None = field(default=None, compare=False)
    removed_at: dt.datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "device_type", DeviceType(self.device_type))
        if self.device_type in TYPE_2:
            if self.firmware_version is not None:
                raise InvalidValue("a Type 2 Device Model has no firmware version (seed 001)")
        elif self.firmware_version is None or not 1 <= len(self.firmware_version) <= 8:
            raise InvalidValue(f"firmware version {self.firmware_version!r} must be 1-8 "
                               "characters (sr:FirmwareVersion)")
        if not self.gbcs_versions and not self.smets1:
            raise InvalidValue("a SMETS2+ entry names its GBCS version(s)")
        for version in self.gbcs_versions:
            gbcs_key(version)
        if self.firmware_hash is not None and len(self.firmware_hash) != FIRMWARE_HASH_OCTETS:
            raise InvalidValue(f"firmware hash is {len(self.firmware_hash)} octets, not 32")

    @property
    def is_current(self) -> bool:
        return self.status is CplStatus.CURRENT

    @property
    def xsd_status(self) -> str:
        """The ``sr:CPLStatus`` / ``sr:FirmwareVersionStatus`` word for this entry."""
        if self.is_current:
            return XSD_ACTIVE
        return str(self.removal_reason or RemovalReason.WITHDRAWN)

    @property
    def latest_gbcs_version(self) -> str | None:
        return max(self.gbcs_versions, key=gbcs_key) if self.gbcs_versions else None

    @classmethod
    def from_identity(cls, identity: Mapping[str, Any], **extra: Any) -> CplEntry:
        """From a gbhil device profile's ``[identity]`` table (devices/*.toml): device_type,
        manufacturer, model, hardware_version, firmware_version, gbcs_version."""
        device_type = DeviceType(extra.pop("device_type", identity.get("device_type")))
        model = DeviceModel(str(identity["manufacturer"]), str(identity["model"]),
                            str(identity.get("hardware_version", "")))
        firmware = None if device_type in TYPE_2 else str(identity["firmware_version"])
        return cls(device_type, model, firmware,
                   extra.pop("gbcs_versions", (str(identity["gbcs_version"]),)),
                   extra.pop("technical_specifications", ()), **extra)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS cpl_entry (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_type TEXT NOT NULL,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    hardware_version TEXT NOT NULL,
    firmware_version TEXT NOT NULL,
    firmware_hash BLOB,
    gbcs_versions TEXT NOT NULL,
    technical_specifications TEXT NOT NULL,
    smets1 INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('Current', 'Removed')),
    removal_reason TEXT,
    added_at TEXT NOT NULL,
    removed_at TEXT,
    UNIQUE (manufacturer, model, hardware_version, firmware_version, gbcs_versions,
            technical_specifications)
);
CREATE TABLE IF NOT EXISTS cpl_certificate (
    entry_id INTEGER NOT NULL REFERENCES cpl_entry(entry_id),
    kind TEXT NOT NULL,
    reference TEXT NOT NULL,
    expires TEXT,
    PRIMARY KEY (entry_id, kind)
);
CREATE TRIGGER IF NOT EXISTS cpl_entry_fixed
BEFORE UPDATE OF device_type, manufacturer, model, hardware_version, firmware_version,
    firmware_hash, gbcs_versions, technical_specifications, smets1, added_at ON cpl_entry
BEGIN SELECT RAISE(ABORT, 'CPL entries cannot be amended (seed 001 4.4)'); END;
CREATE TRIGGER IF NOT EXISTS cpl_entry_removed_is_final
BEFORE UPDATE OF status ON cpl_entry WHEN OLD.status = 'Removed'
BEGIN SELECT RAISE(ABORT, 'a Removed CPL entry stays Removed'); END;
CREATE TRIGGER IF NOT EXISTS cpl_entry_no_delete
BEFORE DELETE ON cpl_entry
BEGIN SELECT RAISE(ABORT, 'CPL entries are removed by status, never deleted'); END;
CREATE TRIGGER IF NOT EXISTS cpl_certificate_fixed
BEFORE UPDATE ON cpl_certificate
BEGIN SELECT RAISE(ABORT, 'CPL entries cannot be amended (seed 001 4.4)'); END;
"""

_SEP = "\x1f"  # joins version lists in one column; never part of a version string


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split(_SEP)) if text else ()


class CplError(ValueError):
    """The list refuses an addition or a change (missing certificates, duplicate, ...)."""


class Cpl(SqliteStore):
    """The CPL: insert-only entries, Current -> Removed, and the DCC's lookups."""

    SCHEMA = _SCHEMA

    def __init__(self, path: str | os.PathLike[str] = ":memory:", *, now: Now) -> None:
        super().__init__(path, now=now)

    # --- changes ---------------------------------------------------------------------

    def add(self, entry: CplEntry) -> CplEntry:
        """List a Device Model. SMETS2+ entries need every certificate their type needs
        (seed 001 §4.3); an identical entry cannot be listed twice."""
        if not entry.smets1:
            have = {c.kind for c in entry.certificates}
            missing = required_certificates(entry.device_type) - have
            if missing:
                raise CplError(f"{entry.device_type} entry lacks assurance certificates "
                               f"{sorted(missing)} (seed 001 4.1)")
        stamp = self.now().isoformat()
        model = entry.device_model
        with self.transaction() as conn:
            try:
                entry_id = conn.execute(
                    "INSERT INTO cpl_entry (device_type, manufacturer, model, hardware_version,"
                    " firmware_version, firmware_hash, gbcs_versions, technical_specifications,"
                    " smets1, status, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'Current', ?)",
                    (str(entry.device_type), model.manufacturer, model.model,
                     model.hardware_version, entry.firmware_version or "", entry.firmware_hash,
                     _SEP.join(entry.gbcs_versions), _SEP.join(entry.technical_specifications),
                     int(entry.smets1), stamp)).lastrowid
            except sqlite3.IntegrityError:
                raise CplError("an identical CPL entry exists; entries cannot be "
                               "amended, submit a new one (seed 001 4.4)") from None
            for cert in entry.certificates:
                conn.execute(
                    "INSERT INTO cpl_certificate (entry_id, kind, reference, expires) "
                    "VALUES (?, ?, ?, ?)", (entry_id, str(cert.kind), cert.reference,
                                            None if cert.expires is None
                                            else cert.expires.isoformat()))
        assert entry_id is not None
        return self.entry(entry_id)

    def remove(self, entry_id: int, reason: RemovalReason = RemovalReason.WITHDRAWN) -> CplEntry:
        """Current -> Removed (seed 001 §4.4: certificate withdrawn/cancelled/expired)."""
        entry = self.entry(entry_id)
        if not entry.is_current:
            raise CplError(f"CPL entry {entry_id} is already Removed")
        with self.transaction() as conn:
            conn.execute("UPDATE cpl_entry SET status = 'Removed', removal_reason = ?, "
                         "removed_at = ? WHERE entry_id = ?",
                         (str(RemovalReason(reason)), self.now().isoformat(), entry_id))
        return self.entry(entry_id)

    # --- lookups -------------------------------------------------------------------------

    def entry(self, entry_id: int) -> CplEntry:
        rows = self._rows("SELECT * FROM cpl_entry WHERE entry_id = ?", (entry_id,))
        if not rows:
            raise KeyError(f"no CPL entry {entry_id}")
        return self._entry(rows[0])

    def entries(self) -> list[CplEntry]:
        return [self._entry(r) for r in self._rows("SELECT * FROM cpl_entry ORDER BY entry_id")]

    def entries_for(self, device_model: DeviceModel,
                    firmware_version: str | None = None) -> list[CplEntry]:
        """Every entry of the model (and firmware version, if given), oldest first. An
        empty ``hardware_version`` matches any."""
        sql = "SELECT * FROM cpl_entry WHERE manufacturer = ? AND model = ?"
        params: list[Any] = [device_model.manufacturer, device_model.model]
        if device_model.hardware_version:
            sql += " AND hardware_version = ?"
            params.append(device_model.hardware_version)
        if firmware_version is not None:
            sql += " AND firmware_version = ?"
            params.append(firmware_version)
        return [self._entry(r) for r in self._rows(sql + " ORDER BY entry_id", params)]

    def entry_for(self, device_model: DeviceModel,
                  firmware_version: str | None) -> CplEntry | None:
        """The entry firmware flows go by: the newest Current entry for the model and
        firmware version, else the newest Removed one, else None (not on the CPL).
        ``firmware_version`` None looks for a Type 2 entry (no firmware)."""
        found = self.entries_for(device_model, firmware_version or "")
        if not found:
            return None
        current = [e for e in found if e.is_current]
        return (current or found)[-1]

    def model_listed(self, device_model: DeviceModel, firmware_version: str | None = None, *,
                     current_only: bool = True) -> bool:
        """Is the Device Model (optionally with that firmware) on the list?"""
        found = self.entries_for(device_model, firmware_version)
        return any(e.is_current or not current_only for e in found)

    def firmware_status(self, device_model: DeviceModel,
                        firmware_version: str) -> CplStatus | None:
        """Current / Removed for that firmware of the model; None when not listed."""
        entry = self.entry_for(device_model, firmware_version)
        return None if entry is None else entry.status

    def model_status(self, device_model: DeviceModel) -> str | None:
        """``sr:CPLStatus`` of the model: Active while any of its entries is Current, else
        the reason of the newest removal; None when the model was never listed."""
        found = self.entries_for(device_model)
        if not found:
            return None
        if any(e.is_current for e in found):
            return XSD_ACTIVE
        return found[-1].xsd_status

    def firmware_hash(self, device_model: DeviceModel, firmware_version: str) -> bytes | None:
        entry = self.entry_for(device_model, firmware_version)
        return None if entry is None else entry.firmware_hash

    def hash_matches(self, device_model: DeviceModel, firmware_version: str,
                     image_hash: bytes) -> bool:
        """Does ``image_hash`` equal the hash of a Current entry for that firmware?
        (constant-time compare; a Removed or unlisted version never matches)."""
        return any(e.firmware_hash is not None and hmac.compare_digest(e.firmware_hash,
                                                                       bytes(image_hash))
                   for e in self.entries_for(device_model, firmware_version) if e.is_current)

    def gbcs_versions(self, device_model: DeviceModel,
                      firmware_version: str | None) -> tuple[str, ...]:
        """The GBCS versions that pertain to the model's entry (newest entry wins)."""
        entry = self.entry_for(device_model, firmware_version)
        return () if entry is None else entry.gbcs_versions

    def gbcs_problem(
        self, device_model: DeviceModel, firmware_version: str | None, *,
        at_least: str | None = None, below: str | None = None,
        accepted: Collection[str] | None = None,
    ) -> str | None:
        """E57 (seed 003) when no GBCS version of the model's CPL entry fits the request's
        needs (``at_least`` <= v < ``below``, v in ``accepted``); None when one does. A
        model with no entry has no GBCS version, hence E57 too."""
        lo = None if at_least is None else gbcs_key(at_least)
        hi = None if below is None else gbcs_key(below)
        wanted = None if accepted is None else {gbcs_key(v) for v in accepted}
        for version in self.gbcs_versions(device_model, firmware_version):
            key = gbcs_key(version)
            if ((lo is None or key >= lo) and (hi is None or key < hi)
                    and (wanted is None or key in wanted)):
                return None
        return GBCS_VERSION_MISMATCH

    def expiring_certificates(
        self, before: dt.date,
    ) -> list[tuple[CplEntry, AssuranceCertificate]]:
        """Certificates of Current entries expiring before ``before`` (the Panel warns 12
        and 6 months ahead, seed 001 §4.3)."""
        out = []
        for entry in self.entries():
            if entry.is_current:
                out += [(entry, c) for c in entry.certificates
                        if c.expires is not None and c.expires < before]
        return out

    def _entry(self, row: Any) -> CplEntry:
        certs = tuple(
            AssuranceCertificate(CertificateKind(c["kind"]), c["reference"],
                                 None if c["expires"] is None
                                 else dt.date.fromisoformat(c["expires"]))
            for c in self._rows("SELECT * FROM cpl_certificate WHERE entry_id = ? "
                                "ORDER BY kind", (row["entry_id"],)))
        return CplEntry(
            device_type=DeviceType(row["device_type"]),
            device_model=DeviceModel(row["manufacturer"], row["model"],
                                     row["hardware_version"]),
            firmware_version=row["firmware_version"] or None,
            gbcs_versions=_split(row["gbcs_versions"]),
            technical_specifications=_split(row["technical_specifications"]),
            firmware_hash=row["firmware_hash"], smets1=bool(row["smets1"]),
            certificates=certs, entry_id=row["entry_id"], status=CplStatus(row["status"]),
            removal_reason=None if row["removal_reason"] is None
            else RemovalReason(row["removal_reason"]),
            added_at=dt.datetime.fromisoformat(row["added_at"]),
            removed_at=None if row["removed_at"] is None
            else dt.datetime.fromisoformat(row["removed_at"]),
        )


#: The three CPL outcomes the firmware version checks distinguish (seed 004 N49/N50/N51).
FIRMWARE_OUTCOMES = MappingProxyType({
    CplStatus.CURRENT: "N49",
    CplStatus.REMOVED: "N50",
    None: "N51",
})

__all__ = [
    "FIRMWARE_HASH_OCTETS", "FIRMWARE_OUTCOMES", "GBCS_VERSION_MISMATCH", "XSD_ACTIVE",
    "AssuranceCertificate", "CertificateKind", "Cpl", "CplEntry", "CplError", "CplStatus",
    "DeviceModel", "RemovalReason", "gbcs_key", "required_certificates", "simulated_certificates",
]
