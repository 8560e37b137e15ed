"""Strict, typed DER codec for the GBCS ASN.1 payloads (gbcs-facts 3.3).

GBCS security-credential, join, firmware and GPF-log use cases carry DER
instead of DLMS or GBZ. The decoder accepts only canonical DER, so every tree
it returns re-encodes to exactly the input bytes: that lets the simulator echo,
sign and MAC payloads it has decoded without keeping the raw bytes around.

Non-canonical input (indefinite or non-minimal lengths, padded INTEGERs,
BOOLEAN other than 00/FF, non-zero BIT STRING padding, constructed strings,
malformed times and OIDs) raises :class:`GbcsDecodeError` with the field and
the absolute offset. One exception is taken from the bytes: RTDS device
responses and alerts (CS02a/b/f/g) encode SEQUENCE lengths 0x80-0xFF as
``82 00 nn`` instead of ``81 nn``; that form is accepted on SEQUENCE only and
kept in :attr:`Sequence.wide_length` so re-encoding stays byte-exact. Two DER
rules are not enforced because they need a schema: SET OF element ordering
(order is kept as received) and DEFAULT values being omitted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.reader import Reader, encode_length

# Identifier octet: class bits, constructed bit, tag number (X.690 8.1.2).
CLASS_UNIVERSAL = 0x00
CLASS_APPLICATION = 0x40
CLASS_CONTEXT = 0x80
CLASS_PRIVATE = 0xC0
CONSTRUCTED = 0x20
HIGH_TAG = 0x1F

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_UTF8_STRING = 0x0C
TAG_SEQUENCE = 0x10
TAG_SET = 0x11
TAG_PRINTABLE_STRING = 0x13
TAG_IA5_STRING = 0x16
TAG_UTC_TIME = 0x17
TAG_GENERALIZED_TIME = 0x18

#: Nesting cap: GBCS payloads with embedded X.509 certificates reach depth 9.
MAX_DEPTH = 32
#: Longest tag number / OID arc accepted (bytes of base-128), far above any real use.
MAX_BASE128_BYTES = 8
#: Largest length prefix accepted (0x84 = four length octets).
MAX_LENGTH_OCTETS = 4
#: Content sizes RTDS encodes as ``82 00 nn`` on SEQUENCE (see module docstring).
WIDE_LENGTH_MIN = 0x80
WIDE_LENGTH_MAX = 0xFF

CLASS_NAMES: dict[int, str] = {
    CLASS_UNIVERSAL: "UNIVERSAL",
    CLASS_APPLICATION: "APPLICATION",
    CLASS_CONTEXT: "CONTEXT",
    CLASS_PRIVATE: "PRIVATE",
}

_PRINTABLE = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)


# ---------------------------------------------------------------------------
# Nodes


@dataclass(slots=True)
class Asn1Node(ABC):
    """Base of every decoded DER element.

    ``offset`` is the absolute offset of the element's first identifier octet
    (``-1`` for nodes built in code); it does not take part in equality so a
    decoded tree compares equal to the same tree built by hand.
    """

    offset: int = field(default=-1, compare=False, repr=False, kw_only=True)

    #: Identifier octet (universal types); tagged nodes compute it.
    IDENT: ClassVar[int] = -1
    #: Human type name used by the generic JSON view.
    TYPE_NAME: ClassVar[str] = "?"

    @property
    def ident(self) -> int:
        """Identifier octet(s) as an int: the first octet, or a wider key for high tags."""
        return self.IDENT

    @abstractmethod
    def content(self) -> bytes:
        """DER contents octets (no identifier, no length)."""


@dataclass(slots=True)
class Boolean(Asn1Node):
    value: bool
    IDENT: ClassVar[int] = TAG_BOOLEAN
    TYPE_NAME: ClassVar[str] = "BOOLEAN"

    def content(self) -> bytes:
        return b"\xff" if self.value else b"\x00"


def _int_bytes(value: int) -> bytes:
    """Minimal two's-complement big-endian form (DER 8.3.2)."""
    n = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return value.to_bytes(n, "big", signed=True)


@dataclass(slots=True)
class Integer(Asn1Node):
    value: int
    IDENT: ClassVar[int] = TAG_INTEGER
    TYPE_NAME: ClassVar[str] = "INTEGER"

    def content(self) -> bytes:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise GbcsEncodeError("INTEGER", f"not an int: {self.value!r}")
        return _int_bytes(self.value)


