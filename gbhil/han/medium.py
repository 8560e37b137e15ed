"""The simulated HAN: an in-process radio medium driven by the shared clock.

Nodes attach with their EUI-64 and the page/channel each of their radios
listens on (a dual-band CHF has a 2.4 GHz radio and a sub-GHz radio). A frame
is heard only on the page and channel it was sent on. Everything that takes
time is scheduled on the shared :class:`~gbhil.simulator.clock.Clock`: the
airtime of the frame (from the page's PHY bit rate and the synthesised
MAC/NWK/APS framing, fragments included), then per-link latency, jitter and
reordering delay. Loss, duplication and reordering draw from one seeded
``random.Random`` (four draws per receiver per frame, whatever the knobs), so a
seed reproduces a run exactly and changing one link's knobs does not shift
another link's luck.

Sub-GHz transmissions count against the sender's duty cycle over a rolling
one-hour window (5-minute buckets, as Silicon Labs' duty-cycle code keeps
them). Crossing a threshold changes the duty-cycle mode and raises the GBCS
alert code (0x8F20/22/24 going up, 0x8F21/23/25 coming down); a frame the mode
does not admit is discarded with 0x8F2C. The medium only reports alerts
through ``on_alert(node, code, details)``: building the GBCS alert message is
the device model's job. Thresholds and which priorities each mode admits are
configuration (GBCS numbers were not found in public sources; see docs/han.md).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Final

from gbhil.han.channels import (
    Band,
    ChannelMask,
    HanError,
    PageChannel,
    PhyProfile,
    band_of,
    is_sub_ghz,
    page_info,
    phy_profile,
    validate,
)
from gbhil.han.pcap import DEFAULT_FRAMING, Framing
from gbhil.han.transport import (
    BROADCAST_ALL,
    EUI64_LEN,
    PROFILE_ZDP,
    ApsFrame,
    CapturedFrame,
    FrameError,
    HanTransport,
    TxPriority,
    TxResult,
    TxStatus,
)
from gbhil.simulator.clock import Clock, TimerHandle

# ---------------------------------------------------------------------------
# Catalogue: GBCS dual-band alert codes the medium raises (gbcs-facts 4.2, App. B)
# ---------------------------------------------------------------------------


class HanAlert(IntEnum):
    """GBCS alert codes for sub-GHz duty-cycle and channel events."""

    LIMITED_DUTY_CYCLE_ACTION_TAKEN = 0x8F20
    DUTY_CYCLE_BELOW_NORMAL_LIMITED = 0x8F21
    CRITICAL_DUTY_CYCLE_ACTION_TAKEN = 0x8F22
    DUTY_CYCLE_BELOW_LIMITED_CRITICAL = 0x8F23
    REGULATED_DUTY_CYCLE_ACTION_TAKEN = 0x8F24
    DUTY_CYCLE_BELOW_CRITICAL_REGULATED = 0x8F25
    SUB_GHZ_CHANNEL_CHANGED = 0x8F26
    CHANNEL_NOT_CHANGED_FREQUENCY_AGILITY = 0x8F2B
    MESSAGE_DISCARDED_DUTY_CYCLE = 0x8F2C


class DutyCycleMode(IntEnum):
    """GBCS duty-cycle management modes, in order of increasing restriction."""

    NORMAL = 0
    LIMITED = 1
    CRITICAL = 2
    REGULATED = 3


#: Alert raised when a node enters a mode from below.
ALERT_ENTERING: Final[Mapping[DutyCycleMode, HanAlert]] = {
    DutyCycleMode.LIMITED: HanAlert.LIMITED_DUTY_CYCLE_ACTION_TAKEN,
    DutyCycleMode.CRITICAL: HanAlert.CRITICAL_DUTY_CYCLE_ACTION_TAKEN,
    DutyCycleMode.REGULATED: HanAlert.REGULATED_DUTY_CYCLE_ACTION_TAKEN,
}
#: Alert raised when usage falls below the threshold of the mode a node leaves.
ALERT_LEAVING: Final[Mapping[DutyCycleMode, HanAlert]] = {
    DutyCycleMode.LIMITED: HanAlert.DUTY_CYCLE_BELOW_NORMAL_LIMITED,
    DutyCycleMode.CRITICAL: HanAlert.DUTY_CYCLE_BELOW_LIMITED_CRITICAL,
    DutyCycleMode.REGULATED: HanAlert.DUTY_CYCLE_BELOW_CRITICAL_REGULATED,
}

#: Silicon Labs' documented example limits (radio-stack.md 3.4): 1.00 / 1.80 / 2.50 %.
DEFAULT_LIMITED_PERCENT: Final = 1.0
DEFAULT_CRITICAL_PERCENT: Final = 1.8
DEFAULT_REGULATED_PERCENT: Final = 2.5
#: ETSI EN 300 220 observation window and Silicon Labs' bucket size.
DUTY_CYCLE_WINDOW_S: Final = 3600.0
DUTY_CYCLE_BUCKET_S: Final = 300.0
#: Lowest priority each mode admits (None: nothing is sent). Project assumption.
DEFAULT_MIN_PRIORITY: Final[tuple[TxPriority | None, ...]] = (
    TxPriority.ROUTINE,  # NORMAL: everything
    TxPriority.ESSENTIAL,  # LIMITED: routine traffic is held back
    TxPriority.CRITICAL,  # CRITICAL: only critical traffic
    None,  # REGULATED: the regulatory limit is reached, nothing goes out
)

#: ZDO Mgmt_NWK_Update_req: a ScanDuration of 0xFE asks every receiver to move to the one
#: channel of ScanChannels (Zigbee 2.4.3.3.9); the network manager broadcasts it, then moves.
ZDO_MGMT_NWK_UPDATE_REQ: Final = 0x0038
ZDO_ENDPOINT: Final = 0x00
NWK_CHANNEL_CHANGE: Final = 0xFE
#: TSN(1) + ScanChannels(4, LE page mask) + ScanDuration(1) + nwkUpdateId(1).
NWK_UPDATE_LENGTH: Final = 7

AlertCallback = Callable[[bytes, int, Mapping[str, Any]], None]
TapCallback = Callable[[CapturedFrame], None]


class MediumError(HanError):
    """Misuse of the simulated medium: unknown node, wrong channel, bad knob."""


def _eui_text(eui: bytes) -> str:
    return eui.hex("-").upper()


def _check_eui(what: str, eui: object) -> bytes:
    if not isinstance(eui, bytes) or len(eui) != EUI64_LEN:
        raise MediumError(f"{what} must be an 8-byte EUI-64, got {eui!r}")
    return eui


def _check_probability(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise MediumError(f"{name} must be a probability in [0, 1], got {value!r}")


def _check_duration(name: str, value: float) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise MediumError(f"{name} must be a finite, non-negative number of seconds, got {value!r}")


@dataclass(frozen=True, slots=True)
class LinkQuality:
    """Impairments of one direction of one link (or the medium-wide default)."""

    loss: float = 0.0  # probability a copy never arrives
    latency: float = 0.0  # seconds added after the airtime
    jitter: float = 0.0  # up to this many extra seconds, uniformly
    duplicate: float = 0.0  # probability a second copy arrives
    duplicate_delay: float = 0.005  # seconds between the copy and its duplicate
    reorder: float = 0.0  # probability a copy is held back by reorder_delay
    reorder_delay: float = 0.05  # long enough for later frames to overtake

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            _check_probability(name, getattr(self, name))
        for name in ("latency", "jitter", "duplicate_delay", "reorder_delay"):
            _check_duration(name, getattr(self, name))


@dataclass(frozen=True, slots=True)
class DutyCycleConfig:
    """Sub-GHz duty-cycle thresholds (percent of the window) and mode policy."""

    limited_percent: float = DEFAULT_LIMITED_PERCENT
    critical_percent: float = DEFAULT_CRITICAL_PERCENT
    regulated_percent: float = DEFAULT_REGULATED_PERCENT
    window_seconds: float = DUTY_CYCLE_WINDOW_S
    bucket_seconds: float = DUTY_CYCLE_BUCKET_S
    min_priority: tuple[TxPriority | None, ...] = DEFAULT_MIN_PRIORITY
    enabled: bool = True

    def __post_init__(self) -> None:
        t = (self.limited_percent, self.critical_percent, self.regulated_percent)
        if not all(isinstance(x, int | float) and math.isfinite(x) for x in t):
            raise MediumError(f"duty-cycle thresholds must be finite numbers, got {t}")
        if not 0 < t[0] < t[1] < t[2] <= 100:
            raise MediumError(
                "duty-cycle thresholds must satisfy 0 < limited < critical < regulated <= 100 "
                f"(percent), got {t[0]} / {t[1]} / {t[2]}"
            )
        _check_duration("window_seconds", self.window_seconds)
        _check_duration("bucket_seconds", self.bucket_seconds)
        if self.bucket_seconds <= 0 or self.window_seconds <= 0:
            raise MediumError("duty-cycle window and bucket must be positive")
        buckets = self.window_seconds / self.bucket_seconds
        if abs(buckets - round(buckets)) > 1e-9:
            raise MediumError(
                f"bucket_seconds {self.bucket_seconds} must divide window_seconds "
                f"{self.window_seconds}"
            )
        if len(self.min_priority) != len(DutyCycleMode):
            raise MediumError(
                f"min_priority needs one entry per mode ({len(DutyCycleMode)}), "
                f"got {len(self.min_priority)}"
            )
        ranks = [len(TxPriority) if p is None else int(p) for p in self.min_priority]
        if ranks != sorted(ranks):
            raise MediumError("a more restrictive duty-cycle mode must not admit more priorities")

    @property
    def buckets(self) -> int:
        """Buckets per window."""
        return round(self.window_seconds / self.bucket_seconds)

    def mode_for(self, percent: float) -> DutyCycleMode:
        """The mode a usage of ``percent`` of the window puts a node in."""
        if percent >= self.regulated_percent:
            return DutyCycleMode.REGULATED
        if percent >= self.critical_percent:
            return DutyCycleMode.CRITICAL
        if percent >= self.limited_percent:
            return DutyCycleMode.LIMITED
        return DutyCycleMode.NORMAL

    def admits(self, mode: DutyCycleMode, priority: TxPriority) -> bool:
        """Whether a frame of ``priority`` may be sent in ``mode``."""
        lowest = self.min_priority[mode]
        return lowest is not None and priority >= lowest


@dataclass(frozen=True, slots=True)
class FrequencyAgilityConfig:
    """Limits on sub-GHz channel changes; a refused change raises alert 0x8F2B.

    Defaults allow every change: GBCS carries its own parameters in DBCH04,
    which the CHF model maps onto this.
    """

    min_interval_seconds: float = 0.0
    max_changes: int | None = None
    window_seconds: float = 86_400.0

    def __post_init__(self) -> None:
        _check_duration("min_interval_seconds", self.min_interval_seconds)
        _check_duration("window_seconds", self.window_seconds)
        if self.max_changes is not None and (
            not isinstance(self.max_changes, int) or self.max_changes < 0
        ):
            raise MediumError(f"max_changes must be None or >= 0, got {self.max_changes!r}")


@dataclass(slots=True)
class NodeCounters:
    """Per-node frame counters (copies: a duplicate counts as a second delivery)."""

    sent: int = 0  # transmissions this node started
    delivered: int = 0  # copies of this node's frames handed to a receiver
    received: int = 0  # copies handed to this node
    lost: int = 0  # copies of this node's frames that did not arrive
    duplicated: int = 0  # extra copies of this node's frames
    discarded: int = 0  # frames duty-cycle management discarded before sending
    airtime: float = 0.0  # seconds on air


@dataclass(frozen=True, slots=True)
class DutyCycleStatus:
    """A node's sub-GHz duty-cycle state at one instant."""

    mode: DutyCycleMode
    used_seconds: float
    percent: float


