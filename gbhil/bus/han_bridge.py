"""The HAN across processes: APS frames, joining and node control over the MQTT bus.

Devices of one rig can run in several processes: process A runs the Comms Hub
(and the DCC side) on the :class:`~gbhil.han.medium.SimulatedMedium`, process
B runs device nodes (ESME, PPMID, GSME) whose radios are
:class:`MqttHanTransport` objects. Architecture rule 2 holds: the node code
(:class:`~gbhil.han.network.MeterNode`, ZCL port, tunnel, OTA) is the same
code on either transport.

* **Frames.** The topic ``han/<page>/<channel>/frame`` is the air of one
  channel. A :class:`MqttHanTransport` publishes what its radio transmits on
  the channel it transmits on and hears every frame on the channels its radios
  listen on (unicasts to it, and broadcasts). In process A the
  :class:`MediumGateway` joins the two worlds: every transmission on the local
  medium (a medium tap) is published, and every frame a remote radio publishes
  is transmitted on the local medium by a stand-in node attached under the
  remote EUI-64, so the hub hears it after the medium's airtime and latency.
  The medium owner stays the authority on short addresses, link impairments
  (on frames *into* the medium) and sub-GHz duty cycle.
* **Joining.** Install-code joining is a control-plane exchange with the
  CHF's trust center (a real NCP does it in its stack). Across processes the
  device's :class:`RemoteJoiningDevice` runs the same steps, each one a request
  to the :class:`TrustCenterService` next to the hub (``han/tc/...``).
* **Node control.** What the rig does to a device (join it at commissioning,
  mains off/on, leave) goes to its device host as a command
  (``node/<eui>/command``); :class:`RemoteNode` is the rig's stand-in, so the
  rig's own code (``SimulatedRig.start``, its mains wiring) runs unchanged.

Timing across processes. The stepped (virtual) clock stays in one process:
it advances when every task of *its* event loop waits, and it cannot see a
frame on its way through a broker, so virtual time would jump past it. A
rig that spans processes therefore runs on a :class:`SharedRealTimeClock` in
every process: wall-clock driven, built from one time base (start instant,
wall-clock epoch, rate) that process A publishes retained on the ``clock``
topic. All processes then agree on "now" to within their wall clocks'
agreement (plus broker latency for events). ``rate`` > 1 runs the whole rig
faster than real time (a 3-minute outage in seconds, for CI); broker latency
is then magnified by the same factor, so keep it well below the protocol
timeouts (10 s tunnel timeout / rate must stay far above the broker's
milliseconds). Real hardware needs rate 1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from gbhil.bus.mqtt import BusError, BusMessage, BusRpc, MqttBus, PublishTicket, Subscription
from gbhil.bus.topics import (
    PayloadError,
    Qos,
    RunTopics,
    TopicError,
    TopicKind,
    eui_text,
    parse_eui,
)
from gbhil.han.channels import Band, HanError, PageChannel, band_of, phy_profile, validate
from gbhil.han.joining import (
    JOIN_STEP_S,
    JoinError,
    JoiningDevice,
    JoinOffer,
    JoinResult,
    JoinRole,
    RejectReason,
    TrustCenter,
    open_transport_key,
    verify_key_hash,
)
from gbhil.han.medium import SimulatedMedium, channel_change_of
from gbhil.han.pcap import DEFAULT_FRAMING, Framing
from gbhil.han.transport import (
    ApsFrame,
    CapturedFrame,
    FrameError,
    HanTransport,
    TxOptions,
    TxPriority,
    TxResult,
    TxStatus,
)
from gbhil.simulator.clock import Clock, ClockError, RealTimeClock, TimerHandle

LOG = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------

#: Frame metadata keys (the APS payload travels as the envelope's data).
F_SRC: Final = "src"
F_DST: Final = "dst"
F_CLUSTER: Final = "cluster"
F_PROFILE: Final = "profile"
F_SRC_EP: Final = "src_ep"
F_DST_EP: Final = "dst_ep"
F_APS_COUNTER: Final = "aps_counter"
F_SRC_SHORT: Final = "src_short"
F_DST_SHORT: Final = "dst_short"
F_OPTIONS: Final = "options"
F_PRIORITY: Final = "priority"
#: Clock topic metadata keys.
C_START: Final = "start"
C_EPOCH: Final = "epoch"
C_RATE: Final = "rate"
#: Trust-center operations (han/tc/request).
OP_REQUEST_JOIN: Final = "request-join"
OP_VERIFY_KEY: Final = "verify-key"
OP_KEY_NOT_VERIFIED: Final = "key-not-verified"
OP_DEVICE_LEFT: Final = "device-left"
#: Node commands (node/<eui>/command).
OP_JOIN: Final = "join"
OP_POWER: Final = "power"
OP_LEAVE: Final = "leave"
OP_WAKE: Final = "wake"  # a sleepy device's wake-up now (the GSME's button)
OP_STOP: Final = "stop"
#: How long (wall seconds) a trust-center step and a remote join may take.
TC_TIMEOUT_S: Final = 10.0
JOIN_TIMEOUT_S: Final = 30.0
#: Clock epochs further in the future than this are a misconfiguration, not skew.
MAX_EPOCH_SKEW_S: Final = 5.0


class BridgeError(BusError, HanError):
    """The HAN bridge used wrongly: a radio not joined, a channel it has no radio for..."""


# ---------------------------------------------------------------------------
# Time across processes
# ---------------------------------------------------------------------------


class SharedRealTimeClock(RealTimeClock):
    """Real time that every process of a run reads alike: ``start + (wall - epoch) * rate``.

    ``epoch`` is the wall-clock instant (``time.time()``) at which the run's
    clock read ``start``; :meth:`describe` gives the three numbers to publish,
    :meth:`from_description` rebuilds the clock in another process. Monotonic
    time counts from the epoch, so it is the same number in every process.
    """

    def __init__(self, start: datetime, *, epoch: float | None = None, rate: float = 1.0) -> None:
        super().__init__(start)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ClockError(f"clock rate must be a positive number, got {rate!r}")
        wall = time.time()
        self.epoch = wall if epoch is None else float(epoch)
        if self.epoch > wall + MAX_EPOCH_SKEW_S:
            raise ClockError(
                f"clock epoch {self.epoch:.3f} is {self.epoch - wall:.1f} s in the future: "
                "the processes' wall clocks disagree"
            )
        self.rate = float(rate)
        self._elapsed_at_origin = max(0.0, (wall - self.epoch) * self.rate)

    @property
    def start(self) -> datetime:
        assert self._start is not None
        return self._start

    def monotonic(self) -> float:
        return self._elapsed_at_origin + (time.monotonic() - self._origin) * self.rate

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    def _schedule(self, handle: TimerHandle) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ClockError("real-time timers need a running asyncio event loop") from None
        delay = max(0.0, handle.when - self.monotonic()) / self.rate
        self._handles[handle] = loop.call_later(delay, self._fire, handle)

    async def run_until_idle(self, max_seconds: float | None = None) -> bool:
        if max_seconds is None:
            return await super().run_until_idle(None)
        return await super().run_until_idle(max_seconds / self.rate)

    def describe(self) -> dict[str, Any]:
        """The time base as JSON (what the ``clock`` topic carries)."""
        return {C_START: self.start.isoformat(), C_EPOCH: self.epoch, C_RATE: self.rate}

    @classmethod
    def from_description(cls, meta: Mapping[str, Any]) -> SharedRealTimeClock:
        """The clock :meth:`describe` described (in this process)."""
        try:
            start = datetime.fromisoformat(str(meta[C_START]))
            epoch = float(meta[C_EPOCH])
            rate = float(meta[C_RATE])
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"clock description needs start/epoch/rate: {exc!r}") from None
        return cls(start, epoch=epoch, rate=rate)


def publish_clock(bus: MqttBus, topics: RunTopics, clock: SharedRealTimeClock) -> PublishTicket:
    """Announce the run's time base (retained: hosts that start later read it too)."""
    return bus.publish(topics.clock(), meta=clock.describe(), retain=True)


