"""Key store: certificates and private keys looked up by EUI-64.

Satisfies ``gbhil.gbcs.keys.KeyStore`` structurally (no import of gbhil). The codec
calls the four lookups for every message, so each is one dict lookup on objects
parsed once at load time. Loaders read the RTDS key folder, the ZAZ1
``keystore.json``, the ZAZ1 ``orgkeys/`` folder and what :mod:`gbhil.smki.pki`
writes. Private key material is never logged, printed or put in a ``repr``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.smki.profile import (
    OID_HARDWARE_MODULE_NAME,
    SLOT_ALIASES,
    XML_SIGNING_ROLES,
    ZAZ1_USAGE_KEYS,
    Slot,
    Usage,
    parse_role_ou,
    role_name,
)

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey


class SmkiError(Exception):
    """A key store could not be loaded or a PKI generated; the message names the file."""


# --- EUIs -----------------------------------------------------------------------------

_EUI_SEPARATORS = re.compile(r"[\s:\-]")


def parse_eui(value: bytes | bytearray | memoryview | str) -> bytes:
    """8-byte EUI-64 from bytes or hex text (``90B3D51F30010000``, ``90-B3-D5-...``)."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    elif isinstance(value, str):
        text = _EUI_SEPARATORS.sub("", value)
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"EUI {value!r} is not hexadecimal") from None
    else:
        raise TypeError(f"EUI must be bytes or hex str, not {type(value).__name__}")
    if len(raw) != 8:
        raise ValueError(f"EUI {value!r} is {len(raw)} bytes, expected 8")
    return raw


def format_eui(eui: bytes) -> str:
    """Lower-case hex without separators: the RTDS / ZAZ1 file and key spelling."""
    return eui.hex()


def to_slot(value: Slot | Usage | str) -> Slot:
    """Slot from a slot, a usage, or a spelling such as ``keyAgreement`` or ``pp-ka``."""
    if isinstance(value, Slot):
        return value
    try:
        return SLOT_ALIASES[str(value).lower()]
    except KeyError:
        raise ValueError(f"unknown key usage/slot {value!r}") from None


# --- Certificate introspection ----------------------------------------------------------