@dataclass(slots=True)
class Enumerated(Asn1Node):
    value: int
    IDENT: ClassVar[int] = TAG_ENUMERATED
    TYPE_NAME: ClassVar[str] = "ENUMERATED"

    def content(self) -> bytes:
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise GbcsEncodeError("ENUMERATED", f"not an int: {self.value!r}")
        return _int_bytes(self.value)


@dataclass(slots=True)
class OctetString(Asn1Node):
    value: bytes
    IDENT: ClassVar[int] = TAG_OCTET_STRING
    TYPE_NAME: ClassVar[str] = "OCTET STRING"

    def content(self) -> bytes:
        return bytes(self.value)


@dataclass(slots=True)
class BitString(Asn1Node):
    """BIT STRING with its unused-bit count kept (GBCS keyUsage is ``03 02 07 80``)."""

    data: bytes
    unused_bits: int = 0
    IDENT: ClassVar[int] = TAG_BIT_STRING
    TYPE_NAME: ClassVar[str] = "BIT STRING"

    def content(self) -> bytes:
        u = self.unused_bits
        if not 0 <= u <= 7 or (u and not self.data):
            raise GbcsEncodeError("BIT STRING", f"invalid unused-bit count {u}")
        if u and self.data[-1] & ((1 << u) - 1):
            raise GbcsEncodeError("BIT STRING", "unused bits must be zero in DER")
        return bytes((u,)) + bytes(self.data)

    @property
    def bit_length(self) -> int:
        return len(self.data) * 8 - self.unused_bits

    def bit(self, index: int) -> bool:
        """Named-bit test, bit 0 = most significant bit of the first octet."""
        if not 0 <= index < self.bit_length:
            return False
        return bool(self.data[index >> 3] & (0x80 >> (index & 7)))

    def set_bits(self) -> list[int]:
        return [i for i in range(self.bit_length) if self.bit(i)]

    @classmethod
    def from_named_bits(cls, bits: Iterable[int]) -> BitString:
        """DER named-bit list: trailing zero bits dropped (X.690 11.2.2)."""
        bits = sorted(set(bits))
        if not bits:
            return cls(b"", 0)
        if bits[0] < 0:
            raise GbcsEncodeError("BIT STRING", f"negative bit number {bits[0]}")
        nbits = bits[-1] + 1
        data = bytearray((nbits + 7) // 8)
        for b in bits:
            data[b >> 3] |= 0x80 >> (b & 7)
        return cls(bytes(data), (8 - nbits % 8) % 8)


@dataclass(slots=True)
class Null(Asn1Node):
    IDENT: ClassVar[int] = TAG_NULL
    TYPE_NAME: ClassVar[str] = "NULL"

    def content(self) -> bytes:
        return b""


def _base128(value: int) -> bytes:
    out = bytearray((value & 0x7F,))
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.reverse()
    return bytes(out)


#: Certificates repeat the same few OIDs; valid encodings are cached both ways.
_OID_CACHE_MAX = 4096
_OID_ENCODE_CACHE: dict[str, bytes] = {}
_OID_DECODE_CACHE: dict[bytes, str] = {}


@dataclass(slots=True)
class ObjectIdentifier(Asn1Node):
    """OBJECT IDENTIFIER kept as dotted text (``"1.2.840.10045.4.3.2"``)."""

    value: str
    IDENT: ClassVar[int] = TAG_OID
    TYPE_NAME: ClassVar[str] = "OBJECT IDENTIFIER"

    def content(self) -> bytes:
        raw = _OID_ENCODE_CACHE.get(self.value)
        if raw is not None:
            return raw
        try:
            arcs = [int(a) for a in self.value.split(".")]
        except ValueError as exc:
            raise GbcsEncodeError(
                "OBJECT IDENTIFIER", f"not dotted decimal: {self.value!r}"
            ) from exc
        if (
            len(arcs) < 2
            or min(arcs) < 0
            or arcs[0] > 2
            or (arcs[0] < 2 and arcs[1] > 39)
            or any(p.strip() != p or (len(p) > 1 and p[0] == "0") for p in self.value.split("."))
        ):
            raise GbcsEncodeError("OBJECT IDENTIFIER", f"invalid arcs: {self.value!r}")
        raw = _base128(arcs[0] * 40 + arcs[1]) + b"".join(_base128(a) for a in arcs[2:])
        if len(_OID_ENCODE_CACHE) < _OID_CACHE_MAX:
            _OID_ENCODE_CACHE[self.value] = raw
        return raw


@dataclass(slots=True)
class _Text(Asn1Node):
    value: str


@dataclass(slots=True)
class Utf8String(_Text):
    IDENT: ClassVar[int] = TAG_UTF8_STRING
    TYPE_NAME: ClassVar[str] = "UTF8String"

    def content(self) -> bytes:
        try:
            return self.value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise GbcsEncodeError("UTF8String", str(exc)) from exc


@dataclass(slots=True)
class PrintableString(_Text):
    IDENT: ClassVar[int] = TAG_PRINTABLE_STRING
    TYPE_NAME: ClassVar[str] = "PrintableString"

    def content(self) -> bytes:
        raw = self.value.encode("latin-1", "replace")
        if not _PRINTABLE.issuperset(raw):
            raise GbcsEncodeError("PrintableString", f"character outside the set: {self.value!r}")
        return raw


@dataclass(slots=True)
class Ia5String(_Text):
    IDENT: ClassVar[int] = TAG_IA5_STRING
    TYPE_NAME: ClassVar[str] = "IA5String"

    def content(self) -> bytes:
        try:
            return self.value.encode("ascii")
        except UnicodeEncodeError as exc:
            raise GbcsEncodeError("IA5String", str(exc)) from exc


def _time_fields(text: str, year_digits: int) -> datetime | None:
    """Parse DER UTCTime / GeneralizedTime text; None when not canonical."""
    n = year_digits + 10
    if len(text) < n + 1 or text[-1] != "Z" or not text[:n].isdigit() or not text.isascii():
        return None
    frac = text[n:-1]
    micro = 0
    if frac:
        # DER: fractional seconds only in GeneralizedTime, '.', no trailing zero.
        if year_digits != 4 or frac[0] != "." or not frac[1:].isdigit() or frac[-1] == "0":
            return None
        micro = int(frac[1:7].ljust(6, "0"))
    year = int(text[:year_digits])
    if year_digits == 2:
        year += 2000 if year < 50 else 1900  # RFC 5280 4.1.2.5.1
    try:
        return datetime(
            year,
            int(text[year_digits : year_digits + 2]),
            int(text[year_digits + 2 : year_digits + 4]),
            int(text[year_digits + 4 : year_digits + 6]),
            int(text[year_digits + 6 : year_digits + 8]),
            int(text[year_digits + 8 : year_digits + 10]),
            micro,
            tzinfo=UTC,
        )
    except ValueError:
        return None


@dataclass(slots=True)
class GeneralizedTime(_Text):
    """GeneralizedTime as its DER text (``20180101000000Z``; ``99991231235959Z`` = cancel)."""

    IDENT: ClassVar[int] = TAG_GENERALIZED_TIME
    TYPE_NAME: ClassVar[str] = "GeneralizedTime"
    YEAR_DIGITS: ClassVar[int] = 4

    def content(self) -> bytes:
        if _time_fields(self.value, self.YEAR_DIGITS) is None:
            raise GbcsEncodeError(self.TYPE_NAME, f"not a DER time: {self.value!r}")
        return self.value.encode("ascii")

    def to_datetime(self) -> datetime:
        dt = _time_fields(self.value, self.YEAR_DIGITS)
        if dt is None:
            raise GbcsEncodeError(self.TYPE_NAME, f"not a DER time: {self.value!r}")
        return dt

    @classmethod
    def from_datetime(cls, dt: datetime) -> GeneralizedTime:
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC)
        return cls(dt.strftime("%Y%m%d%H%M%SZ"))