async def fetch_clock(
    bus: MqttBus, topics: RunTopics, *, timeout: float = TC_TIMEOUT_S
) -> SharedRealTimeClock:
    """Wait for the run's retained time base and build the same clock here."""
    msg = await bus.next_message(topics.clock(), timeout=timeout)
    return SharedRealTimeClock.from_description(msg.meta)


# ---------------------------------------------------------------------------
# Frames as envelopes
# ---------------------------------------------------------------------------


def frame_meta(frame: ApsFrame) -> dict[str, Any]:
    """APS frame fields as JSON (the payload goes into the envelope's data)."""
    return {
        F_SRC: eui_text(frame.src_eui64),
        F_DST: None if frame.dst_eui64 is None else eui_text(frame.dst_eui64),
        F_CLUSTER: frame.cluster_id,
        F_PROFILE: frame.profile_id,
        F_SRC_EP: frame.src_endpoint,
        F_DST_EP: frame.dst_endpoint,
        F_APS_COUNTER: frame.aps_counter,
        F_SRC_SHORT: frame.src_short,
        F_DST_SHORT: frame.dst_short,
        F_OPTIONS: int(frame.options),
        F_PRIORITY: int(frame.priority),
    }


def frame_from_message(msg: BusMessage, pc: PageChannel) -> ApsFrame:
    """The APS frame a bus message carries, as heard on ``pc``; PayloadError names the field."""
    meta = msg.meta
    if msg.data is None:
        raise PayloadError("HAN frame envelope has no data (the APS payload)")

    def eui(key: str, optional: bool = False) -> bytes | None:
        value = meta.get(key)
        if value is None and optional:
            return None
        try:
            return parse_eui(str(value))
        except TopicError as exc:
            raise PayloadError(f"HAN frame field {key!r}: {exc}") from None

    def number(key: str, optional: bool = False) -> Any:
        value = meta.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise PayloadError(f"HAN frame field {key!r} must be an integer, got {value!r}")
        return value

    src = eui(F_SRC)
    assert src is not None
    try:
        return ApsFrame(
            src_eui64=src,
            dst_eui64=eui(F_DST, optional=True),
            cluster_id=number(F_CLUSTER),
            payload=msg.data,
            src_endpoint=number(F_SRC_EP),
            dst_endpoint=number(F_DST_EP),
            profile_id=number(F_PROFILE),
            aps_counter=number(F_APS_COUNTER, optional=True),
            src_short=number(F_SRC_SHORT, optional=True),
            dst_short=number(F_DST_SHORT, optional=True),
            page=pc.page,
            channel=pc.channel,
            options=TxOptions(number(F_OPTIONS)),
            priority=TxPriority(number(F_PRIORITY)),
        )
    except (FrameError, ValueError) as exc:
        raise PayloadError(f"HAN frame: {exc}") from None