class DutyCycleMeter:
    """Rolling-window airtime accounting in fixed buckets (one per node)."""

    def __init__(self, config: DutyCycleConfig) -> None:
        self.config = config
        self.mode = DutyCycleMode.NORMAL
        self._buckets: deque[list[float]] = deque()  # [bucket index, seconds]

    def _index(self, at: float) -> int:
        # The epsilon keeps e.g. 0.3 s in bucket 3 of 0.1 s buckets despite binary floats.
        return math.floor(at / self.config.bucket_seconds + 1e-9)

    def _expire(self, at: float) -> None:
        # Same expression as next_expiry(), so a check scheduled then always sees the drop.
        span, size = self.config.buckets, self.config.bucket_seconds
        while self._buckets and (self._buckets[0][0] + span) * size <= at:
            self._buckets.popleft()

    def add(self, at: float, seconds: float) -> None:
        """Count ``seconds`` of airtime starting at ``at``."""
        self._expire(at)
        index = self._index(at)
        if self._buckets and self._buckets[-1][0] == index:
            self._buckets[-1][1] += seconds
        else:
            self._buckets.append([index, seconds])

    def used(self, at: float) -> float:
        """Airtime inside the window that ends at ``at``."""
        self._expire(at)
        current = self._index(at)
        return sum(s for i, s in self._buckets if i <= current)

    def percent(self, at: float) -> float:
        return 100.0 * self.used(at) / self.config.window_seconds

    def next_expiry(self) -> float | None:
        """When the oldest counted bucket leaves the window (usage can only fall then)."""
        if not self._buckets:
            return None
        return (self._buckets[0][0] + self.config.buckets) * self.config.bucket_seconds


