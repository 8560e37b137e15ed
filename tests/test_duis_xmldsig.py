"""gbhil.duis.xmldsig: the DUIS XML-DSig profile against DCC-signed samples, the ZAZ1 keys
and the request templates (placeholder signatures stripped and re-signed)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gbhil.duis.schema import DS_NS, SR_NS, DuisError, DuisForbiddenError, load_schema, parse_xml
from gbhil.duis.xmldsig import (
    ALG_EXC_C14N,
    BadSignatureError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateResolver,
    DigestMismatchError,
    NoSerialError,
    NoSignatureError,
    SignatureProfileError,
    SigningError,
    UnknownCertificateError,
    certificate_resolver,
    issuer_name,
    keystore_resolver,
    remove_signature,
    sign,
    verify,
)
from gbhil.smki import KeyStore

DS = f"{{{DS_NS}}}"
SR = f"{{{SR_NS}}}"
USER_KEY = "xml-sign-90B3D51F30010000-ds"
DSP_KEY = "dsp-xml-sign-90B3D51F30000002-ds"

#: Genuinely signed DCC responses: sample -> (certificate name, verification time or None).
SIGNED_SAMPLES = {
    "readfw-response.xml": ("dsp-xml-sign-90B3D51F30000002-ds-pre-1.4.1", None),
    "readfw-response-resigned.xml": ("Z1-accessControlBroker-dSPXmlSign", None),
    "read-inventory-response-5.4.xml": ("Z1-accessControlBroker-dSPXmlSign", None),
    "read-inventory-response-4g.xml": (DSP_KEY, None),
    # Z1-accessControlBroker-ds expired 2025-10-29: verify at the ResponseDateTime.
    "message.xml": ("Z1-accessControlBroker-ds", dt.datetime(2022, 6, 16, 16, 34, 15, 844000,
                                                               tzinfo=dt.UTC)),
}

NEGATIVE_SAMPLES = {
    "readfw-response-badsignature.xml": BadSignatureError,
    "readfw-response-invalid.xml": DigestMismatchError,
    "readfw-response-no-serial.xml": NoSerialError,
    "readfw-response-no-signature.xml": NoSignatureError,
    "readfw-response-nonexist-serial.xml": UnknownCertificateError,
    "message2.xml": NoSignatureError,
    "acknowledgement-error.xml": NoSignatureError,
    "duis-xxe.xml": DuisForbiddenError,
    # placeholder signatures ("default", serial 1234567890) name no real certificate
    "ECS17b_4.1.1_SINGLE_SUCCESS_REQUEST_DUIS-signed.XML": UnknownCertificateError,
}


@pytest.fixture(scope="session")
def duis_dir(conformance_dir: Path) -> Path:
    path = conformance_dir / "duis"
    if not (path / "samples").is_dir():
        pytest.skip(f"DUIS conformance data not found at {path}")
    return path


@pytest.fixture(scope="session")
def orgkeys(zaz1_dir: Path) -> Path:
    return zaz1_dir / "orgkeys"


@pytest.fixture(scope="session")
def resolver(orgkeys: Path) -> CertificateResolver:
    """Every ZAZ1 organisation certificate, through gbhil.smki's key store."""
    return keystore_resolver(KeyStore.from_orgkeys_folder(orgkeys))


