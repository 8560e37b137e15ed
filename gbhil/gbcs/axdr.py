"""A-XDR ``Data`` values of DLMS COSEM (gbcs-facts 3.1.3, 3.1.4): typed decode and encode.

Every value decodes to a small frozen dataclass and encodes back to the very
same bytes.  To make that hold for *every* accepted input (not only for RTDS),
the decoder rejects the two things A-XDR could spell in more than one way and
that no RTDS message uses: non-minimal length forms, and zero-size element
types in a compact array.  A non-canonical boolean octet (0x01..0xFE) is
accepted and kept in :attr:`Boolean.octet`, because real devices send 0x01.

The decoder works on the reader's buffer with plain integer positions (no
per-byte objects); nesting is capped at :data:`MAX_DEPTH`, so malformed input
surfaces only as :class:`GbcsDecodeError`, never as RecursionError.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.reader import Reader, encode_length

#: Deepest nesting of arrays/structures (and compact-array type descriptions) accepted.
MAX_DEPTH = 32

# --- A-XDR Data tags (DLMS Green Book "Data" CHOICE; gbcs-facts 3.1.3) -------------------
TAG_NULL = 0x00
TAG_ARRAY = 0x01
TAG_STRUCTURE = 0x02
TAG_BOOLEAN = 0x03
TAG_BIT_STRING = 0x04
TAG_INT32 = 0x05
TAG_UINT32 = 0x06
TAG_OCTET_STRING = 0x09
TAG_VISIBLE_STRING = 0x0A
TAG_UTF8_STRING = 0x0C
TAG_BCD = 0x0D
TAG_INT8 = 0x0F
TAG_INT16 = 0x10
TAG_UINT8 = 0x11
TAG_UINT16 = 0x12
TAG_COMPACT_ARRAY = 0x13
TAG_INT64 = 0x14
TAG_UINT64 = 0x15
TAG_ENUM = 0x16
TAG_FLOAT32 = 0x17
TAG_FLOAT64 = 0x18
TAG_DATE_TIME = 0x19
TAG_DATE = 0x1A
TAG_TIME = 0x1B
TAG_DONT_CARE = 0xFF

#: Tag -> the name used in JSON output and error messages (Green Book names, shortened).
TAG_NAMES: dict[int, str] = {
    TAG_NULL: "null-data",
    TAG_ARRAY: "array",
    TAG_STRUCTURE: "structure",
    TAG_BOOLEAN: "boolean",
    TAG_BIT_STRING: "bit-string",
    TAG_INT32: "int32",
    TAG_UINT32: "uint32",
    TAG_OCTET_STRING: "octet-string",
    TAG_VISIBLE_STRING: "visible-string",
    TAG_UTF8_STRING: "utf8-string",
    TAG_BCD: "bcd",
    TAG_INT8: "int8",
    TAG_INT16: "int16",
    TAG_UINT8: "uint8",
    TAG_UINT16: "uint16",
    TAG_COMPACT_ARRAY: "compact-array",
    TAG_INT64: "int64",
    TAG_UINT64: "uint64",
    TAG_ENUM: "enum",
    TAG_FLOAT32: "float32",
    TAG_FLOAT64: "float64",
    TAG_DATE_TIME: "date-time",
    TAG_DATE: "date",
    TAG_TIME: "time",
    TAG_DONT_CARE: "dont-care",
}

#: Octets of the 12-byte DLMS date-time, 5-byte date and 4-byte time.
DATE_TIME_LEN = 12
DATE_LEN = 5
TIME_LEN = 4

# --- DLMS date-time (gbcs-facts 3.1.4) ---------------------------------------------------
#: "Not specified" markers of the date-time fields.
YEAR_NOT_SPECIFIED = 0xFFFF
FIELD_NOT_SPECIFIED = 0xFF
DEVIATION_NOT_SPECIFIED = -0x8000
CLOCK_STATUS_NOT_SPECIFIED = 0xFF
#: Month/day special values (DST end/begin month, second-last/last day of month).
_MONTH_SPECIAL = (0xFD, 0xFE, 0xFF)
_DAY_SPECIAL = (0xFD, 0xFE, 0xFF)
#: Allowed |deviation| in minutes (Blue Book: -720..+720).
_MAX_DEVIATION = 720


@dataclass(frozen=True, slots=True)
class DlmsDateTime:
    """The 12-byte DLMS date-time; every field keeps its raw value, 0xFF(FF) = not specified.

    ``deviation`` is signed minutes, ``DEVIATION_NOT_SPECIFIED`` (-0x8000) when
    absent.  Raw values are kept (not a ``datetime``) so that wildcards such as
    the future-dated "now"/"never" patterns survive a round trip.
    """

    year: int = YEAR_NOT_SPECIFIED
    month: int = FIELD_NOT_SPECIFIED
    day: int = FIELD_NOT_SPECIFIED
    day_of_week: int = FIELD_NOT_SPECIFIED
    hour: int = FIELD_NOT_SPECIFIED
    minute: int = FIELD_NOT_SPECIFIED
    second: int = FIELD_NOT_SPECIFIED
    hundredths: int = FIELD_NOT_SPECIFIED
    deviation: int = DEVIATION_NOT_SPECIFIED
    clock_status: int = CLOCK_STATUS_NOT_SPECIFIED

    def is_now(self) -> bool:
        """Future-dated activation "now": 00 x 9 || 80 00 FF."""
        return self == DATE_TIME_NOW

    def is_never(self) -> bool:
        """Future-dated activation "never": FF x 9 || 80 00 FF."""
        return self == DATE_TIME_NEVER

    def text(self) -> str:
        """ISO-8601-like text; '*' marks unspecified fields, "now"/"never" the GBCS patterns."""
        if self.is_now():
            return "now"
        if self.is_never():
            return "never"

        def f(v: int, width: int, unspecified: int) -> str:
            return "*" * width if v == unspecified else f"{v:0{width}d}"

        s = (
            f"{f(self.year, 4, YEAR_NOT_SPECIFIED)}-{f(self.month, 2, 0xFF)}-"
            f"{f(self.day, 2, 0xFF)}T{f(self.hour, 2, 0xFF)}:{f(self.minute, 2, 0xFF)}:"
            f"{f(self.second, 2, 0xFF)}"
        )
        if self.hundredths != FIELD_NOT_SPECIFIED:
            s += f".{self.hundredths:02d}"
        if self.deviation == 0:
            s += "Z"
        elif self.deviation != DEVIATION_NOT_SPECIFIED:
            s += f" (deviation {self.deviation:+d} min)"
        return s


#: GBCS future-dated activation patterns [S:TS, gbcs-facts 3.1.4].
DATE_TIME_NOW = DlmsDateTime(0, 0, 0, 0, 0, 0, 0, 0, DEVIATION_NOT_SPECIFIED, 0xFF)
DATE_TIME_NEVER = DlmsDateTime()

_DT = struct.Struct(">HBBBBBBBhB")


def decode_datetime(b: bytes, base: int = 0) -> DlmsDateTime:
    """Split 12 bytes into a :class:`DlmsDateTime` (no range checks: raw values round-trip)."""
    if len(b) != DATE_TIME_LEN:
        raise GbcsDecodeError("date-time", base, f"needs {DATE_TIME_LEN} bytes, got {len(b)}")
    return DlmsDateTime(*_DT.unpack(b))


def encode_datetime(dt: DlmsDateTime) -> bytes:
    """The 12 wire bytes of ``dt``; field ranges are checked."""
    try:
        return _DT.pack(
            dt.year,
            dt.month,
            dt.day,
            dt.day_of_week,
            dt.hour,
            dt.minute,
            dt.second,
            dt.hundredths,
            dt.deviation,
            dt.clock_status,
        )
    except (struct.error, TypeError) as e:
        raise GbcsEncodeError("date-time", f"field out of range in {dt!r}: {e}") from None


def looks_like_datetime(b: bytes) -> bool:
    """True when 12 bytes are a plausible DLMS date-time (used only for display)."""
    if len(b) != DATE_TIME_LEN:
        return False
    _, mon, day, dow, hh, mm, ss, hs, dev, _ = _DT.unpack(b)
    if b[:9] == b"\x00" * 9:  # the "now" pattern
        return True
    return (
        (1 <= mon <= 12 or mon in _MONTH_SPECIAL)
        and (1 <= day <= 31 or day in _DAY_SPECIAL)
        and (1 <= dow <= 7 or dow == 0xFF)
        and (hh <= 23 or hh == 0xFF)
        and (mm <= 59 or mm == 0xFF)
        and (ss <= 59 or ss == 0xFF)
        and (hs <= 99 or hs == 0xFF)
        and (-_MAX_DEVIATION <= dev <= _MAX_DEVIATION or dev == DEVIATION_NOT_SPECIFIED)
    )


# --- Data value classes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NullData:
    """null-data (0x00): the placeholder for gets and empty results."""

    tag: ClassVar[int] = TAG_NULL


@dataclass(frozen=True, slots=True)
class DontCare:
    """dont-care (0xFF): no content; only meaningful in selective-access filters."""

    tag: ClassVar[int] = TAG_DONT_CARE


@dataclass(frozen=True, slots=True)
class Array:
    """array (0x01): count + items (items should share one type; not enforced)."""

    items: tuple[Data, ...]
    tag: ClassVar[int] = TAG_ARRAY


@dataclass(frozen=True, slots=True)
class Structure:
    """structure (0x02): count + heterogeneous items."""

    items: tuple[Data, ...]
    tag: ClassVar[int] = TAG_STRUCTURE


@dataclass(frozen=True, slots=True)
class Boolean:
    """boolean (0x03). ``octet`` keeps a non-canonical true octet (0x01..0xFE); None = 00/FF."""

    value: bool
    octet: int | None = None
    tag: ClassVar[int] = TAG_BOOLEAN


@dataclass(frozen=True, slots=True)
class BitString:
    """bit-string (0x04): ``bits`` significant bits, MSB first, in ceil(bits/8) bytes.

    The unused trailing bits of the last byte are kept as received.
    """

    bits: int
    data: bytes
    tag: ClassVar[int] = TAG_BIT_STRING

    def text(self) -> str:
        """The bits as a '0'/'1' string, MSB first."""
        if not self.data:
            return ""
        return format(int.from_bytes(self.data, "big"), f"0{len(self.data) * 8}b")[: self.bits]


@dataclass(frozen=True, slots=True)
class _String:
    """Length-prefixed octets; subclasses set the tag."""

    value: bytes
    tag: ClassVar[int]


@dataclass(frozen=True, slots=True)
class OctetString(_String):
    """octet-string (0x09): IDs, timestamps, OBIS codes and encrypted blocks in GBCS."""

    tag: ClassVar[int] = TAG_OCTET_STRING


@dataclass(frozen=True, slots=True)
class VisibleString(_String):
    """visible-string (0x0A): kept as bytes so any octet round-trips; :meth:`text` for display."""

    tag: ClassVar[int] = TAG_VISIBLE_STRING

    def text(self) -> str:
        return self.value.decode("latin-1")


@dataclass(frozen=True, slots=True)
class Utf8String(_String):
    """utf8-string (0x0C): kept as bytes so invalid UTF-8 still round-trips."""

    tag: ClassVar[int] = TAG_UTF8_STRING

    def text(self) -> str:
        return self.value.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class _Integer:
    """Fixed-size big-endian integer; subclasses set tag, size and signedness."""

    value: int
    size: ClassVar[int] = 1
    signed: ClassVar[bool] = False
    tag: ClassVar[int]


@dataclass(frozen=True, slots=True)
class Int8(_Integer):
    """integer (0x0F)."""

    tag: ClassVar[int] = TAG_INT8
    signed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Int16(_Integer):
    """long (0x10)."""

    tag: ClassVar[int] = TAG_INT16
    size: ClassVar[int] = 2
    signed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Int32(_Integer):
    """double-long (0x05)."""

    tag: ClassVar[int] = TAG_INT32
    size: ClassVar[int] = 4
    signed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Int64(_Integer):
    """long64 (0x14)."""

    tag: ClassVar[int] = TAG_INT64
    size: ClassVar[int] = 8
    signed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class Uint8(_Integer):
    """unsigned (0x11)."""

    tag: ClassVar[int] = TAG_UINT8


@dataclass(frozen=True, slots=True)
class Uint16(_Integer):
    """long-unsigned (0x12)."""

    tag: ClassVar[int] = TAG_UINT16
    size: ClassVar[int] = 2


@dataclass(frozen=True, slots=True)
class Uint32(_Integer):
    """double-long-unsigned (0x06)."""

    tag: ClassVar[int] = TAG_UINT32
    size: ClassVar[int] = 4


@dataclass(frozen=True, slots=True)
class Uint64(_Integer):
    """long64-unsigned (0x15)."""

    tag: ClassVar[int] = TAG_UINT64
    size: ClassVar[int] = 8


@dataclass(frozen=True, slots=True)
class Enum(_Integer):
    """enum (0x16): one unsigned octet whose meaning the COSEM attribute defines."""

    tag: ClassVar[int] = TAG_ENUM


@dataclass(frozen=True, slots=True)
class Bcd(_Integer):
    """bcd (0x0D): one octet, kept as a signed 8-bit value like the Green Book's Integer8."""

    tag: ClassVar[int] = TAG_BCD
    signed: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class _Fixed:
    """A fixed number of raw octets; subclasses set tag and size."""

    raw: bytes
    size: ClassVar[int]
    tag: ClassVar[int]


