"""One way to open the DCC's SQLite queues (pending requests, outbox, schedules).

Why a module: the three stores promise the same thing, that whatever precedes an
acknowledgement survives a killed emulator, so they open their files the same way.
WAL with ``synchronous = NORMAL`` keeps every committed transaction across a crash of
the process (``kill -9``); only a power cut or OS crash may lose the last commits.
``GBHIL_DCC_SYNCHRONOUS=FULL`` (or ``EXTRA``) buys power-loss durability for about a
quarter of a millisecond per commit (measured on the CI machine).
"""

from __future__ import annotations

import os
import sqlite3

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
