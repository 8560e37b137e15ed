"""Install-code joining: the CHF as trust center, checked against its Device Log.

GBCS HAN devices join with a Zigbee *install code*: the CHF learns the code
from CCS01 (kept in its Device Log), and both sides derive the same
preconfigured trust-center link key from it with the AES-MMO hash (Zigbee
spec B.6, test vectors C.6.1). The trust center then:

1. accepts the join only for an EUI in its Device Log that has an install
   code, while joining is permitted (the log's class 104 ``join_enabled`` and
   ``join_deadline``, i.e. the join timeout the DCC set; a device already
   joined may always rejoin: the trust center knows its key);
2. sends the network key in a Transport-Key protected with a key derived from
   the link key (CCM*, ENC-MIC-32); a device with a different install code
   cannot open it and the join fails;
3. waits for the device's Verify-Key hash, which proves it holds the link key,
   answers Confirm-Key, records the hashed link key in the log entry and tells
   the CHF model (``on_device_log_changed``: the CS14 alert is its business).

A real NCP does all of this inside its stack; the host only sees the outcome.
So here it is a control-plane exchange between a :class:`JoiningDevice` and
the :class:`TrustCenter` in the same process, taking virtual time on the
shared clock, and the device's transport joins the HAN only when it succeeded.
The Transport-Key bytes are laid out like the secured APS command (aux header,
CCM* with the key-transport key) but are not a byte-exact air frame. Every
rejection is observable: an event with a reason and a per-reason counter.
"""

from __future__ import annotations

import hmac
import secrets
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from gbhil.han.channels import HanError
from gbhil.han.transport import EUI64_LEN, HanTransport
from gbhil.simulator.clock import Clock

# ---------------------------------------------------------------------------
# Catalogue: Zigbee security constants
# ---------------------------------------------------------------------------

AES_BLOCK: Final = 16
KEY_LEN: Final = 16
#: Install code lengths including their 2-octet CRC (6, 8, 12 or 16 octet codes).
INSTALL_CODE_LENGTHS: Final = (8, 10, 14, 18)
INSTALL_CODE_CRC_LEN: Final = 2
#: HMAC-MMO inner/outer pads (Zigbee spec B.1.4, FIPS 198 with the MMO hash).
HMAC_IPAD: Final = 0x36
HMAC_OPAD: Final = 0x5C
#: Single-octet inputs of the keyed hash that derive the special-purpose keys.
KEY_TRANSPORT_INPUT: Final = b"\x00"
KEY_LOAD_INPUT: Final = b"\x02"
VERIFY_KEY_INPUT: Final = b"\x03"
#: APS command identifiers and Transport-Key key type used in the modelled frames.
APS_CMD_TRANSPORT_KEY: Final = 0x05
APS_KEY_TYPE_NETWORK: Final = 0x01
#: Auxiliary security header: level 5 (ENC-MIC-32), key id 2 (key-transport), extended nonce.
SEC_LEVEL_ENC_MIC_32: Final = 0x05
SEC_KEY_ID_KEY_TRANSPORT: Final = 0x02 << 3
SEC_EXTENDED_NONCE: Final = 0x20
SEC_CONTROL_TRANSPORT_KEY: Final = (
    SEC_LEVEL_ENC_MIC_32 | SEC_KEY_ID_KEY_TRANSPORT | SEC_EXTENDED_NONCE
)
MIC_LEN: Final = 4
#: Virtual seconds each leg of the join exchange takes (association, key transport, verify).
JOIN_STEP_S: Final = 0.05


class JoinError(HanError):
    """Bad joining input: an install code with a wrong length or CRC, a bad EUI."""


class RejectReason(Enum):
    """Why the trust center refused a device (observable on events and counters)."""

    NOT_IN_DEVICE_LOG = "EUI not in the CHF Device Log"
    NO_INSTALL_CODE = "Device Log entry has no install code"
    JOIN_WINDOW_CLOSED = "join timeout passed"
    JOINING_DISABLED = "joining is not enabled on the CHF"
    KEY_NOT_CONFIRMED = "device did not verify the link key (wrong install code?)"
    TRUST_CENTER_OFF = "trust center has no power"