@dataclass(slots=True)
class UtcTime(GeneralizedTime):
    """UTCTime (two-digit year), as used by the X.509 certificates in payloads."""

    IDENT: ClassVar[int] = TAG_UTC_TIME
    TYPE_NAME: ClassVar[str] = "UTCTime"
    YEAR_DIGITS: ClassVar[int] = 2

    @classmethod
    def from_datetime(cls, dt: datetime) -> UtcTime:
        if dt.tzinfo is not None:
            dt = dt.astimezone(UTC)
        if not 1950 <= dt.year <= 2049:
            raise GbcsEncodeError("UTCTime", f"year {dt.year} outside 1950-2049")
        return cls(dt.strftime("%y%m%d%H%M%SZ"))


@dataclass(slots=True)
class Sequence(Asn1Node):
    """SEQUENCE / SEQUENCE OF.

    ``wide_length`` reproduces the non-minimal ``82 00 nn`` length some RTDS
    devices emit for 128-255 byte contents; it is only valid for that range.
    """

    items: list[Asn1Node] = field(default_factory=list)
    wide_length: bool = field(default=False, kw_only=True)
    IDENT: ClassVar[int] = CONSTRUCTED | TAG_SEQUENCE
    TYPE_NAME: ClassVar[str] = "SEQUENCE"

    def content(self) -> bytes:
        return b"".join(encode_asn1(i) for i in self.items)


