"""An aiomqtt client for the rig bus: persistent session, resending outbox, de-duplication.

What a rig needs from MQTT, and what plain aiomqtt leaves to its user:

* **A persistent session.** Each process connects with its own client ID and
  ``clean_session=False``: the broker keeps its subscriptions and queues QoS 1
  messages for it while it is away (a reconnect, a broker restart with
  persistence enabled).
* **An outbox that survives broker restarts.** :meth:`MqttBus.publish` never
  blocks and never fails because the broker is down: a QoS 1 message stays in
  the outbox until the broker acknowledged it (PUBACK) and is sent again, in
  order, after every reconnect. Reconnects back off exponentially
  (:class:`ReconnectPolicy`). QoS 0 messages are sent if connected and dropped
  (counted) otherwise, as a radio frame would be.
* **Exactly-once delivery to the application.** QoS 1 is at-least-once: a
  message whose PUBACK was lost is sent again. Every payload carries a message
  ID (:class:`~gbhil.bus.topics.Envelope`); the receiver keeps a window of IDs
  it has seen and hands each message to the application once. The receiver
  acknowledges (PUBACK) a message only after handing it over, so a message
  that arrived as the link dropped or the bus closed is redelivered, not lost.
* **Precise errors.** Malformed payloads are counted and logged with the
  field at fault, never raised into the reader; API misuse raises a
  :class:`BusError` subclass saying what was wrong.

Also here: :class:`BusRpc`, request/reply over two topics (MQTT 3.1.1 has no
response topics), and :class:`MosquittoBroker`, a private Mosquitto process on
a free port for tests and single-machine rigs.

The bus is I/O, not simulation: its timeouts and backoff are wall-clock
seconds, and it refuses to run on the stepped (virtual-time) event loop, where
waiting on a socket would let virtual time run away (see docs/mqtt.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import inspect
import itertools
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiomqtt

from gbhil.bus.topics import Envelope, PayloadError, Qos

LOG = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------

DEFAULT_PORT: Final = 1883
#: MQTT keepalive: a dead broker is noticed within 1.5 x this.
KEEPALIVE_S: Final = 10
#: How long one connection attempt (TCP + CONNACK) may take.
CONNECT_TIMEOUT_S: Final = 5.0
#: How long the broker may take to acknowledge one QoS 1 message before the link is
#: considered broken (and the message resent on a new connection).
ACK_TIMEOUT_S: Final = 10.0
#: Default wait for the first connection in :meth:`MqttBus.start`.
START_TIMEOUT_S: Final = 10.0
#: Unacknowledged QoS 1 messages kept at most; beyond, publish() raises BusOverflowError.
DEFAULT_OUTBOX_LIMIT: Final = 100_000
#: Message IDs remembered for de-duplication (a redelivery comes within seconds).
DEFAULT_DEDUP_WINDOW: Final = 65_536
#: Default time a BusRpc call waits for its reply.
RPC_TIMEOUT_S: Final = 10.0
#: RPC metadata keys.
RPC_OP: Final = "op"
RPC_ARGS: Final = "args"
RPC_REPLY_TO: Final = "reply_to"
RPC_IN_REPLY_TO: Final = "in_reply_to"
RPC_RESULT: Final = "result"
RPC_ERROR: Final = "error"
#: Mosquitto: where Debian/Ubuntu install it (CI uses apt-get install mosquitto).
MOSQUITTO_PATHS: Final = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
MOSQUITTO_START_TIMEOUT_S: Final = 5.0
MOSQUITTO_POLL_S: Final = 0.02


class BusError(Exception):
    """Base class of every error raised by :mod:`gbhil.bus`."""


class BusConnectError(BusError):
    """The broker could not be reached (address, refusal, or no connection in time)."""


class BusClosedError(BusError):
    """The bus was used after :meth:`MqttBus.close`, or before :meth:`MqttBus.start`."""


class BusOverflowError(BusError):
    """The outbox is full: the broker has been unreachable for too long."""


class BusTimeoutError(BusError, TimeoutError):
    """Something the bus waited for (an acknowledgement, a reply, a message) did not come."""


class RpcError(BusError):
    """The remote side of a :class:`BusRpc` call failed; the message is the remote error."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens."""

    host: str
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not self.host:
            raise BusConnectError("broker host must not be empty")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise BusConnectError(f"broker port must be an integer, got {self.port!r}")
        if not 0 < self.port < 65536:
            raise BusConnectError(f"broker port must be 1-65535, got {self.port}")

    @classmethod
    def parse(cls, text: str) -> BrokerAddress:
        """``host``, ``host:port`` or ``mqtt://host:port``."""
        rest = text.removeprefix("mqtt://").rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep:
            return cls(rest)
        try:
            return cls(host, int(port))
        except ValueError:
            raise BusConnectError(
                f"broker address {text!r}: port {port!r} is not a number"
            ) from None

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff between connection attempts (wall-clock seconds)."""

    initial: float = 0.05
    factor: float = 2.0
    maximum: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum and self.factor >= 1):
            raise BusError(
                "reconnect policy needs 0 < initial <= maximum and factor >= 1, got "
                f"initial={self.initial}, maximum={self.maximum}, factor={self.factor}"
            )

    def delays(self) -> Iterator[float]:
        """initial, initial*factor, ... capped at maximum."""
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * self.factor, self.maximum)


@dataclass(slots=True)
class BusStats:
    """Counters of one bus: what the tests and the rig report look at."""

    connects: int = 0
    connection_failures: int = 0
    disconnects: int = 0
    published: int = 0  # handed to the broker (first attempts)
    acknowledged: int = 0  # QoS 1 PUBACKs
    resent: int = 0  # QoS 1 messages sent again after a reconnect
    dropped_qos0: int = 0  # QoS 0 messages not sent: not connected
    received: int = 0  # delivered to the application
    duplicates: int = 0  # redeliveries dropped by message ID
    own_dropped: int = 0  # own messages not handed back (no-local)
    malformed: int = 0  # payloads that were not envelopes
    handler_errors: int = 0


@dataclass(frozen=True, slots=True)
class BusMessage:
    """A message handed to the application (once per message ID)."""

    topic: str
    envelope: Envelope
    retained: bool = False

    @property
    def data(self) -> bytes | None:
        return self.envelope.data

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.envelope.meta

    @property
    def message_id(self) -> str:
        return self.envelope.id

    @property
    def src(self) -> str:
        return self.envelope.src


Handler = Callable[[BusMessage], object]
"""Called with each message; if it returns an awaitable, that runs as a task."""


@dataclass(slots=True)
class _Outgoing:
    topic: str
    payload: bytes
    qos: Qos
    retain: bool
    envelope: Envelope
    done: asyncio.Future[None]
    attempts: int = 0


class PublishTicket:
    """What :meth:`MqttBus.publish` returns: the envelope, and a way to await delivery."""

    __slots__ = ("_done", "envelope", "topic")

    def __init__(self, topic: str, envelope: Envelope, done: asyncio.Future[None]) -> None:
        self.topic = topic
        self.envelope = envelope
        self._done = done

    @property
    def message_id(self) -> str:
        return self.envelope.id

    def done(self) -> bool:
        """True once the broker acknowledged it (QoS 1) or it was written (QoS 0)."""
        return self._done.done() and not self._done.cancelled()

    async def wait(self, timeout: float = ACK_TIMEOUT_S) -> None:
        """Wait until :meth:`done`; :class:`BusTimeoutError` after ``timeout`` seconds."""
        done, _ = await asyncio.wait({self._done}, timeout=timeout)
        if not done:
            raise BusTimeoutError(
                f"message {self.message_id} on {self.topic} not acknowledged within {timeout:g} s"
            )
        if self._done.cancelled():
            raise BusError(
                f"message {self.message_id} on {self.topic} was dropped (QoS 0 while "
                "disconnected, or the bus was closed)"
            )


@dataclass(slots=True)
class _Subscription:
    key: int
    pattern: str
    qos: Qos
    handler: Handler
    own: bool


class Subscription:
    """Handle of one subscription; :meth:`cancel` ends it."""

    __slots__ = ("_bus", "_key", "pattern")

    def __init__(self, bus: MqttBus, key: int, pattern: str) -> None:
        self._bus = bus
        self._key = key
        self.pattern = pattern

    async def cancel(self) -> None:
        await self._bus._unsubscribe(self._key)


def default_client_id(role: str) -> str:
    """A client ID for one process: role, host, PID and randomness (MQTT IDs must be unique)."""
    host = socket.gethostname().split(".")[0] or "host"
    return f"gbhil-{role}-{host}-{os.getpid()}-{secrets.token_hex(3)}"


def _check_real_time_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.get_running_loop()
    clock = getattr(loop, "clock", None)
    mode = getattr(getattr(clock, "mode", None), "value", None)
    if mode == "stepped":
        raise BusError(
            "the MQTT bus needs a real-time event loop: on the stepped (virtual-time) loop, "
            "waiting for the broker would let virtual time jump; use a real-time clock for "
            "rigs that span processes (docs/mqtt.md)"
        )
    return loop


def _low_latency(paho: Any) -> None:
    """No Nagle and no delayed ACKs on this client's connection (paho leaves both on).

    Small MQTT packets otherwise wait for the TCP ACK of the one before, which the peer's
    delayed ACK holds back up to 40 ms: a bus round trip took ~90 ms of wall time on one
    host (3.6 rig seconds at the harness's rate 40, enough for a restoration alert to miss
    the next mains cut). ``TCP_NODELAY`` covers what this client sends; re-arming Linux's
    ``TCP_QUICKACK`` after every read makes this side ACK at once, so a broker that keeps
    Nagle on (``mosquitto -p PORT`` does: ``set_tcp_nodelay false``) sends its next packet
    without waiting.
    """
    quickack = getattr(socket, "TCP_QUICKACK", None)

    def tune(*options: int) -> None:
        sock = paho.socket()
        with contextlib.suppress(AttributeError, OSError):  # not plain TCP: leave it
            for option in options:
                sock.setsockopt(socket.IPPROTO_TCP, option, 1)

    opened, read = paho.on_socket_open, paho.loop_read

    def on_socket_open(client: Any, userdata: Any, sock: Any) -> None:
        tune(socket.TCP_NODELAY, *(() if quickack is None else (quickack,)))
        if opened is not None:
            opened(client, userdata, sock)

    def loop_read(*args: Any, **kwargs: Any) -> Any:
        try:
            return read(*args, **kwargs)
        finally:
            if quickack is not None:
                tune(quickack)

    paho.on_socket_open = on_socket_open
    paho.loop_read = loop_read


def _paho(client: aiomqtt.Client) -> Any:
    """The paho client inside aiomqtt 2.x: the only way to acknowledge messages manually."""
    paho = getattr(client, "_client", None)
    if paho is None or not hasattr(paho, "manual_ack_set") or not hasattr(paho, "ack"):
        raise BusError(
            "this aiomqtt has no paho client with manual acknowledgements (gbhil needs "
            "aiomqtt>=2.5,<3 on paho-mqtt 2)"
        )
    return paho


def _spawn(tasks: set[asyncio.Task[Any]], coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    task.set_name(name)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


class MqttBus:
    """One process's connection to the rig broker (see the module docstring).

    Use ``async with MqttBus(...) as bus`` or :meth:`start` / :meth:`close`.
    Subscriptions are kept by the bus and renewed on every (re)connection.
    By default a subscriber does not get its own messages back (like MQTT 5's
    No Local), so a process that publishes and listens on one topic, as every
    radio on a HAN channel does, does not hear itself.
    """

    def __init__(
        self,
        broker: BrokerAddress | str,
        client_id: str | None = None,
        *,
        role: str = "bus",
        clean_session: bool = False,
        reconnect: ReconnectPolicy | None = None,
        keepalive: int = KEEPALIVE_S,
        outbox_limit: int = DEFAULT_OUTBOX_LIMIT,
        dedup_window: int = DEFAULT_DEDUP_WINDOW,
        will: tuple[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.broker = broker if isinstance(broker, BrokerAddress) else BrokerAddress.parse(broker)
        self.client_id = client_id or default_client_id(role)
        if not self.client_id or len(self.client_id.encode()) > 65535:
            raise BusError(f"client ID must be 1-65535 octets, got {self.client_id!r}")
        self.clean_session = clean_session
        self.reconnect = reconnect or ReconnectPolicy()
        self.keepalive = keepalive
        if outbox_limit < 1 or dedup_window < 1:
            raise BusError("outbox_limit and dedup_window must be positive")
        self.outbox_limit = outbox_limit
        self.dedup_window = dedup_window
        self.stats = BusStats()
        self.last_error: BaseException | None = None
        self._instance = secrets.token_hex(6)
        self._seq = itertools.count(1)
        self._will = will
        self._pending: OrderedDict[str, _Outgoing] = OrderedDict()
        self._seen: OrderedDict[str, int] = OrderedDict()  # message ID -> first newer sub key
        self._subs: dict[int, _Subscription] = {}
        self._next_sub_key = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._client: aiomqtt.Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._connected: asyncio.Event | None = None
        self._wakeup: asyncio.Event | None = None
        self._closing = False
        #: Called after every (re)connection, e.g. to publish state again.
        self.on_connect: list[Callable[[], None]] = []

    # -- life cycle ------------------------------------------------------------------
    async def start(self, timeout: float = START_TIMEOUT_S) -> MqttBus:
        """Start the connection task and wait for the first connection.

        On :class:`BusConnectError` the bus keeps trying in the background (wait
        again with :meth:`wait_connected`, or :meth:`close` it).
        """
        if self._closing:
            raise BusClosedError(f"bus {self.client_id} is closed")
        if self._runner is None:
            _check_real_time_loop()
            self._connected = asyncio.Event()
            self._wakeup = asyncio.Event()
            self._runner = asyncio.create_task(self._run(), name=f"mqtt {self.client_id}")
        await self.wait_connected(timeout)
        return self

    async def wait_connected(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until connected; :class:`BusConnectError` (with the last error) if not in time."""
        if self._connected is None:
            raise BusClosedError("start() the bus first")
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            raise BusConnectError(
                f"no connection to {self.broker} within {timeout:g} s"
                + (f": {self.last_error}" if self.last_error else "")
            ) from None

    @property
    def connected(self) -> bool:
        return self._connected is not None and self._connected.is_set()

    @property
    def outbox(self) -> int:
        """QoS 1 messages not yet acknowledged by the broker."""
        return sum(1 for item in self._pending.values() if item.qos is Qos.AT_LEAST_ONCE)

    async def flush(self, timeout: float = ACK_TIMEOUT_S) -> None:
        """Wait until every message published so far was acknowledged."""
        items = {item.done for item in self._pending.values() if item.qos is Qos.AT_LEAST_ONCE}
        if not items:
            return
        _, waiting = await asyncio.wait(items, timeout=timeout)
        if waiting:
            raise BusTimeoutError(
                f"{len(waiting)} message(s) still unacknowledged after {timeout:g} s"
            )

    async def close(self, *, flush: float | None = 2.0, end_session: bool = False) -> None:
        """Disconnect (after trying to flush the outbox); ``end_session`` drops the session."""
        if self._closing:
            return
        if flush is not None and self._runner is not None and self.connected:
            with contextlib.suppress(BusTimeoutError):
                await self.flush(flush)
        self._closing = True
        for task in tuple(self._tasks):
            task.cancel()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for item in self._pending.values():
            if not item.done.done():
                item.done.cancel()
        if end_session and not self.clean_session:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                async with aiomqtt.Client(
                    self.broker.host,
                    self.broker.port,
                    identifier=self.client_id,
                    clean_session=True,
                    timeout=CONNECT_TIMEOUT_S,
                ):
                    pass

    async def __aenter__(self) -> MqttBus:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- publishing -----------------------------------------------------------------------
    def envelope(
        self, data: bytes | None = None, meta: Mapping[str, Any] | None = None
    ) -> Envelope:
        """A new envelope from this publisher (next sequence number, fresh ID)."""
        seq = next(self._seq)
        return Envelope(f"{self._instance}:{seq}", seq, self.client_id, data, dict(meta or {}))

    def publish(
        self,
        topic: str,
        data: bytes | None = None,
        *,
        meta: Mapping[str, Any] | None = None,
        qos: Qos | int = Qos.AT_LEAST_ONCE,
        retain: bool = False,
    ) -> PublishTicket:
        """Queue a message; returns at once (await ``ticket.wait()`` for the broker's ack)."""
        return self.publish_envelope(topic, self.envelope(data, meta), qos=qos, retain=retain)

    def publish_envelope(
        self,
        topic: str,
        envelope: Envelope,
        *,
        qos: Qos | int = Qos.AT_LEAST_ONCE,
        retain: bool = False,
    ) -> PublishTicket:
        """Queue an already built envelope (e.g. to publish one message ID again)."""
        if self._closing:
            raise BusClosedError(f"bus {self.client_id} is closed")
        if self._wakeup is None:
            raise BusClosedError("start() the bus before publishing")
        if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
            raise BusError(f"cannot publish to {topic!r}: topics must be non-empty, no wildcards")
        try:
            qos = Qos(qos)
        except ValueError:
            raise BusError(f"QoS must be 0 or 1, got {qos!r}") from None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ticket = PublishTicket(topic, envelope, done)
        if qos is Qos.AT_MOST_ONCE and not self.connected:
            self.stats.dropped_qos0 += 1
            done.cancel()
            return ticket
        if qos is Qos.AT_LEAST_ONCE and self.outbox >= self.outbox_limit:
            raise BusOverflowError(
                f"outbox full ({self.outbox_limit} unacknowledged messages): the broker "
                f"{self.broker} has been unreachable too long"
            )
        key = f"{envelope.id}@{topic}"
        if key in self._pending:
            raise BusError(f"message {envelope.id} is already queued for {topic}")
        self._pending[key] = _Outgoing(topic, envelope.encode(), qos, retain, envelope, done)
        self._wakeup.set()
        return ticket

    # -- subscribing -----------------------------------------------------------------------
    async def subscribe(
        self,
        pattern: str,
        handler: Handler,
        *,
        qos: Qos | int = Qos.AT_LEAST_ONCE,
        own: bool = False,
    ) -> Subscription:
        """Hand messages on ``pattern`` to ``handler``; kept across reconnects.

        Waits for the broker's SUBACK when connected, so retained messages and
        anything published afterwards reach the handler.
        """
        if self._closing:
            raise BusClosedError(f"bus {self.client_id} is closed")
        if not pattern:
            raise BusError("subscription pattern must not be empty")
        key = self._next_sub_key
        self._next_sub_key += 1
        self._subs[key] = _Subscription(key, pattern, Qos(qos), handler, own)
        client = self._client
        if client is not None and self.connected:
            try:
                await client.subscribe(pattern, int(qos), timeout=ACK_TIMEOUT_S)
            except aiomqtt.MqttError as exc:
                LOG.warning("subscribe %s failed (%s); renewed on reconnect", pattern, exc)
        return Subscription(self, key, pattern)

    async def _unsubscribe(self, key: int) -> None:
        sub = self._subs.pop(key, None)
        if sub is None:
            return
        still = any(s.pattern == sub.pattern for s in self._subs.values())
        client = self._client
        if not still and client is not None and self.connected:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(sub.pattern, timeout=ACK_TIMEOUT_S)

    async def next_message(
        self, pattern: str, *, timeout: float, predicate: Callable[[BusMessage], bool] | None = None
    ) -> BusMessage:
        """Subscribe, wait for the first matching message (retained ones count), unsubscribe."""
        future: asyncio.Future[BusMessage] = asyncio.get_running_loop().create_future()

        def take(msg: BusMessage) -> None:
            if not future.done() and (predicate is None or predicate(msg)):
                future.set_result(msg)

        sub = await self.subscribe(pattern, take, own=True)
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise BusTimeoutError(f"no message on {pattern} within {timeout:g} s") from None
        finally:
            await sub.cancel()

    # -- the connection ------------------------------------------------------------------
    def _make_client(self) -> aiomqtt.Client:
        will = None
        if self._will is not None:
            topic, meta = self._will
            will = aiomqtt.Will(topic, self.envelope(None, meta).encode(), 1, True)
        client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            identifier=self.client_id,
            clean_session=self.clean_session,
            keepalive=self.keepalive,
            timeout=CONNECT_TIMEOUT_S,
            will=will,
        )
        paho = _paho(client)
        paho.manual_ack_set(True)
        _low_latency(paho)
        return client

    async def _run(self) -> None:
        """Connect, serve, and on any loss back off and connect again, until closed."""
        assert self._connected is not None
        delays = self.reconnect.delays()
        while not self._closing:
            client = self._make_client()  # a fresh paho state per connection: our outbox resends
            try:
                async with client:
                    self._client = client
                    self.stats.connects += 1
                    delays = self.reconnect.delays()
                    await self._renew_subscriptions(client)
                    self._connected.set()  # no await since the last check: nothing missed
                    LOG.info("%s connected to %s", self.client_id, self.broker)
                    self._connected_callbacks()
                    await self._serve(client)
            except Exception as exc:  # any failure ends this connection, never the loop
                self.last_error = exc
                if self._connected.is_set():
                    self.stats.disconnects += 1
                    LOG.warning("%s lost %s: %s", self.client_id, self.broker, exc)
                else:
                    self.stats.connection_failures += 1
            finally:
                self._client = None
                self._connected.clear()
                self._drop_qos0()
            if not self._closing:
                await asyncio.sleep(next(delays))

    def _connected_callbacks(self) -> None:
        for callback in tuple(self.on_connect):
            try:
                callback()
            except Exception:  # a faulty callback must not cost the connection
                self.stats.handler_errors += 1
                LOG.exception("%s: on_connect callback %r failed", self.client_id, callback)

    async def _renew_subscriptions(self, client: aiomqtt.Client) -> None:
        """Subscribe every pattern, including ones added while this ran."""
        done: set[str] = set()
        while True:
            todo = {p: q for p, q in self._patterns().items() if p not in done}
            if not todo:
                return
            for pattern, qos in todo.items():
                await client.subscribe(pattern, int(qos), timeout=ACK_TIMEOUT_S)
                done.add(pattern)

    def _patterns(self) -> dict[str, Qos]:
        out: dict[str, Qos] = {}
        for sub in self._subs.values():
            out[sub.pattern] = max(out.get(sub.pattern, Qos.AT_MOST_ONCE), sub.qos)
        return out

    async def _serve(self, client: aiomqtt.Client) -> None:
        reader = asyncio.create_task(self._reader(client), name=f"mqtt reader {self.client_id}")
        sender = asyncio.create_task(self._sender(client), name=f"mqtt sender {self.client_id}")
        try:
            done, _ = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise the MqttError that ended the connection
        finally:
            for task in (reader, sender):
                task.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)

    async def _reader(self, client: aiomqtt.Client) -> None:
        paho = _paho(client)
        async for message in client.messages:
            try:
                self._on_message(message)
            finally:
                # PUBACK only now that the application has the message: one that arrived
                # but was not handed over (closing, link lost) is redelivered, not lost
                paho.ack(message.mid, message.qos)
        raise aiomqtt.MqttError("message stream ended")

    async def _sender(self, client: aiomqtt.Client) -> None:
        """Send the head of the queue; drop it only once acknowledged (QoS 1) or written."""
        assert self._wakeup is not None
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key, item = next(iter(self._pending.items()))
            item.attempts += 1
            if item.attempts > 1:
                self.stats.resent += 1
            else:
                self.stats.published += 1
            timeout = ACK_TIMEOUT_S if item.qos is Qos.AT_LEAST_ONCE else CONNECT_TIMEOUT_S
            await client.publish(
                item.topic, item.payload, int(item.qos), item.retain, timeout=timeout
            )
            if self._pending.get(key) is item:
                del self._pending[key]
            if item.qos is Qos.AT_LEAST_ONCE:
                self.stats.acknowledged += 1
            if not item.done.done():
                item.done.set_result(None)

    def _drop_qos0(self) -> None:
        for key in [k for k, item in self._pending.items() if item.qos is Qos.AT_MOST_ONCE]:
            item = self._pending.pop(key)
            self.stats.dropped_qos0 += 1
            if not item.done.done():
                item.done.cancel()

    # -- receiving -------------------------------------------------------------------------
    def _on_message(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload).encode() if payload is not None else b""
        try:
            envelope = Envelope.decode(bytes(payload))
        except PayloadError as exc:
            self.stats.malformed += 1
            LOG.warning("%s: malformed payload on %s: %s", self.client_id, topic, exc)
            return
        # A retained message is offered again to every new subscription; a subscription
        # only gets it if it did not exist when the message was first handed out.
        first_new_sub = self._seen.get(envelope.id)
        if first_new_sub is not None:
            self._seen.move_to_end(envelope.id)
            if not message.retain:
                self.stats.duplicates += 1
                return
        self._seen[envelope.id] = self._next_sub_key
        while len(self._seen) > self.dedup_window:
            self._seen.popitem(last=False)
        own = envelope.src == self.client_id
        msg = BusMessage(topic, envelope, bool(message.retain))
        delivered = False
        for sub in tuple(self._subs.values()):
            if first_new_sub is not None and sub.key < first_new_sub:
                continue  # this subscription already had it
            if not message.topic.matches(sub.pattern):
                continue
            if own and not sub.own:
                continue
            delivered = True
            self._call(sub, msg)
        if delivered:
            self.stats.received += 1
        elif first_new_sub is not None:
            self.stats.duplicates += 1
        elif own:
            self.stats.own_dropped += 1

    def _call(self, sub: _Subscription, msg: BusMessage) -> None:
        try:
            result = sub.handler(msg)
        except Exception:
            self.stats.handler_errors += 1
            LOG.exception("%s: handler for %s failed on %s", self.client_id, sub.pattern, msg.topic)
            return
        if inspect.isawaitable(result):
            task = _spawn(self._tasks, result, f"handler {sub.pattern}")
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.stats.handler_errors += 1
            LOG.error("%s: %s failed: %r", self.client_id, task.get_name(), exc, exc_info=exc)


