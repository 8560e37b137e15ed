"""GBZ payloads: ZigBee ZCL frames wrapped for GSME/GPF messages (gbcs-facts 3.2).

Layout (GBZ numbers big-endian, ZCL inside little-endian)::

    01 09 | component count (1)
    [alerts: alert code (2) | timestamp (4, seconds since 2000-01-01 UTC)]
    component* : extended header control (1) | cluster id (2) | length (2)
                 [from date-time (4)]                       if control bit 4
                 [additional header control (1) | frame counter (1)]   if bit 1
                 ZCL header (frame control, [manufacturer code], sequence, command)
                 plain:     ZCL payload
                 encrypted: ciphered length (2) | 31 | IC (4) | ciphertext | tag (12)

Some alerts carry a use-case body instead of components (future-dated
outcome, firmware distribution receipt, meter integrity warning); the alert
code selects it. The typed model holds no raw copy of the message: the
component count, control bits and all lengths are recomputed when encoding,
and decoding rejects anything that would not re-encode to the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.errors import GbcsEncodeError
from gbhil.gbcs.kdf import MAC_LEN, SC_ENCRYPTED
from gbhil.gbcs.reader import Reader, encode_length
from gbhil.gbcs.zcl import (
    ZclHeader,
    ZclPayload,
    decode_zcl_header,
    decode_zcl_payload,
    encode_zcl_header,
    encode_zcl_payload,
    header_to_json,
    payload_to_json,
    utc_seconds_iso,
)

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_IC_LEN = 4
_PROFILE = cat.GBZ_PROFILE_ID.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class PlainComponent:
    """A component whose ZCL payload travels in clear, decoded via :mod:`gbhil.gbcs.zcl`.

    ``from_datetime`` (seconds since 2000, 0 = immediate, 0xFFFFFFFF = never)
    is present exactly when control bit 4 is set.
    """

    cluster_id: int
    header: ZclHeader
    payload: ZclPayload
    from_datetime: int | None = None

    @property
    def encrypted(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class EncryptedComponent:
    """A component whose ZCL payload is an AES-GCM block ``31 || IC(4) || ct || tag(12)``.

    The ZCL header stays in clear so the receiver can route the component
    before decrypting; the decrypted plaintext is the ZCL command payload.
    """

    cluster_id: int
    header: ZclHeader
    block: bytes
    frame_counter: int = 0
    additional_control: int = 0
    from_datetime: int | None = None

    @property
    def encrypted(self) -> bool:
        return True

    @property
    def invocation_counter(self) -> int:
        return int.from_bytes(self.block[1 : 1 + _IC_LEN], "big")

    @property
    def ciphertext(self) -> bytes:
        return self.block[1 + _IC_LEN : -MAC_LEN]

    @property
    def tag(self) -> bytes:
        return self.block[-MAC_LEN:]


GbzComponent: TypeAlias = PlainComponent | EncryptedComponent


@dataclass(frozen=True, slots=True)
class FutureDatedAlertBody:
    """Outcome of a future-dated command (alerts 0x8F66/0x8F67, message code 0x00CD).

    Identifies the executed command by message code, originator counter and
    its ZCL cluster / frame control / command id.
    """

    message_code: int
    originator_counter: int
    cluster_id: int
    frame_control: int
    command_id: int


@dataclass(frozen=True, slots=True)
class FirmwareReceiptAlertBody:
    """Firmware distribution receipt (alert 0x8F72): the hash the device calculated."""

    manufacturer_hash: bytes


@dataclass(frozen=True, slots=True)
class IntegrityWarningAlertBody:
    """Meter integrity issue warning (alert 0x81A0): a 2-byte reason code."""

    reason: int


AlertBody: TypeAlias = FutureDatedAlertBody | FirmwareReceiptAlertBody | IntegrityWarningAlertBody


@dataclass(frozen=True, slots=True)
class GbzAlert:
    """Alert header fields; ``body`` is set for the use-case body variants only."""

    code: int
    timestamp: int
    body: AlertBody | None = None


@dataclass(frozen=True, slots=True)
class GbzMessage:
    """A GBZ payload. ``alert`` is set for alert messages (CRA 0x03)."""

    components: tuple[GbzComponent, ...]
    alert: GbzAlert | None = None

    def control(self, index: int) -> int:
        """Extended header control byte of component ``index`` as it goes on the wire."""
        return _control(self.components[index], index == len(self.components) - 1)


def _control(c: GbzComponent, last: bool) -> int:
    ctrl = cat.GBZ_CTRL_LAST if last else 0
    if isinstance(c, EncryptedComponent):
        ctrl |= cat.GBZ_CTRL_ENCRYPTED
    if c.from_datetime is not None:
        ctrl |= cat.GBZ_CTRL_FROM_DATETIME
    return ctrl


# --- decoding -----------------------------------------------------------------


def _decode_component(r: Reader, last: bool) -> GbzComponent:
    at = r.offset
    ctrl = r.u8("gbz.control")
    if ctrl & ~cat.GBZ_CTRL_KNOWN:
        raise r.error("gbz.control", f"reserved bits set in control 0x{ctrl:02X}", at)
    if bool(ctrl & cat.GBZ_CTRL_LAST) != last:
        reason = "last component lacks" if last else "non-last component has"
        raise r.error("gbz.control", f"{reason} the last-component bit (0x{ctrl:02X})", at)
    cluster = r.uint(2, "gbz.cluster_id")
    length = r.uint(2, "gbz.component_length")
    s = r.sub(length, "gbz.component")
    fdt = s.uint(4, "gbz.from_datetime") if ctrl & cat.GBZ_CTRL_FROM_DATETIME else None
    if ctrl & cat.GBZ_CTRL_ENCRYPTED:
        ahc = s.u8("gbz.additional_header_control")
        counter = s.u8("gbz.additional_frame_counter")
        header = decode_zcl_header(s)
        at = s.offset
        clen = s.uint(2, "gbz.ciphered_length")
        if clen < cat.GBZ_MIN_ENCRYPTED_BLOCK:
            raise s.error("gbz.ciphered_length", f"{clen} is shorter than SC+IC+tag", at)
        at = s.offset
        block = s.take(clen, "gbz.encrypted_block")
        if block[0] != SC_ENCRYPTED:
            raise s.error("gbz.security_control", f"expected 0x31, found 0x{block[0]:02X}", at)
        s.expect_end("gbz.component")
        return EncryptedComponent(cluster, header, block, counter, ahc, fdt)
    header = decode_zcl_header(s)
    return PlainComponent(cluster, header, decode_zcl_payload(s, header), fdt)


def _decode_alert_body(r: Reader, kind: str) -> AlertBody:
    if kind == cat.ALERT_BODY_FUTURE_DATED:
        at = r.offset
        n = r.u8("gbz.future_dated_length")
        if n != cat.GBZ_FUTURE_DATED_BODY_LEN:
            raise r.error("gbz.future_dated_length", f"expected 14, found {n}", at)
        return FutureDatedAlertBody(
            r.uint(2, "gbz.message_code"),
            r.uint(8, "gbz.originator_counter"),
            r.uint(2, "gbz.cluster_id"),
            r.u8("zcl.frame_control"),
            r.u8("zcl.command_id"),
        )
    if kind == cat.ALERT_BODY_FIRMWARE_RECEIPT:
        r.expect(cat.DLMS_OCTET_STRING_TAG, "gbz.hash_tag")
        n = r.length("gbz.hash_length")  # Reader refuses non-minimal forms
        return FirmwareReceiptAlertBody(r.take(n, "gbz.hash"))
    return IntegrityWarningAlertBody(r.uint(2, "gbz.integrity_reason"))


def decode_gbz(content: bytes, *, alert: bool, base: int = 0) -> GbzMessage:
    """Decode a whole GBZ payload; ``base`` is the absolute offset of ``content[0]``.

    Every byte must be consumed and only the last component may carry the
    last-component bit; anything else raises GbcsDecodeError.
    """
    r = Reader(content, base=base)
    at = r.offset
    profile = r.uint(2, "gbz.profile_id")
    if profile != cat.GBZ_PROFILE_ID:
        raise r.error("gbz.profile_id", f"expected 0x0109, found 0x{profile:04X}", at)
    count_at = r.offset
    count = r.u8("gbz.component_count")
    header: GbzAlert | None = None
    if alert:
        code = r.uint(2, "gbz.alert_code")
        ts = r.uint(4, "gbz.alert_timestamp")
        if count == 0:  # generic alert: header only
            r.expect_end("gbz.alert")
            return GbzMessage((), GbzAlert(code, ts))
        kind = cat.GBZ_ALERT_BODY_BY_CODE.get(code)
        if kind is not None:
            if count != 1:
                raise r.error(
                    "gbz.component_count", f"alert body needs count 1, not {count}", count_at
                )
            body = _decode_alert_body(r, kind)
            r.expect_end("gbz.alert")
            return GbzMessage((), GbzAlert(code, ts, body))
        header = GbzAlert(code, ts)
    elif count == 0:
        raise r.error("gbz.component_count", "a GBZ command/response needs a component", count_at)
    last = count - 1
    comps = tuple(_decode_component(r, i == last) for i in range(count))
    r.expect_end("gbz.payload")
    return GbzMessage(comps, header)


# --- encoding -----------------------------------------------------------------


def _check(v: object, limit: int, field: str) -> int:
    if not isinstance(v, int) or not 0 <= v <= limit:
        raise GbcsEncodeError(field, f"{v!r} is not an integer in 0..{limit}")
    return v


def _encode_component(c: GbzComponent, last: bool) -> bytes:
    parts: list[bytes] = []
    if c.from_datetime is not None:
        parts.append(_check(c.from_datetime, _U32, "gbz.from_datetime").to_bytes(4, "big"))
    if isinstance(c, EncryptedComponent):
        block = c.block
        if not isinstance(block, bytes) or len(block) < cat.GBZ_MIN_ENCRYPTED_BLOCK:
            raise GbcsEncodeError("gbz.encrypted_block", "needs SC + IC + tag at least")
        if block[0] != SC_ENCRYPTED:
            raise GbcsEncodeError("gbz.security_control", f"must be 0x31, is 0x{block[0]:02X}")
        parts += (
            bytes(
                (
                    _check(c.additional_control, 0xFF, "gbz.additional_header_control"),
                    _check(c.frame_counter, 0xFF, "gbz.additional_frame_counter"),
                )
            ),
            encode_zcl_header(c.header),
            _check(len(block), _U16, "gbz.ciphered_length").to_bytes(2, "big"),
            block,
        )
    elif isinstance(c, PlainComponent):
        parts += (encode_zcl_header(c.header), encode_zcl_payload(c.header, c.payload))
    else:
        raise GbcsEncodeError("gbz.component", f"not a GBZ component: {type(c).__name__}")
    body = b"".join(parts)
    return (
        bytes((_control(c, last),))
        + _check(c.cluster_id, _U16, "gbz.cluster_id").to_bytes(2, "big")
        + _check(len(body), _U16, "gbz.component_length").to_bytes(2, "big")
        + body
    )


def _encode_alert_body(body: AlertBody) -> bytes:
    if isinstance(body, FutureDatedAlertBody):
        return (
            bytes((cat.GBZ_FUTURE_DATED_BODY_LEN,))
            + _check(body.message_code, _U16, "gbz.message_code").to_bytes(2, "big")
            + _check(body.originator_counter, 2**64 - 1, "gbz.originator_counter").to_bytes(
                8, "big"
            )
            + _check(body.cluster_id, _U16, "gbz.cluster_id").to_bytes(2, "big")
            + bytes(
                (
                    _check(body.frame_control, 0xFF, "zcl.frame_control"),
                    _check(body.command_id, 0xFF, "zcl.command_id"),
                )
            )
        )
    if isinstance(body, FirmwareReceiptAlertBody):
        h = body.manufacturer_hash
        if not isinstance(h, bytes):
            raise GbcsEncodeError("gbz.hash", "must be bytes")
        return bytes((cat.DLMS_OCTET_STRING_TAG,)) + encode_length(len(h), "gbz.hash_length") + h
    if isinstance(body, IntegrityWarningAlertBody):
        return _check(body.reason, _U16, "gbz.integrity_reason").to_bytes(2, "big")
    raise GbcsEncodeError("gbz.alert_body", f"not an alert body: {type(body).__name__}")


def encode_gbz(msg: GbzMessage) -> bytes:
    """Wire bytes of ``msg``; count, control bits and lengths are derived from the fields."""
    comps = msg.components
    a = msg.alert
    alert_head = b""
    if a is None:
        if not comps:
            raise GbcsEncodeError("gbz.components", "a GBZ command/response needs a component")
    else:
        alert_head = _check(a.code, _U16, "gbz.alert_code").to_bytes(2, "big")
        alert_head += _check(a.timestamp, _U32, "gbz.alert_timestamp").to_bytes(4, "big")
        kind = cat.GBZ_ALERT_BODY_BY_CODE.get(a.code)
        if a.body is not None:
            if comps:
                raise GbcsEncodeError("gbz.alert_body", "an alert body excludes components")
            if kind is None or not isinstance(a.body, _BODY_TYPES[kind]):
                raise GbcsEncodeError(
                    "gbz.alert_body",
                    f"alert code 0x{a.code:04X} does not take {type(a.body).__name__}",
                )
            return _PROFILE + b"\x01" + alert_head + _encode_alert_body(a.body)
        if comps and kind is not None:
            raise GbcsEncodeError(
                "gbz.components", f"alert code 0x{a.code:04X} carries a body, not components"
            )
    count = _check(len(comps), 0xFF, "gbz.component_count").to_bytes(1, "big")
    last = len(comps) - 1
    body = b"".join(_encode_component(c, i == last) for i, c in enumerate(comps))
    return _PROFILE + count + alert_head + body


_BODY_TYPES: dict[str, type] = {
    cat.ALERT_BODY_FUTURE_DATED: FutureDatedAlertBody,
    cat.ALERT_BODY_FIRMWARE_RECEIPT: FirmwareReceiptAlertBody,
    cat.ALERT_BODY_INTEGRITY_WARNING: IntegrityWarningAlertBody,
}


# --- security-layer helpers -----------------------------------------------------


def encrypted_blocks(msg: GbzMessage) -> list[bytes]:
    """The ``31 || IC || ct || tag`` blocks of the encrypted components, in order."""
    return [c.block for c in msg.components if isinstance(c, EncryptedComponent)]


def decode_decrypted_zcl(component: EncryptedComponent, plaintext: bytes) -> ZclPayload:
    """Type the decrypted plaintext, which is the ZCL payload of the component's command."""
    return decode_zcl_payload(Reader(plaintext), component.header)


