"""The glue that puts simulated GBCS devices on a HAN: hub, meters, GSME and HHT nodes.

* :class:`HubNode` is the Comms Hub: the CHF (trust center, tunnel server, OTA
  server, WAN gateway) and the GPF (mirror of the GSME). WAN -> HAN:
  :meth:`HubNode.deliver_from_wan` gives GBCS for the CHF/GPF to those local
  device objects, PUTs it through the tunnel of an always-on device, or queues
  it for the sleepy GSME. HAN -> WAN: every response and alert, and every
  local CHF/GPF reply, goes to ``on_wan_message(raw)``; device-to-device
  messages (a PPMID's command to the GSME) stay on the HAN.
* :class:`MeterNode` is an always-on device (ESME, PPMID, HCALCS): it joins,
  opens its tunnel, hands tunnelled GBCS to ``device.receive`` and PUTs the
  response and alerts back; it runs the device's deferred work when the clock
  reaches ``device.next_due()``, and pulls firmware with the OTA client.
* :class:`GsmeNode` is the battery gas meter: it sleeps, wakes on a period,
  GETs its queued messages until none remain, PUTs the replies, and pushes its
  readings into the GPF mirror (RequestMirror, then Report Attributes).
* :class:`HhtNode` is a hand-held terminal: it joins and delivers a *local*
  command (DUIS command variants 2/3: GBCS bytes the DCC returned for local
  delivery) through the CHF to a device, and collects the response and the
  alerts it raised.

Devices are reached by duck typing (``eui``, ``powered``, ``receive(raw)``
returning a Reply with ``response``/``alerts``/``refused``, ``run_due()``,
``next_due()``), so this module needs nothing from :mod:`gbhil.devices` but
the lazily imported firmware slots (han sits below devices). Time comes only
from the clock: every node's work runs as asyncio tasks on its loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final, Protocol

from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra, GeneralSigning, decode_frame
from gbhil.gbcs.zcl import EPOCH_2000, AttributeValue, ZclValue
from gbhil.han.channels import HanError, is_sub_ghz
from gbhil.han.joining import JoiningDevice, JoinResult, JoinRole, TrustCenter
from gbhil.han.ota import (
    DEFAULT_MAX_DATA_SIZE,
    OtaClient,
    OtaFile,
    OtaResult,
    OtaServer,
    device_firmware_store,
    device_running_version,
)
from gbhil.han.transport import ApsFrame, HanTransport, TxPriority
from gbhil.han.tunnel import (
    DEFAULT_MAX_TRANSFER_SIZE,
    TunnelClient,
    TunnelError,
    TunnelServer,
)
from gbhil.han.zcl_frames import (
    CLUSTER_METERING,
    DEFAULT_ENDPOINT,
    MIRROR_ENDPOINT_NONE,
    OTA_UPGRADE_TIME_WAIT,
    AttributeReport,
    ImageNotify,
    NodeEvent,
    PowerLost,
    RequestMirror,
    RequestMirrorResponse,
    ZclMessage,
    ZclPort,
    ZclTimeout,
    clock_wait,
)
from gbhil.simulator.clock import Clock, TimerHandle

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------

#: GSME wake-up period when the device does not say (GBCS leaves it to the model).
DEFAULT_WAKE_INTERVAL_S: Final = 1800.0
#: First endpoint the hub hands out for GSME mirrors (the hub itself uses 1).
FIRST_MIRROR_ENDPOINT: Final = 2
MAX_MIRROR_ENDPOINT: Final = 0xF0
#: Metering attributes a GSME pushes into its mirror by default: CurrentSummationDelivered.
DEFAULT_MIRROR_ATTRIBUTES: Final = (0x0000,)
#: How long (clock seconds) after a local command's response the hub still copies the
#: target's alerts to the HHT, and how long an HHT waits for the response at most.
LOCAL_ALERT_WINDOW_S: Final = 5.0
LOCAL_RESPONSE_TIMEOUT_S: Final = 3600.0
LOCAL_WINDOW_MARGIN_S: Final = 1.0
#: Default OTA identity of a simulated device (manufacturer code 0x121D as in gbcs-facts 6.1).
DEFAULT_MANUFACTURER_CODE: Final = 0x121D
DEFAULT_IMAGE_TYPE: Final = 0x0000


class NetworkError(HanError):
    """A node used wrongly (not joined, no tunnel, bad configuration)."""


class DeviceLike(Protocol):
    """What the nodes need from a simulated device (gbhil.devices.core.Device)."""

    eui: bytes
    powered: bool

    def receive(self, raw: bytes) -> Any: ...

    def run_due(self) -> list[bytes]: ...

    def next_due(self) -> datetime | None: ...


WanSink = Callable[[bytes], Awaitable[None] | None]


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result


def _header(raw: bytes) -> GeneralSigning | None:
    try:
        return decode_frame(raw).gs
    except GbcsError:
        return None


def _reply_messages(reply: Any) -> list[bytes]:
    """Response first, then alerts: what a device sends back for one message."""
    out: list[bytes] = []
    response = getattr(reply, "response", None)
    if response:
        out.append(response)
    out.extend(getattr(reply, "alerts", None) or [])
    return out


class _Tasks:
    """The asyncio tasks of one node: spawned on the clock's loop, cancelled on power loss."""

    def __init__(self, events: list[NodeEvent], clock: Clock) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._events = events
        self._clock = clock

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        kind = "interrupted" if isinstance(exc, PowerLost) else "task-failed"
        self._events.append(NodeEvent(self._clock.monotonic(), kind, f"{task.get_name()}: {exc!r}"))

    def cancel_all(self) -> None:
        for task in tuple(self._tasks):
            task.cancel()

    @property
    def running(self) -> int:
        return len(self._tasks)


