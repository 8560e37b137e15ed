"""Firmware over the HAN: the OTA Upgrade cluster (0x0019) and the GBCS OTA file.

The DCC sends an image to the Comms Hub (DUIS SR 11.1/11.4); HAN devices pull
it from the CHF with the Zigbee OTA cluster (gbcs-facts 6.1):

    CHF                                   device
     | Image Notify (optional) ------------> |
     | <------------ Query Next Image Request |  what I run (manufacturer, type, version)
     | Query Next Image Response ----------> |  SUCCESS + version + size, or NO_IMAGE
     | <------ Image Block Request(offset n) |  repeated: file offset + max data size
     | Image Block Response(offset n, data) >|  (or WAIT_FOR_DATA / ABORT)
     | <--------- Upgrade End Request(SUCCESS)|  after parsing the whole file
     | Upgrade End Response(upgrade 0xFFFFFFFF)>| GBCS: wait for activation (CS06)

The client keeps the bytes it has and their offset across a power cut (what a
device keeps in flash), so a transfer resumes where it stopped instead of
starting again. A complete file is parsed (:func:`parse_ota_file`) and its
Manufacturer Image is staged in the device's firmware slots.

The file format (GBCS 11.2 via gbcs-facts 6.1): the Zigbee OTA header
(little-endian, identifier 0x0BEEF11E) followed by the Upgrade Image, which
GBCS defines as Manufacturer Image || 1 octet || 0x40 || ECDSA P-256 r||s by
the authorising supplier over the Manufacturer Image only (PPMID images have
no trailer).
"""

from __future__ import annotations

import hashlib
import inspect
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, IntFlag
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.gbcs.security import sign_raw, verify_raw
from gbhil.gbcs.zcl import utc_seconds_from_datetime
from gbhil.han.channels import HanError
from gbhil.han.transport import ApsFrame
from gbhil.han.zcl_frames import (
    CLUSTER_OTA,
    DEFAULT_ENDPOINT,
    OTA_MAX_QUERY_JITTER,
    OTA_UPGRADE_TIME_WAIT,
    DefaultResponseCommand,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageNotify,
    ImageNotifyPayloadType,
    NodeEvent,
    OtaClientCommand,
    OtaStatus,
    QueryNextImageRequest,
    QueryNextImageResponse,
    UpgradeEndRequest,
    UpgradeEndResponse,
    ZclMessage,
    ZclPort,
    ZclTimeout,
)
from gbhil.simulator.clock import Clock

# ---------------------------------------------------------------------------
# Catalogue: the OTA file
# ---------------------------------------------------------------------------

OTA_FILE_IDENTIFIER: Final = 0x0BEEF11E
OTA_HEADER_VERSION: Final = 0x0100
OTA_BASE_HEADER_LEN: Final = 56
OTA_HEADER_STRING_LEN: Final = 32
ZIGBEE_STACK_PRO: Final = 0x0002
#: GBCS Upgrade Image trailer: one octet (a Comms Hub "force replace" flag per a public
#: decoder, meaning unconfirmed), the signature length 0x40, then r||s.
GBCS_SIGNATURE_LEN: Final = 64
GBCS_TRAILER_LEN: Final = 2 + GBCS_SIGNATURE_LEN
_BASE = struct.Struct("<IHHHHHIH32sI")


class OtaFieldControl(IntFlag):
    """OTA header field control: which optional header fields follow the base 56 octets."""

    SECURITY_CREDENTIAL_VERSION = 0x0001
    DEVICE_SPECIFIC_FILE = 0x0002
    HARDWARE_VERSIONS = 0x0004


#: Octets each optional header field adds.
OPTIONAL_FIELD_LEN: Final = {
    OtaFieldControl.SECURITY_CREDENTIAL_VERSION: 1,
    OtaFieldControl.DEVICE_SPECIFIC_FILE: 8,
    OtaFieldControl.HARDWARE_VERSIONS: 4,
}

# ---------------------------------------------------------------------------
# Catalogue: the transfer
# ---------------------------------------------------------------------------

