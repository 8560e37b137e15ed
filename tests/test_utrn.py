"""UTRN top-up codes: PTUT fields, GBCS Verhoeff check digit and the prepayment GMAC.

The RTDS UTRNs are found in their carrying commands (CS01b GBZ Consumer Top
Up, CS01a DLMS token gateway) and checked with the RTDS keystore keys.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError, GbcsSecurityError
from gbhil.gbcs.frame import GeneralSigning
from gbhil.gbcs.utrn import (
    PTUT_OFFSET,
    VALUE_CLASS_POUNDS,
    VALUE_MAX,
    VERHOEFF_D,
    VERHOEFF_P,
    build_utrn,
    check_digit,
    parse_utrn,
    ptut_high,
    utrn_mac,
    utrn_shared_secret,
    utrn_tag,
    verify_utrn,
)
from tests.corpus import corpus_payloads

SUPPLIER = bytes.fromhex("90B3D51F30010000")
GSME = bytes.fromhex("00DB1234567890A1")
BOGUS_UTRN = "12345678910121314156"  # gbcs-facts 9: the deliberately bogus CS01b UTRN

# CS01b: GBZ Prepayment cluster 0x0705, ZCL command 0x04 Consumer Top Up, payload 00 14 digits.
CS01B_PATTERN = re.compile(rb"\x07\x05....\x04\x00\x14([0-9]{20})", re.DOTALL)
# CS01a: DLMS action on class 115 (0x0073) 0-0:19.40.0.255 method 1, data octet-string(20).
CS01A_PATTERN = re.compile(rb"\x03\x00\x73\x00\x00\x13\x28\x00\xff\x01.*?\x09\x14([0-9]{20})", re.S)


@dataclass(frozen=True)
class TopUp:
    name: str
    gs: GeneralSigning
    utrn: str
    utrn_offset: int  # absolute offset of the digits in the message


@pytest.fixture(scope="session")
def top_ups(rtds_dir: Path) -> list[TopUp]:
    out = []
    for p in corpus_payloads(rtds_dir):
        if "COMMAND" not in p.name:
            continue
        for pat in (CS01B_PATTERN, CS01A_PATTERN):
            m = pat.search(p.content)
            if m:
                digits = m.group(1).decode()
                out.append(TopUp(p.name, p.gs, digits, p.offset + m.start(1)))
    return out


def _secret(keystore: Path, priv_name: str, cert_name: str) -> bytes:
    """ECDH with cryptography: private key (PKCS#8 PEM) x certificate public key."""
    priv = serialization.load_pem_private_key((keystore / priv_name).read_bytes(), None)
    pub = x509.load_pem_x509_certificate((keystore / cert_name).read_bytes()).public_key()
    assert isinstance(priv, ec.EllipticCurvePrivateKey)
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    return priv.exchange(ec.ECDH(), pub)


@pytest.fixture(scope="session")
def pp_secret(rtds_keystore_dir: Path) -> bytes:
    """Supplier prepayment KA private x GSME KA public, as gbcs-facts 2.9 prescribes."""
    return _secret(rtds_keystore_dir, "90b3d51f30010000-pp-ka.key", "00db1234567890a1-ka.pem")


# --- the RTDS UTRNs ----------------------------------------------------------------------


def test_rtds_top_ups_found(top_ups: list[TopUp]) -> None:
    names = sorted(t.name for t in top_ups)
    print(f"\nRTDS top-up commands carrying a UTRN: {len(top_ups)}: {names}")
    assert any(t.utrn == BOGUS_UTRN for t in top_ups)
    assert any(t.utrn != BOGUS_UTRN for t in top_ups)
    for t in top_ups:
        assert t.gs.message_code in (0x0007, 0x0097, 0x009B), t.name  # CS01a, CS01b, PCS01
        assert t.gs.business_originator == SUPPLIER or t.gs.message_code == 0x009B


def test_rtds_utrns_verify(top_ups: list[TopUp], rtds_keystore_dir: Path) -> None:
    real = [t for t in top_ups if t.utrn != BOGUS_UTRN]
    for t in real:
        target = t.gs.business_target
        secret = _secret(rtds_keystore_dir, f"{SUPPLIER.hex()}-pp-ka.key", f"{target.hex()}-ka.pem")
        u = parse_utrn(t.utrn, base=t.utrn_offset)
        assert u.check_digit_ok, t.name
        if t.gs.business_originator == SUPPLIER:
            counter = t.gs.originator_counter
            assert u.counter_matches(counter), t.name
            assert counter & 0xFFFFFFFF == 0, t.name  # RTDS top-up counters
        else:  # PCS01: typed in at the PPMID, the counter comes from the UTRN
            counter = u.counter_bits << 32
        check = verify_utrn(t.utrn, secret, SUPPLIER, target, counter)
        assert check.ok, (t.name, check.reason)
        # A supplier rebuilds exactly the same 20 digits from the fields.
        rebuilt = build_utrn(secret, SUPPLIER, target, counter, u.value, u.value_class)
        assert rebuilt == t.utrn
    print(f"\nRTDS UTRNs verified (check digit, counter bits, MAC): {len(real)}")
    assert real


def test_cs01b_success_fields(top_ups: list[TopUp], pp_secret: bytes) -> None:
    t = next(t for t in top_ups if t.name.startswith("CS01b_2.2_SUCCESS_COMMAND"))
    u = parse_utrn(t.utrn)
    assert t.utrn == "73950067887105178605"
    assert (u.reserved, u.counter_bits, u.value_class, u.value) == (0, 6, 0, 1250)
    assert u.amount_pence == 1250 and u.value_class_name == "pennies"
    assert t.gs.originator_counter == 0x0000000600000000
    assert u.mac == utrn_mac(pp_secret, SUPPLIER, GSME, t.gs.originator_counter, u.ptut_high)
    tag = utrn_tag(pp_secret, SUPPLIER, GSME, t.gs.originator_counter, u.ptut_high)
    assert len(tag) == 16 and tag[-4:] == u.mac
    assert u.to_json()["amountPence"] == 1250


def test_normal_ka_key_does_not_verify(top_ups: list[TopUp], rtds_keystore_dir: Path) -> None:
    t = next(t for t in top_ups if t.name.startswith("CS01b_2.2_SUCCESS_COMMAND"))
    wrong = _secret(rtds_keystore_dir, "90b3d51f30010000-ka.key", "00db1234567890a1-ka.pem")
    check = verify_utrn(t.utrn, wrong, SUPPLIER, GSME, t.gs.originator_counter)
    assert not check.ok and "MAC" in check.reason


def test_bogus_cs01b_utrn_is_reported(top_ups: list[TopUp], pp_secret: bytes) -> None:
    t = next(t for t in top_ups if t.utrn == BOGUS_UTRN)
    assert "ERROR" in t.name
    check = verify_utrn(t.utrn, pp_secret, SUPPLIER, GSME, t.gs.originator_counter)
    assert not check.ok and check.utrn is None
    assert "below the PTUT offset" in check.reason
    assert "check digit 6 wrong" in check.reason
    with pytest.raises(GbcsDecodeError) as exc:
        parse_utrn(t.utrn, base=t.utrn_offset)
    assert exc.value.offset == t.utrn_offset


def test_gcs15e_credit_log_utrns_have_valid_check_digits(rtds_dir: Path) -> None:
    """The GCS15e prepayment-credit log echoes 5 UTRNs: Verhoeff holds on all of them."""
    prefix = "GCS15e_4.4.5_SUCCESS_RESP"
    content = next(p.content for p in corpus_payloads(rtds_dir) if p.name.startswith(prefix))
    codes = [m.decode() for m in re.findall(rb"\x14([0-9]{20})", content)]
    assert len(codes) == 5
    for code in codes:
        u = parse_utrn(code)
        assert u.check_digit_ok, code
    # Their value-class bits are 10/11, undefined in GBCS: the checker says so.
    assert {parse_utrn(c).value_class for c in codes} == {2, 3}
    check = verify_utrn(codes[0], bytes(32), SUPPLIER, GSME, 0)
    assert "value class 2 undefined" in check.reason


def _textbook_verhoeff(digits: str) -> str:
    """Wikipedia Verhoeff: right to left, row (i + 1) mod 8, textbook inverse table."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = VERHOEFF_D[c][VERHOEFF_P[(i + 1) % 8][int(ch)]]
    return str((0, 4, 3, 2, 1, 5, 6, 7, 8, 9)[c])


def test_gbcs_variant_differs_from_textbook_verhoeff(top_ups: list[TopUp]) -> None:
    real = [t.utrn for t in top_ups if t.utrn != BOGUS_UTRN]
    samples = [*real, "73942316567647575864", "73942626542452737218", "73942625662347784688"]
    assert all(check_digit(u[:19]) == u[19] for u in samples)
    assert any(_textbook_verhoeff(u[:19]) != u[19] for u in samples)


# --- building, parsing, errors ----------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    counter_bits=st.integers(0, 1023),
    high_bits=st.integers(0, 2**22 - 1),
    value=st.integers(0, VALUE_MAX),
    value_class=st.sampled_from([0, 1]),
)
def test_build_parse_round_trip(
    counter_bits: int, high_bits: int, value: int, value_class: int
) -> None:
    secret = bytes(range(32))
    counter = (high_bits << 42) | (counter_bits << 32)
    utrn = build_utrn(secret, SUPPLIER, GSME, counter, value, value_class)
    assert len(utrn) == 20 and utrn.isdigit()
    u = parse_utrn(utrn)
    assert (u.reserved, u.counter_bits, u.value_class, u.value) == (
        0,
        counter_bits,
        value_class,
        value,
    )
    assert u.check_digit_ok and u.counter_matches(counter)
    assert verify_utrn(utrn, secret, SUPPLIER, GSME, counter).ok
    other = verify_utrn(utrn, secret, SUPPLIER, GSME, counter ^ (1 << 32))
    assert not other.ok and "counter bits" in other.reason
    tampered = verify_utrn(utrn, secret, GSME, SUPPLIER, counter)
    assert not tampered.ok and "MAC" in tampered.reason


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789", min_size=19, max_size=19), st.integers(0, 18), st.integers(1, 9))
def test_check_digit_detects_single_errors(digits: str, pos: int, delta: int) -> None:
    wrong = digits[:pos] + str((int(digits[pos]) + delta) % 10) + digits[pos + 1 :]
    assert check_digit(wrong) != check_digit(digits)


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789", min_size=19, max_size=19), st.integers(0, 17))
def test_check_digit_detects_adjacent_transpositions(digits: str, pos: int) -> None:
    if digits[pos] == digits[pos + 1]:
        return
    swapped = digits[:pos] + digits[pos + 1] + digits[pos] + digits[pos + 2 :]
    assert check_digit(swapped) != check_digit(digits)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=25), st.binary(max_size=25)))
def test_arbitrary_input_never_crashes(text: str | bytes) -> None:
    with contextlib.suppress(GbcsDecodeError):
        parse_utrn(text)
    check = verify_utrn(text, bytes(32), SUPPLIER, GSME, 0)
    assert check.ok is False or check.reasons == ()


@pytest.mark.parametrize(
    ("text", "offset", "reason"),
    [
        ("7395006788710517860", 10, "needs 20 digits"),
        ("7395006788710517860X", 29, "not a decimal digit"),
        ("73950067887105178６05", 10, "non-ASCII"),
        (BOGUS_UTRN, 10, "below the PTUT offset"),
    ],
)
def test_parse_errors(text: str, offset: int, reason: str) -> None:
    with pytest.raises(GbcsDecodeError, match=reason) as exc:
        parse_utrn(text, base=10)
    assert exc.value.offset == offset


def test_reserved_bits_and_range() -> None:
    # Highest 19-digit number: PTUT above 2**57 sets reserved bits.
    top = "9999999999999999999"
    u = parse_utrn(top + check_digit(top))
    assert u.reserved != 0
    check = verify_utrn(top + check_digit(top), bytes(32), SUPPLIER, GSME, 0)
    assert "reserved PTUT bits" in check.reason
    lowest = str(PTUT_OFFSET)
    assert parse_utrn(lowest + check_digit(lowest)).value == 0


def test_encode_errors() -> None:
    with pytest.raises(GbcsEncodeError):
        ptut_high(0, VALUE_MAX + 1)
    with pytest.raises(GbcsEncodeError):
        ptut_high(0, 1, value_class=2)
    with pytest.raises(GbcsEncodeError):
        ptut_high(-1, 1)
    with pytest.raises(GbcsEncodeError):
        utrn_mac(bytes(32), SUPPLIER[:7], GSME, 0, 0)
    with pytest.raises(GbcsEncodeError):
        check_digit("12a")
    assert ptut_high(0x0000000600000000, 5, VALUE_CLASS_POUNDS) == (6 << 15) | (1 << 13) | 5


class _Store:
    """Minimal KeyStore (gbhil.gbcs.keys protocol) over the RTDS PEM files."""

    def __init__(self, root: Path, with_supplier: bool) -> None:
        self.root = root
        self.with_supplier = with_supplier

    def ka_private(
        self, eui: bytes, *, prepayment: bool = False
    ) -> ec.EllipticCurvePrivateKey | None:
        if not self.with_supplier:
            return None
        path = self.root / f"{eui.hex()}-{'pp-' if prepayment else ''}ka.key"
        if not path.exists():
            return None
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def ka_public(
        self, eui: bytes, *, prepayment: bool = False
    ) -> ec.EllipticCurvePublicKey | None:
        path = self.root / f"{eui.hex()}-{'pp-' if prepayment else ''}ka.pem"
        if not path.exists():
            return None
        key = x509.load_pem_x509_certificate(path.read_bytes()).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        return key

    def ds_private(self, eui: bytes) -> ec.EllipticCurvePrivateKey | None:
        return None

    def ds_public(self, eui: bytes) -> ec.EllipticCurvePublicKey | None:
        return None


def test_shared_secret_from_key_store(rtds_keystore_dir: Path, pp_secret: bytes) -> None:
    assert utrn_shared_secret(_Store(rtds_keystore_dir, True), SUPPLIER, GSME) == pp_secret
    with pytest.raises(GbcsSecurityError):
        utrn_shared_secret(_Store(rtds_keystore_dir, False), SUPPLIER, GSME)
