"""ZCL frames of the HAN procedures, and a port that exchanges them over a transport.

The first half is a pure codec: typed commands of the Smart Energy Tunnelling
cluster (0x0704), the OTA Upgrade cluster (0x0019) and Metering mirroring
(0x0702), plus the profile-wide Report Attributes and Default Response, with
the GBCS tunnel header carried inside TransferData (gbcs-facts 7.1). Every
field is little-endian as ZCL requires; the ZCL header and the general-command
payloads reuse :mod:`gbhil.gbcs.zcl`. Decoding checks every field and fails
with :class:`ZclFrameError` naming the field and its byte offset; encoding
checks ranges the same way, and ``decode(encode(x)) == x`` for every command.

The second half, :class:`ZclPort`, is one application endpoint on a
:class:`~gbhil.han.transport.HanTransport`: it numbers outgoing frames,
decodes incoming ones, hands responses to whoever awaits them (with timeouts
on the shared clock, never on the wall clock) and everything else, in
arrival order, to per-cluster handlers. Power and sleep gate the radio:
a port that is off or asleep hears nothing, as a real one would not.
"""

from __future__ import annotations

import asyncio
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Final, TypeAlias, TypeVar

from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.errors import GbcsDecodeError, GbcsEncodeError
from gbhil.gbcs.reader import Reader
from gbhil.gbcs.zcl import (
    AttributeValue,
    DefaultResponse,
    ReportAttributes,
    ZclHeader,
    decode_zcl_header,
    decode_zcl_payload,
    encode_zcl_header,
    encode_zcl_payload,
)
from gbhil.han.channels import HanError
from gbhil.han.transport import (
    ENDPOINT_BROADCAST,
    EUI64_LEN,
    ApsFrame,
    HanTransport,
    TxPriority,
    TxResult,
)
from gbhil.simulator.clock import Clock

# ---------------------------------------------------------------------------
# Catalogue: clusters, command identifiers and status codes (ZCL / ZSE specs)
# ---------------------------------------------------------------------------

CLUSTER_OTA: Final = cat.CLUSTER_OTA
CLUSTER_METERING: Final = cat.CLUSTER_METERING
CLUSTER_TUNNELING: Final = cat.CLUSTER_TUNNELING
#: APS endpoint every gbhil node uses for Smart Energy unless told otherwise.
DEFAULT_ENDPOINT: Final = 1


class TunnelClientCommand(IntEnum):
    """Tunnelling commands a client sends (the server receives them)."""

    REQUEST_TUNNEL = 0x00
    CLOSE_TUNNEL = 0x01
    TRANSFER_DATA = 0x02
    TRANSFER_DATA_ERROR = 0x03


class TunnelServerCommand(IntEnum):
    """Tunnelling commands the server (the CHF) sends."""

    REQUEST_TUNNEL_RESPONSE = 0x00
    TRANSFER_DATA = 0x01
    TRANSFER_DATA_ERROR = 0x02
    TUNNEL_CLOSURE_NOTIFICATION = 0x06


class TunnelProtocol(IntEnum):
    """Tunnelling ProtocolID values; GBCS tunnels GB-HRGP."""

    DLMS_COSEM = 0
    IEC_61107 = 1
    ANSI_C12 = 2
    M_BUS = 3
    SML = 4
    CLIMATE_TALK = 5
    GB_HRGP = 6


class TunnelStatus(IntEnum):
    """RequestTunnelResponse TunnelStatus."""

    SUCCESS = 0x00
    BUSY = 0x01
    NO_MORE_TUNNEL_IDS = 0x02
    PROTOCOL_NOT_SUPPORTED = 0x03
    FLOW_CONTROL_NOT_SUPPORTED = 0x04


class TransferDataStatus(IntEnum):
    """TransferDataError status."""

    NO_SUCH_TUNNEL = 0x00
    WRONG_DEVICE = 0x01
    DATA_OVERFLOW = 0x02


class GbcsTunnelCommand(IntEnum):
    """First octet of TransferData data in a GBCS tunnel (gbcs-facts 7.1)."""

    GET = 0x01
    GET_RESPONSE = 0x02
    PUT = 0x03


#: Tag bytes a bare GBCS message starts with (MAC header / General Signing / GBT).
GBCS_MESSAGE_TAGS: Final = frozenset({0xDD, 0xDF})


class OtaClientCommand(IntEnum):
    """OTA Upgrade commands the client (the device) sends."""

    QUERY_NEXT_IMAGE_REQUEST = 0x01
    IMAGE_BLOCK_REQUEST = 0x03
    UPGRADE_END_REQUEST = 0x06


class OtaServerCommand(IntEnum):
    """OTA Upgrade commands the server (the CHF) sends."""

    IMAGE_NOTIFY = 0x00
    QUERY_NEXT_IMAGE_RESPONSE = 0x02
    IMAGE_BLOCK_RESPONSE = 0x05
    UPGRADE_END_RESPONSE = 0x07


class OtaStatus(IntEnum):
    """ZCL status codes the OTA cluster uses (values from the ZCL status table)."""

    SUCCESS = 0x00
    NOT_AUTHORIZED = 0x7E
    MALFORMED_COMMAND = 0x80
    ABORT = 0x95
    INVALID_IMAGE = 0x96
    WAIT_FOR_DATA = 0x97
    NO_IMAGE_AVAILABLE = 0x98
    REQUIRE_MORE_IMAGE = 0x99


class ImageNotifyPayloadType(IntEnum):
    """Which optional fields an Image Notify carries (each adds one to the previous)."""

    JITTER = 0x00
    JITTER_MANUFACTURER = 0x01
    JITTER_MANUFACTURER_TYPE = 0x02
    JITTER_MANUFACTURER_TYPE_VERSION = 0x03


#: Query jitter is a percentage, 1-100.
OTA_MAX_QUERY_JITTER: Final = 100
#: Upgrade End Response upgrade time "wait for a further instruction" (GBCS: activation).
OTA_UPGRADE_TIME_WAIT: Final = 0xFFFFFFFF
#: Query Next Image Request field control: hardware version present.
OTA_QNI_HARDWARE_VERSION: Final = 0x01
#: Image Block Request field control: request node address / minimum block period present.
OTA_IBR_NODE_ADDRESS: Final = 0x01
OTA_IBR_MIN_BLOCK_PERIOD: Final = 0x02


class MeteringServerSent(IntEnum):
    """Metering commands the metering *server* sends (the GSME is the server)."""

    REQUEST_MIRROR = 0x01
    REMOVE_MIRROR = 0x02


