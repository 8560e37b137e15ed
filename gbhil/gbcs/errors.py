"""The codec's own exceptions: every failure names the field and the byte offset."""

from __future__ import annotations


class GbcsError(ValueError):
    """Base class of every error raised by gbhil.gbcs."""


class GbcsDecodeError(GbcsError):
    """Input bytes do not form what the field requires.

    ``offset`` is absolute: counted from the first byte of the outermost
    buffer handed to the decoder, so a user can find the byte in a hex dump.
    """

    def __init__(self, field: str, offset: int, reason: str) -> None:
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__(f"{field} at byte {offset}: {reason}")


class GbcsEncodeError(GbcsError):
    """A typed value cannot be represented on the wire (out of range, too long)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class GbcsSecurityError(GbcsError):
    """A MAC, signature or decryption check failed, or a key is missing."""
