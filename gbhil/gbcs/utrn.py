"""UTRN prepayment top-up codes (CS01a/CS01b, PCS01; gbcs-facts 2.9).

A UTRN is 20 ASCII digits: ``decimal(PTUT_OFFSET + PTUT)`` (19 digits) and a
GBCS Verhoeff check digit. The 64-bit PTUT packs, from the top::

    7 reserved zero bits | counter bits (10) | value class (2) | value (13) | MAC (32)

The counter bits are bits 32..41 of the supplier's Originator Counter of the
top-up; the MAC is the last 4 bytes of a 16-byte GCM tag keyed from the
supplier's *prepayment* KA key and the device KA key. A device that gets the
UTRN typed in only learns those 10 bits, which is why suppliers use counters
whose low 32 bits are zero (RTDS: 0x0000000600000000).

Checked on RTDS 4.5.0: the CS01b top-up verifies (check digit, counter bits,
MAC); the CS01b error case carries ``12345678910121314156``, which is below
the PTUT offset and fails the check digit, and is reported as such.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError, GbcsSecurityError
from gbhil.gbcs.kdf import SC_AUTHENTICATED, derive_key, gcm_tag
from gbhil.gbcs.keys import KeyStore
from gbhil.gbcs.security import SecurityContext

#: Decimal offset added to the PTUT before printing (gives 19 digits).
PTUT_OFFSET = 7394156990786306048
UTRN_DIGITS = 20
EUI_LEN = 8

COUNTER_SHIFT = 32  # the PTUT carries Originator Counter bits 32..41
COUNTER_BITS = 10
VALUE_CLASS_BITS = 2
VALUE_BITS = 13
RESERVED_BITS = 7
VALUE_MAX = (1 << VALUE_BITS) - 1
COUNTER_BITS_MAX = (1 << COUNTER_BITS) - 1
MAC_LEN = 4

VALUE_CLASS_PENNIES = 0
VALUE_CLASS_POUNDS = 1
VALUE_CLASSES: dict[int, str] = {VALUE_CLASS_PENNIES: "pennies", VALUE_CLASS_POUNDS: "pounds"}
PENCE_PER_UNIT: dict[int, int] = {VALUE_CLASS_PENNIES: 1, VALUE_CLASS_POUNDS: 100}

#: KDF TypeByte / AAD byte for the UTRN GMAC: the same as a Remote Party command.
TYPE_COMMAND = 0x01
#: AAD prefix: security control byte, 4-byte invocation counter, the extra 00 (gbcs-facts 2.4).
AAD_PREFIX = bytes((SC_AUTHENTICATED, 0, 0, 0, 0, 0))
INVOCATION_COUNTER = bytes(4)

# GBCS Verhoeff variant (gbcs-facts 2.9): textbook dihedral D5 table and
# permutation, walk starts at permutation row 4, and a GBCS-specific inverse.
VERHOEFF_D: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
VERHOEFF_P: tuple[tuple[int, ...], ...] = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
VERHOEFF_START_ROW = 4
GBCS_INVERSE: tuple[int, ...] = (1, 2, 6, 7, 5, 8, 3, 0, 9, 4)


def check_digit(digits: str) -> str:
    """GBCS Verhoeff check digit of the 19-digit PTUT decimal (any digit string works)."""
    if not digits.isascii() or not digits.isdigit():
        raise GbcsEncodeError("UTRN digits", f"not decimal digits: {digits!r}")
    c = 0
    row = VERHOEFF_START_ROW
    for ch in digits:
        c = VERHOEFF_D[c][VERHOEFF_P[row][ord(ch) - 48]]
        row = (row + 1) & 7
    return str(GBCS_INVERSE[c])


def ptut_high(counter: int, value: int, value_class: int = VALUE_CLASS_PENNIES) -> int:
    """High dword of the PTUT: counter bits 32..41, value class, value."""
    if not 0 <= value <= VALUE_MAX:
        raise GbcsEncodeError("UTRN value", f"{value} outside 0..{VALUE_MAX}")
    if value_class not in VALUE_CLASSES:
        raise GbcsEncodeError("UTRN value class", f"{value_class} (00 pennies, 01 pounds)")
    if counter < 0 or counter >> 64:
        raise GbcsEncodeError("originator counter", f"{counter} is not a 64-bit counter")
    bits = (counter >> COUNTER_SHIFT) & COUNTER_BITS_MAX
    return (bits << (VALUE_CLASS_BITS + VALUE_BITS)) | (value_class << VALUE_BITS) | value


def utrn_tag(
    shared_secret: bytes, supplier_id: bytes, device_id: bytes, counter: int, ptut_high: int
) -> bytes:
    """Full 16-byte GCM tag over the PTUT high dword (gbcs-facts 2.9).

    Key: KDF(Z, supplier, 0x01, counter, device) with Z from the supplier's
    prepayment KA key; IV = supplier ID || 00000000; AAD = 11 00 00 00 00 00 ||
    supplier || device || 01 || counter(8) || PTUT high dword(4).
    """
    if len(supplier_id) != EUI_LEN or len(device_id) != EUI_LEN:
        raise GbcsEncodeError("UTRN MAC", "supplier and device IDs must be 8-byte EUI-64s")
    if counter < 0 or counter >> 64 or ptut_high < 0 or ptut_high >> 32:
        raise GbcsEncodeError("UTRN MAC", "counter must fit 64 bits and PTUT high dword 32 bits")
    key = derive_key(shared_secret, supplier_id, TYPE_COMMAND, counter, device_id)
    aad = (
        AAD_PREFIX
        + supplier_id
        + device_id
        + bytes((TYPE_COMMAND,))
        + counter.to_bytes(8, "big")
        + ptut_high.to_bytes(4, "big")
    )
    return gcm_tag(key, supplier_id + INVOCATION_COUNTER, aad)


def utrn_mac(
    shared_secret: bytes, supplier_id: bytes, device_id: bytes, counter: int, ptut_high: int
) -> bytes:
    """The 4 MAC bytes a UTRN carries: the *last* 4 bytes of :func:`utrn_tag`."""
    return utrn_tag(shared_secret, supplier_id, device_id, counter, ptut_high)[-MAC_LEN:]


@dataclass(frozen=True, slots=True)
class Utrn:
    """A UTRN split into its PTUT fields (no key needed)."""

    digits: str
    reserved: int
    counter_bits: int
    value_class: int
    value: int
    mac: bytes
    check_digit_ok: bool

    @property
    def ptut(self) -> int:
        return int(self.digits[:19]) - PTUT_OFFSET

    @property
    def ptut_high(self) -> int:
        return self.ptut >> 32

    @property
    def value_class_name(self) -> str:
        return VALUE_CLASSES.get(self.value_class, f"undefined ({self.value_class})")

    @property
    def amount_pence(self) -> int | None:
        """Credit in pence, or None for an undefined value class."""
        unit = PENCE_PER_UNIT.get(self.value_class)
        return None if unit is None else self.value * unit

    def counter_matches(self, counter: int) -> bool:
        return self.counter_bits == (counter >> COUNTER_SHIFT) & COUNTER_BITS_MAX

    def to_json(self) -> dict[str, object]:
        return {
            "utrn": self.digits,
            "checkDigitOk": self.check_digit_ok,
            "counterBits": self.counter_bits,
            "valueClass": self.value_class,
            "valueClassText": self.value_class_name,
            "value": self.value,
            "amountPence": self.amount_pence,
            "mac": self.mac.hex().upper(),
            "reservedBits": self.reserved,
        }


def parse_utrn(text: str | bytes, base: int = 0) -> Utrn:
    """Split 20 ASCII digits into PTUT fields.

    Raises :class:`GbcsDecodeError` (offset = ``base`` + digit index) when the
    text is not 20 digits or lies below the PTUT offset; a wrong check digit
    or non-zero reserved bits are reported in the result, not raised, so a
    checker can say what is wrong with a typed-in code.
    """
    if isinstance(text, bytes | bytearray):
        raw = bytes(text)
    else:
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise GbcsDecodeError("UTRN", base, "contains non-ASCII characters") from None
    if len(raw) != UTRN_DIGITS:
        raise GbcsDecodeError("UTRN", base, f"needs {UTRN_DIGITS} digits, got {len(raw)}")
    for i, b in enumerate(raw):
        if not 0x30 <= b <= 0x39:
            raise GbcsDecodeError("UTRN", base + i, f"not a decimal digit: 0x{b:02X}")
    digits = raw.decode("ascii")
    ptut = int(digits[:19]) - PTUT_OFFSET
    if ptut < 0:
        raise GbcsDecodeError(
            "UTRN",
            base,
            f"first 19 digits {digits[:19]} are below the PTUT offset {PTUT_OFFSET}: not a UTRN",
        )
    high = ptut >> 32
    return Utrn(
        digits=digits,
        reserved=high >> (COUNTER_BITS + VALUE_CLASS_BITS + VALUE_BITS),
        counter_bits=(high >> (VALUE_CLASS_BITS + VALUE_BITS)) & COUNTER_BITS_MAX,
        value_class=(high >> VALUE_BITS) & ((1 << VALUE_CLASS_BITS) - 1),
        value=high & VALUE_MAX,
        mac=(ptut & 0xFFFFFFFF).to_bytes(MAC_LEN, "big"),
        check_digit_ok=check_digit(digits[:19]) == digits[19],
    )


def build_utrn(
    shared_secret: bytes,
    supplier_id: bytes,
    device_id: bytes,
    counter: int,
    value: int,
    value_class: int = VALUE_CLASS_PENNIES,
) -> str:
    """The 20-digit UTRN a supplier issues for ``value`` (pennies or pounds)."""
    high = ptut_high(counter, value, value_class)
    mac = utrn_mac(shared_secret, supplier_id, device_id, counter, high)
    pptd = str(PTUT_OFFSET + ((high << 32) | int.from_bytes(mac, "big")))
    return pptd + check_digit(pptd)


def _check_digit_problem(digits: str) -> list[str]:
    want = check_digit(digits[:19])
    if want == digits[19]:
        return []
    return [f"check digit {digits[19]} wrong (GBCS Verhoeff gives {want})"]


@dataclass(frozen=True, slots=True)
class UtrnCheck:
    """Outcome of :func:`verify_utrn`; ``reasons`` is empty exactly when ``ok``."""

    ok: bool
    utrn: Utrn | None
    reasons: tuple[str, ...] = field(default=())

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "valid"


def verify_utrn(
    text: str | bytes,
    shared_secret: bytes,
    supplier_id: bytes,
    device_id: bytes,
    counter: int,
) -> UtrnCheck:
    """Check format, check digit, reserved bits, value class, counter bits and MAC.

    ``counter`` is the Originator Counter of the carrying command (or the one
    a device reconstructs from the counter bits). Never raises on a bad UTRN.
    """
    try:
        u = parse_utrn(text)
    except GbcsDecodeError as exc:
        reasons = [exc.reason]
        digits = text.decode("latin-1") if isinstance(text, bytes | bytearray) else text
        if len(digits) == UTRN_DIGITS and digits.isascii() and digits.isdigit():
            reasons += _check_digit_problem(digits)
        return UtrnCheck(False, None, tuple(reasons))
    reasons = _check_digit_problem(u.digits)
    if u.reserved:
        reasons.append(f"reserved PTUT bits not zero (0x{u.reserved:02X})")
    if u.value_class not in VALUE_CLASSES:
        reasons.append(f"value class {u.value_class} undefined (00 pennies, 01 pounds)")
    if not u.counter_matches(counter):
        want = (counter >> COUNTER_SHIFT) & COUNTER_BITS_MAX
        reasons.append(f"counter bits {u.counter_bits} do not match counter bits 32..41 ({want})")
    expected = utrn_mac(shared_secret, supplier_id, device_id, counter, u.ptut_high)
    if not hmac.compare_digest(expected, u.mac):
        reasons.append("MAC does not verify with the supplier prepayment KA key")
    return UtrnCheck(not reasons, u, tuple(reasons))


def utrn_shared_secret(keys: KeyStore, supplier_id: bytes, device_id: bytes) -> bytes:
    """ECDH secret for UTRNs, from whichever side the store holds a private key for.

    Supplier pp-KA private x device KA public, or device KA private x supplier
    pp-KA public; the normal supplier KA key does not verify (gbcs-facts 2.9).
    """
    z = SecurityContext(keys).shared_secret(supplier_id, device_id, prepayment=True)
    if z is None:
        raise GbcsSecurityError(
            f"no prepayment key pair for supplier {supplier_id.hex().upper()} "
            f"and device {device_id.hex().upper()}"
        )
    return z