class _DueRunner:
    """Runs a device's future-dated work when the clock reaches ``next_due()``."""

    def __init__(self, device: DeviceLike, clock: Clock, fire: Callable[[], None]) -> None:
        self.device = device
        self.clock = clock
        self._fire = fire
        self._timer: TimerHandle | None = None

    def arm(self) -> None:
        """(Re)schedule for the device's earliest pending work."""
        self.stop()
        when = self.device.next_due()
        if when is not None and self.device.powered:
            self._timer = self.clock.call_at(when, self._run)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run(self) -> None:
        self._timer = None
        self._fire()


# ---------------------------------------------------------------------------
# The Comms Hub
# ---------------------------------------------------------------------------


class DeliveryStatus(Enum):
    """What the hub did with a message from the WAN (or an HHT)."""

    LOCAL = "processed by the CHF/GPF"
    SENT = "PUT through the device's tunnel"
    QUEUED = "queued for the sleepy device's next GET"
    UNDELIVERABLE = "not delivered"


@dataclass(frozen=True, slots=True)
class Delivery:
    """Outcome of :meth:`HubNode.deliver_from_wan`."""

    status: DeliveryStatus
    target: bytes | None = None
    reason: str = ""


@dataclass(slots=True)
class Mirror:
    """The GPF's copy of a GSME's metering attributes."""

    gsme: bytes
    endpoint: int
    attributes: dict[int, ZclValue] = field(default_factory=dict)
    updated_at: datetime | None = None
    reports: int = 0


@dataclass(slots=True)
class _LocalDelivery:
    hht: bytes
    target: bytes
    counter: int
    closes: TimerHandle | None = None


