"""DLMS COSEM APDUs carried as GBCS content (gbcs-facts 3.1): typed decode and encode.

Three APDUs occur in GBCS: access-request (0xD9, commands), access-response
(0xDA, responses) and data-notification (0x0F, alerts).  Decoding consumes
every byte of the content and reports absolute offsets; encoding rebuilds the
bytes from the typed objects alone, byte-exact for every RTDS message.

Sensitive values come back as Data Protection blocks (gbcs-facts 3.1.6);
:func:`encrypted_blocks` finds them so the security layer can decrypt them
and decode the plaintext with :func:`gbhil.gbcs.axdr.decode_data_all`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeAlias

from gbhil.gbcs.axdr import (
    DATE_TIME_LEN,
    Array,
    Data,
    DlmsDateTime,
    Enum,
    JsonValue,
    OctetString,
    Structure,
    Uint16,
    data_to_json,
    decode_data,
    decode_datetime,
    encode_data,
    encode_datetime,
    iter_data,
    read_length,
)
from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.kdf import SC_ENCRYPTED
from gbhil.gbcs.obis import COSEM_CLASSES, OBIS_NAMES
from gbhil.gbcs.reader import Reader, encode_length

# --- APDU tags and catalogues ------------------------------------------------------------
TAG_ACCESS_REQUEST = 0xD9
TAG_ACCESS_RESPONSE = 0xDA
TAG_DATA_NOTIFICATION = 0x0F

#: Tag -> the name shown in JSON.
APDU_NAMES: dict[int, str] = {
    TAG_ACCESS_REQUEST: "access-request",
    TAG_ACCESS_RESPONSE: "access-response",
    TAG_DATA_NOTIFICATION: "data-notification",
}

#: long-invoke-id-and-priority: bits 0-23 are the invoke id (GBCS: low 24 bits of the
#: Originator Counter); the top byte holds flags, 0x20 in every RTDS APDU (gbcs-facts 3.1.1).
INVOKE_ID_MASK = 0x00FFFFFF
GBCS_INVOKE_FLAGS = 0x20000000

#: Security control byte that opens an encrypted block (gbcs-facts 2.5, 3.1.6).
_SC_ENCRYPTED_BYTE = bytes((SC_ENCRYPTED,))

#: Length of a COSEM logical name (OBIS code).
OBIS_LEN = 6


class RequestKind(IntEnum):
    """Access-Request-Specification CHOICE (DLMS Green Book)."""

    GET = 1
    SET = 2
    ACTION = 3
    GET_WITH_SELECTION = 4
    SET_WITH_SELECTION = 5


class ResponseKind(IntEnum):
    """Access-Response-Specification CHOICE."""

    GET = 1
    SET = 2
    ACTION = 3


REQUEST_KIND_NAMES: dict[int, str] = {
    RequestKind.GET: "get",
    RequestKind.SET: "set",
    RequestKind.ACTION: "action",
    RequestKind.GET_WITH_SELECTION: "get-with-selection",
    RequestKind.SET_WITH_SELECTION: "set-with-selection",
}
RESPONSE_KIND_NAMES: dict[int, str] = {
    ResponseKind.GET: "get",
    ResponseKind.SET: "set",
    ResponseKind.ACTION: "action",
}
_REQUEST_KINDS: dict[int, RequestKind] = {int(k): k for k in RequestKind}
_RESPONSE_KINDS: dict[int, ResponseKind] = {int(k): k for k in ResponseKind}
_SELECTION_KINDS = (RequestKind.GET_WITH_SELECTION, RequestKind.SET_WITH_SELECTION)

#: Data-Access-Result (get/set) names; RTDS uses 0, 1 and 250 [C], the rest is Green Book.
DATA_ACCESS_RESULTS: dict[int, str] = {
    0: "success",
    1: "hardware-fault",
    2: "temporary-failure",
    3: "read-write-denied",
    4: "object-undefined",
    9: "object-class-inconsistent",
    11: "object-unavailable",
    12: "type-unmatched",
    13: "scope-of-access-violated",
    14: "data-block-unavailable",
    15: "long-get-aborted",
    16: "no-long-get-in-progress",
    17: "long-set-aborted",
    18: "no-long-set-in-progress",
    19: "data-block-number-invalid",
    250: "other-reason",
}
#: Action-Result names.
ACTION_RESULTS: dict[int, str] = {
    0: "success",
    1: "hardware-fault",
    2: "temporary-failure",
    3: "read-write-denied",
    4: "object-undefined",
    9: "object-class-inconsistent",
    11: "object-unavailable",
    12: "type-unmatched",
    13: "scope-of-access-violated",
    14: "data-block-unavailable",
    15: "long-action-aborted",
    16: "no-long-action-in-progress",
    250: "other-reason",
}


# --- typed APDUs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One Access-Request-Specification entry.

    ``index`` is the attribute id (get/set) or method id (action).  The two
    ``*_WITH_SELECTION`` kinds also carry ``selector`` and ``selection`` (the
    Selective-Access-Descriptor: access-selector and access-parameters).
    """

    kind: RequestKind
    class_id: int
    obis: bytes
    index: int
    selector: int | None = None
    selection: Data | None = None

    @property
    def obis_text(self) -> str:
        return format_obis(self.obis)


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """One Access-Response-Specification entry: kind and result code."""

    kind: ResponseKind
    result: int

    @property
    def result_name(self) -> str:
        table = ACTION_RESULTS if self.kind == ResponseKind.ACTION else DATA_ACCESS_RESULTS
        return table.get(self.result, f"result-{self.result}")


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """access-request (0xD9): one Data per request spec (null-data for gets)."""

    long_invoke_id: int
    specs: tuple[RequestSpec, ...]
    data: tuple[Data, ...]
    date_time: DlmsDateTime | None = None
    tag: ClassVar[int] = TAG_ACCESS_REQUEST

    @property
    def invoke_id(self) -> int:
        return self.long_invoke_id & INVOKE_ID_MASK