# --- JSON view ----------------------------------------------------------------------


def gbz_time_iso(seconds: int) -> str:
    """ISO-8601 UTC text of a GBZ timestamp (seconds since 2000-01-01 UTC)."""
    return utc_seconds_iso(seconds)


def _from_datetime_json(v: int | None) -> str | None:
    if v is None:
        return None
    if v == cat.GBZ_FROM_DATETIME_IMMEDIATE:
        return "immediate"
    if v == cat.GBZ_FROM_DATETIME_NEVER:
        return "never"
    return gbz_time_iso(v)


def _alert_body_json(b: AlertBody) -> dict[str, object]:
    if isinstance(b, FutureDatedAlertBody):
        h = ZclHeader(b.frame_control, 0, b.command_id)
        return {
            "type": cat.ALERT_BODY_FUTURE_DATED,
            "message_code": f"0x{b.message_code:04X}",
            "originator_counter": b.originator_counter,
            "cluster": {"id": f"0x{b.cluster_id:04X}", "name": cat.cluster_name(b.cluster_id)},
            "frame_control": f"0x{b.frame_control:02X}",
            "command": {
                "id": f"0x{b.command_id:02X}",
                "name": cat.command_name(
                    b.cluster_id, h.frame_type, h.server_to_client, b.command_id
                ),
            },
        }
    if isinstance(b, FirmwareReceiptAlertBody):
        return {
            "type": cat.ALERT_BODY_FIRMWARE_RECEIPT,
            "manufacturer_hash": b.manufacturer_hash.hex().upper(),
        }
    return {
        "type": cat.ALERT_BODY_INTEGRITY_WARNING,
        "reason": f"0x{b.reason:04X}",
        "reason_name": cat.INTEGRITY_WARNING_REASONS.get(b.reason),
    }