class JoinRole(IntEnum):
    """What a node tells the trust center about itself (MAC capability, simplified)."""

    ALWAYS_ON = 0  # ESME, PPMID, HCALCS: receiver on when idle
    SLEEPY = 1  # GSME: battery device, polls the CHF
    HHT = 2  # hand-held terminal: local command delivery


# ---------------------------------------------------------------------------
# AES-MMO, HMAC-MMO and install codes
# ---------------------------------------------------------------------------


def _aes_encrypt_block(key: bytes, block: bytes) -> bytes:
    # One raw block: MMO builds the hash from the block cipher itself.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def mmo_pad(data: bytes) -> bytes:
    """Zigbee B.6 padding: a 1 bit, zeros, then the bit length (16 or 32 bits) at the end."""
    bits = len(data) * 8
    if bits < 1 << 16:
        tail = struct.pack(">H", bits)
        zeros = (AES_BLOCK - (len(data) + 1 + len(tail)) % AES_BLOCK) % AES_BLOCK
        return data + b"\x80" + bytes(zeros) + tail
    if bits >= 1 << 32:
        raise JoinError(f"AES-MMO input of {len(data)} octets is too long")
    tail = struct.pack(">I", bits) + b"\x00\x00"
    zeros = (AES_BLOCK - (len(data) + 1 + len(tail)) % AES_BLOCK) % AES_BLOCK
    return data + b"\x80" + bytes(zeros) + tail


def aes_mmo(data: bytes) -> bytes:
    """Matyas-Meyer-Oseas hash with AES-128 (Zigbee spec B.6): H_j = E(H_j-1, M_j) xor M_j."""
    padded = mmo_pad(bytes(data))
    digest = bytes(AES_BLOCK)
    for i in range(0, len(padded), AES_BLOCK):
        block = padded[i : i + AES_BLOCK]
        out = _aes_encrypt_block(digest, block)
        digest = bytes(a ^ b for a, b in zip(out, block, strict=True))
    return digest


def hmac_mmo(key: bytes, message: bytes) -> bytes:
    """Zigbee keyed hash (B.1.4): HMAC with AES-MMO, 16-octet blocks."""
    if len(key) != KEY_LEN:
        raise JoinError(f"keyed hash needs a 16-octet key, got {len(key)}")
    inner = aes_mmo(bytes(b ^ HMAC_IPAD for b in key) + message)
    return aes_mmo(bytes(b ^ HMAC_OPAD for b in key) + inner)


def install_code_crc(code: bytes) -> int:
    """CRC-16/X-25 of an install code (reflected 0x1021, init and xorout 0xFFFF)."""
    crc = 0xFFFF
    for byte in code:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def with_crc(code: bytes) -> bytes:
    """Append the little-endian CRC to a bare install code (6, 8, 12 or 16 octets)."""
    if len(code) + INSTALL_CODE_CRC_LEN not in INSTALL_CODE_LENGTHS:
        raise JoinError(f"install code must be 6, 8, 12 or 16 octets before its CRC, got {code!r}")
    return code + install_code_crc(code).to_bytes(INSTALL_CODE_CRC_LEN, "little")


def check_install_code(code: bytes) -> bytes:
    """Validate length and CRC of an install code as stored (CRC included); returns it."""
    if not isinstance(code, bytes) or len(code) not in INSTALL_CODE_LENGTHS:
        shown = code.hex().upper() if isinstance(code, bytes) else repr(code)
        raise JoinError(f"install code {shown} must be 8, 10, 14 or 18 octets including its CRC")
    body, crc = code[:-INSTALL_CODE_CRC_LEN], code[-INSTALL_CODE_CRC_LEN:]
    want = install_code_crc(body)
    got = int.from_bytes(crc, "little")
    if got != want:
        raise JoinError(
            f"install code {code.hex().upper()}: CRC 0x{got:04X} != computed 0x{want:04X}"
        )
    return code


