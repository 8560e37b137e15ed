"""ASH: the Asynchronous Serial Host framing that carries EZSP over a UART.

Silicon Labs NCPs (and the emulator in :mod:`gbhil.han.ezsp.emulator`) speak
EZSP inside ASH frames. This module is the pure codec: frame types, CRC,
byte stuffing, data randomisation and a streaming decoder. It has no I/O and
no timers, so the NCP emulator, the probe and the tests share one
implementation whose every error names what was wrong (architecture rule 5).

Facts (Silicon Labs UG101, cross-checked with bellows' ``ash.py``;
radio-stack.md 1.3):

* On the wire a frame is ``stuff(control ‖ data ‖ CRC16) ‖ 0x7E``.
* The CRC is CRC-CCITT (polynomial 0x1021, initial value 0xFFFF) over control
  and the *randomised* data, stored big-endian.
* Reserved bytes 0x7E flag, 0x7D escape, 0x11 XON, 0x13 XOFF, 0x18 substitute,
  0x1A cancel are sent as ``0x7D, byte ^ 0x20``. A received cancel discards
  the partial frame; a substitute discards everything up to the next flag.
* Only the data field of a DATA frame is randomised: XOR with the sequence
  r0 = 0x42, r(n+1) = r(n) >> 1, XOR 0xB8 when the bit shifted out was 1.
* Control byte: DATA ``0 FFF R AAA``, ACK ``100 r N AAA``, NAK ``101 r N AAA``,
  RST 0xC0, RSTACK 0xC1 + [version 2, reset code], ERROR 0xC2 + [version, code].
  FFF = frmNum, AAA = ackNum (the next frame number expected), R = reTx,
  N = nRdy (the sender's receive buffers are full).
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from gbhil.han.channels import HanError

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------


class Reserved(IntEnum):
    """Bytes that never appear unescaped inside a frame."""

    FLAG = 0x7E  # ends a frame
    ESCAPE = 0x7D  # next byte is XORed with 0x20
    XON = 0x11  # software flow control: resume
    XOFF = 0x13  # software flow control: stop
    SUBSTITUTE = 0x18  # a byte was lost to a UART error: drop up to the next flag
    CANCEL = 0x1A  # discard the frame in progress


RESERVED_BYTES: Final = frozenset(int(b) for b in Reserved)
ESCAPE_XOR: Final = 0x20

CONTROL_RST: Final = 0xC0
CONTROL_RSTACK: Final = 0xC1
CONTROL_ERROR: Final = 0xC2
CONTROL_ACK: Final = 0x80
CONTROL_NAK: Final = 0xA0
#: Masks that pick the frame type out of the control byte.
DATA_MASK: Final = 0x80  # DATA frames have bit 7 clear
ACK_NAK_MASK: Final = 0xE0
#: ASH protocol version carried by RSTACK and ERROR frames (bellows rejects any other).
ASH_VERSION: Final = 0x02
#: Frame and ack numbers are 3 bits wide.
SEQ_MODULUS: Final = 8
#: CRC-CCITT initial value.
CRC_INIT: Final = 0xFFFF
#: Randomisation LFSR seed and feedback.
RANDOM_SEED: Final = 0x42
RANDOM_FEEDBACK: Final = 0xB8
#: Largest DATA field accepted: one full pass of the randomisation sequence.
#: (EZSP frames are at most ~200 bytes; bellows uses the same 256-byte bound.)
MAX_DATA_LEN: Final = 256
#: The host sends this many CANCEL bytes before RST to flush a half-received frame.
RESET_CANCEL_COUNT: Final = 32


class ResetCode(IntEnum):
    """Why the NCP reset (RSTACK) or failed (ERROR); EmberZNet's NCP reset codes."""

    UNKNOWN_REASON = 0x00
    EXTERNAL = 0x01
    POWER_ON = 0x02
    WATCHDOG = 0x03
    ASSERT = 0x06
    BOOTLOADER = 0x09
    SOFTWARE = 0x0B
    EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT = 0x51
    UNKNOWN_EM3XX_ERROR = 0x80


def _random_sequence(length: int) -> bytes:
    out = bytearray()
    r = RANDOM_SEED
    for _ in range(length):
        out.append(r)
        r = (r >> 1) ^ RANDOM_FEEDBACK if r & 1 else r >> 1
    return bytes(out)


#: The randomisation sequence is the same for every frame: compute it once.
RANDOM_SEQUENCE: Final = _random_sequence(MAX_DATA_LEN)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class AshError(HanError, ValueError):
    """A malformed ASH frame; subclasses say which check failed.

    ``data_frame`` is True when the bad frame's control byte says DATA: the
    receiver answers those with a NAK (UG101 reject condition).
    """

    data_frame: bool = False


class AshCrcError(AshError):
    """The CRC does not match: the frame was corrupted on the line."""


class AshFramingError(AshError):
    """Bad stuffing, a frame too short or too long, or a DATA field out of range."""


class AshControlError(AshError):
    """A control byte that is no known frame type, or a field invalid for its type."""