@dataclass(frozen=True, slots=True)
class AccessResponse:
    """access-response (0xDA): data and result per request, optional echoed request specs."""

    long_invoke_id: int
    data: tuple[Data, ...]
    results: tuple[ResponseSpec, ...]
    date_time: DlmsDateTime | None = None
    request_specs: tuple[RequestSpec, ...] | None = None
    tag: ClassVar[int] = TAG_ACCESS_RESPONSE

    @property
    def invoke_id(self) -> int:
        return self.long_invoke_id & INVOKE_ID_MASK


@dataclass(frozen=True, slots=True)
class DataNotification:
    """data-notification (0x0F): the alert body, one Data value (gbcs-facts 3.1.5)."""

    long_invoke_id: int
    body: Data
    date_time: DlmsDateTime | None = None
    tag: ClassVar[int] = TAG_DATA_NOTIFICATION

    @property
    def invoke_id(self) -> int:
        return self.long_invoke_id & INVOKE_ID_MASK


DlmsApdu: TypeAlias = AccessRequest | AccessResponse | DataNotification


def gbcs_invoke_id(originator_counter: int) -> int:
    """The long-invoke-id GBCS derives from a message's Originator Counter (pitfall 8)."""
    return GBCS_INVOKE_FLAGS | (originator_counter & INVOKE_ID_MASK)


# --- OBIS text ---------------------------------------------------------------------------


def format_obis(obis: bytes) -> str:
    """``a-b:c.d.e.f`` (decimal value groups)."""
    if len(obis) != OBIS_LEN:
        return obis.hex().upper()
    return "{}-{}:{}.{}.{}.{}".format(*obis)


def parse_obis(text: str) -> bytes:
    """Inverse of :func:`format_obis`; ValueError on malformed text."""
    ab, sep, rest = text.partition(":")
    parts = [*ab.split("-"), *rest.split(".")]
    if not sep or len(parts) != OBIS_LEN:
        raise ValueError(f"not an OBIS code: {text!r}")
    return bytes(int(p) for p in parts)


# --- decoding ----------------------------------------------------------------------------


