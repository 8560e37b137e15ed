"""The WAN over MQTT: the hub's GBCS traffic and power events to a DCC in another process.

Process A (the hub) runs a :class:`HubWanBridge`: every GBCS message the hub
hands to the WAN is published, responses on ``wan/up`` and alerts on
``alerts`` (QoS 1, so a DCC with a persistent session gets every alert even
across its own or the broker's restarts); the hub's power events (the CSP's
last gasp, from which the DCC raises AD1) go to ``power``; GBCS arriving on
``wan/down`` is routed by the hub to its Business Target. The DCC emulator
(or a test) runs a :class:`DccWanClient`, the mirror image.

The payload is the GBCS message itself (envelope data); a few header fields
are repeated as metadata (CRA flag, message code, originator, target,
originator counter) so an observer can filter without a GBCS decoder.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from gbhil.bus.mqtt import BusMessage, BusTimeoutError, MqttBus, PublishTicket, Subscription
from gbhil.bus.topics import PayloadError, RunTopics, eui_text, parse_eui
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra, decode_frame

LOG = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------

#: WAN message metadata keys.
W_CRA: Final = "cra"
W_MESSAGE_CODE: Final = "message_code"
W_ORIGINATOR: Final = "originator"
W_TARGET: Final = "target"
W_COUNTER: Final = "counter"
#: Power event metadata keys.
P_KIND: Final = "kind"
P_CHF: Final = "chf"
P_AT: Final = "at"
#: How long (wall seconds) DccWanClient waits by default for something to arrive.
WAIT_TIMEOUT_S: Final = 10.0


class PowerEventLike(Protocol):
    """What the bridge reads of a hub power event (gbhil.rigs.simulated.HubPowerEvent)."""

    @property
    def kind(self) -> Any: ...  # an Enum whose value is "outage" / "restored"

    @property
    def chf(self) -> bytes: ...

    @property
    def at(self) -> datetime: ...


class RigLike(Protocol):
    """What :meth:`HubWanBridge.attach` needs of a rig (gbhil.rigs.simulated.SimulatedRig)."""

    on_wan: Any
    on_power: Any

    async def send(self, raw: bytes) -> Any: ...


def wan_meta(raw: bytes) -> dict[str, Any]:
    """Header fields of a GBCS message as metadata (empty when it does not decode)."""
    try:
        gs = decode_frame(raw).gs
    except GbcsError:
        return {W_CRA: None}
    if gs is None:
        return {W_CRA: None}
    return {
        W_CRA: gs.cra.name,
        W_MESSAGE_CODE: gs.message_code,
        W_ORIGINATOR: eui_text(gs.business_originator),
        W_TARGET: eui_text(gs.business_target),
        W_COUNTER: gs.originator_counter,
    }


@dataclass(frozen=True, slots=True)
class WanMessage:
    """One GBCS message as the DCC side received it."""

    raw: bytes
    topic: str
    message_id: str
    cra: Cra | None
    message_code: int | None
    originator: bytes | None
    target: bytes | None
    counter: int | None

    @classmethod
    def from_bus(cls, msg: BusMessage) -> WanMessage:
        if msg.data is None:
            raise PayloadError("WAN envelope has no data (the GBCS message)")
        meta = msg.meta
        cra_name = meta.get(W_CRA)
        try:
            cra = None if cra_name is None else Cra[str(cra_name)]
        except KeyError:
            raise PayloadError(f"WAN field {W_CRA!r}: unknown CRA flag {cra_name!r}") from None
        orig, target = meta.get(W_ORIGINATOR), meta.get(W_TARGET)
        return cls(
            msg.data,
            msg.topic,
            msg.message_id,
            cra,
            meta.get(W_MESSAGE_CODE),
            None if orig is None else parse_eui(str(orig)),
            None if target is None else parse_eui(str(target)),
            meta.get(W_COUNTER),
        )


@dataclass(frozen=True, slots=True)
class PowerNotice:
    """A hub power event as the DCC side received it."""

    kind: str  # "outage" / "restored"
    chf: bytes
    at: datetime
    message_id: str

    @classmethod
    def from_bus(cls, msg: BusMessage) -> PowerNotice:
        meta = msg.meta
        try:
            return cls(
                str(meta[P_KIND]),
                parse_eui(str(meta[P_CHF])),
                datetime.fromisoformat(str(meta[P_AT])),
                msg.message_id,
            )
        except (KeyError, ValueError) as exc:
            raise PayloadError(f"power event needs kind/chf/at: {exc!r}") from None


class HubWanBridge:
    """The hub's end of the WAN: publishes what the hub sends, delivers what the DCC sends."""

    def __init__(
        self,
        bus: MqttBus,
        topics: RunTopics,
        *,
        deliver: Callable[[bytes], Awaitable[Any]] | None = None,
    ) -> None:
        self.bus = bus
        self.topics = topics
        self.deliver = deliver
        self.deliveries: list[Any] = []  # what the hub did with each wan/down message
        self._delivered = asyncio.Event()
        self._sub: Subscription | None = None

    def attach(self, rig: RigLike) -> None:
        """Wire a rig: its WAN and power callbacks publish, wan/down goes to ``rig.send``."""
        rig.on_wan = self.publish_message
        rig.on_power = self.publish_power
        if self.deliver is None:
            self.deliver = rig.send

    async def start(self) -> None:
        if self._sub is None:
            self._sub = await self.bus.subscribe(self.topics.wan_down(), self._on_down)

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.cancel()
            self._sub = None

    def publish_message(self, raw: bytes) -> PublishTicket:
        """A GBCS message the hub sends to the WAN: alerts to ``alerts``, the rest to wan/up."""
        meta = wan_meta(raw)
        alert = meta.get(W_CRA) == Cra.ALERT.name
        topic = self.topics.alerts() if alert else self.topics.wan_up()
        return self.bus.publish(topic, raw, meta=meta)

    def publish_power(self, event: PowerEventLike) -> PublishTicket:
        kind = getattr(event.kind, "value", event.kind)
        meta = {P_KIND: str(kind), P_CHF: eui_text(event.chf), P_AT: event.at.isoformat()}
        return self.bus.publish(self.topics.power(), meta=meta)

    async def _on_down(self, msg: BusMessage) -> None:
        if msg.data is None:
            LOG.warning("wan/down message %s has no GBCS data; ignored", msg.message_id)
            return
        if self.deliver is None:
            LOG.warning("wan/down message %s: no hub attached; dropped", msg.message_id)
            return
        result = self.deliver(msg.data)
        if inspect.isawaitable(result):
            result = await result
        self.deliveries.append(result)
        self._delivered.set()

    async def wait_deliveries(self, count: int, *, timeout: float = WAIT_TIMEOUT_S) -> list[Any]:
        """Wait until the hub has routed ``count`` wan/down messages; returns the outcomes."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.deliveries) < count:
                    self._delivered.clear()
                    await self._delivered.wait()
        except TimeoutError:
            raise BusTimeoutError(
                f"hub routed {len(self.deliveries)} of {count} wan/down messages in {timeout:g} s"
            ) from None
        return self.deliveries[:count]


class DccWanClient:
    """The DCC's end of the WAN: sends GBCS down, collects responses, alerts, power events.

    Run it on a bus with a persistent session (the default) and a stable client
    ID if alerts must survive the DCC process restarting too.
    """

    def __init__(self, bus: MqttBus, topics: RunTopics) -> None:
        self.bus = bus
        self.topics = topics
        self.messages: list[WanMessage] = []  # wan/up
        self.alerts: list[WanMessage] = []
        self.power_events: list[PowerNotice] = []
        self.malformed = 0
        self._changed = asyncio.Event()
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        if self._subs:
            return
        for topic, handler in (
            (self.topics.wan_up(), self._on_up),
            (self.topics.alerts(), self._on_alert),
            (self.topics.power(), self._on_power),
        ):
            self._subs.append(await self.bus.subscribe(topic, handler))

    async def close(self) -> None:
        for sub in self._subs:
            await sub.cancel()
        self._subs.clear()

    def send(self, raw: bytes) -> PublishTicket:
        """A GBCS command for the hub to route (QoS 1)."""
        return self.bus.publish(self.topics.wan_down(), raw, meta=wan_meta(raw))

    def _keep(self, into: list[Any], parse: Callable[[BusMessage], Any], msg: BusMessage) -> None:
        try:
            into.append(parse(msg))
        except PayloadError as exc:
            self.malformed += 1
            LOG.warning("DCC side: malformed message on %s: %s", msg.topic, exc)
            return
        self._changed.set()

    def _on_up(self, msg: BusMessage) -> None:
        self._keep(self.messages, WanMessage.from_bus, msg)

    def _on_alert(self, msg: BusMessage) -> None:
        self._keep(self.alerts, WanMessage.from_bus, msg)

    def _on_power(self, msg: BusMessage) -> None:
        self._keep(self.power_events, PowerNotice.from_bus, msg)

    async def wait_until(
        self, condition: Callable[[], bool], what: str, *, timeout: float = WAIT_TIMEOUT_S
    ) -> None:
        """Wait (at most ``timeout`` wall seconds) until ``condition()`` holds."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise BusTimeoutError(f"DCC side: {what} did not arrive within {timeout:g} s") from None

    async def response(self, counter: int, *, timeout: float = WAIT_TIMEOUT_S) -> WanMessage:
        """The response to the command with originator counter ``counter``."""

        def found() -> WanMessage | None:
            return next(
                (m for m in self.messages if m.cra is Cra.RESPONSE and m.counter == counter), None
            )

        await self.wait_until(lambda: found() is not None, f"response {counter}", timeout=timeout)
        result = found()
        assert result is not None
        return result

    async def alert(
        self, message_code: int, *, after: int = 0, timeout: float = WAIT_TIMEOUT_S
    ) -> WanMessage:
        """The first alert with ``message_code`` among alerts from index ``after`` on."""

        def found() -> WanMessage | None:
            return next((m for m in self.alerts[after:] if m.message_code == message_code), None)

        await self.wait_until(
            lambda: found() is not None, f"alert 0x{message_code:04X}", timeout=timeout
        )
        result = found()
        assert result is not None
        return result


__all__ = [
    "DccWanClient",
    "HubWanBridge",
    "PowerNotice",
    "WanMessage",
    "wan_meta",
]