@dataclass(frozen=True, slots=True)
class Float32(_Fixed):
    """float32 (0x17): the 4 raw IEEE-754 bytes, so NaN payloads round-trip."""

    tag: ClassVar[int] = TAG_FLOAT32
    size: ClassVar[int] = 4

    @property
    def value(self) -> float:
        return float(struct.unpack(">f", self.raw)[0])

    @classmethod
    def of(cls, value: float) -> Float32:
        return cls(struct.pack(">f", value))


@dataclass(frozen=True, slots=True)
class Float64(_Fixed):
    """float64 (0x18): the 8 raw IEEE-754 bytes."""

    tag: ClassVar[int] = TAG_FLOAT64
    size: ClassVar[int] = 8

    @property
    def value(self) -> float:
        return float(struct.unpack(">d", self.raw)[0])

    @classmethod
    def of(cls, value: float) -> Float64:
        return cls(struct.pack(">d", value))


@dataclass(frozen=True, slots=True)
class DateValue(_Fixed):
    """date (0x1A): 5 raw bytes year(2) month day day-of-week."""

    tag: ClassVar[int] = TAG_DATE
    size: ClassVar[int] = DATE_LEN


@dataclass(frozen=True, slots=True)
class TimeValue(_Fixed):
    """time (0x1B): 4 raw bytes hour minute second hundredths."""

    tag: ClassVar[int] = TAG_TIME
    size: ClassVar[int] = TIME_LEN