@dataclass(slots=True)
class Set(Asn1Node):
    items: list[Asn1Node] = field(default_factory=list)
    IDENT: ClassVar[int] = CONSTRUCTED | TAG_SET
    TYPE_NAME: ClassVar[str] = "SET"

    def content(self) -> bytes:
        return b"".join(encode_asn1(i) for i in self.items)


def _ident_key(tag_class: int, constructed: bool, number: int) -> int:
    first = tag_class | (CONSTRUCTED if constructed else 0)
    return first | number if number < HIGH_TAG else (first | HIGH_TAG) | (number << 8)


def _tag_label(tag_class: int, number: int) -> str:
    if tag_class == CLASS_CONTEXT:
        return f"[{number}]"
    return f"[{CLASS_NAMES.get(tag_class, '?')} {number}]"


@dataclass(slots=True)
class TaggedConstructed(Asn1Node):
    """Context/application/private (or unlisted universal) tag wrapping elements.

    GBCS uses it for IMPLICIT constructed fields such as ``[2] TA cell id``
    (``A2``) and EXPLICIT wrappers such as X.509 ``[0] version`` / ``[3] extensions``.
    """

    tag_class: int
    number: int
    items: list[Asn1Node] = field(default_factory=list)
    TYPE_NAME: ClassVar[str] = "TAGGED"

    @property
    def ident(self) -> int:
        return _ident_key(self.tag_class, True, self.number)

    @property
    def label(self) -> str:
        return _tag_label(self.tag_class, self.number)

    def content(self) -> bytes:
        return b"".join(encode_asn1(i) for i in self.items)


@dataclass(slots=True)
class TaggedPrimitive(Asn1Node):
    """Primitive element whose type only the schema knows (IMPLICIT ``[3] INTEGER``...).

    Also carries universal string/time types this codec does not model (e.g.
    BMPString) so certificates from other PKIs still decode and round-trip.
    """

    tag_class: int
    number: int
    data: bytes = b""
    TYPE_NAME: ClassVar[str] = "TAGGED"

    @property
    def ident(self) -> int:
        return _ident_key(self.tag_class, False, self.number)

    @property
    def label(self) -> str:
        return _tag_label(self.tag_class, self.number)

    def content(self) -> bytes:
        return bytes(self.data)

    def as_int(self) -> int:
        """The contents read as an IMPLICIT INTEGER."""
        return int.from_bytes(self.data, "big", signed=True)


#: Universal types with their own node class, by tag number.
_UNIVERSAL_TYPES: dict[int, type[Asn1Node]] = {
    TAG_BOOLEAN: Boolean,
    TAG_INTEGER: Integer,
    TAG_BIT_STRING: BitString,
    TAG_OCTET_STRING: OctetString,
    TAG_NULL: Null,
    TAG_OID: ObjectIdentifier,
    TAG_ENUMERATED: Enumerated,
    TAG_UTF8_STRING: Utf8String,
    TAG_SEQUENCE: Sequence,
    TAG_SET: Set,
    TAG_PRINTABLE_STRING: PrintableString,
    TAG_IA5_STRING: Ia5String,
    TAG_UTC_TIME: UtcTime,
    TAG_GENERALIZED_TIME: GeneralizedTime,
}
#: Universal string/time types DER requires in primitive form (X.690 10.2).
_DER_PRIMITIVE_ONLY = frozenset({*range(1, 8), 9, 10, *range(12, 16), *range(18, 31)})
_SEQ_IDENT = CONSTRUCTED | TAG_SEQUENCE


