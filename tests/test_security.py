"""MAC, signature and encryption on real RTDS bytes and on a freshly generated PKI."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhil.gbcs.errors import GbcsDecodeError, GbcsSecurityError
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation, Shape, decode_frame
from gbhil.gbcs.security import (
    Check,
    SecurityContext,
    complete_precommand,
    decrypt_block,
    encrypt_block,
    payload_key,
    precommand,
    protect,
    sign_raw,
    verify_mac,
    verify_raw,
    verify_signature,
)
from gbhil.smki import KeyStore, generate_pki
from tests.conftest import rtds_files
from tests.test_frame import ECS52

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SUPPLIER = bytes.fromhex("90B3D51F30010000")
ACB = bytes.fromhex("90B3D51F30000002")
ESME = bytes.fromhex("00DB1234567890A0")
GSME = bytes.fromhex("00DB1234567890A1")


@pytest.fixture(scope="module")
def rtds_ctx(rtds_keystore_dir: Path) -> SecurityContext:
    return SecurityContext(KeyStore.from_rtds_folder(rtds_keystore_dir))


@pytest.fixture(scope="module")
def rtds_maced(rtds_dir: Path) -> list[bytes]:
    out = []
    for p in rtds_files(rtds_dir):
        raw = bytes.fromhex(p.read_text())
        if raw[:2] == b"\xdd\x00":
            out.append(raw)
    return out


@pytest.fixture(scope="module")
def pki_ctx() -> SecurityContext:
    pki = generate_pki(None, devices={ESME: "ESME", GSME: "GSME"}, seed=7)
    return SecurityContext(pki.keystore, ACB)


def test_worked_example_mac_verifies(rtds_ctx: SecurityContext) -> None:
    assert verify_mac(rtds_ctx, decode_frame(ECS52)) is Check.VERIFIED


def test_rtds_macs_and_signatures(rtds_dir: Path, rtds_ctx: SecurityContext) -> None:
    macs = {c: 0 for c in Check}
    sigs = {c: 0 for c in Check}
    not_checkable = set()
    for p in rtds_files(rtds_dir):
        msg = decode_frame(bytes.fromhex(p.read_text()))
        m = verify_mac(rtds_ctx, msg)
        macs[m] += 1
        sigs[verify_signature(rtds_ctx, msg.gs)] += 1
        if m is Check.NOT_CHECKABLE:
            not_checkable.add(p.parent.name)
    assert macs[Check.FAILED] == 0 and sigs[Check.FAILED] == 0
    assert macs[Check.VERIFIED] > 600 and sigs[Check.VERIFIED] > 300
    # Only PPMID <-> GSME messages (device KA keys on both ends) cannot be checked.
    assert not_checkable <= {"NA_PCS01", "NA_PCS02"}
    assert sigs[Check.NOT_CHECKABLE] == 0


def test_high_s_signatures_accepted(rtds_dir: Path, rtds_ctx: SecurityContext) -> None:
    high = 0
    for p in rtds_files(rtds_dir):
        gs = decode_frame(bytes.fromhex(p.read_text())).gs
        if gs.signature and int.from_bytes(gs.signature[32:], "big") > P256_N // 2:
            assert verify_signature(rtds_ctx, gs) is Check.VERIFIED
            high += 1
    assert high > 50


def test_low_and_high_s_both_verify() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sig = sign_raw(key, b"gbhil")
    r, s = sig[:32], int.from_bytes(sig[32:], "big")
    other = r + (P256_N - s).to_bytes(32, "big")
    assert verify_raw(key.public_key(), b"gbhil", sig)
    assert verify_raw(key.public_key(), b"gbhil", other)
    assert not verify_raw(key.public_key(), b"gbhil!", sig)
    assert not verify_raw(key.public_key(), b"gbhil", bytes(64))


def test_every_bit_flip_of_worked_example_fails(rtds_ctx: SecurityContext) -> None:
    for i in range(len(ECS52) * 8):
        b = bytearray(ECS52)
        b[i // 8] ^= 1 << (i % 8)
        try:
            msg = decode_frame(bytes(b))
        except GbcsDecodeError:
            continue
        assert verify_mac(rtds_ctx, msg) is not Check.VERIFIED, f"bit {i}"


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_property_one_bit_flip_never_verifies(
    rtds_maced: list[bytes], rtds_ctx: SecurityContext, data: st.DataObject
) -> None:
    raw = data.draw(st.sampled_from(rtds_maced))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    b = bytearray(raw)
    b[bit // 8] ^= 1 << (bit % 8)
    try:
        msg = decode_frame(bytes(b))
    except GbcsDecodeError:
        return
    assert verify_mac(rtds_ctx, msg) is not Check.VERIFIED


def test_ecdh_is_cached(rtds_dir: Path, rtds_keystore_dir: Path) -> None:
    ctx = SecurityContext(KeyStore.from_rtds_folder(rtds_keystore_dir))
    raws = [bytes.fromhex(p.read_text()) for p in rtds_files(rtds_dir)[:200]]
    for _ in range(3):
        for raw in raws:
            verify_mac(ctx, decode_frame(raw))
    assert ctx.cache.misses < 40
    assert ctx.cache.hits >= 2 * ctx.cache.misses


def _command(code: int = 0x0059, counter: int = 0x1000) -> GeneralSigning:
    content = bytes.fromhex("D920001000000101000100000002 01FF020100".replace(" ", ""))
    return GeneralSigning(Cra.COMMAND, counter, SUPPLIER, ESME, OtherInformation(code), content)


def test_generated_pki_command_round_trip(pki_ctx: SecurityContext) -> None:
    msg = protect(pki_ctx, _command(), signed=False, maced=True)
    raw = msg.encode()
    back = decode_frame(raw)
    assert back == msg
    assert verify_mac(pki_ctx, back) is Check.VERIFIED
    critical = protect(pki_ctx, _command(0x0012), signed=True, maced=True)
    back = decode_frame(critical.encode())
    assert verify_mac(pki_ctx, back) is Check.VERIFIED
    assert verify_signature(pki_ctx, back.gs) is Check.VERIFIED


def test_generated_pki_response_and_alert(pki_ctx: SecurityContext) -> None:
    rsp = GeneralSigning(Cra.RESPONSE, 0x1000, ESME, SUPPLIER, OtherInformation(0x59), b"\xda")
    maced = decode_frame(protect(pki_ctx, rsp, signed=False, maced=True).encode())
    assert verify_mac(pki_ctx, maced) is Check.VERIFIED
    alert = GeneralSigning(Cra.ALERT, 5, ESME, SUPPLIER, OtherInformation(0x1000), b"\x0f")
    signed = decode_frame(protect(pki_ctx, alert, signed=True, maced=False).encode())
    assert signed.shape is Shape.SIGNED
    assert verify_signature(pki_ctx, signed.gs) is Check.VERIFIED
    with pytest.raises(GbcsSecurityError):
        protect(pki_ctx, alert, signed=False, maced=False)


def test_device_side_verification_needs_only_its_own_keys(pki_ctx: SecurityContext) -> None:
    """An ESME holds its KA private key and the ACB's KA certificate: enough for command MACs."""
    full = pki_ctx.keystore
    raw = protect(pki_ctx, _command(), signed=False, maced=True).encode()

    class DeviceView:
        def ka_private(self, eui: bytes, *, prepayment: bool = False):  # type: ignore[no-untyped-def]
            return full.ka_private(eui) if eui == ESME and not prepayment else None

        def ka_public(self, eui: bytes, *, prepayment: bool = False):  # type: ignore[no-untyped-def]
            return full.ka_public(eui) if eui == ACB and not prepayment else None

        def ds_private(self, eui: bytes) -> None:
            return None

        def ds_public(self, eui: bytes):  # type: ignore[no-untyped-def]
            return full.ds_public(eui)

    device = SecurityContext(DeviceView(), ACB)
    assert verify_mac(device, decode_frame(raw)) is Check.VERIFIED