@dataclass(frozen=True, slots=True)
class DateTimeValue:
    """date-time (0x19): the typed form; GBCS itself mostly sends octet-string(12)."""

    value: DlmsDateTime
    tag: ClassVar[int] = TAG_DATE_TIME


@dataclass(frozen=True, slots=True)
class TypeDesc:
    """Compact-array type description.

    ``tag`` is a Data tag.  For an array, ``count`` is the number of elements and
    ``members`` holds the one element type; for a structure ``members`` are the
    member types; simple types have neither.
    """

    tag: int
    count: int = 0
    members: tuple[TypeDesc, ...] = ()


@dataclass(frozen=True, slots=True)
class CompactArray:
    """compact-array (0x13): one type description, then tag-less item contents.

    ``items`` are decoded against ``element`` (e.g. ``Structure((Uint32(..), Uint32(..)))``);
    the encoder checks that each item matches the description.
    """

    element: TypeDesc
    items: tuple[Data, ...]
    tag: ClassVar[int] = TAG_COMPACT_ARRAY


Data: TypeAlias = (
    NullData
    | Array
    | Structure
    | Boolean
    | BitString
    | Int32
    | Uint32
    | OctetString
    | VisibleString
    | Utf8String
    | Bcd
    | Int8
    | Int16
    | Uint8
    | Uint16
    | CompactArray
    | Int64
    | Uint64
    | Enum
    | Float32
    | Float64
    | DateTimeValue
    | DateValue
    | TimeValue
    | DontCare
)