# ---------------------------------------------------------------------------
# Encoder


def _ident_octets(tag_class: int, constructed: bool, number: int, fld: str) -> bytes:
    if tag_class not in CLASS_NAMES:
        raise GbcsEncodeError(fld, f"invalid tag class 0x{tag_class:02X}")
    if not isinstance(number, int) or number < 0:
        raise GbcsEncodeError(fld, f"invalid tag number {number!r}")
    first = tag_class | (CONSTRUCTED if constructed else 0)
    if number < HIGH_TAG:
        return bytes((first | number,))
    more = _base128(number)
    if len(more) > MAX_BASE128_BYTES:
        raise GbcsEncodeError(fld, f"tag number {number} too large")
    return bytes((first | HIGH_TAG,)) + more


def _check_generic_tag(node: TaggedConstructed | TaggedPrimitive, constructed: bool) -> None:
    if node.tag_class == CLASS_UNIVERSAL and (
        node.number in _UNIVERSAL_TYPES
        or node.number == 0
        or (constructed and node.number in _DER_PRIMITIVE_ONLY)
    ):
        raise GbcsEncodeError(
            node.label, "universal tag has its own node type or is not valid DER here"
        )


def encode_asn1(node: Asn1Node, _depth: int = 0) -> bytes:
    """Canonical DER of ``node``; ``decode_asn1(encode_asn1(n)) == n`` for any valid tree."""
    if not isinstance(node, Asn1Node):
        raise GbcsEncodeError("asn1", f"not an ASN.1 node: {type(node).__name__}")
    ident = node.IDENT
    if ident >= 0:
        head = _IDENT_OCTET[ident]
    elif isinstance(node, TaggedConstructed | TaggedPrimitive):
        constructed = isinstance(node, TaggedConstructed)
        _check_generic_tag(node, constructed)
        head = _ident_octets(node.tag_class, constructed, node.number, node.label)
    else:
        raise GbcsEncodeError("asn1", f"not an ASN.1 node: {type(node).__name__}")
    if isinstance(node, Sequence | Set | TaggedConstructed):
        if _depth >= MAX_DEPTH:
            raise GbcsEncodeError("asn1", f"nesting deeper than {MAX_DEPTH}")
        _depth += 1
        body = b"".join([encode_asn1(i, _depth) for i in node.items])
        n = len(body)
        if isinstance(node, Sequence) and node.wide_length:
            if not WIDE_LENGTH_MIN <= n <= WIDE_LENGTH_MAX:
                raise GbcsEncodeError(
                    "SEQUENCE", f"wide_length needs 128-255 content bytes, has {n}"
                )
            return head + b"\x82\x00" + bytes((n,)) + body
    else:
        body = node.content()
        n = len(body)
    if n < 0x80:
        return head + bytes((n,)) + body
    return head + encode_length(n, node.TYPE_NAME) + body


_IDENT_OCTET: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(256))


# ---------------------------------------------------------------------------
# Decoder


def _err(field: str, at: int, reason: str) -> GbcsDecodeError:
    return GbcsDecodeError(field, at, reason)