def _frame_topic_channel(topics: RunTopics, topic: str) -> PageChannel:
    parsed = topics.parse(topic)
    if parsed.kind is not TopicKind.HAN_FRAME:
        raise TopicError(f"{topic!r} is not a HAN frame topic")
    try:
        return validate(int(parsed.params["page"]), int(parsed.params["channel"]))
    except (ValueError, HanError) as exc:
        raise TopicError(f"{topic!r}: {exc}") from None


@dataclass(slots=True)
class FrameCounters:
    """What a HAN bridge did with frames."""

    published: int = 0
    heard: int = 0  # frames handed to a local radio / put on the local medium
    ignored: int = 0  # not for us (other channel, other destination, foreign source)
    malformed: int = 0
    refused: int = 0  # the local medium refused the frame (e.g. bad short address)


# ---------------------------------------------------------------------------
# Radios on the bus
# ---------------------------------------------------------------------------


class MqttHan:
    """This process's radios on the bus: one subscription for all HAN channels.

    Every :class:`MqttHanTransport` of the process registers here; a frame
    from the broker is offered to each of them, and a frame one of them sends
    is also offered to the others (the broker does not echo a client's own
    messages back to it), so two devices of one device host hear each other.
    """

    def __init__(self, bus: MqttBus, topics: RunTopics, *, framing: Framing = DEFAULT_FRAMING):
        self.bus = bus
        self.topics = topics
        self.framing = framing
        self.counters = FrameCounters()
        self._transports: dict[bytes, MqttHanTransport] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        if self._sub is None:
            pattern = self.topics.pattern(TopicKind.HAN_FRAME)
            self._sub = await self.bus.subscribe(pattern, self._on_frame, qos=Qos.AT_MOST_ONCE)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None

    def transport(
        self, eui64: bytes, channels: Iterable[tuple[int, int]], clock: Clock
    ) -> MqttHanTransport:
        """A radio for ``eui64`` listening on ``channels`` (one per band)."""
        if eui64 in self._transports:
            raise BridgeError(f"a radio for {eui_text(eui64)} already exists in this process")
        transport = MqttHanTransport(self, eui64, channels, clock)
        self._transports[eui64] = transport
        return transport

    def _on_frame(self, msg: BusMessage) -> None:
        try:
            pc = _frame_topic_channel(self.topics, msg.topic)
            frame = frame_from_message(msg, pc)
        except (TopicError, PayloadError) as exc:
            self.counters.malformed += 1
            LOG.warning("HAN frame on %s refused: %s", msg.topic, exc)
            return
        self._offer(frame, pc, sender=None)

    def _offer(self, frame: ApsFrame, pc: PageChannel, sender: MqttHanTransport | None) -> None:
        heard = False
        for transport in tuple(self._transports.values()):
            if transport is not sender and transport._hear(frame, pc):
                heard = True
        if heard:
            self.counters.heard += 1
        else:
            self.counters.ignored += 1

    def _transmit(self, sender: MqttHanTransport, frame: ApsFrame, pc: PageChannel) -> None:
        out = frame.replace(page=pc.page, channel=pc.channel)
        self.bus.publish(
            self.topics.han_frame(pc.page, pc.channel),
            out.payload,
            meta=frame_meta(out),
            qos=Qos.AT_MOST_ONCE,
        )
        self.counters.published += 1
        if len(self._transports) > 1:
            asyncio.get_running_loop().call_soon(self._offer, out, pc, sender)


