"""ASH codec and EZSP frame catalogue: vectors, round trips and corrupted frames."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbhil.han.ezsp import ash
from gbhil.han.ezsp.frames import (
    BY_NAME,
    COMMANDS,
    EzspFrameError,
    EzspHeader,
    EzspUnsupportedError,
    build_frame,
    by_frame_id,
    command,
    decode_header,
    ember_channel,
    is_legacy_version_command,
    page_channel_of,
)

# -- primitives -------------------------------------------------------------------


def test_crc_is_ccitt_false() -> None:
    # CRC-16/CCITT-FALSE check value over "123456789".
    assert ash.crc16(b"123456789") == 0x29B1
    assert ash.crc16(b"123456789") == binascii.crc_hqx(b"123456789", 0xFFFF)


def test_random_sequence_starts_as_ug101_says() -> None:
    # r0 = 0x42; 0x42 even -> 0x21; 0x21 odd -> 0x10 ^ 0xB8 = 0xA8; 0xA8 even -> 0x54.
    assert ash.RANDOM_SEQUENCE[:4] == bytes((0x42, 0x21, 0xA8, 0x54))
    assert ash.randomize(ash.randomize(b"\x00\x01\x02")) == b"\x00\x01\x02"


def test_rst_and_rstack_vectors() -> None:
    # The RST frame every EZSP host sends (UG101): C0 38 BC 7E.
    assert ash.encode(ash.RstFrame()) == bytes.fromhex("c038bc7e")
    # RSTACK version 2, reset code 0x0B (software): C1 02 0B 0A 52 7E.
    assert ash.encode(ash.RstAckFrame(ash.ResetCode.SOFTWARE)) == bytes.fromhex("c1020b0a527e")
    assert ash.decode(ash.unstuff(bytes.fromhex("c1020b0a52"))) == ash.RstAckFrame(0x0B)


def test_ack_and_nak_control_bytes() -> None:
    assert ash.AckFrame(3).body() == b"\x83"
    assert ash.AckFrame(3, not_ready=True).body() == b"\x8b"
    assert ash.NakFrame(6).body() == b"\xa6"
    assert ash.decode(ash.AckFrame(7).body() + ash.crc16(b"\x87").to_bytes(2, "big")) == (
        ash.AckFrame(7)
    )


def test_data_frame_control_and_randomised_payload() -> None:
    frame = ash.DataFrame(frm_num=2, ack_num=5, payload=b"\x00\x00\x00\x02", re_tx=True)
    body = frame.body()
    assert body[0] == 0b0_010_1_101
    assert body[1:] == bytes((0x42, 0x21, 0xA8, 0x56))  # payload XOR the sequence


def test_stuffing_escapes_every_reserved_byte() -> None:
    raw = bytes((0x7E, 0x7D, 0x11, 0x13, 0x18, 0x1A, 0x41))
    stuffed = ash.stuff(raw)
    assert stuffed == bytes.fromhex("7d5e7d5d7d317d337d387d3a41")
    assert not set(stuffed[1::2][:6]) & ash.RESERVED_BYTES
    assert ash.unstuff(stuffed) == raw


# -- round trips ------------------------------------------------------------------

seq = st.integers(0, 7)
frames = st.one_of(
    st.builds(
        ash.DataFrame,
        frm_num=seq,
        ack_num=seq,
        payload=st.binary(min_size=1, max_size=ash.MAX_DATA_LEN),
        re_tx=st.booleans(),
    ),
    st.builds(ash.AckFrame, ack_num=seq, not_ready=st.booleans()),
    st.builds(ash.NakFrame, ack_num=seq, not_ready=st.booleans()),
    st.just(ash.RstFrame()),
    st.builds(ash.RstAckFrame, reset_code=st.integers(0, 255)),
    st.builds(ash.ErrorFrame, code=st.integers(0, 255)),
)


@given(frames)
def test_encode_decode_round_trip(frame: ash.AshFrame) -> None:
    wire = ash.encode(frame)
    assert wire.endswith(b"\x7e")
    assert not set(wire[:-1]) & (ash.RESERVED_BYTES - {ash.Reserved.ESCAPE})
    assert ash.decode(ash.unstuff(wire[:-1])) == frame


@given(st.lists(frames, min_size=1, max_size=8), st.integers(1, 16))
def test_stream_decoder_reassembles_any_chunking(frames_in: list[ash.AshFrame], chunk: int) -> None:
    wire = b"".join(ash.encode(f) for f in frames_in)
    decoder = ash.AshDecoder()
    out: list[object] = []
    for i in range(0, len(wire), chunk):
        out.extend(decoder.feed(wire[i : i + chunk]))
    assert out == frames_in


@given(
    st.builds(ash.DataFrame, frm_num=seq, ack_num=seq, payload=st.binary(min_size=1, max_size=64)),
    st.data(),
)
def test_any_single_bit_flip_is_detected(frame: ash.DataFrame, data: st.DataObject) -> None:
    body = frame.body() + ash.crc16(frame.body()).to_bytes(2, "big")
    bit = data.draw(st.integers(0, len(body) * 8 - 1))
    corrupted = bytearray(body)
    corrupted[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ash.AshError):
        result = ash.decode(bytes(corrupted))
        # a flip in the control byte may still yield a valid frame of another type
        # only if the CRC matched, which CRC-16 rules out for single-bit errors
        raise AssertionError(f"corruption not detected: {result!r}")


# -- corrupted frames on the stream ---------------------------------------------------


def test_crc_error_is_reported_with_both_values() -> None:
    wire = bytearray(ash.encode(ash.DataFrame(1, 2, b"\x10\x20\x30")))
    wire[2] ^= 0x01
    (item,) = ash.AshDecoder().feed(bytes(wire))
    assert isinstance(item, ash.AshCrcError)
    assert item.data_frame  # the receiver must NAK it
    assert "received 0x" in str(item) and "computed 0x" in str(item)


def test_decoder_recovers_after_a_bad_frame() -> None:
    good = ash.encode(ash.AckFrame(1))
    bad = b"\x81\x00\x00\x7e"
    items = list(ash.AshDecoder().feed(bad + good))
    assert isinstance(items[0], ash.AshCrcError) and not items[0].data_frame
    assert items[1] == ash.AckFrame(1)


def test_cancel_and_substitute_discard_partial_frames() -> None:
    good = ash.encode(ash.AckFrame(4))
    decoder = ash.AshDecoder()
    # CANCEL drops what came before it; SUBSTITUTE drops up to the next flag.
    assert list(decoder.feed(b"\x12\x34" + bytes([ash.Reserved.CANCEL]) + good)) == [
        ash.AckFrame(4)
    ]
    assert list(decoder.feed(b"\x55" + bytes([ash.Reserved.SUBSTITUTE]) + b"\x66\x7e" + good)) == [
        ash.AckFrame(4)
    ]
    assert list(decoder.feed(bytes([ash.Reserved.XON]) + good)) == [ash.AckFrame(4)]


@pytest.mark.parametrize(
    ("raw", "error", "text"),
    [
        (b"\x80", ash.AshFramingError, r"shorter than control \+ CRC"),
        (b"\x7d\x41", ash.AshFramingError, "does not unescape"),
        (b"\x41\x7d", ash.AshFramingError, "dangling escape"),
    ],
)
def test_malformed_frames_raise_precise_errors(
    raw: bytes, error: type[ash.AshError], text: str
) -> None:
    with pytest.raises(error, match=text):
        ash.decode(ash.unstuff(raw))


def _with_crc(body: bytes) -> bytes:
    return body + ash.crc16(body).to_bytes(2, "big")


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        (b"\xc1\x02", ash.AshFramingError, "RSTACK frame needs 2 data bytes"),
        (b"\xc1\x01\x0b", ash.AshControlError, "ASH version 0x01"),
        (b"\xc0\x00", ash.AshFramingError, "RST frame carries 1"),
        (b"\x81\x00", ash.AshFramingError, "ACK frame carries 1"),
        (b"\xc5", ash.AshControlError, "control byte 0xC5"),
    ],
)
def test_control_errors(body: bytes, error: type[ash.AshError], text: str) -> None:
    with pytest.raises(error, match=text):
        ash.decode(_with_crc(body))


def test_frame_field_validation() -> None:
    with pytest.raises(ash.AshControlError, match="frm_num must be 0-7"):
        ash.DataFrame(8, 0, b"\x00")
    with pytest.raises(ash.AshFramingError, match="1-256 bytes"):
        ash.DataFrame(0, 0, b"")
    assert ash.next_seq(7) == 0


# -- EZSP frames ------------------------------------------------------------------------


def test_catalogue_has_unique_frame_ids_per_version() -> None:
    for version in (13, 14, 16, 17, 18):
        ids = [c.frame_id for c in COMMANDS if c.supports(version)]
        assert len(ids) == len(set(ids)), version
    assert by_frame_id(0x005F, 17) is BY_NAME["gpClearProxyTable"]
    assert by_frame_id(0x005F, 14) is None


def test_extended_header_round_trip_and_legacy_version() -> None:
    frame = build_frame(
        "sendUnicast",
        {
            "message_type": 0,
            "nwk": 0x1234,
            "aps_frame": {
                "profileId": 0x0109,
                "clusterId": 0x0704,
                "sourceEndpoint": 1,
                "destinationEndpoint": 1,
                "options": 0x0140,
                "groupId": 0,
                "sequence": 7,
            },
            "message_tag": 0x0102,
            "message": b"\x01\x02",
        },
        sequence=9,
        version=14,
    )
    assert frame[:5] == bytes((9, 0x00, 0x01, 0x34, 0x00))
    header, params = decode_header(frame, extended=True)
    assert header == EzspHeader(9, 0x0034, 0x00)
    request = command("sendUnicast", 14).decode_request(params, 14)
    assert request["nwk"] == 0x1234 and request["aps_frame"]["clusterId"] == 0x0704
    legacy = build_frame(
        "version", {"desiredProtocolVersion": 4}, sequence=0, version=4, legacy=True
    )
    assert legacy == bytes((0, 0, 0, 4)) and is_legacy_version_command(legacy)


def test_status_width_follows_the_protocol_version() -> None:
    cmd = command("getValue", 13)
    assert cmd.encode_response({"status": 0, "value": b"\x05"}, 13) == b"\x00\x01\x05"
    assert cmd.encode_response({"status": 0, "value": b"\x05"}, 14) == b"\x00\x00\x00\x00\x01\x05"


def test_eui64_travels_little_endian() -> None:
    eui = bytes.fromhex("00124b0000000001")
    wire = command("getEui64", 14).encode_response({"eui64": eui}, 14)
    assert wire == eui[::-1]
    assert command("getEui64", 14).decode_response(wire, 14) == {"eui64": eui}


def test_ezsp_errors_name_the_field_and_offset() -> None:
    with pytest.raises(EzspFrameError, match=r"sendUnicast request.aps_frame at offset 3"):
        command("sendUnicast", 14).decode_request(b"\x00\x34\x12\x09\x01", 14)
    with pytest.raises(EzspFrameError, match="2 trailing bytes"):
        command("getNodeId", 14).decode_response(b"\x00\x00\xaa\xbb", 14)
    with pytest.raises(EzspFrameError, match="frame format version 0"):
        decode_header(b"\x01\x00\x00\x00\x00", extended=True)
    with pytest.raises(EzspUnsupportedError, match="no catalogued layout for protocol version 13"):
        command("sendUnicast", 13)


def test_sub_ghz_channel_encoding() -> None:
    assert ember_channel(28, 15) == 0x8F  # radio-stack.md 3.1 example
    assert ember_channel(0, 11) == 11
    assert page_channel_of(0x8F) == (28, 15)
    assert page_channel_of(ember_channel(31, 26)) == (31, 26)