class HubNode:
    """The Comms Hub on the HAN: CHF (trust center, tunnels, OTA, WAN) and GPF (mirror).

    ``chf`` needs ``eui`` and ``device_log`` (the CHF Device Log) besides the
    Device API; ``gpf`` may be None. If the GPF has ``update_mirror(values,
    at)``, every mirror report is passed to it (values: ``{(0x0702, attribute
    id): ZclValue}``, ``at``: when the report arrived). ``on_undeliverable(raw,
    reason)`` hears about WAN messages the hub could not deliver (GBCS 0x8F84
    is the CHF model's business).
    """

    def __init__(
        self,
        chf: Any,
        gpf: Any,
        transport: HanTransport,
        clock: Clock,
        *,
        on_wan_message: WanSink | None = None,
        on_device_log_changed: Callable[[Any], None] | None = None,
        on_undeliverable: Callable[[bytes, str], None] | None = None,
        network_key: bytes | None = None,
        endpoint: int = DEFAULT_ENDPOINT,
        max_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        ota_max_data_size: int = DEFAULT_MAX_DATA_SIZE,
        ota_minimum_block_period_ms: int = 0,
        local_alert_window: float = LOCAL_ALERT_WINDOW_S,
    ) -> None:
        if transport.eui64 != chf.eui:
            raise NetworkError("the hub's transport must be the CHF's radio (same EUI-64)")
        self.chf = chf
        self.gpf = gpf
        self.transport = transport
        self.clock = clock
        self.on_wan_message = on_wan_message
        self.on_undeliverable = on_undeliverable
        self.local_alert_window = local_alert_window
        self.events: list[NodeEvent] = []
        self.wan_messages: list[bytes] = []  # everything handed to the WAN, in order
        self.mirrors: dict[bytes, Mirror] = {}
        self.port = ZclPort(transport, clock, endpoint=endpoint)
        self.trust_center = TrustCenter(
            chf.eui,
            chf.device_log,
            clock,
            network_key=network_key,
            on_device_log_changed=on_device_log_changed,
        )
        self.tunnels = TunnelServer(
            self.port, max_incoming_transfer_size=max_transfer_size, on_message=self._from_han
        )
        self.ota = OtaServer(
            self.port,
            max_data_size=ota_max_data_size,
            minimum_block_period_ms=ota_minimum_block_period_ms,
        )
        self.port.handlers[CLUSTER_METERING] = self._metering
        self._tasks = _Tasks(self.events, clock)
        self._due = [
            _DueRunner(d, clock, lambda d=d: self._fire_due(d)) for d in (chf, gpf) if d is not None
        ]
        self._local: dict[tuple[bytes, int], _LocalDelivery] = {}
        self._started = False

    @property
    def eui(self) -> bytes:
        return self.transport.eui64

    def _event(self, kind: str, detail: str = "", peer: bytes | None = None, **data: Any) -> None:
        self.events.append(NodeEvent(self.clock.monotonic(), kind, detail, peer, dict(data)))

    def start(self) -> None:
        """Begin serving the HAN (call from a task on the clock's loop); idempotent."""
        self.port.start()
        if not self._started:
            self._started = True
            for runner in self._due:
                runner.arm()

    # -- WAN side ------------------------------------------------------------------
    async def to_wan(self, raw: bytes) -> None:
        """Hand one GBCS message to the WAN (e.g. a CS14 alert the CHF model built)."""
        self.wan_messages.append(raw)
        self._event("to-wan", f"{len(raw)} octets")
        if self.on_wan_message is not None:
            await _maybe_await(self.on_wan_message(raw))

    async def deliver_from_wan(self, raw: bytes) -> Delivery:
        """Route a GBCS message from the WAN to its Business Target."""
        self.start()
        return await self._dispatch(raw)

    async def _dispatch(self, raw: bytes) -> Delivery:
        gs = _header(raw)
        if gs is None:
            return self._undeliverable(raw, None, "not a decodable GBCS message")
        target = gs.business_target
        for device in (self.chf, self.gpf):
            if device is not None and target == device.eui:
                reply = device.receive(raw)
                if getattr(reply, "refused", None) is not None:
                    self._event("refused", f"{reply.refused}", target)
                if device is self.chf:
                    # Act on a new channel plan before answering: the response then
                    # means "applied" whatever the HAN transport's latency (an NCP
                    # behind a serial link moves the HAN over several round trips).
                    await self._follow_channel_plan()
                for message in _reply_messages(reply):
                    await self._route(message, from_eui=target)
                self._rearm(device)
                return Delivery(DeliveryStatus.LOCAL, target)
        role = self.trust_center.role_of(target)
        if role is None:
            return self._undeliverable(raw, target, "target is not on the HAN")
        if role is JoinRole.SLEEPY:
            depth = self.tunnels.enqueue(target, raw)
            return Delivery(DeliveryStatus.QUEUED, target, f"{depth} queued")
        try:
            sent = await self.tunnels.send(target, raw)
        except (TunnelError, PowerLost) as exc:
            return self._undeliverable(raw, target, str(exc))
        if not sent:
            return self._undeliverable(raw, target, "device has no open tunnel")
        return Delivery(DeliveryStatus.SENT, target)

    async def _follow_channel_plan(self) -> None:
        """A new sub-GHz configuration (DBCH04) may rule out the current channel: move
        the HAN (the CHF is its network manager) to where the CHF model says."""
        take = getattr(self.chf, "take_subghz_retune", None)
        if take is None:
            return
        current = next((pc for pc in self.transport.channels if is_sub_ghz(pc.page)), None)
        target = take(current)
        if target is None:
            return
        move = getattr(self.transport, "move_network", None)
        try:
            if move is not None:
                moved = await move(target.page, target.channel)
            else:
                moved = await self.transport.set_channel(target.page, target.channel)
        except HanError as exc:  # e.g. a stick with no sub-GHz PHY: the CHF still answers
            self._event("channel-change", f"{current} -> {target} refused: {exc}", moved=False)
            return
        self._event("channel-change", f"{current} -> {target}", moved=moved)

    def _undeliverable(self, raw: bytes, target: bytes | None, reason: str) -> Delivery:
        self._event("undeliverable", reason, target)
        if self.on_undeliverable is not None:
            self.on_undeliverable(raw, reason)
        return Delivery(DeliveryStatus.UNDELIVERABLE, target, reason)

    def _on_han(self, eui: bytes) -> bool:
        return eui in (self.chf.eui, getattr(self.gpf, "eui", None)) or (
            self.trust_center.role_of(eui) is not None
        )

    async def _route(self, raw: bytes, *, from_eui: bytes) -> None:
        """Where a message a device (or the CHF/GPF) sent goes: HHT, HAN peer, or WAN."""
        gs = _header(raw)
        if gs is None:
            self._event("undecodable", f"{len(raw)} octets from the HAN", from_eui)
            await self.to_wan(raw)
            return
        if gs.cra is Cra.RESPONSE:
            local = self._local.get((from_eui, gs.originator_counter))
            if local is not None:
                await self._to_hht(local, raw)
                if local.closes is None:
                    local.closes = self.clock.call_later(
                        self.local_alert_window, self._close_local, local
                    )
                return
        elif gs.cra is Cra.ALERT:
            for local in tuple(self._local.values()):
                if local.target == from_eui:
                    await self._to_hht(local, raw)
        if self._on_han(gs.business_target) and gs.business_target != from_eui:
            await self._dispatch(raw)
        else:
            await self.to_wan(raw)

    # -- HAN side --------------------------------------------------------------------
    async def _from_han(self, eui: bytes, raw: bytes) -> None:
        """A complete GBCS message PUT by a device (tunnel server callback)."""
        if self.trust_center.role_of(eui) is JoinRole.HHT:
            gs = _header(raw)
            if gs is None or gs.cra is not Cra.COMMAND:
                self._event("hht-refused", "local delivery needs a GBCS command", eui)
                return
            key = (gs.business_target, gs.originator_counter)
            self._local[key] = _LocalDelivery(eui, gs.business_target, gs.originator_counter)
            delivery = await self._dispatch(raw)
            self._event("local-delivery", delivery.status.name, gs.business_target)
            if delivery.status is DeliveryStatus.UNDELIVERABLE:
                self._local.pop(key, None)
            return
        await self._route(raw, from_eui=eui)

    async def _to_hht(self, local: _LocalDelivery, raw: bytes) -> None:
        try:
            await self.tunnels.send(local.hht, raw)
        except (TunnelError, PowerLost) as exc:
            self._event("hht-undeliverable", str(exc), local.hht)

    def _close_local(self, local: _LocalDelivery) -> None:
        self._local.pop((local.target, local.counter), None)

    # -- mirroring ----------------------------------------------------------------------
    async def _metering(self, frame: ApsFrame, msg: ZclMessage) -> None:
        cmd = msg.command
        eui = frame.src_eui64
        if isinstance(cmd, RequestMirror):
            endpoint = self._mirror_for(eui)
            await self.port.send(
                eui,
                RequestMirrorResponse(endpoint),
                dst_endpoint=frame.src_endpoint,
                sequence=msg.sequence,
            )
        elif isinstance(cmd, AttributeReport):
            mirror = self.mirrors.get(eui)
            if mirror is None or mirror.endpoint != frame.dst_endpoint:
                self._event("mirror-refused", "report for no mirror of this device", eui)
                return
            values = {r.attribute_id: r.value for r in cmd.records}
            mirror.attributes.update(values)
            mirror.updated_at = self.clock.now()
            mirror.reports += 1
            self._event("mirror-updated", f"{len(values)} attribute(s)", eui)
            update = getattr(self.gpf, "update_mirror", None)
            if callable(update):
                keyed = {(CLUSTER_METERING, a): v for a, v in values.items()}
                await _maybe_await(update(keyed, mirror.updated_at))
        else:
            self._event("ignored", type(cmd).__name__, eui)

    def _mirror_for(self, eui: bytes) -> int:
        """The mirror endpoint of a sleepy member (0xFFFF: no GPF, or not a GSME)."""
        existing = self.mirrors.get(eui)
        if existing is not None:
            return existing.endpoint
        if self.gpf is None or self.trust_center.role_of(eui) is not JoinRole.SLEEPY:
            self._event("mirror-refused", "no GPF or not a sleepy member", eui)
            return MIRROR_ENDPOINT_NONE
        used = {m.endpoint for m in self.mirrors.values()} | {self.port.endpoint}
        free = [e for e in range(FIRST_MIRROR_ENDPOINT, MAX_MIRROR_ENDPOINT + 1) if e not in used]
        if not free:
            return MIRROR_ENDPOINT_NONE
        self.mirrors[eui] = Mirror(eui, free[0])
        self.port.endpoints.add(free[0])
        self._event("mirror-created", f"endpoint {free[0]}", eui)
        return free[0]

    # -- CHF/GPF deferred work and power ---------------------------------------------------
    def _rearm(self, device: Any) -> None:
        for runner in self._due:
            if runner.device is device:
                runner.arm()

    def _fire_due(self, device: Any) -> None:
        async def run() -> None:
            for alert in device.run_due():
                await self._route(alert, from_eui=device.eui)
            self._rearm(device)

        self._tasks.spawn(run(), f"due {device.eui.hex()}")

    def power_off(self) -> None:
        """Comms Hub loses power: radio silent, CHF/GPF unpowered, joining refused.

        The tunnel table, queues and Device Log survive (non-volatile); deferred
        work waits until power returns.
        """
        self.port.set_powered(False)
        self.trust_center.powered = False
        for device in (self.chf, self.gpf):
            if device is not None:
                device.powered = False
        for runner in self._due:
            runner.stop()
        self._tasks.cancel_all()
        self._event("power-off")

    def power_on(self) -> None:
        self.port.set_powered(True)
        self.trust_center.powered = True
        for device in (self.chf, self.gpf):
            if device is not None:
                device.powered = True
        for runner in self._due:
            runner.arm()
        self._event("power-on")