class MqttHanTransport(HanTransport):
    """A radio whose air is the broker: the HAN transport of a device in another process.

    Sending publishes the frame on the channel it goes out on (the pinned one;
    every radio for a broadcast; for a unicast, the channel the destination
    was last heard on, else the first radio) and takes the PHY's airtime on the
    clock, as a simulated radio does. Receiving keeps frames heard on this
    radio's channels that are broadcasts or addressed to it. Short addresses
    belong to the medium owner: frames leave with the ones the device gave
    (usually none) and the gateway's medium fills them in.
    """

    def __init__(
        self, han: MqttHan, eui64: bytes, channels: Iterable[tuple[int, int]], clock: Clock
    ) -> None:
        super().__init__(eui64)
        self.han = han
        self.clock = clock
        radios: dict[Band, PageChannel] = {}
        for page, channel in channels:
            pc = validate(page, channel)
            band = band_of(pc.page)
            if band in radios:
                raise BridgeError(
                    f"{eui_text(eui64)}: {radios[band]} and {pc} are both on the {band.value} "
                    "band; a node has one radio per band"
                )
            radios[band] = pc
        if not radios:
            raise BridgeError(f"{eui_text(eui64)} needs at least one page/channel")
        self._radios = radios
        self._joined = False
        self._aps_counter = 0
        self._peers: dict[bytes, PageChannel] = {}
        self._tx_free_at: dict[Band, float] = {}

    async def send(self, frame: ApsFrame) -> TxResult:
        if frame.src_eui64 != self.eui64:
            raise FrameError(
                f"src_eui64 {eui_text(frame.src_eui64)} is not this radio ({eui_text(self.eui64)})"
            )
        if not self._joined:
            raise BridgeError(f"node {eui_text(self.eui64)} has not joined the HAN")
        if frame.aps_counter is None:
            frame = frame.replace(aps_counter=self._aps_counter)
            self._aps_counter = (self._aps_counter + 1) & 0xFF
        channels = self._tx_channels(frame)
        lengths = self.han.framing.psdu_lengths(frame)
        now = self.clock.monotonic()
        start = end = now
        airtime = 0.0
        for pc in channels:
            band = band_of(pc.page)
            air = sum(phy_profile(pc.page).airtime(n) for n in lengths)
            begin = max(now, self._tx_free_at.get(band, now))
            self._tx_free_at[band] = begin + air
            self.han._transmit(self, frame, pc)
            airtime += air
            end = max(end, begin + air)
        await self.clock.sleep_until(end)
        return TxResult(TxStatus.SENT, tuple(channels), airtime, start, end)

    def _tx_channels(self, frame: ApsFrame) -> list[PageChannel]:
        radios = list(self._radios.values())
        pinned = frame.page_channel
        if pinned is not None:
            if pinned not in radios:
                raise BridgeError(
                    f"node {eui_text(self.eui64)} has no radio on {pinned} "
                    f"(its radios: {', '.join(map(str, radios))})"
                )
            return [pinned]
        if frame.dst_eui64 is None:
            return radios
        last = self._peers.get(frame.dst_eui64)
        return [last] if last in radios else radios[:1]

    def _hear(self, frame: ApsFrame, pc: PageChannel) -> bool:
        """Keep a frame heard on ``pc`` if this radio would receive it."""
        if frame.src_eui64 == self.eui64 or pc not in self._radios.values():
            return False
        if frame.dst_eui64 is not None and frame.dst_eui64 != self.eui64:
            return False
        self._peers[frame.src_eui64] = pc
        moved_to = channel_change_of(frame)  # the network manager moves the HAN: follow it
        if moved_to is not None and band_of(moved_to.page) is band_of(pc.page):
            self._radios[band_of(pc.page)] = moved_to
        self._deliver(frame)
        return True

    async def join(self) -> None:
        self._joined = True

    async def leave(self) -> None:
        self._joined = False

    async def set_channel(self, page: int, channel: int) -> bool:
        """Retune locally (the gateway follows when it hears the radio on the new channel)."""
        pc = validate(page, channel)
        band = band_of(pc.page)
        if band not in self._radios:
            raise BridgeError(
                f"node {eui_text(self.eui64)} has no {band.value} radio "
                f"(its radios: {', '.join(map(str, self._radios.values()))})"
            )
        self._radios[band] = pc
        return True

    @property
    def channels(self) -> tuple[PageChannel, ...]:
        return tuple(self._radios.values())

    @property
    def joined(self) -> bool:
        return self._joined