# ---------------------------------------------------------------------------
# Request / reply
# ---------------------------------------------------------------------------

RpcHandler = Callable[..., Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None]


class BusRpc:
    """Request/reply over the bus: a request names the topic its reply goes to.

    The request's message ID correlates the reply; requests and replies are
    QoS 1 and de-duplicated like everything else, so a call survives a broker
    restart within its timeout. Handlers get the request's ``args`` as keyword
    arguments and return a JSON-able mapping; an exception becomes an
    :class:`RpcError` at the caller, with the remote message.
    """

    def __init__(self, bus: MqttBus, *, timeout: float = RPC_TIMEOUT_S) -> None:
        self.bus = bus
        self.timeout = timeout
        self._waiting: dict[str, tuple[str, asyncio.Future[Mapping[str, Any]]]] = {}
        self._reply_subs: dict[str, Subscription] = {}

    async def serve(self, pattern: str, handlers: Mapping[str, RpcHandler]) -> Subscription:
        """Answer requests on ``pattern`` with ``handlers[op]``."""
        known = dict(handlers)

        async def on_request(msg: BusMessage) -> None:
            op = msg.meta.get(RPC_OP)
            reply_to = msg.meta.get(RPC_REPLY_TO)
            args = msg.meta.get(RPC_ARGS) or {}
            result: Mapping[str, Any] | None = None
            error: str | None = None
            handler = known.get(op) if isinstance(op, str) else None
            if handler is None:
                error = f"unknown operation {op!r} (known: {', '.join(sorted(known))})"
            elif not isinstance(args, dict):
                error = f"{RPC_ARGS!r} must be a JSON object, got {type(args).__name__}"
            else:
                try:
                    value = handler(**args)
                    result = await value if inspect.isawaitable(value) else value
                except Exception as exc:  # reported to the caller, the server carries on
                    error = f"{type(exc).__name__}: {exc}"
            if isinstance(reply_to, str) and reply_to:
                meta = {RPC_IN_REPLY_TO: msg.message_id, RPC_OP: op,
                        RPC_RESULT: dict(result or {}), RPC_ERROR: error}  # fmt: skip
                self.bus.publish(reply_to, meta=meta)

        return await self.bus.subscribe(pattern, on_request, own=True)

    async def _ensure_reply_sub(self, reply_topic: str) -> None:
        if reply_topic in self._reply_subs:
            return

        def on_reply(msg: BusMessage) -> None:
            ref = msg.meta.get(RPC_IN_REPLY_TO)
            waiting = self._waiting.get(ref) if isinstance(ref, str) else None
            if waiting is None or waiting[1].done():
                return
            op, future = waiting
            error = msg.meta.get(RPC_ERROR)
            if error:
                future.set_exception(RpcError(f"{op}: {error}"))
            else:
                result = msg.meta.get(RPC_RESULT)
                future.set_result(result if isinstance(result, dict) else {})

        self._reply_subs[reply_topic] = await self.bus.subscribe(reply_topic, on_reply, own=True)

    async def call(
        self,
        request_topic: str,
        reply_topic: str,
        op: str,
        args: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """Send ``op(args)`` and wait for the reply (:class:`BusTimeoutError` if none)."""
        await self._ensure_reply_sub(reply_topic)
        meta = {RPC_OP: op, RPC_ARGS: dict(args or {}), RPC_REPLY_TO: reply_topic}
        envelope = self.bus.envelope(None, meta)
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[envelope.id] = (op, future)
        limit = self.timeout if timeout is None else timeout
        try:
            self.bus.publish_envelope(request_topic, envelope)
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            raise BusTimeoutError(
                f"no reply to {op!r} on {reply_topic} within {limit:g} s"
            ) from None
        finally:
            self._waiting.pop(envelope.id, None)

    def notify(
        self, request_topic: str, op: str, args: Mapping[str, Any] | None = None
    ) -> PublishTicket:
        """Send ``op(args)`` without waiting for (or asking for) a reply."""
        return self.bus.publish(request_topic, meta={RPC_OP: op, RPC_ARGS: dict(args or {})})


# ---------------------------------------------------------------------------
# A private Mosquitto
# ---------------------------------------------------------------------------


class MosquittoError(BusError):
    """The Mosquitto binary is missing, or the broker did not start."""


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary (PATH, then the Debian location), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class MosquittoBroker:
    """A Mosquitto of our own: temporary config, loopback port, persistence in ``workdir``.

    Persistence is on so a restart (:meth:`stop` then :meth:`start`, same port)
    keeps persistent sessions, their queued QoS 1 messages and retained
    messages: Mosquitto writes its database on SIGTERM and every
    ``autosave_interval`` seconds.
    """

    workdir: Path
    port: int = 0
    host: str = "127.0.0.1"
    binary: str | None = None
    persistence: bool = True
    autosave_interval: int = 1
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        if self.port == 0:
            self.port = free_port(self.host)
        if self.binary is None:
            self.binary = find_mosquitto()
        if self.binary is None:
            raise MosquittoError(
                "mosquitto is not installed (apt-get install mosquitto); looked on PATH and in "
                + ", ".join(MOSQUITTO_PATHS)
            )

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(self.host, self.port)

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def _config(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"user {getpass.getuser()}",  # as root, keep root (the workdir is ours)
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
            "queue_qos0_messages false",
        ]
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                "persistence_file mosquitto.db",
                f"autosave_interval {self.autosave_interval}",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = MOSQUITTO_START_TIMEOUT_S) -> None:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config())
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr is not None else ""
                raise MosquittoError(
                    f"mosquitto exited with {self.process.returncode}: {err.strip()} "
                    f"{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=MOSQUITTO_POLL_S * 10),
            ):
                return
            time.sleep(MOSQUITTO_POLL_S)
        self.stop(kill=True)
        raise MosquittoError(f"mosquitto did not listen on {self.port} within {timeout:g} s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, kill: bool = False, timeout: float = MOSQUITTO_START_TIMEOUT_S) -> None:
        """SIGTERM (Mosquitto saves its database) or SIGKILL (it does not); then reap it."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc.stderr is not None:
            proc.stderr.close()
        self.process = None

    def restart(self) -> None:
        """Stop (SIGTERM) and start again on the same port with the same database."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "ACK_TIMEOUT_S",
    "BrokerAddress",
    "BusClosedError",
    "BusConnectError",
    "BusError",
    "BusMessage",
    "BusOverflowError",
    "BusRpc",
    "BusStats",
    "BusTimeoutError",
    "Handler",
    "MosquittoBroker",
    "MosquittoError",
    "MqttBus",
    "PublishTicket",
    "ReconnectPolicy",
    "RpcError",
    "Subscription",
    "default_client_id",
    "find_mosquitto",
    "free_port",
]
