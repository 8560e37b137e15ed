"""EZSP frames: the header, a small declarative codec and the command catalogue.

EZSP (Silicon Labs UG100) is the command/response protocol between a host and a
Zigbee NCP; ASH (:mod:`gbhil.han.ezsp.ash`) carries it over the UART. This
module holds what both the NCP emulator and the probe need to build and parse
EZSP frames, as data (architecture rule 6): every command and callback the
emulator supports is one :class:`Command` row with its frame ID and parameter
layouts, written from the published frame definitions (UG100, and bellows'
command tables as a cross-check; no code is shared with bellows).

Header formats (radio-stack.md 1.1):

* legacy (protocol < 8, and the very first ``version`` command of every
  session): ``sequence, frame control, frame ID (1 byte)``;
* extended (protocol >= 8): ``sequence, frame control low, frame control high,
  frame ID (2 bytes, little-endian)``. The high byte carries the frame format
  version (1) and the security/padding flags, which no NCP on the bench uses.

Frame-control low byte: bit 7 direction (0 command, 1 response), bits 6-5
network index, bit 4 asynchronous callback, bit 3 synchronous callback, bit 2
callback pending, bit 1 truncated, bit 0 overflow; in commands bits 1-0 carry
the sleep mode.

Layouts are those of protocol versions 14 and later, where every status is a
32-bit ``sl_status_t``. Version 13 differs only in status width (an 8-bit
``EmberStatus``/``EzspStatus``) for the rows marked ``since=8``; the
:data:`STATUS` codec picks the width from the version, so the probe can talk
to v13 sticks with the same rows. Rows whose layout changed in v14 (message
handlers, key export, ...) are ``since=14`` and refuse older versions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any, Final

from gbhil.han.channels import HanError

# ---------------------------------------------------------------------------
# Catalogue: protocol constants
# ---------------------------------------------------------------------------

#: First protocol version with the extended (16-bit frame ID) header.
EXTENDED_HEADER_SINCE: Final = 8
#: First protocol version whose statuses are 32-bit sl_status_t.
SL_STATUS_SINCE: Final = 14
#: Oldest protocol version gbhil drives (bellows' v13 handler; EmberZNet 7.4).
MIN_PROTOCOL_VERSION: Final = 13
#: Version the emulator advertises unless told otherwise (EmberZNet 8.0).
DEFAULT_EMULATED_VERSION: Final = 14
#: Versions whose layouts the emulator implements (bellows has no v15 handler).
EMULATED_VERSIONS: Final = frozenset({14, 16, 17, 18})

FC_RESPONSE: Final = 0x80
FC_NETWORK_INDEX_MASK: Final = 0x60
FC_ASYNC_CALLBACK: Final = 0x10
FC_SYNC_CALLBACK: Final = 0x08
FC_CALLBACK_PENDING: Final = 0x04
FC_TRUNCATED: Final = 0x02
FC_OVERFLOW: Final = 0x01
FC_HIGH_SECURITY: Final = 0x80
FC_HIGH_PADDING: Final = 0x40
FC_HIGH_FORMAT_MASK: Final = 0x03
FC_HIGH_FORMAT_VERSION: Final = 0x01
LEGACY_HEADER_LEN: Final = 3
EXTENDED_HEADER_LEN: Final = 5
#: Stack type reported by ``version`` for an EmberZNet Zigbee stack.
STACK_TYPE_MESH: Final = 0x02
CERTIFICATE_283K1_LEN: Final = 74
EUI64_LEN: Final = 8
KEY_LEN: Final = 16


class SlStatus(IntEnum):
    """sl_status_t values the emulator returns or the radio interprets (v14+)."""

    OK = 0x0000
    FAIL = 0x0001
    INVALID_STATE = 0x0002
    NOT_READY = 0x0003
    NOT_SUPPORTED = 0x000F
    NETWORK_UP = 0x0015
    NETWORK_DOWN = 0x0016
    NOT_JOINED = 0x0017
    INVALID_PARAMETER = 0x0021
    INVALID_INDEX = 0x0027
    INVALID_RANGE = 0x0028
    NOT_FOUND = 0x002D
    TRANSMIT_INVALID_CHANNEL = 0x0055
    ZIGBEE_DELIVERY_FAILED = 0x0C02
    ZIGBEE_CHANNEL_CHANGED = 0x0C17
    ZIGBEE_NETWORK_OPENED = 0x0C18
    ZIGBEE_NETWORK_CLOSED = 0x0C19
    ZIGBEE_EZSP_ERROR = 0x0C1E


class EmberStatus(IntEnum):
    """The 8-bit statuses of protocol < 14 that the probe needs to recognise."""

    SUCCESS = 0x00
    ERR_FATAL = 0x01
    NOT_FOUND = 0x03
    INVALID_CALL = 0x70
    PHY_INVALID_CHANNEL = 0x8A
    NETWORK_UP = 0x90
    NETWORK_DOWN = 0x91
    NOT_JOINED = 0x93
    LIBRARY_NOT_PRESENT = 0xB5


class EzspStatus(IntEnum):
    """EZSP-level statuses (``invalidCommand`` reasons before v14)."""

    SUCCESS = 0x00
    ERROR_INVALID_FRAME_ID = 0x31
    ERROR_TRUNCATED = 0x33
    ERROR_INVALID_ID = 0x37


class NetworkStatus(IntEnum):
    """``networkState`` result."""

    NO_NETWORK = 0x00
    JOINING_NETWORK = 0x01
    JOINED_NETWORK = 0x02
    JOINED_NETWORK_NO_PARENT = 0x03
    LEAVING_NETWORK = 0x04


class NodeType(IntEnum):
    UNKNOWN_DEVICE = 0x00
    COORDINATOR = 0x01
    ROUTER = 0x02
    END_DEVICE = 0x03
    SLEEPY_END_DEVICE = 0x04


class ValueId(IntEnum):
    """``getValue``/``setValue`` IDs the emulator knows (all others: INVALID_PARAMETER)."""

    FREE_BUFFERS = 0x03
    MAXIMUM_INCOMING_TRANSFER_SIZE = 0x05
    MAXIMUM_OUTGOING_TRANSFER_SIZE = 0x06
    STACK_TOKEN_WRITING = 0x07
    VERSION_INFO = 0x11
    CCA_THRESHOLD = 0x15
    CERTIFICATE_283K1 = 0x1A
    NWK_FRAME_COUNTER = 0x23
    APS_FRAME_COUNTER = 0x24
    ENABLE_R21_BEHAVIOR = 0x29
    FORCE_TX_AFTER_FAILED_CCA_ATTEMPTS = 0x3A
    END_DEVICE_KEEP_ALIVE_SUPPORT_MODE = 0x3F
    TRANSIENT_DEVICE_TIMEOUT = 0x43


class ConfigId(IntEnum):
    """``getConfigurationValue`` IDs with a meaning in the emulator."""

    PACKET_BUFFER_COUNT = 0x01
    ADDRESS_TABLE_SIZE = 0x05
    MULTICAST_TABLE_SIZE = 0x06
    ROUTE_TABLE_SIZE = 0x07
    STACK_PROFILE = 0x0C
    SECURITY_LEVEL = 0x0D
    KEY_TABLE_SIZE = 0x1E
    SUPPORTED_NETWORKS = 0x2D


class MfgTokenId(IntEnum):
    CUSTOM_VERSION = 0x00
    STRING = 0x01
    BOARD_NAME = 0x02
    MANUF_ID = 0x03
    PHY_CONFIG = 0x04
    CBKE_DATA = 0x09
    INSTALLATION_CODE = 0x0A
    CUSTOM_EUI_64 = 0x0C


class IncomingMessageType(IntEnum):
    UNICAST = 0x00
    UNICAST_REPLY = 0x01
    MULTICAST = 0x02
    MULTICAST_LOOPBACK = 0x03
    BROADCAST = 0x04
    BROADCAST_LOOPBACK = 0x05


class OutgoingMessageType(IntEnum):
    DIRECT = 0x00
    VIA_ADDRESS_TABLE = 0x01
    VIA_BINDING = 0x02
    MULTICAST = 0x03
    MULTICAST_WITH_ALIAS = 0x04
    BROADCAST_WITH_ALIAS = 0x05
    BROADCAST = 0x06


class ApsOption(IntFlag):
    """EmberApsOption bits that map onto :class:`gbhil.han.transport.TxOptions`."""

    NONE = 0x0000
    ENCRYPTION = 0x0020
    RETRY = 0x0040
    ENABLE_ROUTE_DISCOVERY = 0x0100
    FORCE_ROUTE_DISCOVERY = 0x0200
    SOURCE_EUI64 = 0x0400
    DESTINATION_EUI64 = 0x0800
    ENABLE_ADDRESS_DISCOVERY = 0x1000
    FRAGMENT = 0x8000


class DeviceUpdate(IntEnum):
    """``trustCenterJoinHandler`` status."""

    STANDARD_SECURITY_SECURED_REJOIN = 0x00
    STANDARD_SECURITY_UNSECURED_JOIN = 0x01
    DEVICE_LEFT = 0x02
    STANDARD_SECURITY_UNSECURED_REJOIN = 0x03


class JoinDecision(IntEnum):
    USE_PRECONFIGURED_KEY = 0x00
    SEND_KEY_IN_THE_CLEAR = 0x01
    DENY_JOIN = 0x02
    NO_ACTION = 0x03


class CurrentSecurityBitmask(IntFlag):
    GLOBAL_LINK_KEY = 0x0004
    HAVE_TRUST_CENTER_LINK_KEY = 0x0010
    TRUST_CENTER_USES_HASHED_LINK_KEY = 0x0084


class DutyCycleState(IntEnum):
    """EmberDutyCycleState: sub-GHz duty-cycle modes as EmberZNet reports them."""

    TRACKING_OFF = 0x00
    LBT_NORMAL = 0x01
    LBT_LIMITED_THRESHOLD_REACHED = 0x02
    LBT_CRITICAL_THRESHOLD_REACHED = 0x03
    LBT_SUSPEND_LIMIT_REACHED = 0x04


#: EmberZNet's 8-bit radio channel for sub-GHz: top 3 bits page - 24, low 5 bits
#: channel (radio-stack.md 3.1; page 28 channel 15 -> 0x8F).
SUB_GHZ_PAGE_BASE: Final = 24
SUB_GHZ_CHANNEL_BITS: Final = 5


def ember_channel(page: int, channel: int) -> int:
    """The 8-bit EmberZNet channel value for a page/channel (page 0: the channel)."""
    if page == 0:
        return channel
    if not SUB_GHZ_PAGE_BASE < page < SUB_GHZ_PAGE_BASE + 8 or not 0 <= channel < 32:
        raise EzspError(f"page {page} channel {channel} has no 8-bit EmberZNet encoding")
    return ((page - SUB_GHZ_PAGE_BASE) << SUB_GHZ_CHANNEL_BITS) | channel


def page_channel_of(value: int) -> tuple[int, int]:
    """Inverse of :func:`ember_channel`: (page, channel) of an 8-bit channel value."""
    if value >> SUB_GHZ_CHANNEL_BITS == 0:
        return 0, value
    return (value >> SUB_GHZ_CHANNEL_BITS) + SUB_GHZ_PAGE_BASE, value & 0x1F


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class EzspError(HanError):
    """Base class of EZSP-level errors."""


class EzspFrameError(EzspError, ValueError):
    """A frame that does not parse: names the command, the field and the offset."""


class EzspUnsupportedError(EzspError):
    """A command this catalogue has no layout for at the negotiated protocol version."""


# ---------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------


class Codec(ABC):
    """One field type: how a Python value becomes bytes and back."""

    name: str = "?"

    @abstractmethod
    def encode(self, value: Any, version: int) -> bytes: ...

    @abstractmethod
    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[Any, int]: ...

    def default(self, version: int) -> Any:
        """The value an all-zero field decodes to (used for empty/failed replies)."""
        return self.decode(bytes(256), 0, version, {})[0]


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if offset + size > len(data):
        raise EzspFrameError(
            f"{what}: needs {size} bytes at offset {offset}, frame has {len(data) - offset}"
        )


class UInt(Codec):
    """Little-endian unsigned (or signed) integer."""

    def __init__(self, size: int, *, signed: bool = False, name: str | None = None) -> None:
        self.size, self.signed = size, signed
        self.name = name or f"{'int' if signed else 'uint'}{size * 8}"

    def encode(self, value: Any, version: int) -> bytes:
        try:
            return int(value).to_bytes(self.size, "little", signed=self.signed)
        except (OverflowError, TypeError, ValueError):
            raise EzspFrameError(f"{value!r} does not fit {self.name}") from None

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[int, int]:
        _need(data, offset, self.size, self.name)
        end = offset + self.size
        return int.from_bytes(data[offset:end], "little", signed=self.signed), end


class StatusCodec(Codec):
    """A status: 8-bit before protocol 14, 32-bit sl_status_t from 14 on."""

    name = "status"

    def _inner(self, version: int) -> UInt:
        return U32 if version >= SL_STATUS_SINCE else U8

    def encode(self, value: Any, version: int) -> bytes:
        return self._inner(version).encode(value, version)

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[int, int]:
        return self._inner(version).decode(data, offset, version, values)


class BoolCodec(Codec):
    name = "bool"

    def encode(self, value: Any, version: int) -> bytes:
        return b"\x01" if value else b"\x00"

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[bool, int]:
        _need(data, offset, 1, self.name)
        return bool(data[offset]), offset + 1


class Fixed(Codec):
    """Fixed-length bytes; ``reverse`` for EUI-64s, which EZSP sends little-endian.

    gbhil keeps EUI-64s in display (big-endian) order everywhere, like the
    medium and the pcap writer; only the wire order is reversed.
    """

    def __init__(self, size: int, *, reverse: bool = False, name: str | None = None) -> None:
        self.size, self.reverse = size, reverse
        self.name = name or f"bytes[{size}]"

    def encode(self, value: Any, version: int) -> bytes:
        if not isinstance(value, bytes | bytearray) or len(value) != self.size:
            raise EzspFrameError(f"{self.name} must be {self.size} bytes, got {value!r}")
        return bytes(value[::-1] if self.reverse else value)

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[bytes, int]:
        _need(data, offset, self.size, self.name)
        raw = data[offset : offset + self.size]
        return (raw[::-1] if self.reverse else raw), offset + self.size


class LengthPrefixed(Codec):
    """Bytes preceded by their length (one byte, or four for token data)."""

    def __init__(self, length: UInt) -> None:
        self.length = length
        self.name = f"LVBytes{'' if length.size == 1 else length.size * 8}"

    def encode(self, value: Any, version: int) -> bytes:
        if not isinstance(value, bytes | bytearray):
            raise EzspFrameError(f"{self.name} needs bytes, got {type(value).__name__}")
        return self.length.encode(len(value), version) + bytes(value)

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[bytes, int]:
        size, offset = self.length.decode(data, offset, version, values)
        _need(data, offset, size, f"{self.name} body")
        return data[offset : offset + size], offset + size


class Counted(Codec):
    """A list whose item count is an earlier field of the same frame."""

    def __init__(self, item: Codec, count_field: str) -> None:
        self.item, self.count_field = item, count_field
        self.name = f"list[{item.name}] (count: {count_field})"

    def encode(self, value: Any, version: int) -> bytes:
        return b"".join(self.item.encode(v, version) for v in value)

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[list[Any], int]:
        out = []
        for _ in range(int(values.get(self.count_field, 0))):
            v, offset = self.item.decode(data, offset, version, values)
            out.append(v)
        return out, offset


class Rest(Codec):
    """Items up to the end of the frame (counter arrays)."""

    def __init__(self, item: Codec) -> None:
        self.item = item
        self.name = f"list[{item.name}] (to end)"

    def encode(self, value: Any, version: int) -> bytes:
        return b"".join(self.item.encode(v, version) for v in value)

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[list[Any], int]:
        out = []
        while offset < len(data):
            v, offset = self.item.decode(data, offset, version, values)
            out.append(v)
        return out, offset

    def default(self, version: int) -> Any:
        return []


class LengthList(Codec):
    """A list preceded by a one-byte item count."""

    def __init__(self, item: Codec) -> None:
        self.item = item
        self.name = f"LVList[{item.name}]"

    def encode(self, value: Any, version: int) -> bytes:
        items = list(value)
        return U8.encode(len(items), version) + b"".join(
            self.item.encode(v, version) for v in items
        )

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[list[Any], int]:
        count, offset = U8.decode(data, offset, version, values)
        out = []
        for _ in range(count):
            v, offset = self.item.decode(data, offset, version, values)
            out.append(v)
        return out, offset


class When(Codec):
    """A field present only when an earlier one says so (token data after OK)."""

    def __init__(self, inner: Codec, predicate: Callable[[Mapping[str, Any]], bool]) -> None:
        self.inner, self.predicate = inner, predicate
        self.name = f"optional {inner.name}"

    def encode(self, value: Any, version: int) -> bytes:
        return b"" if value is None else self.inner.encode(value, version)

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[Any, int]:
        if not self.predicate(values):
            return None, offset
        return self.inner.decode(data, offset, version, values)

    def default(self, version: int) -> Any:
        return None


Layout = tuple[tuple[str, Codec], ...]


class Struct(Codec):
    """A named group of fields, as a dict (EmberApsFrame, EmberNetworkParameters, ...)."""

    def __init__(self, name: str, fields: Layout) -> None:
        self.name, self.fields = name, fields

    def encode(self, value: Any, version: int) -> bytes:
        if not isinstance(value, Mapping):
            raise EzspFrameError(f"{self.name} needs a mapping, got {type(value).__name__}")
        return encode_layout(self.fields, value, version, self.name)

    def decode(
        self, data: bytes, offset: int, version: int, values: Mapping[str, Any]
    ) -> tuple[dict[str, Any], int]:
        return _decode_fields(self.fields, data, offset, version, self.name)

    def default(self, version: int) -> dict[str, Any]:
        return {name: codec.default(version) for name, codec in self.fields}


U8: Final = UInt(1)
U16: Final = UInt(2)
U32: Final = UInt(4)
I8: Final = UInt(1, signed=True)
BOOL: Final = BoolCodec()
STATUS: Final = StatusCodec()
EUI64: Final = Fixed(EUI64_LEN, reverse=True, name="EUI64")
EXT_PAN_ID: Final = Fixed(EUI64_LEN, reverse=True, name="ExtendedPanId")
KEY: Final = Fixed(KEY_LEN, name="KeyData")
LV: Final = LengthPrefixed(U8)
LV32: Final = LengthPrefixed(U32)
CERT_283K1: Final = Fixed(CERTIFICATE_283K1_LEN, name="EmberCertificate283k1Data")

APS_FRAME: Final = Struct(
    "EmberApsFrame",
    (
        ("profileId", U16),
        ("clusterId", U16),
        ("sourceEndpoint", U8),
        ("destinationEndpoint", U8),
        ("options", U16),
        ("groupId", U16),
        ("sequence", U8),
    ),
)
NETWORK_PARAMETERS: Final = Struct(
    "EmberNetworkParameters",
    (
        ("extendedPanId", EXT_PAN_ID),
        ("panId", U16),
        ("radioTxPower", U8),
        ("radioChannel", U8),
        ("joinMethod", U8),
        ("nwkManagerId", U16),
        ("nwkUpdateId", U8),
        ("channels", U32),
    ),
)
INITIAL_SECURITY_STATE: Final = Struct(
    "EmberInitialSecurityState",
    (
        ("bitmask", U16),
        ("preconfiguredKey", KEY),
        ("networkKey", KEY),
        ("networkKeySequenceNumber", U8),
        ("preconfiguredTrustCenterEui64", EUI64),
    ),
)
CURRENT_SECURITY_STATE: Final = Struct(
    "EmberCurrentSecurityState", (("bitmask", U16), ("trustCenterLongAddress", EUI64))
)
SECURITY_CONTEXT: Final = Struct(
    "SecurityManagerContext",
    (
        ("core_key_type", U8),
        ("key_index", U8),
        ("derived_type", U16),
        ("eui64", EUI64),
        ("multi_network_index", U8),
        ("flags", U8),
        ("psa_key_alg_permission", U32),
    ),
)
APS_KEY_METADATA: Final = Struct(
    "SecurityManagerAPSKeyMetadata",
    (
        ("bitmask", U16),
        ("outgoing_frame_counter", U32),
        ("incoming_frame_counter", U32),
        ("ttl_in_seconds", U16),
    ),
)
NETWORK_KEY_INFO: Final = Struct(
    "SecurityManagerNetworkKeyInfo",
    (
        ("network_key_set", BOOL),
        ("alternate_network_key_set", BOOL),
        ("network_key_sequence_number", U8),
        ("alt_network_key_sequence_number", U8),
        ("network_key_frame_counter", U32),
    ),
)
MULTICAST_ENTRY: Final = Struct(
    "EmberMulticastTableEntry", (("multicastId", U16), ("endpoint", U8), ("networkIndex", U8))
)
CHILD_DATA: Final = Struct(
    "EmberChildData",
    (
        ("eui64", EUI64),
        ("type", U8),
        ("id", U16),
        ("phy", U8),
        ("power", U8),
        ("timeout", U8),
        ("timeout_remaining", U32),
    ),
)
RADIO_PARAMETERS: Final = Struct(
    "EmberMultiPhyRadioParameters",
    (("radioTxPower", I8), ("radioPage", U8), ("radioChannel", U8)),
)
#: Silicon Labs' duty-cycle limits (% x 100). bellows declares this struct with
#: the wrong fields (radio-stack.md 3.2); this is the layout of the C API.
DUTY_CYCLE_LIMITS: Final = Struct(
    "EmberDutyCycleLimits", (("limitThresh", U16), ("critThresh", U16), ("suspLimit", U16))
)
PER_DEVICE_DUTY_CYCLE: Final = Struct(
    "EmberPerDeviceDutyCycle", (("nodeId", U16), ("dutyCycleConsumed", U16))
)


def encode_layout(layout: Layout, values: Mapping[str, Any], version: int, what: str) -> bytes:
    """Serialise ``values`` field by field; a missing or bad field names itself."""
    out = bytearray()
    for name, codec in layout:
        if name not in values:
            raise EzspFrameError(f"{what}: field {name!r} is missing")
        try:
            out += codec.encode(values[name], version)
        except EzspFrameError as exc:
            raise EzspFrameError(f"{what}.{name}: {exc}") from None
    return bytes(out)


def _decode_fields(
    layout: Layout, data: bytes, offset: int, version: int, what: str
) -> tuple[dict[str, Any], int]:
    values: dict[str, Any] = {}
    for name, codec in layout:
        start = offset
        try:
            values[name], offset = codec.decode(data, offset, version, values)
        except EzspFrameError as exc:
            raise EzspFrameError(f"{what}.{name} at offset {start}: {exc}") from None
    return values, offset


def decode_layout(layout: Layout, data: bytes, version: int, what: str) -> dict[str, Any]:
    """Parse a whole parameter block; trailing bytes are an error."""
    values, end = _decode_fields(layout, data, 0, version, what)
    if end != len(data):
        raise EzspFrameError(f"{what}: {len(data) - end} trailing bytes after offset {end}")
    return values


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One EZSP frame ID: its request and response (or callback) parameters.

    ``since`` is the oldest protocol version with this layout (status width
    aside); ``until`` the newest, where a later version reused the frame ID.
    """

    name: str
    frame_id: int
    request: Layout
    response: Layout
    callback: bool = False
    since: int = SL_STATUS_SINCE
    until: int | None = None

    def supports(self, version: int) -> bool:
        return version >= self.since and (self.until is None or version <= self.until)

    def encode_request(self, values: Mapping[str, Any], version: int) -> bytes:
        return encode_layout(self.request, values, version, f"{self.name} request")

    def decode_request(self, data: bytes, version: int) -> dict[str, Any]:
        return decode_layout(self.request, data, version, f"{self.name} request")

    def encode_response(self, values: Mapping[str, Any], version: int) -> bytes:
        kind = "callback" if self.callback else "response"
        return encode_layout(self.response, values, version, f"{self.name} {kind}")

    def decode_response(self, data: bytes, version: int) -> dict[str, Any]:
        kind = "callback" if self.callback else "response"
        return decode_layout(self.response, data, version, f"{self.name} {kind}")

    def default_response(self, version: int) -> dict[str, Any]:
        """All-zero values for every response field (then set what matters)."""
        return {name: codec.default(version) for name, codec in self.response}