@dataclass(eq=False, slots=True)
class _Node:
    eui64: bytes
    short: int
    radios: dict[Band, PageChannel]
    duty: DutyCycleMeter
    transport: SimulatedNode
    joined: bool = True
    aps_counter: int = 0
    counters: NodeCounters = field(default_factory=NodeCounters)
    tx_free_at: dict[Band, float] = field(default_factory=dict)
    duty_timer: TimerHandle | None = None
    channel_changes: deque[float] = field(default_factory=deque)

    def listens_on(self, pc: PageChannel) -> bool:
        return self.joined and self.radios.get(band_of(pc.page)) == pc


class SimulatedNode(HanTransport):
    """A node's view of the simulated medium: the HAN transport of a simulated device."""

    def __init__(self, medium: SimulatedMedium, eui64: bytes) -> None:
        super().__init__(eui64)
        self.medium = medium

    async def send(self, frame: ApsFrame) -> TxResult:
        if frame.src_eui64 != self.eui64:
            raise FrameError(
                f"src_eui64 {_eui_text(frame.src_eui64)} is not this node ({_eui_text(self.eui64)})"
            )
        result = self.medium.transmit(frame)
        if result.status is TxStatus.SENT:
            await self.medium.clock.sleep_until(result.end)
        return result

    async def join(self) -> None:
        self.medium._set_joined(self.eui64, True)

    async def leave(self) -> None:
        self.medium._set_joined(self.eui64, False)

    async def set_channel(self, page: int, channel: int) -> bool:
        return self.medium.set_channel(self.eui64, page, channel)

    async def move_network(self, page: int, channel: int) -> bool:
        """As the network manager: take every node that hears it to ``page``/``channel``."""
        return self.medium.move_network(self.eui64, page, channel)

    @property
    def channels(self) -> tuple[PageChannel, ...]:
        return tuple(self.medium._node(self.eui64).radios.values())

    @property
    def joined(self) -> bool:
        return self.medium._node(self.eui64).joined

    @property
    def short_address(self) -> int:
        """The node's NWK short address on this medium."""
        return self.medium._node(self.eui64).short

    @property
    def counters(self) -> NodeCounters:
        """A snapshot of this node's counters."""
        return self.medium.counters(self.eui64)


