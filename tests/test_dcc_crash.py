"""Issue 4 "Nothing lost": ``kill -9`` of ``gbhil serve`` under load, then a restart on the
same ``--db``.

Four Users each send a stream of signed requests (device reads answered asynchronously,
DSP future-dated reads held by the DCC, 12.2 pre-notifications that add a device to the
SMI, 8.2 inventory reads) over real HTTP to a ``gbhil serve`` subprocess; the server is
SIGKILLed while requests are in flight and restarted on the same SQLite file. Afterwards:

* the database passes ``PRAGMA integrity_check`` and holds every device a pre-notification
  acknowledged (I99) before the kill, Pending;
* every device request acknowledged with I99 gets exactly one outcome at its User's
  receive URL naming its RequestID: the device's response, or E20/E21/E31 after the
  restart; a redelivery of the very same signed message (the one in flight when the
  process died) is the only repetition allowed (delivery is at-least-once);
* a request refused synchronously gets no outcome, one whose POST died with the server
  at most one, and nothing arrives for a RequestID that was never sent;
* replaying an acknowledged request after the restart is refused, not run twice.

Every wait is for a condition, with generous limits; nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import json
import os
import sqlite3
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.cli_dcc import command_variant_of, prepare_request, service_path
from gbhil.dcc.endpoint import ReceiveEndpoint
from gbhil.dcc.inventory import DeviceStatus, Inventory
from gbhil.duis.model import RequestID, Response, format_datetime, parse_response
from gbhil.duis.xmldsig import certificate_resolver, sign, verify
from tests.conftest import ROOT
from tests.test_dcc_processing import TEMPLATES, edit, requires_conformance

pytestmark = requires_conformance

ESME = "00-DB-12-34-56-78-90-A0"
#: Users of ``gbhil serve`` that take part, and what each sends in turn.
PLAN: dict[str, tuple[str, ...]] = {
    "supplier": ("read", "future", "prenotify", "inventory"),
    "network_operator": ("read", "prenotify", "inventory"),
    "other_user": ("prenotify", "inventory"),
    "supplier2": ("prenotify",),
}
KINDS = frozenset(k for kinds in PLAN.values() for k in kinds)
#: Codes that close an acknowledged device request without a device response.
FAILURE_CODES = frozenset({"E20", "E21", "E31"})
#: Kill once this many device requests were acknowledged (some still in flight).
KILL_AFTER_DEVICE_ACKS = 10
KILL_AFTER_PRENOTIFY_ACKS = 6
#: Generous limits for conditions (seconds); none of them is an assertion on speed.
START_LIMIT_S = 180.0
OUTCOME_LIMIT_S = 240.0
#: How far ahead the DSP future-dated reads are due (so the kill finds some held).
FUTURE_DELAY_S = 3.0


def _key(path: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@dataclass(slots=True)
class Sent:
    """One request and what its synchronous answer said."""

    user: str
    kind: str
    request_id: RequestID
    signed: bytes
    #: "ack" (I99 from a device request), "done" (sync I0/I99 of a non-device request),
    #: "refused" (any other code), "lost" (the POST died with the server).
    answer: str = "lost"
    code: str | None = None
    device_id: str | None = None


@dataclass(slots=True)
class Load:
    """The User streams (see :data:`PLAN`)."""

    ready: dict[str, Any]
    counters: itertools.count[int] = field(
        default_factory=lambda: itertools.count(time.time_ns() // 1_000_000))
    eui_numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    sent: list[Sent] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def user(self, name: str) -> dict[str, Any]:
        return next(u for u in self.ready["users"] if u["name"] == name)

    def build(self, name: str, kind: str) -> tuple[bytes, str | None]:
        user = self.user(name)
        counter = next(self.counters)
        device_id = None
        if kind == "read":
            xml = prepare_request((TEMPLATES / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML")
                                  .read_bytes(), user=user["id"], counter=counter)
        elif kind == "future":
            due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=FUTURE_DELAY_S)
            xml = prepare_request((TEMPLATES / "ECS17b_4.1.1_DSP_FUTURE_DATED_REQUEST_DUIS.XML")
                                  .read_bytes(), user=user["id"], counter=counter)
            xml = edit(xml, body="<sr:ReadInstantaneousImportRegisters><sr:ExecutionDateTime>"
                       f"{format_datetime(due)}</sr:ExecutionDateTime>"
                       "</sr:ReadInstantaneousImportRegisters>")
        elif kind == "prenotify":
            number = next(self.eui_numbers)
            device_id = f"00-DB-12-34-56-79-{number >> 8:02X}-{number & 0xFF:02X}"
            xml = prepare_request((TEMPLATES / "12.2_DEVICE_PRE_NOTIFICATION_REQUEST_DUIS.XML")
                                  .read_bytes(), user=user["id"], counter=counter)
            xml = edit(xml, body=(
                f"<sr:DevicePrenotification><sr:DeviceID>{device_id}</sr:DeviceID>"
                "<sr:DeviceManufacturer>GBH1</sr:DeviceManufacturer>"
                "<sr:DeviceModel>CH-1</sr:DeviceModel><sr:DeviceType>CHF</sr:DeviceType>"
                "<sr:SMETSCHTSVersion>SMETS V5</sr:SMETSCHTSVersion>"
                "<sr:FirmwareVersion>01000000</sr:FirmwareVersion></sr:DevicePrenotification>"))
        else:
            xml = prepare_request((TEMPLATES / "8.2_READ_INVENTORY_REQUEST_DUIS.XML")
                                  .read_bytes(), user=user["id"], counter=counter)
        return xml, device_id

    def sign(self, name: str, xml: bytes) -> bytes:
        user = self.user(name)
        cert = x509.load_pem_x509_certificate(Path(user["certificate"]).read_bytes())
        return sign(xml, _key(user["key"]), cert)

    def count(self, answer: str, kinds: tuple[str, ...]) -> int:
        return sum(1 for s in self.sent if s.answer == answer and s.kind in kinds)

    async def stream(self, session: aiohttp.ClientSession, name: str) -> None:
        """One User's requests, one at a time (its counters must arrive in order)."""
        for kind in itertools.cycle(PLAN[name]):
            if self.stop.is_set():
                return
            xml, device_id = self.build(name, kind)
            signed = self.sign(name, xml)
            item = Sent(name, kind, RequestID.parse(_request_id(xml)), signed,
                        device_id=device_id)
            self.sent.append(item)
            url = self.ready["duis"] + service_path(command_variant_of(xml))
            try:
                async with session.post(url, data=signed,
                                        headers={"Content-Type": "application/xml"}) as reply:
                    body = await reply.read()
                    status = reply.status
            except (aiohttp.ClientError, OSError):
                return  # the server died under this request
            if status != 200:
                item.answer, item.code = "refused", f"HTTP {status}"
                continue
            code = parse_response(body).header.response_code
            item.code = code
            if kind in ("read", "future"):
                item.answer = "ack" if code == "I99" else "refused"
            else:
                item.answer = "done" if code in ("I0", "I99") else "refused"


