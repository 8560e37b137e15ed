"""Shared machinery of the payload builders: request fields, DLMS/GBZ/ASN.1 helpers.

A builder turns one DUIS request body into the GBCS ``content`` of one use case. It sees
a :class:`BuildContext` (the body, the GBCS header values the DSP chose, the clock) and
returns bytes; the envelope (General Signing, MAC, signature) is the caller's business.
Builders register themselves per GBCS use case with :func:`builder`, so the catalogue in
:mod:`gbhil.dcc.mapping` stays plain data.

Encodings follow what the RTDS commands show (checked byte for byte, see
``docs/transform.md``): DLMS date-times as octet-string(12) with day of week, deviation
and clock status unspecified; log ranges as seconds since 2000; GBZ times as
seconds since 2000 little-endian inside ZCL; the DSP's own "now" in every GBZ command
that carries an issuer time.
"""

from __future__ import annotations

import datetime as dt
import enum
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from gbhil.duis.schema import SR_NS
from gbhil.gbcs import asn1, asn1_schemas, dlms, gbz, zcl
from gbhil.gbcs.axdr import (
    NULL,
    Array,
    Data,
    Int8,
    OctetString,
    Structure,
    Uint16,
    Uint32,
)
from gbhil.gbcs.axdr import Enum as DlmsEnum
from gbhil.gbcs.errors import GbcsEncodeError
from gbhil.gbcs.frame import Cra

#: DUIS writes a cancellation of a future-dated command as this ExecutionDateTime.
CANCELLATION_DATE = dt.date(3000, 12, 31)
#: ZCL UTCTime and GBZ from-date-times count from here.
EPOCH_2000 = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
#: DLMS date-time "execute now" / "never" (GBCS future-dated activation patterns).
DLMS_NOW = bytes(9) + b"\x80\x00\xff"
DLMS_NEVER = b"\xff" * 9 + b"\x80\x00\xff"
#: GBZ from-date-time / ZCL start time meaning "now" and "never/cancel".
GBZ_NOW = 0
GBZ_NEVER = 0xFFFFFFFF
#: ASN.1 GeneralizedTime that cancels CS02b/CS06 (gbhil.gbcs.asn1_schemas).
ASN1_CANCEL = asn1_schemas.CANCEL_EXECUTION_TIME

#: ZCL frame control values GBCS commands use: 0x00 general client->server, 0x01
#: cluster-specific client->server, 0x09 cluster-specific server->client (the DSP acting as
#: the Price/Calendar/Messaging server).
FC_GENERAL = 0x00
FC_CLIENT = 0x01
FC_SERVER = 0x09
#: ZCL Read Attributes command id.
ZCL_READ_ATTRIBUTES = 0x00


class BuildError(Exception):
    """The body cannot be turned into a payload; ``response_code`` is the DUIS answer."""

    def __init__(self, message: str, response_code: str = "E49") -> None:
        super().__init__(message)
        self.response_code = response_code


class When(enum.Enum):
    """How a device-future-dated command is to execute."""

    NOW = "now"
    AT = "at"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Execution:
    """ExecutionDateTime as the payload needs it (only for "Device" future dating)."""

    when: When
    at: dt.datetime | None = None