class MeteringClientSent(IntEnum):
    """Metering commands the metering *client* sends (the GPF hosting the mirror)."""

    REQUEST_MIRROR_RESPONSE = 0x01
    MIRROR_REMOVED = 0x02


#: RequestMirrorResponse endpoint value meaning "no mirror could be created".
MIRROR_ENDPOINT_NONE: Final = 0xFFFF
ZCL_CMD_REPORT_ATTRIBUTES: Final = cat.CMD_REPORT_ATTRIBUTES
ZCL_CMD_DEFAULT_RESPONSE: Final = cat.CMD_DEFAULT_RESPONSE


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ZclFrameError(HanError, ValueError):
    """A ZCL frame that cannot be built or parsed; names the field and byte offset."""

    def __init__(self, field: str, reason: str, offset: int | None = None) -> None:
        self.field = field
        self.reason = reason
        self.offset = offset
        where = "" if offset is None else f" at byte {offset}"
        super().__init__(f"{field}{where}: {reason}")


def _from_gbcs(exc: GbcsDecodeError | GbcsEncodeError) -> ZclFrameError:
    if isinstance(exc, GbcsDecodeError):
        return ZclFrameError(exc.field, exc.reason, exc.offset)
    return ZclFrameError(exc.field, exc.reason)


def _uint(value: object, size: int, name: str) -> bytes:
    bits = 8 * size
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ZclFrameError(name, f"must be an unsigned {bits}-bit integer, got {value!r}")
    return value.to_bytes(size, "little")