class SimulatedMedium:
    """In-process, deterministic HAN radio medium (see the module docstring)."""

    def __init__(
        self,
        clock: Clock,
        *,
        seed: int = 0,
        link: LinkQuality | None = None,
        duty_cycle: DutyCycleConfig | None = None,
        agility: FrequencyAgilityConfig | None = None,
        phy: Mapping[int, PhyProfile] | None = None,
        framing: Framing = DEFAULT_FRAMING,
        on_alert: AlertCallback | None = None,
    ) -> None:
        self.clock = clock
        self.random = random.Random(seed)
        self.default_link = link or LinkQuality()
        self.duty_cycle = duty_cycle or DutyCycleConfig()
        self.agility = agility or FrequencyAgilityConfig()
        self.framing = framing
        self._phy: dict[int, PhyProfile] = {}
        for page, profile in (phy or {}).items():
            page_info(page)  # raises ChannelError for an unknown page
            if not isinstance(profile, PhyProfile):
                raise MediumError(f"PHY override for page {page} must be a PhyProfile")
            self._phy[page] = profile
        self._nodes: dict[bytes, _Node] = {}
        self._directory: dict[bytes, int] = {}  # EUI-64 -> short, kept after detach
        self._links: dict[tuple[bytes, bytes], LinkQuality] = {}
        self._taps: list[TapCallback] = []
        self._alert_listeners: list[AlertCallback] = [] if on_alert is None else [on_alert]

    # -- membership ------------------------------------------------------------
    def attach(
        self,
        eui64: bytes,
        channels: Iterable[tuple[int, int]],
        *,
        short_address: int | None = None,
        duty_cycle: DutyCycleConfig | None = None,
        joined: bool = True,
    ) -> SimulatedNode:
        """Put a node on the medium with one page/channel per radio; returns its transport.

        Short addresses default to the lowest free one from 0x0000, so the first
        node attached (normally the CHF, the coordinator) gets 0x0000.
        """
        eui64 = _check_eui("eui64", eui64)
        if eui64 in self._nodes:
            raise MediumError(f"node {_eui_text(eui64)} is already attached")
        radios: dict[Band, PageChannel] = {}
        for item in channels:
            if not isinstance(item, tuple) or len(item) != 2:
                raise MediumError(f"channels must be (page, channel) pairs, got {item!r}")
            pc = validate(*item)
            band = band_of(pc.page)
            if band in radios:
                raise MediumError(
                    f"node {_eui_text(eui64)}: {radios[band]} and {pc} are both on the "
                    f"{band.value} band; a node has one radio per band"
                )
            radios[band] = pc
        if not radios:
            raise MediumError(f"node {_eui_text(eui64)} needs at least one page/channel")
        short = self._allocate_short(eui64, short_address)
        transport = SimulatedNode(self, eui64)
        self._nodes[eui64] = _Node(
            eui64, short, radios, DutyCycleMeter(duty_cycle or self.duty_cycle), transport, joined
        )
        self._directory[eui64] = short
        return transport

    def _allocate_short(self, eui64: bytes, wanted: int | None) -> int:
        in_use = {n.short for n in self._nodes.values()}
        if wanted is None:
            wanted = self._directory.get(eui64)
            if wanted is None or wanted in in_use:
                wanted = next(a for a in range(0xFFF8) if a not in in_use)
            return wanted
        if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 <= wanted < 0xFFF8:
            raise MediumError(f"short address must be 0x0000-0xFFF7, got {wanted!r}")
        if wanted in in_use:
            raise MediumError(f"short address 0x{wanted:04X} is already in use")
        return wanted

    def detach(self, eui64: bytes) -> None:
        """Take a node off the medium (frames in flight to it are lost)."""
        node = self._node(eui64)
        if node.duty_timer is not None:
            node.duty_timer.cancel()
        del self._nodes[eui64]

    def _node(self, eui64: bytes) -> _Node:
        try:
            return self._nodes[eui64]
        except KeyError:
            raise MediumError(
                f"node {_eui_text(_check_eui('eui64', eui64))} is not attached"
            ) from None

    def node(self, eui64: bytes) -> SimulatedNode:
        """The transport of an attached node."""
        return self._node(eui64).transport

    @property
    def nodes(self) -> tuple[SimulatedNode, ...]:
        """Attached nodes, in attach order."""
        return tuple(n.transport for n in self._nodes.values())

    def _set_joined(self, eui64: bytes, joined: bool) -> None:
        self._node(eui64).joined = joined

    # -- knobs -------------------------------------------------------------------
    def set_link(
        self, src: bytes, dst: bytes, quality: LinkQuality | None, *, both_ways: bool = True
    ) -> None:
        """Impair the link src -> dst (and back, by default); None restores the default."""
        src, dst = _check_eui("src", src), _check_eui("dst", dst)
        pairs = [(src, dst), (dst, src)] if both_ways else [(src, dst)]
        for pair in pairs:
            if quality is None:
                self._links.pop(pair, None)
            else:
                self._links[pair] = quality

    def link(self, src: bytes, dst: bytes) -> LinkQuality:
        """The impairments in force for src -> dst."""
        return self._links.get((src, dst), self.default_link)

    def phy(self, page: int) -> PhyProfile:
        """PHY used for airtime on ``page`` (override or catalogue default)."""
        return self._phy.get(page) or phy_profile(page)

    def add_tap(self, tap: TapCallback) -> Callable[[], None]:
        """Call ``tap(CapturedFrame)`` for every transmission; returns a remover."""
        self._taps.append(tap)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._taps.remove(tap)

        return remove

    def add_alert_listener(self, callback: AlertCallback) -> Callable[[], None]:
        """Call ``callback(node_eui64, alert_code, details)`` for every HAN alert."""
        self._alert_listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._alert_listeners.remove(callback)

        return remove

    def _alert(self, node: _Node, code: HanAlert, **details: Any) -> None:
        details.setdefault("time", self.clock.now())
        for callback in tuple(self._alert_listeners):
            callback(node.eui64, int(code), details)

    # -- observation ---------------------------------------------------------------
    def counters(self, eui64: bytes) -> NodeCounters:
        """Snapshot of a node's counters."""
        return replace(self._node(eui64).counters)

    def duty_cycle_status(self, eui64: bytes) -> DutyCycleStatus:
        """A node's current sub-GHz duty-cycle mode and usage."""
        node = self._node(eui64)
        now = self.clock.monotonic()
        used = node.duty.used(now)
        return DutyCycleStatus(node.duty.mode, used, 100.0 * used / node.duty.config.window_seconds)

    # -- transmission ------------------------------------------------------------
    def transmit(self, frame: ApsFrame) -> TxResult:
        """Put ``frame`` on air now (or when the radio is free); returns without waiting."""
        src = self._node(frame.src_eui64)
        if not src.joined:
            raise MediumError(f"node {_eui_text(src.eui64)} has not joined the HAN")
        if frame.src_short is not None and frame.src_short != src.short:
            raise FrameError(
                f"src_short 0x{frame.src_short:04X} is not node {_eui_text(src.eui64)}'s "
                f"short address 0x{src.short:04X}"
            )
        dst: _Node | None = None
        if frame.dst_eui64 is None:
            dst_short = BROADCAST_ALL if frame.dst_short is None else frame.dst_short
        else:
            dst = self._nodes.get(frame.dst_eui64)
            known = self._directory.get(frame.dst_eui64)
            if known is None:
                raise MediumError(
                    f"destination {_eui_text(frame.dst_eui64)} has never been on this medium"
                )
            if frame.dst_short is not None and frame.dst_short != known:
                raise FrameError(
                    f"dst_short 0x{frame.dst_short:04X} is not {_eui_text(frame.dst_eui64)}'s "
                    f"short address 0x{known:04X}"
                )
            dst_short = known
        counter = frame.aps_counter
        if counter is None:
            counter = src.aps_counter
            src.aps_counter = (src.aps_counter + 1) & 0xFF
        addressing = {"src_short": src.short, "dst_short": dst_short, "aps_counter": counter}
        lengths = self.framing.psdu_lengths(frame)  # depends on payload and broadcast only
        results = [
            self._transmit_on(src, dst, frame, pc, lengths, addressing)
            for pc in self._tx_channels(src, dst, frame)
        ]
        sent = [r for r in results if r.status is TxStatus.SENT]
        if not sent:
            return TxResult(
                TxStatus.DISCARDED_DUTY_CYCLE, tuple(c for r in results for c in r.channels)
            )
        return TxResult(
            TxStatus.SENT,
            tuple(c for r in sent for c in r.channels),
            sum(r.airtime for r in sent),
            min(r.start for r in sent),
            max(r.end for r in sent),
        )

    def _tx_channels(self, src: _Node, dst: _Node | None, frame: ApsFrame) -> list[PageChannel]:
        pinned = frame.page_channel
        radios = list(src.radios.values())
        if pinned is not None:
            if pinned not in radios:
                raise MediumError(
                    f"node {_eui_text(src.eui64)} has no radio on {pinned} "
                    f"(its radios: {', '.join(map(str, radios))})"
                )
            return [pinned]
        if dst is None:
            # broadcast: every radio; unicast to a detached node: the first radio
            return radios if frame.is_broadcast else radios[:1]
        shared = [pc for pc in radios if pc in dst.radios.values()]
        return shared[:1] or radios[:1]

    def _transmit_on(
        self,
        src: _Node,
        dst: _Node | None,
        frame: ApsFrame,
        pc: PageChannel,
        lengths: list[int],
        addressing: Mapping[str, int],
    ) -> TxResult:
        clock = self.clock
        now = clock.monotonic()
        band = band_of(pc.page)
        phy = self.phy(pc.page)
        air = sum(phy.airtime(n) for n in lengths)
        start = max(now, src.tx_free_at.get(band, now))
        sub_ghz = is_sub_ghz(pc.page) and src.duty.config.enabled
        out = replace(frame, page=pc.page, channel=pc.channel, **addressing)
        if sub_ghz:
            self._update_duty_mode(src, start)
            if not src.duty.config.admits(src.duty.mode, frame.priority):
                src.counters.discarded += 1
                self._alert(
                    src,
                    HanAlert.MESSAGE_DISCARDED_DUTY_CYCLE,
                    frame=out,
                    mode=src.duty.mode,
                    percent=src.duty.percent(start),
                )
                return TxResult(TxStatus.DISCARDED_DUTY_CYCLE, (pc,))
        end = start + air
        src.tx_free_at[band] = end
        src.counters.sent += 1
        src.counters.airtime += air
        if sub_ghz:
            src.duty.add(start, air)
            self._update_duty_mode(src, start)
        if self._taps:
            captured = CapturedFrame(out, pc.page, pc.channel, clock.to_datetime(start), air)
            if start > now:
                clock.call_at(start, self._tap, captured)
            else:
                self._tap(captured)
        receivers: list[_Node]
        if frame.is_broadcast:
            receivers = [n for n in self._nodes.values() if n is not src and n.listens_on(pc)]
        elif dst is None:
            src.counters.lost += 1  # addressed to a node that is not on the medium
            receivers = []
        else:
            receivers = [dst]
        rng = self.random.random
        for rx in receivers:
            q = self.link(src.eui64, rx.eui64)
            r_loss, r_jitter, r_reorder, r_dup = rng(), rng(), rng(), rng()
            if r_loss < q.loss:
                src.counters.lost += 1
                continue
            at = end + q.latency + r_jitter * q.jitter
            if r_reorder < q.reorder:
                at += q.reorder_delay
            clock.call_at(at, self._deliver, src, rx, out, pc)
            if r_dup < q.duplicate:
                src.counters.duplicated += 1
                clock.call_at(at + q.duplicate_delay, self._deliver, src, rx, out, pc)
        return TxResult(TxStatus.SENT, (pc,), air, start, end)

    def _tap(self, captured: CapturedFrame) -> None:
        for tap in tuple(self._taps):
            tap(captured)

    def _deliver(self, src: _Node, rx: _Node, frame: ApsFrame, pc: PageChannel) -> None:
        if self._nodes.get(rx.eui64) is not rx or not rx.listens_on(pc):
            src.counters.lost += 1  # left, detached or retuned while the frame was in flight
            return
        src.counters.delivered += 1
        rx.counters.received += 1
        moved_to = channel_change_of(frame)
        if moved_to is not None and band_of(moved_to.page) is band_of(pc.page):
            rx.radios[band_of(pc.page)] = moved_to  # its NWK layer follows the network
        rx.transport._deliver(frame)

    # -- duty cycle ------------------------------------------------------------------
    def _update_duty_mode(self, node: _Node, at: float) -> None:
        meter = node.duty
        new = meter.config.mode_for(meter.percent(at))
        old = meter.mode
        if new != old:
            meter.mode = new
            percent = meter.percent(at)
            if new > old:
                for mode in range(old + 1, new + 1):
                    m = DutyCycleMode(mode)
                    self._alert(node, ALERT_ENTERING[m], mode=m, previous=old, percent=percent)
            else:
                for mode in range(old, new, -1):
                    m = DutyCycleMode(mode)
                    self._alert(
                        node,
                        ALERT_LEAVING[m],
                        mode=DutyCycleMode(mode - 1),
                        previous=old,
                        percent=percent,
                    )
        self._schedule_duty_check(node)

    def _schedule_duty_check(self, node: _Node) -> None:
        when = node.duty.next_expiry() if node.duty.mode > DutyCycleMode.NORMAL else None
        timer = node.duty_timer
        if timer is not None and not timer.done() and not timer.cancelled():
            if when is not None and timer.when == when:
                return
            timer.cancel()
        node.duty_timer = None if when is None else self.clock.call_at(when, self._duty_tick, node)

    def _duty_tick(self, node: _Node) -> None:
        node.duty_timer = None
        if self._nodes.get(node.eui64) is node:
            self._update_duty_mode(node, self.clock.monotonic())

    # -- frequency agility -------------------------------------------------------------
    def _radio(self, node: _Node, pc: PageChannel) -> PageChannel:
        current = node.radios.get(band_of(pc.page))
        if current is None:
            raise MediumError(
                f"node {_eui_text(node.eui64)} has no {band_of(pc.page).value} radio "
                f"(its radios: {', '.join(map(str, node.radios.values()))})"
            )
        return current

    def _agility_allows(self, node: _Node, pc: PageChannel, current: PageChannel) -> bool:
        """Sub-GHz frequency-agility limits; a refusal raises 0x8F2B."""
        if band_of(pc.page) is not Band.SUB_GHZ:
            return True
        now = self.clock.monotonic()
        cfg = self.agility
        history = node.channel_changes
        while history and history[0] <= now - cfg.window_seconds:
            history.popleft()
        reason = None
        if history and now - history[-1] < cfg.min_interval_seconds:
            reason = (
                f"last change {now - history[-1]:.0f} s ago, minimum interval "
                f"{cfg.min_interval_seconds:.0f} s"
            )
        elif cfg.max_changes is not None and len(history) >= cfg.max_changes:
            reason = f"{len(history)} changes in the last {cfg.window_seconds:.0f} s"
        if reason is None:
            return True
        self._alert(
            node,
            HanAlert.CHANNEL_NOT_CHANGED_FREQUENCY_AGILITY,
            requested=pc,
            current=current,
            reason=reason,
        )
        return False

    def _retune(self, node: _Node, pc: PageChannel, current: PageChannel) -> None:
        band = band_of(pc.page)
        node.radios[band] = pc
        if band is Band.SUB_GHZ:
            node.channel_changes.append(self.clock.monotonic())
            self._alert(node, HanAlert.SUB_GHZ_CHANNEL_CHANGED, previous=current, channel=pc)

    def set_channel(self, eui64: bytes, page: int, channel: int) -> bool:
        """Retune the radio of ``page``'s band; False (and alert 0x8F2B) when refused."""
        node = self._node(eui64)
        pc = validate(page, channel)
        current = self._radio(node, pc)
        if current == pc:
            return True
        if not self._agility_allows(node, pc, current):
            return False
        self._retune(node, pc, current)
        return True

    def move_network(self, eui64: bytes, page: int, channel: int, *, update_id: int = 0) -> bool:
        """The network manager moves the HAN: Mgmt_NWK_Update_req on the old channel, then retune.

        Every node that hears the broadcast moves its radio of that band (a node
        that misses it, through loss or because it was off, stays behind, as on
        a real HAN); the manager's own move obeys the frequency-agility limits,
        and a refused move sends nothing.
        """
        node = self._node(eui64)
        pc = validate(page, channel)
        current = self._radio(node, pc)
        if current == pc:
            return True
        if not self._agility_allows(node, pc, current):
            return False
        if node.joined:
            self.transmit(
                ApsFrame(
                    eui64,
                    None,
                    ZDO_MGMT_NWK_UPDATE_REQ,
                    channel_change_payload(pc, update_id),
                    ZDO_ENDPOINT,
                    ZDO_ENDPOINT,
                    PROFILE_ZDP,
                    dst_short=BROADCAST_ALL,
                    page=current.page,
                    channel=current.channel,
                    priority=TxPriority.CRITICAL,
                )
            )
        self._retune(node, pc, current)
        return True


