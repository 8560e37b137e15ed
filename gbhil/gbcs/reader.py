"""Bounds-checked cursor over bytes and the GBCS/BER length form.

Every decoder in gbhil.gbcs reads through :class:`Reader` so that truncated or
garbled input always surfaces as :class:`GbcsDecodeError` with the field name
and the absolute byte offset, never as an IndexError or struct.error.
"""

from __future__ import annotations

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError


class Reader:
    """Cursor over ``buf[pos:end]``; ``base`` is the absolute offset of ``buf[0]``."""

    __slots__ = ("base", "buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None, base: int = 0) -> None:
        self.buf = bytes(buf)
        self.pos = pos
        self.end = len(self.buf) if end is None else end
        self.base = base

    @property
    def offset(self) -> int:
        """Absolute offset of the next unread byte."""
        return self.base + self.pos

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def at_end(self) -> bool:
        return self.pos >= self.end

    def error(self, field: str, reason: str, offset: int | None = None) -> GbcsDecodeError:
        return GbcsDecodeError(field, self.offset if offset is None else offset, reason)

    def _need(self, n: int, field: str) -> None:
        if self.pos + n > self.end:
            raise GbcsDecodeError(
                field, self.offset, f"needs {n} byte(s), only {self.end - self.pos} left"
            )

    def u8(self, field: str) -> int:
        if self.pos >= self.end:
            raise GbcsDecodeError(field, self.offset, "needs 1 byte(s), only 0 left")
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def peek(self, field: str) -> int:
        if self.pos >= self.end:
            raise GbcsDecodeError(field, self.offset, "needs 1 byte(s), only 0 left")
        return self.buf[self.pos]

    def uint(self, n: int, field: str, byteorder: str = "big") -> int:
        self._need(n, field)
        v = int.from_bytes(self.buf[self.pos : self.pos + n], byteorder)  # type: ignore[arg-type]
        self.pos += n
        return v

    def u16(self, field: str) -> int:
        return self.uint(2, field)

    def u32(self, field: str) -> int:
        return self.uint(4, field)

    def u64(self, field: str) -> int:
        return self.uint(8, field)

    def take(self, n: int, field: str) -> bytes:
        if n < 0:
            raise GbcsDecodeError(field, self.offset, f"negative length {n}")
        self._need(n, field)
        v = self.buf[self.pos : self.pos + n]
        self.pos += n
        return v

    def rest(self) -> bytes:
        v = self.buf[self.pos : self.end]
        self.pos = self.end
        return v

    def expect(self, value: int, field: str) -> None:
        at = self.offset
        got = self.u8(field)
        if got != value:
            raise GbcsDecodeError(field, at, f"expected 0x{value:02X}, found 0x{got:02X}")

    def length(self, field: str) -> int:
        """Read a minimal BER-style length (``0x00-0x7F``, ``0x81``, ``0x82``, ``0x83`` forms).

        Non-minimal forms are refused: GBCS never sends them, and accepting them
        would let two byte strings decode to the same message (the MAC and the
        signature are computed over the canonical encoding).
        """
        at = self.offset
        first = self.u8(field)
        if first < 0x80:
            return first
        n = first & 0x7F
        if n == 0 or n > 3:
            raise GbcsDecodeError(field, at, f"unsupported length form 0x{first:02X}")
        value = self.uint(n, field)
        if value < 0x80 or value < 1 << (8 * (n - 1)):
            raise GbcsDecodeError(field, at, f"non-minimal length encoding of {value}")
        return value

    def sub(self, n: int, field: str) -> Reader:
        """A reader bounded to the next ``n`` bytes; this reader skips past them."""
        self._need(n, field)
        r = Reader.__new__(Reader)
        r.buf = self.buf
        r.pos = self.pos
        r.end = self.pos + n
        r.base = self.base
        self.pos += n
        return r

    def expect_end(self, field: str) -> None:
        if self.pos != self.end:
            raise GbcsDecodeError(
                field, self.offset, f"{self.end - self.pos} unexpected trailing byte(s)"
            )


def encode_length(n: int, field: str = "length") -> bytes:
    """Minimal BER-style length, the form every RTDS message uses."""
    if n < 0:
        raise GbcsEncodeError(field, f"negative length {n}")
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return b"\x82" + n.to_bytes(2, "big")
    if n < 0x1000000:
        return b"\x83" + n.to_bytes(3, "big")
    raise GbcsEncodeError(field, f"length {n} too large")
