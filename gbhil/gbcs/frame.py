"""GBCS message envelope: MAC header, General Signing APDU, the four message shapes.

Layouts are gbcs-facts 1.2-1.4, confirmed byte for byte on the RTDS corpus.
The decoder keeps every header field as a typed value and the encoder
rebuilds the exact bytes from those values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, IntEnum

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.kdf import MAC_LEN, SC_AUTHENTICATED
from gbhil.gbcs.reader import Reader, encode_length
from gbhil.gbcs.recent import RecentDecodes

TAG_GENERAL_CIPHERING = 0xDD
TAG_GENERAL_SIGNING = 0xDF
TAG_GBT_ROUTING = 0x09  # second byte of a GBT segment (transaction-id length)
TRANSACTION_ID_LEN = 0x09
EUI_LEN = 0x08
DATE_TIME_LEN = 0x0C
SIGNATURE_LEN = 0x40
#: Sizes of Other Information variants (gbcs-facts 1.4).
OTHER_INFO_CODE_ONLY = 2
OTHER_INFO_WITH_SUPP_RP = 10
OTHER_INFO_WITH_SUPP_COUNTER = 18
OTHER_INFO_WITH_SUPP_ORIG_COUNTER = 26
DER_SEQUENCE = 0x30  # first byte of the URP command's KA certificate


class Cra(IntEnum):
    """The CRA flag: first byte of the Transaction ID."""

    COMMAND = 1
    RESPONSE = 2
    ALERT = 3


class Shape(Enum):
    """The envelope around the General Signing APDU."""

    MACED = "maced"  # DD 00 ... GS APDU ... MAC(12)
    SIGNED = "signed"  # DF ... with a signature field, no MAC
    PRECOMMAND = "precommand"  # DF ... without a signature field


@dataclass(frozen=True, slots=True)
class Eui64:
    """An 8-byte EUI-64, shown as ``90-B3-D5-1F-30-01-00-00``."""

    value: bytes

    def __post_init__(self) -> None:
        if len(self.value) != 8:
            raise GbcsEncodeError("EUI-64", f"must be 8 bytes, got {len(self.value)}")

    @classmethod
    def parse(cls, text: str | bytes) -> Eui64:
        if isinstance(text, bytes):
            return cls(text)
        clean = text.replace("-", "").replace(":", "").replace(" ", "")
        try:
            raw = bytes.fromhex(clean)
        except ValueError as exc:
            raise GbcsEncodeError("EUI-64", f"not hex: {text!r}") from exc
        return cls(raw)

    def __str__(self) -> str:
        return "-".join(f"{b:02X}" for b in self.value)


@dataclass(frozen=True, slots=True)
class OtherInformation:
    """Other Information: message code plus the optional supplementary fields."""

    message_code: int
    supplementary_remote_party_id: bytes | None = None
    supplementary_remote_party_counter: int | None = None
    supplementary_originator_counter: int | None = None
    supplementary_remote_party_ka_certificate: bytes | None = None

    def encode(self) -> bytes:
        out = self.message_code.to_bytes(2, "big")
        rp, rpc = self.supplementary_remote_party_id, self.supplementary_remote_party_counter
        soc, cert = (
            self.supplementary_originator_counter,
            self.supplementary_remote_party_ka_certificate,
        )
        if rp is None:
            if (rpc, soc, cert) != (None, None, None):
                raise GbcsEncodeError("other information", "supplementary fields need the RP ID")
            return out
        if len(rp) != 8:
            raise GbcsEncodeError("supplementary remote party ID", "must be 8 bytes")
        out += rp
        if rpc is None:
            if (soc, cert) != (None, None):
                raise GbcsEncodeError("other information", "fields after an absent RP counter")
            return out
        out += rpc.to_bytes(8, "big")
        if soc is not None and cert is not None:
            raise GbcsEncodeError(
                "other information",
                "a URP command carries the KA certificate, a URP response the originator counter",
            )
        if soc is not None:
            out += soc.to_bytes(8, "big")
        if cert is not None:
            out += cert
        return out

    @classmethod
    def decode(cls, r: Reader, n: int) -> OtherInformation:
        """Layouts by length (gbcs-facts 1.4, checked on RTDS): 2, 10, 18, 26 (URP
        response: + supplementary originator counter) or 18 + a DER certificate
        (URP command: the DCC User's KA certificate follows the RP counter)."""
        start = r.offset
        if n < OTHER_INFO_CODE_ONLY or n in (3, 4, 5, 6, 7, 8, 9) or 10 < n < 18 or 18 < n < 26:
            raise GbcsDecodeError("other information", start, f"unsupported length {n}")
        code = r.u16("message code")
        rp = r.take(8, "supplementary remote party ID") if n >= OTHER_INFO_WITH_SUPP_RP else None
        rpc = r.u64("supplementary remote party counter") if n >= 18 else None
        soc = cert = None
        if n == OTHER_INFO_WITH_SUPP_ORIG_COUNTER:
            soc = r.u64("supplementary originator counter")
        elif n > OTHER_INFO_WITH_SUPP_ORIG_COUNTER:
            if r.peek("supplementary remote party KA certificate") != DER_SEQUENCE:
                raise r.error("supplementary remote party KA certificate", "not a DER SEQUENCE")
            cert = r.take(n - 18, "supplementary remote party KA certificate")
        return cls(code, rp, rpc, soc, cert)


@dataclass(frozen=True, slots=True)
class GeneralSigning:
    """General Signing APDU: routing header, content and the signature field."""

    cra: Cra
    originator_counter: int
    business_originator: bytes
    business_target: bytes
    other_information: OtherInformation
    content: bytes
    date_time: bytes | None = None  # 12-byte DLMS date-time, or absent
    signature: bytes | None = b""  # None: no signature field (pre-command); b"": length 0

    @property
    def message_code(self) -> int:
        return self.other_information.message_code

    @property
    def transaction_id(self) -> bytes:
        return bytes((self.cra,)) + self.originator_counter.to_bytes(8, "big")

    def signed_bytes(self) -> bytes:
        """What ECDSA covers: the APDU without the 0xDF tag and the signature field."""
        return self._body()

    def encode(self) -> bytes:
        out = b"\xdf" + self._body()
        if self.signature is not None:
            if len(self.signature) not in (0, SIGNATURE_LEN):
                raise GbcsEncodeError(
                    "signature", f"must be 0 or 64 bytes, got {len(self.signature)}"
                )
            out += bytes((len(self.signature),)) + self.signature
        return out

    def _body(self) -> bytes:
        if not 0 <= self.originator_counter < 1 << 64:
            raise GbcsEncodeError("originator counter", "must fit in 64 bits")
        for name, v in (
            ("business originator ID", self.business_originator),
            ("business target ID", self.business_target),
        ):
            if len(v) != 8:
                raise GbcsEncodeError(name, f"must be 8 bytes, got {len(v)}")
        if self.date_time is not None and len(self.date_time) != DATE_TIME_LEN:
            raise GbcsEncodeError("date-time", "must be 12 bytes")
        other = self.other_information.encode()
        dt = b"\x00" if self.date_time is None else b"\x0c" + self.date_time
        return b"".join(
            (
                b"\x09",
                self.transaction_id,
                b"\x08",
                self.business_originator,
                b"\x08",
                self.business_target,
                dt,
                encode_length(len(other), "other information length"),
                other,
                encode_length(len(self.content), "content length"),
                self.content,
            )
        )

    @classmethod
    def decode(cls, r: Reader, *, precommand: bool | None = None) -> GeneralSigning:
        """Read one APDU; ``precommand=None`` means: no signature field iff input ends."""
        r.expect(TAG_GENERAL_SIGNING, "general signing tag")
        r.expect(TRANSACTION_ID_LEN, "transaction ID length")
        at = r.offset
        cra_byte = r.u8("CRA flag")
        try:
            cra = Cra(cra_byte)
        except ValueError:
            raise GbcsDecodeError("CRA flag", at, f"0x{cra_byte:02X} is not 1, 2 or 3") from None
        counter = r.u64("originator counter")
        r.expect(EUI_LEN, "business originator ID length")
        orig = r.take(8, "business originator ID")
        r.expect(EUI_LEN, "business target ID length")
        target = r.take(8, "business target ID")
        at = r.offset
        dt_len = r.u8("date-time length")
        if dt_len == 0:
            dt = None
        elif dt_len == DATE_TIME_LEN:
            dt = r.take(DATE_TIME_LEN, "date-time")
        else:
            raise GbcsDecodeError("date-time length", at, f"expected 0 or 12, found {dt_len}")
        n = r.length("other information length")
        other = OtherInformation.decode(r.sub(n, "other information"), n)
        n = r.length("content length")
        content = r.take(n, "content")
        sig: bytes | None
        if precommand or (precommand is None and r.at_end()):
            sig = None
        else:
            at = r.offset
            sig_len = r.u8("signature length")
            if sig_len not in (0, SIGNATURE_LEN):
                raise GbcsDecodeError("signature length", at, f"expected 0 or 64, found {sig_len}")
            sig = r.take(sig_len, "signature")
        return cls(cra, counter, orig, target, other, content, dt, sig)


@dataclass(frozen=True, slots=True)
class GbcsMessage:
    """One GBCS message in any of its three non-GBT shapes."""

    shape: Shape
    general_signing: GeneralSigning
    mac: bytes | None = None  # 12 bytes for MACED
    invocation_counter: int = 0
    security_control: int = SC_AUTHENTICATED

    @property
    def gs(self) -> GeneralSigning:
        return self.general_signing

    def with_signature(self, signature: bytes | None) -> GbcsMessage:
        return replace(self, general_signing=replace(self.general_signing, signature=signature))

    def encode(self) -> bytes:
        gs = self.general_signing.encode()
        if self.shape is Shape.PRECOMMAND:
            if self.general_signing.signature is not None:
                raise GbcsEncodeError("signature", "a pre-command has no signature field")
            return gs
        if self.shape is Shape.SIGNED:
            if self.general_signing.signature is None:
                raise GbcsEncodeError("signature", "a signed message needs a signature field")
            return gs
        if self.mac is None or len(self.mac) != MAC_LEN:
            raise GbcsEncodeError("MAC", "a MACed message needs a 12-byte MAC")
        if self.general_signing.signature is None:
            raise GbcsEncodeError("signature", "a MACed message needs a signature field")
        return (
            encode_mac_header(len(gs), self.invocation_counter, self.security_control)
            + gs
            + self.mac
        )


def encode_mac_header(
    gs_len: int, invocation_counter: int = 0, sc: int = SC_AUTHENTICATED
) -> bytes:
    """DD + six empty general-ciphering fields + length + security header."""
    body_len = 5 + gs_len + MAC_LEN
    return (
        b"\xdd\x00\x00\x00\x00\x00\x00"
        + encode_length(body_len, "MAC header length")
        + bytes((sc,))
        + invocation_counter.to_bytes(4, "big")
    )


_MAC_HEADER_FIELDS = (
    "transaction ID",
    "originator system title",
    "recipient system title",
    "date-time",
    "other information",
    "key info",
)


_RECENT_FRAMES: RecentDecodes[GbcsMessage] = RecentDecodes()


def decode_frame(data: bytes, *, precommand: bool | None = None) -> GbcsMessage:
    """Decode the envelope of a GBCS message (not GBT, see gbhil.gbcs.gbt)."""
    if type(data) is not bytes:  # only immutable input can key the memo
        return _decode_frame(data, precommand)
    key = (data, precommand)
    found = _RECENT_FRAMES.get(key)
    if found is None:
        found = _decode_frame(data, precommand)
        _RECENT_FRAMES.put(key, found)
    return found


def _decode_frame(data: bytes, precommand: bool | None) -> GbcsMessage:
    r = Reader(data)
    first = r.peek("message tag")
    if first == TAG_GENERAL_SIGNING:
        gs = GeneralSigning.decode(r, precommand=precommand)
        r.expect_end("general signing APDU")
        return GbcsMessage(Shape.PRECOMMAND if gs.signature is None else Shape.SIGNED, gs)
    if first != TAG_GENERAL_CIPHERING:
        raise GbcsDecodeError("message tag", 0, f"expected 0xDD or 0xDF, found 0x{first:02X}")
    r.u8("message tag")
    if r.peek("transaction ID length") == TAG_GBT_ROUTING:
        raise GbcsDecodeError(
            "transaction ID length", 1, "this is a GBT segment; use gbhil.gbcs.gbt to reassemble"
        )
    for name in _MAC_HEADER_FIELDS:
        at = r.offset
        if r.u8(f"MAC header {name} length") != 0:
            raise GbcsDecodeError(f"MAC header {name} length", at, "must be zero-length")
    at = r.offset
    n = r.length("MAC header length")
    if n != r.remaining:
        raise GbcsDecodeError(
            "MAC header length", at, f"says {n} byte(s) follow, found {r.remaining}"
        )
    at = r.offset
    sc = r.u8("security control")
    if sc != SC_AUTHENTICATED:
        raise GbcsDecodeError("security control", at, f"expected 0x11, found 0x{sc:02X}")
    ic = r.u32("invocation counter")
    if r.remaining < MAC_LEN:
        raise r.error("MAC", f"needs {MAC_LEN} byte(s), only {r.remaining} left")
    inner = r.sub(r.remaining - MAC_LEN, "general signing APDU")
    gs = GeneralSigning.decode(inner, precommand=False)
    inner.expect_end("general signing APDU")
    mac = r.take(MAC_LEN, "MAC")
    return GbcsMessage(Shape.MACED, gs, mac, ic, sc)


def gs_span(data: bytes) -> tuple[int, int]:
    """Start and end offsets of the General Signing APDU inside a MACed message."""
    r = Reader(data)
    r.take(7, "MAC header")
    r.length("MAC header length")
    r.take(5, "security header")
    return r.pos, len(data) - MAC_LEN