#: Octets per Image Block a client asks for, and the most the server hands out.
DEFAULT_MAX_DATA_SIZE: Final = 64
#: Client waits (clock seconds) per request, and how often it retries a lost block.
OTA_TIMEOUT_S: Final = 10.0
OTA_RETRIES: Final = 3
#: Minimum Block Period is in milliseconds (ZCL OTA attribute 0x0008).
MS_PER_S: Final = 1000


class OtaError(HanError, ValueError):
    """An OTA file that cannot be built or parsed; names the field and byte offset."""


def _u(value: object, bits: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise OtaError(f"{name}: must be an unsigned {bits}-bit integer, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# OTA file builder / parser
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OtaHeader:
    """The Zigbee OTA file header (little-endian on the wire)."""

    manufacturer_code: int
    image_type: int
    file_version: int
    total_image_size: int
    header_string: bytes = b""
    stack_version: int = ZIGBEE_STACK_PRO
    security_credential_version: int | None = None
    upgrade_file_destination: bytes | None = None
    min_hardware_version: int | None = None
    max_hardware_version: int | None = None
    header_version: int = OTA_HEADER_VERSION

    @property
    def field_control(self) -> OtaFieldControl:
        fc = OtaFieldControl(0)
        if self.security_credential_version is not None:
            fc |= OtaFieldControl.SECURITY_CREDENTIAL_VERSION
        if self.upgrade_file_destination is not None:
            fc |= OtaFieldControl.DEVICE_SPECIFIC_FILE
        if self.min_hardware_version is not None or self.max_hardware_version is not None:
            fc |= OtaFieldControl.HARDWARE_VERSIONS
        return fc

    @property
    def header_length(self) -> int:
        fc = self.field_control
        return OTA_BASE_HEADER_LEN + sum(n for flag, n in OPTIONAL_FIELD_LEN.items() if fc & flag)

    @property
    def version_bytes(self) -> bytes:
        """File version as the 4 octets firmware slots and CS08 carry (most significant first)."""
        return self.file_version.to_bytes(4, "big")

    def encode(self) -> bytes:
        if len(self.header_string) > OTA_HEADER_STRING_LEN:
            raise OtaError(f"header string: at most 32 octets, got {len(self.header_string)}")
        if (self.min_hardware_version is None) != (self.max_hardware_version is None):
            raise OtaError("hardware versions: give both minimum and maximum, or neither")
        out = _BASE.pack(
            OTA_FILE_IDENTIFIER,
            _u(self.header_version, 16, "header version"),
            self.header_length,
            int(self.field_control),
            _u(self.manufacturer_code, 16, "manufacturer code"),
            _u(self.image_type, 16, "image type"),
            _u(self.file_version, 32, "file version"),
            _u(self.stack_version, 16, "stack version"),
            self.header_string.ljust(OTA_HEADER_STRING_LEN, b"\x00"),
            _u(self.total_image_size, 32, "total image size"),
        )
        if self.security_credential_version is not None:
            out += bytes((_u(self.security_credential_version, 8, "security credential"),))
        if self.upgrade_file_destination is not None:
            if len(self.upgrade_file_destination) != 8:
                raise OtaError("upgrade file destination: must be an 8-octet EUI-64")
            out += self.upgrade_file_destination[::-1]
        if self.min_hardware_version is not None and self.max_hardware_version is not None:
            out += struct.pack(
                "<HH",
                _u(self.min_hardware_version, 16, "minimum hardware version"),
                _u(self.max_hardware_version, 16, "maximum hardware version"),
            )
        return out

    @classmethod
    def decode(cls, data: bytes) -> OtaHeader:
        """Parse the header at the start of ``data`` (the rest is not looked at)."""
        if len(data) < OTA_BASE_HEADER_LEN:
            raise OtaError(f"OTA header at byte 0: needs 56 octets, file has {len(data)}")
        (ident, version, length, fc, manufacturer, image_type, file_version, stack, text, total) = (
            _BASE.unpack_from(data, 0)
        )
        if ident != OTA_FILE_IDENTIFIER:
            raise OtaError(f"file identifier at byte 0: 0x{ident:08X} is not 0x0BEEF11E")
        if version != OTA_HEADER_VERSION:
            raise OtaError(f"header version at byte 4: 0x{version:04X} (only 0x0100 is known)")
        control = OtaFieldControl(fc)
        if fc & ~int(
            OtaFieldControl.SECURITY_CREDENTIAL_VERSION
            | OtaFieldControl.DEVICE_SPECIFIC_FILE
            | OtaFieldControl.HARDWARE_VERSIONS
        ):
            raise OtaError(f"field control at byte 8: reserved bits set in 0x{fc:04X}")
        want = OTA_BASE_HEADER_LEN + sum(n for f, n in OPTIONAL_FIELD_LEN.items() if control & f)
        if length != want:
            raise OtaError(
                f"header length at byte 6: {length}, field control 0x{fc:04X} says {want}"
            )
        if len(data) < length:
            raise OtaError(f"OTA header: {length} octets announced, file has {len(data)}")
        pos = OTA_BASE_HEADER_LEN
        credential = destination = hw_min = hw_max = None
        if control & OtaFieldControl.SECURITY_CREDENTIAL_VERSION:
            credential = data[pos]
            pos += 1
        if control & OtaFieldControl.DEVICE_SPECIFIC_FILE:
            destination = bytes(data[pos : pos + 8][::-1])
            pos += 8
        if control & OtaFieldControl.HARDWARE_VERSIONS:
            hw_min, hw_max = struct.unpack_from("<HH", data, pos)
            pos += 4
        return cls(
            manufacturer,
            image_type,
            file_version,
            total,
            bytes(text).rstrip(b"\x00"),
            stack,
            credential,
            destination,
            hw_min,
            hw_max,
            version,
        )


@dataclass(frozen=True, slots=True)
class OtaFile:
    """A parsed OTA file: header, Manufacturer Image and the GBCS signature trailer."""

    header: OtaHeader
    manufacturer_image: bytes
    signature: bytes | None = None  # r||s, 64 octets, when the trailer is present
    trailer_flag: int = 0  # the octet before the signature length

    @property
    def image_hash(self) -> bytes:
        """SHA-256 of the Manufacturer Image: what CS06 and the FDRA alerts carry."""
        return hashlib.sha256(self.manufacturer_image).digest()

    def encode(self) -> bytes:
        body = self.manufacturer_image
        if self.signature is not None:
            if len(self.signature) != GBCS_SIGNATURE_LEN:
                raise OtaError(f"signature: must be 64 octets (r||s), got {len(self.signature)}")
            body += bytes((_u(self.trailer_flag, 8, "trailer flag"), GBCS_SIGNATURE_LEN))
            body += self.signature
        header = self.header.encode()
        if self.header.total_image_size != len(header) + len(body):
            raise OtaError(
                f"total image size {self.header.total_image_size} != file size "
                f"{len(header) + len(body)}"
            )
        return header + body

    def verify(self, supplier_key: ec.EllipticCurvePublicKey) -> bool:
        """Whether the supplier signature over the Manufacturer Image verifies."""
        return self.signature is not None and verify_raw(
            supplier_key, self.manufacturer_image, self.signature
        )


def build_ota_file(
    manufacturer_image: bytes,
    *,
    manufacturer_code: int,
    image_type: int,
    file_version: int,
    header_string: bytes = b"gbhil",
    hardware_versions: tuple[int, int] | None = None,
    signer: ec.EllipticCurvePrivateKey | None = None,
    trailer_flag: int = 0,
) -> bytes:
    """A complete OTA file; signed by ``signer`` (the supplier DS key) when given."""
    if not manufacturer_image:
        raise OtaError("manufacturer image: must not be empty")
    signature = None if signer is None else sign_raw(signer, manufacturer_image)
    hw_min, hw_max = hardware_versions if hardware_versions is not None else (None, None)
    probe = OtaHeader(
        manufacturer_code,
        image_type,
        file_version,
        0,
        header_string,
        min_hardware_version=hw_min,
        max_hardware_version=hw_max,
    )
    trailer = GBCS_TRAILER_LEN if signature is not None else 0
    total = probe.header_length + len(manufacturer_image) + trailer
    header = OtaHeader(
        manufacturer_code,
        image_type,
        file_version,
        total,
        header_string,
        min_hardware_version=hw_min,
        max_hardware_version=hw_max,
    )
    return OtaFile(header, manufacturer_image, signature, trailer_flag).encode()


def parse_ota_file(data: bytes, *, signed: bool | None = None) -> OtaFile:
    """Parse a whole OTA file; ``signed`` None = detect the 0x40 signature trailer.

    Detection looks for ``<flag> 40 <64 octets>`` at the end; an unsigned image
    whose last 66 octets happen to look like that needs ``signed=False``.
    """
    header = OtaHeader.decode(data)
    if header.total_image_size != len(data):
        raise OtaError(
            f"total image size at byte 52: {header.total_image_size}, file has {len(data)} octets"
        )
    body = bytes(data[header.header_length :])
    trailer_fits = len(body) > GBCS_TRAILER_LEN
    looks_signed = trailer_fits and body[-GBCS_SIGNATURE_LEN - 1] == GBCS_SIGNATURE_LEN
    if signed is None:
        signed = looks_signed
    if not signed:
        if not body:
            raise OtaError(f"manufacturer image at byte {header.header_length}: empty")
        return OtaFile(header, body)
    if not looks_signed:
        at = len(data) - GBCS_SIGNATURE_LEN - 1
        raise OtaError(f"signature length at byte {at}: no 0x40 signature trailer")
    cut = len(body) - GBCS_TRAILER_LEN
    return OtaFile(header, body[:cut], body[-GBCS_SIGNATURE_LEN:], body[cut])


# ---------------------------------------------------------------------------
# Server (CHF)
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class ServedImage:
    """An image the CHF offers, to whom, and when it tells devices to switch."""

    data: bytes
    header: OtaHeader
    targets: frozenset[bytes] | None = None  # None: every device with that manufacturer/type
    upgrade_time: int = OTA_UPGRADE_TIME_WAIT

    def offered_to(self, eui: bytes, manufacturer_code: int, image_type: int) -> bool:
        return (
            self.header.manufacturer_code == manufacturer_code
            and self.header.image_type == image_type
            and (self.targets is None or eui in self.targets)
        )


@dataclass(slots=True)
class TransferProgress:
    """How far one device got with one image (server side)."""

    file_version: int
    image_size: int
    blocks: int = 0
    octets: int = 0
    highest_offset: int = 0
    offsets: list[int] = field(default_factory=list)
    last_block_at: float | None = None
    end_status: OtaStatus | None = None


UpgradeEndCallback = Callable[[bytes, OtaStatus, ServedImage], Awaitable[None] | None]


class OtaServer:
    """The CHF's OTA Upgrade server: answers queries and block requests from its images.

    ``minimum_block_period_ms`` > 0 rate-limits each client: a block asked for
    too early gets WAIT_FOR_DATA with the time to come back.
    ``on_upgrade_end(eui, status, image)`` reports finished transfers (CCS08's
    0x8F8A / 0x8F89 alerts are the CHF model's business).
    """

    def __init__(
        self,
        port: ZclPort,
        *,
        max_data_size: int = DEFAULT_MAX_DATA_SIZE,
        minimum_block_period_ms: int = 0,
        on_upgrade_end: UpgradeEndCallback | None = None,
    ) -> None:
        if not 1 <= max_data_size <= 0xFF:
            raise OtaError(f"max data size: must be 1-255, got {max_data_size}")
        self.port = port
        self.clock: Clock = port.clock
        self.max_data_size = max_data_size
        self.minimum_block_period_ms = minimum_block_period_ms
        self.on_upgrade_end = on_upgrade_end
        self.images: list[ServedImage] = []
        self.progress: dict[tuple[bytes, int], TransferProgress] = {}
        self.events: list[NodeEvent] = []
        port.handlers[CLUSTER_OTA] = self._handle

    def _event(self, kind: str, peer: bytes | None, detail: str = "", **data: object) -> None:
        self.events.append(NodeEvent(self.clock.monotonic(), kind, detail, peer, dict(data)))

    def add_image(
        self,
        data: bytes,
        *,
        targets: set[bytes] | frozenset[bytes] | None = None,
        upgrade_time: int = OTA_UPGRADE_TIME_WAIT,
    ) -> ServedImage:
        """Offer an OTA file (validated by parsing it); replaces one with the same identity."""
        parsed = parse_ota_file(data)
        header = parsed.header
        self.images = [
            i
            for i in self.images
            if (i.header.manufacturer_code, i.header.image_type, i.header.file_version)
            != (header.manufacturer_code, header.image_type, header.file_version)
        ]
        image = ServedImage(
            bytes(data), header, None if targets is None else frozenset(targets), upgrade_time
        )
        self.images.append(image)
        self._event("image-added", None, f"0x{header.file_version:08X}", size=len(data))
        return image

    def _now(self) -> int:
        return utc_seconds_from_datetime(self.clock.now())

    def _find(self, eui: bytes, manufacturer: int, image_type: int) -> ServedImage | None:
        for image in reversed(self.images):
            if image.offered_to(eui, manufacturer, image_type):
                return image
        return None

    async def notify(
        self, eui: bytes, image: ServedImage, *, endpoint: int = DEFAULT_ENDPOINT
    ) -> None:
        """Unicast Image Notify: tells an always-on device to query now."""
        h = image.header
        await self.port.send(
            eui,
            ImageNotify(
                ImageNotifyPayloadType.JITTER_MANUFACTURER_TYPE_VERSION,
                OTA_MAX_QUERY_JITTER,
                h.manufacturer_code,
                h.image_type,
                h.file_version,
            ),
            dst_endpoint=endpoint,
        )
        self._event("notify", eui, f"0x{h.file_version:08X}")

    async def _reply(self, frame: ApsFrame, msg: ZclMessage, command: Any) -> None:
        await self.port.send(
            frame.src_eui64, command, dst_endpoint=frame.src_endpoint, sequence=msg.sequence
        )

    async def _handle(self, frame: ApsFrame, msg: ZclMessage) -> None:
        cmd = msg.command
        eui = frame.src_eui64
        if isinstance(cmd, QueryNextImageRequest):
            image = self._find(eui, cmd.manufacturer_code, cmd.image_type)
            if image is None or image.header.file_version == cmd.current_file_version:
                self._event("query", eui, "no image")
                await self._reply(frame, msg, QueryNextImageResponse(OtaStatus.NO_IMAGE_AVAILABLE))
                return
            h = image.header
            self.progress.setdefault(
                (eui, h.file_version), TransferProgress(h.file_version, len(image.data))
            )
            self._event("query", eui, f"offer 0x{h.file_version:08X}")
            await self._reply(
                frame,
                msg,
                QueryNextImageResponse(
                    OtaStatus.SUCCESS,
                    h.manufacturer_code,
                    h.image_type,
                    h.file_version,
                    len(image.data),
                ),
            )
        elif isinstance(cmd, ImageBlockRequest):
            await self._block(frame, msg, cmd)
        elif isinstance(cmd, UpgradeEndRequest):
            await self._upgrade_end(frame, msg, cmd)
        else:
            self._event("ignored", eui, type(cmd).__name__)

    async def _block(self, frame: ApsFrame, msg: ZclMessage, cmd: ImageBlockRequest) -> None:
        eui = frame.src_eui64
        image = self._find(eui, cmd.manufacturer_code, cmd.image_type)
        if (
            image is None
            or image.header.file_version != cmd.file_version
            or cmd.file_offset >= len(image.data)
        ):
            self._event("block-abort", eui, f"offset {cmd.file_offset}")
            await self._reply(frame, msg, ImageBlockResponse(OtaStatus.ABORT))
            return
        progress = self.progress.setdefault(
            (eui, cmd.file_version), TransferProgress(cmd.file_version, len(image.data))
        )
        now = self.clock.monotonic()
        period = self.minimum_block_period_ms / MS_PER_S
        if period and progress.last_block_at is not None and now - progress.last_block_at < period:
            wait = period - (now - progress.last_block_at)
            current = self._now()
            await self._reply(
                frame,
                msg,
                ImageBlockResponse(
                    OtaStatus.WAIT_FOR_DATA,
                    current_time=current,
                    request_time=current + max(1, round(wait)),
                    minimum_block_period=self.minimum_block_period_ms,
                ),
            )
            self._event("block-wait", eui, f"{wait:.3f} s")
            return
        size = min(cmd.max_data_size, self.max_data_size)
        data = image.data[cmd.file_offset : cmd.file_offset + size]
        progress.blocks += 1
        progress.octets += len(data)
        progress.offsets.append(cmd.file_offset)
        progress.highest_offset = max(progress.highest_offset, cmd.file_offset + len(data))
        progress.last_block_at = now
        h = image.header
        await self._reply(
            frame,
            msg,
            ImageBlockResponse(
                OtaStatus.SUCCESS,
                h.manufacturer_code,
                h.image_type,
                h.file_version,
                cmd.file_offset,
                data,
            ),
        )

    async def _upgrade_end(self, frame: ApsFrame, msg: ZclMessage, cmd: UpgradeEndRequest) -> None:
        eui = frame.src_eui64
        image = self._find(eui, cmd.manufacturer_code, cmd.image_type)
        progress = self.progress.get((eui, cmd.file_version))
        if progress is not None:
            progress.end_status = cmd.status
        self._event("upgrade-end", eui, cmd.status.name, file_version=cmd.file_version)
        if cmd.status is OtaStatus.SUCCESS and image is not None:
            await self._reply(
                frame,
                msg,
                UpgradeEndResponse(
                    cmd.manufacturer_code,
                    cmd.image_type,
                    cmd.file_version,
                    self._now(),
                    image.upgrade_time,
                ),
            )
        else:  # ZCL: a failed end is acknowledged with a Default Response
            await self._reply(
                frame,
                msg,
                DefaultResponseCommand(
                    CLUSTER_OTA, OtaClientCommand.UPGRADE_END_REQUEST, OtaStatus.SUCCESS
                ),
            )
        if image is not None and self.on_upgrade_end is not None:
            result = self.on_upgrade_end(eui, cmd.status, image)
            if inspect.isawaitable(result):
                await result


# ---------------------------------------------------------------------------
# Client (device)
# ---------------------------------------------------------------------------


class OtaOutcome(Enum):
    """How one :meth:`OtaClient.check` ended."""

    NO_IMAGE = "no image available"
    COMPLETE = "image received, verified and staged"
    INVALID_IMAGE = "file did not parse or did not match what was offered"
    ABORTED = "server aborted the transfer"
    INTERRUPTED = "server stopped answering; the transfer resumes next time"


@dataclass(slots=True)
class OtaDownload:
    """A transfer in progress, kept across power cuts (what a device keeps in flash)."""

    manufacturer_code: int
    image_type: int
    file_version: int
    image_size: int
    data: bytearray = field(default_factory=bytearray)

    @property
    def offset(self) -> int:
        return len(self.data)

    def same_image(self, rsp: QueryNextImageResponse) -> bool:
        return (self.manufacturer_code, self.image_type, self.file_version, self.image_size) == (
            rsp.manufacturer_code,
            rsp.image_type,
            rsp.file_version,
            rsp.image_size,
        )


@dataclass(frozen=True, slots=True)
class OtaResult:
    """What :meth:`OtaClient.check` did."""

    outcome: OtaOutcome
    file: OtaFile | None = None
    image_hash: bytes | None = None
    upgrade_time: int | None = None
    resumed_from: int = 0


#: Stores a received file (e.g. into the device's firmware slots); returns its image hash.
StageFunction = Callable[[OtaFile], bytes]
ImageHook = Callable[[OtaFile, bytes, int], Awaitable[None] | None]


def device_firmware_store(device: Any) -> StageFunction:
    """Stage into ``gbhil.devices.firmware.slots(device)`` (imported lazily: han sits below
    devices, and only this adapter needs them)."""

    def stage(file: OtaFile) -> bytes:
        from gbhil.devices import firmware

        return firmware.slots(device).stage(file.manufacturer_image, file.header.version_bytes)

    return stage


def device_running_version(device: Any) -> Callable[[], int]:
    """The running file version of ``device`` as the OTA cluster counts it (uint32)."""

    def version() -> int:
        from gbhil.devices import firmware

        return int.from_bytes(firmware.slots(device).running_version[:4].rjust(4, b"\x00"), "big")

    return version


class OtaClient:
    """A device's OTA Upgrade client (see the module docstring for the exchange)."""

    def __init__(
        self,
        port: ZclPort,
        server_eui: bytes,
        *,
        manufacturer_code: int,
        image_type: int,
        current_version: Callable[[], int],
        stage: StageFunction,
        server_endpoint: int = DEFAULT_ENDPOINT,
        hardware_version: int | None = None,
        max_data_size: int = DEFAULT_MAX_DATA_SIZE,
        timeout: float = OTA_TIMEOUT_S,
        retries: int = OTA_RETRIES,
        on_image: ImageHook | None = None,
        on_notify: Callable[[ImageNotify], None] | None = None,
    ) -> None:
        if not 1 <= max_data_size <= 0xFF:
            raise OtaError(f"max data size: must be 1-255, got {max_data_size}")
        self.port = port
        self.clock: Clock = port.clock
        self.server_eui = server_eui
        self.server_endpoint = server_endpoint
        self.manufacturer_code = manufacturer_code
        self.image_type = image_type
        self.current_version = current_version
        self.stage = stage
        self.hardware_version = hardware_version
        self.max_data_size = max_data_size
        self.timeout = timeout
        self.retries = retries
        self.on_image = on_image
        self.on_notify = on_notify
        self.download: OtaDownload | None = None
        self.results: list[OtaResult] = []
        self.events: list[NodeEvent] = []
        self.block_requests: list[int] = []  # file offsets asked for, in order
        port.handlers[CLUSTER_OTA] = self._handle

    def _event(self, kind: str, detail: str = "", **data: object) -> None:
        self.events.append(
            NodeEvent(self.clock.monotonic(), kind, detail, self.server_eui, dict(data))
        )

    def _handle(self, frame: ApsFrame, msg: ZclMessage) -> None:
        cmd = msg.command
        if isinstance(cmd, ImageNotify) and frame.src_eui64 == self.server_eui:
            self._event("notified", f"payload type {int(cmd.payload_type)}")
            if cmd.manufacturer_code not in (None, self.manufacturer_code) or (
                cmd.image_type not in (None, self.image_type)
            ):
                return
            if self.on_notify is not None:
                self.on_notify(cmd)
        else:
            self._event("ignored", type(cmd).__name__)

    async def _request(self, command: Any, answer: Any) -> ZclMessage:
        _frame, msg = await self.port.request(
            self.server_eui,
            command,
            answer,
            dst_endpoint=self.server_endpoint,
            timeout=self.timeout,
            retries=self.retries,
        )
        return msg

    def _finish(self, result: OtaResult) -> OtaResult:
        self.results.append(result)
        self._event("result", result.outcome.name)
        return result

    async def check(self) -> OtaResult:
        """Query, download (resuming a kept transfer), verify, stage and report the end.

        :class:`~gbhil.han.zcl_frames.PowerLost` propagates when the node loses
        power; the bytes received so far stay in :attr:`download`.
        """
        try:
            msg = await self._request(
                QueryNextImageRequest(
                    self.manufacturer_code,
                    self.image_type,
                    self.current_version(),
                    self.hardware_version,
                ),
                QueryNextImageResponse,
            )
        except ZclTimeout:
            return self._finish(OtaResult(OtaOutcome.INTERRUPTED))
        rsp = msg.command
        assert isinstance(rsp, QueryNextImageResponse)
        if rsp.status is not OtaStatus.SUCCESS:
            return self._finish(OtaResult(OtaOutcome.NO_IMAGE))
        assert rsp.image_size is not None and rsp.file_version is not None
        if self.download is None or not self.download.same_image(rsp):
            self.download = OtaDownload(
                self.manufacturer_code, self.image_type, rsp.file_version, rsp.image_size
            )
        download = self.download
        resumed_from = download.offset
        if resumed_from:
            self._event("resume", f"offset {resumed_from}")
        while download.offset < download.image_size:
            want = min(self.max_data_size, download.image_size - download.offset)
            self.block_requests.append(download.offset)
            try:
                msg = await self._request(
                    ImageBlockRequest(
                        download.manufacturer_code,
                        download.image_type,
                        download.file_version,
                        download.offset,
                        want,
                    ),
                    ImageBlockResponse,
                )
            except ZclTimeout:
                return self._finish(OtaResult(OtaOutcome.INTERRUPTED, resumed_from=resumed_from))
            block = msg.command
            assert isinstance(block, ImageBlockResponse)
            if block.status is OtaStatus.WAIT_FOR_DATA:
                assert block.request_time is not None and block.current_time is not None
                await self.clock.sleep(max(0, block.request_time - block.current_time))
                continue
            if block.status is not OtaStatus.SUCCESS:
                self.download = None
                return self._finish(OtaResult(OtaOutcome.ABORTED, resumed_from=resumed_from))
            assert block.data is not None
            if (
                block.file_offset != download.offset
                or block.file_version != download.file_version
                or not block.data
                or len(block.data) > want
            ):
                self._event("bad-block", f"offset {block.file_offset}, {len(block.data)} octets")
                continue  # ask again for the same offset
            download.data += block.data
        return await self._complete(download, resumed_from)

    async def _complete(self, download: OtaDownload, resumed_from: int) -> OtaResult:
        self.download = None
        ids = (download.manufacturer_code, download.image_type, download.file_version)
        try:
            file = parse_ota_file(bytes(download.data))
            h = file.header
            if (h.manufacturer_code, h.image_type, h.file_version) != ids:
                raise OtaError("header does not match the image the server offered")
        except OtaError as exc:
            self._event("invalid", str(exc))
            await self.port.send(
                self.server_eui,
                UpgradeEndRequest(OtaStatus.INVALID_IMAGE, *ids),
                dst_endpoint=self.server_endpoint,
            )
            return self._finish(OtaResult(OtaOutcome.INVALID_IMAGE, resumed_from=resumed_from))
        digest = self.stage(file)
        try:
            msg = await self._request(
                UpgradeEndRequest(OtaStatus.SUCCESS, *ids), UpgradeEndResponse
            )
        except ZclTimeout:
            upgrade_time = None
        else:
            end = msg.command
            assert isinstance(end, UpgradeEndResponse)
            upgrade_time = end.upgrade_time
        if self.on_image is not None:
            hook = self.on_image(
                file, digest, OTA_UPGRADE_TIME_WAIT if upgrade_time is None else upgrade_time
            )
            if inspect.isawaitable(hook):
                await hook
        return self._finish(
            OtaResult(OtaOutcome.COMPLETE, file, digest, upgrade_time, resumed_from)
        )


__all__ = [
    "DEFAULT_MAX_DATA_SIZE",
    "OTA_FILE_IDENTIFIER",
    "OtaClient",
    "OtaDownload",
    "OtaError",
    "OtaFieldControl",
    "OtaFile",
    "OtaHeader",
    "OtaOutcome",
    "OtaResult",
    "OtaServer",
    "ServedImage",
    "TransferProgress",
    "build_ota_file",
    "device_firmware_store",
    "device_running_version",
    "parse_ota_file",
]