def _primitive(number: int, data: bytes, at: int) -> Asn1Node:
    """Decode the contents of a universal primitive element, enforcing DER.

    ``at`` is the absolute offset of the element (for node offsets and errors).
    """
    n = len(data)
    if number in (TAG_INTEGER, TAG_ENUMERATED):
        if n == 0 or (
            n > 1 and ((data[0] == 0 and data[1] < 0x80) or (data[0] == 0xFF and data[1] >= 0x80))
        ):
            name = "INTEGER" if number == TAG_INTEGER else "ENUMERATED"
            raise _err(name, at, "empty or non-minimal encoding (leading 00/FF octet)")
        v = int.from_bytes(data, "big", signed=True)
        return Integer(v, offset=at) if number == TAG_INTEGER else Enumerated(v, offset=at)
    if number == TAG_OCTET_STRING:
        return OctetString(data, offset=at)
    if number == TAG_NULL:
        if n:
            raise _err("NULL", at, f"contents must be empty, got {n} byte(s)")
        return Null(offset=at)
    if number == TAG_OID:
        return ObjectIdentifier(_decode_oid(data, at), offset=at)
    if number == TAG_BIT_STRING:
        if n == 0:
            raise _err("BIT STRING", at, "missing unused-bits octet")
        u = data[0]
        if u > 7 or (u and n == 1):
            raise _err("BIT STRING", at, f"invalid unused-bit count {u}")
        if u and data[-1] & ((1 << u) - 1):
            raise _err("BIT STRING", at, "unused bits not zero")
        return BitString(data[1:], u, offset=at)
    if number == TAG_BOOLEAN:
        if n != 1 or data[0] not in (0x00, 0xFF):
            raise _err("BOOLEAN", at, "DER BOOLEAN is exactly 00 or FF")
        return Boolean(data[0] == 0xFF, offset=at)
    if number in (TAG_GENERALIZED_TIME, TAG_UTC_TIME):
        cls = GeneralizedTime if number == TAG_GENERALIZED_TIME else UtcTime
        text = data.decode("latin-1")
        if _time_fields(text, cls.YEAR_DIGITS) is None:
            raise _err(cls.TYPE_NAME, at, f"not a canonical DER time: {text!r}")
        return cls(text, offset=at)
    if number == TAG_PRINTABLE_STRING:
        if not _PRINTABLE.issuperset(data):
            raise _err("PrintableString", at, "character outside the PrintableString set")
        return PrintableString(data.decode("ascii"), offset=at)
    if number == TAG_IA5_STRING:
        if not data.isascii():
            raise _err("IA5String", at, "non-ASCII octet")
        return Ia5String(data.decode("ascii"), offset=at)
    if number == TAG_UTF8_STRING:
        try:
            return Utf8String(data.decode("utf-8"), offset=at)
        except UnicodeDecodeError as exc:
            raise _err("UTF8String", at, f"invalid UTF-8: {exc.reason}") from None
    # SEQUENCE/SET in primitive form
    raise _err("asn1 tag", at, f"universal tag {number} must be constructed")