# ---------------------------------------------------------------------------
# Device nodes
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OtaConfig:
    """A device's OTA identity: what it tells the CHF in Query Next Image."""

    manufacturer_code: int = DEFAULT_MANUFACTURER_CODE
    image_type: int = DEFAULT_IMAGE_TYPE
    hardware_version: int | None = None
    max_data_size: int = DEFAULT_MAX_DATA_SIZE


class _DeviceNode:
    """What every HAN device node shares: port, joining, tunnel, OTA, tasks and power."""

    ROLE: JoinRole = JoinRole.ALWAYS_ON

    def __init__(
        self,
        device: Any,
        transport: HanTransport,
        clock: Clock,
        *,
        install_code: bytes,
        endpoint: int = DEFAULT_ENDPOINT,
        hub_endpoint: int = DEFAULT_ENDPOINT,
        max_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        ota: OtaConfig | None = None,
        priority: TxPriority = TxPriority.ROUTINE,
    ) -> None:
        eui = device.eui if device is not None else transport.eui64
        if transport.eui64 != eui:
            raise NetworkError("a node's transport must carry the device's EUI-64")
        self.device = device
        self.transport = transport
        self.clock = clock
        self.hub_endpoint = hub_endpoint
        self.max_transfer_size = max_transfer_size
        self.ota_config = ota if ota is not None else OtaConfig()
        self.events: list[NodeEvent] = []
        self.port = ZclPort(transport, clock, endpoint=endpoint, priority=priority)
        self.joining = JoiningDevice(eui, install_code, transport, clock, self.ROLE)
        self.tunnel: TunnelClient | None = None
        self.ota: OtaClient | None = None
        self.powered = True
        self.last_gasp: list[bytes] = []  # alerts built as power failed (not sent)
        self._pending_alerts: list[bytes] = []  # built while off/unconnected, sent later
        self._tasks = _Tasks(self.events, clock)

    @property
    def eui(self) -> bytes:
        return self.transport.eui64

    @property
    def joined(self) -> bool:
        return self.joining.network_key is not None

    def _event(self, kind: str, detail: str = "", **data: Any) -> None:
        self.events.append(NodeEvent(self.clock.monotonic(), kind, detail, None, dict(data)))

    # -- joining ---------------------------------------------------------------------
    async def join(self, trust_center: TrustCenter) -> JoinResult:
        """Join through ``trust_center`` (the hub's), then open the tunnel to the CHF."""
        self.port.start()
        result = await self.joining.join(trust_center, leave=self.leave)
        self._event("join", "accepted" if result.accepted else f"rejected: {result.detail}")
        if not result.accepted:
            return result
        hub = trust_center.eui
        if self.tunnel is None or self.tunnel.server_eui != hub:
            self.tunnel = TunnelClient(
                self.port,
                hub,
                server_endpoint=self.hub_endpoint,
                max_incoming_transfer_size=self.max_transfer_size,
                on_message=self._on_gbcs,
            )
            self.ota = self._make_ota(hub)
        await self._after_join()
        return result

    def _make_ota(self, hub: bytes) -> OtaClient | None:
        if self.device is None:
            return None
        cfg = self.ota_config
        return OtaClient(
            self.port,
            hub,
            manufacturer_code=cfg.manufacturer_code,
            image_type=cfg.image_type,
            current_version=device_running_version(self.device),
            stage=device_firmware_store(self.device),
            server_endpoint=self.hub_endpoint,
            hardware_version=cfg.hardware_version,
            max_data_size=cfg.max_data_size,
            on_image=self._on_image,
            on_notify=self._on_notify,
        )

    async def _after_join(self) -> None:
        assert self.tunnel is not None
        await self.tunnel.open()

    async def leave(self) -> None:
        """Leave the HAN (Zigbee Leave): close the tunnel, tell the trust center, go silent."""
        if self.tunnel is not None and self.tunnel.is_open and self.powered:
            try:
                await self.tunnel.close()
            except (HanError, ValueError) as exc:
                self._event("leave", f"tunnel close failed: {exc}")
        await self.joining.leave()
        self._event("left")

    def _need_tunnel(self) -> TunnelClient:
        if self.tunnel is None:
            raise NetworkError(f"node {self.eui.hex().upper()} has not joined a hub")
        return self.tunnel

    # -- GBCS ---------------------------------------------------------------------------
    async def _send_all(self, messages: Sequence[bytes]) -> None:
        """PUT messages to the CHF; what cannot go now waits for the next chance."""
        tunnel = self._need_tunnel()
        queue = [*self._pending_alerts, *messages]
        self._pending_alerts = []
        for index, raw in enumerate(queue):
            try:
                await tunnel.put(raw)
            except (ZclTimeout, TunnelError, PowerLost) as exc:
                self._pending_alerts.extend(queue[index:])
                self._event("put-failed", str(exc), waiting=len(self._pending_alerts))
                return

    async def _on_gbcs(self, raw: bytes) -> None:
        reply = self.device.receive(raw)
        refused = getattr(reply, "refused", None)
        self._event("received", f"refused: {refused}" if refused is not None else "processed")
        await self._send_all(_reply_messages(reply))
        self._after_receive()

    def _after_receive(self) -> None:
        """Hook: an always-on node re-arms its deferred-work timer."""

    def deferred_work_changed(self) -> None:
        """Call after scheduling work on the device directly (not through a command)."""
        due = getattr(self, "_due", None)
        if isinstance(due, _DueRunner):
            due.arm()

    # -- firmware --------------------------------------------------------------------
    def _on_notify(self, notify: ImageNotify) -> None:
        self._tasks.spawn(self.update_firmware(), "ota after Image Notify")

    async def update_firmware(self) -> OtaResult:
        """Ask the CHF for a newer image and download it (resuming a kept transfer)."""
        if self.ota is None:
            raise NetworkError("OTA needs a device and a joined hub")
        return await self.ota.check()

    async def _on_image(self, file: OtaFile, image_hash: bytes, upgrade_time: int) -> None:
        self._event("image-staged", image_hash.hex(), version=file.header.file_version)
        activate = getattr(self.device, "activate_staged_firmware", None)
        if upgrade_time == OTA_UPGRADE_TIME_WAIT or not callable(activate):
            return  # GBCS: the image waits for CS06 activation
        at = EPOCH_2000 + timedelta(seconds=upgrade_time)

        async def later() -> None:
            await self.clock.wait_until(at)
            await self._send_all(activate(image_hash, self.clock.now()))

        self._tasks.spawn(later(), "activate staged image")

    # -- power --------------------------------------------------------------------------
    def power_off(self) -> None:
        """Power cut: radio silent, device unpowered, RAM state (tunnel, tasks) lost.

        A device with its own power model (``power_off()``/``lose_power()``)
        runs it; the alerts it builds as it dies are kept in :attr:`last_gasp`.
        """
        if not self.powered:
            return
        hook = getattr(self.device, "power_off", None) or getattr(self.device, "lose_power", None)
        if callable(hook):
            self.last_gasp = list(hook() or [])
        if self.device is not None:
            self.device.powered = False
        self.powered = False
        self.port.set_powered(False)
        self._tasks.cancel_all()
        if self.tunnel is not None:
            self.tunnel.forget()
        self._power_off_extra()
        self._event("power-off")

    def _power_off_extra(self) -> None:
        """Hook for subclasses."""

    def power_on(self) -> None:
        """Power back: reopen the tunnel, send restoration alerts, resume a kept OTA transfer.

        Call it from code running on the clock's event loop (it starts tasks there).
        """
        if self.powered:
            return
        self.powered = True
        hook = getattr(self.device, "power_on", None) or getattr(self.device, "restore_power", None)
        alerts: list[bytes] = []
        if callable(hook):
            alerts = list(hook() or [])
        if self.device is not None:
            self.device.powered = True
        self._pending_alerts.extend(alerts)
        self.port.set_powered(True)
        self._event("power-on")
        if self.joined:
            self._tasks.spawn(self._resume(), "resume after power-on")

    async def _resume(self) -> None:
        self.port.start()  # the dispatcher may have died with the loop it ran on
        tunnel = self._need_tunnel()
        await tunnel.ensure_open()
        if self._pending_alerts:
            await self._send_all(())
        if self.ota is not None and self.ota.download is not None:
            await self.ota.check()