def _cmd(
    name: str,
    frame_id: int,
    request: Layout,
    response: Layout,
    *,
    since: int = SL_STATUS_SINCE,
    until: int | None = None,
) -> Command:
    return Command(name, frame_id, request, response, since=since, until=until)


def _cb(name: str, frame_id: int, params: Layout, *, since: int = SL_STATUS_SINCE) -> Command:
    return Command(name, frame_id, (), params, callback=True, since=since)


_S: Final = (("status", STATUS),)

#: Every frame the emulator answers or originates, and the probe sends.
COMMANDS: Final[tuple[Command, ...]] = (
    # -- configuration frames ------------------------------------------------------
    _cmd(
        "version",
        0x0000,
        (("desiredProtocolVersion", U8),),
        (("protocolVersion", U8), ("stackType", U8), ("stackVersion", U16)),
        since=4,
    ),
    _cmd(
        "addEndpoint",
        0x0002,
        (
            ("endpoint", U8),
            ("profileId", U16),
            ("deviceId", U16),
            ("deviceVersion", U8),
            ("inputClusterCount", U8),
            ("outputClusterCount", U8),
            ("inputClusterList", Counted(U16, "inputClusterCount")),
            ("outputClusterList", Counted(U16, "outputClusterCount")),
        ),
        _S,
    ),
    _cmd("getConfigurationValue", 0x0052, (("configId", U8),), (*_S, ("value", U16)), since=8),
    _cmd("setConfigurationValue", 0x0053, (("configId", U8), ("value", U16)), _S),
    _cmd("setPolicy", 0x0055, (("policyId", U8), ("decisionId", U8)), _S),
    _cmd("getValue", 0x00AA, (("valueId", U8),), (*_S, ("value", LV)), since=8),
    _cmd("setValue", 0x00AB, (("valueId", U8), ("value", LV)), _S),
    # -- utilities -------------------------------------------------------------
    _cmd("nop", 0x0005, (), (), since=4),
    _cmd("getMfgToken", 0x000B, (("tokenId", U8),), (("tokenData", LV),), since=8),
    _cmd("setMfgToken", 0x000C, (("tokenId", U8), ("tokenData", LV)), _S),
    _cmd("setManufacturerCode", 0x0015, (("code", U16),), _S),
    _cmd("getEui64", 0x0026, (), (("eui64", EUI64),), since=8),
    _cmd("getNodeId", 0x0027, (), (("nodeId", U16),), since=8),
    _cmd("customFrame", 0x0047, (("payload", LV),), (*_S, ("reply", LV)), since=8),
    _cmd("invalidCommand", 0x0058, (), (("reason", STATUS),), since=4),
    _cmd("readAndClearCounters", 0x0065, (), (("values", Rest(U16)),)),
    _cmd("echo", 0x0081, (("data", LV),), (("echo", LV),), since=8),
    _cmd("readCounters", 0x00F1, (), (("values", Rest(U16)),)),
    _cmd(
        "getTokenData",
        0x0102,
        (("token", U32), ("index", U32)),
        (*_S, ("value", When(LV32, lambda v: v.get("status") == 0))),
    ),
    _cmd("setTokenData", 0x0103, (("token", U32), ("index", U32), ("token_data", LV32)), _S),
    # -- networking ------------------------------------------------------------
    _cmd(
        "setConcentrator",
        0x0010,
        (
            ("on", BOOL),
            ("concentratorType", U16),
            ("minTime", U16),
            ("maxTime", U16),
            ("routeErrorThreshold", U8),
            ("deliveryFailureThreshold", U8),
            ("maxHops", U8),
        ),
        _S,
    ),
    _cmd("networkInit", 0x0017, (("networkInitBitmask", U16),), _S),
    _cmd("networkState", 0x0018, (), (("status", U8),), since=8),
    _cmd("formNetwork", 0x001E, (("parameters", NETWORK_PARAMETERS),), _S),
    _cmd("leaveNetwork", 0x0020, (("options", U8),), _S),
    _cmd("permitJoining", 0x0022, (("duration", U8),), _S),
    _cmd(
        "getNetworkParameters",
        0x0028,
        (),
        (*_S, ("nodeType", U8), ("parameters", NETWORK_PARAMETERS)),
        since=8,
    ),
    _cmd("getChildData", 0x004A, (("index", U8),), (*_S, ("child_data", CHILD_DATA))),
    _cmd("setSourceRouteDiscoveryMode", 0x005A, (("mode", U8),), (("remainingTime", U32),)),
    _cmd("getAddressTableInfo", 0x005E, (("index", U8),), (*_S, ("nwk", U16), ("eui64", EUI64))),
    _cmd("lookupNodeIdByEui64", 0x0060, (("eui64", EUI64),), (*_S, ("nodeId", U16))),
    _cmd("lookupEui64ByNodeId", 0x0061, (("nodeId", U16),), (*_S, ("eui64", EUI64))),
    _cmd(
        "getMulticastTableEntry",
        0x0063,
        (("index", U8),),
        (*_S, ("value", MULTICAST_ENTRY)),
    ),
    _cmd("setMulticastTableEntry", 0x0064, (("index", U8), ("value", MULTICAST_ENTRY)), _S),
    _cmd("setExtendedTimeout", 0x007E, (("remoteEui64", EUI64), ("extendedTimeout", BOOL)), _S),
    _cmd("getExtendedTimeout", 0x007F, (("remoteEui64", EUI64),), _S),
    _cmd("setRadioPower", 0x0099, (("power", I8),), _S),
    _cmd("setRadioChannel", 0x009A, (("channel", U8),), _S),
    _cmd("setChildData", 0x00AC, (("index", U8), ("child_data", CHILD_DATA)), _S),
    _cmd("setNeighborFrameCounter", 0x00AD, (("eui64", EUI64), ("frame_counter", U32)), _S),
    # -- multi-PHY (sub-GHz) and duty cycle ---------------------------------------
    _cmd("getDutyCycleState", 0x0035, (), (*_S, ("returnedState", U8))),
    _cmd("setDutyCycleLimitsInStack", 0x0040, (("limits", DUTY_CYCLE_LIMITS),), _S),
    _cmd("getDutyCycleLimits", 0x004B, (), (*_S, ("limits", DUTY_CYCLE_LIMITS))),
    _cmd(
        "multiPhyStart",
        0x00F8,
        (("phyIndex", U8), ("page", U8), ("channel", U8), ("power", I8), ("bitmask", U8)),
        _S,
        since=8,
    ),
    _cmd("multiPhyStop", 0x00F9, (("phyIndex", U8),), _S, since=8),
    _cmd("multiPhySetRadioPower", 0x00FA, (("phyIndex", U8), ("power", I8)), _S, since=8),
    _cmd(
        "multiPhySetRadioChannel",
        0x00FB,
        (("phyIndex", U8), ("page", U8), ("channel", U8)),
        _S,
        since=8,
    ),
    _cmd("getPhyInterfaceCount", 0x00FC, (), (("interfaceCount", U8),), since=8),
    _cmd(
        "getRadioParameters",
        0x00FD,
        (("phyIndex", U8),),
        (*_S, ("parameters", RADIO_PARAMETERS)),
        since=8,
    ),
    # -- messaging ---------------------------------------------------------------
    _cmd(
        "sendUnicast",
        0x0034,
        (
            ("message_type", U8),
            ("nwk", U16),
            ("aps_frame", APS_FRAME),
            ("message_tag", U16),
            ("message", LV),
        ),
        (*_S, ("sequence", U8)),
    ),
    _cmd(
        "sendBroadcast",
        0x0036,
        (
            ("alias", U16),
            ("destination", U16),
            ("sequence", U8),
            ("aps_frame", APS_FRAME),
            ("radius", U8),
            ("message_tag", U16),
            ("message", LV),
        ),
        (*_S, ("sequence", U8)),
    ),
    _cmd(
        "sendMulticast",
        0x0038,
        (
            ("aps_frame", APS_FRAME),
            ("hops", U8),
            ("broadcast_addr", U16),
            ("alias", U16),
            ("sequence", U8),
            ("message_tag", U16),
            ("message", LV),
        ),
        (*_S, ("sequence", U8)),
    ),
    _cmd(
        "sendReply",
        0x0039,
        (("sender", U16), ("apsFrame", APS_FRAME), ("messageContents", LV)),
        _S,
    ),
    # -- security ------------------------------------------------------------------
    _cmd("setInitialSecurityState", 0x0068, (("state", INITIAL_SECURITY_STATE),), _S),
    _cmd("getCurrentSecurityState", 0x0069, (), (*_S, ("state", CURRENT_SECURITY_STATE))),
    _cmd("findKeyTableEntry", 0x0075, (("address", EUI64), ("linkKey", BOOL)), (("index", U8),)),
    _cmd("eraseKeyTableEntry", 0x0076, (("index", U8),), _S),
    _cmd(
        "tokenFactoryReset",
        0x0077,
        (("excludeOutgoingFC", BOOL), ("excludeBootCounter", BOOL)),
        (),
    ),
    _cmd("clearKeyTable", 0x00B1, (), _S),
    _cmd("importLinkKey", 0x010E, (("index", U8), ("address", EUI64), ("key", KEY)), _S),
    _cmd(
        "exportLinkKeyByIndex",
        0x010F,
        (("index", U8),),
        (
            *_S,
            ("context", SECURITY_CONTEXT),
            ("plaintext_key", KEY),
            ("key_data", APS_KEY_METADATA),
        ),
    ),
    _cmd(
        "importTransientKey",
        0x0111,
        (("eui64", EUI64), ("plaintext_key", KEY), ("flags", U8)),
        _S,
    ),
    _cmd(
        "exportKey",
        0x0114,
        (("context", SECURITY_CONTEXT),),
        (*_S, ("key", KEY), ("context", SECURITY_CONTEXT)),
    ),
    _cmd("getNetworkKeyInfo", 0x0116, (), (*_S, ("network_key_info", NETWORK_KEY_INFO))),
    # -- Certificate-based key establishment (Smart Energy) ------------------------
    _cmd("getCertificate283k1", 0x00EC, (), (*_S, ("localCert", CERT_283K1)), since=8),
    # -- Green Power -------------------------------------------------------------
    _cmd("gpSinkTableClearAll", 0x00E2, (), ()),
    _cmd("gpClearProxyTable", 0x005F, (), (), since=17),
    # -- callbacks the emulator originates ----------------------------------------
    _cb("stackStatusHandler", 0x0019, _S, since=8),
    _cb(
        "childJoinHandler",
        0x0023,
        (
            ("index", U8),
            ("joining", BOOL),
            ("childId", U16),
            ("childEui64", EUI64),
            ("childType", U8),
        ),
    ),
    _cb(
        "trustCenterJoinHandler",
        0x0024,
        (
            ("newNodeId", U16),
            ("newNodeEui64", EUI64),
            ("status", U8),
            ("policyDecision", U8),
            ("parentOfNewNodeId", U16),
        ),
    ),
    _cb(
        "messageSentHandler",
        0x003F,
        (
            *_S,
            ("message_type", U8),
            ("nwk", U16),
            ("aps_frame", APS_FRAME),
            ("message_tag", U16),
            ("message", LV),
        ),
    ),
    _cb(
        "incomingMessageHandler",
        0x0045,
        (
            ("message_type", U8),
            ("aps_frame", APS_FRAME),
            ("nwk", U16),
            ("eui64", EUI64),
            ("binding_index", U8),
            ("address_index", U8),
            ("lqi", U8),
            ("rssi", I8),
            ("timestamp", U32),
            ("message", LV),
        ),
    ),
    _cb(
        "dutyCycleHandler",
        0x004D,
        (
            ("channelPage", U8),
            ("channel", U8),
            ("state", U8),
            ("arrayOfDeviceDutyCycles", LengthList(PER_DEVICE_DUTY_CYCLE)),
        ),
    ),
)