def _request_id(xml: bytes) -> str:
    from gbhil.cli_dcc import request_id_of

    return str(request_id_of(xml))


async def _serve(db: Path, work: Path, receive: dict[str, str]
                 ) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    args = [sys.executable, "-m", "gbhil.cli", "serve", "--port", "0", "--smki-port", "0",
            "--db", str(db), "--work-dir", str(work)]
    for name, url in receive.items():
        args += ["--receive-url", f"{name}={url}"]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), START_LIMIT_S)
    assert line, f"gbhil serve exited with {await proc.wait()} before it was ready"
    return proc, json.loads(line)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _outcomes(receivers: dict[str, ReceiveEndpoint],
              dcc_cert: x509.Certificate) -> dict[RequestID, list[tuple[bytes, Response]]]:
    """Every received message that names a RequestID, signature checked, by RequestID."""
    resolver = certificate_resolver([dcc_cert])
    out: dict[RequestID, list[tuple[bytes, Response]]] = defaultdict(list)
    for receiver in receivers.values():
        for raw in receiver.messages:
            response = parse_response(raw)
            verify(raw, resolver, at=response.header.response_date_time)
            if response.header.request_id is not None:
                out[response.header.request_id].append((raw, response))
    return out


async def _until(condition: Callable[[], bool], limit: float = OUTCOME_LIMIT_S) -> None:
    """Wait for ``condition`` (messages reach several receivers, so poll them all)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            while not condition():
                await asyncio.sleep(0.1)


async def _scenario(tmp_path: Path) -> None:
    db, work = tmp_path / "dcc.sqlite", tmp_path / "work"
    receivers = {name: ReceiveEndpoint(path=f"/rrs/{name}") for name in PLAN}
    for receiver in receivers.values():
        await receiver.start()
    urls = {name: r.url for name, r in receivers.items()}
    proc, ready = await _serve(db, work, urls)
    dcc_cert = x509.load_pem_x509_certificate(Path(ready["dcc"]["certificate"]).read_bytes())
    load = Load(ready)
    restarted: asyncio.subprocess.Process | None = None
    try:
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            streams = [asyncio.create_task(load.stream(session, name)) for name in PLAN]

            def loaded() -> bool:
                return (load.count("ack", ("read", "future")) >= KILL_AFTER_DEVICE_ACKS
                        and load.count("done", ("prenotify",)) >= KILL_AFTER_PRENOTIFY_ACKS)

            async with asyncio.timeout(START_LIMIT_S):
                while not loaded():
                    await asyncio.sleep(0.02)
            proc.kill()  # SIGKILL with requests in flight
            await proc.wait()
            load.stop.set()
            await asyncio.gather(*streams)

        acked = [s for s in load.sent if s.answer == "ack"]
        assert any(s.kind == "future" for s in acked)
        restarted, ready2 = await _serve(db, work, urls)
        acked_ids = {s.request_id for s in acked}

        await _until(lambda: acked_ids <= set(_outcomes(receivers, dcc_cert)))
        outcomes = _outcomes(receivers, dcc_cert)
        missing = sorted(str(s.request_id) for s in acked if s.request_id not in outcomes)
        assert not missing, f"acknowledged requests never answered: {missing}"
        for item in acked:
            got = outcomes[item.request_id]
            distinct = {raw for raw, _ in got}
            assert len(distinct) == 1, (item.request_id, [r.header.response_code
                                                          for _, r in got])
            code = got[0][1].header.response_code
            assert code == "I0" or code in FAILURE_CODES, (item.request_id, code)
        sent_ids = {s.request_id for s in load.sent}
        assert set(outcomes) <= sent_ids, "an outcome for a RequestID nobody sent"
        for item in load.sent:
            got = outcomes.get(item.request_id, [])
            if item.answer in ("refused", "done"):
                assert not got, (item.request_id, item.answer, item.code)
            if item.answer == "lost":
                assert len({raw for raw, _ in got}) <= 1
        repeated = sum(len(v) - 1 for v in outcomes.values())
        codes = Counter(v[0][1].header.response_code for v in outcomes.values())
        print(f"sent {len(load.sent)}, acknowledged {len(acked)} device requests "
              f"({sum(s.kind == 'future' for s in acked)} DSP future-dated), "
              f"{load.count('done', ('prenotify',))} pre-notifications, "
              f"{load.count('lost', tuple(KINDS))} lost with the server; outcomes "
              f"{dict(codes)}, {repeated} redelivered")
        assert repeated <= len(PLAN), "only a message in flight at the kill may come twice"

        # The service carries on, and an acknowledged request replayed is not run again.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            first = acked[0]
            url = ready2["duis"] + service_path(command_variant_of(first.signed))
            async with session.post(url, data=first.signed,
                                    headers={"Content-Type": "application/xml"}) as reply:
                assert reply.status == 200
                replay = parse_response(await reply.read()).header.response_code
            assert replay in ("E55", "E100")
            xml = prepare_request((TEMPLATES / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML").read_bytes(),
                                  user=load.user("supplier")["id"],
                                  counter=time.time_ns() // 1_000_000 + 10_000_000)
            fresh = RequestID.parse(_request_id(xml))
            async with session.post(url, data=load.sign("supplier", xml),
                                    headers={"Content-Type": "application/xml"}) as reply:
                assert parse_response(await reply.read()).header.response_code == "I99"
        await _until(lambda: fresh in _outcomes(receivers, dcc_cert))
        assert _outcomes(receivers, dcc_cert)[fresh][0][1].header.response_code == "I0"
        assert len(_outcomes(receivers, dcc_cert)[first.request_id]) == len(
            outcomes[first.request_id])
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if restarted is not None:
            await _stop(restarted)
        for receiver in receivers.values():
            await receiver.stop()

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    inventory = Inventory(db, now=lambda: dt.datetime.now(dt.UTC))
    try:
        for item in load.sent:
            if item.kind == "prenotify" and item.answer == "done":
                assert item.device_id is not None
                device = inventory.find(item.device_id)
                assert device is not None, f"{item.device_id} acknowledged, then lost"
                assert device.status is DeviceStatus.PENDING
        assert inventory.find(ESME) is not None
    finally:
        inventory.close()


def test_kill_9_under_load_loses_nothing(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path))
