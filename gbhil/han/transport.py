"""The HAN transport interface, at APS-frame level.

Devices (CHF, ESME, GSME, PPMID, HHT models) talk to the HAN only through
:class:`HanTransport`. The simulated medium implements it today; a real radio
(bellows/EZSP) will implement it later. Working at the APS level keeps MAC/NWK
details (routing, retries, security) inside the radio, where a real NCP keeps
them too, so tests run unchanged against either (architecture rule 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum, IntFlag
from typing import Final

from gbhil.han.channels import HanError, PageChannel, validate

# ---------------------------------------------------------------------------
# Catalogue: APS-level identifiers the transport itself needs
# ---------------------------------------------------------------------------

#: ZigBee Smart Energy application profile (every GBCS HAN frame uses it).
PROFILE_SMART_ENERGY: Final = 0x0109
#: ZigBee Device Profile (endpoint 0).
PROFILE_ZDP: Final = 0x0000
#: NWK broadcast addresses: all devices / rx-on-when-idle devices / routers.
BROADCAST_ALL: Final = 0xFFFF
BROADCAST_RX_ON_WHEN_IDLE: Final = 0xFFFD
BROADCAST_ROUTERS: Final = 0xFFFC
BROADCAST_SHORT_ADDRESSES: Final = frozenset(
    {BROADCAST_ALL, BROADCAST_RX_ON_WHEN_IDLE, BROADCAST_ROUTERS}
)
#: APS broadcast endpoint.
ENDPOINT_BROADCAST: Final = 0xFF
EUI64_LEN: Final = 8


class FrameError(HanError, ValueError):
    """An APS frame with a field out of range; the message names the field."""


class TxOptions(IntFlag):
    """APS transmit options (mirrors the EZSP/zigpy TX option flags that matter here)."""

    NONE = 0
    APS_ACK = 0x01  # request an APS acknowledgement
    APS_SECURITY = 0x02  # APS-encrypt the payload (the simulated medium sends plaintext)


class TxPriority(IntEnum):
    """How essential a frame is; sub-GHz duty-cycle modes admit only some priorities.

    A simulation-level hint (a real radio ignores it): the device model that
    sends the frame knows whether it is routine traffic or something that must
    get through while the CHF is rationing airtime.
    """

    ROUTINE = 0
    ESSENTIAL = 1
    CRITICAL = 2


class TxStatus(Enum):
    """Outcome of handing a frame to the transport."""

    SENT = "sent"  # transmitted (delivery is not guaranteed: loss is the medium's business)
    DISCARDED_DUTY_CYCLE = "discarded-duty-cycle"  # dropped by sub-GHz duty-cycle management


def _check_eui(name: str, value: object) -> None:
    if not isinstance(value, bytes) or len(value) != EUI64_LEN:
        shown = value.hex() if isinstance(value, bytes) else repr(value)
        raise FrameError(f"{name} must be 8 bytes (EUI-64), got {shown}")


def _check_uint(name: str, value: object, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise FrameError(f"{name} must be an unsigned {bits}-bit integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class ApsFrame:
    """One APS data frame: addressing, profile/cluster/endpoints and the payload.

    ``payload`` is the APS payload, i.e. the ZCL frame (header + command). ``dst_eui64``
    is None for a broadcast, which then needs a broadcast ``dst_short``. Short
    addresses and the APS counter may be left None for the transport to fill in
    (a real NCP assigns APS counters itself); received frames always carry them.
    ``page``/``channel`` pin the transmission to one radio of a dual-band node;
    on received frames they say where the frame was heard.
    """

    src_eui64: bytes
    dst_eui64: bytes | None
    cluster_id: int
    payload: bytes
    src_endpoint: int = 1
    dst_endpoint: int = 1
    profile_id: int = PROFILE_SMART_ENERGY
    aps_counter: int | None = None
    src_short: int | None = None
    dst_short: int | None = None
    page: int | None = None
    channel: int | None = None
    options: TxOptions = TxOptions.NONE
    priority: TxPriority = TxPriority.ROUTINE

    def __post_init__(self) -> None:
        _check_eui("src_eui64", self.src_eui64)
        if self.dst_eui64 is not None:
            _check_eui("dst_eui64", self.dst_eui64)
        elif self.dst_short is not None and self.dst_short not in BROADCAST_SHORT_ADDRESSES:
            raise FrameError(
                f"dst_short 0x{self.dst_short:04X} is not a broadcast address, "
                "but dst_eui64 is None (broadcast)"
            )
        _check_uint("cluster_id", self.cluster_id, 16)
        _check_uint("profile_id", self.profile_id, 16)
        _check_uint("src_endpoint", self.src_endpoint, 8)
        _check_uint("dst_endpoint", self.dst_endpoint, 8)
        if self.aps_counter is not None:
            _check_uint("aps_counter", self.aps_counter, 8)
        for name in ("src_short", "dst_short"):
            value = getattr(self, name)
            if value is not None:
                _check_uint(name, value, 16)
        if self.src_short is not None and self.src_short in BROADCAST_SHORT_ADDRESSES:
            raise FrameError(f"src_short 0x{self.src_short:04X} is a broadcast address")
        if not isinstance(self.payload, bytes):
            raise FrameError(f"payload must be bytes, got {type(self.payload).__name__}")
        if (self.page is None) != (self.channel is None):
            raise FrameError("page and channel must be given together (or both left None)")
        if self.page is not None and self.channel is not None:
            validate(self.page, self.channel)
        if not isinstance(self.options, TxOptions):
            raise FrameError(f"options must be TxOptions, got {self.options!r}")
        if not isinstance(self.priority, TxPriority):
            raise FrameError(f"priority must be TxPriority, got {self.priority!r}")

    @property
    def is_broadcast(self) -> bool:
        """True when the frame goes to every node on the channel."""
        return self.dst_eui64 is None

    @property
    def page_channel(self) -> PageChannel | None:
        """The pinned/heard page and channel, if any."""
        if self.page is None or self.channel is None:
            return None
        return PageChannel(self.page, self.channel)

    def replace(self, **changes: object) -> ApsFrame:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class TxResult:
    """What happened to a frame handed to :meth:`HanTransport.send`.

    Times are clock monotonic seconds: when the first octet went on air and when
    the last one left it (the simulated radio transmits one frame at a time).
    """

    status: TxStatus
    channels: tuple[PageChannel, ...] = ()
    airtime: float = 0.0
    start: float = 0.0
    end: float = 0.0


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One transmission as a sniffer sees it: the medium hands these to capture taps."""

    frame: ApsFrame
    page: int
    channel: int
    timestamp: datetime  # aware UTC, start of the transmission
    airtime: float = 0.0