BY_NAME: Final[Mapping[str, Command]] = {c.name: c for c in COMMANDS}


def command(name: str, version: int) -> Command:
    """The catalogue row for ``name``, checked against the protocol version."""
    try:
        cmd = BY_NAME[name]
    except KeyError:
        raise EzspUnsupportedError(f"EZSP command {name!r} is not in gbhil's catalogue") from None
    if not cmd.supports(version):
        raise EzspUnsupportedError(
            f"EZSP command {name!r} (0x{cmd.frame_id:04X}) has no catalogued layout for "
            f"protocol version {version} (supported from {cmd.since})"
        )
    return cmd


def by_frame_id(frame_id: int, version: int) -> Command | None:
    """The row with ``frame_id`` at ``version`` (IDs are reused across versions)."""
    for cmd in COMMANDS:
        if cmd.frame_id == frame_id and cmd.supports(version):
            return cmd
    return None


# ---------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EzspHeader:
    """Sequence number, frame control and frame ID of one EZSP frame."""

    sequence: int
    frame_id: int
    control: int = 0
    extended: bool = True
    control_high: int = FC_HIGH_FORMAT_VERSION

    @property
    def is_response(self) -> bool:
        return bool(self.control & FC_RESPONSE)

    @property
    def is_async_callback(self) -> bool:
        return bool(self.control & FC_ASYNC_CALLBACK)

    def encode(self) -> bytes:
        if not 0 <= self.sequence <= 0xFF:
            raise EzspFrameError(f"sequence {self.sequence} does not fit one byte")
        if self.extended:
            if not 0 <= self.frame_id <= 0xFFFF:
                raise EzspFrameError(f"frame ID 0x{self.frame_id:X} does not fit 16 bits")
            return bytes((self.sequence, self.control, self.control_high)) + (
                self.frame_id.to_bytes(2, "little")
            )
        if not 0 <= self.frame_id <= 0xFF:
            raise EzspFrameError(f"frame ID 0x{self.frame_id:X} does not fit a legacy header")
        return bytes((self.sequence, self.control, self.frame_id))


