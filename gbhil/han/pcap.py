"""pcap capture of HAN traffic: LINKTYPE_IEEE802_15_4_TAP (283) with page and channel.

The simulated medium works at APS level, so a capture has to put back what a
sniffer would have seen on air: an IEEE 802.15.4 MAC header and FCS, a Zigbee
NWK header and the APS header around the APS payload (the ZCL frame). With
those, Wireshark/tshark dissect down to ZCL, and a Tunnelling (0x0704)
TransferData carrying a GBCS message down to the GBCS layers.

Captures are **plaintext**: NWK and APS security are off in the synthesised
headers (the simulated HAN does not encrypt), so no key is needed to read them.
Headers are synthesised for fidelity of the capture only; routing, MAC
acknowledgements and retries are not simulated. APS payloads that do not fit
one 127-octet PSDU are split with APS fragmentation, as a real stack does, and
Wireshark reassembles them.

Every number used on the wire is in the catalogues below. No third-party
packet library is used (scapy is GPL-2.0-only and must not be imported).
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, Final

from gbhil.han.channels import MAX_PSDU_2_4, HanError, airtime, validate
from gbhil.han.transport import (
    BROADCAST_ALL,
    ApsFrame,
    CapturedFrame,
    FrameError,
    TxOptions,
)

# ---------------------------------------------------------------------------
# Catalogue: pcap file format
# ---------------------------------------------------------------------------

#: Link-layer header type: IEEE 802.15.4 with the TAP pseudo-header.
LINKTYPE_IEEE802_15_4_TAP: Final = 283
#: Classic pcap magic, microsecond timestamps (written little-endian).
PCAP_MAGIC_USEC: Final = 0xA1B2C3D4
PCAP_MAGIC_NSEC: Final = 0xA1B23C4D
PCAP_VERSION: Final = (2, 4)
PCAP_SNAPLEN: Final = 65535
_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# ---------------------------------------------------------------------------
# Catalogue: IEEE 802.15.4 TAP pseudo-header (github.com/jkcko/ieee802.15.4-tap)
# ---------------------------------------------------------------------------

TAP_VERSION: Final = 0
_TAP_HEADER = struct.Struct("<BBH")  # version, reserved, total header length
_TAP_TLV = struct.Struct("<HH")  # type, length of value (value padded to 4 octets)


class TapTlv(IntEnum):
    """TAP TLV types (the ones Wireshark 4.0 knows)."""

    FCS_TYPE = 0
    RSS = 1
    BIT_RATE = 2
    CHANNEL_ASSIGNMENT = 3  # channel (uint16) + page (uint8)
    SUN_PHY_INFO = 4
    START_OF_FRAME_TS = 5
    END_OF_FRAME_TS = 6
    ASN = 7
    SLOT_START_TS = 8
    TIMESLOT_LENGTH = 9
    LQI = 10
    CHANNEL_FREQUENCY = 11
    CHANNEL_PLAN = 12


class FcsType(IntEnum):
    """TAP FCS-type TLV values: what trails the MAC frame."""

    NONE = 0
    CRC16 = 1  # ITU-T CRC-16, the 2-octet 802.15.4 FCS (what we write)
    CRC32 = 2


# ---------------------------------------------------------------------------
# Catalogue: IEEE 802.15.4 MAC (2006 frame version 0 as Zigbee PRO uses it)
# ---------------------------------------------------------------------------

MAC_FRAME_TYPE_DATA: Final = 0x0001
MAC_FC_SECURITY: Final = 0x0008
MAC_FC_ACK_REQUEST: Final = 0x0020
MAC_FC_PAN_ID_COMPRESSION: Final = 0x0040
MAC_FC_DST_SHORT: Final = 0x0800  # destination addressing mode = short (0b10 << 10)
MAC_FC_SRC_SHORT: Final = 0x8000  # source addressing mode = short (0b10 << 14)
MAC_BROADCAST: Final = 0xFFFF
MAC_FCS_LEN: Final = 2
#: FCF + seq + dst PAN + dst short + src short (PAN ID compressed).
MAC_HEADER_LEN: Final = 2 + 1 + 2 + 2 + 2
_MAC_HEADER = struct.Struct("<HBHHH")
_MAC_FC_DATA_SHORT: Final = (
    MAC_FRAME_TYPE_DATA | MAC_FC_PAN_ID_COMPRESSION | MAC_FC_DST_SHORT | MAC_FC_SRC_SHORT
)

# ---------------------------------------------------------------------------
# Catalogue: Zigbee NWK
# ---------------------------------------------------------------------------

NWK_FRAME_TYPE_DATA: Final = 0x0000
NWK_PROTOCOL_VERSION_PRO: Final = 0x0008  # protocol version 2 in bits 2-5
NWK_FC_SECURITY: Final = 0x0200
NWK_FC_DST_IEEE: Final = 0x0800
NWK_FC_SRC_IEEE: Final = 0x1000
#: FCF + dst + src + radius + sequence number.
NWK_HEADER_LEN: Final = 2 + 2 + 2 + 1 + 1
_NWK_HEADER = struct.Struct("<HHHBB")
NWK_DEFAULT_RADIUS: Final = 30

# ---------------------------------------------------------------------------
# Catalogue: Zigbee APS data frames
# ---------------------------------------------------------------------------

APS_FRAME_TYPE_DATA: Final = 0x00
APS_DELIVERY_UNICAST: Final = 0x00
APS_DELIVERY_BROADCAST: Final = 0x08  # delivery mode 0b10 in bits 2-3
APS_FC_DELIVERY_MASK: Final = 0x0C
APS_FC_SECURITY: Final = 0x20
APS_FC_ACK_REQUEST: Final = 0x40
APS_FC_EXTENDED_HEADER: Final = 0x80
#: FC + dst endpoint + cluster + profile + src endpoint + APS counter.
APS_HEADER_LEN: Final = 1 + 1 + 2 + 2 + 1 + 1
_APS_HEADER = struct.Struct("<BBHHBB")
#: Extended frame control (fragmentation) + block number.
APS_EXT_HEADER_LEN: Final = 2
APS_FRAG_NONE: Final = 0x00
APS_FRAG_FIRST: Final = 0x01  # block number field = total number of blocks
APS_FRAG_PART: Final = 0x02  # block number field = index of this block
APS_MAX_BLOCKS: Final = 255


class PcapError(HanError, ValueError):
    """A capture that cannot be written or parsed; names the field and offset."""


def crc16_itu_t(data: bytes) -> int:
    """IEEE 802.15.4 FCS: ITU-T CRC-16, reflected, init 0, no final XOR (CRC-16/KERMIT)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