# ---------------------------------------------------------------------------
# Primitives
# ---------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-CCITT (0x1021, init 0xFFFF), as ASH computes it."""
    return binascii.crc_hqx(data, CRC_INIT)


def randomize(data: bytes) -> bytes:
    """XOR ``data`` with the ASH pseudo-random sequence (its own inverse)."""
    if len(data) > MAX_DATA_LEN:
        raise AshFramingError(f"DATA field of {len(data)} bytes exceeds {MAX_DATA_LEN}")
    return bytes(a ^ b for a, b in zip(data, RANDOM_SEQUENCE, strict=False))


def stuff(data: bytes) -> bytes:
    """Escape every reserved byte as ``0x7D, byte ^ 0x20``."""
    out = bytearray()
    for b in data:
        if b in RESERVED_BYTES:
            out += bytes((Reserved.ESCAPE, b ^ ESCAPE_XOR))
        else:
            out.append(b)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    """Undo :func:`stuff`; an escape that does not yield a reserved byte is an error."""
    out = bytearray()
    escaped = False
    for offset, b in enumerate(data):
        if escaped:
            value = b ^ ESCAPE_XOR
            if value not in RESERVED_BYTES:
                raise AshFramingError(
                    f"escape at offset {offset - 1} is followed by 0x{b:02X}, which does not "
                    f"unescape to a reserved byte (0x{value:02X})"
                )
            out.append(value)
            escaped = False
        elif b == Reserved.ESCAPE:
            escaped = True
        elif b in RESERVED_BYTES:
            raise AshFramingError(f"unescaped reserved byte 0x{b:02X} at offset {offset}")
        else:
            out.append(b)
    if escaped:
        raise AshFramingError("frame ends with a dangling escape byte 0x7D")
    return bytes(out)