def certificate_usage(cert: x509.Certificate) -> Usage | None:
    """DS or KA when keyUsage asserts exactly one of them, else ``None``."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if ku.digital_signature and not ku.key_agreement:
        return Usage.DS
    if ku.key_agreement and not ku.digital_signature:
        return Usage.KA
    return None


def certificate_role(cert: x509.Certificate) -> int | None:
    """Remote Party role from the subject OU (two hex digits); ``None`` for devices."""
    for attr in cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME):
        try:
            return parse_role_ou(str(attr.value))
        except ValueError:
            return None
    return None


def _der_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER TLV at ``pos``: (tag, content, next position). Short/long lengths only."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:end], end


def decode_hardware_module_name(value: bytes) -> tuple[bytes, bytes]:
    """(hwType OID content, hwSerialNum) from a hardwareModuleName SEQUENCE (RFC 4108)."""
    tag, seq, _ = _der_tlv(value, 0)
    if tag != 0x30:
        raise ValueError("hardwareModuleName is not a SEQUENCE")
    tag, oid, pos = _der_tlv(seq, 0)
    if tag != 0x06:
        raise ValueError("hardwareModuleName has no hwType OID")
    tag, serial, _ = _der_tlv(seq, pos)
    if tag != 0x04:
        raise ValueError("hardwareModuleName has no hwSerialNum OCTET STRING")
    return oid, serial


def certificate_eui(cert: x509.Certificate) -> bytes | None:
    """The EUI a certificate names: x500UniqueIdentifier (organisations) or the
    hardwareModuleName in subjectAltName (devices)."""
    for attr in cert.subject.get_attributes_for_oid(x509.NameOID.X500_UNIQUE_IDENTIFIER):
        raw = attr.value
        if isinstance(raw, bytes):
            # cryptography hands back the BIT STRING content: unused-bits octet first.
            if len(raw) == 9 and raw[0] == 0:
                return raw[1:]
            if len(raw) == 8:
                return raw
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id.dotted_string == OID_HARDWARE_MODULE_NAME:
            try:
                _, serial = decode_hardware_module_name(other.value)
            except (ValueError, IndexError):
                continue
            if len(serial) == 8:
                return serial
    return None


_SHORT_NAMES = {"2.5.4.3": "CN", "2.5.4.11": "OU", "2.5.4.45": "x500UniqueIdentifier"}


def format_name(name: x509.Name) -> str:
    """Distinguished name in certificate order, openssl style ("OU=07, CN=Z1"); the
    x500UniqueIdentifier BIT STRING is shown as the EUI hex. Empty names give ""."""
    parts = []
    for attr in name:
        key = _SHORT_NAMES.get(attr.oid.dotted_string, attr.oid.dotted_string)
        value = attr.value
        if isinstance(value, bytes):
            value = (value[1:] if len(value) == 9 and value[0] == 0 else value).hex().upper()
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _point(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _check_curve(key: object, where: str, what: str) -> None:
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        raise SmkiError(f"{where}: {what} is not an elliptic-curve key ({type(key).__name__})")
    if not isinstance(key.curve, ec.SECP256R1):
        raise SmkiError(f"{where}: {what} is on curve {key.curve.name}, GB SMKI requires P-256")


# --- Entries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Entry:
    """One key of one EUI: certificate and/or public key, optional private key."""

    eui: bytes
    slot: Slot
    certificate: x509.Certificate | None = None
    public_key: PublicKey | None = None
    private_key: PrivateKey | None = field(default=None, compare=False)
    role: int | None = None
    name: str | None = None
    source: str = "<memory>"
    device_type: str | None = None
    seq: int = 0

    def __repr__(self) -> str:  # never show key objects
        serial = f" serial={self.serial:x}" if self.certificate is not None else ""
        return (
            f"Entry(eui={self.eui.hex()} slot={self.slot} role={role_name(self.role)}"
            f"{serial} private={'yes' if self.private_key is not None else 'no'})"
        )

    @property
    def usage(self) -> Usage:
        return self.slot.usage

    @property
    def prepayment(self) -> bool:
        return self.slot is Slot.PP_KA

    @property
    def serial(self) -> int | None:
        return None if self.certificate is None else self.certificate.serial_number

    @property
    def not_before(self) -> dt.datetime | None:
        return None if self.certificate is None else self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime | None:
        return None if self.certificate is None else self.certificate.not_valid_after_utc

    @property
    def certificate_eui(self) -> bytes | None:
        """EUI named inside the certificate (may differ from :attr:`eui`, see RTDS)."""
        return None if self.certificate is None else certificate_eui(self.certificate)

    @property
    def has_private_key(self) -> bool:
        return self.private_key is not None

    def rank(self) -> tuple[int, float, int]:
        """Sort key choosing the active entry of a slot (lowest wins): entries with a
        private key, then the earliest issued (ZAZ1's "Z1" set, which the RTDS
        messages use, before "Z1b"), then load order."""
        nb = self.not_before
        return (
            0 if self.private_key is not None else 1,
            nb.timestamp() if nb is not None else float("inf"),
            self.seq,
        )


# --- The store ----------------------------------------------------------------------------


class KeyStore:
    """Certificates and keys by EUI. Lookups are dict gets; see :meth:`add` for the rules."""

    def __init__(self, *, source: str = "<memory>") -> None:
        self.source = source
        #: Non-fatal anomalies found while loading (file names only, never key material).
        self.warnings: list[str] = []
        #: CA certificates known to the store (generated PKIs: root, organisation, device).
        self.ca_certificates: dict[str, x509.Certificate] = {}
        self._entries: list[Entry] = []
        self._by_eui: dict[bytes, list[Entry]] = {}
        self._active: dict[Slot, dict[bytes, Entry]] = {slot: {} for slot in Slot}
        self._pinned: set[tuple[bytes, Slot]] = set()
        self._priv: dict[Slot, dict[bytes, PrivateKey]] = {slot: {} for slot in Slot}
        self._pub: dict[Slot, dict[bytes, PublicKey]] = {slot: {} for slot in Slot}
        # Hot-path aliases for the codec's lookups.
        self._ka_priv = self._priv[Slot.KA]
        self._pp_priv = self._priv[Slot.PP_KA]
        self._ds_priv = self._priv[Slot.DS]
        self._ka_pub = self._pub[Slot.KA]
        self._pp_pub = self._pub[Slot.PP_KA]
        self._ds_pub = self._pub[Slot.DS]

    # -- KeyStore protocol (hot path) -----------------------------------------------------

    def ka_private(self, eui: bytes | str, *, prepayment: bool = False) -> PrivateKey | None:
        """Key Agreement private key (``prepayment`` selects the supplier's -pp-ka key)."""
        table = self._pp_priv if prepayment else self._ka_priv
        return table.get(eui if type(eui) is bytes else parse_eui(eui))

    def ka_public(self, eui: bytes | str, *, prepayment: bool = False) -> PublicKey | None:
        """Key Agreement public key (from the certificate, else the bare key)."""
        table = self._pp_pub if prepayment else self._ka_pub
        return table.get(eui if type(eui) is bytes else parse_eui(eui))

    def ds_private(self, eui: bytes | str) -> PrivateKey | None:
        """Digital Signing private key (GBCS; XML-signing keys are in :attr:`Slot.XML_DS`)."""
        return self._ds_priv.get(eui if type(eui) is bytes else parse_eui(eui))

    def ds_public(self, eui: bytes | str) -> PublicKey | None:
        """Digital Signing public key (from the certificate)."""
        return self._ds_pub.get(eui if type(eui) is bytes else parse_eui(eui))

    # -- General lookups -------------------------------------------------------------------

    def private_key(self, eui: bytes | str, slot: Slot | Usage | str) -> PrivateKey | None:
        return self._priv[to_slot(slot)].get(parse_eui(eui))

    def public_key(self, eui: bytes | str, slot: Slot | Usage | str) -> PublicKey | None:
        return self._pub[to_slot(slot)].get(parse_eui(eui))

    def entry(self, eui: bytes | str, slot: Slot | Usage | str) -> Entry | None:
        """The active entry of a slot (see :meth:`Entry.rank` and :meth:`pin`)."""
        return self._active[to_slot(slot)].get(parse_eui(eui))

    def certificate(
        self, eui: bytes | str, usage: Slot | Usage | str, *, prepayment: bool = False
    ) -> x509.Certificate | None:
        """Active certificate for ``usage`` ("ds", "ka", "pp-ka", "xml-ds",
        "digitalSignature", "keyAgreement"); ``prepayment`` turns KA into PP-KA."""
        slot = to_slot(usage)
        if prepayment and slot is Slot.KA:
            slot = Slot.PP_KA
        found = self._active[slot].get(parse_eui(eui))
        return None if found is None else found.certificate

    def euis(self) -> list[bytes]:
        """Every EUI with at least one entry, sorted."""
        return sorted(self._by_eui)

    def entries(self, eui: bytes | str | None = None) -> list[Entry]:
        """All entries (also inactive duplicates), in load order."""
        if eui is None:
            return list(self._entries)
        return list(self._by_eui.get(parse_eui(eui), ()))

    def role(self, eui: bytes | str) -> int | None:
        """Remote Party role of an organisation; ``None`` for devices and unknown EUIs."""
        key = parse_eui(eui)
        for slot in (Slot.DS, Slot.KA, Slot.PP_KA):
            found = self._active[slot].get(key)
            if found is not None and found.role is not None:
                return found.role
        for found in self._by_eui.get(key, ()):
            if found.role is not None and found.role not in XML_SIGNING_ROLES:
                return found.role
        return None

    def device_type(self, eui: bytes | str) -> str | None:
        """Device type recorded by the generator (``ESME``...), else ``None``."""
        for found in self._by_eui.get(parse_eui(eui), ()):
            if found.device_type:
                return found.device_type
        return None

    def __contains__(self, eui: object) -> bool:
        try:
            return parse_eui(eui) in self._by_eui  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def __len__(self) -> int:
        return len(self._by_eui)

    def __iter__(self) -> Iterator[Entry]:
        return iter(list(self._entries))

    def stats(self) -> dict[str, int]:
        """Counts: certificates, private keys, bare public keys, entries, EUIs."""
        return {
            "certificates": sum(e.certificate is not None for e in self._entries),
            "private_keys": sum(e.private_key is not None for e in self._entries),
            "public_keys": sum(
                e.certificate is None and e.public_key is not None and e.private_key is None
                for e in self._entries
            ),
            "entries": len(self._entries),
            "euis": len(self._by_eui),
        }

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"KeyStore(source={self.source!r}, euis={s['euis']}, "
            f"certificates={s['certificates']}, private_keys={s['private_keys']})"
        )

    # -- Mutation -------------------------------------------------------------------------

    def add(
        self,
        *,
        eui: bytes | str,
        slot: Slot | Usage | str,
        certificate: x509.Certificate | None = None,
        private_key: PrivateKey | None = None,
        public_key: PublicKey | None = None,
        role: int | None = None,
        name: str | None = None,
        source: str = "<memory>",
        key_source: str | None = None,
        device_type: str | None = None,
    ) -> Entry:
        """Add one key. Checks: P-256 only; certificate keyUsage must be exclusively the
        slot's usage; a private key must match the certificate / public key. Problems
        raise :class:`SmkiError` naming ``source`` (``key_source`` for the key file).
        The EUI is the caller's (RTDS files by name); a certificate naming another
        EUI only adds a warning."""
        key = parse_eui(eui)
        slot = to_slot(slot)
        key_where = key_source or source
        if certificate is None and public_key is None and private_key is None:
            raise SmkiError(f"{source}: entry has neither certificate nor key")
        if certificate is not None:
            try:
                cert_pub = certificate.public_key()
            except (ValueError, UnsupportedAlgorithm) as exc:
                raise SmkiError(f"{source}: unusable certificate public key: {exc}") from None
            _check_curve(cert_pub, source, "certificate public key")
            usage = certificate_usage(certificate)
            if usage is None:
                raise SmkiError(
                    f"{source}: certificate keyUsage is not exclusively "
                    "digitalSignature or keyAgreement"
                )
            if usage is not slot.usage:
                raise SmkiError(f"{source}: {usage} certificate filed as {slot}")
            if public_key is not None and _point(public_key) != _point(cert_pub):  # type: ignore[arg-type]
                raise SmkiError(f"{source}: public key does not match the certificate")
            public_key = cert_pub  # type: ignore[assignment]
            cert_role = certificate_role(certificate)
            if role is None:
                role = cert_role
            elif cert_role is not None and cert_role != role:
                self.warnings.append(
                    f"{source}: role {role} given but certificate OU says {cert_role}"
                )
            cert_eui = certificate_eui(certificate)
            if cert_eui is not None and cert_eui != key:
                self.warnings.append(
                    f"{source}: certificate names EUI {cert_eui.hex()}, filed under {key.hex()}"
                )
        elif public_key is not None:
            _check_curve(public_key, source, "public key")
        if private_key is not None:
            _check_curve(private_key, key_where, "private key")
            derived = private_key.public_key()
            if public_key is None:
                public_key = derived
            elif _point(derived) != _point(public_key):
                what = "certificate" if certificate is not None else "public key"
                raise SmkiError(f"{key_where}: private key does not match the {what} ({source})")
        new = Entry(
            eui=key,
            slot=slot,
            certificate=certificate,
            public_key=public_key,
            private_key=private_key,
            role=role,
            name=name,
            source=source,
            device_type=device_type,
            seq=len(self._entries),
        )
        self._entries.append(new)
        self._by_eui.setdefault(key, []).append(new)
        current = self._active[slot].get(key)
        if (key, slot) not in self._pinned and (current is None or new.rank() < current.rank()):
            self._activate(new)
        return new

    def extend(self, other: KeyStore | Iterable[Entry]) -> None:
        """Add every entry of another store (rigs combining RTDS and generated keys)."""
        for e in list(other):
            self.add(
                eui=e.eui,
                slot=e.slot,
                certificate=e.certificate,
                private_key=e.private_key,
                public_key=e.public_key,
                role=e.role,
                name=e.name,
                source=e.source,
                device_type=e.device_type,
            )
        if isinstance(other, KeyStore):
            self.warnings.extend(other.warnings)
            self.ca_certificates.update(other.ca_certificates)

    def pin(self, eui: bytes | str, slot: Slot | Usage | str, serial: int) -> Entry:
        """Make the certificate with ``serial`` the active one of its slot (e.g. ZAZ1's
        "Z1b" set instead of "Z1"); later :meth:`add` calls no longer replace it."""
        key, slot = parse_eui(eui), to_slot(slot)
        for e in self._by_eui.get(key, ()):
            if e.slot is slot and e.serial == serial:
                self._activate(e)
                self._pinned.add((key, slot))
                return e
        raise KeyError(f"no {slot} certificate with serial {serial} for {key.hex()}")

    def _activate(self, e: Entry) -> None:
        self._active[e.slot][e.eui] = e
        if e.private_key is not None:
            self._priv[e.slot][e.eui] = e.private_key
        else:
            self._priv[e.slot].pop(e.eui, None)
        if e.public_key is not None:
            self._pub[e.slot][e.eui] = e.public_key
        else:
            self._pub[e.slot].pop(e.eui, None)

    # -- Loaders --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> KeyStore:
        """Guess the layout: a PKI folder (manifest.json), a ZAZ1 keystore.json (or a
        folder holding one), an RTDS folder, or a ZAZ1 orgkeys folder."""
        p = Path(path)
        if p.is_file():
            if p.name == "manifest.json":
                return cls.from_pki_folder(p.parent)
            return cls.from_zaz1_json(p)
        if not p.is_dir():
            raise SmkiError(f"{p}: no such file or directory")
        if (p / "manifest.json").is_file():
            return cls.from_pki_folder(p)
        if (p / "keystore.json").is_file():
            return cls.from_zaz1_json(p / "keystore.json")
        names = [c.name for c in p.iterdir()]
        if any(_RTDS_NAME.fullmatch(n) for n in names):
            return cls.from_rtds_folder(p)
        if any(n.endswith(".pem") for n in names):
            return cls.from_orgkeys_folder(p)
        raise SmkiError(f"{p}: no certificates or keys found")

    @classmethod
    def from_rtds_folder(cls, path: str | Path) -> KeyStore:
        """RTDS layout: ``<eui>-<ds|ka|pp-ka|xml-ds>.pem`` (certificate, or a bare PEM
        public key) and ``.key`` (PKCS#8 PEM). Other files and folders are ignored."""
        root = Path(path)
        if not root.is_dir():
            raise SmkiError(f"{root}: not a directory")
        store = cls(source=str(root))
        groups: dict[tuple[bytes, Slot], dict[str, Path]] = {}
        for name in sorted(os.listdir(root)):
            m = _RTDS_NAME.fullmatch(name)
            child = root / name
            if m is None or not child.is_file():
                continue
            eui = bytes.fromhex(m["eui"])
            groups.setdefault((eui, Slot(m["slot"].lower())), {})[m["ext"].lower()] = child
        for (eui, slot), files in groups.items():
            cert = pub = priv = None
            pem, keyfile = files.get("pem"), files.get("key")
            if pem is not None:
                data = _read(pem)
                if b"-----BEGIN CERTIFICATE-----" in data:
                    cert = _load_certificate(data, pem, store.warnings)
                elif b"-----BEGIN PUBLIC KEY-----" in data:
                    pub = _load_public_key(data, pem)
                else:
                    raise SmkiError(f"{pem}: neither a PEM certificate nor a PEM public key")
            if keyfile is not None:
                priv = _load_private_key(_read(keyfile), keyfile)
            store.add(
                eui=eui,
                slot=slot,
                certificate=cert,
                public_key=pub,
                private_key=priv,
                source=str(pem or keyfile),
                key_source=None if keyfile is None else str(keyfile),
            )
        return store

    @classmethod
    def from_zaz1_json(cls, path: str | Path) -> KeyStore:
        """ZAZ1 ``keystore.json``: eui -> digitalSignature|keyAgreement -> serial ->
        {certificate, privateKey, role, name}. XML-signing roles (135/137) go to
        :attr:`Slot.XML_DS`; KA entries named ``...PP-ka`` to :attr:`Slot.PP_KA`."""
        p = Path(path)
        try:
            doc = json.loads(_read(p))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SmkiError(f"{p}: not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise SmkiError(f"{p}: top level must be an object keyed by EUI")
        store = cls(source=str(p))
        for eui_hex, usages in doc.items():
            if not isinstance(eui_hex, str) or not _HEX16.fullmatch(eui_hex):
                raise SmkiError(f"{p}: key {eui_hex!r} is not a 16-hex-digit EUI")
            if not isinstance(usages, dict):
                raise SmkiError(f"{p}#{eui_hex}: must be an object")
            for usage_key, serials in usages.items():
                usage = ZAZ1_USAGE_KEYS.get(usage_key)
                if usage is None or not isinstance(serials, dict):
                    raise SmkiError(f"{p}#{eui_hex}: unknown usage {usage_key!r}")
                for serial, rec in serials.items():
                    where = f"{p}#{eui_hex}/{usage_key}/{serial}"
                    store._add_zaz1_record(eui_hex, usage, serial, rec, where)
        return store

    def _add_zaz1_record(
        self, eui_hex: str, usage: Usage, serial: str, rec: Any, where: str
    ) -> None:
        if not isinstance(rec, dict) or not set(rec) <= {
            "certificate",
            "privateKey",
            "role",
            "name",
        }:
            raise SmkiError(f"{where}: expected {{certificate, privateKey, role, name}}")
        cert = priv = None
        if "certificate" in rec:
            cert = _load_certificate(str(rec["certificate"]).encode(), where, self.warnings)
            if serial.isdigit() and int(serial) != cert.serial_number:
                self.warnings.append(f"{where}: certificate serial is {cert.serial_number}")
        if "privateKey" in rec:
            priv = _load_private_key(str(rec["privateKey"]).encode(), where)
        role = rec.get("role")
        if role is not None and not isinstance(role, int):
            raise SmkiError(f"{where}: role must be a number")
        name = rec.get("name")
        self.add(
            eui=eui_hex,
            slot=_slot_for(usage, role if role is not None else _cert_role(cert), name),
            certificate=cert,
            private_key=priv,
            role=role,
            name=name,
            source=where,
        )

    @classmethod
    def from_orgkeys_folder(cls, path: str | Path) -> KeyStore:
        """ZAZ1 ``orgkeys/``: ``<name>.pem`` certificate with ``<name>.key`` (DER PKCS#8)
        and/or ``<name>.key.pem``; EUI, usage and role come from the certificate."""
        root = Path(path)
        if not root.is_dir():
            raise SmkiError(f"{root}: not a directory")
        store = cls(source=str(root))
        for pem in sorted(root.glob("*.pem")):
            if pem.name.endswith(".key.pem"):
                continue
            cert = _load_certificate(_read(pem), pem, store.warnings)
            eui = certificate_eui(cert)
            if eui is None:
                raise SmkiError(f"{pem}: certificate names no EUI")
            usage = certificate_usage(cert)
            if usage is None:
                raise SmkiError(f"{pem}: keyUsage is not exclusively DS or KA")
            priv = None
            key_path: Path | None = None
            for candidate, der in (
                (pem.with_suffix(".key"), True),
                (root / f"{pem.stem}.key.pem", False),
            ):
                if candidate.is_file():
                    key = _load_private_key(_read(candidate), candidate, der=der)
                    if priv is not None and _point(key.public_key()) != _point(priv.public_key()):
                        raise SmkiError(f"{candidate}: differs from {key_path}")
                    priv, key_path = key, candidate
            store.add(
                eui=eui,
                slot=_slot_for(usage, certificate_role(cert), pem.stem),
                certificate=cert,
                private_key=priv,
                name=pem.stem,
                source=str(pem),
                key_source=None if key_path is None else str(key_path),
            )
        return store

    @classmethod
    def from_pki_folder(cls, path: str | Path) -> KeyStore:
        """A folder written by :func:`gbhil.smki.pki.generate_pki` (reads manifest.json)."""
        root = Path(path)
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise SmkiError(
                f"{root}: no manifest.json (not a gbhil PKI folder; try from_rtds_folder)"
            )
        try:
            manifest = json.loads(_read(manifest_path))
            entries = manifest["entries"]
            cas = manifest.get("cas", [])
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise SmkiError(f"{manifest_path}: not a gbhil PKI manifest ({exc})") from None
        store = cls(source=str(root))
        for ca in cas:
            cert_path = root / ca["certificate"]
            store.ca_certificates[ca["name"]] = _load_certificate(
                _read(cert_path), cert_path, store.warnings
            )
        for row in entries:
            try:
                cert_path = root / row["certificate"]
                key_name = row.get("private_key")
                cert = _load_certificate(_read(cert_path), cert_path, store.warnings)
                key_path = root / key_name if key_name else None
                priv = _load_private_key(_read(key_path), key_path) if key_path else None
                store.add(
                    eui=row["eui"],
                    slot=row["slot"],
                    certificate=cert,
                    private_key=priv,
                    role=row.get("role"),
                    name=row.get("name"),
                    device_type=row.get("device_type"),
                    source=str(cert_path),
                    key_source=None if key_path is None else str(key_path),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise SmkiError(f"{manifest_path}: bad entry {row!r:.80}: {exc}") from None
        return store


# --- Loader helpers -------------------------------------------------------------------------

_RTDS_NAME = re.compile(
    r"(?P<eui>[0-9a-fA-F]{16})-(?P<slot>ds|ka|pp-ka|xml-ds)\.(?P<ext>pem|key)", re.IGNORECASE
)
_HEX16 = re.compile(r"[0-9a-f]{16}")
_PP_NAME = re.compile(r"(pp|prepayment)[-_ ]?ka$", re.IGNORECASE)


def _slot_for(usage: Usage, role: int | None, name: str | None) -> Slot:
    if usage is Usage.DS:
        return Slot.XML_DS if role in XML_SIGNING_ROLES else Slot.DS
    return Slot.PP_KA if name and _PP_NAME.search(name) else Slot.KA


def _cert_role(cert: x509.Certificate | None) -> int | None:
    return None if cert is None else certificate_role(cert)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SmkiError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _load_certificate(data: bytes, where: object, notes: list[str]) -> x509.Certificate:
    """Parse a PEM certificate; cryptography's deprecation warnings become ``notes``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cert = x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise SmkiError(f"{where}: not a valid PEM certificate ({exc})") from None
    # Keep the first sentence of each distinct warning (cryptography repeats them).
    for text in dict.fromkeys(str(w.message).split(". ")[0] for w in caught):
        notes.append(f"{where}: {text}")
    return cert


def _load_public_key(data: bytes, where: object) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SmkiError(f"{where}: not a valid PEM public key ({exc})") from None
    _check_curve(key, str(where), "public key")
    return key  # type: ignore[return-value]


def _load_private_key(data: bytes, where: object, *, der: bool = False) -> PrivateKey:
    # Exception text from the parser is dropped on purpose: never echo key bytes.
    try:
        if der:
            key = serialization.load_der_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SmkiError(f"{where}: private key is encrypted (not supported)") from None
    except (ValueError, UnsupportedAlgorithm):
        kind = "DER PKCS#8" if der else "PEM"
        raise SmkiError(f"{where}: not a valid {kind} private key") from None
    _check_curve(key, str(where), "private key")
    return key  # type: ignore[return-value]