def is_legacy_version_command(frame: bytes) -> bool:
    """The ``version`` command a host sends first, always in the legacy format."""
    return len(frame) == LEGACY_HEADER_LEN + 1 and frame[2] == 0x00 and not frame[1] & FC_RESPONSE


def decode_header(frame: bytes, *, extended: bool) -> tuple[EzspHeader, bytes]:
    """Split an EZSP frame into its header and parameter bytes."""
    size = EXTENDED_HEADER_LEN if extended else LEGACY_HEADER_LEN
    if len(frame) < size:
        raise EzspFrameError(
            f"EZSP frame of {len(frame)} bytes is shorter than the "
            f"{'extended' if extended else 'legacy'} header ({size})"
        )
    if not extended:
        return EzspHeader(frame[0], frame[2], frame[1], extended=False, control_high=0), frame[3:]
    high = frame[2]
    if high & FC_HIGH_FORMAT_MASK != FC_HIGH_FORMAT_VERSION:
        raise EzspFrameError(
            f"frame control high byte 0x{high:02X}: frame format version "
            f"{high & FC_HIGH_FORMAT_MASK}, expected {FC_HIGH_FORMAT_VERSION}"
        )
    if high & (FC_HIGH_SECURITY | FC_HIGH_PADDING):
        raise EzspFrameError(
            f"frame control high byte 0x{high:02X}: EZSP security/padding is not supported"
        )
    frame_id = int.from_bytes(frame[3:5], "little")
    return EzspHeader(frame[0], frame_id, frame[1], extended=True, control_high=high), frame[5:]