def _check_seq(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEQ_MODULUS:
        raise AshControlError(f"{name} must be 0-7, got {value!r}")


def next_seq(value: int) -> int:
    """The frame number after ``value`` (modulo 8)."""
    return (value + 1) % SEQ_MODULUS


# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A DATA frame: one EZSP frame, numbered, acknowledging the peer's frames."""

    frm_num: int
    ack_num: int
    payload: bytes
    re_tx: bool = False

    def __post_init__(self) -> None:
        _check_seq("frm_num", self.frm_num)
        _check_seq("ack_num", self.ack_num)
        if not isinstance(self.payload, bytes):
            raise AshFramingError(f"payload must be bytes, got {type(self.payload).__name__}")
        if not 1 <= len(self.payload) <= MAX_DATA_LEN:
            raise AshFramingError(
                f"DATA payload must be 1-{MAX_DATA_LEN} bytes, got {len(self.payload)}"
            )

    @property
    def control(self) -> int:
        return (self.frm_num << 4) | (int(self.re_tx) << 3) | self.ack_num

    def body(self) -> bytes:
        return bytes((self.control,)) + randomize(self.payload)


@dataclass(frozen=True, slots=True)
class AckFrame:
    """Acknowledges every DATA frame before ``ack_num``."""

    ack_num: int
    not_ready: bool = False

    def __post_init__(self) -> None:
        _check_seq("ack_num", self.ack_num)

    def body(self) -> bytes:
        return bytes((CONTROL_ACK | (int(self.not_ready) << 3) | self.ack_num,))


@dataclass(frozen=True, slots=True)
class NakFrame:
    """Rejects a DATA frame: the sender should retransmit from ``ack_num``."""

    ack_num: int
    not_ready: bool = False

    def __post_init__(self) -> None:
        _check_seq("ack_num", self.ack_num)

    def body(self) -> bytes:
        return bytes((CONTROL_NAK | (int(self.not_ready) << 3) | self.ack_num,))


@dataclass(frozen=True, slots=True)
class RstFrame:
    """Host -> NCP: reset the NCP (both sides restart numbering at 0)."""

    def body(self) -> bytes:
        return bytes((CONTROL_RST,))


@dataclass(frozen=True, slots=True)
class RstAckFrame:
    """NCP -> host: the NCP has (re)started, and why."""

    reset_code: int = ResetCode.SOFTWARE
    version: int = ASH_VERSION

    def __post_init__(self) -> None:
        for name in ("reset_code", "version"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise AshControlError(f"RSTACK {name} must be one byte, got {value!r}")

    def body(self) -> bytes:
        return bytes((CONTROL_RSTACK, self.version, self.reset_code))


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """NCP -> host: the NCP entered the FAILED state, with the error code."""

    code: int
    version: int = ASH_VERSION

    def __post_init__(self) -> None:
        for name in ("code", "version"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise AshControlError(f"ERROR {name} must be one byte, got {value!r}")

    def body(self) -> bytes:
        return bytes((CONTROL_ERROR, self.version, self.code))


AshFrame = DataFrame | AckFrame | NakFrame | RstFrame | RstAckFrame | ErrorFrame


def encode(frame: AshFrame) -> bytes:
    """The bytes to write to the UART: stuffed body + CRC, then the flag byte."""
    body = frame.body()
    return stuff(body + crc16(body).to_bytes(2, "big")) + bytes((Reserved.FLAG,))


def decode(raw: bytes) -> AshFrame:
    """Parse one unstuffed frame (control + data + CRC, without the flag)."""
    if len(raw) < 3:
        raise AshFramingError(f"frame of {len(raw)} bytes is shorter than control + CRC (3)")
    body, crc = raw[:-2], int.from_bytes(raw[-2:], "big")
    expected = crc16(body)
    if crc != expected:
        raise AshCrcError(
            f"CRC mismatch in frame with control 0x{body[0]:02X}: "
            f"received 0x{crc:04X}, computed 0x{expected:04X}"
        )
    control, data = body[0], body[1:]
    if control & DATA_MASK == 0:
        if not data:
            raise AshFramingError(f"DATA frame (control 0x{control:02X}) has no data field")
        if len(data) > MAX_DATA_LEN:
            raise AshFramingError(f"DATA field of {len(data)} bytes exceeds {MAX_DATA_LEN}")
        return DataFrame(
            frm_num=(control >> 4) & 0x07,
            ack_num=control & 0x07,
            re_tx=bool(control & 0x08),
            payload=randomize(data),
        )
    kind = control & ACK_NAK_MASK
    if kind in (CONTROL_ACK, CONTROL_NAK):
        if data:
            name = "ACK" if kind == CONTROL_ACK else "NAK"
            raise AshFramingError(f"{name} frame carries {len(data)} unexpected data bytes")
        cls = AckFrame if kind == CONTROL_ACK else NakFrame
        return cls(ack_num=control & 0x07, not_ready=bool(control & 0x08))
    if control == CONTROL_RST:
        if data:
            raise AshFramingError(f"RST frame carries {len(data)} unexpected data bytes")
        return RstFrame()
    if control in (CONTROL_RSTACK, CONTROL_ERROR):
        name = "RSTACK" if control == CONTROL_RSTACK else "ERROR"
        if len(data) != 2:
            raise AshFramingError(f"{name} frame needs 2 data bytes, got {len(data)}")
        if data[0] != ASH_VERSION:
            raise AshControlError(
                f"{name} frame has ASH version 0x{data[0]:02X}, expected 0x{ASH_VERSION:02X}"
            )
        if control == CONTROL_RSTACK:
            return RstAckFrame(reset_code=data[1], version=data[0])
        return ErrorFrame(code=data[1], version=data[0])
    raise AshControlError(f"control byte 0x{control:02X} is no ASH frame type")


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------


class AshDecoder:
    """Split a byte stream into frames (or the error each bad frame raised).

    Feed whatever the UART delivers; :meth:`feed` yields one item per flag
    byte: an :data:`AshFrame` or the :class:`AshError` that frame failed with,
    so the caller can NAK a corrupted DATA frame without losing the stream.
    Cancel and substitute bytes and XON/XOFF are handled as UG101 says.
    """

    def __init__(self, max_buffer: int = 4 * MAX_DATA_LEN) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self._max_buffer = max_buffer
        self.overflows = 0  # frames dropped because no flag arrived in time

    def feed(self, data: bytes) -> Iterator[AshFrame | AshError]:
        for b in data:
            if b == Reserved.FLAG:
                if self._discarding:
                    self._discarding = False
                    self._buffer.clear()
                    continue
                if self._buffer:
                    raw = bytes(self._buffer)
                    self._buffer.clear()
                    try:
                        yield decode(unstuff(raw))
                    except AshError as exc:
                        exc.data_frame = is_data_control(raw)
                        yield exc
            elif b == Reserved.CANCEL:
                self._buffer.clear()
                self._discarding = False
            elif b == Reserved.SUBSTITUTE:
                self._buffer.clear()
                self._discarding = True
            elif b in (Reserved.XON, Reserved.XOFF):
                continue  # flow control is not modelled
            elif not self._discarding:
                if len(self._buffer) >= self._max_buffer:
                    self._buffer.clear()
                    self._discarding = True
                    self.overflows += 1
                else:
                    self._buffer.append(b)


def is_data_control(raw: bytes) -> bool:
    """Whether a (stuffed or unstuffed) frame claims to be DATA: the frame to NAK if bad."""
    if not raw:
        return False
    control = raw[0]
    if control == Reserved.ESCAPE and len(raw) > 1:
        control = raw[1] ^ ESCAPE_XOR
    return control & DATA_MASK == 0


__all__ = [
    "ASH_VERSION",
    "MAX_DATA_LEN",
    "RANDOM_SEQUENCE",
    "RESERVED_BYTES",
    "RESET_CANCEL_COUNT",
    "SEQ_MODULUS",
    "AckFrame",
    "AshControlError",
    "AshCrcError",
    "AshDecoder",
    "AshError",
    "AshFrame",
    "AshFramingError",
    "DataFrame",
    "ErrorFrame",
    "NakFrame",
    "Reserved",
    "ResetCode",
    "RstAckFrame",
    "RstFrame",
    "crc16",
    "decode",
    "encode",
    "is_data_control",
    "next_seq",
    "randomize",
    "stuff",
    "unstuff",
]