ReceiveCallback = Callable[[ApsFrame], None]


class HanTransport(ABC):
    """One radio endpoint on the HAN, seen at APS level.

    Implementations call :meth:`_deliver` for every frame they receive; this
    base class fans it out to listeners and to the :meth:`receive` queue, so
    both callback-style and ``async for`` consumers work on any transport.
    """

    def __init__(self, eui64: bytes) -> None:
        _check_eui("eui64", eui64)
        self.eui64: bytes = eui64
        self._listeners: list[ReceiveCallback] = []
        self._queue: asyncio.Queue[ApsFrame] | None = None

    # -- data plane --------------------------------------------------------
    @abstractmethod
    async def send(self, frame: ApsFrame) -> TxResult:
        """Transmit ``frame``; returns once it has left the radio (or was discarded)."""

    def add_listener(self, callback: ReceiveCallback) -> Callable[[], None]:
        """Call ``callback(frame)`` for each received frame; returns an unsubscribe function."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def enable_queue(self) -> None:
        """Also keep received frames for :meth:`receive` (frames before this are not kept)."""
        if self._queue is None:
            self._queue = asyncio.Queue()

    async def receive(self) -> ApsFrame:
        """Wait for the next received frame (enables the queue on first use)."""
        self.enable_queue()
        assert self._queue is not None
        return await self._queue.get()

    async def __aiter__(self) -> AsyncIterator[ApsFrame]:
        """``async for frame in transport``: every frame received from now on."""
        while True:
            yield await self.receive()

    def _deliver(self, frame: ApsFrame) -> None:
        """Hand a received frame to listeners and the queue (for implementations)."""
        for callback in tuple(self._listeners):
            callback(frame)
        if self._queue is not None:
            self._queue.put_nowait(frame)

    # -- control plane -----------------------------------------------------
    @abstractmethod
    async def join(self) -> None:
        """Join the HAN (start receiving and be allowed to transmit)."""

    @abstractmethod
    async def leave(self) -> None:
        """Leave the HAN."""

    @abstractmethod
    async def set_channel(self, page: int, channel: int) -> bool:
        """Move the radio serving ``page``'s band to ``page``/``channel``.

        Returns False when the change was refused (e.g. sub-GHz frequency-agility
        limits); bad page/channel values raise :class:`ChannelError`.
        """

    @property
    @abstractmethod
    def channels(self) -> tuple[PageChannel, ...]:
        """The page/channel each radio currently listens on (one per band)."""

    @property
    @abstractmethod
    def joined(self) -> bool:
        """Whether the transport is on the network."""


__all__ = [
    "BROADCAST_ALL",
    "BROADCAST_ROUTERS",
    "BROADCAST_RX_ON_WHEN_IDLE",
    "BROADCAST_SHORT_ADDRESSES",
    "ENDPOINT_BROADCAST",
    "PROFILE_SMART_ENERGY",
    "PROFILE_ZDP",
    "ApsFrame",
    "CapturedFrame",
    "FrameError",
    "HanTransport",
    "ReceiveCallback",
    "TxOptions",
    "TxPriority",
    "TxResult",
    "TxStatus",
]