IMMEDIATE = Execution(When.NOW)


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Everything a payload builder may use."""

    use_case: str
    message_code: int
    body: etree._Element
    counter: int
    originator: bytes
    target: bytes
    requester: bytes
    now: dt.datetime
    execution: Execution
    device_type: str
    cin: str
    #: Device type of another device (joins name the device to join with).
    other_device_type: Callable[[str], str | None] = lambda eui: None
    #: SMKI repository lookup: (EUI, "KA" | "DS") -> DER certificate.
    certificate: Callable[[str, str], bytes | None] | None = None


Builder = Callable[[BuildContext], bytes]
BUILDERS: dict[str, Builder] = {}


def builder(*use_cases: str) -> Callable[[Builder], Builder]:
    """Register ``fn`` as the payload builder of ``use_cases``."""

    def register(fn: Builder) -> Builder:
        for uc in use_cases:
            if uc in BUILDERS:
                raise ValueError(f"two builders for {uc}")
            BUILDERS[uc] = fn
        return fn

    return register


# --- request body fields -----------------------------------------------------------------


def _path(path: str) -> str:
    return "/".join(f"{{{SR_NS}}}{p}" for p in path.split("/"))


def find(body: etree._Element, path: str) -> etree._Element | None:
    """The element at ``path`` ("A/B", sr: namespace implied), or None."""
    return body.find(_path(path))


def find_all(body: etree._Element, path: str) -> list[etree._Element]:
    return body.findall(_path(path))


def has(body: etree._Element, path: str) -> bool:
    return find(body, path) is not None


def opt_text(body: etree._Element, path: str) -> str | None:
    e = find(body, path)
    return None if e is None else (e.text or "").strip()


def text(body: etree._Element, path: str) -> str:
    value = opt_text(body, path)
    if value is None:
        raise BuildError(f"{etree.QName(body).localname} has no {path}")
    return value


def integer(body: etree._Element, path: str) -> int:
    raw = text(body, path)
    try:
        return int(raw)
    except ValueError:
        raise BuildError(f"{path} {raw!r} is not an integer") from None


def opt_integer(body: etree._Element, path: str) -> int | None:
    return None if find(body, path) is None else integer(body, path)


def decimal(body: etree._Element, path: str) -> Decimal:
    raw = text(body, path)
    try:
        return Decimal(raw)
    except InvalidOperation:
        raise BuildError(f"{path} {raw!r} is not a number") from None


def scaled(value: Decimal, places: int, what: str) -> int:
    """``value`` x 10^places as an exact integer (DUIS decimals -> GBCS fixed point)."""
    out = value.scaleb(places)
    if out != out.to_integral_value():
        raise BuildError(f"{what} {value} has more than {places} decimal places")
    return int(out)


def boolean(body: etree._Element, path: str) -> bool:
    raw = text(body, path)
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise BuildError(f"{path} {raw!r} is not a boolean")


def parse_datetime(raw: str, what: str) -> dt.datetime:
    """xs:dateTime (no zone means UTC) as an aware UTC datetime."""
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BuildError(f"{what} {raw!r} is not a date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def datetime_field(body: etree._Element, path: str) -> dt.datetime:
    return parse_datetime(text(body, path), path)


def time_field(body: etree._Element, path: str) -> dt.time:
    """xs:time such as ``09:30:00.00Z`` (UTC; the zone is dropped)."""
    raw = text(body, path).removesuffix("Z")
    try:
        return dt.time.fromisoformat(raw)
    except ValueError:
        raise BuildError(f"{path} {raw!r} is not a time") from None


def log_period(body: etree._Element) -> tuple[dt.datetime, dt.datetime]:
    """``ReadLogPeriod`` start and end."""
    start = datetime_field(body, "ReadLogPeriod/StartDateTime")
    end = datetime_field(body, "ReadLogPeriod/EndDateTime")
    if end < start:
        raise BuildError("ReadLogPeriod ends before it starts")
    return start, end


def execution_of(body: etree._Element) -> tuple[Execution, dt.datetime | None]:
    """The body's ExecutionDateTime: (Execution, raw datetime or None)."""
    raw = opt_text(body, "ExecutionDateTime")
    if raw is None:
        return IMMEDIATE, None
    at = parse_datetime(raw, "ExecutionDateTime")
    if at.date() >= CANCELLATION_DATE:
        return Execution(When.CANCEL, at), at
    return Execution(When.AT, at), at


def eui_bytes(raw: str, what: str = "DeviceID") -> bytes:
    clean = raw.replace("-", "").strip()
    if len(clean) != 16:
        raise BuildError(f"{what} {raw!r} is not an EUI-64")
    try:
        return bytes.fromhex(clean)
    except ValueError:
        raise BuildError(f"{what} {raw!r} is not an EUI-64") from None


def seconds_2000(when: dt.datetime) -> int:
    """Whole seconds since 2000-01-01 UTC (ZCL UTCTime, DLMS range selection)."""
    seconds = int((when - EPOCH_2000).total_seconds())
    if not 0 <= seconds <= 0xFFFFFFFE:
        raise BuildError(f"{when.isoformat()} is outside the 32-bit time range of GBCS")
    return seconds