def _dec_date_time(r: Reader, field: str) -> DlmsDateTime | None:
    at = r.offset
    n = read_length(r, field)
    if n == 0:
        return None
    if n != DATE_TIME_LEN:
        raise GbcsDecodeError(field, at, f"date-time must be empty or 12 bytes, not {n}")
    return decode_datetime(r.take(DATE_TIME_LEN, field))


def _dec_request_specs(r: Reader) -> tuple[RequestSpec, ...]:
    n = read_length(r, "request-spec count")
    specs: list[RequestSpec] = []
    for _ in range(n):
        at = r.offset
        k = r.u8("request-spec kind")
        kind = _REQUEST_KINDS.get(k)
        if kind is None:
            raise GbcsDecodeError("request-spec kind", at, f"unknown choice {k}")
        class_id = r.u16("request-spec class-id")
        obis = r.take(OBIS_LEN, "request-spec obis")
        index = r.u8("request-spec index")
        if kind in _SELECTION_KINDS:
            selector = r.u8("request-spec access-selector")
            specs.append(RequestSpec(kind, class_id, obis, index, selector, decode_data(r)))
        else:
            specs.append(RequestSpec(kind, class_id, obis, index))
    return tuple(specs)


def _dec_data_list(r: Reader, field: str) -> tuple[Data, ...]:
    at = r.offset
    n = read_length(r, field + " count")
    if n > r.remaining:
        raise GbcsDecodeError(field + " count", at, f"{n} values cannot fit")
    return tuple([decode_data(r) for _ in range(n)])


def _check_count(what: str, at: int, got: int, want: int) -> None:
    if got != want:
        raise GbcsDecodeError(what, at, f"{got} entries for {want} request(s)")


def _dec_access_request(r: Reader) -> AccessRequest:
    invoke = r.u32("long-invoke-id-and-priority")
    date_time = _dec_date_time(r, "date-time")
    specs = _dec_request_specs(r)
    at = r.offset
    data = _dec_data_list(r, "access-request data")
    _check_count("access-request data count", at, len(data), len(specs))
    return AccessRequest(invoke, specs, data, date_time)


def _dec_access_response(r: Reader) -> AccessResponse:
    invoke = r.u32("long-invoke-id-and-priority")
    date_time = _dec_date_time(r, "date-time")
    at = r.offset
    present = r.u8("access-request-specification presence")
    if present == 0:
        specs = None
    elif present == 1:
        specs = _dec_request_specs(r)
    else:
        raise GbcsDecodeError(
            "access-request-specification presence", at, f"expected 0x00/0x01, found {present}"
        )
    at = r.offset
    data = _dec_data_list(r, "access-response data")
    if specs is not None:
        _check_count("access-response data count", at, len(data), len(specs))
    at = r.offset
    n = read_length(r, "response-spec count")
    _check_count("response-spec count", at, n, len(data))
    results: list[ResponseSpec] = []
    for _ in range(n):
        kat = r.offset
        k = r.u8("response-spec kind")
        kind = _RESPONSE_KINDS.get(k)
        if kind is None:
            raise GbcsDecodeError("response-spec kind", kat, f"unknown choice {k}")
        results.append(ResponseSpec(kind, r.u8("response-spec result")))
    return AccessResponse(invoke, data, tuple(results), date_time, specs)


def _dec_data_notification(r: Reader) -> DataNotification:
    invoke = r.u32("long-invoke-id-and-priority")
    date_time = _dec_date_time(r, "date-time")
    return DataNotification(invoke, decode_data(r), date_time)


def decode_dlms(content: bytes, base: int = 0) -> DlmsApdu:
    """Decode a whole DLMS content field; ``base`` = absolute offset of ``content[0]``."""
    r = Reader(content, base=base)
    tag = r.u8("dlms apdu tag")
    if tag == TAG_ACCESS_REQUEST:
        apdu: DlmsApdu = _dec_access_request(r)
    elif tag == TAG_ACCESS_RESPONSE:
        apdu = _dec_access_response(r)
    elif tag == TAG_DATA_NOTIFICATION:
        apdu = _dec_data_notification(r)
    else:
        raise GbcsDecodeError("dlms apdu tag", base, f"not a GBCS DLMS APDU tag: 0x{tag:02X}")
    r.expect_end(APDU_NAMES[tag])
    return apdu