def link_key_from_install_code(code: bytes) -> bytes:
    """Preconfigured TC link key = AES-MMO(install code incl. CRC) (Zigbee spec)."""
    return aes_mmo(check_install_code(code))


def key_transport_key(link_key: bytes) -> bytes:
    """Key protecting Transport-Key commands: HMAC-MMO(link key, 0x00)."""
    return hmac_mmo(link_key, KEY_TRANSPORT_INPUT)


def verify_key_hash(link_key: bytes) -> bytes:
    """What a device sends in Verify-Key to prove it holds the link key: HMAC(key, 0x03)."""
    return hmac_mmo(link_key, VERIFY_KEY_INPUT)


# ---------------------------------------------------------------------------
# The Transport-Key exchange
# ---------------------------------------------------------------------------


def _check_eui(name: str, eui: object) -> bytes:
    if not isinstance(eui, bytes) or len(eui) != EUI64_LEN:
        raise JoinError(f"{name} must be an 8-byte EUI-64, got {eui!r}")
    return eui


def _nonce(source: bytes, frame_counter: int, sec_control: int) -> bytes:
    return source[::-1] + struct.pack("<I", frame_counter) + bytes((sec_control,))


_AUX = struct.Struct("<BI8s")  # security control, frame counter, source EUI (LE)


def seal_transport_key(
    link_key: bytes,
    network_key: bytes,
    key_sequence: int,
    tc_eui: bytes,
    device_eui: bytes,
    frame_counter: int,
) -> bytes:
    """Transport-Key(network key) for ``device_eui``, protected with its link key.

    Layout: aux header (security control, frame counter, source EUI-64 LE) ||
    CCM*(key-transport key) of [0x05, key type 0x01, key, sequence, dst EUI LE,
    src EUI LE] || 4-octet MIC; the aux header is the authenticated data.
    """
    tc_eui, device_eui = _check_eui("tc_eui", tc_eui), _check_eui("device_eui", device_eui)
    if len(network_key) != KEY_LEN:
        raise JoinError("network key must be 16 octets")
    aux = _AUX.pack(SEC_CONTROL_TRANSPORT_KEY, frame_counter, tc_eui[::-1])
    plain = (
        bytes((APS_CMD_TRANSPORT_KEY, APS_KEY_TYPE_NETWORK))
        + network_key
        + bytes((key_sequence & 0xFF,))
        + device_eui[::-1]
        + tc_eui[::-1]
    )
    ccm = AESCCM(key_transport_key(link_key), tag_length=MIC_LEN)
    return aux + ccm.encrypt(_nonce(tc_eui, frame_counter, SEC_CONTROL_TRANSPORT_KEY), plain, aux)


@dataclass(frozen=True, slots=True)
class NetworkKey:
    """What a device learns from a Transport-Key it could open."""

    key: bytes
    sequence: int
    trust_center: bytes


def open_transport_key(link_key: bytes, device_eui: bytes, blob: bytes) -> NetworkKey:
    """Check and decrypt a Transport-Key; JoinError when the MIC or addressing is wrong."""
    if len(blob) < _AUX.size + MIC_LEN:
        raise JoinError(f"Transport-Key of {len(blob)} octets is too short")
    sec_control, counter, source_le = _AUX.unpack_from(blob, 0)
    if sec_control != SEC_CONTROL_TRANSPORT_KEY:
        raise JoinError(
            f"Transport-Key security control 0x{sec_control:02X} is not CCM* key-transport"
        )
    aux = blob[: _AUX.size]
    tc_eui = source_le[::-1]
    ccm = AESCCM(key_transport_key(link_key), tag_length=MIC_LEN)
    try:
        plain = ccm.decrypt(_nonce(tc_eui, counter, sec_control), blob[_AUX.size :], aux)
    except InvalidTag:
        raise JoinError("Transport-Key MIC does not verify with this device's link key") from None
    if plain[0] != APS_CMD_TRANSPORT_KEY or plain[1] != APS_KEY_TYPE_NETWORK:
        raise JoinError("Transport-Key does not carry a network key")
    key, sequence = plain[2:18], plain[18]
    dst, src = plain[19:27][::-1], plain[27:35][::-1]
    if dst != device_eui or src != tc_eui:
        raise JoinError("Transport-Key is addressed to another device")
    return NetworkKey(key, sequence, tc_eui)