def utc_le(when: dt.datetime) -> bytes:
    """ZCL UTCTime: seconds since 2000, 4 bytes little-endian."""
    return struct.pack("<I", seconds_2000(when))


# --- DLMS --------------------------------------------------------------------------------

OBIS = str  # "a-b:c.d.e.f"


def dlms_datetime(when: dt.datetime) -> bytes:
    """12-byte DLMS date-time the way GBCS commands carry it (dow/deviation unspecified)."""
    when = when.astimezone(dt.UTC)
    return struct.pack(
        ">HBBBBBBBhB",
        when.year, when.month, when.day, 0xFF, when.hour, when.minute, when.second,
        when.microsecond // 10000, -0x8000, 0xFF,
    )


def dlms_execution(execution: Execution) -> bytes:
    """Execution date-time octets: now, never (cancel) or the date-time."""
    if execution.when is When.NOW:
        return DLMS_NOW
    if execution.when is When.CANCEL:
        return DLMS_NEVER
    assert execution.at is not None
    return dlms_datetime(execution.at)


def obis(text_: OBIS) -> bytes:
    return dlms.parse_obis(text_)


def get(class_id: int, logical_name: OBIS, attribute: int) -> tuple[dlms.RequestSpec, Data]:
    return dlms.RequestSpec(dlms.RequestKind.GET, class_id, obis(logical_name), attribute), NULL


def set_(
    class_id: int, logical_name: OBIS, attribute: int, value: Data
) -> tuple[dlms.RequestSpec, Data]:
    return dlms.RequestSpec(dlms.RequestKind.SET, class_id, obis(logical_name), attribute), value


#: The "no parameter" argument GBCS actions carry.
NO_PARAMETER = Int8(0)


def action(
    class_id: int, logical_name: OBIS, method: int, value: Data = NO_PARAMETER
) -> tuple[dlms.RequestSpec, Data]:
    spec = dlms.RequestSpec(dlms.RequestKind.ACTION, class_id, obis(logical_name), method)
    return spec, value


#: Restricting object of GBCS range reads: class 1 0-0:94.44.100.255, attribute 2
#: (docs/gbcs.md "where the bytes disagree with the facts sheet").
RANGE_OBJECT = Structure((Uint16(1), OctetString(obis("0-0:94.44.100.255")), Int8(2), Uint16(0)))


def get_range(
    class_id: int, logical_name: OBIS, start: dt.datetime, end: dt.datetime
) -> tuple[dlms.RequestSpec, Data]:
    """Profile read with access selector 1 (range by seconds since 2000)."""
    selection = Structure(
        (RANGE_OBJECT, Uint32(seconds_2000(start)), Uint32(seconds_2000(end)), Array(()))
    )
    spec = dlms.RequestSpec(
        dlms.RequestKind.GET_WITH_SELECTION, class_id, obis(logical_name), 2, 1, selection
    )
    return spec, NULL


def access_request(counter: int, items: Iterable[tuple[dlms.RequestSpec, Data]]) -> bytes:
    """A GBCS access-request: invoke id from the counter, one Data per spec."""
    pairs = list(items)
    apdu = dlms.AccessRequest(
        dlms.gbcs_invoke_id(counter), tuple(s for s, _ in pairs), tuple(d for _, d in pairs)
    )
    return dlms.encode_dlms(apdu)


def fixed_gets(*objects: tuple[int, OBIS, int]) -> Callable[[BuildContext], bytes]:
    """Builder of a read that is a fixed list of gets."""

    def build(ctx: BuildContext) -> bytes:
        return access_request(ctx.counter, (get(c, o, a) for c, o, a in objects))

    return build


#: Data Protection "protection options": agreed key (key info 02, no key ciphered data).
AGREED_KEY = Structure((DlmsEnum(2), Structure((OctetString(b"\x02"), OctetString(b"")))))