def channel_change_payload(pc: PageChannel, update_id: int = 0, tsn: int = 0) -> bytes:
    """Mgmt_NWK_Update_req asking every receiver to move to ``pc``."""
    mask = ChannelMask.of(pc.page, [pc.channel]).encode()
    return bytes((tsn & 0xFF,)) + mask.to_bytes(4, "little") + bytes(
        (NWK_CHANNEL_CHANGE, update_id & 0xFF)
    )


def channel_change_of(frame: ApsFrame) -> PageChannel | None:
    """The page/channel a received Mgmt_NWK_Update_req moves to (None: not a channel change)."""
    data = frame.payload
    if (
        frame.profile_id != PROFILE_ZDP
        or frame.cluster_id != ZDO_MGMT_NWK_UPDATE_REQ
        or len(data) != NWK_UPDATE_LENGTH
        or data[5] != NWK_CHANNEL_CHANGE
    ):
        return None
    try:
        mask = ChannelMask.decode(int.from_bytes(data[1:5], "little"))
    except HanError:
        return None
    if len(mask.channels) != 1:
        return None
    (channel,) = mask.channels
    return validate(mask.page, channel)

__all__ = [
    "ALERT_ENTERING",
    "ALERT_LEAVING",
    "AlertCallback",
    "DutyCycleConfig",
    "DutyCycleMeter",
    "DutyCycleMode",
    "DutyCycleStatus",
    "FrequencyAgilityConfig",
    "HanAlert",
    "LinkQuality",
    "MediumError",
    "NodeCounters",
    "SimulatedMedium",
    "SimulatedNode",
    "TapCallback",
    "channel_change_of",
    "channel_change_payload",
]
