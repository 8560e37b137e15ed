"""Generate a fresh test PKI for a rig, in the GB SMKI certificate profile.

A rig needs its own keys: the public RTDS/ZAZ1 keys are shared by everybody and
their organisation certificates have expired. This module issues a root CA, an
organisation issuing CA ("OU=07, CN=G1") and a device issuing CA ("CN=G357"),
then DS + KA certificates for each Remote Party and each device EUI, shaped
like the RTDS / ZAZ1 certificates (see :mod:`gbhil.smki.profile`).

With ``seed`` the output is byte-for-byte reproducible: private keys are
HMAC-SHA256(seed, label) mod n and signatures are RFC 6979 deterministic. Seeded
keys are predictable by construction: TEST ONLY.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type  # the only way to ask for BIT STRING / PrintableString
from cryptography.x509.oid import NameOID, ObjectIdentifier

from gbhil.smki.keystore import Entry, KeyStore, SmkiError, format_name, parse_eui
from gbhil.smki.profile import (
    DCC_USER_ROLES,
    DEFAULT_ORGANISATIONS,
    DEVICE_CA_SUBJECT,
    DEVICE_TYPES,
    KEY_ID_BYTES,
    NO_EXPIRY,
    OID_DEVICE_HW_TYPE,
    OID_DEVICE_POLICY,
    OID_HARDWARE_MODULE_NAME,
    OID_ORGANISATION_POLICY,
    ORGANISATION_CA_SUBJECT,
    ORGANISATION_VALIDITY_YEARS,
    PREPAYMENT_ROLES,
    ROLE_ACB,
    ROLE_DCC_USER_XML_SIGNING,
    ROLE_DSP_XML_SIGNING,
    ROLE_ISSUING_AUTHORITY,
    ROLE_ROOT,
    ROOT_CA_SUBJECT,
    SEEDED_NOT_BEFORE,
    SERIAL_BYTES,
    TEST_KEYS_WARNING,
    XML_SIGNING_ROLES,
    Slot,
    Usage,
    role_name,
    role_number,
    role_ou,
)

#: Order n of the P-256 group (private keys are 1..n-1).
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

MANIFEST_FORMAT = "gbhil-smki-pki"
MANIFEST_VERSION = 1
CA_FILES = {"root": "ca/root", "organisation": "ca/organisation-ca", "device": "ca/device-ca"}


# --- DER bits cryptography has no builder for -------------------------------------------


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _der(0x06, bytes(body))


def encode_hardware_module_name(eui: bytes, hw_type: str = OID_DEVICE_HW_TYPE) -> bytes:
    """RFC 4108 HardwareModuleName ::= SEQUENCE { hwType OID, hwSerialNum OCTET STRING }."""
    return _der(0x30, _der_oid(hw_type) + _der(0x04, eui))


def key_identifier(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """8-byte key id as in the RTDS/ZAZ1 certificates: RFC 5280 4.2.1.2 method 2
    (0100 followed by the low 60 bits of SHA-1 of the public key point)."""
    point = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    kid = bytearray(
        hashlib.sha1(point).digest()[-KEY_ID_BYTES:]
    )  # RFC 5280 key id, not a security use
    kid[0] = 0x40 | (kid[0] & 0x0F)
    return bytes(kid)


# --- Keys and serials ---------------------------------------------------------------------


class _Randomness:
    """Private keys and serials: random, or derived from a seed (test rigs only)."""

    def __init__(self, seed: int | None) -> None:
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise SmkiError(f"seed must be a non-negative integer, not {seed!r}")
        self._secret = None if seed is None else f"gbhil-smki-seed:{seed}".encode()

    @property
    def seeded(self) -> bool:
        return self._secret is not None

    def _prf(self, label: str) -> bytes:
        assert self._secret is not None
        return hmac.new(self._secret, label.encode(), hashlib.sha256).digest()

    def private_key(self, label: str) -> ec.EllipticCurvePrivateKey:
        if self._secret is None:
            return ec.generate_private_key(ec.SECP256R1())
        for counter in itertools.count():
            d = int.from_bytes(self._prf(f"key/{label}/{counter}"), "big") % P256_ORDER
            if d:
                return ec.derive_private_key(d, ec.SECP256R1())
        raise AssertionError("unreachable")

    def serial(self, label: str) -> int:
        raw = os.urandom(SERIAL_BYTES) if self._secret is None else self._prf(f"serial/{label}")
        value = int.from_bytes(raw[:SERIAL_BYTES], "big") >> 1  # positive, fits 16 bytes
        return value or 1


# --- Names --------------------------------------------------------------------------------


def _ca_name(subject: tuple[str | None, str]) -> x509.Name:
    ou, cn = subject
    attrs = []
    if ou is not None:
        attrs.append(
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou, _ASN1Type.PrintableString)
        )
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn, _ASN1Type.PrintableString))
    return x509.Name(attrs)


def organisation_subject(role: int, eui: bytes, common_name: str | None = None) -> x509.Name:
    """[CN=name,] OU=<role hex>, x500UniqueIdentifier=<EUI as BIT STRING>."""
    attrs = []
    if common_name:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role_ou(role)))
    # cryptography takes the BIT STRING content: unused-bits octet (0) then the EUI.
    attrs.append(
        x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00" + eui, _ASN1Type.BitString)
    )
    return x509.Name(attrs)


# --- Certificates ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedCa:
    """A generated CA: certificate and signing key (kept to issue more certificates)."""

    name: str
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)


def _midnight(day: dt.datetime) -> dt.datetime:
    return day.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _organisation_not_after(not_before: dt.datetime) -> dt.datetime:
    """notBefore + 10 years - 1 s, as seen (2015-10-30 00:00:00 -> 2025-10-29 23:59:59)."""
    try:
        end = not_before.replace(year=not_before.year + ORGANISATION_VALIDITY_YEARS)
    except ValueError:  # 29 February
        end = not_before.replace(year=not_before.year + ORGANISATION_VALIDITY_YEARS, day=28)
    return end - dt.timedelta(seconds=1)


class _Issuer:
    """Builds certificates in the profile; one instance per generation run."""

    def __init__(self, rnd: _Randomness, not_before: dt.datetime) -> None:
        self.rnd = rnd
        self.not_before = not_before

    def _sign(
        self, builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey
    ) -> x509.Certificate:
        return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=self.rnd.seeded or None)

    def ca(
        self,
        label: str,
        subject: x509.Name,
        issuer: IssuedCa | None,
        policy: str | None,
    ) -> IssuedCa:
        key = self.rnd.private_key(f"ca/{label}")
        pub = key.public_key()
        signer_key = key if issuer is None else issuer.private_key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if issuer is None else issuer.certificate.subject)
            .public_key(pub)
            .serial_number(self.rnd.serial(f"ca/{label}"))
            .not_valid_before(self.not_before)
            .not_valid_after(NO_EXPIRY)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0),
                critical=True,
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier(key_identifier(pub)), critical=False)
        )
        if policy is not None:
            builder = builder.add_extension(_policies(policy), critical=True)
        if issuer is not None:
            builder = builder.add_extension(_aki(issuer), critical=False)
        return IssuedCa(label, self._sign(builder, signer_key), key)

    def end_entity(
        self,
        *,
        label: str,
        slot: Slot,
        issuer: IssuedCa,
        subject: x509.Name,
        eui: bytes,
        device: bool,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """Org: KU, SKI, policies, AKI. Device: KU, SKI, SAN(hardwareModuleName),
        policies, AKI. Same order and criticality as the RTDS certificates."""
        key = self.rnd.private_key(label)
        pub = key.public_key()
        ka = slot.usage is Usage.KA
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject)
            .public_key(pub)
            .serial_number(self.rnd.serial(label))
            .not_valid_before(self.not_before)
            .not_valid_after(NO_EXPIRY if device else _organisation_not_after(self.not_before))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=not ka,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=ka,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier(key_identifier(pub)), critical=False)
        )
        if device:
            san = x509.OtherName(
                ObjectIdentifier(OID_HARDWARE_MODULE_NAME), encode_hardware_module_name(eui)
            )
            builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=True)
        builder = builder.add_extension(
            _policies(OID_DEVICE_POLICY if device else OID_ORGANISATION_POLICY), critical=True
        ).add_extension(_aki(issuer), critical=False)
        return self._sign(builder, issuer.private_key), key


def _policies(oid: str) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(ObjectIdentifier(oid), None)])


def _aki(issuer: IssuedCa) -> x509.AuthorityKeyIdentifier:
    ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return x509.AuthorityKeyIdentifier(ski.value.digest, None, None)


# --- Result ---------------------------------------------------------------------------------


def _file_stem(entry: Entry) -> str:
    return f"{entry.eui.hex()}-{entry.slot}"


@dataclass
class GeneratedPki:
    """What :func:`generate_pki` made: the key store plus the CAs (with their keys)."""

    keystore: KeyStore
    root: IssuedCa
    organisation_ca: IssuedCa
    device_ca: IssuedCa
    seeded: bool
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def cas(self) -> tuple[IssuedCa, IssuedCa, IssuedCa]:
        return (self.root, self.organisation_ca, self.device_ca)

    def manifest(self) -> dict[str, Any]:
        """JSON-ready description of every certificate and the file names used for it
        (no key material). ``from_pki_folder`` reads it back."""
        return {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "warning": TEST_KEYS_WARNING,
            "seeded": self.seeded,
            "profile": {
                "organisation_policy": OID_ORGANISATION_POLICY,
                "device_policy": OID_DEVICE_POLICY,
                "device_hw_type": OID_DEVICE_HW_TYPE,
            },
            "cas": [
                {
                    "name": ca.name,
                    **_cert_facts(ca.certificate),
                    "certificate": f"{CA_FILES[ca.name]}.pem",
                    "private_key": f"{CA_FILES[ca.name]}.key",
                }
                for ca in self.cas
            ],
            "entries": [
                {
                    "eui": e.eui.hex(),
                    "kind": "device" if e.device_type else "organisation",
                    "role": e.role,
                    "role_name": None if e.device_type else role_name(e.role),
                    "device_type": e.device_type,
                    "slot": str(e.slot),
                    "usage": str(e.usage),
                    "name": e.name,
                    **_cert_facts(e.certificate),
                    "certificate": f"{_file_stem(e)}.pem",
                    "private_key": f"{_file_stem(e)}.key",
                }
                for e in self.keystore.entries()
                if e.certificate is not None
            ],
        }


def _cert_facts(cert: x509.Certificate | None) -> dict[str, Any]:
    if cert is None:
        return {}
    return {
        "serial": f"{cert.serial_number:x}",
        "subject": format_name(cert.subject),
        "issuer": format_name(cert.issuer),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


# --- Entry point ------------------------------------------------------------------------------


def generate_pki(
    out_dir: str | Path | None = None,
    *,
    organisations: Mapping[str, bytes | str] | None = None,
    devices: Mapping[bytes | str, str] | None = None,
    seed: int | None = None,
    not_before: dt.datetime | None = None,
    overwrite: bool = False,
) -> GeneratedPki:
    """Issue a test PKI and return it (key store in memory); write it when ``out_dir``.

    ``organisations`` maps role name -> EUI (default: the RTDS parties, see
    ``profile.DEFAULT_ORGANISATIONS``); each gets DS + KA, suppliers a prepayment
    KA, DCC Users (supplier, network operator, other) a role-135 XML-signing cert
    and the ACB a role-137 DSP XML-signing cert. ``devices`` maps EUI -> type
    (``profile.DEVICE_TYPES``); each gets DS + KA. ``not_before`` defaults to
    today 00:00 UTC, or ``SEEDED_NOT_BEFORE`` when seeded (reproducible output).
    Existing files are only replaced with ``overwrite``.
    """
    rnd = _Randomness(seed)
    if not_before is None:
        start = SEEDED_NOT_BEFORE if rnd.seeded else _midnight(dt.datetime.now(dt.UTC))
    elif not_before.tzinfo is None:
        raise SmkiError("not_before must be timezone-aware")
    else:
        start = not_before.astimezone(dt.UTC)
    orgs = _parse_organisations(DEFAULT_ORGANISATIONS if organisations is None else organisations)
    devs = _parse_devices(devices or {})
    clash = set(orgs.values()) & set(devs)
    if clash:
        raise SmkiError(f"EUI {min(clash).hex()} is both an organisation and a device")

    issuer = _Issuer(rnd, start)
    root = issuer.ca("root", _ca_name(ROOT_CA_SUBJECT), None, None)
    org_ca = issuer.ca(
        "organisation", _ca_name(ORGANISATION_CA_SUBJECT), root, OID_ORGANISATION_POLICY
    )
    dev_ca = issuer.ca("device", _ca_name(DEVICE_CA_SUBJECT), root, OID_DEVICE_POLICY)

    store = KeyStore(source=str(out_dir) if out_dir is not None else "<generated>")
    store.ca_certificates = {ca.name: ca.certificate for ca in (root, org_ca, dev_ca)}

    for role, eui in orgs.items():
        slots: list[tuple[Slot, int]] = [(Slot.DS, role), (Slot.KA, role)]
        if role in PREPAYMENT_ROLES:
            slots.append((Slot.PP_KA, role))
        if role in DCC_USER_ROLES:
            slots.append((Slot.XML_DS, ROLE_DCC_USER_XML_SIGNING))
        if role == ROLE_ACB:
            slots.append((Slot.XML_DS, ROLE_DSP_XML_SIGNING))
        for slot, cert_role in slots:
            label = f"org/{eui.hex()}/{slot}"
            cert, key = issuer.end_entity(
                label=label,
                slot=slot,
                issuer=org_ca,
                subject=organisation_subject(cert_role, eui),
                eui=eui,
                device=False,
            )
            store.add(
                eui=eui,
                slot=slot,
                certificate=cert,
                private_key=key,
                role=cert_role,
                name=f"{role_name(role)}-{slot}",
                source=f"<generated {label}>",
            )
    for eui, dtype in devs.items():
        for slot in (Slot.DS, Slot.KA):
            label = f"device/{eui.hex()}/{slot}"
            cert, key = issuer.end_entity(
                label=label,
                slot=slot,
                issuer=dev_ca,
                subject=x509.Name([]),
                eui=eui,
                device=True,
            )
            store.add(
                eui=eui,
                slot=slot,
                certificate=cert,
                private_key=key,
                name=f"{dtype}-{slot}",
                source=f"<generated {label}>",
                device_type=dtype,
            )

    result = GeneratedPki(store, root, org_ca, dev_ca, seeded=rnd.seeded)
    if out_dir is not None:
        _write(Path(out_dir), result, overwrite=overwrite)
    return result


def _parse_organisations(spec: Mapping[str, bytes | str]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    seen: dict[bytes, str] = {}
    for name, eui_value in spec.items():
        try:
            role = role_number(name)
            eui = parse_eui(eui_value)
        except (TypeError, ValueError) as exc:
            raise SmkiError(f"organisation {name!r}: {exc}") from None
        if role in (ROLE_ROOT, ROLE_ISSUING_AUTHORITY) or role in XML_SIGNING_ROLES:
            raise SmkiError(
                f"organisation {name!r}: role {role} is a CA or XML-signing role, "
                "not a Remote Party (those certificates are issued automatically)"
            )
        if eui in seen:
            raise SmkiError(f"organisation {name!r}: EUI {eui.hex()} already used by {seen[eui]!r}")
        seen[eui] = name
        out[role] = eui
    return out


def _parse_devices(spec: Mapping[bytes | str, str]) -> dict[bytes, str]:
    out: dict[bytes, str] = {}
    for eui_value, dtype in spec.items():
        try:
            eui = parse_eui(eui_value)
        except (TypeError, ValueError) as exc:
            raise SmkiError(f"device {eui_value!r}: {exc}") from None
        kind = str(dtype).upper()
        if kind not in DEVICE_TYPES:
            raise SmkiError(
                f"device {eui.hex()}: unknown type {dtype!r} (known: {', '.join(DEVICE_TYPES)})"
            )
        out[eui] = kind
    return out


# --- Writing ----------------------------------------------------------------------------------


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(out_dir: Path, pki: GeneratedPki, *, overwrite: bool) -> None:
    """Write certificates (0644), private keys (0600) and manifest.json."""
    plan: list[tuple[Path, bytes, int]] = []
    for ca in pki.cas:
        stem = CA_FILES[ca.name]
        plan.append((out_dir / f"{stem}.pem", _pem_cert(ca.certificate), 0o644))
        plan.append((out_dir / f"{stem}.key", _pem_key(ca.private_key), 0o600))
    for e in pki.keystore.entries():
        assert e.certificate is not None and e.private_key is not None
        plan.append((out_dir / f"{_file_stem(e)}.pem", _pem_cert(e.certificate), 0o644))
        plan.append((out_dir / f"{_file_stem(e)}.key", _pem_key(e.private_key), 0o600))
    manifest = json.dumps(pki.manifest(), indent=2).encode() + b"\n"
    plan.append((out_dir / "manifest.json", manifest, 0o644))
    if not overwrite:
        for path, _, _ in plan:
            if path.exists():
                raise SmkiError(f"{path}: already exists (pass overwrite=True / --force)")
    try:
        (out_dir / "ca").mkdir(parents=True, exist_ok=True)
        for path, data, mode in plan:
            _write_file(path, data, mode)
    except OSError as exc:
        raise SmkiError(
            f"{exc.filename or out_dir}: cannot write ({exc.strerror or exc})"
        ) from None
    pki.out_dir = out_dir
    pki.files = [path for path, _, _ in plan]


def _write_file(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)  # also tighten a file that existed with a wider mode
        fh.write(data)
