"""Asynchronous delivery of responses and alerts to each User's Receive Response Service.

DUIS (SECCo "Device Alert" glossary entry, duis-facts 1.4): the DCC POSTs every
asynchronous response, device alert and DCC alert to the address the User configured,
retries at least once within 300 s, and when it still cannot deliver it puts the message
on a failed queue that is redelivered once the User's connection is back; failed device
alerts are kept for 2 days. The messages arrive here already signed by the DCC.

One worker per User keeps that User's messages in order. Retries back off in clock time
(virtual time in simulation, so a 300 s outage costs nothing). Every queued message is in
SQLite until it is delivered or expires, so a restarted emulator picks up where it
stopped. A receiver answering 2xx has the message; anything else (refused connection,
timeout, 4xx/5xx) counts as not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import os
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from gbhil.dcc.store import open_store
from gbhil.dcc.users import UserDirectory
from gbhil.duis.model import format_eui
from gbhil.simulator import Clock

log = logging.getLogger(__name__)

#: The DCC retries an undelivered message for this long before queueing it as failed.
RETRY_WINDOW_S = 300.0
#: First retry delay; each further retry waits twice as long (capped below).
FIRST_RETRY_DELAY_S = 2.0
MAX_RETRY_DELAY_S = 64.0
#: Failed device alerts are kept this long for redelivery (DUIS, SECCo glossary).
DEVICE_ALERT_HOLD = dt.timedelta(days=2)
#: While messages wait on the failed queue the DCC probes the User this often.
FAILED_PROBE_INTERVAL_S = 60.0
#: One POST may take this long (clock seconds) before it counts as failed.
POST_TIMEOUT_S = 10.0
CONTENT_TYPE = "application/xml"
#: Records of finished deliveries kept for inspection (tests, ``gbhil serve`` logs).
HISTORY_LENGTH = 10_000


class MessageKind(enum.StrEnum):
    """What a queued message is (decides how long a failed one is kept)."""

    RESPONSE = "response"
    DEVICE_ALERT = "device alert"
    DCC_ALERT = "DCC alert"


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(slots=True)
class Envelope:
    """One signed message for one User."""

    id: int
    user_id: str
    kind: MessageKind
    body: bytes = field(repr=False)
    created_at: dt.datetime
    request_id: str | None = None
    attempts: int = 0
    failed: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """What happened to a message (delivered, moved to the failed queue, or expired)."""

    envelope_id: int
    user_id: str
    kind: MessageKind
    request_id: str | None
    outcome: Outcome
    attempts: int
    at: dt.datetime
    detail: str = ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS dcc_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    request_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0
);
"""


class _Store:
    """The outbox table: a message lives here from enqueue until delivered or expired."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        # A queued answer is the DCC's promise to a User: committed before it is sent.
        self._conn = open_store(self.path, _SCHEMA)

    def add(
        self,
        user_id: str,
        kind: MessageKind,
        body: bytes,
        created_at: dt.datetime,
        request_id: str | None,
    ) -> int:
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO dcc_outbox (user_id, kind, body, created_at, request_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (user_id, str(kind), body, created_at.isoformat(), request_id),
            )
            return int(cursor.lastrowid or 0)

    def update(self, env: Envelope) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE dcc_outbox SET attempts = ?, failed = ? WHERE id = ?",
                (env.attempts, int(env.failed), env.id),
            )

    def delete(self, envelope_id: int) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM dcc_outbox WHERE id = ?", (envelope_id,))

    def load(self) -> list[Envelope]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, user_id, kind, body, created_at, request_id, attempts, failed "
                "FROM dcc_outbox ORDER BY id"
            ).fetchall()
        return [
            Envelope(
                r[0],
                r[1],
                MessageKind(r[2]),
                bytes(r[3]),
                dt.datetime.fromisoformat(r[4]),
                r[5],
                r[6],
                bool(r[7]),
            )
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@dataclass(slots=True)
class _Lane:
    """One User's queues: messages still to try, and the failed queue."""

    queued: deque[Envelope] = field(default_factory=deque)
    failed: list[Envelope] = field(default_factory=list)
    wake: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    #: The last message ran out of retries: try the next ones once before failing them.
    down: bool = False