_CRC_TABLE: Final = tuple(crc16_itu_t(bytes([b])) for b in range(256))


def fcs(data: bytes) -> int:
    """Table-driven :func:`crc16_itu_t` (the one the writer uses per frame)."""
    crc = 0
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


# ---------------------------------------------------------------------------
# Synthesised MAC/NWK/APS framing
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Framing:
    """How APS frames are wrapped for the air (and so how long they are on it)."""

    pan_id: int = 0x1A62
    radius: int = NWK_DEFAULT_RADIUS
    include_ieee: bool = True  # NWK header carries source/destination EUI-64
    max_psdu: int = MAX_PSDU_2_4

    def __post_init__(self) -> None:
        if not 0 <= self.pan_id < MAC_BROADCAST:
            raise PcapError(f"pan_id must be 0x0000-0xFFFE, got {self.pan_id!r}")
        if not 1 <= self.radius <= 0xFF:
            raise PcapError(f"radius must be 1-255, got {self.radius!r}")
        if self.max_psdu - self.overhead(broadcast=False, fragmented=True) < 1:
            raise PcapError(f"max_psdu {self.max_psdu} leaves no room for an APS payload")

    def overhead(self, *, broadcast: bool, fragmented: bool) -> int:
        """Octets around the APS payload in one PSDU (MAC header + FCS, NWK, APS)."""
        ieee = 0
        if self.include_ieee:
            ieee = 8 if broadcast else 16
        aps = APS_HEADER_LEN + (APS_EXT_HEADER_LEN if fragmented else 0)
        return MAC_HEADER_LEN + MAC_FCS_LEN + NWK_HEADER_LEN + ieee + aps

    def blocks(self, payload_len: int, *, broadcast: bool) -> list[int]:
        """APS payload octets per on-air frame (one entry = unfragmented)."""
        whole = self.max_psdu - self.overhead(broadcast=broadcast, fragmented=False)
        if payload_len <= whole:
            return [payload_len]
        if broadcast:
            raise FrameError(
                f"broadcast APS payload of {payload_len} octets exceeds {whole} "
                "(APS fragmentation is unicast only)"
            )
        block = self.max_psdu - self.overhead(broadcast=False, fragmented=True)
        count = -(-payload_len // block)
        if count > APS_MAX_BLOCKS:
            raise FrameError(
                f"APS payload of {payload_len} octets needs {count} fragments "
                f"(max {APS_MAX_BLOCKS} of {block} octets)"
            )
        return [block] * (count - 1) + [payload_len - block * (count - 1)]

    def psdu_lengths(self, frame: ApsFrame) -> list[int]:
        """PSDU (MAC frame incl. FCS) length of each on-air frame carrying ``frame``."""
        blocks = self.blocks(len(frame.payload), broadcast=frame.is_broadcast)
        over = self.overhead(broadcast=frame.is_broadcast, fragmented=len(blocks) > 1)
        return [over + b for b in blocks]


DEFAULT_FRAMING: Final = Framing()


@dataclass(slots=True)
class Mpdu:
    """One decoded on-air frame: MAC + NWK + APS fields and its APS payload block."""

    mac_seq: int
    pan_id: int
    mac_dst: int
    mac_src: int
    nwk_dst: int
    nwk_src: int
    radius: int
    nwk_seq: int
    nwk_dst_ieee: bytes | None
    nwk_src_ieee: bytes | None
    aps_fc: int
    dst_endpoint: int
    cluster_id: int
    profile_id: int
    src_endpoint: int
    aps_counter: int
    fragmentation: int
    block: int
    payload: bytes

    @property
    def broadcast(self) -> bool:
        return (self.aps_fc & APS_FC_DELIVERY_MASK) == APS_DELIVERY_BROADCAST


class ZigbeeFramer:
    """Wraps APS frames in NWK/MAC headers, keeping per-sender MAC and NWK sequence numbers."""

    def __init__(self, framing: Framing = DEFAULT_FRAMING) -> None:
        self.framing = framing
        self._mac_seq: dict[int, int] = {}
        self._nwk_seq: dict[int, int] = {}

    def _next(self, table: dict[int, int], src: int) -> int:
        value = table.get(src, 0)
        table[src] = (value + 1) & 0xFF
        return value

    def mpdus(self, frame: ApsFrame) -> list[bytes]:
        """The PSDUs (MAC frames with FCS) a sniffer would record for ``frame``."""
        if frame.src_short is None:
            raise FrameError("src_short is needed to synthesise the MAC/NWK headers")
        if frame.dst_short is None and not frame.is_broadcast:
            raise FrameError("dst_short is needed to synthesise the MAC/NWK headers")
        if frame.aps_counter is None:
            raise FrameError("aps_counter is needed to synthesise the APS header")
        fr = self.framing
        broadcast = frame.is_broadcast
        nwk_dst = BROADCAST_ALL if frame.dst_short is None else frame.dst_short
        blocks = fr.blocks(len(frame.payload), broadcast=broadcast)
        fragmented = len(blocks) > 1
        nwk_seq = self._next(self._nwk_seq, frame.src_short)
        nwk_fc = NWK_FRAME_TYPE_DATA | NWK_PROTOCOL_VERSION_PRO
        nwk_ieee = b""
        if fr.include_ieee:
            if not broadcast:
                assert frame.dst_eui64 is not None
                nwk_fc |= NWK_FC_DST_IEEE
                nwk_ieee += frame.dst_eui64[::-1]
            nwk_fc |= NWK_FC_SRC_IEEE
            nwk_ieee += frame.src_eui64[::-1]
        nwk = _NWK_HEADER.pack(nwk_fc, nwk_dst, frame.src_short, fr.radius, nwk_seq) + nwk_ieee
        aps_fc = APS_FRAME_TYPE_DATA | (APS_DELIVERY_BROADCAST if broadcast else 0)
        if frame.options & TxOptions.APS_ACK:
            aps_fc |= APS_FC_ACK_REQUEST
        if fragmented:
            aps_fc |= APS_FC_EXTENDED_HEADER
        aps = _APS_HEADER.pack(
            aps_fc,
            frame.dst_endpoint,
            frame.cluster_id,
            frame.profile_id,
            frame.src_endpoint,
            frame.aps_counter,
        )
        mac_fc = _MAC_FC_DATA_SHORT | (0 if broadcast else MAC_FC_ACK_REQUEST)
        mac_dst = MAC_BROADCAST if broadcast else nwk_dst
        out: list[bytes] = []
        offset = 0
        for index, size in enumerate(blocks):
            ext = b""
            if fragmented:
                kind = APS_FRAG_FIRST if index == 0 else APS_FRAG_PART
                ext = bytes((kind, len(blocks) if index == 0 else index))
            mac = _MAC_HEADER.pack(
                mac_fc,
                self._next(self._mac_seq, frame.src_short),
                fr.pan_id,
                mac_dst,
                frame.src_short,
            )
            body = mac + nwk + aps + ext + frame.payload[offset : offset + size]
            offset += size
            out.append(body + fcs(body).to_bytes(MAC_FCS_LEN, "little"))
        return out


def decode_mpdu(psdu: bytes, *, check_fcs: bool = True) -> Mpdu:
    """Parse one PSDU written by :class:`ZigbeeFramer` (data frames, short MAC addressing)."""

    def need(offset: int, size: int, what: str) -> None:
        if len(psdu) < offset + size:
            raise PcapError(f"{what}: frame ends at octet {len(psdu)}, need {offset + size}")

    need(0, MAC_HEADER_LEN + MAC_FCS_LEN, "MAC header")
    body, trailer = psdu[:-MAC_FCS_LEN], psdu[-MAC_FCS_LEN:]
    if check_fcs and fcs(body) != int.from_bytes(trailer, "little"):
        raise PcapError(
            f"FCS at octet {len(body)}: 0x{int.from_bytes(trailer, 'little'):04X} != "
            f"computed 0x{fcs(body):04X}"
        )
    mac_fc, mac_seq, pan_id, mac_dst, mac_src = _MAC_HEADER.unpack_from(body, 0)
    if mac_fc & ~MAC_FC_ACK_REQUEST != _MAC_FC_DATA_SHORT:
        raise PcapError(f"MAC frame control at octet 0: unsupported 0x{mac_fc:04X}")
    pos = MAC_HEADER_LEN
    need(pos, NWK_HEADER_LEN, "NWK header")
    nwk_fc, nwk_dst, nwk_src, radius, nwk_seq = _NWK_HEADER.unpack_from(body, pos)
    if nwk_fc & (NWK_FC_SECURITY | 0x0003) or nwk_fc & 0x003C != NWK_PROTOCOL_VERSION_PRO:
        raise PcapError(f"NWK frame control at octet {pos}: unsupported 0x{nwk_fc:04X}")
    pos += NWK_HEADER_LEN
    dst_ieee = src_ieee = None
    if nwk_fc & NWK_FC_DST_IEEE:
        need(pos, 8, "NWK destination IEEE address")
        dst_ieee = body[pos : pos + 8][::-1]
        pos += 8
    if nwk_fc & NWK_FC_SRC_IEEE:
        need(pos, 8, "NWK source IEEE address")
        src_ieee = body[pos : pos + 8][::-1]
        pos += 8
    need(pos, APS_HEADER_LEN, "APS header")
    aps_fc, dst_ep, cluster, profile, src_ep, counter = _APS_HEADER.unpack_from(body, pos)
    if aps_fc & 0x03 != APS_FRAME_TYPE_DATA or aps_fc & APS_FC_SECURITY:
        raise PcapError(f"APS frame control at octet {pos}: unsupported 0x{aps_fc:02X}")
    if aps_fc & APS_FC_DELIVERY_MASK not in (APS_DELIVERY_UNICAST, APS_DELIVERY_BROADCAST):
        raise PcapError(f"APS delivery mode at octet {pos}: unsupported 0x{aps_fc:02X}")
    pos += APS_HEADER_LEN
    frag, block = APS_FRAG_NONE, 0
    if aps_fc & APS_FC_EXTENDED_HEADER:
        need(pos, APS_EXT_HEADER_LEN, "APS extended header")
        frag, block = body[pos] & 0x03, body[pos + 1]
        if frag not in (APS_FRAG_FIRST, APS_FRAG_PART):
            raise PcapError(f"APS extended header at octet {pos}: bad fragmentation {frag}")
        pos += APS_EXT_HEADER_LEN
    return Mpdu(
        mac_seq,
        pan_id,
        mac_dst,
        mac_src,
        nwk_dst,
        nwk_src,
        radius,
        nwk_seq,
        dst_ieee,
        src_ieee,
        aps_fc,
        dst_ep,
        cluster,
        profile,
        src_ep,
        counter,
        frag,
        block,
        bytes(body[pos:]),
    )


def mpdu_to_frame(parts: list[Mpdu], page: int | None, channel: int | None) -> ApsFrame:
    """Rebuild the APS frame from its decoded fragment(s) (APS ACK option is on air)."""
    first = parts[0]
    if first.nwk_src_ieee is None:
        raise PcapError("capture has no NWK source IEEE address; cannot rebuild the EUI-64")
    if not first.broadcast and first.nwk_dst_ieee is None:
        raise PcapError("capture has no NWK destination IEEE address; cannot rebuild it")
    return ApsFrame(
        src_eui64=first.nwk_src_ieee,
        dst_eui64=None if first.broadcast else first.nwk_dst_ieee,
        cluster_id=first.cluster_id,
        payload=b"".join(p.payload for p in parts),
        src_endpoint=first.src_endpoint,
        dst_endpoint=first.dst_endpoint,
        profile_id=first.profile_id,
        aps_counter=first.aps_counter,
        src_short=first.nwk_src,
        dst_short=first.nwk_dst,
        page=page,
        channel=channel,
        options=TxOptions.APS_ACK if first.aps_fc & APS_FC_ACK_REQUEST else TxOptions.NONE,
    )


# ---------------------------------------------------------------------------
# TAP pseudo-header
# ---------------------------------------------------------------------------


def _tlv(kind: TapTlv, value: bytes) -> bytes:
    pad = -len(value) % 4
    return _TAP_TLV.pack(kind, len(value)) + value + b"\x00" * pad


def encode_tap(
    page: int, channel: int, *, fcs_type: FcsType = FcsType.CRC16, lqi: int | None = None
) -> bytes:
    """TAP header with FCS-type and channel-assignment TLVs (and LQI when given)."""
    validate(page, channel)
    tlvs = _tlv(TapTlv.FCS_TYPE, bytes((fcs_type,)))
    tlvs += _tlv(TapTlv.CHANNEL_ASSIGNMENT, struct.pack("<HB", channel, page))
    if lqi is not None:
        if not 0 <= lqi <= 0xFF:
            raise PcapError(f"LQI must be 0-255, got {lqi}")
        tlvs += _tlv(TapTlv.LQI, bytes((lqi,)))
    return _TAP_HEADER.pack(TAP_VERSION, 0, _TAP_HEADER.size + len(tlvs)) + tlvs


@dataclass(slots=True)
class TapInfo:
    """Decoded TAP header: the TLVs we know by name, all TLVs raw."""

    fcs_type: FcsType | None = None
    page: int | None = None
    channel: int | None = None
    lqi: int | None = None
    tlvs: dict[int, bytes] = field(default_factory=dict)


def decode_tap(packet: bytes) -> tuple[TapInfo, bytes]:
    """Split a linktype-283 packet into its TAP TLVs and the 802.15.4 frame."""
    if len(packet) < _TAP_HEADER.size:
        raise PcapError(f"TAP header: packet of {len(packet)} octets is shorter than 4")
    version, _reserved, length = _TAP_HEADER.unpack_from(packet, 0)
    if version != TAP_VERSION:
        raise PcapError(f"TAP version at octet 0: {version} (only {TAP_VERSION} is defined)")
    if not _TAP_HEADER.size <= length <= len(packet) or length % 4:
        raise PcapError(f"TAP length at octet 2: {length} for a packet of {len(packet)} octets")
    info = TapInfo()
    pos = _TAP_HEADER.size
    while pos < length:
        if pos + _TAP_TLV.size > length:
            raise PcapError(f"TAP TLV at octet {pos}: truncated TLV header")
        kind, size = _TAP_TLV.unpack_from(packet, pos)
        start = pos + _TAP_TLV.size
        end = start + size
        if end + (-size % 4) > length:
            raise PcapError(f"TAP TLV type {kind} at octet {pos}: length {size} overruns header")
        value = bytes(packet[start:end])
        info.tlvs[kind] = value
        if kind == TapTlv.FCS_TYPE and size == 1:
            try:
                info.fcs_type = FcsType(value[0])
            except ValueError:
                raise PcapError(f"TAP FCS type at octet {start}: unknown {value[0]}") from None
        elif kind == TapTlv.CHANNEL_ASSIGNMENT and size == 3:
            info.channel, info.page = struct.unpack("<HB", value)
        elif kind == TapTlv.LQI and size == 1:
            info.lqi = value[0]
        pos = end + (-size % 4)
    return info, bytes(packet[length:])


# ---------------------------------------------------------------------------
# pcap writer and reader
# ---------------------------------------------------------------------------


def _split_timestamp(ts: datetime) -> tuple[int, int]:
    if ts.tzinfo is None:
        raise PcapError(f"timestamp must be timezone-aware, got naive {ts.isoformat()}")
    delta = ts - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if micros < 0:
        raise PcapError(f"timestamp {ts.isoformat()} is before 1970")
    return divmod(micros, 1_000_000)


class PcapWriter:
    """Streams captured HAN frames to a pcap file (linktype 283), flushing every frame.

    Use it as a medium tap (``medium.add_tap(writer)``): it is callable with a
    :class:`CapturedFrame`. It can also write frames or raw MPDUs directly.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        *,
        framing: Framing = DEFAULT_FRAMING,
        fcs_type: FcsType = FcsType.CRC16,
    ) -> None:
        if fcs_type is not FcsType.CRC16:
            raise PcapError("only the 2-octet FCS (FcsType.CRC16) is written")
        self._owns = not hasattr(target, "write")
        self._file: BinaryIO = (
            open(target, "wb") if self._owns else target  # type: ignore[arg-type]  # noqa: SIM115
        )
        self._framer = ZigbeeFramer(framing)
        self._fcs_type = fcs_type
        self.frames_written = 0
        self.packets_written = 0
        self._file.write(
            _PCAP_HEADER.pack(
                PCAP_MAGIC_USEC, *PCAP_VERSION, 0, 0, PCAP_SNAPLEN, LINKTYPE_IEEE802_15_4_TAP
            )
        )
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write_packet(self, timestamp: datetime, packet: bytes) -> None:
        """One raw linktype-283 record (TAP header + MPDU)."""
        if self._file.closed:
            raise PcapError("pcap writer is closed")
        sec, usec = _split_timestamp(timestamp)
        self._file.write(_PCAP_RECORD.pack(sec, usec, len(packet), len(packet)) + packet)
        self.packets_written += 1

    def write_mpdu(self, timestamp: datetime, page: int, channel: int, mpdu: bytes) -> None:
        """One on-air frame with its page/channel TAP header."""
        self.write_packet(timestamp, encode_tap(page, channel, fcs_type=self._fcs_type) + mpdu)

    def write_frame(
        self,
        frame: ApsFrame,
        timestamp: datetime,
        page: int | None = None,
        channel: int | None = None,
    ) -> int:
        """Synthesise the on-air frame(s) for ``frame`` and write them; returns how many.

        Fragments get timestamps one airtime apart (default PHY of the page).
        """
        page = frame.page if page is None else page
        channel = frame.channel if channel is None else channel
        if page is None or channel is None:
            raise PcapError("page and channel are needed for the TAP header")
        ts = timestamp
        mpdus = self._framer.mpdus(frame)
        for mpdu in mpdus:
            self.write_mpdu(ts, page, channel, mpdu)
            ts = ts + timedelta(seconds=airtime(page, len(mpdu)))
        self._file.flush()
        self.frames_written += 1
        return len(mpdus)

    def __call__(self, captured: CapturedFrame) -> None:
        """Medium tap entry point."""
        self.write_frame(captured.frame, captured.timestamp, captured.page, captured.channel)

    def close(self) -> None:
        """Flush and close (the file, if the writer opened it)."""
        if self._file.closed:
            return
        self._file.flush()
        if self._owns:
            self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One record of a pcap file."""

    timestamp: datetime
    data: bytes
    orig_len: int


@dataclass(frozen=True, slots=True)
class PcapFile:
    """A whole pcap file: link type and records."""

    linktype: int
    snaplen: int
    records: tuple[PcapRecord, ...]


def parse_pcap(data: bytes) -> PcapFile:
    """Parse classic pcap (either byte order, micro- or nanosecond timestamps)."""
    if len(data) < _PCAP_HEADER.size:
        raise PcapError(f"pcap header: file of {len(data)} octets is shorter than 24")
    magic_le = struct.unpack_from("<I", data, 0)[0]
    magic_be = struct.unpack_from(">I", data, 0)[0]
    if magic_le in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC):
        order, magic = "<", magic_le
    elif magic_be in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC):
        order, magic = ">", magic_be
    else:
        raise PcapError(f"pcap magic at octet 0: 0x{magic_le:08X} is not a pcap file")
    divisor = 1_000_000 if magic == PCAP_MAGIC_USEC else 1_000_000_000
    _m, major, minor, _zone, _sig, snaplen, linktype = struct.unpack_from(order + "IHHiIII", data)
    if (major, minor) != PCAP_VERSION:
        raise PcapError(f"pcap version at octet 4: {major}.{minor} (expected 2.4)")
    rec = struct.Struct(order + "IIII")
    records: list[PcapRecord] = []
    pos = _PCAP_HEADER.size
    while pos < len(data):
        if pos + rec.size > len(data):
            raise PcapError(f"pcap record header at octet {pos}: truncated")
        sec, frac, incl, orig = rec.unpack_from(data, pos)
        pos += rec.size
        if pos + incl > len(data):
            raise PcapError(f"pcap record at octet {pos}: {incl} octets announced, file ends")
        ts = _EPOCH + timedelta(seconds=sec, microseconds=frac * 1_000_000 // divisor)
        records.append(PcapRecord(ts, bytes(data[pos : pos + incl]), orig))
        pos += incl
    return PcapFile(linktype, snaplen, tuple(records))


def read_pcap(source: str | os.PathLike[str] | BinaryIO) -> PcapFile:
    """Read a pcap file from a path or binary stream."""
    if isinstance(source, str | os.PathLike):
        return parse_pcap(Path(source).read_bytes())
    return parse_pcap(source.read())


@dataclass(frozen=True, slots=True)
class CaptureEntry:
    """A frame read back from a capture, with its first fragment's timestamp."""

    timestamp: datetime
    frame: ApsFrame
    fragments: int


def iter_frames(capture: PcapFile) -> Iterator[CaptureEntry]:
    """Decode a linktype-283 capture back into APS frames, reassembling fragments."""
    if capture.linktype != LINKTYPE_IEEE802_15_4_TAP:
        raise PcapError(f"link type {capture.linktype} is not {LINKTYPE_IEEE802_15_4_TAP} (TAP)")
    pending: dict[tuple[int, int], tuple[datetime, TapInfo, list[Mpdu]]] = {}
    for index, record in enumerate(capture.records):
        try:
            tap, psdu = decode_tap(record.data)
            mpdu = decode_mpdu(psdu)
        except PcapError as exc:
            raise PcapError(f"record {index}: {exc}") from None
        key = (mpdu.nwk_src, mpdu.aps_counter)
        if mpdu.fragmentation == APS_FRAG_NONE:
            yield CaptureEntry(record.timestamp, mpdu_to_frame([mpdu], tap.page, tap.channel), 1)
        elif mpdu.fragmentation == APS_FRAG_FIRST:
            pending[key] = (record.timestamp, tap, [mpdu])
        else:
            if key not in pending:
                raise PcapError(f"record {index}: APS fragment {mpdu.block} without a first one")
            first_ts, first_tap, parts = pending[key]
            if mpdu.block != len(parts):
                raise PcapError(
                    f"record {index}: APS fragment {mpdu.block} out of order "
                    f"(expected {len(parts)})"
                )
            parts.append(mpdu)
            if len(parts) == parts[0].block:
                del pending[key]
                frame = mpdu_to_frame(parts, first_tap.page, first_tap.channel)
                yield CaptureEntry(first_ts, frame, len(parts))
    if pending:
        raise PcapError(f"capture ends with {len(pending)} incomplete fragmented APS frame(s)")


def read_frames(source: str | os.PathLike[str] | BinaryIO | bytes) -> list[CaptureEntry]:
    """Read a capture written by :class:`PcapWriter` back into APS frames."""
    if isinstance(source, bytes):
        return list(iter_frames(parse_pcap(source)))
    return list(iter_frames(read_pcap(source)))


def write_frames(
    target: str | os.PathLike[str] | BinaryIO,
    frames: Iterable[tuple[datetime, ApsFrame]],
    framing: Framing = DEFAULT_FRAMING,
) -> int:
    """Write (timestamp, frame) pairs with page/channel set; returns the record count."""
    with PcapWriter(target, framing=framing) as writer:
        for ts, frame in frames:
            writer.write_frame(frame, ts)
        return writer.packets_written


def capture_bytes(frames: Iterable[tuple[datetime, ApsFrame]]) -> bytes:
    """A whole capture in memory (tests, small tools)."""
    buf = io.BytesIO()
    write_frames(buf, frames)
    return buf.getvalue()


__all__ = [
    "DEFAULT_FRAMING",
    "LINKTYPE_IEEE802_15_4_TAP",
    "CaptureEntry",
    "FcsType",
    "Framing",
    "Mpdu",
    "PcapError",
    "PcapFile",
    "PcapRecord",
    "PcapWriter",
    "TapInfo",
    "TapTlv",
    "ZigbeeFramer",
    "capture_bytes",
    "crc16_itu_t",
    "decode_mpdu",
    "decode_tap",
    "encode_tap",
    "fcs",
    "iter_frames",
    "mpdu_to_frame",
    "parse_pcap",
    "read_frames",
    "read_pcap",
    "write_frames",
]
