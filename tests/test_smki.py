"""gbhil.smki: loading the public test key stores, generating a rig PKI, the CLI."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import inspect
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.smki import (
    KeyStore,
    Slot,
    SmkiError,
    Usage,
    certificate_eui,
    certificate_usage,
    generate_pki,
    parse_eui,
)
from gbhil.smki import cli as smki_cli
from gbhil.smki.keystore import decode_hardware_module_name
from gbhil.smki.pki import P256_ORDER, GeneratedPki
from gbhil.smki.profile import (
    DEFAULT_ORGANISATIONS,
    OID_DEVICE_POLICY,
    OID_HARDWARE_MODULE_NAME,
    OID_ORGANISATION_POLICY,
    ROLE_ACB,
    ROLE_DCC_USER_XML_SIGNING,
    ROLE_DSP_XML_SIGNING,
    ROLE_NETWORK_OPERATOR,
    ROLE_OTHER,
    ROLE_SUPPLIER,
)

SUPPLIER = bytes.fromhex("90b3d51f30010000")
NETWORK_OPERATOR = bytes.fromhex("90b3d51f30020000")
ACB = bytes.fromhex("90b3d51f30000002")
ESME = bytes.fromhex("00db1234567890a0")
GSME = bytes.fromhex("00db1234567890a1")
#: 1.2.826.0.1.8641679.1.2.2.1 encoded (the hwType of every RTDS device certificate)
HW_TYPE_DER = bytes.fromhex("2a863a0001848fb90f01020201")
DEVICES = {
    "00-DB-12-34-56-78-90-A0": "ESME",
    "00db1234567890a1": "GSME",
    "00db1234567890a2": "chf",
    "00db1234567890a3": "GPF",
    "00db1234567890a4": "PPMID",
    "00db1234567890a5": "HCALCS",
    "00db1234567890a6": "HHT",
}


def point(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# --- RTDS key folder ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rtds(rtds_keystore_dir: Path) -> KeyStore:
    return KeyStore.from_rtds_folder(rtds_keystore_dir)


@pytest.mark.conformance
def test_rtds_counts(rtds: KeyStore) -> None:
    stats = rtds.stats()
    assert stats["certificates"] == 416
    assert stats["private_keys"] == 18
    assert stats["public_keys"] == 1
    # 200 devices, 8 organisations, 3 special test entries
    assert stats["euis"] == 211


@pytest.mark.conformance
def test_rtds_lookups_by_eui(rtds: KeyStore) -> None:
    assert rtds.ds_public(ESME) is not None
    assert rtds.ka_public(ESME) is not None
    assert rtds.ka_private(ESME) is None  # devices: certificates only
    assert rtds.ds_private(SUPPLIER) is not None
    assert rtds.ka_public("00-DB-12-34-56-78-90-A0") is rtds.ka_public(ESME)
    assert rtds.ds_public("90B3D51F30010000") is rtds.ds_public(SUPPLIER)
    assert rtds.ka_public(bytes(8)) is None
    assert rtds.role(SUPPLIER) == ROLE_SUPPLIER
    assert rtds.role(ACB) == ROLE_ACB
    assert rtds.role(NETWORK_OPERATOR) == ROLE_NETWORK_OPERATOR
    assert rtds.role(ESME) is None
    assert SUPPLIER in rtds.euis() and ESME in rtds
    # the same key object every time: lookups are dict gets, nothing re-parsed
    assert rtds.ds_public(ESME) is rtds.ds_public(ESME)
    assert certificate_eui(rtds.certificate(ESME, "ds")) == ESME
    assert certificate_eui(rtds.certificate(SUPPLIER, "keyAgreement")) == SUPPLIER


@pytest.mark.conformance
@pytest.mark.parametrize("eui", [SUPPLIER, ACB], ids=["supplier", "acb"])
def test_rtds_ka_private_matches_certificate(rtds: KeyStore, eui: bytes) -> None:
    cert = rtds.certificate(eui, "ka")
    assert cert is not None and certificate_usage(cert) is Usage.KA
    assert point(rtds.ka_private(eui)) == point(cert.public_key())
    assert point(rtds.ka_public(eui)) == point(cert.public_key())
    assert point(rtds.ds_private(eui)) == point(rtds.ds_public(eui))


@pytest.mark.conformance
def test_rtds_prepayment_ka_is_separate(rtds: KeyStore) -> None:
    pp = rtds.ka_private(SUPPLIER, prepayment=True)
    assert pp is not None
    assert point(pp) != point(rtds.ka_private(SUPPLIER))
    assert point(pp) == point(rtds.certificate(SUPPLIER, "ka", prepayment=True).public_key())
    assert rtds.ka_private(ACB, prepayment=True) is None


@pytest.mark.conformance
def test_rtds_special_entries(rtds: KeyStore) -> None:
    bare = bytes.fromhex("fffffffffffffffe")
    assert rtds.ka_public(bare) is not None
    assert rtds.certificate(bare, "ka") is None
    for key_only in ("abababababababab", "123456789abcdef0"):
        priv = rtds.ka_private(key_only)
        assert priv is not None
        assert point(rtds.ka_public(key_only)) == point(priv)
    # 90b3d51f30000007-ka.pem holds the second supplier's certificate: kept, flagged
    assert any("90b3d51f30000007-ka.pem" in w for w in rtds.warnings)


@pytest.mark.conformance
def test_rtds_repr_and_errors_hide_private_keys(rtds: KeyStore) -> None:
    d = rtds.ds_private(SUPPLIER).private_numbers().private_value
    texts = [repr(rtds), *map(repr, rtds.entries(SUPPLIER)), *rtds.warnings]
    for text in texts:
        assert f"{d:x}" not in text.lower() and "PRIVATE KEY" not in text


# --- ZAZ1 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zaz1(zaz1_dir: Path) -> KeyStore:
    return KeyStore.from_zaz1_json(zaz1_dir / "keystore.json")


@pytest.mark.conformance
def test_zaz1_json_loads_with_roles(zaz1: KeyStore) -> None:
    assert zaz1.stats() | {"public_keys": 0} == {
        "certificates": 33,
        "private_keys": 33,
        "public_keys": 0,
        "entries": 33,
        "euis": 10,
    }
    assert zaz1.role(SUPPLIER) == ROLE_SUPPLIER
    assert zaz1.role(ACB) == ROLE_ACB
    assert zaz1.role("00db123456780004") == ROLE_OTHER
    assert zaz1.entry(SUPPLIER, Slot.XML_DS).role == ROLE_DCC_USER_XML_SIGNING
    assert zaz1.entry(ACB, Slot.XML_DS).role == ROLE_DSP_XML_SIGNING
    assert zaz1.ka_private(SUPPLIER, prepayment=True) is not None
    assert "PP" in zaz1.entry(SUPPLIER, "pp-ka").name


@pytest.mark.conformance
def test_zaz1_active_set_is_the_rtds_one(zaz1: KeyStore, rtds: KeyStore) -> None:
    """Z1 and Z1b both exist; the default is the Z1 set the RTDS messages use."""
    for eui in (SUPPLIER, ACB, NETWORK_OPERATOR):
        for slot in ("ds", "ka"):
            assert point(zaz1.public_key(eui, slot)) == point(rtds.public_key(eui, slot))
    assert point(zaz1.ka_public(SUPPLIER, prepayment=True)) == point(
        rtds.ka_public(SUPPLIER, prepayment=True)
    )


@pytest.mark.conformance
def test_zaz1_pin_selects_another_certificate(zaz1_dir: Path) -> None:
    store = KeyStore.from_zaz1_json(zaz1_dir / "keystore.json")
    z1b = next(e for e in store.entries(SUPPLIER) if e.name == "Z1b-supplier-ds")
    before = store.ds_public(SUPPLIER)
    store.pin(SUPPLIER, "ds", z1b.serial)
    assert store.ds_public(SUPPLIER) is z1b.public_key is not before
    with pytest.raises(KeyError):
        store.pin(SUPPLIER, "ds", 1)


@pytest.mark.conformance
def test_zaz1_orgkeys_folder(zaz1_dir: Path) -> None:
    store = KeyStore.from_orgkeys_folder(zaz1_dir / "orgkeys")
    assert store.stats()["certificates"] == 19
    assert store.stats()["private_keys"] == 19
    assert store.role(SUPPLIER) == ROLE_SUPPLIER
    # dsp-xml-sign has both .key (DER) and .key.pem: loaded once, checked equal
    assert store.entry(ACB, Slot.XML_DS).role == ROLE_DSP_XML_SIGNING
    assert KeyStore.load(zaz1_dir).stats()["certificates"] == 33


# --- Generated PKI ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> GeneratedPki:
    return generate_pki(devices=DEVICES, seed=20240601)


def test_generated_contents(pki: GeneratedPki) -> None:
    store = pki.keystore
    assert len(store) == len(DEFAULT_ORGANISATIONS) + len(DEVICES)
    assert store.role(SUPPLIER) == ROLE_SUPPLIER and store.role(ACB) == ROLE_ACB
    assert store.ka_private(SUPPLIER, prepayment=True) is not None
    assert store.ka_private(ACB, prepayment=True) is None
    assert store.entry(SUPPLIER, Slot.XML_DS).role == ROLE_DCC_USER_XML_SIGNING
    assert store.entry(NETWORK_OPERATOR, Slot.XML_DS).role == ROLE_DCC_USER_XML_SIGNING
    assert store.entry(ACB, Slot.XML_DS).role == ROLE_DSP_XML_SIGNING
    assert store.device_type("00db1234567890a2") == "CHF"
    for eui in map(parse_eui, DEVICES):
        assert store.ds_private(eui) is not None and store.ka_private(eui) is not None
        assert store.role(eui) is None


def test_generated_chains_verify(pki: GeneratedPki) -> None:
    root, org_ca, dev_ca = pki.root.certificate, pki.organisation_ca, pki.device_ca
    root.verify_directly_issued_by(root)
    org_ca.certificate.verify_directly_issued_by(root)
    dev_ca.certificate.verify_directly_issued_by(root)
    for e in pki.keystore.entries():
        issuer = dev_ca if e.device_type else org_ca
        e.certificate.verify_directly_issued_by(issuer.certificate)
        other = org_ca if e.device_type else dev_ca
        with pytest.raises((ValueError, TypeError)):  # wrong CA must not verify
            e.certificate.verify_directly_issued_by(other.certificate)
        assert e.certificate.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    for ca in pki.cas:
        bc = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca


def test_generated_key_usage_exclusive(pki: GeneratedPki) -> None:
    for e in pki.keystore.entries():
        ext = e.certificate.extensions.get_extension_for_class(x509.KeyUsage)
        ku = ext.value
        assert ext.critical
        assert ku.digital_signature != ku.key_agreement
        assert not (ku.key_cert_sign or ku.crl_sign or ku.key_encipherment)
        assert certificate_usage(e.certificate) is e.slot.usage
        assert isinstance(e.certificate.public_key().curve, ec.SECP256R1)


def test_generated_euis_in_the_right_fields(pki: GeneratedPki) -> None:
    for e in pki.keystore.entries():
        cert = e.certificate
        exts = {x.oid.dotted_string: x for x in cert.extensions}
        policy = exts["2.5.29.32"]
        assert policy.critical
        oids = [p.policy_identifier.dotted_string for p in policy.value]
        if e.device_type:
            assert len(cert.subject) == 0
            san = exts["2.5.29.17"]
            assert san.critical
            (other,) = san.value.get_values_for_type(x509.OtherName)
            assert other.type_id.dotted_string == OID_HARDWARE_MODULE_NAME
            hw_type, serial = decode_hardware_module_name(other.value)
            assert serial == e.eui
            assert hw_type == HW_TYPE_DER  # OID_DEVICE_HW_TYPE, content octets
            assert oids == [OID_DEVICE_POLICY]
        else:
            assert "2.5.29.17" not in exts
            (uid,) = cert.subject.get_attributes_for_oid(x509.NameOID.X500_UNIQUE_IDENTIFIER)
            assert uid.value == b"\x00" + e.eui
            (ou,) = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
            assert int(ou.value, 16) == e.role
            assert oids == [OID_ORGANISATION_POLICY]
        assert certificate_eui(cert) == e.eui
        ski = exts["2.5.29.14"].value.digest
        assert len(ski) == 8 and ski[0] >> 4 == 0x4


@pytest.mark.conformance
@pytest.mark.parametrize(
    ("rtds_file", "eui", "slot"),
    [
        ("00db1234567890a0-ka.pem", ESME, "ka"),
        ("00db1234567890a0-ds.pem", ESME, "ds"),
        ("90b3d51f30010000-ka.pem", SUPPLIER, "ka"),
        ("90b3d51f30000002-ds.pem", ACB, "ds"),
    ],
)
def test_generated_profile_mirrors_rtds(
    pki: GeneratedPki, rtds_keystore_dir: Path, rtds_file: str, eui: bytes, slot: str
) -> None:
    """Same extensions, order and criticality, same SAN layout, same subject shape."""
    real = x509.load_pem_x509_certificate((rtds_keystore_dir / rtds_file).read_bytes())
    ours = pki.keystore.certificate(eui, slot)

    def shape(c: x509.Certificate) -> list[tuple[str, bool]]:
        return [(x.oid.dotted_string, x.critical) for x in c.extensions]

    assert shape(ours) == shape(real)
    no_cn = [a.oid for a in real.subject if a.oid != x509.NameOID.COMMON_NAME]
    assert [a.oid for a in ours.subject] == no_cn
    if eui == ESME:
        assert hardware_module_name(ours)[:-8] == hardware_module_name(real)[:-8]
        assert ours.not_valid_after_utc == real.not_valid_after_utc  # 9999-12-31 23:59:59
    else:
        assert ten_years_less_a_second(ours) and ten_years_less_a_second(real)


def hardware_module_name(cert: x509.Certificate) -> bytes:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.OtherName)[0].value


def ten_years_less_a_second(cert: x509.Certificate) -> bool:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc + dt.timedelta(seconds=1)
    return end == start.replace(year=start.year + 10)


def test_ecdh_org_device_agrees_both_ways(pki: GeneratedPki) -> None:
    store = pki.keystore
    for org in (SUPPLIER, ACB):
        for dev in (ESME, GSME):
            z1 = store.ka_private(org).exchange(ec.ECDH(), store.ka_public(dev))
            z2 = store.ka_private(dev).exchange(ec.ECDH(), store.ka_public(org))
            assert z1 == z2 and len(z1) == 32
    pp = store.ka_private(SUPPLIER, prepayment=True).exchange(ec.ECDH(), store.ka_public(ESME))
    assert pp != store.ka_private(SUPPLIER).exchange(ec.ECDH(), store.ka_public(ESME))
    # and a DS key signs what its certificate verifies
    sig = store.ds_private(ESME).sign(b"gbcs", ec.ECDSA(hashes.SHA256()))
    store.certificate(ESME, "ds").public_key().verify(sig, b"gbcs", ec.ECDSA(hashes.SHA256()))


def _der_all(p: GeneratedPki) -> list[bytes]:
    return [ca.certificate.public_bytes(serialization.Encoding.DER) for ca in p.cas] + [
        e.certificate.public_bytes(serialization.Encoding.DER) for e in p.keystore.entries()
    ]


def test_seeded_generation_is_reproducible(pki: GeneratedPki) -> None:
    again = generate_pki(devices=DEVICES, seed=20240601)
    assert _der_all(again) == _der_all(pki)
    assert point(again.keystore.ka_private(ESME)) == point(pki.keystore.ka_private(ESME))
    other = generate_pki(devices=DEVICES, seed=20240602)
    assert point(other.keystore.ka_private(ESME)) != point(pki.keystore.ka_private(ESME))
    random_a, random_b = generate_pki(devices={ESME: "ESME"}), generate_pki(devices={ESME: "ESME"})
    assert point(random_a.keystore.ka_private(ESME)) != point(random_b.keystore.ka_private(ESME))
    assert not random_a.seeded and pki.seeded


def test_seeded_key_derivation_is_the_documented_one(pki: GeneratedPki) -> None:
    mac = hmac.new(b"gbhil-smki-seed:20240601", b"key/device/00db1234567890a0/ka/0", hashlib.sha256)
    d = int.from_bytes(mac.digest(), "big") % P256_ORDER
    assert pki.keystore.ka_private(ESME).private_numbers().private_value == d


def test_generate_rejects_bad_input() -> None:
    with pytest.raises(SmkiError, match="unknown type"):
        generate_pki(devices={ESME: "TOASTER"})
    with pytest.raises(SmkiError, match="not hexadecimal"):
        generate_pki(devices={"00db12345678zz00": "ESME"})
    with pytest.raises(SmkiError, match="unknown role"):
        generate_pki(organisations={"plumber": SUPPLIER})
    with pytest.raises(SmkiError, match="CA or XML-signing"):
        generate_pki(organisations={"root": SUPPLIER})
    with pytest.raises(SmkiError, match="both an organisation and a device"):
        generate_pki(devices={SUPPLIER: "ESME"})
    with pytest.raises(SmkiError, match="seed"):
        generate_pki(seed=-1)


def test_custom_organisations() -> None:
    p = generate_pki(organisations={"Network-Operator": "11-22-33-44-55-66-77-88"}, seed=1)
    eui = bytes.fromhex("1122334455667788")
    assert p.keystore.euis() == [eui]
    assert p.keystore.role(eui) == ROLE_NETWORK_OPERATOR


# --- Writing and reloading ------------------------------------------------------------------


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GeneratedPki]:
    out = tmp_path_factory.mktemp("pki") / "rig"
    return out, generate_pki(out, devices=DEVICES, seed=7)


def test_written_folder_layout(written: tuple[Path, GeneratedPki]) -> None:
    out, p = written
    assert (out / "90b3d51f30010000-pp-ka.pem").is_file()
    assert (out / "00db1234567890a0-ds.key").is_file()
    for key_file in [*out.glob("*.key"), *out.glob("ca/*.key")]:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file
        assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == p.manifest()
    assert "PRIVATE KEY" not in (out / "manifest.json").read_text()
    rows = {(r["eui"], r["slot"]): r for r in manifest["entries"]}
    assert rows[("90b3d51f30010000", "pp-ka")]["role_name"] == "supplier"
    assert rows[("00db1234567890a4", "ka")]["device_type"] == "PPMID"
    assert all((out / r["certificate"]).is_file() for r in manifest["entries"])
    assert len(p.files) == len(set(p.files))


@pytest.mark.parametrize("loader", ["from_rtds_folder", "from_pki_folder", "load"])
def test_written_folder_reloads(written: tuple[Path, GeneratedPki], loader: str) -> None:
    out, p = written
    store = getattr(KeyStore, loader)(out)
    assert store.euis() == p.keystore.euis()
    assert store.stats() == p.keystore.stats()
    for e in p.keystore.entries():
        assert point(store.private_key(e.eui, e.slot)) == point(e.private_key)
        assert store.certificate(e.eui, e.slot) == e.certificate
        assert store.role(e.eui) == p.keystore.role(e.eui)
    if loader != "from_rtds_folder":
        assert store.device_type(ESME) == "ESME"
        assert set(store.ca_certificates) == {"root", "organisation", "device"}


def test_write_refuses_to_overwrite(written: tuple[Path, GeneratedPki]) -> None:
    out, _ = written
    with pytest.raises(SmkiError, match="already exists"):
        generate_pki(out, seed=7)


# --- Bad inputs ------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_corrupt_pem_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "00db1234567890a0-ds.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    with pytest.raises(SmkiError, match=r"00db1234567890a0-ds\.pem"):
        KeyStore.from_rtds_folder(tmp_path)
    bad.write_text("hello")
    with pytest.raises(SmkiError, match=r"00db1234567890a0-ds\.pem: neither"):
        KeyStore.from_rtds_folder(tmp_path)


def test_corrupt_private_key_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "90b3d51f30010000-ka.key").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(SmkiError, match=r"90b3d51f30010000-ka\.key: not a valid PEM private key"):
        KeyStore.from_rtds_folder(tmp_path)


def test_wrong_curve_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "90b3d51f30010000-ka.key").write_bytes(
        _pem_key(ec.generate_private_key(ec.SECP384R1()))
    )
    with pytest.raises(SmkiError, match=r"90b3d51f30010000-ka\.key: .*P-256"):
        KeyStore.from_rtds_folder(tmp_path)


def test_mismatched_key_and_certificate(tmp_path: Path, pki: GeneratedPki) -> None:
    cert = pki.keystore.certificate(SUPPLIER, "ka")
    (tmp_path / "90b3d51f30010000-ka.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
    )
    (tmp_path / "90b3d51f30010000-ka.key").write_bytes(_pem_key(pki.keystore.ka_private(ACB)))
    with pytest.raises(SmkiError, match=r"90b3d51f30010000-ka\.key: private key does not match"):
        KeyStore.from_rtds_folder(tmp_path)


def test_usage_slot_mismatch(tmp_path: Path, pki: GeneratedPki) -> None:
    ds_cert = pki.keystore.certificate(SUPPLIER, "ds")
    (tmp_path / "90b3d51f30010000-ka.pem").write_bytes(
        ds_cert.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(SmkiError, match="ds certificate filed as ka"):
        KeyStore.from_rtds_folder(tmp_path)


def test_bad_json_and_missing_paths(tmp_path: Path) -> None:
    bad = tmp_path / "keystore.json"
    bad.write_text("{nope")
    with pytest.raises(SmkiError, match=r"keystore\.json: not valid JSON"):
        KeyStore.from_zaz1_json(bad)
    bad.write_text(json.dumps({"XYZ": {}}))
    with pytest.raises(SmkiError, match="16-hex-digit"):
        KeyStore.from_zaz1_json(bad)
    with pytest.raises(SmkiError, match=r"no manifest\.json"):
        KeyStore.from_pki_folder(tmp_path)
    with pytest.raises(SmkiError, match="not a directory"):
        KeyStore.from_rtds_folder(tmp_path / "missing")


def test_parse_eui() -> None:
    assert parse_eui("90-B3-D5-1F-30-01-00-00") == SUPPLIER
    assert parse_eui("90:b3:d5:1f:30:01:00:00") == SUPPLIER
    assert parse_eui(bytearray(SUPPLIER)) == SUPPLIER
    for bad in ("90B3", "zz" * 8, b"\x00" * 7):
        with pytest.raises(ValueError):
            parse_eui(bad)
    with pytest.raises(TypeError):
        parse_eui(1234)  # type: ignore[arg-type]


def test_satisfies_the_codec_protocol() -> None:
    """Same method names and keyword-only ``prepayment`` as gbhil.gbcs.keys.KeyStore."""
    protocol = pytest.importorskip("gbhil.gbcs.keys").KeyStore
    for name in ("ka_private", "ka_public", "ds_private", "ds_public"):
        ours = inspect.signature(getattr(KeyStore, name)).parameters
        theirs = inspect.signature(getattr(protocol, name)).parameters
        assert list(ours) == list(theirs)
        assert [p.kind for p in ours.values()] == [p.kind for p in theirs.values()]


# --- CLI ---------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    """gbhil.cli.main when the whole tree imports, else our register() on a bare parser."""
    try:
        from gbhil.cli import main

        main_parser_ok = True
        from gbhil.gbcs import cli as _gbcs_cli  # noqa: F401
    except ImportError:
        main_parser_ok = False
    if main_parser_ok:
        return main(argv)
    parser = argparse.ArgumentParser(prog="gbhil")
    smki_cli.register(parser.add_subparsers(dest="group", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_generate_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rig"
    argv = ["smki", "generate", str(out), "--seed", "5", "--json"]
    argv += ["--device", "00-DB-12-34-56-78-90-A0:ESME", "--device", "00db1234567890a1:gsme"]
    rc = run_cli(argv)
    assert rc == 0
    printed = capsys.readouterr().out
    doc = json.loads(printed)
    assert doc["seeded"] is True and "PRIVATE KEY" not in printed
    assert {(r["eui"], r["slot"]) for r in doc["entries"]} >= {
        ("00db1234567890a0", "ds"),
        ("00db1234567890a1", "ka"),
        ("90b3d51f30010000", "pp-ka"),
    }
    assert (out / "manifest.json").is_file()

    assert run_cli(["smki", "show", str(out)]) == 0
    table = capsys.readouterr().out
    assert "00db1234567890a0" in table and "02 supplier" in table and "PRIVATE" not in table

    assert run_cli(["smki", "show", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["stats"]["certificates"] == len(doc["entries"])
    assert {r["serial"] for r in shown["entries"]} == {r["serial"] for r in doc["entries"]}

    assert run_cli(["smki", "generate", str(out)]) == 2  # would overwrite
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["smki", "show", str(tmp_path / "nothing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert run_cli(["smki", "generate", str(tmp_path / "x"), "--device", "00db1234567890a0"]) == 2
    assert "EUI:TYPE" in capsys.readouterr().err
    assert (
        run_cli(["smki", "generate", str(tmp_path / "y"), "--org", "plumber:90b3d51f30010000"]) == 2
    )
    assert "unknown role" in capsys.readouterr().err


@pytest.mark.conformance
def test_cli_show_rtds(rtds_keystore_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["smki", "show", str(rtds_keystore_dir), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stats"]["certificates"] == 416
    assert any(r["role_name"] == "acb" for r in doc["entries"])
