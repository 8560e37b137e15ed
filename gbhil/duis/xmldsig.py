"""XML-DSig in the DUIS profile, byte-compatible with DCC Boxed's Java signing tool.

The profile (duis-facts §3): one enveloped ``ds:Signature``, last child of the root;
SignedInfo canonicalised with exclusive C14N; one ``Reference URI=""`` whose only
transform is ``enveloped-signature``, so the digest is SHA-256 over the *inclusive* C14N
1.0 of the document minus the signature; ECDSA-SHA256 on P-256 with the raw ``r||s``
SignatureValue; ``KeyInfo/X509Data/X509IssuerSerial`` naming the certificate (no
certificate embedded), looked up by serial number like the Java ``Validate``.

Whitespace: the Java parser drops whitespace between elements before digesting, so a
signature is only portable over *compact* XML. :func:`sign` therefore always compacts, and
:func:`verify` by default compacts first too (``java_whitespace``), accepting exactly what
DCC Boxed clients accept, including the pretty-printed re-serialisations in the samples.

Implemented on lxml's C14N and cryptography (no signxml: it needs two non-default options
and a hand-built KeyInfo to produce this profile, and resolves certificates differently).
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from lxml import etree

from gbhil.duis.schema import DEFAULT_MAX_BODY_BYTES, DS_NS, DuisError, parse_xml

# --- Algorithm identifiers (the only ones the DUIS profile uses) ---------------------------

ALG_EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ALG_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
ALG_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
ALG_ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
ALG_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

#: Reference transform lists accepted by :func:`verify`, mapped to "digest exclusively?".
#: DCC Boxed/Java writes only the enveloped transform (-> inclusive C14N 1.0); signxml's
#: default adds an explicit canonicalisation transform after it.
_TRANSFORM_PROFILES: dict[tuple[str, ...], bool] = {
    (ALG_ENVELOPED,): False,
    (ALG_ENVELOPED, ALG_C14N): False,
    (ALG_ENVELOPED, ALG_EXC_C14N): True,
}

_P256_BYTES = 32


def _ds(local: str) -> str:
    return f"{{{DS_NS}}}{local}"


# --- Errors ----------------------------------------------------------------------------------


class SignatureError(DuisError):
    """The document's XML signature is absent or does not verify."""


class NoSignatureError(SignatureError):
    """No ``ds:Signature`` child of the root element."""


class SignatureProfileError(SignatureError):
    """A signature exists but leaves the DUIS profile (algorithms, structure, count)."""


class NoSerialError(SignatureProfileError):
    """``KeyInfo`` does not name exactly one ``X509SerialNumber``."""


class UnknownCertificateError(SignatureError):
    """The resolver knows no certificate with the signature's serial number."""

    def __init__(self, serial: int, issuer: str):
        self.serial = serial
        self.issuer = issuer
        super().__init__(f"no certificate with serial {serial} (issuer {issuer or '?'})")


class DigestMismatchError(SignatureError):
    """The signed content changed: its digest differs from ``DigestValue``."""

    def __init__(self, expected: bytes, actual: bytes):
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"digest mismatch: DigestValue {base64.b64encode(expected).decode()}, "
            f"document {base64.b64encode(actual).decode()}"
        )


class BadSignatureError(SignatureError):
    """``SignatureValue`` does not verify over SignedInfo with the certificate's key."""


class CertificateValidityError(SignatureError):
    """The certificate was not valid at the verification time."""

    def __init__(self, message: str, certificate: x509.Certificate, at: dt.datetime):
        self.certificate = certificate
        self.at = at
        super().__init__(message)


class CertificateExpiredError(CertificateValidityError):
    """The certificate's notAfter is before the verification time."""


class CertificateNotYetValidError(CertificateValidityError):
    """The certificate's notBefore is after the verification time."""


class SigningError(DuisError):
    """The key or certificate handed to :func:`sign` cannot make a DUIS signature."""


# --- Helpers -----------------------------------------------------------------------------------

CertificateResolver = Callable[[int, str], x509.Certificate | None]
XmlInput = bytes | bytearray | memoryview | str | etree._Element | etree._ElementTree


def issuer_name(certificate: x509.Certificate) -> str:
    """Issuer DN as Java's ``X500Principal.getName()`` writes it (RFC 2253: "CN=Z1,OU=07")."""
    return certificate.issuer.rfc4514_string()


def certificate_resolver(certificates: Iterable[x509.Certificate]) -> CertificateResolver:
    """A resolver looking certificates up by serial number only, as the Java tool does."""
    by_serial = {c.serial_number: c for c in certificates}

    def resolve(serial: int, issuer: str) -> x509.Certificate | None:
        return by_serial.get(serial)

    return resolve


