"""One way to open the DCC's SQLite queues (pending requests, outbox, schedules).

Why a module: the three stores promise the same thing, that whatever precedes an
acknowledgement survives a killed emulator, so they open their files the same way.
WAL with ``synchronous = NORMAL`` keeps every committed transaction across a crash of
the process (``kill -9``); only a power cut or OS crash may lose the last commits.
``GBHIL_DCC_SYNCHRONOUS=FULL`` (or ``EXTRA``) buys power-loss durability for about a
quarter of a millisecond per commit (measured on the CI machine).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import threading
from typing import Any

log = logging.getLogger(__name__)

#: Environment variable choosing SQLite's ``synchronous`` level for the DCC's queues.
SYNCHRONOUS_ENV = "GBHIL_DCC_SYNCHRONOUS"
SYNCHRONOUS_LEVELS = ("NORMAL", "FULL", "EXTRA")
DEFAULT_SYNCHRONOUS = "NORMAL"
IN_MEMORY = ":memory:"


class StoreError(ValueError):
    """The store cannot be opened as configured."""


def synchronous_level() -> str:
    level = os.environ.get(SYNCHRONOUS_ENV, DEFAULT_SYNCHRONOUS).strip().upper()
    if level not in SYNCHRONOUS_LEVELS:
        raise StoreError(f"{SYNCHRONOUS_ENV}={level!r}: expected one of "
                         f"{', '.join(SYNCHRONOUS_LEVELS)}")
    return level


def open_store(path: str | os.PathLike[str], schema: str) -> sqlite3.Connection:
    """An autocommit connection usable from the outbox's worker thread, schema applied."""
    name = str(path)
    conn = sqlite3.connect(name, isolation_level=None, check_same_thread=False)
    if name != IN_MEMORY:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous_level()}")
    conn.executescript(schema)
    return conn


Statement = tuple[str, tuple[Any, ...]]


class GroupCommit:
    """Writes to one store connection, committed in groups (one fsync for many requests).

    ``write`` queues a statement; everything queued is committed as one transaction soon
    after (on the next loop turn, or at once without a running loop). ``await durable()``
    returns once every statement queued so far is committed: answer only after it. Writes
    queued while a commit is running go into the next one, so concurrent requests share
    a commit. With ``background`` (a file on a real-time loop) the commit runs on a worker
    thread and the loop keeps serving during the fsync; otherwise it runs on the loop
    (a stepped loop must not wait on threads). ``flush()`` commits everything now, in
    order, for writes that must land before something that is not awaited.
    """

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock, *,
                 background: bool = False) -> None:
        self._conn = conn
        self._lock = lock
        self._queued: list[Statement] = []
        self._queued_done: asyncio.Future[None] | None = None
        #: The batch holding the latest write: what ``durable()`` waits for, so a commit
        #: that ran (and failed) before the caller asked still reaches the caller.
        self._last: asyncio.Future[None] | None = None
        self._inflight: concurrent.futures.Future[None] | None = None
        self._scheduled = False
        self._executor = (concurrent.futures.ThreadPoolExecutor(1, "gbhil-store-commit")
                          if background else None)

    def write(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._queued.append((sql, params))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._queued_done is None:
            self._queued_done = self._last = loop.create_future()
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._kick)

    async def durable(self) -> None:
        """Wait until every statement written so far is committed; raise its error if the
        commit failed (even when it ran before this call)."""
        waiter = self._last
        if waiter is None:
            return
        if self._queued:
            self._kick()  # now, not on the next loop turn
        try:
            await asyncio.shield(waiter)
        finally:
            if self._last is waiter and waiter.done():
                self._last = None  # reported: later callers without writes need not wait

    def flush(self) -> None:
        """Commit everything queued now (after any commit already running)."""
        if self._inflight is not None:
            with contextlib.suppress(Exception):  # its waiters get its error
                self._inflight.result()
        batch, done = self._take()
        if not batch:
            return
        try:
            self._commit(batch)
        except BaseException as exc:
            _settle(done, exc)
            raise
        _settle(done, None)

    def _take(self) -> tuple[list[Statement], asyncio.Future[None] | None]:
        batch, done = self._queued, self._queued_done
        self._queued, self._queued_done = [], None
        return batch, done

    def _kick(self) -> None:
        self._scheduled = False
        if not self._queued:
            return
        if self._executor is None:
            try:
                self.flush()
            except Exception as exc:  # the batch's waiters get it from durable()
                log.error("DCC store commit failed: %s", exc)
            return
        if self._inflight is not None:
            return  # the running commit starts the next group when it ends
        batch, done = self._take()
        if done is None:
            done = asyncio.get_running_loop().create_future()
        self._inflight = self._executor.submit(self._commit, batch)
        loop = asyncio.get_running_loop()
        self._inflight.add_done_callback(
            lambda f: loop.call_soon_threadsafe(self._committed, f, done))

    def _committed(self, finished: concurrent.futures.Future[None],
                   done: asyncio.Future[None]) -> None:
        if self._inflight is finished:
            self._inflight = None
        error = finished.exception()
        if error is not None:
            log.error("DCC store commit failed: %s", error)
        _settle(done, error)
        if self._queued:
            self._kick()

    def _commit(self, batch: list[Statement]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in batch:
                    self._conn.execute(sql, params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Commit what is queued and stop the worker thread (even when that commit fails)."""
        try:
            self.flush()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)


def _settle(done: asyncio.Future[None] | None, error: BaseException | None) -> None:
    if done is None or done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.exception()  # retrieved: durable() re-raises it; no "never retrieved" noise