def build_frame(
    name: str,
    values: Mapping[str, Any],
    *,
    sequence: int,
    version: int,
    response: bool = False,
    async_callback: bool = False,
    legacy: bool = False,
) -> bytes:
    """Header + parameters of one command (host side) or response/callback (NCP side)."""
    cmd = command(name, version)
    control = (FC_RESPONSE if response else 0) | (FC_ASYNC_CALLBACK if async_callback else 0)
    header = EzspHeader(sequence, cmd.frame_id, control, extended=not legacy)
    body = cmd.encode_response(values, version) if response else cmd.encode_request(values, version)
    return header.encode() + body


__all__ = [
    "BY_NAME",
    "COMMANDS",
    "DEFAULT_EMULATED_VERSION",
    "EMULATED_VERSIONS",
    "MIN_PROTOCOL_VERSION",
    "ApsOption",
    "Codec",
    "Command",
    "ConfigId",
    "DeviceUpdate",
    "DutyCycleState",
    "EmberStatus",
    "EzspError",
    "EzspFrameError",
    "EzspHeader",
    "EzspStatus",
    "EzspUnsupportedError",
    "IncomingMessageType",
    "JoinDecision",
    "MfgTokenId",
    "NetworkStatus",
    "NodeType",
    "OutgoingMessageType",
    "SlStatus",
    "ValueId",
    "build_frame",
    "by_frame_id",
    "command",
    "decode_header",
    "decode_layout",
    "ember_channel",
    "encode_layout",
    "is_legacy_version_command",
    "page_channel_of",
]