class Outbox:
    """Queues, POSTs, retries and keeps what the DCC sends to Users (see module docstring).

    ``ssl_context`` is used for ``https`` receive URLs (the DCC's DCCKI client identity).
    ``on_record`` is called with each :class:`DeliveryRecord`.
    """

    def __init__(
        self,
        users: UserDirectory,
        clock: Clock,
        *,
        path: str | os.PathLike[str] = ":memory:",
        ssl_context: ssl.SSLContext | None = None,
        retry_window_s: float = RETRY_WINDOW_S,
        first_retry_delay_s: float = FIRST_RETRY_DELAY_S,
        probe_interval_s: float = FAILED_PROBE_INTERVAL_S,
        post_timeout_s: float = POST_TIMEOUT_S,
        device_alert_hold: dt.timedelta = DEVICE_ALERT_HOLD,
        on_record: Callable[[DeliveryRecord], None] | None = None,
    ) -> None:
        self.users = users
        self.clock = clock
        self.ssl_context = ssl_context
        self.retry_window_s = retry_window_s
        self.first_retry_delay_s = first_retry_delay_s
        self.probe_interval_s = probe_interval_s
        self.post_timeout_s = post_timeout_s
        self.device_alert_hold = device_alert_hold
        self.on_record = on_record
        self.history: deque[DeliveryRecord] = deque(maxlen=HISTORY_LENGTH)
        self._store = _Store(path)
        self._lanes: dict[str, _Lane] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        for env in self._store.load():
            lane = self._lane(env.user_id)
            (lane.failed if env.failed else lane.queued).append(env)

    # --- public API -------------------------------------------------------------------------

    def enqueue(self, user_id: str, body: bytes, kind: MessageKind, *,
                request_id: str | None = None) -> Envelope:
        """Queue a signed message for ``user_id``; it is in SQLite before this returns."""
        user_id = format_eui(user_id)
        now = self.clock.now()
        env = Envelope(self._store.add(user_id, kind, body, now, request_id), user_id, kind,
                       body, now, request_id)
        lane = self._lane(user_id)
        lane.queued.append(env)
        self._kick(user_id, lane)
        return env

    def queued(self, user_id: str | None = None) -> list[Envelope]:
        return [e for uid, lane in self._lanes.items() if user_id in (None, uid)
                for e in lane.queued]

    def failed(self, user_id: str | None = None) -> list[Envelope]:
        return [e for uid, lane in self._lanes.items() if user_id in (None, uid)
                for e in lane.failed]

    def redeliver(self, user_id: str | None = None) -> None:
        """Move failed messages back to the queue now (e.g. after a receive URL change)."""
        for uid, lane in self._lanes.items():
            if user_id is None or uid == format_eui(user_id):
                self._requeue_failed(lane)
                lane.down = False
                self._kick(uid, lane)

    async def start(self) -> None:
        """Start the workers (on the running loop: the rig's, in simulation)."""
        if self._running:
            return
        self._running = True
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()
        for uid, lane in self._lanes.items():
            self._kick(uid, lane)

    async def stop(self) -> None:
        self._running = False
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lane in self._lanes.values():
            lane.task = None
            lane.wake = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def close(self) -> None:
        """Close the store (after :meth:`stop`); queued messages stay on disk."""
        self._store.close()

    async def drain(self, max_seconds: float = RETRY_WINDOW_S) -> bool:
        """Wait (clock time) until no message is queued or being tried; True if drained."""
        deadline = self.clock.monotonic() + max_seconds
        while any(lane.queued for lane in self._lanes.values()):
            if self.clock.monotonic() >= deadline:
                return False
            await self.clock.sleep(0.05)
        return True

    # --- workers ----------------------------------------------------------------------------

    def _lane(self, user_id: str) -> _Lane:
        lane = self._lanes.get(user_id)
        if lane is None:
            lane = self._lanes[user_id] = _Lane()
        return lane

    def _kick(self, user_id: str, lane: _Lane) -> None:
        if not self._running or self._loop is None:
            return
        if lane.wake is None:
            lane.wake = asyncio.Event()
        lane.wake.set()
        if lane.task is None or lane.task.done():
            lane.task = self._loop.create_task(
                self._work(user_id, lane), name=f"dcc-outbox {user_id}"
            )

    async def _work(self, user_id: str, lane: _Lane) -> None:
        assert lane.wake is not None
        while self._running:
            if not lane.queued:
                lane.wake.clear()
                if not lane.failed:
                    await lane.wake.wait()
                    continue
                woke = await self._wait(lane.wake, self.probe_interval_s)
                if not woke and lane.failed:
                    await self._probe(user_id, lane)
                continue
            env = lane.queued[0]
            delivered, detail = await self._try(env, retry=not lane.down)
            lane.queued.popleft()
            if delivered:
                self._finish(env, Outcome.DELIVERED, detail)
                if lane.down or lane.failed:
                    lane.down = False
                    self._requeue_failed(lane)
            else:
                lane.down = True
                env.failed = True
                self._store.update(env)
                lane.failed.append(env)
                self._record(env, Outcome.FAILED, detail)

    async def _wait(self, event: asyncio.Event, seconds: float) -> bool:
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        done, pending = await asyncio.wait({waiter, sleeper},
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return waiter in done

    async def _probe(self, user_id: str, lane: _Lane) -> None:
        """Drop expired failed messages, then try the oldest once; success requeues all."""
        self._expire(lane)
        if not lane.failed:
            return
        oldest = lane.failed[0]
        delivered, detail = await self._try(oldest, retry=False)
        if delivered:
            lane.failed.pop(0)
            self._finish(oldest, Outcome.DELIVERED, detail)
            lane.down = False
            self._requeue_failed(lane)
        del user_id

    def _requeue_failed(self, lane: _Lane) -> None:
        self._expire(lane)
        for env in reversed(lane.failed):
            env.failed = False
            self._store.update(env)
            lane.queued.appendleft(env)
        lane.failed.clear()

    def _expire(self, lane: _Lane) -> None:
        now = self.clock.now()
        keep: list[Envelope] = []
        for env in lane.failed:
            if (
                env.kind is MessageKind.DEVICE_ALERT
                and now - env.created_at > self.device_alert_hold
            ):
                self._finish(env, Outcome.EXPIRED, "device alert held for 2 days")
            else:
                keep.append(env)
        lane.failed[:] = keep

    async def _try(self, env: Envelope, *, retry: bool) -> tuple[bool, str]:
        """POST ``env``; with ``retry`` keep trying (backing off) for the retry window."""
        start = self.clock.monotonic()
        delay = self.first_retry_delay_s
        while True:
            ok, detail = await self._post(env)
            if ok or not retry:
                return ok, detail
            elapsed = self.clock.monotonic() - start
            if elapsed + delay > self.retry_window_s:
                return False, f"{detail}; gave up after {env.attempts} attempts"
            await self.clock.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY_S)

    async def _post(self, env: Envelope) -> tuple[bool, str]:
        env.attempts += 1
        user = self.users.get(env.user_id)
        url = None if user is None else user.receive_url
        if url is None:
            return False, "no receive URL configured"
        if self._session is None:
            return False, "outbox not started"
        try:
            async with asyncio.timeout(self.post_timeout_s):
                async with self._session.post(
                    url,
                    data=env.body,
                    headers={"Content-Type": CONTENT_TYPE},
                    ssl=self.ssl_context if url.startswith("https:") else None,
                ) as reply:
                    await reply.read()
                    if 200 <= reply.status < 300:
                        return True, f"HTTP {reply.status}"
                    return False, f"HTTP {reply.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return False, f"{type(exc).__name__}: {exc}"

    def _finish(self, env: Envelope, outcome: Outcome, detail: str) -> None:
        self._store.delete(env.id)
        self._record(env, outcome, detail)

    def _record(self, env: Envelope, outcome: Outcome, detail: str) -> None:
        record = DeliveryRecord(
            env.id,
            env.user_id,
            env.kind,
            env.request_id,
            outcome,
            env.attempts,
            self.clock.now(),
            detail,
        )
        self.history.append(record)
        if outcome is not Outcome.DELIVERED:
            log.info(
                "%s %s for %s (%s): %s",
                env.kind,
                outcome,
                env.user_id,
                env.request_id or "-",
                detail,
            )
        if self.on_record is not None:
            self.on_record(record)