class MediumGateway:
    """Puts radios of other processes on this process's simulated medium, and back.

    ``remote`` maps each remote EUI-64 to its radios' page/channels; each gets a
    stand-in node on the medium (joined: the remote device keeps its own
    joined state and does not transmit before it joined). Local transmissions
    reach the broker through a medium tap at the start of their airtime (no
    loss model on the way out: the remote radio has none); remote frames are
    transmitted by the stand-in, so local receivers see the medium's airtime,
    latency and loss, and sub-GHz duty cycle counts them.
    """

    def __init__(
        self,
        bus: MqttBus,
        topics: RunTopics,
        medium: SimulatedMedium,
        remote: Mapping[bytes, Iterable[tuple[int, int]]],
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.medium = medium
        self.counters = FrameCounters()
        self._remote = {eui: list(channels) for eui, channels in remote.items()}
        self._sub: Subscription | None = None
        self._untap: Callable[[], None] | None = None

    def attach(self) -> None:
        """Attach the stand-in nodes (before the rig attaches its own nodes, or after)."""
        for eui, channels in self._remote.items():
            self.medium.attach(eui, channels, joined=True)

    async def start(self) -> None:
        if self._sub is not None:
            return
        self._untap = self.medium.add_tap(self._tap)
        pattern = self.topics.pattern(TopicKind.HAN_FRAME)
        self._sub = await self.bus.subscribe(pattern, self._on_frame, qos=Qos.AT_MOST_ONCE)

    async def close(self) -> None:
        if self._untap is not None:
            self._untap()
            self._untap = None
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None

    def _tap(self, captured: CapturedFrame) -> None:
        frame = captured.frame
        if frame.src_eui64 in self._remote:
            return  # came from the broker: do not echo it back
        self.bus.publish(
            self.topics.han_frame(captured.page, captured.channel),
            frame.payload,
            meta=frame_meta(frame),
            qos=Qos.AT_MOST_ONCE,
        )
        self.counters.published += 1

    def _on_frame(self, msg: BusMessage) -> None:
        try:
            pc = _frame_topic_channel(self.topics, msg.topic)
            frame = frame_from_message(msg, pc)
        except (TopicError, PayloadError) as exc:
            self.counters.malformed += 1
            LOG.warning("HAN frame on %s refused: %s", msg.topic, exc)
            return
        if frame.src_eui64 not in self._remote:
            self.counters.ignored += 1  # another gateway's tap, or an unknown radio
            return
        try:
            if pc not in self.medium.node(frame.src_eui64).channels:
                self.medium.set_channel(frame.src_eui64, pc.page, pc.channel)
            self.medium.transmit(frame)
        except HanError as exc:
            self.counters.refused += 1
            LOG.warning("frame from %s not put on the medium: %s", eui_text(frame.src_eui64), exc)
            return
        self.counters.heard += 1


# ---------------------------------------------------------------------------
# Joining across processes
# ---------------------------------------------------------------------------


def _reason(name: object) -> RejectReason | None:
    if name is None:
        return None
    try:
        return RejectReason[str(name)]
    except KeyError:
        raise PayloadError(f"unknown join rejection reason {name!r}") from None


class TrustCenterService:
    """Serves the hub's trust center to device hosts (``han/tc/request``).

    ``leave_for(eui)`` gives the callable the trust center uses to ask a member
    to leave (see :meth:`TrustCenter.remove`), e.g. :meth:`RemoteNode.leave`.
    """

    def __init__(
        self,
        rpc: BusRpc,
        topics: RunTopics,
        trust_center: TrustCenter,
        *,
        leave_for: Callable[[bytes], Callable[[], Any] | None] | None = None,
    ) -> None:
        self.rpc = rpc
        self.topics = topics
        self.trust_center = trust_center
        self.leave_for = leave_for
        self._sub: Subscription | None = None

    async def start(self) -> None:
        if self._sub is None:
            self._sub = await self.rpc.serve(
                self.topics.tc_request(),
                {
                    OP_REQUEST_JOIN: self._request_join,
                    OP_VERIFY_KEY: self._verify_key,
                    OP_KEY_NOT_VERIFIED: self._key_not_verified,
                    OP_DEVICE_LEFT: self._device_left,
                },
            )

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None

    def _request_join(self, eui: str, role: int) -> dict[str, Any]:
        offer = self.trust_center.request_join(parse_eui(eui), JoinRole(role))
        return {
            "transport_key": None if offer.transport_key is None else offer.transport_key.hex(),
            "reason": None if offer.reason is None else offer.reason.name,
        }

    def _verify_key(self, eui: str, proof: str) -> dict[str, Any]:
        device = parse_eui(eui)
        leave = self.leave_for(device) if self.leave_for is not None else None
        return {"ok": self.trust_center.verify_key(device, bytes.fromhex(proof), leave)}

    def _key_not_verified(self, eui: str, detail: str) -> dict[str, Any]:
        self.trust_center.key_not_verified(parse_eui(eui), detail)
        return {}

    def _device_left(self, eui: str) -> dict[str, Any]:
        self.trust_center.device_left(parse_eui(eui))
        return {}


class RemoteTrustCenter:
    """The hub's trust center seen from a device host: each step is a request."""

    def __init__(
        self, rpc: BusRpc, topics: RunTopics, eui: bytes, *, timeout: float = TC_TIMEOUT_S
    ) -> None:
        self.rpc = rpc
        self.topics = topics
        self.eui = eui
        self.timeout = timeout

    async def _call(self, device: bytes, op: str, **args: Any) -> Mapping[str, Any]:
        return await self.rpc.call(
            self.topics.tc_request(),
            self.topics.tc_reply(device),
            op,
            {"eui": eui_text(device), **args},
            timeout=self.timeout,
        )

    async def request_join(self, eui: bytes, role: JoinRole) -> JoinOffer:
        answer = await self._call(eui, OP_REQUEST_JOIN, role=int(role))
        key = answer.get("transport_key")
        return JoinOffer(
            None if key is None else bytes.fromhex(str(key)), _reason(answer.get("reason"))
        )

    async def verify_key(self, eui: bytes, proof: bytes) -> bool:
        answer = await self._call(eui, OP_VERIFY_KEY, proof=proof.hex())
        return bool(answer.get("ok"))

    async def key_not_verified(self, eui: bytes, detail: str) -> None:
        await self._call(eui, OP_KEY_NOT_VERIFIED, detail=detail)

    def device_left(self, eui: bytes) -> None:
        """Fire and forget, as the Zigbee Leave it stands for (called from sync code)."""
        self.rpc.notify(self.topics.tc_request(), OP_DEVICE_LEFT, {"eui": eui_text(eui)})


class RemoteJoiningDevice(JoiningDevice):
    """:class:`JoiningDevice` whose trust center may be a :class:`RemoteTrustCenter`.

    The steps, their clock time and their failure handling are the base
    class's; only the calls to the trust center are awaited requests.
    """

    __slots__ = ()

    async def join(  # type: ignore[override]
        self,
        trust_center: TrustCenter | RemoteTrustCenter,
        leave: Callable[[], Any] | None = None,
    ) -> JoinResult:
        if isinstance(trust_center, TrustCenter):
            return await JoiningDevice.join(self, trust_center, leave)
        await self.clock.sleep(JOIN_STEP_S)  # association request/response
        offer = await trust_center.request_join(self.eui, self.role)
        if offer.transport_key is None:
            detail = offer.reason.value if offer.reason else ""
            return await self._fail(JoinResult(False, offer.reason, detail))
        await self.clock.sleep(JOIN_STEP_S)  # Transport-Key over the air
        try:
            network_key = open_transport_key(self.link_key, self.eui, offer.transport_key)
        except JoinError as exc:
            await trust_center.key_not_verified(self.eui, str(exc))
            return await self._fail(JoinResult(False, RejectReason.KEY_NOT_CONFIRMED, str(exc)))
        await self.clock.sleep(JOIN_STEP_S)  # Verify-Key / Confirm-Key
        if not await trust_center.verify_key(self.eui, verify_key_hash(self.link_key)):
            return await self._fail(
                JoinResult(False, RejectReason.KEY_NOT_CONFIRMED, "not confirmed")
            )
        self.network_key = network_key
        self.trust_center = trust_center  # type: ignore[assignment]
        await self.transport.join()
        return self._done(JoinResult(True, trust_center=trust_center.eui))


def join_result_meta(result: JoinResult) -> dict[str, Any]:
    """A JoinResult as JSON (the reply to a ``join`` node command)."""
    return {
        "accepted": result.accepted,
        "reason": None if result.reason is None else result.reason.name,
        "detail": result.detail,
        "trust_center": None if result.trust_center is None else eui_text(result.trust_center),
    }


def join_result_from_meta(meta: Mapping[str, Any]) -> JoinResult:
    tc = meta.get("trust_center")
    return JoinResult(
        bool(meta.get("accepted")),
        _reason(meta.get("reason")),
        str(meta.get("detail") or ""),
        None if tc is None else parse_eui(str(tc)),
    )


# ---------------------------------------------------------------------------
# The rig's stand-in for a node hosted elsewhere
# ---------------------------------------------------------------------------


class RemoteNode:
    """A device node hosted by another process, as the rig sees it.

    It has what the rig calls on its nodes: ``await join(trust_center)`` at
    commissioning, ``power_off()`` / ``power_on()`` from the mains wiring, and
    ``await leave()``. Each becomes a command to the device host; the power
    commands are sent without waiting (the rig calls them from synchronous
    code), in order, QoS 1.
    """

    def __init__(
        self,
        rpc: BusRpc,
        topics: RunTopics,
        eui: bytes,
        name: str,
        *,
        timeout: float = JOIN_TIMEOUT_S,
    ) -> None:
        self.rpc = rpc
        self.topics = topics
        self.eui = eui
        self.name = name
        self.timeout = timeout
        self.powered = True
        self.last_result: JoinResult | None = None

    async def command(self, op: str, **args: Any) -> Mapping[str, Any]:
        """Send a command to the device host and wait for its result."""
        return await self.rpc.call(
            self.topics.node_command(self.eui),
            self.topics.node_result(self.eui),
            op,
            args,
            timeout=self.timeout,
        )

    async def join(self, trust_center: Any = None) -> JoinResult:
        """Have the remote node join (through the trust center the host reaches by request)."""
        del trust_center  # the device host reaches the hub's trust center over the bus
        self.last_result = join_result_from_meta(await self.command(OP_JOIN))
        return self.last_result

    def _power(self, on: bool) -> None:
        self.powered = on
        self.rpc.notify(self.topics.node_command(self.eui), OP_POWER, {"on": on})

    def power_off(self) -> None:
        self._power(False)

    def power_on(self) -> None:
        self._power(True)

    async def leave(self) -> None:
        await self.command(OP_LEAVE)

    async def wake(self) -> Mapping[str, Any]:
        """Wake a sleepy remote device now (GET its queue, report to the mirror)."""
        return await self.command(OP_WAKE)

    async def stop(self) -> None:
        """Ask the device host to shut down."""
        await self.command(OP_STOP)


__all__ = [
    "BridgeError",
    "FrameCounters",
    "MediumGateway",
    "MqttHan",
    "MqttHanTransport",
    "RemoteJoiningDevice",
    "RemoteNode",
    "RemoteTrustCenter",
    "SharedRealTimeClock",
    "TrustCenterService",
    "fetch_clock",
    "frame_from_message",
    "frame_meta",
    "join_result_from_meta",
    "join_result_meta",
    "publish_clock",
]