# ---------------------------------------------------------------------------
# Trust center (CHF side)
# ---------------------------------------------------------------------------


class DeviceLogEntryLike(Protocol):
    """What the trust center reads and writes in a CHF Device Log entry."""

    eui: bytes
    install_code: bytes | None
    joined: bool


class DeviceLogLike(Protocol):
    """The CHF Device Log as the trust center uses it (gbhil.devices.chf.DeviceLog).

    Also read when present: ``join_enabled`` (bool, default True) and
    ``join_deadline`` (aware datetime or None) on the log, and a per-entry
    ``join_deadline``.
    """

    entries: dict[bytes, Any]

    def record_join(self, eui: bytes, link_key: bytes) -> None: ...


@dataclass(slots=True)
class JoinEvent:
    """One trust-center decision (clock time)."""

    at: datetime
    eui: bytes
    kind: str  # "joined", "rejoined", "rejected", "left", "removed"
    reason: RejectReason | None = None
    detail: str = ""


@dataclass(slots=True)
class Member:
    """A device on the network, as the trust center knows it."""

    eui: bytes
    role: JoinRole
    joined_at: datetime
    leave: Callable[[], Any] | None = None  # how the TC can ask the node to leave


@dataclass(frozen=True, slots=True)
class JoinOffer:
    """First answer of the trust center: the sealed network key, or a refusal."""

    transport_key: bytes | None
    reason: RejectReason | None = None


@dataclass(frozen=True, slots=True)
class JoinResult:
    """Outcome of a join as the device sees it."""

    accepted: bool
    reason: RejectReason | None = None
    detail: str = ""
    trust_center: bytes | None = None