class MeterNode(_DeviceNode):
    """An always-on HAN device (ESME, PPMID, HCALCS) with its tunnel to the CHF."""

    ROLE = JoinRole.ALWAYS_ON

    def __init__(self, device: DeviceLike, transport: HanTransport, clock: Clock, **kw: Any):
        super().__init__(device, transport, clock, **kw)
        self._due = _DueRunner(device, clock, self._fire_due)

    async def _after_join(self) -> None:
        await super()._after_join()
        self._due.arm()

    def _after_receive(self) -> None:
        self._due.arm()

    def _fire_due(self) -> None:
        async def run() -> None:
            await self._send_all(self.device.run_due())
            self._due.arm()

        self._tasks.spawn(run(), "deferred work")

    def _power_off_extra(self) -> None:
        self._due.stop()

    async def _resume(self) -> None:
        self._due.arm()
        await super()._resume()


@dataclass(frozen=True, slots=True)
class WakeReport:
    """What one GSME wake-up did."""

    at: datetime
    messages: int  # GBCS messages fetched and processed
    sent: int  # responses and alerts PUT
    mirrored: bool


MirrorSource = Callable[[], Iterable[AttributeValue]]


class GsmeNode(_DeviceNode):
    """The battery gas meter: sleeps, wakes, GETs its queue, feeds the GPF mirror.

    ``wake_interval`` defaults to the device's own ``wake_interval`` (a
    timedelta) or 30 minutes. ``mirror_data()`` returns the attribute records
    to report; by default the node reads :data:`DEFAULT_MIRROR_ATTRIBUTES` with
    the device's ``read_attribute(device.data, cluster, attribute)`` if it has
    one. A device with ``wake()``/``sleep()`` gets them called around each wake
    (``wake()`` returns alerts of work that fell due, like ``run_due``).
    """

    ROLE = JoinRole.SLEEPY

    def __init__(
        self,
        device: DeviceLike,
        transport: HanTransport,
        clock: Clock,
        *,
        wake_interval: float | None = None,
        mirror_data: MirrorSource | None = None,
        check_firmware: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(device, transport, clock, **kw)
        if wake_interval is None:
            own = getattr(device, "wake_interval", None)
            wake_interval = (
                own.total_seconds() if isinstance(own, timedelta) else DEFAULT_WAKE_INTERVAL_S
            )
        if wake_interval <= 0:
            raise NetworkError(f"wake interval must be positive, got {wake_interval}")
        self.wake_interval = float(wake_interval)
        self.mirror_data = mirror_data
        self.check_firmware = check_firmware
        self.mirror_endpoint: int | None = None
        self.wakes: list[WakeReport] = []
        self._lock = asyncio.Lock()
        self._due = _DueRunner(device, clock, self._fire_due)

    async def _after_join(self) -> None:
        try:
            await super()._after_join()
            await self._request_mirror()
        finally:
            self._sleep()
        self._start_cycle()

    def _start_cycle(self) -> None:
        self._tasks.spawn(self._cycle(), "wake cycle")
        self._due.arm()

    async def _cycle(self) -> None:
        # A fixed grid from the cycle's start: the time a wake takes does not shift the next.
        next_wake = self.clock.monotonic() + self.wake_interval
        while True:
            await self.clock.sleep_until(next_wake)
            next_wake += self.wake_interval
            try:
                await self.wake()
            except PowerLost:
                raise
            except (HanError, ValueError) as exc:  # a missed wake must not end the cycle
                self._event("wake-failed", f"{type(exc).__name__}: {exc}")

    def _fire_due(self) -> None:
        self._tasks.spawn(self.wake(), "wake for deferred work")

    async def _request_mirror(self) -> None:
        if self.mirror_endpoint is not None and self.mirror_endpoint != MIRROR_ENDPOINT_NONE:
            return
        tunnel = self._need_tunnel()
        try:
            _frame, msg = await self.port.request(
                tunnel.server_eui,
                RequestMirror(),
                RequestMirrorResponse,
                dst_endpoint=self.hub_endpoint,
                timeout=tunnel.timeout,
                retries=tunnel.retries,
            )
        except ZclTimeout as exc:
            self._event("mirror", f"no answer: {exc}")
            return
        assert isinstance(msg.command, RequestMirrorResponse)
        self.mirror_endpoint = msg.command.endpoint_id
        self._event("mirror", f"endpoint {self.mirror_endpoint}")

    def _mirror_records(self) -> list[AttributeValue]:
        if self.mirror_data is not None:
            return list(self.mirror_data())
        read = getattr(self.device, "read_attribute", None)
        state = getattr(self.device, "data", None)
        if not callable(read) or state is None:
            return []
        records = []
        for attr in DEFAULT_MIRROR_ATTRIBUTES:
            value = read(state, CLUSTER_METERING, attr)
            if isinstance(value, ZclValue):
                records.append(AttributeValue(attr, value))
        return records

    def _sleep(self) -> None:
        self.port.set_listening(False)
        sleep = getattr(self.device, "sleep", None)
        if callable(sleep):
            sleep()

    async def wake(self) -> WakeReport:
        """One wake-up: GET until the queue is empty, reply, report to the mirror, sleep."""
        async with self._lock:
            now = self.clock.now()
            self.port.set_listening(True)
            messages = sent = 0
            mirrored = False
            try:
                wake = getattr(self.device, "wake", None)
                due = list(wake() if callable(wake) else self.device.run_due())
                tunnel = self._need_tunnel()
                await tunnel.ensure_open()
                if due:
                    await self._send_all(due)
                    sent += len(due)
                while True:
                    fetched = await tunnel.fetch()
                    if fetched.message is not None:
                        messages += 1
                        reply = self.device.receive(fetched.message)
                        replies = _reply_messages(reply)
                        await self._send_all(replies)
                        sent += len(replies)
                    if fetched.remaining == 0:
                        break
                await self._request_mirror()
                records = self._mirror_records()
                if records and self.mirror_endpoint not in (None, MIRROR_ENDPOINT_NONE):
                    assert self.mirror_endpoint is not None
                    await self.port.send(
                        tunnel.server_eui,
                        AttributeReport(CLUSTER_METERING, tuple(records)),
                        dst_endpoint=self.mirror_endpoint,
                    )
                    mirrored = True
                if self.check_firmware and self.ota is not None:
                    await self.ota.check()
            finally:
                self._sleep()
                self._due.arm()
            report = WakeReport(now, messages, sent, mirrored)
            self.wakes.append(report)
            self._event("wake", f"{messages} message(s), {sent} sent", mirrored=mirrored)
            return report

    def _power_off_extra(self) -> None:
        self._due.stop()

    async def _resume(self) -> None:
        self.port.start()
        self._start_cycle()
        await self.wake()


@dataclass(frozen=True, slots=True)
class LocalResult:
    """What a local (HHT) delivery brought back."""

    response: bytes | None
    alerts: tuple[bytes, ...] = ()
    timed_out: bool = False


class HhtNode(_DeviceNode):
    """A hand-held terminal: delivers a local command through the CHF, collects the answer.

    DUIS command variants 2/3 (and 6/7) return fully formed GBCS for local
    delivery; the device processes it like a WAN message. The hub routes the
    target's response (matched by originator counter) and the alerts the target
    raises while the delivery is open back to this node instead of the WAN.
    """

    ROLE = JoinRole.HHT

    def __init__(
        self, transport: HanTransport, clock: Clock, *, install_code: bytes, **kw: Any
    ) -> None:
        super().__init__(None, transport, clock, install_code=install_code, **kw)
        self._collect: list[tuple[bytes, int, asyncio.Future[bytes], list[bytes]]] = []

    async def _on_gbcs(self, raw: bytes) -> None:
        gs = _header(raw)
        if gs is None:
            self._event("undecodable", f"{len(raw)} octets")
            return
        for target, counter, future, alerts in self._collect:
            if gs.business_originator != target:
                continue
            if gs.cra is Cra.RESPONSE and gs.originator_counter == counter:
                if not future.done():
                    future.set_result(raw)
                return
            if gs.cra is Cra.ALERT:
                alerts.append(raw)
                return
        self._event("unexpected", f"{gs.cra.name} from {gs.business_originator.hex()}")

    async def deliver(
        self,
        raw: bytes,
        *,
        timeout: float = LOCAL_RESPONSE_TIMEOUT_S,
        alert_window: float = LOCAL_ALERT_WINDOW_S,
    ) -> LocalResult:
        """Deliver a local command; returns the response and the alerts it raised."""
        gs = _header(raw)
        if gs is None or gs.cra is not Cra.COMMAND:
            raise NetworkError("local delivery needs a GBCS command")
        tunnel = self._need_tunnel()
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        alerts: list[bytes] = []
        entry = (gs.business_target, gs.originator_counter, future, alerts)
        self._collect.append(entry)
        try:
            await tunnel.put(raw)
            try:
                response = await clock_wait(self.clock, future, timeout, "local command")
            except ZclTimeout:
                return LocalResult(None, tuple(alerts), timed_out=True)
            # the hub copies alerts for alert_window after forwarding the response; the
            # margin covers the last copy's time on air
            await self.clock.sleep(alert_window + LOCAL_WINDOW_MARGIN_S)
            return LocalResult(response, tuple(alerts))
        finally:
            self._collect.remove(entry)


__all__ = [
    "DEFAULT_WAKE_INTERVAL_S",
    "LOCAL_ALERT_WINDOW_S",
    "Delivery",
    "DeliveryStatus",
    "DeviceLike",
    "GsmeNode",
    "HhtNode",
    "HubNode",
    "LocalResult",
    "MeterNode",
    "Mirror",
    "NetworkError",
    "OtaConfig",
    "WakeReport",
]