#: Shared instances of the content-less values (they are immutable).
NULL = NullData()
DONT_CARE = DontCare()

_INTEGER_TYPES: tuple[type[_Integer], ...] = (
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Enum,
    Bcd,
)
_FIXED_TYPES: tuple[type[_Fixed], ...] = (Float32, Float64, DateValue, TimeValue)
_STRING_TYPES: tuple[type[_String], ...] = (OctetString, VisibleString, Utf8String)
#: Every concrete Data class (the encoder refuses anything else, including the bases).
DATA_TYPES: frozenset[type] = frozenset(
    (
        NullData,
        Array,
        Structure,
        Boolean,
        BitString,
        CompactArray,
        DateTimeValue,
        DontCare,
        *_INTEGER_TYPES,
        *_FIXED_TYPES,
        *_STRING_TYPES,
    )
)

# --- decoding ----------------------------------------------------------------------------

#: A per-tag decoder: (buf, pos after the tag, end, base, depth) -> (value, next pos).
_Decoder: TypeAlias = Callable[[bytes, int, int, int, int], tuple[Data, int]]


def _short(base: int, pos: int, end: int, n: int, field: str) -> GbcsDecodeError:
    return GbcsDecodeError(field, base + pos, f"needs {n} byte(s), only {max(end - pos, 0)} left")


