"""The DCC's group commit (gbhil.dcc.store.GroupCommit): an answer goes only after its
writes are on disk, and a failed commit reaches the request that waits for it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from gbhil.dcc.store import GroupCommit, open_store

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


def _rows(db: Path) -> list[tuple[str, int]]:
    """Through a second connection: only what is committed is visible."""
    conn = sqlite3.connect(db)
    try:
        return sorted(conn.execute("SELECT k, v FROM t").fetchall())
    finally:
        conn.close()


@pytest.fixture(params=[False, True], ids=["on-loop", "worker-thread"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[GroupCommit, Path]:
    db = tmp_path / "dcc.sqlite"
    commits = GroupCommit(open_store(db, SCHEMA), threading.Lock(), background=request.param)
    request.addfinalizer(commits.close)
    return commits, db


def test_concurrent_writers_are_durable_when_durable_returns(
        store: tuple[GroupCommit, Path]) -> None:
    commits, db = store

    async def request(n: int) -> list[tuple[str, int]]:
        commits.write("INSERT INTO t VALUES (?, ?)", (f"r{n}", n))
        await asyncio.sleep(0)  # other requests write meanwhile
        await commits.durable()
        return _rows(db)

    async def main() -> list[list[tuple[str, int]]]:
        return list(await asyncio.gather(*(request(n) for n in range(20))))

    for n, seen in enumerate(asyncio.run(main())):
        assert (f"r{n}", n) in seen, "committed before durable() returned"


def test_a_commit_that_failed_before_durable_was_called_is_still_raised(
        store: tuple[GroupCommit, Path]) -> None:
    commits, db = store

    async def main() -> None:
        commits.write("INSERT INTO t VALUES (?, ?)", ("ok", 1))
        commits.write("INSERT INTO t VALUES (?, ?)", ("ok", 2))  # primary key clash
        for _ in range(50):  # let the scheduled commit run (and, threaded, finish)
            await asyncio.sleep(0.01)
        with pytest.raises(sqlite3.IntegrityError):
            await commits.durable()
        await commits.durable()  # reported once: nothing is pending any more
        commits.write("INSERT INTO t VALUES (?, ?)", ("after", 3))
        await commits.durable()

    asyncio.run(main())
    assert _rows(db) == [("after", 3)], "the failed batch left nothing behind"


def test_writes_without_a_loop_commit_at_once(tmp_path: Path) -> None:
    db = tmp_path / "dcc.sqlite"
    commits = GroupCommit(open_store(db, SCHEMA), threading.Lock())
    try:
        commits.write("INSERT INTO t VALUES (?, ?)", ("sync", 1))
        assert _rows(db) == [("sync", 1)]
        with pytest.raises(sqlite3.IntegrityError):
            commits.write("INSERT INTO t VALUES (?, ?)", ("sync", 2))
    finally:
        commits.close()
