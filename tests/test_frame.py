"""Envelope codec: typed header fields, exact round trips, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.frame import (
    Cra,
    Eui64,
    GbcsMessage,
    GeneralSigning,
    OtherInformation,
    Shape,
    decode_frame,
)
from tests.conftest import rtds_files

# The ECS52 worked example of gbcs-facts 1.7 (supplier -> ESME, read firmware version).
ECS52 = bytes.fromhex(
    "DD000000000000471100000000"
    "DF090100000000000003EA0890B3D51F30010000"
    "0800DB1234567890A000020059"
    "13D9200003EA00010100010000000201FF020100"
    "00"
    "CBA4104EE6FDCCFA05526F8D"
)


def test_worked_example_fields() -> None:
    msg = decode_frame(ECS52)
    gs = msg.gs
    assert msg.shape is Shape.MACED
    assert gs.cra is Cra.COMMAND
    assert gs.originator_counter == 1002
    assert str(Eui64(gs.business_originator)) == "90-B3-D5-1F-30-01-00-00"
    assert str(Eui64(gs.business_target)) == "00-DB-12-34-56-78-90-A0"
    assert gs.date_time is None
    assert gs.message_code == 0x0059
    assert gs.signature == b""
    assert msg.mac == bytes.fromhex("CBA4104EE6FDCCFA05526F8D")
    assert msg.encode() == ECS52


def test_rtds_envelopes_round_trip(rtds_dir: Path) -> None:
    files = rtds_files(rtds_dir)
    assert len(files) > 900
    shapes = {s: 0 for s in Shape}
    for path in files:
        raw = bytes.fromhex(path.read_text().strip())
        msg = decode_frame(raw)
        shapes[msg.shape] += 1
        assert msg.encode() == raw, path.name
        assert (msg.shape is Shape.PRECOMMAND) == ("_PRECOMMAND_" in path.name), path.name
        expected = {"COMMAND": Cra.COMMAND, "RESPONSE": Cra.RESPONSE, "ALERT": Cra.ALERT}
        kind = next(
            k for k in ("PRECOMMAND", "COMMAND", "RESPONSE", "ALERT") if f"_{k}" in path.name
        )
        assert msg.gs.cra is expected.get(kind, Cra.COMMAND), path.name
    assert all(shapes.values())


def test_precommand_plus_signature_is_the_command(rtds_dir: Path) -> None:
    pairs = 0
    for pre in rtds_dir.rglob("*_PRECOMMAND_GBCS.HEX"):
        cmd = pre.with_name(pre.name.replace("_PRECOMMAND_", "_COMMAND_"))
        if not cmd.exists():
            continue
        p = decode_frame(bytes.fromhex(pre.read_text()))
        c = decode_frame(bytes.fromhex(cmd.read_text()))
        assert p.gs.encode() + bytes((0x40,)) + c.gs.signature == c.gs.encode()
        pairs += 1
    assert pairs > 100


def test_responses_echo_command_header(rtds_dir: Path) -> None:
    checked = 0
    for rsp in rtds_dir.rglob("*_RESPONSE_GBCS.HEX"):
        cmd = rsp.with_name(rsp.name.replace("_RESPONSE_", "_COMMAND_"))
        if not cmd.exists():
            continue
        r = decode_frame(bytes.fromhex(rsp.read_text())).gs
        c = decode_frame(bytes.fromhex(cmd.read_text())).gs
        assert r.originator_counter == c.originator_counter
        assert r.message_code == c.message_code
        assert r.business_originator == c.business_target
        checked += 1
    assert checked > 300


@pytest.mark.parametrize("cut", range(len(ECS52)))
def test_every_truncation_names_field_and_offset(cut: int) -> None:
    with pytest.raises(GbcsDecodeError) as info:
        decode_frame(ECS52[:cut])
    assert info.value.field
    assert 0 <= info.value.offset <= cut


def test_garbled_tag_and_cra() -> None:
    with pytest.raises(GbcsDecodeError, match="message tag at byte 0"):
        decode_frame(b"\xab" + ECS52[1:])
    bad = bytearray(ECS52)
    bad[15] = 0x07  # CRA flag
    with pytest.raises(GbcsDecodeError) as info:
        decode_frame(bytes(bad))
    assert info.value.field == "CRA flag" and info.value.offset == 15


def test_encode_rejects_bad_fields() -> None:
    gs = GeneralSigning(Cra.COMMAND, 1, b"\x01" * 7, b"\x02" * 8, OtherInformation(0x59), b"\x00")
    with pytest.raises(GbcsEncodeError, match="business originator"):
        gs.encode()
    with pytest.raises(GbcsEncodeError, match="MAC"):
        GbcsMessage(
            Shape.MACED,
            GeneralSigning(Cra.COMMAND, 1, bytes(8), bytes(8), OtherInformation(1), b""),
        ).encode()


eui = st.binary(min_size=8, max_size=8)
other_info = st.one_of(
    st.builds(OtherInformation, st.integers(0, 0xFFFF)),
    st.builds(OtherInformation, st.integers(0, 0xFFFF), eui),
    st.builds(OtherInformation, st.integers(0, 0xFFFF), eui, st.integers(0, 2**64 - 1)),
    # URP response: + supplementary originator counter
    st.builds(
        OtherInformation,
        st.integers(0, 0xFFFF),
        eui,
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
    ),
    # URP command: + the User's KA certificate (a DER SEQUENCE)
    st.builds(
        OtherInformation,
        st.integers(0, 0xFFFF),
        eui,
        st.integers(0, 2**64 - 1),
        st.none(),
        st.binary(min_size=8, max_size=600).map(lambda b: b"\x30" + b),
    ),
)
general_signing = st.builds(
    GeneralSigning,
    st.sampled_from(list(Cra)),
    st.integers(0, 2**64 - 1),
    eui,
    eui,
    other_info,
    st.binary(max_size=70000),
    st.one_of(st.none(), st.binary(min_size=12, max_size=12)),
    st.one_of(st.just(b""), st.binary(min_size=64, max_size=64)),
)


@settings(max_examples=300, deadline=None)
@given(general_signing, st.binary(min_size=12, max_size=12), st.integers(0, 2**32 - 1))
def test_property_maced_round_trip(gs: GeneralSigning, mac: bytes, ic: int) -> None:
    msg = GbcsMessage(Shape.MACED, gs, mac, ic)
    raw = msg.encode()
    assert decode_frame(raw) == msg


@settings(max_examples=300, deadline=None)
@given(general_signing)
def test_property_signed_and_precommand_round_trip(gs: GeneralSigning) -> None:
    if gs.signature:
        signed = GbcsMessage(Shape.SIGNED, gs)
        assert decode_frame(signed.encode()) == signed
    pre = GbcsMessage(
        Shape.PRECOMMAND, GeneralSigning(*[getattr(gs, f) for f in gs.__slots__][:7], None)
    )
    assert decode_frame(pre.encode(), precommand=True) == pre


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_property_arbitrary_bytes_raise_only_codec_errors(data: bytes) -> None:
    try:
        decode_frame(data)
    except GbcsDecodeError as exc:
        assert 0 <= exc.offset <= len(data)


def test_non_minimal_lengths_are_refused() -> None:
    """Found by the fuzzer: ``81 13`` for 19 decoded to the same message, so a
    MAC/signature computed over the canonical bytes still verified."""
    gs_start = 13
    content_len_at = ECS52.index(bytes.fromhex("13D920"))
    wide = bytearray(ECS52)
    wide[content_len_at : content_len_at + 1] = b"\x81\x13"
    wide[7] += 1  # keep the MAC header length consistent
    with pytest.raises(GbcsDecodeError, match="non-minimal") as info:
        decode_frame(bytes(wide))
    assert info.value.field == "content length" and info.value.offset == content_len_at
    header = bytearray(ECS52)
    header[7:8] = b"\x81\x47"
    with pytest.raises(GbcsDecodeError, match="non-minimal"):
        decode_frame(bytes(header))
    assert ECS52[gs_start] == 0xDF