class TrustCenter:
    """The CHF's trust-center role: who may join, with which keys, and who is on.

    ``device_log`` is the CHF Device Log (entries keyed by EUI, each with
    ``install_code`` and ``joined``; joins are recorded with
    ``device_log.record_join(eui, link_key)``); see :class:`DeviceLogLike` for
    the joining window. ``on_device_log_changed(entry)`` is called after a join
    was recorded (the CHF raises CS14 from it).
    """

    def __init__(
        self,
        eui: bytes,
        device_log: DeviceLogLike,
        clock: Clock,
        *,
        network_key: bytes | None = None,
        on_device_log_changed: Callable[[Any], None] | None = None,
    ) -> None:
        self.eui = _check_eui("eui", eui)
        self.device_log = device_log
        self.clock = clock
        self.network_key = secrets.token_bytes(KEY_LEN) if network_key is None else network_key
        if len(self.network_key) != KEY_LEN:
            raise JoinError("network key must be 16 octets")
        self.key_sequence = 0
        self.on_device_log_changed = on_device_log_changed
        self.powered = True
        self.members: dict[bytes, Member] = {}
        self.events: list[JoinEvent] = []
        self.rejections: Counter[RejectReason] = Counter()
        self.accepted = 0
        self.listeners: list[Callable[[JoinEvent], None]] = []
        self._frame_counter = 0
        self._pending: dict[bytes, tuple[bytes, JoinRole]] = {}  # eui -> link key, role

    # -- observation -----------------------------------------------------------
    @property
    def rejected(self) -> int:
        """Rejected joins, all reasons together."""
        return sum(self.rejections.values())

    def _event(
        self, eui: bytes, kind: str, reason: RejectReason | None = None, detail: str = ""
    ) -> None:
        event = JoinEvent(self.clock.now(), eui, kind, reason, detail)
        self.events.append(event)
        for listener in tuple(self.listeners):
            listener(event)

    def _reject(self, eui: bytes, reason: RejectReason, detail: str = "") -> JoinOffer:
        self.rejections[reason] += 1
        self._pending.pop(eui, None)
        self._event(eui, "rejected", reason, detail)
        return JoinOffer(None, reason)

    # -- the exchange ------------------------------------------------------------
    def request_join(self, eui: bytes, role: JoinRole = JoinRole.ALWAYS_ON) -> JoinOffer:
        """Association of ``eui``: decide, and seal the network key with its link key."""
        eui = _check_eui("eui", eui)
        if not self.powered:
            return self._reject(eui, RejectReason.TRUST_CENTER_OFF)
        entry = self.device_log.entries.get(eui)
        if entry is None:
            return self._reject(eui, RejectReason.NOT_IN_DEVICE_LOG)
        code = getattr(entry, "install_code", None)
        if code is None:
            return self._reject(eui, RejectReason.NO_INSTALL_CODE)
        if not entry.joined:  # a member may always rejoin: its link key is known
            refusal = self._window_refusal(entry)
            if refusal is not None:
                return self._reject(eui, *refusal)
        try:
            link_key = link_key_from_install_code(code)
        except JoinError as exc:
            return self._reject(eui, RejectReason.NO_INSTALL_CODE, str(exc))
        self._pending[eui] = (link_key, role)
        self._frame_counter += 1
        blob = seal_transport_key(
            link_key, self.network_key, self.key_sequence, self.eui, eui, self._frame_counter
        )
        return JoinOffer(blob)

    def _window_refusal(self, entry: Any) -> tuple[RejectReason, str] | None:
        if not getattr(self.device_log, "join_enabled", True):
            return RejectReason.JOINING_DISABLED, ""
        now = self.clock.now()
        for deadline in (
            getattr(self.device_log, "join_deadline", None),
            getattr(entry, "join_deadline", None),
        ):
            if deadline is not None and now > deadline:
                return RejectReason.JOIN_WINDOW_CLOSED, f"deadline {deadline.isoformat()}"
        return None

    def verify_key(self, eui: bytes, proof: bytes, leave: Callable[[], Any] | None = None) -> bool:
        """Verify-Key from ``eui``; on success record the join and confirm (True)."""
        pending = self._pending.pop(eui, None)
        if pending is None or not self.powered:
            self._reject(eui, RejectReason.KEY_NOT_CONFIRMED, "no join in progress")
            return False
        link_key, role = pending
        if not hmac.compare_digest(proof, verify_key_hash(link_key)):
            self._reject(eui, RejectReason.KEY_NOT_CONFIRMED, "Verify-Key hash mismatch")
            return False
        entry = self.device_log.entries.get(eui)
        if entry is None:  # removed from the log while joining
            self._reject(eui, RejectReason.NOT_IN_DEVICE_LOG, "removed while joining")
            return False
        rejoin = bool(entry.joined)
        self.device_log.record_join(eui, link_key)
        self.members[eui] = Member(eui, role, self.clock.now(), leave)
        self.accepted += 1
        self._event(eui, "rejoined" if rejoin else "joined")
        if self.on_device_log_changed is not None:
            self.on_device_log_changed(entry)
        return True

    def key_not_verified(self, eui: bytes, detail: str) -> None:
        """The device gave up (it could not open the Transport-Key)."""
        self._reject(eui, RejectReason.KEY_NOT_CONFIRMED, detail)

    # -- leaving ---------------------------------------------------------------
    def device_left(self, eui: bytes) -> None:
        """A member announced it left (Zigbee Leave); it must join again to come back."""
        if self.members.pop(eui, None) is None:
            return
        entry = self.device_log.entries.get(eui)
        if entry is not None:
            entry.joined = False
        self._event(eui, "left")

    async def remove(self, eui: bytes) -> bool:
        """Ask a member to leave (e.g. after CCS02 removed it from the Device Log)."""
        member = self.members.get(eui)
        if member is None:
            return False
        if member.leave is not None:
            result = member.leave()
            if hasattr(result, "__await__"):
                await result
        if eui in self.members:
            self.device_left(eui)
        self._event(eui, "removed")
        return True

    def role_of(self, eui: bytes) -> JoinRole | None:
        """How a member joined (None: not on the network)."""
        member = self.members.get(eui)
        return None if member is None else member.role


