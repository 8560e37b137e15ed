"""GBT (General Block Transfer) segmentation of GBCS messages (gbcs-facts 5).

A long message is cut into blocks, each carried in a routing header (a
populated general-ciphering header) followed by a GBT APDU.  The receiver
concatenates blocks 1..last and parses the result as an ordinary message.
"""

from __future__ import annotations

from dataclasses import dataclass

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.frame import Cra, decode_frame
from gbhil.gbcs.reader import Reader, encode_length

TAG_GBT = 0xE0
BLOCK_LAST = 0x80
BLOCK_STREAMING = 0x40
WINDOW_MASK = 0x3F
#: Security control of the routing header: blocks carry no protection of their own;
#: the reassembled message is MACed/signed as usual.
GBT_SECURITY_CONTROL = 0x00
#: Receiver limits (public decoders cap at 255 blocks and 1200-byte blocks).
MAX_BLOCKS = 255
MAX_BLOCK_LEN = 1200
MAX_MESSAGE_LEN = MAX_BLOCKS * MAX_BLOCK_LEN


@dataclass(frozen=True, slots=True)
class GbtSegment:
    """One GBT block with its routing header."""

    cra: Cra
    originator_counter: int
    business_originator: bytes
    business_target: bytes
    message_code: int
    block_number: int
    data: bytes
    last: bool = False
    streaming: bool = False
    window: int = 1
    block_number_ack: int = 0
    security_control: int = GBT_SECURITY_CONTROL
    invocation_counter: int = 0

    @property
    def key(self) -> tuple[bytes, int, int]:
        """Identifies the message a block belongs to."""
        return (self.business_originator, int(self.cra), self.originator_counter)

    def encode(self) -> bytes:
        if not 1 <= self.block_number <= 0xFFFF:
            raise GbcsEncodeError("GBT block number", "must be 1..65535")
        if not 0 <= self.window <= WINDOW_MASK:
            raise GbcsEncodeError("GBT window", "must be 0..63")
        control = (BLOCK_LAST if self.last else 0) | (BLOCK_STREAMING if self.streaming else 0)
        apdu = (
            bytes((TAG_GBT, control | self.window))
            + self.block_number.to_bytes(2, "big")
            + self.block_number_ack.to_bytes(2, "big")
            + encode_length(len(self.data), "GBT block length")
            + self.data
        )
        body = bytes((self.security_control,)) + self.invocation_counter.to_bytes(4, "big") + apdu
        return (
            b"\xdd\x09"
            + bytes((self.cra,))
            + self.originator_counter.to_bytes(8, "big")
            + b"\x08"
            + self.business_originator
            + b"\x08"
            + self.business_target
            + b"\x00\x02"
            + self.message_code.to_bytes(2, "big")
            + b"\x00"
            + encode_length(len(body), "GBT routing length")
            + body
        )

    @classmethod
    def decode(cls, data: bytes) -> GbtSegment:
        r = Reader(data)
        r.expect(0xDD, "GBT routing tag")
        r.expect(0x09, "GBT transaction ID length")
        at = r.offset
        try:
            cra = Cra(r.u8("CRA flag"))
        except ValueError:
            raise GbcsDecodeError("CRA flag", at, "must be 1, 2 or 3") from None
        counter = r.u64("originator counter")
        r.expect(0x08, "business originator ID length")
        orig = r.take(8, "business originator ID")
        r.expect(0x08, "business target ID length")
        target = r.take(8, "business target ID")
        r.expect(0x00, "GBT date-time length")
        r.expect(0x02, "GBT other information length")
        code = r.u16("message code")
        r.expect(0x00, "GBT key info")
        at = r.offset
        n = r.length("GBT routing length")
        if n != r.remaining:
            raise GbcsDecodeError("GBT routing length", at, f"says {n}, found {r.remaining}")
        sc = r.u8("security control")
        ic = r.u32("invocation counter")
        r.expect(TAG_GBT, "GBT APDU tag")
        control = r.u8("GBT block control")
        at = r.offset
        number = r.u16("GBT block number")
        if number == 0:
            raise GbcsDecodeError("GBT block number", at, "blocks are numbered from 1")
        ack = r.u16("GBT block number ack")
        n = r.length("GBT block length")
        block = r.take(n, "GBT block data")
        r.expect_end("GBT segment")
        return cls(
            cra,
            counter,
            orig,
            target,
            code,
            number,
            block,
            last=bool(control & BLOCK_LAST),
            streaming=bool(control & BLOCK_STREAMING),
            window=control & WINDOW_MASK,
            block_number_ack=ack,
            security_control=sc,
            invocation_counter=ic,
        )


def is_gbt(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0xDD and data[1] == 0x09


def segment(message: bytes, block_size: int) -> list[GbtSegment]:
    """Cut a complete GBCS message into GBT blocks of at most ``block_size`` bytes."""
    if not 1 <= block_size <= MAX_BLOCK_LEN:
        raise GbcsEncodeError("GBT block size", f"must be 1..{MAX_BLOCK_LEN}")
    gs = decode_frame(message).gs
    chunks = [message[i : i + block_size] for i in range(0, len(message), block_size)]
    if len(chunks) > MAX_BLOCKS:
        raise GbcsEncodeError("GBT block count", f"{len(chunks)} blocks exceed {MAX_BLOCKS}")
    return [
        GbtSegment(
            gs.cra,
            gs.originator_counter,
            gs.business_originator,
            gs.business_target,
            gs.message_code,
            i + 1,
            chunk,
            last=i == len(chunks) - 1,
        )
        for i, chunk in enumerate(chunks)
    ]


class GbtReassembler:
    """Collects blocks per message; returns the whole message when its last block is in.

    Duplicated blocks with the same data are ignored (radio retries); a block
    that contradicts an earlier one, or a message that exceeds the limits,
    raises and discards that message so no partial state lingers.
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[bytes, int, int], dict[int, bytes]] = {}
        self._last: dict[tuple[bytes, int, int], int] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def feed(self, seg: GbtSegment) -> bytes | None:
        key = seg.key
        blocks = self._pending.setdefault(key, {})
        old = blocks.get(seg.block_number)
        if old is not None and old != seg.data:
            self.discard(key)
            raise GbcsDecodeError(
                "GBT block data", 0, f"block {seg.block_number} resent with other data"
            )
        if seg.block_number > MAX_BLOCKS or len(seg.data) > MAX_BLOCK_LEN:
            self.discard(key)
            raise GbcsDecodeError("GBT block number", 0, "message exceeds the GBT limits")
        blocks[seg.block_number] = seg.data
        if seg.last:
            self._last[key] = seg.block_number
        last = self._last.get(key)
        if last is None or len(blocks) < last:
            return None
        if max(blocks) > last:
            self.discard(key)
            raise GbcsDecodeError("GBT block number", 0, "block numbered after the last block")
        data = b"".join(blocks[i] for i in range(1, last + 1))
        self.discard(key)
        return data

    def discard(self, key: tuple[bytes, int, int]) -> None:
        self._pending.pop(key, None)
        self._last.pop(key, None)