def component_to_json(c: GbzComponent, last: bool) -> dict[str, object]:
    out: dict[str, object] = {
        "control": f"0x{_control(c, last):02X}",
        "last": last,
        "encrypted": c.encrypted,
        "cluster": {"id": f"0x{c.cluster_id:04X}", "name": cat.cluster_name(c.cluster_id)},
        "from_datetime": _from_datetime_json(c.from_datetime),
        "zcl": header_to_json(c.cluster_id, c.header),
    }
    if isinstance(c, EncryptedComponent):
        out["encryption"] = {
            "additional_header_control": c.additional_control,
            "frame_counter": c.frame_counter,
            "invocation_counter": c.invocation_counter,
            "ciphertext_length": len(c.ciphertext),
            "block": c.block.hex().upper(),
        }
    else:
        out["payload"] = payload_to_json(c.cluster_id, c.header, c.payload)
    return out


def gbz_to_json(msg: GbzMessage) -> dict[str, object]:
    """JSON-able view for humans: names from the catalogue, times as ISO UTC."""
    out: dict[str, object] = {"profile_id": f"0x{cat.GBZ_PROFILE_ID:04X}"}
    a = msg.alert
    if a is not None:
        out["alert"] = {
            "code": f"0x{a.code:04X}",
            "timestamp": gbz_time_iso(a.timestamp),
            "body": None if a.body is None else _alert_body_json(a.body),
        }
    last = len(msg.components) - 1
    out["components"] = [component_to_json(c, i == last) for i, c in enumerate(msg.components)]
    return out