def _eui_le(value: object, name: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != EUI64_LEN:
        raise ZclFrameError(name, f"must be an 8-byte EUI-64, got {value!r}")
    return value[::-1]


def _le(r: Reader, size: int, name: str) -> int:
    return r.uint(size, name, "little")


def _member(kind: type[IntEnum], value: object, name: str) -> Any:
    """``kind(value)`` for encoding, with a precise error instead of a bare ValueError."""
    try:
        return kind(value)  # type: ignore[call-arg]
    except ValueError:
        raise ZclFrameError(name, f"{value!r} is not a {kind.__name__}") from None


def _enum(r: Reader, kind: type[IntEnum], name: str) -> Any:
    at = r.offset
    raw = r.u8(name)
    try:
        return kind(raw)
    except ValueError:
        known = ", ".join(f"0x{m:02X}" for m in kind)
        raise ZclFrameError(name, f"unknown value 0x{raw:02X} (known: {known})", at) from None


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


class ZclCommand(ABC):
    """Base of the typed commands: where they live and how their payload is coded.

    ``CLUSTER`` is None for the profile-wide commands, which carry ``cluster_id``
    as a field. ``SERVER_TO_CLIENT`` is None when the command may go either way
    (it then carries ``server_to_client`` as a field).
    """

    CLUSTER: ClassVar[int | None] = None
    COMMAND_ID: ClassVar[int] = 0
    SERVER_TO_CLIENT: ClassVar[bool | None] = None
    GLOBAL: ClassVar[bool] = False

    @property
    def cluster(self) -> int:
        if self.CLUSTER is not None:
            return self.CLUSTER
        return int(getattr(self, "cluster_id"))  # noqa: B009  (profile-wide commands)

    @property
    def to_client(self) -> bool:
        if self.SERVER_TO_CLIENT is not None:
            return self.SERVER_TO_CLIENT
        return bool(getattr(self, "server_to_client"))  # noqa: B009

    @abstractmethod
    def encode_payload(self) -> bytes:
        """The command's ZCL payload (little-endian fields)."""

    @classmethod
    @abstractmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> ZclCommand:
        """Read the payload after ``header``."""


# -- Tunnelling ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestTunnel(ZclCommand):
    """Client asks the CHF for a tunnel (GBCS: protocol GB-HRGP, no flow control)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelClientCommand.REQUEST_TUNNEL
    SERVER_TO_CLIENT: ClassVar[bool | None] = False

    protocol_id: int = TunnelProtocol.GB_HRGP
    manufacturer_code: int = 0xFFFF
    flow_control: bool = False
    max_incoming_transfer_size: int = 1500

    def encode_payload(self) -> bytes:
        if not isinstance(self.flow_control, bool):
            raise ZclFrameError("tunnel.flow_control", f"must be a bool, got {self.flow_control!r}")
        return (
            _uint(self.protocol_id, 1, "tunnel.protocol_id")
            + _uint(self.manufacturer_code, 2, "tunnel.manufacturer_code")
            + bytes((int(self.flow_control),))
            + _uint(self.max_incoming_transfer_size, 2, "tunnel.max_incoming_transfer_size")
        )

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> RequestTunnel:
        protocol = r.u8("tunnel.protocol_id")
        manufacturer = _le(r, 2, "tunnel.manufacturer_code")
        at = r.offset
        flow = r.u8("tunnel.flow_control")
        if flow > 1:
            raise ZclFrameError("tunnel.flow_control", f"boolean must be 0 or 1, got {flow}", at)
        size = _le(r, 2, "tunnel.max_incoming_transfer_size")
        return cls(protocol, manufacturer, bool(flow), size)


@dataclass(frozen=True, slots=True)
class RequestTunnelResponse(ZclCommand):
    """The CHF's answer: tunnel id, status and what it can receive in one TransferData."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelServerCommand.REQUEST_TUNNEL_RESPONSE
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    tunnel_id: int
    status: TunnelStatus
    max_incoming_transfer_size: int

    def encode_payload(self) -> bytes:
        return (
            _uint(self.tunnel_id, 2, "tunnel.tunnel_id")
            + _uint(int(self.status), 1, "tunnel.status")
            + _uint(self.max_incoming_transfer_size, 2, "tunnel.max_incoming_transfer_size")
        )

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> RequestTunnelResponse:
        tid = _le(r, 2, "tunnel.tunnel_id")
        status = _enum(r, TunnelStatus, "tunnel.status")
        return cls(tid, status, _le(r, 2, "tunnel.max_incoming_transfer_size"))


@dataclass(frozen=True, slots=True)
class CloseTunnel(ZclCommand):
    """Client closes its tunnel."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelClientCommand.CLOSE_TUNNEL
    SERVER_TO_CLIENT: ClassVar[bool | None] = False

    tunnel_id: int

    def encode_payload(self) -> bytes:
        return _uint(self.tunnel_id, 2, "tunnel.tunnel_id")

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> CloseTunnel:
        return cls(_le(r, 2, "tunnel.tunnel_id"))


@dataclass(frozen=True, slots=True)
class TunnelClosureNotification(ZclCommand):
    """Server tells a client its tunnel is gone."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelServerCommand.TUNNEL_CLOSURE_NOTIFICATION
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    tunnel_id: int

    def encode_payload(self) -> bytes:
        return _uint(self.tunnel_id, 2, "tunnel.tunnel_id")

    @classmethod
    def decode_payload(
        cls, r: Reader, header: ZclHeader, cluster_id: int
    ) -> TunnelClosureNotification:
        return cls(_le(r, 2, "tunnel.tunnel_id"))


@dataclass(frozen=True, slots=True)
class _TransferDataBase(ZclCommand):
    tunnel_id: int
    data: bytes

    def encode_payload(self) -> bytes:
        if not isinstance(self.data, bytes):
            raise ZclFrameError("tunnel.data", f"must be bytes, got {type(self.data).__name__}")
        return _uint(self.tunnel_id, 2, "tunnel.tunnel_id") + self.data

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> _TransferDataBase:
        return cls(_le(r, 2, "tunnel.tunnel_id"), r.rest())


@dataclass(frozen=True, slots=True)
class TransferDataToServer(_TransferDataBase):
    """Client -> CHF data (GBCS: GET or PUT)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelClientCommand.TRANSFER_DATA
    SERVER_TO_CLIENT: ClassVar[bool | None] = False


@dataclass(frozen=True, slots=True)
class TransferDataToClient(_TransferDataBase):
    """CHF -> client data (GBCS: GET-RESPONSE or PUT)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelServerCommand.TRANSFER_DATA
    SERVER_TO_CLIENT: ClassVar[bool | None] = True


@dataclass(frozen=True, slots=True)
class _TransferDataErrorBase(ZclCommand):
    tunnel_id: int
    status: TransferDataStatus

    def encode_payload(self) -> bytes:
        return _uint(self.tunnel_id, 2, "tunnel.tunnel_id") + _uint(
            int(self.status), 1, "tunnel.transfer_data_status"
        )

    @classmethod
    def decode_payload(
        cls, r: Reader, header: ZclHeader, cluster_id: int
    ) -> _TransferDataErrorBase:
        tid = _le(r, 2, "tunnel.tunnel_id")
        return cls(tid, _enum(r, TransferDataStatus, "tunnel.transfer_data_status"))


@dataclass(frozen=True, slots=True)
class TransferDataErrorToServer(_TransferDataErrorBase):
    """Client refuses a TransferData from the CHF."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelClientCommand.TRANSFER_DATA_ERROR
    SERVER_TO_CLIENT: ClassVar[bool | None] = False


@dataclass(frozen=True, slots=True)
class TransferDataErrorToClient(_TransferDataErrorBase):
    """CHF refuses a client's TransferData (no such tunnel, wrong device, overflow)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_TUNNELING
    COMMAND_ID: ClassVar[int] = TunnelServerCommand.TRANSFER_DATA_ERROR
    SERVER_TO_CLIENT: ClassVar[bool | None] = True


# -- OTA Upgrade -------------------------------------------------------------------


def _ota_id(
    manufacturer_code: int, image_type: int, file_version: int, prefix: str = "ota"
) -> bytes:
    return (
        _uint(manufacturer_code, 2, f"{prefix}.manufacturer_code")
        + _uint(image_type, 2, f"{prefix}.image_type")
        + _uint(file_version, 4, f"{prefix}.file_version")
    )


def _dec_ota_id(r: Reader) -> tuple[int, int, int]:
    return (
        _le(r, 2, "ota.manufacturer_code"),
        _le(r, 2, "ota.image_type"),
        _le(r, 4, "ota.file_version"),
    )


@dataclass(frozen=True, slots=True)
class ImageNotify(ZclCommand):
    """CHF tells a client that an image is waiting (fields as ``payload_type`` says)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_OTA
    COMMAND_ID: ClassVar[int] = OtaServerCommand.IMAGE_NOTIFY
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    payload_type: ImageNotifyPayloadType
    query_jitter: int = OTA_MAX_QUERY_JITTER
    manufacturer_code: int | None = None
    image_type: int | None = None
    file_version: int | None = None

    def _fields(self) -> list[tuple[str, int | None, int]]:
        return [
            ("ota.manufacturer_code", self.manufacturer_code, 2),
            ("ota.image_type", self.image_type, 2),
            ("ota.file_version", self.file_version, 4),
        ]

    def encode_payload(self) -> bytes:
        kind = _member(ImageNotifyPayloadType, self.payload_type, "ota.payload_type")
        if not 1 <= self.query_jitter <= OTA_MAX_QUERY_JITTER:
            raise ZclFrameError("ota.query_jitter", f"must be 1-100, got {self.query_jitter!r}")
        out = bytes((kind, self.query_jitter))
        for index, (name, value, size) in enumerate(self._fields()):
            present = index < kind
            if present and value is None:
                raise ZclFrameError(name, f"payload type {kind} needs it")
            if not present and value is not None:
                raise ZclFrameError(name, f"payload type {kind} does not carry it")
            if value is not None:
                out += _uint(value, size, name)
        return out

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> ImageNotify:
        kind = _enum(r, ImageNotifyPayloadType, "ota.payload_type")
        at = r.offset
        jitter = r.u8("ota.query_jitter")
        if not 1 <= jitter <= OTA_MAX_QUERY_JITTER:
            raise ZclFrameError("ota.query_jitter", f"must be 1-100, got {jitter}", at)
        values: list[int | None] = [None, None, None]
        for index, (name, size) in enumerate(
            (("ota.manufacturer_code", 2), ("ota.image_type", 2), ("ota.file_version", 4))
        ):
            if index < kind:
                values[index] = _le(r, size, name)
        return cls(kind, jitter, *values)


@dataclass(frozen=True, slots=True)
class QueryNextImageRequest(ZclCommand):
    """Client reports what it runs and asks whether there is something newer."""

    CLUSTER: ClassVar[int | None] = CLUSTER_OTA
    COMMAND_ID: ClassVar[int] = OtaClientCommand.QUERY_NEXT_IMAGE_REQUEST
    SERVER_TO_CLIENT: ClassVar[bool | None] = False

    manufacturer_code: int
    image_type: int
    current_file_version: int
    hardware_version: int | None = None

    def encode_payload(self) -> bytes:
        fc = OTA_QNI_HARDWARE_VERSION if self.hardware_version is not None else 0
        out = bytes((fc,)) + _ota_id(
            self.manufacturer_code, self.image_type, self.current_file_version
        )
        if self.hardware_version is not None:
            out += _uint(self.hardware_version, 2, "ota.hardware_version")
        return out

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> QueryNextImageRequest:
        at = r.offset
        fc = r.u8("ota.field_control")
        if fc & ~OTA_QNI_HARDWARE_VERSION:
            raise ZclFrameError("ota.field_control", f"reserved bits set in 0x{fc:02X}", at)
        ids = _dec_ota_id(r)
        hw = _le(r, 2, "ota.hardware_version") if fc & OTA_QNI_HARDWARE_VERSION else None
        return cls(*ids, hw)


@dataclass(frozen=True, slots=True)
class QueryNextImageResponse(ZclCommand):
    """SUCCESS with the image's identity and size, or a bare status."""

    CLUSTER: ClassVar[int | None] = CLUSTER_OTA
    COMMAND_ID: ClassVar[int] = OtaServerCommand.QUERY_NEXT_IMAGE_RESPONSE
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    status: OtaStatus
    manufacturer_code: int | None = None
    image_type: int | None = None
    file_version: int | None = None
    image_size: int | None = None

    def encode_payload(self) -> bytes:
        status = _member(OtaStatus, self.status, "ota.status")
        rest = (self.manufacturer_code, self.image_type, self.file_version, self.image_size)
        if status is not OtaStatus.SUCCESS:
            if rest != (None,) * 4:
                raise ZclFrameError("ota.status", f"{status.name} carries no image fields")
            return bytes((status,))
        if None in rest:
            raise ZclFrameError("ota.status", "SUCCESS needs all image fields")
        assert self.manufacturer_code is not None and self.image_type is not None
        assert self.file_version is not None and self.image_size is not None
        return (
            bytes((status,))
            + _ota_id(self.manufacturer_code, self.image_type, self.file_version)
            + _uint(self.image_size, 4, "ota.image_size")
        )

    @classmethod
    def decode_payload(
        cls, r: Reader, header: ZclHeader, cluster_id: int
    ) -> QueryNextImageResponse:
        status = _enum(r, OtaStatus, "ota.status")
        if status is not OtaStatus.SUCCESS:
            return cls(status)
        ids = _dec_ota_id(r)
        return cls(status, *ids, _le(r, 4, "ota.image_size"))


@dataclass(frozen=True, slots=True)
class ImageBlockRequest(ZclCommand):
    """Client asks for ``max_data_size`` octets of the file from ``file_offset``."""

    CLUSTER: ClassVar[int | None] = CLUSTER_OTA
    COMMAND_ID: ClassVar[int] = OtaClientCommand.IMAGE_BLOCK_REQUEST
    SERVER_TO_CLIENT: ClassVar[bool | None] = False

    manufacturer_code: int
    image_type: int
    file_version: int
    file_offset: int
    max_data_size: int
    request_node_address: bytes | None = None
    minimum_block_period: int | None = None

    def encode_payload(self) -> bytes:
        fc = (OTA_IBR_NODE_ADDRESS if self.request_node_address is not None else 0) | (
            OTA_IBR_MIN_BLOCK_PERIOD if self.minimum_block_period is not None else 0
        )
        out = (
            bytes((fc,))
            + _ota_id(self.manufacturer_code, self.image_type, self.file_version)
            + _uint(self.file_offset, 4, "ota.file_offset")
            + _uint(self.max_data_size, 1, "ota.max_data_size")
        )
        if self.request_node_address is not None:
            out += _eui_le(self.request_node_address, "ota.request_node_address")
        if self.minimum_block_period is not None:
            out += _uint(self.minimum_block_period, 2, "ota.minimum_block_period")
        return out

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> ImageBlockRequest:
        at = r.offset
        fc = r.u8("ota.field_control")
        if fc & ~(OTA_IBR_NODE_ADDRESS | OTA_IBR_MIN_BLOCK_PERIOD):
            raise ZclFrameError("ota.field_control", f"reserved bits set in 0x{fc:02X}", at)
        ids = _dec_ota_id(r)
        offset = _le(r, 4, "ota.file_offset")
        size = r.u8("ota.max_data_size")
        node = r.take(8, "ota.request_node_address")[::-1] if fc & OTA_IBR_NODE_ADDRESS else None
        period = _le(r, 2, "ota.minimum_block_period") if fc & OTA_IBR_MIN_BLOCK_PERIOD else None
        return cls(*ids, offset, size, node, period)


@dataclass(frozen=True, slots=True)
class ImageBlockResponse(ZclCommand):
    """A block of the file (SUCCESS), come back later (WAIT_FOR_DATA), or ABORT.

    SUCCESS carries the image identity, ``file_offset`` and ``data``;
    WAIT_FOR_DATA carries ``current_time``, ``request_time`` (UTC seconds since
    2000) and ``minimum_block_period``; ABORT carries nothing.
    """

    CLUSTER: ClassVar[int | None] = CLUSTER_OTA
    COMMAND_ID: ClassVar[int] = OtaServerCommand.IMAGE_BLOCK_RESPONSE
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    status: OtaStatus
    manufacturer_code: int | None = None
    image_type: int | None = None
    file_version: int | None = None
    file_offset: int | None = None
    data: bytes | None = None
    current_time: int | None = None
    request_time: int | None = None
    minimum_block_period: int | None = None

    def encode_payload(self) -> bytes:
        status = _member(OtaStatus, self.status, "ota.status")
        block = (
            self.manufacturer_code,
            self.image_type,
            self.file_version,
            self.file_offset,
            self.data,
        )
        wait = (self.current_time, self.request_time, self.minimum_block_period)
        if status is OtaStatus.SUCCESS:
            if None in block or wait != (None,) * 3:
                raise ZclFrameError("ota.status", "SUCCESS carries exactly the block fields")
            assert self.data is not None and self.file_offset is not None
            assert self.manufacturer_code is not None and self.image_type is not None
            assert self.file_version is not None
            if not isinstance(self.data, bytes) or len(self.data) > 0xFF:
                raise ZclFrameError("ota.image_data", "must be bytes of at most 255 octets")
            return (
                bytes((status,))
                + _ota_id(self.manufacturer_code, self.image_type, self.file_version)
                + _uint(self.file_offset, 4, "ota.file_offset")
                + bytes((len(self.data),))
                + self.data
            )
        if status is OtaStatus.WAIT_FOR_DATA:
            if None in wait or block != (None,) * 5:
                raise ZclFrameError("ota.status", "WAIT_FOR_DATA carries exactly the wait fields")
            assert self.current_time is not None and self.request_time is not None
            assert self.minimum_block_period is not None
            return (
                bytes((status,))
                + _uint(self.current_time, 4, "ota.current_time")
                + _uint(self.request_time, 4, "ota.request_time")
                + _uint(self.minimum_block_period, 2, "ota.minimum_block_period")
            )
        if block + wait != (None,) * 8:
            raise ZclFrameError("ota.status", f"{status.name} carries no further fields")
        return bytes((status,))

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> ImageBlockResponse:
        status = _enum(r, OtaStatus, "ota.status")
        if status is OtaStatus.SUCCESS:
            ids = _dec_ota_id(r)
            offset = _le(r, 4, "ota.file_offset")
            size = r.u8("ota.data_size")
            return cls(status, *ids, offset, r.take(size, "ota.image_data"))
        if status is OtaStatus.WAIT_FOR_DATA:
            now = _le(r, 4, "ota.current_time")
            at = _le(r, 4, "ota.request_time")
            return cls(
                status,
                current_time=now,
                request_time=at,
                minimum_block_period=_le(r, 2, "ota.minimum_block_period"),
            )
        return cls(status)


@dataclass(frozen=True, slots=True)
class UpgradeEndRequest(ZclCommand):
    """Client reports the download outcome (SUCCESS, INVALID_IMAGE, ABORT, ...)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_OTA
    COMMAND_ID: ClassVar[int] = OtaClientCommand.UPGRADE_END_REQUEST
    SERVER_TO_CLIENT: ClassVar[bool | None] = False

    status: OtaStatus
    manufacturer_code: int
    image_type: int
    file_version: int

    def encode_payload(self) -> bytes:
        return bytes((_member(OtaStatus, self.status, "ota.status"),)) + _ota_id(
            self.manufacturer_code, self.image_type, self.file_version
        )

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> UpgradeEndRequest:
        status = _enum(r, OtaStatus, "ota.status")
        return cls(status, *_dec_ota_id(r))


@dataclass(frozen=True, slots=True)
class UpgradeEndResponse(ZclCommand):
    """When to switch to the new image; GBCS CHFs send 0xFFFFFFFF (wait for activation)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_OTA
    COMMAND_ID: ClassVar[int] = OtaServerCommand.UPGRADE_END_RESPONSE
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    manufacturer_code: int
    image_type: int
    file_version: int
    current_time: int
    upgrade_time: int = OTA_UPGRADE_TIME_WAIT

    def encode_payload(self) -> bytes:
        return (
            _ota_id(self.manufacturer_code, self.image_type, self.file_version)
            + _uint(self.current_time, 4, "ota.current_time")
            + _uint(self.upgrade_time, 4, "ota.upgrade_time")
        )

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> UpgradeEndResponse:
        ids = _dec_ota_id(r)
        now = _le(r, 4, "ota.current_time")
        return cls(*ids, now, _le(r, 4, "ota.upgrade_time"))


# -- Metering mirroring --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestMirror(ZclCommand):
    """A battery meter (metering server) asks the hub for a mirror endpoint."""

    CLUSTER: ClassVar[int | None] = CLUSTER_METERING
    COMMAND_ID: ClassVar[int] = MeteringServerSent.REQUEST_MIRROR
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> RequestMirror:
        return cls()


@dataclass(frozen=True, slots=True)
class RemoveMirror(ZclCommand):
    """The meter gives its mirror up."""

    CLUSTER: ClassVar[int | None] = CLUSTER_METERING
    COMMAND_ID: ClassVar[int] = MeteringServerSent.REMOVE_MIRROR
    SERVER_TO_CLIENT: ClassVar[bool | None] = True

    def encode_payload(self) -> bytes:
        return b""

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> RemoveMirror:
        return cls()


@dataclass(frozen=True, slots=True)
class RequestMirrorResponse(ZclCommand):
    """The mirror's endpoint on the hub (0xFFFF: none could be created)."""

    CLUSTER: ClassVar[int | None] = CLUSTER_METERING
    COMMAND_ID: ClassVar[int] = MeteringClientSent.REQUEST_MIRROR_RESPONSE
    SERVER_TO_CLIENT: ClassVar[bool | None] = False

    endpoint_id: int

    def encode_payload(self) -> bytes:
        return _uint(self.endpoint_id, 2, "metering.endpoint_id")

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> RequestMirrorResponse:
        return cls(_le(r, 2, "metering.endpoint_id"))


@dataclass(frozen=True, slots=True)
class MirrorRemoved(ZclCommand):
    """The hub confirms which mirror endpoint it removed."""

    CLUSTER: ClassVar[int | None] = CLUSTER_METERING
    COMMAND_ID: ClassVar[int] = MeteringClientSent.MIRROR_REMOVED
    SERVER_TO_CLIENT: ClassVar[bool | None] = False

    endpoint_id: int

    def encode_payload(self) -> bytes:
        return _uint(self.endpoint_id, 2, "metering.endpoint_id")

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> MirrorRemoved:
        return cls(_le(r, 2, "metering.endpoint_id"))


# -- profile-wide commands (any cluster, either direction) ------------------------------


@dataclass(frozen=True, slots=True)
class AttributeReport(ZclCommand):
    """Report Attributes (0x0A): how a battery meter pushes its data into the mirror."""

    COMMAND_ID: ClassVar[int] = ZCL_CMD_REPORT_ATTRIBUTES
    GLOBAL: ClassVar[bool] = True

    cluster_id: int
    records: tuple[AttributeValue, ...]
    server_to_client: bool = True

    def encode_payload(self) -> bytes:
        header = ZclHeader(cat.ZCL_FRAME_TYPE_GLOBAL, 0, self.COMMAND_ID)
        try:
            return encode_zcl_payload(header, ReportAttributes(tuple(self.records)))
        except GbcsEncodeError as exc:
            raise _from_gbcs(exc) from None

    @classmethod
    def decode_payload(cls, r: Reader, header: ZclHeader, cluster_id: int) -> AttributeReport:
        payload = decode_zcl_payload(r, header)
        assert isinstance(payload, ReportAttributes)
        return cls(cluster_id, payload.records, header.server_to_client)


@dataclass(frozen=True, slots=True)
class DefaultResponseCommand(ZclCommand):
    """Default Response (0x0B): status of a command that has no specific response."""

    COMMAND_ID: ClassVar[int] = ZCL_CMD_DEFAULT_RESPONSE
    GLOBAL: ClassVar[bool] = True

    cluster_id: int
    command_id: int
    status: int
    server_to_client: bool = True

    def encode_payload(self) -> bytes:
        header = ZclHeader(cat.ZCL_FRAME_TYPE_GLOBAL, 0, self.COMMAND_ID)
        try:
            return encode_zcl_payload(header, DefaultResponse(self.command_id, self.status))
        except GbcsEncodeError as exc:
            raise _from_gbcs(exc) from None

    @classmethod
    def decode_payload(
        cls, r: Reader, header: ZclHeader, cluster_id: int
    ) -> DefaultResponseCommand:
        payload = decode_zcl_payload(r, header)
        assert isinstance(payload, DefaultResponse)
        return cls(cluster_id, payload.command_id, payload.status, header.server_to_client)


#: Every cluster-specific command: (cluster, server_to_client, command id) -> class.
CLUSTER_COMMAND_CLASSES: Final[dict[tuple[int, bool, int], type[ZclCommand]]] = {
    (c.CLUSTER, bool(c.SERVER_TO_CLIENT), c.COMMAND_ID): c  # type: ignore[misc]
    for c in (
        RequestTunnel,
        RequestTunnelResponse,
        CloseTunnel,
        TunnelClosureNotification,
        TransferDataToServer,
        TransferDataToClient,
        TransferDataErrorToServer,
        TransferDataErrorToClient,
        ImageNotify,
        QueryNextImageRequest,
        QueryNextImageResponse,
        ImageBlockRequest,
        ImageBlockResponse,
        UpgradeEndRequest,
        UpgradeEndResponse,
        RequestMirror,
        RemoveMirror,
        RequestMirrorResponse,
        MirrorRemoved,
    )
}
#: Profile-wide commands typed here: command id -> class.
GLOBAL_COMMAND_CLASSES: Final[dict[int, type[ZclCommand]]] = {
    AttributeReport.COMMAND_ID: AttributeReport,
    DefaultResponseCommand.COMMAND_ID: DefaultResponseCommand,
}


# ---------------------------------------------------------------------------
# Whole frames
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZclMessage:
    """A decoded ZCL frame: header plus typed command."""

    header: ZclHeader
    command: ZclCommand

    @property
    def sequence(self) -> int:
        return self.header.sequence


def frame_control(command: ZclCommand, *, disable_default_response: bool = True) -> int:
    """Frame control octet for ``command`` (type, direction, default-response bit)."""
    fc = cat.ZCL_FRAME_TYPE_GLOBAL if command.GLOBAL else cat.ZCL_FRAME_TYPE_CLUSTER
    if command.to_client:
        fc |= cat.ZCL_FC_SERVER_TO_CLIENT
    if disable_default_response:
        fc |= cat.ZCL_FC_DISABLE_DEFAULT_RESPONSE
    return fc


def encode_command(
    command: ZclCommand, sequence: int, *, disable_default_response: bool = True
) -> bytes:
    """The ZCL frame (header + payload) carrying ``command``; the APS payload."""
    if not isinstance(command, ZclCommand):
        raise ZclFrameError("zcl.command", f"not a ZCL command: {command!r}")
    _uint(sequence, 1, "zcl.sequence")
    header = ZclHeader(
        frame_control(command, disable_default_response=disable_default_response),
        sequence,
        command.COMMAND_ID,
    )
    try:
        head = encode_zcl_header(header)
    except GbcsEncodeError as exc:
        raise _from_gbcs(exc) from None
    return head + command.encode_payload()


def decode_command(cluster_id: int, data: bytes, base: int = 0) -> ZclMessage:
    """Decode a ZCL frame received on ``cluster_id``; every octet must be accounted for.

    Manufacturer-specific frames and commands not in the catalogue raise
    :class:`ZclFrameError` (a node must not act on what it cannot parse).
    """
    r = Reader(data, base=base)
    try:
        header = decode_zcl_header(r)
        if header.manufacturer_specific:
            raise ZclFrameError(
                "zcl.frame_control", "manufacturer-specific commands are not supported", base
            )
        if header.is_global:
            cls = GLOBAL_COMMAND_CLASSES.get(header.command_id)
        elif header.frame_type == cat.ZCL_FRAME_TYPE_CLUSTER:
            cls = CLUSTER_COMMAND_CLASSES.get(
                (cluster_id, header.server_to_client, header.command_id)
            )
        else:
            raise ZclFrameError(
                "zcl.frame_control",
                f"reserved frame type {header.frame_type} in 0x{header.frame_control:02X}",
                base,
            )
        if cls is None:
            direction = "server->client" if header.server_to_client else "client->server"
            raise ZclFrameError(
                "zcl.command_id",
                f"command 0x{header.command_id:02X} ({direction}) on cluster "
                f"0x{cluster_id:04X} is not one gbhil handles",
                base + 2,
            )
        command = cls.decode_payload(r, header, cluster_id)
        r.expect_end(f"{type(command).__name__} payload")
    except GbcsDecodeError as exc:
        raise _from_gbcs(exc) from None
    return ZclMessage(header, command)


# ---------------------------------------------------------------------------
# The GBCS tunnel header inside TransferData
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TunnelGet:
    """Device asks the CHF for its next queued message."""


@dataclass(frozen=True, slots=True)
class TunnelGetResponse:
    """CHF's answer to GET: messages still queued after this one, and the message."""

    remaining: int
    message: bytes | None = None


@dataclass(frozen=True, slots=True)
class TunnelPut:
    """A GBCS message (or GBT block) pushed through the tunnel.

    ``bare`` marks data that began directly with the GBCS message (no 0x03
    prefix), which Wireshark also accepts (gbcs-facts 7.1 [U]).
    """

    message: bytes
    bare: bool = False


GbcsTunnelData: TypeAlias = TunnelGet | TunnelGetResponse | TunnelPut


def encode_tunnel_data(item: GbcsTunnelData) -> bytes:
    """TransferData data for a GBCS tunnel message."""
    if isinstance(item, TunnelGet):
        return bytes((GbcsTunnelCommand.GET,))
    if isinstance(item, TunnelGetResponse):
        head = bytes((GbcsTunnelCommand.GET_RESPONSE,)) + _uint(
            item.remaining, 1, "gbcs_tunnel.remaining"
        )
        if item.message is None:
            if item.remaining:
                raise ZclFrameError("gbcs_tunnel.remaining", "no message but messages remain")
            return head
        if not item.message:
            raise ZclFrameError("gbcs_tunnel.message", "empty message (use None for none)")
        return head + item.message
    if isinstance(item, TunnelPut):
        if not item.message:
            raise ZclFrameError("gbcs_tunnel.message", "PUT needs a message")
        if item.bare:
            if item.message[0] not in GBCS_MESSAGE_TAGS:
                raise ZclFrameError("gbcs_tunnel.message", "a bare message must start DD or DF")
            return item.message
        return bytes((GbcsTunnelCommand.PUT,)) + item.message
    raise ZclFrameError("gbcs_tunnel", f"not a GBCS tunnel item: {item!r}")


def decode_tunnel_data(data: bytes, base: int = 0) -> GbcsTunnelData:
    """Parse the data of a TransferData in a GBCS tunnel (offsets relative to ``base``)."""
    if not data:
        raise ZclFrameError("gbcs_tunnel.command", "TransferData carries no data", base)
    first = data[0]
    if first in GBCS_MESSAGE_TAGS:
        return TunnelPut(bytes(data), bare=True)
    if first == GbcsTunnelCommand.GET:
        if len(data) != 1:
            raise ZclFrameError(
                "gbcs_tunnel.get", f"{len(data) - 1} unexpected trailing byte(s)", base + 1
            )
        return TunnelGet()
    if first == GbcsTunnelCommand.GET_RESPONSE:
        if len(data) < 2:
            raise ZclFrameError("gbcs_tunnel.remaining", "needs 1 byte(s), only 0 left", base + 1)
        remaining = data[1]
        message = bytes(data[2:]) or None
        if message is None and remaining:
            raise ZclFrameError(
                "gbcs_tunnel.remaining", f"{remaining} remaining but no message", base + 1
            )
        return TunnelGetResponse(remaining, message)
    if first == GbcsTunnelCommand.PUT:
        if len(data) < 2:
            raise ZclFrameError("gbcs_tunnel.message", "PUT without a message", base + 1)
        return TunnelPut(bytes(data[1:]))
    raise ZclFrameError("gbcs_tunnel.command", f"unknown tunnel command 0x{first:02X}", base)


# ---------------------------------------------------------------------------
# ZclPort: one endpoint's ZCL traffic over a transport, on the shared clock
# ---------------------------------------------------------------------------

T = TypeVar("T")
Handler = Callable[[ApsFrame, ZclMessage], Awaitable[None] | None]
Matcher = Callable[[ApsFrame, ZclMessage], bool]


class ZclTimeout(HanError, TimeoutError):
    """No matching answer arrived in time (clock seconds)."""


class PowerLost(HanError):
    """The node lost power (or went to sleep) while a procedure was waiting."""


async def clock_wait(clock: Clock, future: asyncio.Future[T], timeout: float, what: str) -> T:
    """Await ``future`` for at most ``timeout`` seconds of *clock* time (architecture rule 3)."""

    def expire() -> None:
        if not future.done():
            future.set_exception(ZclTimeout(f"{what}: no answer within {timeout:g} s"))

    handle = clock.call_later(timeout, expire)
    try:
        return await future
    finally:
        handle.cancel()


@dataclass(slots=True)
class PortCounters:
    """What a port did with the frames it saw."""

    sent: int = 0
    received: int = 0
    dropped_off: int = 0  # heard while powered off or asleep
    dropped_endpoint: int = 0  # for another endpoint
    malformed: int = 0
    unhandled: int = 0
    handler_errors: int = 0


@dataclass(slots=True)
class PortProblem:
    """A frame the port could not use, kept so a test can read why."""

    at: float
    src: bytes
    cluster_id: int
    reason: str


@dataclass(slots=True)
class _Waiter:
    matcher: Matcher
    future: asyncio.Future[tuple[ApsFrame, ZclMessage]]


class ZclPort:
    """One Smart Energy endpoint of a node: sends, receives and matches ZCL frames.

    Frames addressed to another endpoint, or heard while the port is powered
    off or asleep, are dropped (and counted). A frame a waiter matches resolves
    that waiter; any other frame goes to the handler of its cluster, one at a
    time in arrival order (handlers may await sends, never answers: that is what
    procedures running in their own tasks are for).
    """

    def __init__(
        self,
        transport: HanTransport,
        clock: Clock,
        *,
        endpoint: int = DEFAULT_ENDPOINT,
        priority: TxPriority = TxPriority.ROUTINE,
    ) -> None:
        if not 1 <= endpoint <= 0xF0:
            raise ZclFrameError("endpoint", f"application endpoints are 1-240, got {endpoint}")
        self.transport = transport
        self.clock = clock
        self.endpoint = endpoint
        self.endpoints: set[int] = {endpoint}  # more for e.g. the hub's mirror endpoints
        self.priority = priority
        self.powered = True
        self.listening = True
        self.counters = PortCounters()
        self.problems: list[PortProblem] = []
        self.handlers: dict[int, Handler] = {}
        self._seq = 0
        self._waiters: list[_Waiter] = []
        self._inbox: asyncio.Queue[tuple[ApsFrame, ZclMessage]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._remove = transport.add_listener(self._on_frame)

    @property
    def eui64(self) -> bytes:
        return self.transport.eui64

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Start dispatching to handlers (needs a running event loop); idempotent."""
        if self._task is None or self._task.done():
            self._inbox = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._dispatch())

    def close(self) -> None:
        """Stop listening for good."""
        self._remove()
        self._fail_waiters(PowerLost("port closed"))
        if self._task is not None:
            self._task.cancel()

    def set_powered(self, on: bool) -> None:
        """Power the radio on or off; off drops queued frames and fails every waiter."""
        self.powered = on
        if not on:
            self._drain()
            self._fail_waiters(PowerLost("power lost"))

    def set_listening(self, on: bool) -> None:
        """Sleepy devices turn their receiver off between wake-ups."""
        self.listening = on
        if not on:
            self._fail_waiters(PowerLost("receiver off (asleep)"))

    def _drain(self) -> None:
        if self._inbox is not None:
            while not self._inbox.empty():
                self._inbox.get_nowait()

    def _fail_waiters(self, exc: Exception) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.future.done():
                w.future.set_exception(exc)

    # -- receive -----------------------------------------------------------------
    def _problem(self, frame: ApsFrame, reason: str) -> None:
        self.problems.append(
            PortProblem(self.clock.monotonic(), frame.src_eui64, frame.cluster_id, reason)
        )

    def _on_frame(self, frame: ApsFrame) -> None:
        if not (self.powered and self.listening):
            self.counters.dropped_off += 1
            return
        if frame.dst_endpoint not in self.endpoints and frame.dst_endpoint != ENDPOINT_BROADCAST:
            self.counters.dropped_endpoint += 1
            return
        try:
            message = decode_command(frame.cluster_id, frame.payload)
        except ZclFrameError as exc:
            self.counters.malformed += 1
            self._problem(frame, str(exc))
            return
        self.counters.received += 1
        for waiter in self._waiters:
            if not waiter.future.done() and waiter.matcher(frame, message):
                self._waiters.remove(waiter)
                waiter.future.set_result((frame, message))
                return
        if frame.cluster_id not in self.handlers:
            self.counters.unhandled += 1
            self._problem(frame, f"no handler for {type(message.command).__name__}")
            return
        if self._inbox is None:
            self.counters.unhandled += 1
            self._problem(frame, "port not started")
            return
        self._inbox.put_nowait((frame, message))

    async def _dispatch(self) -> None:
        assert self._inbox is not None
        inbox = self._inbox
        while True:
            frame, message = await inbox.get()
            handler = self.handlers.get(frame.cluster_id)
            if handler is None or not self.powered:
                continue
            try:
                result = handler(frame, message)
                if inspect.isawaitable(result):
                    await result
            except (HanError, ValueError) as exc:
                self.counters.handler_errors += 1
                self._problem(frame, f"{type(exc).__name__}: {exc}")

    # -- send ----------------------------------------------------------------------
    def next_sequence(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFF
        return seq

    async def send(
        self,
        dst_eui64: bytes,
        command: ZclCommand,
        *,
        dst_endpoint: int = DEFAULT_ENDPOINT,
        sequence: int | None = None,
        priority: TxPriority | None = None,
    ) -> int:
        """Send ``command``; returns the ZCL sequence number used.

        Raises :class:`PowerLost` when the node has no power (a dead radio
        cannot transmit); transport errors propagate.
        """
        if not self.powered:
            raise PowerLost("cannot transmit without power")
        seq = self.next_sequence() if sequence is None else sequence
        frame = ApsFrame(
            src_eui64=self.eui64,
            dst_eui64=dst_eui64,
            cluster_id=command.cluster,
            payload=encode_command(command, seq),
            src_endpoint=self.endpoint,
            dst_endpoint=dst_endpoint,
            priority=self.priority if priority is None else priority,
        )
        result: TxResult = await self.transport.send(frame)
        self.counters.sent += 1
        del result
        return seq

    def expect(self, matcher: Matcher) -> asyncio.Future[tuple[ApsFrame, ZclMessage]]:
        """A future for the next frame ``matcher`` accepts (register before sending)."""
        if not (self.powered and self.listening):
            raise PowerLost("receiver is off")
        future: asyncio.Future[tuple[ApsFrame, ZclMessage]] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(_Waiter(matcher, future))
        return future

    def forget(self, future: asyncio.Future[tuple[ApsFrame, ZclMessage]]) -> None:
        """Drop a waiter that is no longer wanted (after a timeout)."""
        self._waiters = [w for w in self._waiters if w.future is not future]

    async def request(
        self,
        dst_eui64: bytes,
        command: ZclCommand,
        answer: type[ZclCommand] | tuple[type[ZclCommand], ...],
        *,
        dst_endpoint: int = DEFAULT_ENDPOINT,
        timeout: float,
        retries: int = 0,
    ) -> tuple[ApsFrame, ZclMessage]:
        """Send ``command`` and await an ``answer`` from ``dst_eui64`` echoing its sequence.

        Retries (with a fresh sequence number) after each timeout; the last
        timeout raises :class:`ZclTimeout`.
        """
        last: ZclTimeout | None = None
        for _attempt in range(retries + 1):
            seq = self.next_sequence()

            def match(frame: ApsFrame, msg: ZclMessage, seq: int = seq) -> bool:
                return (
                    frame.src_eui64 == dst_eui64
                    and msg.sequence == seq
                    and isinstance(msg.command, answer)
                )

            future = self.expect(match)
            try:
                await self.send(dst_eui64, command, dst_endpoint=dst_endpoint, sequence=seq)
                return await clock_wait(
                    self.clock, future, timeout, f"{type(command).__name__} to {dst_eui64.hex()}"
                )
            except ZclTimeout as exc:
                last = exc
            finally:
                self.forget(future)
                if not future.done():
                    future.cancel()
        assert last is not None
        raise last


@dataclass(slots=True)
class NodeEvent:
    """Something a node did or refused, for tests and logs (clock time)."""

    at: float
    kind: str
    detail: str = ""
    peer: bytes | None = None
    data: dict[str, Any] = field(default_factory=dict)


__all__ = [
    "CLUSTER_COMMAND_CLASSES",
    "CLUSTER_METERING",
    "CLUSTER_OTA",
    "CLUSTER_TUNNELING",
    "DEFAULT_ENDPOINT",
    "GBCS_MESSAGE_TAGS",
    "GLOBAL_COMMAND_CLASSES",
    "MIRROR_ENDPOINT_NONE",
    "OTA_UPGRADE_TIME_WAIT",
    "AttributeReport",
    "CloseTunnel",
    "DefaultResponseCommand",
    "GbcsTunnelCommand",
    "GbcsTunnelData",
    "ImageBlockRequest",
    "ImageBlockResponse",
    "ImageNotify",
    "ImageNotifyPayloadType",
    "MeteringClientSent",
    "MeteringServerSent",
    "MirrorRemoved",
    "NodeEvent",
    "OtaClientCommand",
    "OtaServerCommand",
    "OtaStatus",
    "PortCounters",
    "PowerLost",
    "QueryNextImageRequest",
    "QueryNextImageResponse",
    "RemoveMirror",
    "RequestMirror",
    "RequestMirrorResponse",
    "RequestTunnel",
    "RequestTunnelResponse",
    "TransferDataErrorToClient",
    "TransferDataErrorToServer",
    "TransferDataStatus",
    "TransferDataToClient",
    "TransferDataToServer",
    "TunnelClientCommand",
    "TunnelClosureNotification",
    "TunnelGet",
    "TunnelGetResponse",
    "TunnelProtocol",
    "TunnelPut",
    "TunnelServerCommand",
    "TunnelStatus",
    "UpgradeEndRequest",
    "UpgradeEndResponse",
    "ZclCommand",
    "ZclFrameError",
    "ZclMessage",
    "ZclPort",
    "ZclTimeout",
    "clock_wait",
    "decode_command",
    "decode_tunnel_data",
    "encode_command",
    "encode_tunnel_data",
    "frame_control",
]