def _length(buf: bytes, pos: int, end: int, base: int, field: str) -> tuple[int, int]:
    """BER-style length at ``pos`` -> (value, next pos); only the minimal form is accepted."""
    if pos >= end:
        raise _short(base, pos, end, 1, field)
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 3:
        raise GbcsDecodeError(field, base + pos, f"unsupported length form 0x{first:02X}")
    nxt = pos + 1 + n
    if nxt > end:
        raise _short(base, pos + 1, end, n, field)
    v = int.from_bytes(buf[pos + 1 : nxt], "big")
    if v < 0x80 or v < 1 << (8 * (n - 1)):
        raise GbcsDecodeError(
            field, base + pos, f"non-minimal length form {buf[pos:nxt].hex().upper()}"
        )
    return v, nxt


def read_length(r: Reader, field: str) -> int:
    """Minimal-form BER length through a :class:`Reader` (shared with the APDU layer)."""
    v, r.pos = _length(r.buf, r.pos, r.end, r.base, field)
    return v


def _unknown_tag(tag: int, offset: int) -> GbcsDecodeError:
    return GbcsDecodeError("data tag", offset, f"unknown A-XDR Data tag 0x{tag:02X}")


def _integer_decoder(cls: type[_Integer]) -> _Decoder:
    size, signed, name = cls.size, cls.signed, TAG_NAMES[cls.tag]

    def dec(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
        nxt = pos + size
        if nxt > end:
            raise _short(base, pos, end, size, name)
        return cls(int.from_bytes(buf[pos:nxt], "big", signed=signed)), nxt

    return dec


def _fixed_decoder(cls: type[_Fixed]) -> _Decoder:
    size, name = cls.size, TAG_NAMES[cls.tag]

    def dec(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
        nxt = pos + size
        if nxt > end:
            raise _short(base, pos, end, size, name)
        return cls(buf[pos:nxt]), nxt

    return dec


def _string_decoder(cls: type[_String]) -> _Decoder:
    name = TAG_NAMES[cls.tag]
    field = name + " length"

    def dec(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
        n, pos = _length(buf, pos, end, base, field)
        nxt = pos + n
        if nxt > end:
            raise _short(base, pos, end, n, name)
        return cls(buf[pos:nxt]), nxt

    return dec


def _dec_items(
    buf: bytes, pos: int, end: int, base: int, depth: int, name: str
) -> tuple[tuple[Data, ...], int]:
    if depth >= MAX_DEPTH:
        raise GbcsDecodeError(name, base + pos - 1, f"nesting deeper than {MAX_DEPTH}")
    at = pos
    n, pos = _length(buf, pos, end, base, name + " count")
    if n > end - pos:  # every item takes at least its tag byte
        raise GbcsDecodeError(
            name + " count", base + at, f"{n} items cannot fit in {end - pos} byte(s)"
        )
    items: list[Data] = []
    append = items.append
    decoders = _DECODERS
    depth += 1
    for _ in range(n):
        if pos >= end:
            raise _short(base, pos, end, 1, "data tag")
        tag = buf[pos]
        # Fast path for the commonest value in GBCS (octet-string, short form length).
        if tag == TAG_OCTET_STRING and pos + 1 < end and buf[pos + 1] < 0x80:
            start = pos + 2
            pos = start + buf[pos + 1]
            if pos > end:
                raise _short(base, start, end, pos - start, "octet-string")
            append(OctetString(buf[start:pos]))
            continue
        dec = decoders.get(tag)
        if dec is None:
            raise _unknown_tag(tag, base + pos)
        item, pos = dec(buf, pos + 1, end, base, depth)
        append(item)
    return tuple(items), pos


def _dec_array(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    items, pos = _dec_items(buf, pos, end, base, depth, "array")
    return Array(items), pos


def _dec_structure(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    items, pos = _dec_items(buf, pos, end, base, depth, "structure")
    return Structure(items), pos


def _dec_null(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    return NULL, pos


def _dec_dont_care(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    return DONT_CARE, pos


_TRUE = Boolean(True)
_FALSE = Boolean(False)


def _dec_boolean(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    if pos >= end:
        raise _short(base, pos, end, 1, "boolean")
    v = buf[pos]
    if v == 0xFF:
        return _TRUE, pos + 1
    if v == 0:
        return _FALSE, pos + 1
    return Boolean(True, v), pos + 1


def _dec_bit_string(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    bits, pos = _length(buf, pos, end, base, "bit-string length")
    n = (bits + 7) >> 3
    nxt = pos + n
    if nxt > end:
        raise _short(base, pos, end, n, "bit-string")
    return BitString(bits, buf[pos:nxt]), nxt


def _dec_date_time(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    nxt = pos + DATE_TIME_LEN
    if nxt > end:
        raise _short(base, pos, end, DATE_TIME_LEN, "date-time")
    return DateTimeValue(DlmsDateTime(*_DT.unpack_from(buf, pos))), nxt


def _dec_type_desc(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[TypeDesc, int]:
    if depth >= MAX_DEPTH:
        raise GbcsDecodeError("type-description", base + pos, f"nesting deeper than {MAX_DEPTH}")
    if pos >= end:
        raise _short(base, pos, end, 1, "type-description tag")
    tag = buf[pos]
    pos += 1
    if tag == TAG_ARRAY:
        if pos + 2 > end:
            raise _short(base, pos, end, 2, "type-description array count")
        count = int.from_bytes(buf[pos : pos + 2], "big")
        elem, pos = _dec_type_desc(buf, pos + 2, end, base, depth + 1)
        return TypeDesc(tag, count, (elem,)), pos
    if tag == TAG_STRUCTURE:
        at = pos
        n, pos = _length(buf, pos, end, base, "type-description structure count")
        if n > end - pos:
            raise GbcsDecodeError(
                "type-description structure count", base + at, f"{n} members cannot fit"
            )
        members: list[TypeDesc] = []
        for _ in range(n):
            m, pos = _dec_type_desc(buf, pos, end, base, depth + 1)
            members.append(m)
        return TypeDesc(tag, 0, tuple(members)), pos
    if tag == TAG_COMPACT_ARRAY or tag not in _DECODERS:
        raise GbcsDecodeError(
            "type-description tag", base + pos - 1, f"tag 0x{tag:02X} not allowed here"
        )
    return TypeDesc(tag), pos


def _dec_typed(
    buf: bytes, pos: int, end: int, base: int, desc: TypeDesc, depth: int
) -> tuple[Data, int]:
    """One tag-less compact-array element described by ``desc``."""
    if depth >= MAX_DEPTH:
        raise GbcsDecodeError("compact-array", base + pos, f"nesting deeper than {MAX_DEPTH}")
    if desc.tag == TAG_ARRAY or desc.tag == TAG_STRUCTURE:
        members = desc.members * desc.count if desc.tag == TAG_ARRAY else desc.members
        items: list[Data] = []
        for m in members:
            item, pos = _dec_typed(buf, pos, end, base, m, depth + 1)
            items.append(item)
        return (Array if desc.tag == TAG_ARRAY else Structure)(tuple(items)), pos
    return _DECODERS[desc.tag](buf, pos, end, base, depth)


def _dec_compact_array(buf: bytes, pos: int, end: int, base: int, depth: int) -> tuple[Data, int]:
    desc, pos = _dec_type_desc(buf, pos, end, base, depth + 1)
    n, pos = _length(buf, pos, end, base, "compact-array contents length")
    cend = pos + n
    if cend > end:
        raise _short(base, pos, end, n, "compact-array contents")
    items: list[Data] = []
    while pos < cend:
        item, nxt = _dec_typed(buf, pos, cend, base, desc, depth + 1)
        if nxt == pos:
            raise GbcsDecodeError("compact-array", base + pos, "element type has zero size")
        items.append(item)
        pos = nxt
    return CompactArray(desc, tuple(items)), cend


_DECODERS: dict[int, _Decoder] = {
    TAG_NULL: _dec_null,
    TAG_ARRAY: _dec_array,
    TAG_STRUCTURE: _dec_structure,
    TAG_BOOLEAN: _dec_boolean,
    TAG_BIT_STRING: _dec_bit_string,
    TAG_COMPACT_ARRAY: _dec_compact_array,
    TAG_DATE_TIME: _dec_date_time,
    TAG_DONT_CARE: _dec_dont_care,
    **{c.tag: _integer_decoder(c) for c in _INTEGER_TYPES},
    **{c.tag: _fixed_decoder(c) for c in _FIXED_TYPES},
    **{c.tag: _string_decoder(c) for c in _STRING_TYPES},
}


def decode_data(r: Reader) -> Data:
    """Decode one Data value at the reader's position and advance past it."""
    buf, pos, end = r.buf, r.pos, r.end
    if pos >= end:
        raise _short(r.base, pos, end, 1, "data tag")
    dec = _DECODERS.get(buf[pos])
    if dec is None:
        raise _unknown_tag(buf[pos], r.base + pos)
    d, r.pos = dec(buf, pos + 1, end, r.base, 0)
    return d


def decode_data_all(buf: bytes, base: int = 0) -> Data:
    """Decode ``buf`` as exactly one Data value (e.g. a decrypted protected block)."""
    r = Reader(buf, base=base)
    d = decode_data(r)
    r.expect_end("data")
    return d


# --- encoding ----------------------------------------------------------------------------

_TAG_BYTES: dict[int, bytes] = {t: bytes((t,)) for t in TAG_NAMES}


def _enc_integer(d: _Integer) -> bytes:
    v = d.value
    if type(v) is not int:
        raise GbcsEncodeError(TAG_NAMES[d.tag], f"value must be int, got {type(v).__name__}")
    try:
        return v.to_bytes(d.size, "big", signed=d.signed)
    except OverflowError:
        raise GbcsEncodeError(TAG_NAMES[d.tag], f"{v} does not fit in {d.size} byte(s)") from None


def _enc_bytes(v: object, field: str) -> bytes:
    if not isinstance(v, bytes | bytearray):
        raise GbcsEncodeError(field, f"value must be bytes, got {type(v).__name__}")
    return bytes(v)


def _enc_body(d: Data, out: list[bytes], depth: int) -> None:
    """Append the content of ``d`` without its tag (the compact-array element form)."""
    if isinstance(d, _String):
        v = _enc_bytes(d.value, TAG_NAMES[d.tag])
        out.append(encode_length(len(v), TAG_NAMES[d.tag]))
        out.append(v)
    elif isinstance(d, Structure | Array):
        if depth >= MAX_DEPTH:
            raise GbcsEncodeError(TAG_NAMES[d.tag], f"nesting deeper than {MAX_DEPTH}")
        out.append(encode_length(len(d.items), TAG_NAMES[d.tag]))
        for item in d.items:
            _enc(item, out, depth + 1)
    elif isinstance(d, _Integer):
        out.append(_enc_integer(d))
    elif isinstance(d, NullData | DontCare):
        pass
    elif isinstance(d, Boolean):
        if d.octet is None:
            out.append(b"\xff" if d.value else b"\x00")
        elif d.value is True and type(d.octet) is int and 0 < d.octet < 0xFF:
            out.append(bytes((d.octet,)))
        else:
            raise GbcsEncodeError("boolean", f"octet {d.octet!r} needs value True and 0x01..0xFE")
    elif isinstance(d, BitString):
        data = _enc_bytes(d.data, "bit-string")
        if type(d.bits) is not int or d.bits < 0 or len(data) != (d.bits + 7) >> 3:
            raise GbcsEncodeError(
                "bit-string", f"{d.bits!r} bits need {(d.bits + 7) >> 3} byte(s), got {len(data)}"
            )
        out.append(encode_length(d.bits, "bit-string"))
        out.append(data)
    elif isinstance(d, _Fixed):
        raw = _enc_bytes(d.raw, TAG_NAMES[d.tag])
        if len(raw) != d.size:
            raise GbcsEncodeError(TAG_NAMES[d.tag], f"needs exactly {d.size} raw bytes")
        out.append(raw)
    elif isinstance(d, DateTimeValue):
        out.append(encode_datetime(d.value))
    elif isinstance(d, CompactArray):
        if depth >= MAX_DEPTH:
            raise GbcsEncodeError("compact-array", f"nesting deeper than {MAX_DEPTH}")
        _enc_type_desc(d.element, out, depth + 1)
        body: list[bytes] = []
        for item in d.items:
            n = len(body)
            _enc_typed(item, d.element, body, depth + 1)
            if not any(body[n:]):
                raise GbcsEncodeError("compact-array", "element type has zero size")
        contents = b"".join(body)
        out.append(encode_length(len(contents), "compact-array contents"))
        out.append(contents)
    else:
        raise GbcsEncodeError("data", f"not an A-XDR Data value: {d!r}")


def _enc(d: Data, out: list[bytes], depth: int) -> None:
    if type(d) not in DATA_TYPES:
        raise GbcsEncodeError("data", f"not an A-XDR Data value: {d!r}")
    out.append(_TAG_BYTES[d.tag])
    _enc_body(d, out, depth)


def _enc_type_desc(desc: TypeDesc, out: list[bytes], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise GbcsEncodeError("type-description", f"nesting deeper than {MAX_DEPTH}")
    tag = desc.tag
    if tag == TAG_ARRAY:
        if len(desc.members) != 1 or not 0 <= desc.count <= 0xFFFF:
            raise GbcsEncodeError("type-description", "array needs one member and count 0..65535")
        out.append(bytes((tag,)) + desc.count.to_bytes(2, "big"))
        _enc_type_desc(desc.members[0], out, depth + 1)
    elif tag == TAG_STRUCTURE:
        if desc.count:
            raise GbcsEncodeError("type-description", "structure has members, not a count")
        out.append(bytes((tag,)) + encode_length(len(desc.members), "type-description"))
        for m in desc.members:
            _enc_type_desc(m, out, depth + 1)
    elif tag in _DECODERS and tag != TAG_COMPACT_ARRAY:
        if desc.count or desc.members:
            raise GbcsEncodeError("type-description", f"simple tag 0x{tag:02X} has no members")
        out.append(_TAG_BYTES[tag])
    else:
        raise GbcsEncodeError("type-description", f"tag 0x{tag:02X} not allowed")


def _enc_typed(d: Data, desc: TypeDesc, out: list[bytes], depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise GbcsEncodeError("compact-array", f"nesting deeper than {MAX_DEPTH}")
    if type(d) not in DATA_TYPES or d.tag != desc.tag:
        raise GbcsEncodeError("compact-array", f"item {d!r} does not match type 0x{desc.tag:02X}")
    if isinstance(d, Array | Structure):
        members = desc.members * desc.count if desc.tag == TAG_ARRAY else desc.members
        if len(d.items) != len(members):
            raise GbcsEncodeError(
                "compact-array", f"{TAG_NAMES[d.tag]} item needs {len(members)} element(s)"
            )
        for item, m in zip(d.items, members, strict=True):
            _enc_typed(item, m, out, depth + 1)
    else:
        _enc_body(d, out, depth)


def encode_data(d: Data) -> bytes:
    """The A-XDR bytes of ``d`` (tag included); GbcsEncodeError for unrepresentable values."""
    out: list[bytes] = []
    _enc(d, out, 0)
    return b"".join(out)


# --- display and traversal ---------------------------------------------------------------

JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


def _printable(b: bytes) -> bool:
    return len(b) > 1 and all(0x20 <= c < 0x7F for c in b)


def type_desc_to_json(desc: TypeDesc) -> JsonValue:
    """A type description as nested names, e.g. ``{"structure": ["uint32", "uint32"]}``."""
    if desc.tag == TAG_ARRAY:
        return {"array": {"count": desc.count, "of": type_desc_to_json(desc.members[0])}}
    if desc.tag == TAG_STRUCTURE:
        return {"structure": [type_desc_to_json(m) for m in desc.members]}
    return TAG_NAMES.get(desc.tag, f"0x{desc.tag:02X}")


def data_to_json(d: Data) -> JsonValue:
    """A readable JSON-able form: ``{type-name: value}``, null-data as None.

    Octet strings are hex; when they also read as a DLMS date-time or as
    printable ASCII, a ``date-time`` or ``ascii`` key is added.
    """
    if isinstance(d, OctetString):
        v = d.value
        out: dict[str, JsonValue] = {"octet-string": v.hex().upper()}
        if looks_like_datetime(v):
            out["date-time"] = decode_datetime(v).text()
        elif _printable(v):
            out["ascii"] = v.decode("ascii")
        return out
    if isinstance(d, Structure | Array):
        return {TAG_NAMES[d.tag]: [data_to_json(i) for i in d.items]}
    if isinstance(d, _Integer):
        return {TAG_NAMES[d.tag]: d.value}
    if isinstance(d, NullData):
        return None
    if isinstance(d, Boolean):
        return {"boolean": d.value}
    if isinstance(d, BitString):
        return {"bit-string": d.text()}
    if isinstance(d, VisibleString | Utf8String):
        return {TAG_NAMES[d.tag]: d.text()}
    if isinstance(d, Float32 | Float64):
        f = d.value
        return {TAG_NAMES[d.tag]: f if math.isfinite(f) else d.raw.hex().upper()}
    if isinstance(d, DateTimeValue):
        return {"date-time": d.value.text()}
    if isinstance(d, _Fixed):
        return {TAG_NAMES[d.tag]: d.raw.hex().upper()}
    if isinstance(d, CompactArray):
        return {
            "compact-array": {
                "type": type_desc_to_json(d.element),
                "items": [data_to_json(i) for i in d.items],
            }
        }
    if isinstance(d, DontCare):
        return {"dont-care": None}
    raise TypeError(f"not an A-XDR Data value: {d!r}")


def iter_data(d: Data) -> list[Data]:
    """``d`` and every value nested in it, depth-first (arrays, structures, compact arrays)."""
    out: list[Data] = []
    stack: list[Data] = [d]
    while stack:
        x = stack.pop()
        out.append(x)
        if isinstance(x, Structure | Array | CompactArray):
            stack.extend(reversed(x.items))
    return out