def _cert(orgkeys: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((orgkeys / f"{name}.pem").read_bytes())


def _key(orgkeys: Path, name: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_der_private_key((orgkeys / f"{name}.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@pytest.fixture(scope="session")
def user_signer(orgkeys: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    return _key(orgkeys, USER_KEY), _cert(orgkeys, USER_KEY)


# --- DCC-signed samples -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SIGNED_SAMPLES))
def test_dcc_signed_samples_verify(duis_dir: Path, orgkeys: Path, resolver: CertificateResolver,
                                   name: str) -> None:
    cert_name, at = SIGNED_SAMPLES[name]
    data = (duis_dir / "samples" / name).read_bytes()
    result = verify(data, resolver, at)
    assert result.certificate == _cert(orgkeys, cert_name)
    assert result.issuer == "CN=Z1,OU=07"
    assert result.root.find(f"{DS}Signature") is None
    assert b"Signature" not in result.signed_bytes()
    assert verify(data, resolver, at, java_whitespace=False).digest == result.digest


def test_expired_certificate_at_verification_time(duis_dir: Path,
                                                  resolver: CertificateResolver) -> None:
    data = (duis_dir / "samples" / "message.xml").read_bytes()
    with pytest.raises(CertificateExpiredError) as caught:
        verify(data, resolver, dt.datetime(2025, 10, 30, tzinfo=dt.UTC))
    assert caught.value.certificate.serial_number == 117636141832862931915946451229571981153
    with pytest.raises(CertificateExpiredError):
        verify(data, resolver)  # the wall clock is past 2025-10-29 as well
    with pytest.raises(CertificateNotYetValidError):
        verify(data, resolver, dt.datetime(2000, 1, 1))  # naive means UTC


@pytest.mark.parametrize("name", sorted(NEGATIVE_SAMPLES))
def test_negative_samples_fail_precisely(duis_dir: Path, resolver: CertificateResolver,
                                         name: str) -> None:
    at = dt.datetime(2022, 6, 23, 13, 42, 52, tzinfo=dt.UTC)
    with pytest.raises(NEGATIVE_SAMPLES[name]):
        verify((duis_dir / "samples" / name).read_bytes(), resolver, at)


def test_unknown_serial_is_reported(duis_dir: Path, resolver: CertificateResolver) -> None:
    data = (duis_dir / "samples" / "readfw-response-nonexist-serial.xml").read_bytes()
    with pytest.raises(UnknownCertificateError) as caught:
        verify(data, resolver)
    assert caught.value.serial == 217636141832862931915946451229571981153
    assert caught.value.issuer == "CN=Z1,OU=07"


def test_java_whitespace_semantics(duis_dir: Path, resolver: CertificateResolver) -> None:
    """The no-serial sample is a pretty-printed copy of a DCC-signed response. With its
    KeyInfo restored it verifies only the Java way: whitespace dropped before digesting."""
    tree = parse_xml((duis_dir / "samples" / "readfw-response-no-serial.xml").read_bytes())
    signature = tree.getroot().find(f"{DS}Signature")
    assert signature is not None
    issuer_serial = etree.SubElement(
        etree.SubElement(etree.SubElement(signature, f"{DS}KeyInfo"), f"{DS}X509Data"),
        f"{DS}X509IssuerSerial",
    )
    etree.SubElement(issuer_serial, f"{DS}X509IssuerName").text = "CN=Z1,OU=07"
    etree.SubElement(issuer_serial, f"{DS}X509SerialNumber").text = (
        "117636141832862931915946451229571981153"
    )
    at = dt.datetime(2022, 6, 23, 13, 42, 52, tzinfo=dt.UTC)
    assert verify(tree, resolver, at).serial == 117636141832862931915946451229571981153
    with pytest.raises(DigestMismatchError):
        verify(tree, resolver, at, java_whitespace=False)


# --- Signing the templates ---------------------------------------------------------------------


def test_templates_sign_and_verify(duis_dir: Path, resolver: CertificateResolver,
                                   user_signer, record_property) -> None:
    key, cert = user_signer
    schema = load_schema(folder=duis_dir / "schema")
    templates = sorted((duis_dir / "templates").glob("*.XML"))
    assert templates
    for path in templates:
        raw = path.read_bytes()
        with pytest.raises(UnknownCertificateError):  # the placeholder never verifies
            verify(raw, resolver)
        signed = sign(raw, key, cert)
        assert b">\n" not in signed and b">  <" not in signed, "must be compact"
        tree = parse_xml(signed)
        assert len(tree.getroot().findall(f"{DS}Signature")) == 1
        assert b"ZGVmYXVsdA==" not in signed
        schema.validate(tree)
        result = verify(signed, resolver)
        assert result.serial == cert.serial_number
        assert verify(signed, resolver, java_whitespace=False).digest == result.digest
    record_property("duis_templates_signed_and_verified", len(templates))


def test_signature_layout_matches_the_java_tool(duis_dir: Path, user_signer) -> None:
    key, cert = user_signer
    raw = (duis_dir / "templates" / "ECS17b_4.1.1_REQUEST_DUIS.XML").read_bytes()
    root = parse_xml(sign(raw, key, cert)).getroot()
    signature = root[-1]
    assert signature.tag == f"{DS}Signature" and signature.prefix == "ds"
    algorithms = [e.get("Algorithm") for e in signature.iter() if e.get("Algorithm")]
    assert algorithms == [
        ALG_EXC_C14N,
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/04/xmlenc#sha256",
    ]
    assert signature.find(f"{DS}SignedInfo/{DS}Reference").get("URI") == ""
    value = base64.b64decode(signature.findtext(f"{DS}SignatureValue"))
    assert len(value) == 64  # raw r||s
    assert signature.findtext(f".//{DS}X509IssuerName") == issuer_name(cert) == "CN=Z1,OU=07"
    assert signature.findtext(f".//{DS}X509SerialNumber") == str(cert.serial_number)
    assert signature.find(f".//{DS}X509Certificate") is None


def test_remove_signature(duis_dir: Path) -> None:
    raw = (duis_dir / "templates" / "ECS17b_4.1.1_REQUEST_DUIS.XML").read_bytes()
    stripped = remove_signature(raw)
    assert b"Signature" not in stripped and b">\n" not in stripped


# --- Tampering and profile violations ---------------------------------------------------------


@pytest.fixture()
def signed_request(duis_dir: Path, user_signer) -> bytes:
    key, cert = user_signer
    return sign((duis_dir / "templates" / "ECS17b_4.1.1_REQUEST_DUIS.XML").read_bytes(), key, cert)


def test_tampered_content_fails_the_digest(signed_request: bytes,
                                           resolver: CertificateResolver) -> None:
    tampered = signed_request.replace(b"<sr:ServiceReferenceVariant>4.1.1<",
                                      b"<sr:ServiceReferenceVariant>4.1.2<")
    assert tampered != signed_request
    with pytest.raises(DigestMismatchError):
        verify(tampered, resolver)


def test_tampered_signed_info_fails_the_signature(signed_request: bytes,
                                                  resolver: CertificateResolver) -> None:
    root = parse_xml(signed_request).getroot()
    value = root.find(f"{DS}Signature/{DS}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[40] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(BadSignatureError):
        verify(root, resolver)


def test_digest_value_swap_fails_the_signature(signed_request: bytes,
                                               resolver: CertificateResolver) -> None:
    """Editing content *and* the DigestValue still breaks the SignedInfo signature."""
    root = parse_xml(signed_request.replace(b">4.1.1<", b">4.1.2<")).getroot()
    signature = root.find(f"{DS}Signature")
    root.remove(signature)
    digest = hashlib.sha256(etree.tostring(root, method="c14n")).digest()
    root.append(signature)
    signature.find(f".//{DS}DigestValue").text = base64.b64encode(digest).decode()
    with pytest.raises(BadSignatureError):
        verify(root, resolver)


def test_other_known_certificate_fails(signed_request: bytes, orgkeys: Path,
                                       resolver: CertificateResolver) -> None:
    other = str(_cert(orgkeys, DSP_KEY).serial_number).encode()
    original = b"27572613927499351639968579586655397031"
    with pytest.raises(BadSignatureError):
        verify(signed_request.replace(original, other), resolver)


def test_removed_signature(signed_request: bytes, resolver: CertificateResolver) -> None:
    with pytest.raises(NoSignatureError):
        verify(remove_signature(signed_request), resolver)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"xmldsig-more#ecdsa-sha256", b"xmldsig-more#rsa-sha256"),
        (b"xmlenc#sha256", b"xmlenc#sha512"),
        (b"2001/10/xml-exc-c14n#", b"2006/12/xml-c14n11"),
        (b'Reference URI=""', b'Reference URI="#body"'),
        (b"#enveloped-signature", b"#base64"),
        (b'#enveloped-signature"/>',
         b'#enveloped-signature"><ds:XPath>1</ds:XPath></ds:Transform>'),
        (b"</ds:KeyInfo>", b"</ds:KeyInfo><ds:Object/>"),
        (b"</ds:SignedInfo>", b"<ds:Reference URI=''/></ds:SignedInfo>"),
    ],
)
def test_profile_violations(signed_request: bytes, resolver: CertificateResolver,
                            old: bytes, new: bytes) -> None:
    assert old in signed_request
    with pytest.raises(SignatureProfileError):
        verify(signed_request.replace(old, new, 1), resolver)


def test_two_signatures_are_refused(signed_request: bytes, resolver: CertificateResolver) -> None:
    root = parse_xml(signed_request).getroot()
    root.append(parse_xml(signed_request).getroot()[-1])
    with pytest.raises(SignatureProfileError, match="2 ds:Signature"):
        verify(root, resolver)


def test_signing_refuses_unsuitable_keys(duis_dir: Path, orgkeys: Path, user_signer) -> None:
    raw = (duis_dir / "templates" / "ECS17b_4.1.1_REQUEST_DUIS.XML").read_bytes()
    _, cert = user_signer
    with pytest.raises(SigningError, match="does not match"):
        sign(raw, _key(orgkeys, DSP_KEY), cert)
    with pytest.raises(SigningError, match="P-256"):
        sign(raw, ec.generate_private_key(ec.SECP384R1()), cert)
    with pytest.raises(SigningError, match="EC key"):
        sign(raw, object(), cert)  # type: ignore[arg-type]


# --- Properties (no conformance data needed) ---------------------------------------------------


@functools.cache
def _ephemeral() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gbhil-test")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=36500))
        .sign(key, hashes.SHA256())
    )
    return key, cert


XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from("\t\n\r <>&\"'"),
    max_size=80,
)


def _document(payload: str) -> etree._Element:
    root = etree.Element(f"{SR}Response", nsmap={"sr": SR_NS})
    root.set("schemaVersion", "5.4")
    body = etree.SubElement(etree.SubElement(root, f"{SR}Body"), f"{SR}Payload")
    body.text = payload
    body.set("note", payload)
    return root


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=XML_TEXT, java=st.booleans())
def test_sign_verify_round_trip(payload: str, java: bool) -> None:
    key, cert = _ephemeral()
    resolve = certificate_resolver([cert])
    signed = sign(_document(payload), key, cert)
    result = verify(signed, resolve, java_whitespace=java)
    assert result.root.find(f"{SR}Body/{SR}Payload").text in (payload, None)
    tampered = parse_xml(signed).getroot()
    tampered.find(f"{SR}Body/{SR}Payload").set("note", payload + "x")
    with pytest.raises(DigestMismatchError):
        verify(tampered, resolve, java_whitespace=java)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_verify_raises_only_its_own_errors(data: bytes) -> None:
    _, cert = _ephemeral()
    with contextlib.suppress(DuisError):
        verify(data, certificate_resolver([cert]))
