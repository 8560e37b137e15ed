"""Whole-message API: envelope + payload decoded into typed values, and back.

:func:`decode_message` is what users and devices call; :func:`inspect_message`
adds MAC / signature / decryption checks and a JSON-able view for people.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from gbhil.gbcs import asn1, dlms, gbz, zcl
from gbhil.gbcs.alerts import alert_name
from gbhil.gbcs.axdr import data_to_json, decode_data
from gbhil.gbcs.errors import GbcsDecodeError, GbcsError
from gbhil.gbcs.frame import Cra, Eui64, GbcsMessage, Shape, decode_frame
from gbhil.gbcs.kdf import MAC_LEN
from gbhil.gbcs.reader import Reader
from gbhil.gbcs.recent import RecentDecodes
from gbhil.gbcs.security import (
    Check,
    SecurityContext,
    decrypt_block,
    payload_key,
    verify_mac,
    verify_signature,
)
from gbhil.gbcs.usecases import MESSAGE_CODES, message_code_name
from gbhil.gbcs.utrn import UtrnCheck, verify_utrn

GBZ_PREFIX = b"\x01\x09"
#: CS01a (ESME), CS01b (GSME), PCS01 (GSME from PPMID): commands that carry a UTRN.
UTRN_MESSAGE_CODES = frozenset({0x0007, 0x0097, 0x009B})
_UTRN_PATTERN = re.compile(rb"\x14([0-9]{20})")
DLMS_TAGS = frozenset({0xD9, 0xDA, 0x0F})


class PayloadFamily(Enum):
    DLMS = "DLMS"
    GBZ = "GBZ"
    ASN1 = "ASN.1"


Payload = (
    dlms.AccessRequest
    | dlms.AccessResponse
    | dlms.DataNotification
    | gbz.GbzMessage
    | asn1.Asn1Node
)


def payload_family(content: bytes) -> PayloadFamily:
    """Dispatch rule that holds on the whole RTDS corpus (gbcs-facts 3)."""
    if content[:2] == GBZ_PREFIX:
        return PayloadFamily.GBZ
    if content and content[0] in DLMS_TAGS:
        return PayloadFamily.DLMS
    return PayloadFamily.ASN1


def decode_payload(content: bytes, cra: Cra, base: int = 0) -> Payload:
    family = payload_family(content)
    if not content:
        raise GbcsDecodeError("content", base, "empty payload")
    if family is PayloadFamily.GBZ:
        return gbz.decode_gbz(content, alert=cra is Cra.ALERT, base=base)
    if family is PayloadFamily.DLMS:
        return dlms.decode_dlms(content, base=base)
    return asn1.decode_asn1(content, base=base)


def encode_payload(payload: Payload) -> bytes:
    if isinstance(payload, gbz.GbzMessage):
        return gbz.encode_gbz(payload)
    if isinstance(payload, asn1.Asn1Node):
        return asn1.encode_asn1(payload)
    return dlms.encode_dlms(payload)


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """Envelope plus typed payload; :meth:`encode` rebuilds the bytes from both."""

    frame: GbcsMessage
    payload: Payload

    @property
    def family(self) -> PayloadFamily:
        if isinstance(self.payload, gbz.GbzMessage):
            return PayloadFamily.GBZ
        if isinstance(self.payload, asn1.Asn1Node):
            return PayloadFamily.ASN1
        return PayloadFamily.DLMS

    def encode(self) -> bytes:
        gs = replace(self.frame.gs, content=encode_payload(self.payload))
        return replace(self.frame, general_signing=gs).encode()


def content_offset(raw: bytes, msg: GbcsMessage) -> int:
    """Absolute offset of the content inside ``raw`` (for payload error offsets)."""
    tail = 0
    if msg.shape is Shape.MACED:
        tail += MAC_LEN
    sig = msg.gs.signature
    if sig is not None:
        tail += 1 + len(sig)
    return len(raw) - tail - len(msg.gs.content)


_RECENT_MESSAGES: RecentDecodes[DecodedMessage] = RecentDecodes()


def decode_message(raw: bytes, *, precommand: bool | None = None) -> DecodedMessage:
    """Decode envelope and payload; raises :class:`GbcsDecodeError` on bad input.

    DLMS and GBZ results are deep-frozen, so recent ones are shared between callers;
    ASN.1 trees are mutable and are decoded afresh for each caller."""
    key = (raw, precommand) if type(raw) is bytes else None
    if key is not None:
        found = _RECENT_MESSAGES.get(key)
        if found is not None:
            return found
    frame = decode_frame(raw, precommand=precommand)
    payload = decode_payload(frame.gs.content, frame.gs.cra, content_offset(raw, frame))
    message = DecodedMessage(frame, payload)
    if key is not None and not isinstance(payload, asn1.Asn1Node):
        _RECENT_MESSAGES.put(key, message)
    return message


# --- checks and the human view --------------------------------------------------


@dataclass(slots=True)
class Decryption:
    """One encrypted payload block and what became of it."""

    ok: bool
    plaintext: bytes | None = None
    value: Any = None  # JSON-able decoded plaintext
    reason: str = ""


@dataclass(slots=True)
class Inspection:
    """Result of :func:`inspect_message`."""

    message: DecodedMessage
    mac: Check
    signature: Check
    decryptions: list[Decryption] = field(default_factory=list)
    utrn: UtrnCheck | None = (
        None  # top-up commands only; an invalid UTRN is data, not a codec failure
    )

    @property
    def ok(self) -> bool:
        return (
            self.mac is not Check.FAILED
            and self.signature is not Check.FAILED
            and all(d.ok for d in self.decryptions)
        )

    def to_json(self) -> dict[str, Any]:
        return message_to_json(self)


def _blocks(payload: Payload) -> list[tuple[bytes, Any]]:
    """Encrypted blocks with a decoder for their plaintext."""
    if isinstance(payload, gbz.GbzMessage):
        return [
            (
                comp.block,
                lambda p, c=comp: zcl.payload_to_json(
                    c.cluster_id, c.header, gbz.decode_decrypted_zcl(c, p)
                ),
            )
            for comp in payload.components
            if isinstance(comp, gbz.EncryptedComponent)
        ]
    if isinstance(payload, asn1.Asn1Node):
        return []
    return [
        (block, lambda p: data_to_json(_decode_axdr(p))) for block in dlms.encrypted_blocks(payload)
    ]


def _decode_axdr(plaintext: bytes) -> Any:
    r = Reader(plaintext)
    value = decode_data(r)
    r.expect_end("decrypted A-XDR data")
    return value


def decrypt_payload(ctx: SecurityContext, msg: DecodedMessage) -> list[Decryption]:
    """Decrypt every encrypted block of a response or alert payload."""
    blocks = _blocks(msg.payload)
    if not blocks:
        return []
    gs = msg.frame.gs
    key = payload_key(ctx, gs)
    out: list[Decryption] = []
    for block, decode in blocks:
        if key is None:
            out.append(Decryption(False, reason="no key-agreement key pair for payload decryption"))
            continue
        plain = decrypt_block(key, gs.business_originator, block)
        if plain is None:
            out.append(Decryption(False, reason="GCM tag does not verify"))
            continue
        try:
            value = decode(plain)
        except GbcsError as exc:
            out.append(Decryption(False, plain, reason=f"plaintext does not decode: {exc}"))
            continue
        out.append(Decryption(True, plain, value))
    return out


def inspect_message(
    raw: bytes, ctx: SecurityContext | None = None, *, precommand: bool | None = None
) -> Inspection:
    """Decode, then check MAC and signature and decrypt payload blocks when keys allow."""
    msg = decode_message(raw, precommand=precommand)
    if ctx is None:
        mac = Check.NOT_CHECKABLE if msg.frame.shape is Shape.MACED else Check.ABSENT
        sig = Check.NOT_CHECKABLE if msg.frame.gs.signature else Check.ABSENT
        return Inspection(msg, mac, sig)
    gs_bytes = None
    if msg.frame.shape is Shape.MACED:
        start = len(raw) - MAC_LEN - len(msg.frame.gs.encode())
        gs_bytes = raw[start : len(raw) - MAC_LEN]
    return Inspection(
        msg,
        verify_mac(ctx, msg.frame, gs_bytes),
        verify_signature(ctx, msg.frame.gs),
        decrypt_payload(ctx, msg),
        check_utrn(ctx, msg),
    )


def find_utrn(msg: DecodedMessage) -> bytes | None:
    """The 20-digit UTRN of a top-up command (DLMS octet-string or GBZ ZCL string)."""
    gs = msg.frame.gs
    if gs.cra is not Cra.COMMAND or gs.message_code not in UTRN_MESSAGE_CODES:
        return None
    m = _UTRN_PATTERN.search(gs.content)
    return m.group(1) if m else None


def check_utrn(ctx: SecurityContext, msg: DecodedMessage) -> UtrnCheck | None:
    """Verify a top-up command's UTRN with the supplier's prepayment KA key (gbcs-facts 2.9)."""
    digits = find_utrn(msg)
    if digits is None:
        return None
    gs = msg.frame.gs
    z = ctx.shared_secret(gs.business_originator, gs.business_target, prepayment=True)
    if z is None:
        return UtrnCheck(False, None, ("no prepayment key pair to check the UTRN MAC",))
    return verify_utrn(digits, z, gs.business_originator, gs.business_target, gs.originator_counter)


def payload_to_json(msg: DecodedMessage) -> Any:
    p = msg.payload
    gs = msg.frame.gs
    if isinstance(p, gbz.GbzMessage):
        return gbz.gbz_to_json(p)
    if isinstance(p, asn1.Asn1Node):
        return asn1.asn1_to_json(p, gs.message_code, int(gs.cra))
    return dlms.dlms_to_json(p)


def message_to_json(ins: Inspection) -> dict[str, Any]:
    msg = ins.message
    frame = msg.frame
    gs = frame.gs
    other = gs.other_information
    use_case = MESSAGE_CODES.get(gs.message_code)
    header: dict[str, Any] = {
        "craFlag": gs.cra.name.lower(),
        "originatorCounter": gs.originator_counter,
        "businessOriginatorId": str(Eui64(gs.business_originator)),
        "businessTargetId": str(Eui64(gs.business_target)),
        "dateTime": gs.date_time.hex().upper() if gs.date_time else None,
        "messageCode": f"0x{gs.message_code:04X}",
        "useCase": use_case.use_case if use_case else None,
        "useCaseTitle": message_code_name(gs.message_code),
    }
    if other.supplementary_remote_party_id is not None:
        header["supplementaryRemotePartyId"] = str(Eui64(other.supplementary_remote_party_id))
    if other.supplementary_remote_party_counter is not None:
        header["supplementaryRemotePartyCounter"] = other.supplementary_remote_party_counter
    if other.supplementary_originator_counter is not None:
        header["supplementaryOriginatorCounter"] = other.supplementary_originator_counter
    if other.supplementary_remote_party_ka_certificate is not None:
        header["supplementaryRemotePartyKaCertificate"] = (
            other.supplementary_remote_party_ka_certificate.hex().upper()
        )
    out: dict[str, Any] = {
        "shape": frame.shape.value,
        "header": header,
        "payloadFamily": msg.family.value,
        "payload": payload_to_json(msg),
        "security": {
            "mac": ins.mac.value,
            "macValue": frame.mac.hex().upper() if frame.mac else None,
            "invocationCounter": frame.invocation_counter if frame.shape is Shape.MACED else None,
            "signature": ins.signature.value,
            "signatureValue": gs.signature.hex().upper() if gs.signature else None,
            "utrn": (
                None if ins.utrn is None else {"valid": ins.utrn.ok, "reason": ins.utrn.reason}
            ),
            "decryptions": [
                {"ok": d.ok, "plaintext": d.value, "reason": d.reason or None}
                for d in ins.decryptions
            ],
        },
    }
    code = alert_code_of(msg)
    if code is not None:
        out["alertCode"] = f"0x{code:04X}"
        out["alertName"] = alert_name(code)
    return out


def alert_code_of(msg: DecodedMessage) -> int | None:
    """The GBCS alert code an alert carries, whatever its payload family."""
    if msg.frame.gs.cra is not Cra.ALERT:
        return None
    p = msg.payload
    if isinstance(p, gbz.GbzMessage):
        return p.alert.code if p.alert else None
    if isinstance(p, asn1.Asn1Node):
        return asn1.alert_code(p)
    return dlms.alert_code(p)