def keystore_resolver(store: Any) -> CertificateResolver:
    """A resolver over every certificate of a :class:`gbhil.smki.KeyStore` (any slot)."""
    return certificate_resolver(
        e.certificate for e in store.entries() if getattr(e, "certificate", None) is not None
    )


def compact(root: etree._Element) -> etree._Element:
    """Drop whitespace-only text in element-only content, in place (what the Java parser's
    ``ignoringElementContentWhitespace`` does for DUIS, which has no mixed content).
    Leaf text is never touched."""
    for element in root.iter():
        if len(element):
            if element.text is not None and not element.text.strip():
                element.text = None
            for child in element:
                if child.tail is not None and not child.tail.strip():
                    child.tail = None
    return root


def _detach(element: etree._Element) -> None:
    """Remove ``element`` but keep its tail text in the document (enveloped transform)."""
    parent = element.getparent()
    if parent is None:
        raise SignatureProfileError("the signature cannot be the document element")
    tail = element.tail
    previous = element.getprevious()
    parent.remove(element)
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


def _load(xml: XmlInput, max_bytes: int, *, in_place: bool = False) -> etree._ElementTree:
    """A private tree: parsed from bytes with :func:`parse_xml`, or a deep copy (or the
    caller's own tree when it hands it over with ``in_place``)."""
    if isinstance(xml, etree._ElementTree):
        return xml if in_place else copy.deepcopy(xml)
    if isinstance(xml, etree._Element):
        return etree.ElementTree(xml if in_place else copy.deepcopy(xml))
    return parse_xml(xml, max_bytes=max_bytes)


def _c14n(node: etree._ElementTree | etree._Element, *, exclusive: bool) -> bytes:
    return etree.tostring(node, method="c14n", exclusive=exclusive, with_comments=False)


