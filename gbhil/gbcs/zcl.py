"""ZigBee Cluster Library frames as GBCS carries them inside GBZ components.

Typed decode and encode of the ZCL header and of the profile-wide ("general")
commands GBCS uses (Read/Write Attributes and their responses, reporting,
Default Response, attribute discovery), with the ZCL data types those need.
Cluster-specific command payloads stay as raw bytes (:class:`RawPayload`); the
catalogue names them. Everything inside a ZCL frame is little-endian.

Decoding is canonical: whatever decodes re-encodes to the same bytes, so a
non-canonical form (a bool of 2, a lone-status write response with a second
record) is rejected instead of being silently normalised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.errors import GbcsEncodeError
from gbhil.gbcs.reader import Reader

#: Arrays and structures may nest; this bounds recursion on hostile input.
MAX_NESTING = 8

ZclScalar: TypeAlias = int | bool | bytes | None


@dataclass(frozen=True, slots=True)
class ZclValue:
    """A typed ZCL value.

    ``value`` by kind: integers (unsigned, signed, bitmaps, enums, UTC seconds
    since 2000, ids, EUI-64, float bit patterns) are ``int``; bool is
    ``bool`` or ``None`` (0xFF invalid); strings are ``bytes`` or ``None``
    (invalid length marker); time of day/date/key are ``bytes``; arrays, sets,
    bags and structures are a tuple of :class:`ZclValue` or ``None`` (invalid
    count). ``element_type`` is the element type of an array/set/bag.
    """

    type_id: int
    value: ZclScalar | tuple[ZclValue, ...]
    element_type: int | None = None


@dataclass(frozen=True, slots=True)
class ZclHeader:
    """ZCL header; the frame control byte is kept whole, reserved bits included."""

    frame_control: int
    sequence: int
    command_id: int
    manufacturer_code: int | None = None

    @property
    def frame_type(self) -> int:
        return self.frame_control & cat.ZCL_FC_FRAME_TYPE_MASK

    @property
    def is_global(self) -> bool:
        return self.frame_control & cat.ZCL_FC_FRAME_TYPE_MASK == cat.ZCL_FRAME_TYPE_GLOBAL

    @property
    def server_to_client(self) -> bool:
        return bool(self.frame_control & cat.ZCL_FC_SERVER_TO_CLIENT)

    @property
    def manufacturer_specific(self) -> bool:
        return bool(self.frame_control & cat.ZCL_FC_MANUFACTURER_SPECIFIC)

    @property
    def disable_default_response(self) -> bool:
        return bool(self.frame_control & cat.ZCL_FC_DISABLE_DEFAULT_RESPONSE)


# --- payloads of the general commands --------------------------------------


@dataclass(frozen=True, slots=True)
class ReadAttributes:
    attribute_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ReadAttributeRecord:
    """One read result; ``value`` is present exactly when ``status`` is SUCCESS."""

    attribute_id: int
    status: int
    value: ZclValue | None = None


@dataclass(frozen=True, slots=True)
class ReadAttributesResponse:
    records: tuple[ReadAttributeRecord, ...]


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """Attribute id with a typed value (Write Attributes*, Report Attributes records)."""

    attribute_id: int
    value: ZclValue


@dataclass(frozen=True, slots=True)
class WriteAttributes:
    """Payload of Write Attributes, Write Attributes Undivided and Write Attributes No Response."""

    records: tuple[AttributeValue, ...]


@dataclass(frozen=True, slots=True)
class AttributeStatus:
    """Status record; ``attribute_id`` is None only for the lone all-success status byte."""

    status: int
    attribute_id: int | None = None


@dataclass(frozen=True, slots=True)
class WriteAttributesResponse:
    records: tuple[AttributeStatus, ...]


@dataclass(frozen=True, slots=True)
class ReportingConfiguration:
    """Attribute reporting configuration record.

    Direction 0 (reports sent by the server) carries data type, min/max
    interval and, for analog types only, the reportable change; direction 1
    carries only the timeout period.
    """

    direction: int
    attribute_id: int
    data_type: int | None = None
    min_interval: int | None = None
    max_interval: int | None = None
    reportable_change: ZclValue | None = None
    timeout: int | None = None


@dataclass(frozen=True, slots=True)
class ConfigureReporting:
    records: tuple[ReportingConfiguration, ...]


@dataclass(frozen=True, slots=True)
class ReportingStatus:
    """Configure Reporting Response record; direction/attribute are None for the lone status."""

    status: int
    direction: int | None = None
    attribute_id: int | None = None


@dataclass(frozen=True, slots=True)
class ConfigureReportingResponse:
    records: tuple[ReportingStatus, ...]


@dataclass(frozen=True, slots=True)
class AttributeSelector:
    direction: int
    attribute_id: int


@dataclass(frozen=True, slots=True)
class ReadReportingConfiguration:
    records: tuple[AttributeSelector, ...]


@dataclass(frozen=True, slots=True)
class ReportingConfigurationStatus:
    """On failure ``configuration`` holds only direction and attribute id."""

    status: int
    configuration: ReportingConfiguration


@dataclass(frozen=True, slots=True)
class ReadReportingConfigurationResponse:
    records: tuple[ReportingConfigurationStatus, ...]


@dataclass(frozen=True, slots=True)
class ReportAttributes:
    records: tuple[AttributeValue, ...]


@dataclass(frozen=True, slots=True)
class DefaultResponse:
    command_id: int
    status: int


@dataclass(frozen=True, slots=True)
class DiscoverAttributes:
    start_attribute_id: int
    max_attributes: int


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    attribute_id: int
    type_id: int


@dataclass(frozen=True, slots=True)
class DiscoverAttributesResponse:
    complete: bool
    attributes: tuple[AttributeInfo, ...]


@dataclass(frozen=True, slots=True)
class RawPayload:
    """Payload kept as bytes: cluster-specific commands and general commands not typed here."""

    data: bytes


ZclPayload: TypeAlias = (
    ReadAttributes
    | ReadAttributesResponse
    | WriteAttributes
    | WriteAttributesResponse
    | ConfigureReporting
    | ConfigureReportingResponse
    | ReadReportingConfiguration
    | ReadReportingConfigurationResponse
    | ReportAttributes
    | DefaultResponse
    | DiscoverAttributes
    | DiscoverAttributesResponse
    | RawPayload
)


@dataclass(frozen=True, slots=True)
class ZclFrame:
    header: ZclHeader
    payload: ZclPayload


#: ZCL UTCTime and GBZ timestamps count seconds from 2000-01-01T00:00:00Z.
EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)


def utc_seconds_iso(seconds: int) -> str:
    """ISO-8601 UTC text of a seconds-since-2000 count (ZCL UTCTime, GBZ timestamps)."""
    return (EPOCH_2000 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_seconds_from_datetime(dt: datetime) -> int:
    """Seconds since 2000-01-01 UTC of an aware datetime (sub-second part dropped)."""
    return int((dt - EPOCH_2000).total_seconds())


# --- values -----------------------------------------------------------------

_TYPES = cat.ZCL_TYPES


def decode_value(r: Reader, type_id: int, depth: int = 0) -> ZclValue:
    """Read one value of ``type_id`` (the type byte itself already consumed)."""
    t = _TYPES.get(type_id)
    if t is None:
        raise r.error("zcl.data_type", f"unknown ZCL data type 0x{type_id:02X}", r.offset - 1)
    kind = t.kind
    if kind == cat.KIND_UINT:
        return ZclValue(type_id, r.uint(t.size, "zcl.value", "little"))
    if kind == cat.KIND_STRING:
        n = r.u8("zcl.string_length")
        if n == cat.ZCL_INVALID_STRING_LEN:
            return ZclValue(type_id, None)
        return ZclValue(type_id, r.take(n, "zcl.string"))
    if kind == cat.KIND_INT:
        size = t.size
        v = r.uint(size, "zcl.value", "little")
        if v >> (8 * size - 1):
            v -= 1 << (8 * size)
        return ZclValue(type_id, v)
    if kind == cat.KIND_BOOL:
        at = r.offset
        b = r.u8("zcl.bool")
        if b == cat.ZCL_BOOL_INVALID:
            return ZclValue(type_id, None)
        if b > 1:
            raise r.error("zcl.bool", f"boolean value 0x{b:02X} is neither 0, 1 nor 0xFF", at)
        return ZclValue(type_id, b == 1)
    if kind == cat.KIND_FIXED_BYTES:
        return ZclValue(type_id, r.take(t.size, "zcl.value"))
    if kind == cat.KIND_LONG_STRING:
        n = r.uint(2, "zcl.string_length", "little")
        if n == cat.ZCL_INVALID_LONG_LEN:
            return ZclValue(type_id, None)
        return ZclValue(type_id, r.take(n, "zcl.string"))
    if kind == cat.KIND_NONE:
        return ZclValue(type_id, None)
    if depth >= MAX_NESTING:
        raise r.error("zcl.value", f"arrays/structures nested deeper than {MAX_NESTING}")
    if kind == cat.KIND_ARRAY:
        at = r.offset
        et = r.u8("zcl.element_type")
        et_info = _TYPES.get(et)
        if et_info is None or et_info.kind == cat.KIND_NONE:
            raise r.error("zcl.element_type", f"invalid array element type 0x{et:02X}", at)
        count = r.uint(2, "zcl.element_count", "little")
        if count == cat.ZCL_INVALID_LONG_LEN:
            return ZclValue(type_id, None, et)
        items = tuple(decode_value(r, et, depth + 1) for _ in range(count))
        return ZclValue(type_id, items, et)
    # structure
    count = r.uint(2, "zcl.element_count", "little")
    if count == cat.ZCL_INVALID_LONG_LEN:
        return ZclValue(type_id, None)
    items = tuple(decode_value(r, r.u8("zcl.element_type"), depth + 1) for _ in range(count))
    return ZclValue(type_id, items)


def _uint_bytes(v: object, n: int, field: str) -> bytes:
    if not isinstance(v, int):
        raise GbcsEncodeError(field, f"expected an integer, got {type(v).__name__}")
    try:
        return v.to_bytes(n, "little")
    except OverflowError:
        raise GbcsEncodeError(field, f"{v} does not fit in an unsigned {8 * n}-bit field") from None


def _u8(v: object, field: str) -> bytes:
    return _uint_bytes(v, 1, field)


def _u16le(v: object, field: str) -> bytes:
    return _uint_bytes(v, 2, field)


def encode_value(v: ZclValue, depth: int = 0) -> bytes:
    """Value bytes of ``v`` without the type byte."""
    t = _TYPES.get(v.type_id)
    if t is None:
        raise GbcsEncodeError("zcl.data_type", f"unknown ZCL data type {v.type_id!r}")
    kind = t.kind
    val = v.value
    if kind in (cat.KIND_ARRAY, cat.KIND_STRUCT):
        if depth >= MAX_NESTING:
            raise GbcsEncodeError(
                "zcl.value", f"arrays/structures nested deeper than {MAX_NESTING}"
            )
        if kind == cat.KIND_ARRAY:
            et = v.element_type
            et_info = _TYPES.get(et) if isinstance(et, int) else None
            if et_info is None or et_info.kind == cat.KIND_NONE:
                raise GbcsEncodeError("zcl.element_type", f"invalid array element type {et!r}")
            head = bytes((et,))
        else:
            if v.element_type is not None:
                raise GbcsEncodeError("zcl.element_type", "a structure has no element type")
            et = None
            head = b""
        if val is None:
            return head + b"\xff\xff"
        if not isinstance(val, tuple) or len(val) >= cat.ZCL_INVALID_LONG_LEN:
            raise GbcsEncodeError("zcl.value", "array/structure value must be a tuple of < 65535")
        parts = [head, len(val).to_bytes(2, "little")]
        for item in val:
            if not isinstance(item, ZclValue):
                raise GbcsEncodeError("zcl.value", "array/structure elements must be ZclValue")
            if et is None:
                parts.append(_u8(item.type_id, "zcl.element_type"))
            elif item.type_id != et:
                raise GbcsEncodeError(
                    "zcl.value", f"array element of type {item.type_id!r}, not {et}"
                )
            parts.append(encode_value(item, depth + 1))
        return b"".join(parts)
    if v.element_type is not None:
        raise GbcsEncodeError("zcl.element_type", "only arrays, sets and bags have an element type")
    if kind == cat.KIND_UINT:
        return _uint_bytes(val, t.size, f"zcl.{t.name}")
    if kind == cat.KIND_INT:
        if not isinstance(val, int):
            raise GbcsEncodeError(f"zcl.{t.name}", f"expected an integer, got {type(val).__name__}")
        try:
            return val.to_bytes(t.size, "little", signed=True)
        except OverflowError:
            raise GbcsEncodeError(f"zcl.{t.name}", f"{val} out of range") from None
    if kind == cat.KIND_BOOL:
        if val is None:
            return bytes((cat.ZCL_BOOL_INVALID,))
        if not isinstance(val, bool):
            raise GbcsEncodeError("zcl.bool", f"expected bool or None, got {type(val).__name__}")
        return b"\x01" if val else b"\x00"
    if kind == cat.KIND_NONE:
        if val is not None:
            raise GbcsEncodeError(f"zcl.{t.name}", "this type carries no value")
        return b""
    if kind == cat.KIND_FIXED_BYTES:
        if not isinstance(val, bytes) or len(val) != t.size:
            raise GbcsEncodeError(f"zcl.{t.name}", f"expected exactly {t.size} bytes")
        return val
    # strings
    long = kind == cat.KIND_LONG_STRING
    if val is None:
        return b"\xff\xff" if long else b"\xff"
    if not isinstance(val, bytes):
        raise GbcsEncodeError(f"zcl.{t.name}", f"expected bytes or None, got {type(val).__name__}")
    limit = cat.ZCL_INVALID_LONG_LEN if long else cat.ZCL_INVALID_STRING_LEN
    if len(val) >= limit:
        raise GbcsEncodeError(f"zcl.{t.name}", f"{len(val)} bytes, limit {limit - 1}")
    return len(val).to_bytes(2 if long else 1, "little") + val


def encode_typed_value(v: ZclValue) -> bytes:
    """Type byte followed by the value bytes."""
    return _u8(v.type_id, "zcl.data_type") + encode_value(v)


# --- header -----------------------------------------------------------------


def decode_zcl_header(r: Reader) -> ZclHeader:
    fc = r.u8("zcl.frame_control")
    mc = (
        r.uint(2, "zcl.manufacturer_code", "little")
        if fc & cat.ZCL_FC_MANUFACTURER_SPECIFIC
        else None
    )
    seq = r.u8("zcl.sequence")
    return ZclHeader(fc, seq, r.u8("zcl.command_id"), mc)


def encode_zcl_header(h: ZclHeader) -> bytes:
    fc = _u8(h.frame_control, "zcl.frame_control")
    if h.frame_control & cat.ZCL_FC_MANUFACTURER_SPECIFIC:
        if h.manufacturer_code is None:
            raise GbcsEncodeError(
                "zcl.manufacturer_code", "frame control says manufacturer specific"
            )
        fc += _u16le(h.manufacturer_code, "zcl.manufacturer_code")
    elif h.manufacturer_code is not None:
        raise GbcsEncodeError("zcl.manufacturer_code", "set but frame control bit 2 is clear")
    return fc + _u8(h.sequence, "zcl.sequence") + _u8(h.command_id, "zcl.command_id")


# --- general command payload decoders (each consumes the reader to its end) --


def _attr(r: Reader) -> int:
    return r.uint(2, "zcl.attribute_id", "little")


def _dec_read_attributes(r: Reader) -> ReadAttributes:
    ids: list[int] = []
    while r.pos < r.end:
        ids.append(_attr(r))
    return ReadAttributes(tuple(ids))


def _dec_read_attributes_response(r: Reader) -> ReadAttributesResponse:
    recs: list[ReadAttributeRecord] = []
    while r.pos < r.end:
        aid = _attr(r)
        status = r.u8("zcl.status")
        if status == cat.ZCL_STATUS_SUCCESS:
            recs.append(ReadAttributeRecord(aid, status, decode_value(r, r.u8("zcl.data_type"))))
        else:
            recs.append(ReadAttributeRecord(aid, status))
    return ReadAttributesResponse(tuple(recs))


def _dec_attribute_values(r: Reader) -> tuple[AttributeValue, ...]:
    recs: list[AttributeValue] = []
    while r.pos < r.end:
        aid = _attr(r)
        recs.append(AttributeValue(aid, decode_value(r, r.u8("zcl.data_type"))))
    return tuple(recs)


def _dec_write_attributes(r: Reader) -> WriteAttributes:
    return WriteAttributes(_dec_attribute_values(r))


def _dec_report_attributes(r: Reader) -> ReportAttributes:
    return ReportAttributes(_dec_attribute_values(r))


def _dec_write_attributes_response(r: Reader) -> WriteAttributesResponse:
    if r.remaining == 1:
        return WriteAttributesResponse((AttributeStatus(r.u8("zcl.status")),))
    recs: list[AttributeStatus] = []
    while r.pos < r.end:
        status = r.u8("zcl.status")
        recs.append(AttributeStatus(status, _attr(r)))
    return WriteAttributesResponse(tuple(recs))


def _direction(r: Reader) -> int:
    at = r.offset
    d = r.u8("zcl.direction")
    if d > 1:
        raise r.error("zcl.direction", f"direction 0x{d:02X} is neither 0 nor 1", at)
    return d


def _dec_reporting_body(r: Reader, direction: int, aid: int) -> ReportingConfiguration:
    if direction == cat.DIRECTION_SERVER_TO_CLIENT:
        return ReportingConfiguration(direction, aid, timeout=r.uint(2, "zcl.timeout", "little"))
    at = r.offset
    dt = r.u8("zcl.data_type")
    t = _TYPES.get(dt)
    if t is None:
        raise r.error("zcl.data_type", f"unknown ZCL data type 0x{dt:02X}", at)
    mn = r.uint(2, "zcl.min_interval", "little")
    mx = r.uint(2, "zcl.max_interval", "little")
    change = decode_value(r, dt) if t.analog else None
    return ReportingConfiguration(direction, aid, dt, mn, mx, change)


def _dec_configure_reporting(r: Reader) -> ConfigureReporting:
    recs: list[ReportingConfiguration] = []
    while r.pos < r.end:
        d = _direction(r)
        recs.append(_dec_reporting_body(r, d, _attr(r)))
    return ConfigureReporting(tuple(recs))


def _dec_configure_reporting_response(r: Reader) -> ConfigureReportingResponse:
    if r.remaining == 1:
        return ConfigureReportingResponse((ReportingStatus(r.u8("zcl.status")),))
    recs: list[ReportingStatus] = []
    while r.pos < r.end:
        status = r.u8("zcl.status")
        d = _direction(r)
        recs.append(ReportingStatus(status, d, _attr(r)))
    return ConfigureReportingResponse(tuple(recs))


def _dec_read_reporting_configuration(r: Reader) -> ReadReportingConfiguration:
    recs: list[AttributeSelector] = []
    while r.pos < r.end:
        d = _direction(r)
        recs.append(AttributeSelector(d, _attr(r)))
    return ReadReportingConfiguration(tuple(recs))


def _dec_read_reporting_configuration_response(r: Reader) -> ReadReportingConfigurationResponse:
    recs: list[ReportingConfigurationStatus] = []
    while r.pos < r.end:
        status = r.u8("zcl.status")
        d = _direction(r)
        aid = _attr(r)
        if status == cat.ZCL_STATUS_SUCCESS:
            conf = _dec_reporting_body(r, d, aid)
        else:
            conf = ReportingConfiguration(d, aid)
        recs.append(ReportingConfigurationStatus(status, conf))
    return ReadReportingConfigurationResponse(tuple(recs))


def _dec_default_response(r: Reader) -> DefaultResponse:
    cmd = r.u8("zcl.command_id")
    status = r.u8("zcl.status")
    r.expect_end("zcl.default_response")
    return DefaultResponse(cmd, status)


def _dec_discover_attributes(r: Reader) -> DiscoverAttributes:
    start = _attr(r)
    mx = r.u8("zcl.max_attributes")
    r.expect_end("zcl.discover_attributes")
    return DiscoverAttributes(start, mx)


def _dec_discover_attributes_response(r: Reader) -> DiscoverAttributesResponse:
    at = r.offset
    complete = r.u8("zcl.discovery_complete")
    if complete > 1:
        raise r.error("zcl.discovery_complete", f"0x{complete:02X} is neither 0 nor 1", at)
    recs: list[AttributeInfo] = []
    while r.pos < r.end:
        aid = _attr(r)
        recs.append(AttributeInfo(aid, r.u8("zcl.data_type")))
    return DiscoverAttributesResponse(complete == 1, tuple(recs))


_GENERAL_DECODERS = {
    cat.CMD_READ_ATTRIBUTES: _dec_read_attributes,
    cat.CMD_READ_ATTRIBUTES_RESPONSE: _dec_read_attributes_response,
    cat.CMD_WRITE_ATTRIBUTES: _dec_write_attributes,
    cat.CMD_WRITE_ATTRIBUTES_UNDIVIDED: _dec_write_attributes,
    cat.CMD_WRITE_ATTRIBUTES_RESPONSE: _dec_write_attributes_response,
    cat.CMD_WRITE_ATTRIBUTES_NO_RESPONSE: _dec_write_attributes,
    cat.CMD_CONFIGURE_REPORTING: _dec_configure_reporting,
    cat.CMD_CONFIGURE_REPORTING_RESPONSE: _dec_configure_reporting_response,
    cat.CMD_READ_REPORTING_CONFIGURATION: _dec_read_reporting_configuration,
    cat.CMD_READ_REPORTING_CONFIGURATION_RESPONSE: _dec_read_reporting_configuration_response,
    cat.CMD_REPORT_ATTRIBUTES: _dec_report_attributes,
    cat.CMD_DEFAULT_RESPONSE: _dec_default_response,
    cat.CMD_DISCOVER_ATTRIBUTES: _dec_discover_attributes,
    cat.CMD_DISCOVER_ATTRIBUTES_RESPONSE: _dec_discover_attributes_response,
}

#: Payload class each typed general command must carry (checked when encoding).
_GENERAL_PAYLOAD_TYPES: dict[int, type] = {
    cat.CMD_READ_ATTRIBUTES: ReadAttributes,
    cat.CMD_READ_ATTRIBUTES_RESPONSE: ReadAttributesResponse,
    cat.CMD_WRITE_ATTRIBUTES: WriteAttributes,
    cat.CMD_WRITE_ATTRIBUTES_UNDIVIDED: WriteAttributes,
    cat.CMD_WRITE_ATTRIBUTES_RESPONSE: WriteAttributesResponse,
    cat.CMD_WRITE_ATTRIBUTES_NO_RESPONSE: WriteAttributes,
    cat.CMD_CONFIGURE_REPORTING: ConfigureReporting,
    cat.CMD_CONFIGURE_REPORTING_RESPONSE: ConfigureReportingResponse,
    cat.CMD_READ_REPORTING_CONFIGURATION: ReadReportingConfiguration,
    cat.CMD_READ_REPORTING_CONFIGURATION_RESPONSE: ReadReportingConfigurationResponse,
    cat.CMD_REPORT_ATTRIBUTES: ReportAttributes,
    cat.CMD_DEFAULT_RESPONSE: DefaultResponse,
    cat.CMD_DISCOVER_ATTRIBUTES: DiscoverAttributes,
    cat.CMD_DISCOVER_ATTRIBUTES_RESPONSE: DiscoverAttributesResponse,
}


def decode_zcl_payload(r: Reader, header: ZclHeader) -> ZclPayload:
    """Decode the rest of ``r`` as the payload of the command ``header`` names."""
    if header.frame_control & cat.ZCL_FC_FRAME_TYPE_MASK == cat.ZCL_FRAME_TYPE_GLOBAL:
        dec = _GENERAL_DECODERS.get(header.command_id)
        if dec is not None:
            return dec(r)
    return RawPayload(r.rest())


def decode_zcl_frame(data: bytes, base: int = 0) -> ZclFrame:
    """A whole ZCL frame (header + payload), e.g. as it travels over the HAN."""
    r = Reader(data, base=base)
    header = decode_zcl_header(r)
    return ZclFrame(header, decode_zcl_payload(r, header))


# --- payload encoders ---------------------------------------------------------


def _lone_status_ok(records: tuple[object, ...], ids: list[int | None]) -> None:
    if any(i is None for i in ids) and len(records) != 1:
        raise GbcsEncodeError(
            "zcl.records", "a status without attribute id must be the only record"
        )


def _enc_reporting_body(c: ReportingConfiguration) -> list[bytes]:
    if c.direction == cat.DIRECTION_SERVER_TO_CLIENT:
        if (c.data_type, c.min_interval, c.max_interval, c.reportable_change) != (None,) * 4:
            raise GbcsEncodeError("zcl.reporting", "direction 1 carries only the timeout")
        return [_u16le(c.timeout, "zcl.timeout")]
    if c.direction != cat.DIRECTION_CLIENT_TO_SERVER:
        raise GbcsEncodeError("zcl.direction", f"direction {c.direction!r} is neither 0 nor 1")
    if c.timeout is not None:
        raise GbcsEncodeError("zcl.timeout", "direction 0 carries no timeout")
    t = _TYPES.get(c.data_type) if isinstance(c.data_type, int) else None
    if t is None:
        raise GbcsEncodeError("zcl.data_type", f"unknown ZCL data type {c.data_type!r}")
    out = [
        _u8(c.data_type, "zcl.data_type"),
        _u16le(c.min_interval, "zcl.min_interval"),
        _u16le(c.max_interval, "zcl.max_interval"),
    ]
    if t.analog:
        ch = c.reportable_change
        if ch is None or ch.type_id != c.data_type:
            raise GbcsEncodeError(
                "zcl.reportable_change", "analog types need a change of that type"
            )
        out.append(encode_value(ch))
    elif c.reportable_change is not None:
        raise GbcsEncodeError("zcl.reportable_change", "discrete types carry no reportable change")
    return out


def encode_zcl_payload(header: ZclHeader, payload: ZclPayload) -> bytes:
    """Payload bytes; the payload class must match the command the header names."""
    expected: type = RawPayload
    if header.is_global:
        expected = _GENERAL_PAYLOAD_TYPES.get(header.command_id, RawPayload)
    if type(payload) is not expected:
        raise GbcsEncodeError(
            "zcl.payload",
            f"command 0x{header.command_id:02X} (frame control 0x{header.frame_control:02X}) "
            f"needs {expected.__name__}, got {type(payload).__name__}",
        )
    out: list[bytes] = []
    if isinstance(payload, RawPayload):
        if not isinstance(payload.data, bytes):
            raise GbcsEncodeError("zcl.payload", "raw payload must be bytes")
        return payload.data
    if isinstance(payload, ReadAttributes):
        out = [_u16le(a, "zcl.attribute_id") for a in payload.attribute_ids]
    elif isinstance(payload, ReadAttributesResponse):
        for rec in payload.records:
            out.append(_u16le(rec.attribute_id, "zcl.attribute_id"))
            out.append(_u8(rec.status, "zcl.status"))
            if rec.status == cat.ZCL_STATUS_SUCCESS:
                if rec.value is None:
                    raise GbcsEncodeError("zcl.value", "a SUCCESS record needs a value")
                out.append(encode_typed_value(rec.value))
            elif rec.value is not None:
                raise GbcsEncodeError("zcl.value", "only SUCCESS records carry a value")
    elif isinstance(payload, WriteAttributes | ReportAttributes):
        for av in payload.records:
            out.append(_u16le(av.attribute_id, "zcl.attribute_id"))
            out.append(encode_typed_value(av.value))
    elif isinstance(payload, WriteAttributesResponse):
        _lone_status_ok(payload.records, [s.attribute_id for s in payload.records])
        for s in payload.records:
            out.append(_u8(s.status, "zcl.status"))
            if s.attribute_id is not None:
                out.append(_u16le(s.attribute_id, "zcl.attribute_id"))
    elif isinstance(payload, ConfigureReporting):
        for c in payload.records:
            out.append(_u8(c.direction, "zcl.direction"))
            out.append(_u16le(c.attribute_id, "zcl.attribute_id"))
            out.extend(_enc_reporting_body(c))
    elif isinstance(payload, ConfigureReportingResponse):
        recs = payload.records
        _lone_status_ok(recs, [s.attribute_id for s in recs])
        for s in recs:
            out.append(_u8(s.status, "zcl.status"))
            if s.attribute_id is None:
                if s.direction is not None:
                    raise GbcsEncodeError("zcl.direction", "lone status carries no direction")
                continue
            if s.direction not in (0, 1):
                raise GbcsEncodeError(
                    "zcl.direction", f"direction {s.direction!r} is neither 0 nor 1"
                )
            out.append(_u8(s.direction, "zcl.direction"))
            out.append(_u16le(s.attribute_id, "zcl.attribute_id"))
    elif isinstance(payload, ReadReportingConfiguration):
        for sel in payload.records:
            if sel.direction not in (0, 1):
                raise GbcsEncodeError(
                    "zcl.direction", f"direction {sel.direction!r} is neither 0 nor 1"
                )
            out.append(_u8(sel.direction, "zcl.direction"))
            out.append(_u16le(sel.attribute_id, "zcl.attribute_id"))
    elif isinstance(payload, ReadReportingConfigurationResponse):
        for st in payload.records:
            c = st.configuration
            if c.direction not in (0, 1):
                raise GbcsEncodeError(
                    "zcl.direction", f"direction {c.direction!r} is neither 0 nor 1"
                )
            out.append(_u8(st.status, "zcl.status"))
            out.append(_u8(c.direction, "zcl.direction"))
            out.append(_u16le(c.attribute_id, "zcl.attribute_id"))
            if st.status == cat.ZCL_STATUS_SUCCESS:
                out.extend(_enc_reporting_body(c))
            elif c != ReportingConfiguration(c.direction, c.attribute_id):
                raise GbcsEncodeError(
                    "zcl.reporting", "a failed record carries only direction and id"
                )
    elif isinstance(payload, DefaultResponse):
        out = [_u8(payload.command_id, "zcl.command_id"), _u8(payload.status, "zcl.status")]
    elif isinstance(payload, DiscoverAttributes):
        out = [
            _u16le(payload.start_attribute_id, "zcl.attribute_id"),
            _u8(payload.max_attributes, "zcl.max_attributes"),
        ]
    elif isinstance(payload, DiscoverAttributesResponse):
        out = [b"\x01" if payload.complete else b"\x00"]
        for info in payload.attributes:
            out.append(_u16le(info.attribute_id, "zcl.attribute_id"))
            out.append(_u8(info.type_id, "zcl.data_type"))
    return b"".join(out)


def encode_zcl_frame(frame: ZclFrame) -> bytes:
    return encode_zcl_header(frame.header) + encode_zcl_payload(frame.header, frame.payload)


# --- JSON view ------------------------------------------------------------------


def value_to_json(v: ZclValue) -> object:
    """JSON-able view of a value: text for char strings, hex for octets, ISO for UTC."""
    val = v.value
    if isinstance(val, tuple):
        return [value_to_json(x) for x in val]
    if val is None or isinstance(val, bool):
        return val
    if isinstance(val, bytes):
        if v.type_id in cat.ZCL_TEXT_TYPES:
            return val.decode("utf-8", "backslashreplace")
        return val.hex().upper()
    if v.type_id == cat.ZCL_TYPE_UTC_TIME:
        return utc_seconds_iso(val)
    return val


def _typed_json(cluster_id: int, attribute_id: int, v: ZclValue) -> dict[str, object]:
    t = _TYPES[v.type_id]
    out: dict[str, object] = {
        "id": f"0x{attribute_id:04X}",
        "name": cat.attribute_name(cluster_id, attribute_id),
        "type": t.name,
        "value": value_to_json(v),
    }
    if v.type_id in cat.ZCL_FLOAT_TYPES and isinstance(v.value, int):
        fmt = cat.ZCL_FLOAT_TYPES[v.type_id]
        out["float"] = struct.unpack(fmt, v.value.to_bytes(t.size, "little"))[0]
    return out


def _status_json(status: int) -> str:
    name = cat.ZCL_STATUS.get(status)
    return f"0x{status:02X}" + (f" {name}" if name else "")


def _reporting_json(cluster_id: int, c: ReportingConfiguration) -> dict[str, object]:
    out: dict[str, object] = {
        "direction": c.direction,
        "attribute": {
            "id": f"0x{c.attribute_id:04X}",
            "name": cat.attribute_name(cluster_id, c.attribute_id),
        },
    }
    if c.data_type is not None:
        out["type"] = _TYPES[c.data_type].name
        out["min_interval"] = c.min_interval
        out["max_interval"] = c.max_interval
        if c.reportable_change is not None:
            out["reportable_change"] = value_to_json(c.reportable_change)
    if c.timeout is not None:
        out["timeout"] = c.timeout
    return out


def payload_to_json(cluster_id: int, header: ZclHeader, payload: ZclPayload) -> dict[str, object]:
    """JSON-able view of a payload with attribute, status and command names."""
    if isinstance(payload, RawPayload):
        return {"raw": payload.data.hex().upper()}
    if isinstance(payload, ReadAttributes):
        return {
            "attributes": [
                {"id": f"0x{a:04X}", "name": cat.attribute_name(cluster_id, a)}
                for a in payload.attribute_ids
            ]
        }
    if isinstance(payload, ReadAttributesResponse):
        recs: list[dict[str, object]] = []
        for rec in payload.records:
            if rec.value is None:
                recs.append(
                    {
                        "id": f"0x{rec.attribute_id:04X}",
                        "name": cat.attribute_name(cluster_id, rec.attribute_id),
                        "status": _status_json(rec.status),
                    }
                )
            else:
                d = _typed_json(cluster_id, rec.attribute_id, rec.value)
                d["status"] = _status_json(rec.status)
                recs.append(d)
        return {"records": recs}
    if isinstance(payload, WriteAttributes | ReportAttributes):
        return {
            "records": [_typed_json(cluster_id, r.attribute_id, r.value) for r in payload.records]
        }
    if isinstance(payload, WriteAttributesResponse):
        return {
            "records": [
                {
                    "status": _status_json(s.status),
                    "id": None if s.attribute_id is None else f"0x{s.attribute_id:04X}",
                }
                for s in payload.records
            ]
        }
    if isinstance(payload, ConfigureReporting):
        return {"records": [_reporting_json(cluster_id, c) for c in payload.records]}
    if isinstance(payload, ConfigureReportingResponse):
        return {
            "records": [
                {
                    "status": _status_json(s.status),
                    "direction": s.direction,
                    "id": None if s.attribute_id is None else f"0x{s.attribute_id:04X}",
                }
                for s in payload.records
            ]
        }
    if isinstance(payload, ReadReportingConfiguration):
        return {
            "records": [
                {"direction": s.direction, "id": f"0x{s.attribute_id:04X}"} for s in payload.records
            ]
        }
    if isinstance(payload, ReadReportingConfigurationResponse):
        return {
            "records": [
                {"status": _status_json(s.status), **_reporting_json(cluster_id, s.configuration)}
                for s in payload.records
            ]
        }
    if isinstance(payload, DefaultResponse):
        # The answered command travelled the other way; it may be cluster-specific.
        answered = cat.command_name(
            cluster_id, cat.ZCL_FRAME_TYPE_CLUSTER, not header.server_to_client, payload.command_id
        )
        return {
            "command": {"id": f"0x{payload.command_id:02X}", "name": answered},
            "status": _status_json(payload.status),
        }
    if isinstance(payload, DiscoverAttributes):
        return {"start": f"0x{payload.start_attribute_id:04X}", "max": payload.max_attributes}
    return {
        "complete": payload.complete,
        "attributes": [
            {
                "id": f"0x{i.attribute_id:04X}",
                "name": cat.attribute_name(cluster_id, i.attribute_id),
                "type": _TYPES[i.type_id].name if i.type_id in _TYPES else f"0x{i.type_id:02X}",
            }
            for i in payload.attributes
        ],
    }


def header_to_json(cluster_id: int, h: ZclHeader) -> dict[str, object]:
    return {
        "frame_control": f"0x{h.frame_control:02X}",
        "frame_type": "general" if h.is_global else "cluster-specific",
        "direction": "server-to-client" if h.server_to_client else "client-to-server",
        "disable_default_response": h.disable_default_response,
        "manufacturer_code": None
        if h.manufacturer_code is None
        else f"0x{h.manufacturer_code:04X}",
        "sequence": h.sequence,
        "command": {
            "id": f"0x{h.command_id:02X}",
            "name": cat.command_name(cluster_id, h.frame_type, h.server_to_client, h.command_id),
        },
    }