def _decode_oid(data: bytes, at: int) -> str:
    text = _OID_DECODE_CACHE.get(data)
    if text is not None:
        return text
    if not data:
        raise _err("OBJECT IDENTIFIER", at, "empty contents")
    if data[-1] & 0x80:
        raise _err("OBJECT IDENTIFIER", at, "truncated sub-identifier")
    arcs: list[int] = []
    v = 0
    start = True
    for b in data:
        if start and b == 0x80:
            raise _err("OBJECT IDENTIFIER", at, "non-minimal sub-identifier")
        v = (v << 7) | (b & 0x7F)
        start = not b & 0x80
        if start:
            arcs.append(v)
            v = 0
    first = arcs[0]
    head = [first // 40, first % 40] if first < 80 else [2, first - 80]
    text = ".".join(str(a) for a in head + arcs[1:])
    if len(_OID_DECODE_CACHE) < _OID_CACHE_MAX:
        _OID_DECODE_CACHE[data] = text
    return text


def _high_tag(buf: bytes, pos: int, end: int, at: int) -> tuple[int, int]:
    """Base-128 tag number after a 0x1F identifier; returns (number, next pos)."""
    number = 0
    for i in range(MAX_BASE128_BYTES):
        if pos >= end:
            raise _err("asn1 tag number", at, "truncated high tag number")
        o = buf[pos]
        pos += 1
        if i == 0 and o == 0x80:
            raise _err("asn1 tag number", at, "non-minimal high tag number")
        number = (number << 7) | (o & 0x7F)
        if not o & 0x80:
            if number < HIGH_TAG:
                raise _err("asn1 tag number", at, f"tag {number} must use the short form")
            return number, pos
    raise _err("asn1 tag number", at, "tag number too long")


def _decode_at(buf: bytes, pos: int, end: int, depth: int, base: int) -> tuple[Asn1Node, int]:
    """Decode one element of ``buf[pos:end]``; returns (node, position after it).

    Works on positions rather than sub-readers: it runs once per element of
    every certificate, so it is the codec's hot loop.
    """
    at = base + pos
    if pos >= end:
        raise _err("asn1 tag", at, "needs 1 byte(s), only 0 left")
    b = buf[pos]
    pos += 1
    tag_class = b & 0xC0
    number = b & HIGH_TAG
    if number == HIGH_TAG:
        number, pos = _high_tag(buf, pos, end, at)
    elif number == 0 and tag_class == CLASS_UNIVERSAL:
        raise _err("asn1 tag", at, "end-of-contents / tag 0 not allowed in DER")
    # DER length (X.690 10.1): definite, minimal (but see Sequence.wide_length).
    if pos >= end:
        raise _err("asn1 length", base + pos, "needs 1 byte(s), only 0 left")
    first = buf[pos]
    wide = False
    if first < 0x80:
        length = first
        pos += 1
    else:
        lat = base + pos
        k = first & 0x7F
        if k == 0:
            raise _err("asn1 length", lat, "indefinite length not allowed in DER")
        if k > MAX_LENGTH_OCTETS:
            raise _err("asn1 length", lat, f"{k}-octet length form not supported")
        pos += 1
        if pos + k > end:
            raise _err("asn1 length", lat, f"needs {k} length byte(s), only {end - pos} left")
        length = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
        if length < 0x80 or length >> (8 * (k - 1)) == 0:
            if not (b == _SEQ_IDENT and k == 2 and length >= WIDE_LENGTH_MIN):
                raise _err("asn1 length", lat, f"non-minimal length form 0x{first:02X}")
            wide = True
    stop = pos + length
    if stop > end:
        raise _err("asn1 contents", base + pos, f"needs {length} byte(s), only {end - pos} left")
    if b & CONSTRUCTED:
        if depth >= MAX_DEPTH:
            raise _err("asn1", at, f"nesting deeper than {MAX_DEPTH} levels")
        items: list[Asn1Node] = []
        depth += 1
        while pos < stop:
            node, pos = _decode_at(buf, pos, stop, depth, base)
            items.append(node)
        if b == _SEQ_IDENT:
            return Sequence(items, wide_length=wide, offset=at), stop
        if tag_class == CLASS_UNIVERSAL:
            if number == TAG_SET:
                return Set(items, offset=at), stop
            if number in _DER_PRIMITIVE_ONLY:
                raise _err("asn1 tag", at, f"universal tag {number} must be primitive in DER")
        return TaggedConstructed(tag_class, number, items, offset=at), stop
    data = buf[pos:stop]
    if tag_class == CLASS_UNIVERSAL and number in _UNIVERSAL_TYPES:
        return _primitive(number, data, at), stop
    return TaggedPrimitive(tag_class, number, data, offset=at), stop


def decode_asn1(content: bytes, base: int = 0) -> Asn1Node:
    """Decode exactly one DER element filling ``content``.

    ``base`` is the absolute offset of ``content[0]`` in the outer message so
    errors and node offsets point into the original hex dump.
    """
    r = Reader(content, base=base)
    node, r.pos = _decode_at(r.buf, r.pos, r.end, 0, r.base)
    r.expect_end("asn1 trailing data")
    return node


# ---------------------------------------------------------------------------
# Helpers


def is_certificate(node: Asn1Node) -> bool:
    """Shape of an X.509 Certificate: SEQUENCE{ SEQUENCE tbs, SEQUENCE alg, BIT STRING }."""
    return (
        isinstance(node, Sequence)
        and len(node.items) == 3
        and isinstance(node.items[0], Sequence)
        and isinstance(node.items[1], Sequence)
        and isinstance(node.items[2], BitString)
    )


def certificate_der(node: Asn1Node) -> bytes:
    """DER bytes of an X.509 certificate kept as a generic tree (for cryptography.x509)."""
    if not is_certificate(node):
        raise GbcsDecodeError("certificate", node.offset, "not an X.509 Certificate structure")
    return encode_asn1(node)


_OID_NAMES: dict[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.11": "OU",
    "2.5.4.10": "O",
    "2.5.4.6": "C",
    "2.5.4.45": "x500UniqueIdentifier",
}


def _name_text(name: Asn1Node) -> str:
    parts: list[str] = []
    for rdn in getattr(name, "items", ()):
        for atv in getattr(rdn, "items", ()):
            kv = getattr(atv, "items", ())
            if len(kv) == 2 and isinstance(kv[0], ObjectIdentifier):
                key = _OID_NAMES.get(kv[0].value, kv[0].value)
                val = kv[1]
                if isinstance(val, _Text):
                    text = val.value
                elif isinstance(val, BitString):
                    text = val.data.hex().upper()
                else:
                    text = encode_asn1(val).hex().upper()
                parts.append(f"{key}={text}")
    return ",".join(parts)


def certificate_summary(node: Asn1Node) -> dict[str, object]:
    """Readable key facts of a certificate tree plus its DER (hex)."""
    der = certificate_der(node)
    assert isinstance(node, Sequence)
    tbs = node.items[0]
    assert isinstance(tbs, Sequence)
    fields = list(tbs.items)
    if fields and isinstance(fields[0], TaggedConstructed) and fields[0].number == 0:
        fields = fields[1:]  # explicit [0] version
    out: dict[str, object] = {}
    if len(fields) >= 5:
        serial, _alg, issuer, validity, subject = fields[:5]
        if isinstance(serial, Integer):
            out["serialNumber"] = f"{serial.value:X}"
        out["issuer"] = _name_text(issuer)
        out["subject"] = _name_text(subject)
        if isinstance(validity, Sequence) and len(validity.items) == 2:
            nb, na = validity.items
            if isinstance(nb, GeneralizedTime) and isinstance(na, GeneralizedTime):
                out["notBefore"] = nb.to_datetime().isoformat().replace("+00:00", "Z")
                out["notAfter"] = na.to_datetime().isoformat().replace("+00:00", "Z")
    out["der"] = der.hex().upper()
    return out


def alert_code(node: Asn1Node) -> int | None:
    """Alert code of an ASN.1 alert payload: the leading INTEGER of its SEQUENCE."""
    if isinstance(node, Sequence) and node.items:
        first = node.items[0]
        if type(first) is Integer and 0 <= first.value <= 0xFFFF:
            return first.value
    return None


def asn1_to_json(
    node: Asn1Node, message_code: int | None = None, cra: int | None = None
) -> dict[str, object]:
    """Named fields per message code (see :mod:`gbhil.gbcs.asn1_schemas`)."""
    from gbhil.gbcs import asn1_schemas  # lazy: asn1_schemas imports this module

    return asn1_schemas.asn1_to_json(node, message_code, cra)


#: Integers wider than this are shown as hex text: JSON tools (and Python's own
#: int-to-text limit) choke on the huge numbers garbled input can produce.
JSON_INT_MAX_BITS = 1024


def json_int(value: int) -> int | str:
    """An INTEGER for a JSON view: the number, or ``0x``-hex when absurdly wide."""
    if value.bit_length() <= JSON_INT_MAX_BITS:
        return value
    return f"-0x{-value:X}" if value < 0 else f"0x{value:X}"


def node_to_json(node: Asn1Node) -> dict[str, object]:
    """Generic readable tree for payloads without a known schema."""
    if isinstance(node, Sequence | Set):
        return {"type": node.TYPE_NAME, "items": [node_to_json(i) for i in node.items]}
    if isinstance(node, TaggedConstructed):
        return {"type": node.label, "items": [node_to_json(i) for i in node.items]}
    if isinstance(node, TaggedPrimitive):
        return {"type": node.label, "value": node.data.hex().upper()}
    if isinstance(node, Integer | Enumerated):
        return {"type": node.TYPE_NAME, "value": json_int(node.value)}
    if isinstance(node, Boolean):
        return {"type": node.TYPE_NAME, "value": node.value}
    if isinstance(node, OctetString):
        return {"type": node.TYPE_NAME, "value": node.value.hex().upper()}
    if isinstance(node, BitString):
        return {
            "type": node.TYPE_NAME,
            "value": node.data.hex().upper(),
            "unusedBits": node.unused_bits,
        }
    if isinstance(node, Null):
        return {"type": node.TYPE_NAME}
    if isinstance(node, _Text | ObjectIdentifier):
        return {"type": node.TYPE_NAME, "value": node.value}
    raise GbcsEncodeError("asn1", f"not an ASN.1 node: {type(node).__name__}")