# --- encoding ----------------------------------------------------------------------------


def _u(v: object, size: int, field: str) -> bytes:
    if type(v) is not int and not isinstance(v, IntEnum):
        raise GbcsEncodeError(field, f"must be int, got {type(v).__name__}")
    try:
        return int(v).to_bytes(size, "big")
    except OverflowError:
        raise GbcsEncodeError(field, f"{v} does not fit in {size} unsigned byte(s)") from None


def _enc_date_time(dt: DlmsDateTime | None) -> bytes:
    return b"\x00" if dt is None else bytes((DATE_TIME_LEN,)) + encode_datetime(dt)


def _enc_request_specs(specs: tuple[RequestSpec, ...], out: list[bytes]) -> None:
    out.append(encode_length(len(specs), "request-spec count"))
    for s in specs:
        if s.kind not in _REQUEST_KINDS:
            raise GbcsEncodeError("request-spec kind", f"unknown kind {s.kind!r}")
        if not isinstance(s.obis, bytes) or len(s.obis) != OBIS_LEN:
            raise GbcsEncodeError("request-spec obis", f"needs {OBIS_LEN} bytes, got {s.obis!r}")
        out.append(
            _u(s.kind, 1, "request-spec kind")
            + _u(s.class_id, 2, "request-spec class-id")
            + s.obis
            + _u(s.index, 1, "request-spec index")
        )
        with_selection = s.kind in _SELECTION_KINDS
        if with_selection != (s.selector is not None) or with_selection != (
            s.selection is not None
        ):
            raise GbcsEncodeError(
                "request-spec selection",
                f"{REQUEST_KIND_NAMES[s.kind]} {'needs' if with_selection else 'has no'} "
                "selector and selection",
            )
        if s.selector is not None and s.selection is not None:
            out.append(_u(s.selector, 1, "request-spec access-selector"))
            out.append(encode_data(s.selection))


def _enc_data_list(data: tuple[Data, ...], out: list[bytes]) -> None:
    out.append(encode_length(len(data), "data count"))
    out.extend(encode_data(d) for d in data)


def encode_dlms(apdu: DlmsApdu) -> bytes:
    """The content bytes of ``apdu``; GbcsEncodeError when a field cannot be represented."""
    out: list[bytes] = []
    if isinstance(apdu, AccessRequest):
        if len(apdu.data) != len(apdu.specs):
            raise GbcsEncodeError("access-request", "needs one data value per request spec")
        out.append(b"\xd9" + _u(apdu.long_invoke_id, 4, "long-invoke-id"))
        out.append(_enc_date_time(apdu.date_time))
        _enc_request_specs(apdu.specs, out)
        _enc_data_list(apdu.data, out)
    elif isinstance(apdu, AccessResponse):
        if len(apdu.results) != len(apdu.data) or (
            apdu.request_specs is not None and len(apdu.request_specs) != len(apdu.data)
        ):
            raise GbcsEncodeError("access-response", "data, results and specs counts differ")
        out.append(b"\xda" + _u(apdu.long_invoke_id, 4, "long-invoke-id"))
        out.append(_enc_date_time(apdu.date_time))
        if apdu.request_specs is None:
            out.append(b"\x00")
        else:
            out.append(b"\x01")
            _enc_request_specs(apdu.request_specs, out)
        _enc_data_list(apdu.data, out)
        out.append(encode_length(len(apdu.results), "response-spec count"))
        for res in apdu.results:
            if res.kind not in _RESPONSE_KINDS:
                raise GbcsEncodeError("response-spec kind", f"unknown kind {res.kind!r}")
            out.append(_u(res.kind, 1, "response-spec kind") + _u(res.result, 1, "result"))
    elif isinstance(apdu, DataNotification):
        out.append(b"\x0f" + _u(apdu.long_invoke_id, 4, "long-invoke-id"))
        out.append(_enc_date_time(apdu.date_time))
        out.append(encode_data(apdu.body))
    else:
        raise GbcsEncodeError("dlms", f"not a DLMS APDU: {apdu!r}")
    return b"".join(out)