# ---------------------------------------------------------------------------
# The joining device
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class JoiningDevice:
    """A device's side of joining: its install code, its link key, its network key."""

    eui: bytes
    install_code: bytes
    transport: HanTransport
    clock: Clock
    role: JoinRole = JoinRole.ALWAYS_ON
    network_key: NetworkKey | None = None
    trust_center: TrustCenter | None = None
    history: list[JoinResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_eui("eui", self.eui)
        check_install_code(self.install_code)

    @property
    def link_key(self) -> bytes:
        return link_key_from_install_code(self.install_code)

    async def join(
        self, trust_center: TrustCenter, leave: Callable[[], Any] | None = None
    ) -> JoinResult:
        """Associate, open the Transport-Key, prove the link key; join the HAN on success."""
        await self.clock.sleep(JOIN_STEP_S)  # association request/response
        offer = trust_center.request_join(self.eui, self.role)
        if offer.transport_key is None:
            return await self._fail(
                JoinResult(False, offer.reason, offer.reason.value if offer.reason else "")
            )
        await self.clock.sleep(JOIN_STEP_S)  # Transport-Key over the air
        try:
            network_key = open_transport_key(self.link_key, self.eui, offer.transport_key)
        except JoinError as exc:
            trust_center.key_not_verified(self.eui, str(exc))
            return await self._fail(JoinResult(False, RejectReason.KEY_NOT_CONFIRMED, str(exc)))
        await self.clock.sleep(JOIN_STEP_S)  # Verify-Key / Confirm-Key
        if not trust_center.verify_key(self.eui, verify_key_hash(self.link_key), leave):
            return await self._fail(
                JoinResult(False, RejectReason.KEY_NOT_CONFIRMED, "not confirmed")
            )
        self.network_key = network_key
        self.trust_center = trust_center
        await self.transport.join()
        return self._done(JoinResult(True, trust_center=trust_center.eui))

    def _done(self, result: JoinResult) -> JoinResult:
        self.history.append(result)
        return result

    async def _fail(self, result: JoinResult) -> JoinResult:
        # A device that was not let in is not on the network, whatever the medium assumed.
        if self.network_key is None and self.transport.joined:
            await self.transport.leave()
        return self._done(result)

    async def leave(self) -> None:
        """Announce the leave to the trust center and take the radio off the HAN."""
        if self.trust_center is not None:
            self.trust_center.device_left(self.eui)
        self.network_key = None
        self.trust_center = None
        if self.transport.joined:
            await self.transport.leave()


__all__ = [
    "INSTALL_CODE_LENGTHS",
    "JoinError",
    "JoinEvent",
    "JoinOffer",
    "JoinResult",
    "JoinRole",
    "JoiningDevice",
    "Member",
    "NetworkKey",
    "RejectReason",
    "TrustCenter",
    "aes_mmo",
    "check_install_code",
    "hmac_mmo",
    "install_code_crc",
    "key_transport_key",
    "link_key_from_install_code",
    "mmo_pad",
    "open_transport_key",
    "seal_transport_key",
    "verify_key_hash",
    "with_crc",
]