def protected_read(
    ctx: BuildContext,
    method_object: OBIS,
    objects: Sequence[tuple[int, OBIS, int]],
    period: tuple[dt.datetime, dt.datetime] | None = None,
) -> bytes:
    """Read through the Data Protection object (class 30, method 1) so the meter encrypts
    the answer for the requester (gbcs-facts 3.1.6)."""
    if period is None:
        selector: Data = Structure((DlmsEnum(0), NULL))
    else:
        selector = Structure(
            (
                DlmsEnum(1),
                Structure(
                    (OctetString(dlms_datetime(period[0])), OctetString(dlms_datetime(period[1])))
                ),
            )
        )
    object_list = Array(
        tuple(
            Structure((Uint16(c), OctetString(obis(o)), Int8(a), Uint16(0), selector))
            for c, o, a in objects
        )
    )
    protection = Array(
        (
            Structure(
                (
                    DlmsEnum(2),
                    Structure(
                        (
                            OctetString(b"\x04" + ctx.counter.to_bytes(8, "big")),
                            OctetString(ctx.requester),
                            OctetString(ctx.target),
                            OctetString(b""),
                            AGREED_KEY,
                        )
                    ),
                )
            ),
        )
    )
    return access_request(
        ctx.counter, [action(30, method_object, 1, Structure((object_list, protection)))]
    )


# --- GBZ ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Zcl:
    """One GBZ component before sequence numbering."""

    cluster: int
    frame_control: int
    command: int
    payload: zcl.ZclPayload
    from_datetime: int | None = None


def read_attributes(cluster: int, *attribute_ids: int) -> Zcl:
    return Zcl(cluster, FC_GENERAL, ZCL_READ_ATTRIBUTES, zcl.ReadAttributes(attribute_ids))


def cluster_command(
    cluster: int, command: int, payload: bytes, *, server: bool = False,
    from_datetime: int | None = None,
) -> Zcl:
    fc = FC_SERVER if server else FC_CLIENT
    return Zcl(cluster, fc, command, zcl.RawPayload(payload), from_datetime)


def gbz_message(parts: Iterable[Zcl]) -> bytes:
    """A GBZ command: components numbered 0, 1, 2 ... (gbcs-facts 3.2)."""
    components = tuple(
        gbz.PlainComponent(
            p.cluster, zcl.ZclHeader(p.frame_control, seq, p.command), p.payload, p.from_datetime
        )
        for seq, p in enumerate(parts)
    )
    if not components:
        raise BuildError("a GBZ command needs at least one component")
    return gbz.encode_gbz(gbz.GbzMessage(components))


def fixed_reads(*parts: Zcl) -> Callable[[BuildContext], bytes]:
    """Builder of a GBZ read that is always the same components."""
    encoded = gbz_message(parts)

    def build(ctx: BuildContext) -> bytes:
        return encoded

    return build


def gbz_start(execution: Execution) -> int:
    """GBZ start time: 0 now, 0xFFFFFFFF cancel, else seconds since 2000."""
    if execution.when is When.NOW:
        return GBZ_NOW
    if execution.when is When.CANCEL:
        return GBZ_NEVER
    assert execution.at is not None
    return seconds_2000(execution.at)


def le(value: int, size: int, what: str, *, signed: bool = False) -> bytes:
    try:
        return value.to_bytes(size, "little", signed=signed)
    except OverflowError:
        raise BuildError(f"{what} {value} does not fit in {size} byte(s)") from None


def zcl_string(value: bytes, what: str) -> bytes:
    """ZCL octet/character string: one length byte then the bytes."""
    if len(value) > 0xFE:
        raise BuildError(f"{what} is longer than 254 bytes")
    return bytes((len(value),)) + value


# --- ASN.1 -------------------------------------------------------------------------------


def asn1_command(message_code: int, fields: dict[str, Any]) -> bytes:
    """DER payload of ``message_code`` from named fields (gbhil.gbcs.asn1_schemas)."""
    try:
        return asn1.encode_asn1(asn1_schemas.json_to_asn1(fields, message_code, int(Cra.COMMAND)))
    except GbcsEncodeError as exc:
        raise BuildError(str(exc)) from None


def asn1_time(execution: Execution) -> str | None:
    """GeneralizedTime text of a CS02b/CS06 execution date-time (None: immediate)."""
    if execution.when is When.NOW:
        return None
    if execution.when is When.CANCEL:
        return ASN1_CANCEL
    assert execution.at is not None
    return execution.at.strftime("%Y%m%d%H%M%SZ")