# --- protected data ----------------------------------------------------------------------


def _apdu_values(apdu: DlmsApdu) -> tuple[Data, ...]:
    if isinstance(apdu, DataNotification):
        return (apdu.body,)
    return apdu.data


def _is_protection_params(d: Data) -> bool:
    """An array of structure(2){enum protection type, structure options} (3.1.6)."""
    return (
        isinstance(d, Array)
        and bool(d.items)
        and all(
            isinstance(p, Structure) and len(p.items) == 2 and isinstance(p.items[0], Enum)
            for p in d.items
        )
    )


def encrypted_blocks(apdu: DlmsApdu) -> list[bytes]:
    """Every ``31 || IC(4) || ciphertext || tag(12)`` block, in message order.

    A block is an octet-string starting with the 0x31 security control byte
    that directly follows the protection-parameters array in the same
    structure.  Responses wrap the pair in a structure(2) (gbcs-facts 3.1.6);
    the ECS68 alert puts both straight into its body, structure(4){alert code,
    timestamp, parameters, block} (RTDS ECS68_NA_8F0A), so adjacency is matched,
    not a fixed structure size.
    """
    blocks: list[bytes] = []
    for top in _apdu_values(apdu):
        for d in iter_data(top):
            if not isinstance(d, Structure):
                continue
            items = d.items
            for i in range(1, len(items)):
                block = items[i]
                if (
                    isinstance(block, OctetString)
                    and block.value[:1] == _SC_ENCRYPTED_BYTE
                    and _is_protection_params(items[i - 1])
                ):
                    blocks.append(block.value)
    return blocks


def alert_code(apdu: DlmsApdu) -> int | None:
    """The GBCS alert code of a data-notification: the leading uint16 of its body (3.1.5)."""
    if isinstance(apdu, DataNotification):
        body = apdu.body
        if isinstance(body, Structure) and body.items and isinstance(body.items[0], Uint16):
            return body.items[0].value
    return None


# --- display -----------------------------------------------------------------------------


def _spec_to_json(s: RequestSpec) -> dict[str, JsonValue]:
    obis = format_obis(s.obis)
    out: dict[str, JsonValue] = {
        "kind": REQUEST_KIND_NAMES.get(s.kind, str(s.kind)),
        "class_id": s.class_id,
        "class": COSEM_CLASSES.get(s.class_id),
        "obis": obis,
        "name": OBIS_NAMES.get(obis),
        ("method" if s.kind == RequestKind.ACTION else "attribute"): s.index,
    }
    if s.selector is not None:
        out["selector"] = s.selector
    if s.selection is not None:
        out["selection"] = data_to_json(s.selection)
    return out


def dlms_to_json(apdu: DlmsApdu) -> dict[str, JsonValue]:
    """A readable, JSON-able view of ``apdu`` (names from the OBIS/class catalogue)."""
    out: dict[str, JsonValue] = {
        "apdu": APDU_NAMES[apdu.tag],
        "long_invoke_id": f"0x{apdu.long_invoke_id:08X}",
        "invoke_id": apdu.invoke_id,
        "date_time": None if apdu.date_time is None else apdu.date_time.text(),
    }
    if isinstance(apdu, AccessRequest):
        out["requests"] = [_spec_to_json(s) for s in apdu.specs]
        out["data"] = [data_to_json(d) for d in apdu.data]
    elif isinstance(apdu, AccessResponse):
        if apdu.request_specs is not None:
            out["requests"] = [_spec_to_json(s) for s in apdu.request_specs]
        out["data"] = [data_to_json(d) for d in apdu.data]
        out["results"] = [
            {
                "kind": RESPONSE_KIND_NAMES.get(r.kind, str(r.kind)),
                "result": r.result,
                "name": r.result_name,
            }
            for r in apdu.results
        ]
    else:
        out["body"] = data_to_json(apdu.body)
    return out