def serialize(tree: etree._ElementTree | etree._Element) -> bytes:
    """Compact UTF-8 bytes with an XML declaration, as sent on the wire."""
    body = etree.tostring(tree, encoding="UTF-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + body


# --- Signing -------------------------------------------------------------------------------------


def _check_key(private_key: object, certificate: x509.Certificate) -> ec.EllipticCurvePrivateKey:
    if not isinstance(private_key, ec.EllipticCurvePrivateKey):
        raise SigningError(f"DUIS signatures need an EC key, got {type(private_key).__name__}")
    if not isinstance(private_key.curve, ec.SECP256R1):
        raise SigningError(f"DUIS signatures need a P-256 key, got {private_key.curve.name}")
    public = certificate.public_key()
    if (
        not isinstance(public, ec.EllipticCurvePublicKey)
        or public.public_numbers() != private_key.public_key().public_numbers()
    ):
        raise SigningError(
            f"private key does not match certificate serial {certificate.serial_number}"
        )
    return private_key


def _sub(parent: etree._Element, local: str, text: str | None = None, **attrib: str) -> Any:
    element = etree.SubElement(parent, _ds(local), attrib)
    if text is not None:
        element.text = text
    return element


class _Signer:
    """One checked (key, certificate) pair and its ready-made ``ds:Signature`` skeleton:
    the key match and the KeyInfo never change, so each signature only copies it."""

    __slots__ = ("certificate", "key", "template")

    def __init__(self, private_key: object, certificate: x509.Certificate):
        self.key = _check_key(private_key, certificate)
        self.certificate = certificate
        signature = etree.Element(_ds("Signature"), nsmap={"ds": DS_NS})
        signed_info = _sub(signature, "SignedInfo")
        _sub(signed_info, "CanonicalizationMethod", Algorithm=ALG_EXC_C14N)
        _sub(signed_info, "SignatureMethod", Algorithm=ALG_ECDSA_SHA256)
        reference = _sub(signed_info, "Reference", URI="")
        _sub(_sub(reference, "Transforms"), "Transform", Algorithm=ALG_ENVELOPED)
        _sub(reference, "DigestMethod", Algorithm=ALG_SHA256)
        _sub(reference, "DigestValue", "")
        _sub(signature, "SignatureValue", "")
        issuer_serial = _sub(_sub(_sub(signature, "KeyInfo"), "X509Data"), "X509IssuerSerial")
        _sub(issuer_serial, "X509IssuerName", issuer_name(certificate))
        _sub(issuer_serial, "X509SerialNumber", str(certificate.serial_number))
        self.template = signature


#: Signers by the identity of their (key, certificate) objects; each entry holds both
#: objects, so an id cannot be reused while its entry exists.
_SIGNERS: dict[tuple[int, int], _Signer] = {}
_MAX_SIGNERS = 256


def _signer(private_key: object, certificate: x509.Certificate) -> _Signer:
    found = _SIGNERS.get((id(private_key), id(certificate)))
    if found is not None and found.key is private_key and found.certificate is certificate:
        return found
    signer = _Signer(private_key, certificate)  # raises SigningError: nothing cached
    if len(_SIGNERS) >= _MAX_SIGNERS:
        _SIGNERS.clear()
    _SIGNERS[(id(private_key), id(certificate))] = signer
    return signer


def sign(
    xml: XmlInput,
    private_key: ec.EllipticCurvePrivateKey,
    certificate: x509.Certificate,
    *,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    in_place: bool = False,
) -> bytes:
    """Sign a DUIS document the way the DCC Boxed Java ``Sign`` does; returns compact bytes.

    Any ``ds:Signature`` child of the root (e.g. a template's placeholder) is removed
    first and the XML is compacted, since Java verifiers digest compact XML only. An
    element or tree argument is copied, never modified, unless ``in_place`` says the
    caller gives it up (a freshly built response: no serialise-and-reparse round trip).
    """
    signer = _signer(private_key, certificate)
    tree = _load(xml, max_bytes, in_place=in_place)
    root = tree.getroot()
    for old in root.findall(_ds("Signature")):
        _detach(old)
    compact(root)
    digest = hashlib.sha256(_c14n(tree, exclusive=False)).digest()

    # Declared on the new element itself (as SubElement does), whatever prefixes the
    # document already binds to the ds namespace; the skeleton's parts go under it.
    signature = etree.SubElement(root, _ds("Signature"), nsmap={"ds": DS_NS})
    signature.extend([copy.deepcopy(part) for part in signer.template])
    signed_info, value = signature[0], signature[1]
    signed_info[2][2].text = base64.b64encode(digest).decode("ascii")  # Reference/DigestValue

    der = signer.key.sign(_c14n(signed_info, exclusive=True), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    raw = r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")
    value.text = base64.b64encode(raw).decode("ascii")
    return serialize(tree)


# --- Verification --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    """A signature that verified: who signed, when it was checked, and what was signed."""

    certificate: x509.Certificate
    serial: int
    issuer: str
    #: The signed document with the signature removed (compacted in Java mode): continue
    #: processing *this* tree, not the inbound bytes.
    root: etree._Element
    digest: bytes
    checked_at: dt.datetime
    java_whitespace: bool

    def signed_bytes(self) -> bytes:
        """Inclusive C14N of what the digest covers (the Java tool's "referenced bytes")."""
        return _c14n(self.root.getroottree(), exclusive=False)


def _only(parent: etree._Element, local: str, what: str) -> etree._Element:
    found = parent.findall(_ds(local))
    if len(found) != 1:
        raise SignatureProfileError(f"{what}: expected one ds:{local}, found {len(found)}")
    return found[0]


def _algorithm(parent: etree._Element, local: str, expected: str) -> None:
    element = _only(parent, local, f"ds:{etree.QName(parent).localname}")
    algorithm = element.get("Algorithm")
    if algorithm != expected:
        raise SignatureProfileError(f"ds:{local} {algorithm!r} is not the profile's {expected}")
    if len(element):
        raise SignatureProfileError(f"ds:{local} must not have child elements")


def _b64(text: str | None, what: str, error: type[SignatureError]) -> bytes:
    cleaned = "".join((text or "").split())  # Java wraps with "&#13;\n"
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not base64") from None


def _as_utc(when: dt.datetime | None) -> dt.datetime:
    if when is None:
        return dt.datetime.now(dt.UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def verify(
    xml: XmlInput,
    resolve_certificate: CertificateResolver,
    at: dt.datetime | None = None,
    *,
    java_whitespace: bool = True,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
    in_place: bool = False,
) -> VerifiedSignature:
    """Verify the DUIS signature of ``xml``; raise the precise :class:`SignatureError`.

    ``resolve_certificate(serial, issuer_name)`` returns the signer's certificate or None.
    ``at`` is the verification time (naive means UTC; None means the wall clock, so
    simulations should pass their clock's time). Checks, in order: a single root-child
    signature in the profile, a single serial, a known certificate, the digest, the
    signature value, then the certificate's validity period at ``at``. With
    ``java_whitespace`` (default) inter-element whitespace is dropped first, as the DCC
    Boxed Java validator does; ``False`` verifies the bytes exactly as given. An element
    or tree argument is copied first unless ``in_place`` says the caller gives it up (it
    is then compacted and loses its signature).
    """
    tree = _load(xml, max_bytes, in_place=in_place)
    root = tree.getroot()
    if java_whitespace:
        compact(root)
    signatures = root.findall(_ds("Signature"))
    if not signatures:
        raise NoSignatureError("no ds:Signature child of the root element (unsigned)")
    if len(signatures) > 1:
        raise SignatureProfileError(f"{len(signatures)} ds:Signature elements, expected one")
    signature = signatures[0]
    children = [etree.QName(c).localname for c in signature if isinstance(c.tag, str)]
    if children[:2] != ["SignedInfo", "SignatureValue"] or set(children[2:]) - {"KeyInfo"}:
        raise SignatureProfileError(f"ds:Signature content {children} is not in the profile")

    signed_info = _only(signature, "SignedInfo", "ds:Signature")
    _algorithm(signed_info, "CanonicalizationMethod", ALG_EXC_C14N)
    _algorithm(signed_info, "SignatureMethod", ALG_ECDSA_SHA256)
    reference = _only(signed_info, "Reference", "ds:SignedInfo")
    if reference.get("URI") != "":
        raise SignatureProfileError(f'Reference URI {reference.get("URI")!r} is not ""')
    transform_path = f"{_ds('Transforms')}/{_ds('Transform')}"
    transform_elements = list(reference.iterfind(transform_path))
    if any(len(t) for t in transform_elements):
        raise SignatureProfileError("Transform parameters (e.g. InclusiveNamespaces) are not used")
    transforms = tuple(t.get("Algorithm") or "" for t in transform_elements)
    exclusive_digest = _TRANSFORM_PROFILES.get(transforms)
    if exclusive_digest is None:
        raise SignatureProfileError(f"Reference transforms {list(transforms)} are not supported")
    _algorithm(reference, "DigestMethod", ALG_SHA256)
    expected = _b64(_only(reference, "DigestValue", "ds:Reference").text, "DigestValue",
                    SignatureProfileError)
    raw_signature = _b64(_only(signature, "SignatureValue", "ds:Signature").text,
                         "SignatureValue", BadSignatureError)

    key_info = signature.find(_ds("KeyInfo"))
    serials = [] if key_info is None else key_info.findall(f".//{_ds('X509SerialNumber')}")
    if len(serials) != 1:
        raise NoSerialError(f"KeyInfo must name exactly one X509SerialNumber, found {len(serials)}")
    serial_text = (serials[0].text or "").strip()
    if not (serial_text.isascii() and serial_text.isdigit()):
        raise NoSerialError(f"X509SerialNumber {serial_text!r} is not a decimal number")
    serial = int(serial_text)
    issuer_element = serials[0].getparent().find(_ds("X509IssuerName"))
    issuer = "" if issuer_element is None else (issuer_element.text or "").strip()

    try:
        certificate = resolve_certificate(serial, issuer)
    except LookupError:
        certificate = None
    if certificate is None:
        raise UnknownCertificateError(serial, issuer)
    public_key = certificate.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise BadSignatureError(f"certificate serial {serial} does not hold a P-256 key")

    signed_info_c14n = _c14n(signed_info, exclusive=True)
    _detach(signature)  # the enveloped-signature transform
    actual = hashlib.sha256(_c14n(tree, exclusive=exclusive_digest)).digest()
    if not hmac.compare_digest(actual, expected):
        raise DigestMismatchError(expected, actual)

    if len(raw_signature) != 2 * _P256_BYTES:
        raise BadSignatureError(
            f"SignatureValue is {len(raw_signature)} bytes, expected 64 (r||s on P-256)"
        )
    r = int.from_bytes(raw_signature[:_P256_BYTES], "big")
    s = int.from_bytes(raw_signature[_P256_BYTES:], "big")
    try:
        public_key.verify(
            utils.encode_dss_signature(r, s), signed_info_c14n, ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        raise BadSignatureError(
            f"SignatureValue does not verify with certificate serial {serial}"
        ) from None

    when = _as_utc(at)
    if when > certificate.not_valid_after_utc:
        raise CertificateExpiredError(
            f"certificate serial {serial} expired {certificate.not_valid_after_utc.isoformat()}"
            f", verification time {when.isoformat()}",
            certificate,
            when,
        )
    if when < certificate.not_valid_before_utc:
        raise CertificateNotYetValidError(
            f"certificate serial {serial} is valid from "
            f"{certificate.not_valid_before_utc.isoformat()}, verification time "
            f"{when.isoformat()}",
            certificate,
            when,
        )
    return VerifiedSignature(
        certificate=certificate,
        serial=serial,
        issuer=issuer,
        root=root,
        digest=actual,
        checked_at=when,
        java_whitespace=java_whitespace,
    )


def remove_signature(xml: XmlInput, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> bytes:
    """The document without its root-child signature(s), compacted (e.g. a template
    with its placeholder signature stripped)."""
    tree = _load(xml, max_bytes)
    root = tree.getroot()
    for old in root.findall(_ds("Signature")):
        _detach(old)
    compact(root)
    return serialize(tree)
