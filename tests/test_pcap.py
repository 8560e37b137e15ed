"""pcap capture (linktype 283, TAP page/channel TLVs), our reader, and tshark as an oracle."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbhil.gbcs.frame import Cra, decode_frame
from gbhil.han import ApsFrame, FrameError, PcapError, PcapWriter, SimulatedMedium, TxOptions
from gbhil.han.pcap import (
    DEFAULT_FRAMING,
    LINKTYPE_IEEE802_15_4_TAP,
    FcsType,
    Framing,
    ZigbeeFramer,
    capture_bytes,
    crc16_itu_t,
    decode_mpdu,
    decode_tap,
    encode_tap,
    fcs,
    parse_pcap,
    read_frames,
    read_pcap,
)
from gbhil.simulator import DEFAULT_START, SteppedClock

CHF = bytes.fromhex("00DB1234567890A2")
ESME = bytes.fromhex("00DB1234567890A0")
GSME = bytes.fromhex("00DB1234567890A1")
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# gbcs-facts 1.7: ECS52 "read firmware version", supplier 90-B3-D5-1F-30-01-00-00 -> ESME
# 00-DB-12-34-56-78-90-A0, originator counter 1002, MACed by the ACB (RTDS).
ECS52 = bytes.fromhex(
    "DD00000000000047"  # MAC header: general-ciphering, empty fields, length 0x47
    "1100000000"  # security control 0x11, invocation counter 0
    "DF0901"  # General Signing, transaction id length 9, CRA = command
    "00000000000003EA"  # originator counter 1002
    "0890B3D51F30010000"  # business originator: the supplier
    "0800DB1234567890A0"  # business target: the ESME
    "00"  # no date-time
    "020059"  # other information: message code 0x0059 (ECS52)
    "13D9200003EA00010100010000000201FF020100"  # DLMS content (19 octets)
    "00"  # no signature
    "CBA4104EE6FDCCFA05526F8D"  # 12-byte MAC
)

# ZCL Tunnelling (0x0704) TransferData: frame control, sequence, command, tunnel id (LE)
ZCL_CLUSTER_SPECIFIC_TO_CLIENT = 0x19  # server -> client, disable default response
ZCL_CLUSTER_SPECIFIC_TO_SERVER = 0x11  # client -> server, disable default response
TRANSFER_DATA_TO_CLIENT = 0x01
TRANSFER_DATA_TO_SERVER = 0x02
GBCS_TUNNEL_GET_RESPONSE = 0x02
GBCS_TUNNEL_PUT = 0x03
TUNNEL_ID = 5


def transfer_data(fc: int, tsn: int, command: int, data: bytes) -> bytes:
    return bytes((fc, tsn, command)) + TUNNEL_ID.to_bytes(2, "little") + data


def test_ecs52_example_is_a_well_formed_gbcs_message() -> None:
    msg = decode_frame(ECS52)
    assert len(ECS52) == 79
    assert msg.gs.cra is Cra.COMMAND
    assert msg.gs.message_code == 0x0059
    assert msg.gs.business_originator == bytes.fromhex("90B3D51F30010000")
    assert msg.gs.business_target == ESME


@pytest.mark.conformance
def test_ecs52_example_mac_verifies_with_the_rtds_keys(rtds_keystore_dir: Path) -> None:
    from gbhil.gbcs.security import Check, SecurityContext, verify_mac
    from gbhil.smki import KeyStore

    ctx = SecurityContext(KeyStore.from_rtds_folder(rtds_keystore_dir))
    assert verify_mac(ctx, decode_frame(ECS52)) is Check.VERIFIED


# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------


def test_fcs_is_the_802154_crc() -> None:
    assert crc16_itu_t(b"123456789") == 0x2189  # CRC-16/KERMIT check value
    assert fcs(b"123456789") == 0x2189
    assert fcs(b"") == 0


@given(st.binary(max_size=200))
def test_property_table_crc_matches_bitwise(data: bytes) -> None:
    assert fcs(data) == crc16_itu_t(data)


def test_tap_header_bytes() -> None:
    tap = encode_tap(28, 5)
    assert tap == bytes.fromhex(
        "00001400"  # version 0, reserved, header length 20
        "0000"
        "0100"
        "01000000"  # FCS type TLV: 16-bit CRC, padded to 4
        "0300"
        "0300"
        "0500"
        "1c"
        "00"  # channel assignment: channel 5, page 28, pad
    )
    info, rest = decode_tap(tap + b"\xaa")
    assert (info.fcs_type, info.page, info.channel, rest) == (FcsType.CRC16, 28, 5, b"\xaa")
    with_lqi, _ = decode_tap(encode_tap(0, 26, lqi=200))
    assert (with_lqi.page, with_lqi.channel, with_lqi.lqi) == (0, 26, 200)


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (b"\x00\x00", "shorter than 4"),
        (bytes.fromhex("01001400"), "TAP version"),
        (bytes.fromhex("00000700"), "TAP length"),
        (bytes.fromhex("00000c000300080000000000"), "overruns"),
        (bytes.fromhex("00000c000000010007000000"), "TAP FCS type at octet 8"),
    ],
)
def test_tap_decode_errors(packet: bytes, message: str) -> None:
    with pytest.raises(PcapError, match=message):
        decode_tap(packet)


def test_unicast_mpdu_layout() -> None:
    f = ApsFrame(
        CHF,
        ESME,
        0x0704,
        b"\x01\x02",
        src_short=0x0000,
        dst_short=0x1234,
        aps_counter=7,
        options=TxOptions.APS_ACK,
    )
    (mpdu,) = ZigbeeFramer().mpdus(f)
    body = mpdu[:-2]
    assert body[:9] == struct.pack("<HBHHH", 0x8861, 0, 0x1A62, 0x1234, 0x0000)
    assert body[9:17] == struct.pack("<HHHBB", 0x1808, 0x1234, 0x0000, 30, 0)
    assert body[17:25] == ESME[::-1] and body[25:33] == CHF[::-1]
    assert body[33:41] == bytes((0x40, 1)) + struct.pack("<HH", 0x0704, 0x0109) + bytes((1, 7))
    assert body[41:] == b"\x01\x02"
    assert mpdu[-2:] == fcs(body).to_bytes(2, "little")
    decoded = decode_mpdu(mpdu)
    assert (decoded.nwk_src_ieee, decoded.nwk_dst_ieee) == (CHF, ESME)
    assert decoded.payload == b"\x01\x02"


def test_sequence_numbers_count_per_sender() -> None:
    framer = ZigbeeFramer()
    a = ApsFrame(CHF, ESME, 6, b"", src_short=0, dst_short=1, aps_counter=0)
    b = ApsFrame(ESME, CHF, 6, b"", src_short=1, dst_short=0, aps_counter=0)
    seqs = [decode_mpdu(framer.mpdus(x)[0]).mac_seq for x in (a, a, b, a)]
    assert seqs == [0, 1, 0, 2]


def test_fragmentation_limits() -> None:
    framing = DEFAULT_FRAMING
    unicast_room = 127 - framing.overhead(broadcast=False, fragmented=False)
    assert unicast_room == 84
    assert framing.blocks(84, broadcast=False) == [84]
    assert framing.blocks(85, broadcast=False) == [82, 3]
    with pytest.raises(FrameError, match="APS fragmentation is unicast only"):
        framing.blocks(200, broadcast=True)
    with pytest.raises(FrameError, match="fragments"):
        framing.blocks(82 * 255 + 1, broadcast=False)
    lean = Framing(include_ieee=False)
    assert lean.blocks(100, broadcast=False) == [100]
    with pytest.raises(PcapError, match="pan_id"):
        Framing(pan_id=0xFFFF)


def test_framer_needs_addresses() -> None:
    with pytest.raises(FrameError, match="src_short"):
        ZigbeeFramer().mpdus(ApsFrame(CHF, ESME, 6, b"", dst_short=1, aps_counter=0))
    with pytest.raises(FrameError, match="aps_counter"):
        ZigbeeFramer().mpdus(ApsFrame(CHF, ESME, 6, b"", src_short=0, dst_short=1))


# ---------------------------------------------------------------------------
# writer and reader
# ---------------------------------------------------------------------------


def test_pcap_global_header() -> None:
    data = capture_bytes([])
    assert len(data) == 24
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data)
    assert (magic, major, minor, zone, sigfigs) == (0xA1B2C3D4, 2, 4, 0, 0)
    assert (snaplen, linktype) == (65535, LINKTYPE_IEEE802_15_4_TAP)


def _frames() -> st.SearchStrategy[ApsFrame]:
    eui = st.binary(min_size=8, max_size=8)
    common = {
        "src_eui64": eui,
        "cluster_id": st.integers(0, 0xFFFF),
        "src_endpoint": st.integers(0, 0xFF),
        "dst_endpoint": st.integers(0, 0xFF),
        "profile_id": st.integers(0, 0xFFFF),
        "aps_counter": st.integers(0, 0xFF),
        "src_short": st.integers(0, 0xFFF7),
        "options": st.sampled_from([TxOptions.NONE, TxOptions.APS_ACK]),
    }
    page_channel = st.sampled_from([(0, 11), (0, 26), (28, 0), (29, 62), (30, 35), (31, 26)])
    unicast = st.builds(
        lambda pc, **kw: ApsFrame(page=pc[0], channel=pc[1], **kw),
        page_channel,
        dst_eui64=eui,
        dst_short=st.integers(0, 0xFFF7),
        payload=st.binary(max_size=1500),
        **common,
    )
    broadcast = st.builds(
        lambda pc, **kw: ApsFrame(dst_eui64=None, page=pc[0], channel=pc[1], **kw),
        page_channel,
        dst_short=st.sampled_from([0xFFFF, 0xFFFD, 0xFFFC]),
        payload=st.binary(max_size=92),
        **common,
    )
    return st.one_of(unicast, broadcast)


@settings(max_examples=150)
@given(st.lists(_frames(), max_size=6))
def test_property_capture_round_trip(frames: list[ApsFrame]) -> None:
    stamped = [(T0 + timedelta(seconds=i), f) for i, f in enumerate(frames)]
    data = capture_bytes(stamped)
    entries = read_frames(data)
    assert [(e.timestamp, e.frame) for e in entries] == stamped
    pcap = parse_pcap(data)
    assert len(pcap.records) == sum(e.fragments for e in entries)
    for record in pcap.records:
        assert len(record.data) - 20 <= 127  # every on-air frame fits the PHY


def test_writer_is_a_medium_tap_and_flushes_every_frame(tmp_path: Path) -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 11), (28, 5)])
    esme = medium.attach(ESME, [(0, 11)])
    gsme = medium.attach(GSME, [(28, 5)])
    delivered: list[ApsFrame] = []
    esme.add_listener(delivered.append)
    gsme.add_listener(delivered.append)
    path = tmp_path / "han.pcap"
    writer = PcapWriter(path)
    medium.add_tap(writer)
    size0 = path.stat().st_size

    async def scenario() -> None:
        await chf.send(ApsFrame(CHF, ESME, 0x0704, b"\x19\x01\x01\x05\x00\x03" + ECS52))
        assert path.stat().st_size > size0  # on disk before the writer is closed
        await clock.sleep(60)
        await chf.send(ApsFrame(CHF, GSME, 0x0704, b"\x19\x02\x01\x05\x00\x02\x00" + ECS52))
        await chf.send(ApsFrame(CHF, None, 0x0702, b"\x01\x03\x00"))  # both radios
        await clock.run_until_idle()

    clock.run(scenario())
    writer.close()
    writer.close()  # idempotent
    entries = read_frames(path)
    assert writer.frames_written == 4 and writer.packets_written == 6
    assert [e.fragments for e in entries] == [2, 2, 1, 1]
    assert [(e.frame.page, e.frame.channel) for e in entries] == [
        (0, 11),
        (28, 5),
        (0, 11),
        (28, 5),
    ]
    assert [e.frame for e in entries[:2]] == delivered[:2]
    assert entries[0].timestamp == DEFAULT_START
    assert entries[1].timestamp > DEFAULT_START + timedelta(seconds=60)
    with pytest.raises(PcapError, match="closed"):
        writer.write_packet(T0, b"")


def test_writer_on_a_stream_and_bad_input() -> None:
    buf = io.BytesIO()
    writer = PcapWriter(buf)
    f = ApsFrame(CHF, ESME, 6, b"x", src_short=0, dst_short=1, aps_counter=0)
    with pytest.raises(PcapError, match="page and channel"):
        writer.write_frame(f, T0)
    with pytest.raises(PcapError, match="timezone-aware"):
        writer.write_frame(f, datetime(2026, 1, 1), page=0, channel=11)
    writer.write_frame(f, T0, page=0, channel=11)
    writer.close()
    assert not buf.closed  # the caller's stream stays open
    assert read_frames(buf.getvalue())[0].frame == f.replace(page=0, channel=11)
    with pytest.raises(PcapError, match="CRC16"):
        PcapWriter(io.BytesIO(), fcs_type=FcsType.NONE)


def test_reader_errors() -> None:
    f = ApsFrame(
        CHF, ESME, 6, bytes(200), src_short=0, dst_short=1, aps_counter=0, page=0, channel=11
    )
    good = capture_bytes([(T0, f)])
    with pytest.raises(PcapError, match="pcap magic"):
        parse_pcap(b"\x00" * 24)
    with pytest.raises(PcapError, match="shorter than 24"):
        parse_pcap(good[:10])
    with pytest.raises(PcapError, match="record header at octet"):
        parse_pcap(good + b"\x00\x00")
    with pytest.raises(PcapError, match="octets announced"):
        parse_pcap(good[:-1])
    corrupt = bytearray(good)
    corrupt[-5] ^= 0x01  # inside the last fragment's payload
    with pytest.raises(PcapError, match="record 2: FCS"):
        read_frames(bytes(corrupt))
    first_record_len = struct.unpack_from("<I", good, 24 + 8)[0]
    first_only = good[: 24 + 16 + first_record_len]
    with pytest.raises(PcapError, match="incomplete fragmented"):
        read_frames(first_only)
    without_first = good[:24] + good[24 + 16 + first_record_len :]
    with pytest.raises(PcapError, match="without a first one"):
        read_frames(without_first)
    wrong_link = bytearray(good)
    struct.pack_into("<I", wrong_link, 20, 195)
    with pytest.raises(PcapError, match="link type 195"):
        read_frames(bytes(wrong_link))


def test_big_endian_and_nanosecond_files_are_read() -> None:
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 283)
    record = struct.pack(">IIII", 1_767_225_600, 500_000_000, 3, 3) + b"abc"
    pcap = read_pcap(io.BytesIO(header + record))
    assert pcap.linktype == 283
    assert pcap.records[0].timestamp == T0 + timedelta(milliseconds=500)
    assert pcap.records[0].data == b"abc"


# ---------------------------------------------------------------------------
# tshark as an oracle
# ---------------------------------------------------------------------------

TSHARK = shutil.which("tshark")


@pytest.mark.skipif(
    TSHARK is None,
    reason="tshark is not installed (apt-get install tshark); CI installs it to check captures",
)
def test_tshark_dissects_page_channel_zcl_tunnel_and_gbcs(tmp_path: Path) -> None:
    path = tmp_path / "gbcs.pcap"
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 11), (28, 5)])
    medium.attach(ESME, [(0, 11)], short_address=0x1234)
    gsme = medium.attach(GSME, [(28, 5)], short_address=0x5678)
    put = transfer_data(
        ZCL_CLUSTER_SPECIFIC_TO_CLIENT,
        7,
        TRANSFER_DATA_TO_CLIENT,
        bytes((GBCS_TUNNEL_PUT,)) + ECS52,
    )
    get_response = transfer_data(
        ZCL_CLUSTER_SPECIFIC_TO_SERVER,
        8,
        TRANSFER_DATA_TO_SERVER,
        bytes((GBCS_TUNNEL_GET_RESPONSE, 0)) + ECS52,
    )
    with PcapWriter(path) as writer:
        medium.add_tap(writer)

        async def scenario() -> None:
            await chf.send(ApsFrame(CHF, ESME, 0x0704, put))
            await gsme.send(ApsFrame(GSME, CHF, 0x0704, get_response))
            await clock.run_until_idle()

        clock.run(scenario())
    result = subprocess.run(
        [TSHARK, "-r", str(path), "-V"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    frames = re.split(r"(?m)^Frame \d+: ", out)[1:]
    assert len(frames) == 4  # two GBCS messages, each in two APS fragments
    # TAP TLVs: FCS type and the page/channel of each radio
    assert out.count("FCS Type: ITU-T CRC16 (1)") == 4
    assert "Channel assignment: Page: Default (0), Number: 11" in frames[0]
    assert "Channel assignment: Page: Unknown (28), Number: 5" in frames[2]
    assert out.count("FCS: 0x") == 4 and "(Correct)" in out and "Incorrect" not in out
    for text, number, length in ((frames[1], "0x0000", 85), (frames[3], "0x5678", 86)):
        assert "[Protocols in frame: wpan-tap:zbee_nwk:zbee_aps:zbee_zcl:zbee_zcl_se.tun:" in text
        assert "gbcs_tunnel:gbcs_message" in text
        assert f"Src: {number}" in text
        assert "Cluster: Tunneling (0x0704)" in text
        assert "Profile: Smart Energy (0x0109)" in text
        assert f"[Reassembled ZigBee APS length: {length}]" in text
        assert "Tunnel Id: 0x0005" in text
        assert "Business Originator ID: 90:b3:d5:1f:30:01:00:00" in text
        assert "Business Target ID: 00:db:12:34:56:78:90:a0" in text
        assert "Message Code: ECS52 Read ESME/Comms Hub Firmware Version (0x0059)" in text
        assert "MAC: cba4104ee6fdccfa05526f8d" in text
        assert "Malformed" not in text
    assert "Command: Transfer Data (0x01)" in frames[1]
    assert "Transfer data command: PUT (0x03)" in frames[1]
    assert "Command: Transfer Data (0x02)" in frames[3]
    assert "Transfer data command: GET-RESPONSE (0x02)" in frames[3]