def test_precommand_flow(pki_ctx: SecurityContext) -> None:
    pre = precommand(_command(0x0012))
    assert pre.encode()[-1] != 0x40
    user_key = pki_ctx.keystore.ds_private(SUPPLIER)
    assert user_key is not None
    signature = sign_raw(user_key, pre.gs.signed_bytes())
    cmd = complete_precommand(pki_ctx, pre, signature)
    back = decode_frame(cmd.encode())
    assert verify_mac(pki_ctx, back) is Check.VERIFIED
    assert verify_signature(pki_ctx, back.gs) is Check.VERIFIED
    with pytest.raises(GbcsSecurityError, match="does not verify"):
        complete_precommand(pki_ctx, pre, bytes(63) + b"\x01")


def test_payload_encryption_round_trip(pki_ctx: SecurityContext) -> None:
    rsp = GeneralSigning(Cra.RESPONSE, 77, ESME, SUPPLIER, OtherInformation(0x27), b"")
    key = payload_key(pki_ctx, rsp)
    assert key is not None
    rng = random.Random(1)
    for n in (0, 1, 15, 16, 17, 300):
        plain = rng.randbytes(n)
        block = encrypt_block(key, ESME, plain, ic=n)
        assert decrypt_block(key, ESME, block) == plain
        tampered = bytearray(block)
        tampered[-1] ^= 1
        assert decrypt_block(key, ESME, bytes(tampered)) is None
    # URP: supplementary remote party and counter select the key.
    urp = replace(
        rsp,
        other_information=OtherInformation(0x34, SUPPLIER, 9, 1234),
        business_target=ACB,
    )
    assert payload_key(pki_ctx, urp) != payload_key(
        pki_ctx, replace(urp, business_target=SUPPLIER, other_information=OtherInformation(0x34))
    )
