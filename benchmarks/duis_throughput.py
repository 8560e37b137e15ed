"""Signed DUIS requests per second, end to end through the simulated rig, crypto on.

Each request goes the whole way the pytest plugin's ``dcc`` fixture sends it: the User
signs the DUIS XML (XML-DSig, role-135 key), the in-process DCC emulator
(:mod:`gbhil.dcc.emulator`, no HTTP) checks schema, signature, User, role and SMI,
transforms it to GBCS, the ACB MACs it, the SM WAN and simulated HAN carry it to the
simulated ESME, which verifies the MAC and answers; the DCC turns the answer into a DUIS
response signed with its own XML key and delivers it to the User's in-process receive
sink, which schema-checks and models it. The acknowledgement is durable (SQLite commit)
before the I99 comes back.

Requests cycle through a mix of ESME read SRVs (``--srv``, default: 4.1.1 Read
Instantaneous Import Registers, 4.16 Read Active Power Import, 6.2.7 Read Device
Configuration (MPxN), 7.4 Read Supply Status, 11.2 Read Firmware Version).

Printed: CPU count; end-to-end requests/s (submit -> DUIS response at the User's sink)
with p50/p99 latency; acknowledgements/s (submit -> I99, back to back, the commands still
running on the rig's loop); then a per-stage breakdown from a separate instrumented pass
(exclusive wall time per stage, so the rows add up to the total). The rig's clock is
virtual, so HAN air time and device delays cost no wall time.

``--processes N`` adds one more line: N independent rigs (each its own DCC emulator,
SQLite files and devices; nothing shared) run in parallel processes, aggregated. That is
the machine's capacity for separate simulations, not the throughput of one DCC.

Run: .venv/bin/python benchmarks/duis_throughput.py [--requests N] [--srv 4.1.1,11.2]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import itertools
import multiprocessing
import multiprocessing.connection
import os
import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gbhil.dcc.mapping import service_variant
from gbhil.gbcs.message import inspect_message
from gbhil.gbcs.security import Check
from gbhil.pytest_plugin.plugin import DccClient, Submission
from gbhil.rigs.simulated import DEVICES, SimulatedRig
from gbhil.simulator import RealTimeClock

ESME = DEVICES["esme"][0]

#: ESME reads the simulated meter answers with I0 from an empty body.
DEFAULT_MIX = ("4.1.1", "4.16", "6.2.7", "7.4", "11.2")


def build(seed: int, store: str | None = None) -> tuple[SimulatedRig, DccClient]:
    """The rig and the fixture's DCC client; ``store`` puts the DCC's outbox and pending
    store in that SQLite file (WAL, synchronous FULL: each I99 waits for its fsync)
    instead of the fixture's in-memory database."""
    rig = SimulatedRig.build(seed=seed)
    rig.run(rig.start())  # devices join the HAN with install codes
    if store is None:
        dcc = DccClient(rig, lambda: None)  # no transcript: measure gbhil, not logging
    else:
        from gbhil.dcc import emulator

        fixture_config = emulator.EmulatorConfig
        emulator.EmulatorConfig = functools.partial(  # type: ignore[misc]
            fixture_config, store_path=store)
        try:
            dcc = DccClient(rig, lambda: None)
        finally:
            emulator.EmulatorConfig = fixture_config  # type: ignore[misc]
    rig.on_wan, rig.on_power = dcc.on_wan, dcc.on_power
    return rig, dcc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(name: str, latencies: list[float], elapsed: float) -> None:
    ms = [v * 1000 for v in latencies]
    print(
        f"{name:<24} {len(ms):6d} req  {len(ms) / elapsed:8.1f} req/s  "
        f"p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
        f"mean {statistics.fmean(ms):7.2f} ms"
    )


def check(sub: Submission) -> None:
    code = sub.ack.header.response_code if sub.ack is not None else f"HTTP {sub.http_status}"
    if code != "I99":
        raise SystemExit(f"{sub}: acknowledged {code}, expected I99")


def one(dcc: DccClient, srv: str) -> tuple[float, float]:
    """One request end to end; (ack latency, response latency) in seconds. The response
    time includes the User checking the device's GBCS response MAC."""
    request = dcc.request(srv, ESME)
    t0 = time.perf_counter()
    sub = dcc.submit(request)
    t1 = time.perf_counter()
    response = sub.await_response()
    verify_device_mac(dcc, response)
    t2 = time.perf_counter()
    check(sub)
    if response.header.response_code != "I0":
        raise SystemExit(f"{sub}: response {response.header.response_code}, expected I0")
    return t1 - t0, t2 - t0


_USER_CONTEXTS: dict[int, tuple[DccClient, Any]] = {}


def user_context(dcc: DccClient) -> Any:
    """One security context (keys + ECDH cache) per rig, as a User keeps one; the rig's
    ``dcc`` property builds a fresh one, with an empty ECDH cache, on every access."""
    found = _USER_CONTEXTS.get(id(dcc))
    if found is None or found[0] is not dcc:
        found = (dcc, dcc._rig.dcc)
        _USER_CONTEXTS[id(dcc)] = found
    return found[1]


def verify_device_mac(dcc: DccClient, response: Any) -> None:
    """What a User does with a device response: check its GBCS MAC (rig keys)."""
    payload = getattr(response.body, "gbcs_payload", None)
    if payload is None:
        raise SystemExit(f"{response.header.request_id}: response carries no GBCS payload")
    mac = inspect_message(payload, user_context(dcc)).mac
    if mac is not Check.VERIFIED:
        raise SystemExit(f"{response.header.request_id}: device response MAC {mac.value}")


def end_to_end(dcc: DccClient, mix: Iterator[str], n: int) -> None:
    acks: list[float] = []
    total: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        ack, whole = one(dcc, next(mix))
        acks.append(ack)
        total.append(whole)
    elapsed = time.perf_counter() - start
    report("end-to-end (I0)", total, elapsed)
    report("  of which ack (I99)", acks, sum(acks))


def ack_only(dcc: DccClient, mix: Iterator[str], n: int) -> None:
    subs: list[Submission] = []
    acks: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        request = dcc.request(next(mix), ESME)
        t0 = time.perf_counter()
        sub = dcc.submit(request)
        acks.append(time.perf_counter() - t0)
        check(sub)
        subs.append(sub)
    elapsed = time.perf_counter() - start
    report("acknowledgements (I99)", acks, elapsed)
    t0 = time.perf_counter()
    done = 0
    for sub in subs:
        response = sub.await_response()
        verify_device_mac(dcc, response)
        done += response.header.response_code == "I0"
    print(f"  drained {done}/{n} I0 responses in {time.perf_counter() - t0:.2f} s (untimed)")


# --- per-stage breakdown -----------------------------------------------------------------


class Stages:
    """Exclusive wall time per stage: a stage's own time, minus the stages it calls."""

    def __init__(self) -> None:
        self.own: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [stage, start, time spent in inner stages]

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [stage, time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - frame[1]
                self.own[stage] += spent - frame[2]
                self.calls[stage] += 1
                if self._stack:
                    self._stack[-1][2] += spent

        return timed


def _targets() -> list[tuple[str, Any, str]]:
    """(stage, owner, attribute): the synchronous functions each stage is made of."""
    from gbhil.dcc import inventory, inventory_requests, processing, users
    from gbhil.devices import core
    from gbhil.duis import model, schema
    from gbhil.gbcs import frame, message, security
    from gbhil.han import medium
    from gbhil.pytest_plugin import plugin

    return [
        ("client: build request XML", plugin.DccClient, "request"),
        ("client: build request XML", plugin, "request_xml"),
        ("client: build request XML", plugin, "_without_signature"),
        ("XML-DSig sign (request, I99, response)", users, "sign"),
        ("XML-DSig verify (request)", processing, "verify"),
        ("XSD parse+validate (request, response)", schema.DuisSchema, "parse"),
        ("DUIS model <-> XML", model.Request, "from_element"),
        ("DUIS model <-> XML", model.Response, "from_element"),
        ("DUIS model <-> XML", model.Response, "to_element"),
        ("DUIS model <-> XML", model.RequestHeader, "from_element"),
        ("DCC transform DUIS -> GBCS", processing, "transform"),
        ("DCC GBCS -> DUIS response", processing, "gbcs_response"),
        ("DCC GBCS -> DUIS response", processing, "response_outcome"),
        ("DCC access control (User, role, SMI, CPL)", processing.DccProcessor, "_check_replay"),
        ("DCC access control (User, role, SMI, CPL)", processing.DccProcessor, "_check_service"),
        ("DCC access control (User, role, SMI, CPL)", processing.DccProcessor, "_authorised"),
        ("DCC access control (User, role, SMI, CPL)", processing, "signer_problem"),
        ("DCC access control (User, role, SMI, CPL)", inventory_requests.InventoryService,
         "gbcs_problem"),
        ("DCC after-response SMI bookkeeping", processing.DccProcessor, "_after_response"),
        ("SMI + pending store (SQLite)", inventory.SqliteStore, "_rows"),
        ("SMI + pending store (SQLite)", processing._PendingStore, "add"),
        ("SMI + pending store (SQLite)", processing._PendingStore, "remove"),
        ("GBCS MAC (AES-GCM) + ECDH/KDF", security, "compute_mac"),
        ("GBCS MAC (AES-GCM) + ECDH/KDF", security, "verify_mac"),
        ("GBCS MAC (AES-GCM) + ECDH/KDF", security.SecurityContext, "shared_secret"),
        ("GBCS decode (cache misses)", frame, "_decode_frame"),
        ("GBCS decode (cache misses)", message, "decode_payload"),
        ("device (ESME) processing", core.Device, "receive"),
        ("HAN medium", medium.SimulatedMedium, "transmit"),
    ]


def breakdown(dcc: DccClient, mix: Iterator[str], n: int) -> None:
    stages = Stages()
    saved = []
    for stage, owner, name in _targets():
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        saved.append((owner, name, original))
        if isinstance(original, classmethod | staticmethod):
            timed = type(original)(stages.wrap(stage, original.__func__))
        else:
            timed = stages.wrap(stage, original)
        setattr(owner, name, timed)
    try:
        start = time.perf_counter()
        for _ in range(n):
            one(dcc, next(mix))
        elapsed = time.perf_counter() - start
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
    accounted = sum(stages.own.values())
    rows = sorted(stages.own.items(), key=lambda kv: -kv[1])
    rows.append(("other: asyncio loop, routing, HAN/tunnel glue", elapsed - accounted))
    print(f"per-stage breakdown, {n} requests instrumented ({elapsed / n * 1e6:.0f} us each"
          " with timers on):")
    for stage, spent in rows:
        print(f"  {stage:<48} {spent / n * 1e6:7.0f} us/req  {100 * spent / elapsed:5.1f} %")


def _rig_worker(seed: int, srvs: list[str], n: int, warmup: int,
                conn: multiprocessing.connection.Connection) -> None:
    """One whole rig (its own DCC, SQLite, devices and HAN) in this process."""
    rig, dcc = build(seed)
    mix = itertools.cycle(srvs)
    try:
        for _ in range(warmup):
            one(dcc, next(mix))
        conn.recv()  # start together
        start = time.perf_counter()
        total = [one(dcc, next(mix))[1] for _ in range(n)]
        conn.send((total, time.perf_counter() - start))
    finally:
        dcc.close()
        rig.close()


def independent_rigs(processes: int, seed: int, srvs: list[str], n: int, warmup: int) -> None:
    """Aggregate of several *independent* rigs, one per process (nothing shared: this is
    the machine's capacity for separate simulations, not one DCC's throughput)."""
    ctx = multiprocessing.get_context("fork")
    pipes, workers = [], []
    for i in range(processes):
        parent, child = ctx.Pipe()
        worker = ctx.Process(target=_rig_worker, args=(seed + i, srvs, n, warmup, child))
        worker.start()
        pipes.append(parent)
        workers.append(worker)
    for parent in pipes:
        parent.send("go")
    results = [parent.recv() for parent in pipes]
    for worker in workers:
        worker.join()
    latencies = [v for total, _ in results for v in total]
    elapsed = max(e for _, e in results)
    report(f"{processes} independent rigs", latencies, elapsed)


def crypto_check(rig: SimulatedRig, dcc: DccClient, srv: str) -> None:
    """The protections were really there: the command carried a valid ACB MAC."""
    sub = dcc.submit(dcc.request(srv, ESME))
    sub.await_response()
    assert sub.command is not None, "the DCC sent no GBCS command"
    ins = inspect_message(sub.command, rig.dcc)
    print(f"check: GBCS command {ins.to_json()['shape']}, ACB MAC {ins.mac.value}")
    if ins.mac is not Check.VERIFIED:
        raise SystemExit("the command's ACB MAC did not verify")


# --- over HTTP: the emulator serving DUIS, the User in another process ------------------------

#: Users whose streams the HTTP client runs (each sends its requests one after another:
#: the DCC refuses a counter that does not exceed the last one it saw from that User).
HTTP_USERS = ("supplier", "network_operator")
RESPONSE_CODE = re.compile(rb"<(?:\w+:)?ResponseCode>([^<]+)</")
REQUEST_ID = re.compile(rb"<(?:\w+:)?RequestID>([^<]+)</")


@dataclass(frozen=True, slots=True)
class Signed:
    """One pre-signed request for the HTTP client: where it goes and its RequestID."""

    path: str
    request_id: str
    body: bytes


@dataclass(slots=True)
class HttpResult:
    """What the client process measured (wall clock, its own process)."""

    sent: dict[str, float]
    acked: dict[str, float]
    answered: dict[str, float]
    ack_codes: dict[str, str]
    bodies: dict[str, bytes]
    start: float
    end: float
    cpu: float


def signed_request(users: Any, user: str, srv: str, counter: int) -> Signed:
    """A DUIS read of the ESME, signed as ``user`` (XML-DSig, its role-135 key)."""
    from lxml import etree

    from gbhil.duis.model import CommandVariant, Request, RequestHeader, RequestID, format_eui
    from gbhil.duis.schema import SR_NS
    from gbhil.pytest_plugin.plugin import request_xml

    sv = service_variant(srv)
    if sv is None:
        raise SystemExit(f"{srv} is not a DUIS Service Reference Variant")
    signer = users[user]
    rid = RequestID(signer.user_id, format_eui(ESME), counter)
    header = RequestHeader(rid, CommandVariant.SEND, sv.service_reference, srv)
    body = etree.Element(f"{{{SR_NS}}}{sv.body}", nsmap={"sr": SR_NS})
    xml = request_xml(Request(header, body))
    path = header.command_variant.info.web_service.path
    return Signed(path, str(rid), signer.sign(xml))


def _http_client(conn: multiprocessing.connection.Connection) -> None:
    """The Users' side, in its own process: a receive URL server and one keep-alive
    stream per User POSTing pre-signed requests; timestamps only, checks come later."""
    asyncio.run(_client_main(conn))


async def _client_main(conn: multiprocessing.connection.Connection) -> None:
    import aiohttp
    from aiohttp import web

    loop = asyncio.get_running_loop()
    answered: dict[str, float] = {}
    bodies: dict[str, bytes] = {}
    waiting: dict[str, asyncio.Future[None]] = {}

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.perf_counter()
        found = REQUEST_ID.search(body)
        if found is not None:
            rid = found.group(1).decode()
            answered[rid] = now
            bodies[rid] = body
            future = waiting.get(rid)
            if future is not None and not future.done():
                future.set_result(None)
        return web.Response(status=204)

    app = web.Application(client_max_size=1 << 24)
    app.router.add_post("/smartdcc/duis", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    conn.send(f"http://127.0.0.1:{port}/smartdcc/duis")

    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message is None:
            break
        base, streams = message
        sent: dict[str, float] = {}
        acked: dict[str, float] = {}
        codes: dict[str, str] = {}
        for rid in (s.request_id for stream in streams for s in stream):
            waiting[rid] = loop.create_future()
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(base, connector=connector) as session:

            start = time.perf_counter()
            cpu = time.process_time()
            await asyncio.gather(*(_stream(session, stream, sent, acked, codes)
                                   for stream in streams))
            await asyncio.wait_for(asyncio.gather(*(waiting[rid] for rid in sent)),
                                   timeout=120)
            end = time.perf_counter()
        waiting.clear()
        conn.send(HttpResult(sent, acked, {r: answered[r] for r in sent}, codes,
                             {r: bodies[r] for r in sent}, start, end,
                             time.process_time() - cpu))
    await runner.cleanup()


async def _stream(session: Any, stream: list[Signed], sent: dict[str, float],
                  acked: dict[str, float], codes: dict[str, str]) -> None:
    """One User's requests in order, each after the previous one's synchronous answer."""
    for item in stream:
        sent[item.request_id] = time.perf_counter()
        async with session.post(item.path, data=item.body,
                                headers={"Content-Type": "application/xml"}) as reply:
            answer = await reply.read()
        acked[item.request_id] = time.perf_counter()
        found = RESPONSE_CODE.search(answer)
        codes[item.request_id] = found.group(1).decode() if found else f"HTTP {reply.status}"


class ScaledClock(RealTimeClock):
    """Wall-clock time running ``rate`` times faster: HAN airtime and device delays cost
    1/rate of their real duration. One 2.4 GHz HAN carries only ~140 reads/s at real
    speed (airtime), which would hide the DCC's own cost; the HTTP side (aiohttp
    timeouts, sockets) stays on the real clock."""

    def __init__(self, rate: float) -> None:
        super().__init__(dt.datetime.now(dt.UTC))
        self.rate = rate

    def monotonic(self) -> float:
        return (time.monotonic() - self._origin) * self.rate

    def _schedule(self, handle: Any) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, handle.when - self.monotonic()) / self.rate
        self._handles[handle] = loop.call_later(delay, self._fire, handle)


class HttpBench:
    """The emulator in this process (``gbhil serve``'s wiring: real-time rig, aiohttp
    DUIS endpoint, outbox POSTing to the receive URL); the client in a forked one."""

    def __init__(self, seed: int, store: str | None, han_speed: float) -> None:
        from gbhil.dcc.emulator import EmulatorConfig, default_emulator

        ctx = multiprocessing.get_context("fork")
        self.pipe, child = ctx.Pipe()
        # fork before the rig and its loop exist: the client starts from a clean slate
        self.client = ctx.Process(target=_http_client, args=(child,), daemon=True)
        self.client.start()
        clock = RealTimeClock() if han_speed == 1 else ScaledClock(han_speed)
        self.rig = SimulatedRig.build(clock=clock, seed=seed)
        if self.rig._loop is None:  # as gbhil serve's build_rig does
            self.rig._loop = asyncio.new_event_loop()
        self.rig.run(self.rig.start())
        config = EmulatorConfig(duis_port=0, smki_port=None, store_path=store or ":memory:")
        self.emulator = default_emulator(self.rig, config=config)
        self.rig.run(self.emulator.start())
        receive_url = self.pipe.recv()
        for name in HTTP_USERS:
            user = self.emulator.users[name]
            self.emulator.users.update(user.user_id, receive_url=receive_url)
        self.counter = itertools.count(int(time.time() * 1000))

    def streams(self, mix: Iterator[str], n: int) -> list[list[Signed]]:
        """``n`` requests shared round robin between the Users' streams, signed now."""
        per_user: list[list[Signed]] = [[] for _ in HTTP_USERS]
        for i in range(n):
            slot = i % len(HTTP_USERS)
            per_user[slot].append(signed_request(self.emulator.users, HTTP_USERS[slot],
                                                 next(mix), next(self.counter)))
        return per_user

    def run(self, streams: list[list[Signed]], profile: Any = None) -> HttpResult:
        """Serve until the client has every response; ``profile`` wraps the serving."""
        assert self.emulator.duis_url is not None
        self.pipe.send((self.emulator.duis_url, streams))
        if profile is not None:
            profile.enable()
        cpu = time.process_time()
        try:
            result: HttpResult = self.rig.run(self._wait())
        finally:
            if profile is not None:
                profile.disable()
        self.cpu = time.process_time() - cpu
        return result

    async def _wait(self) -> HttpResult:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.pipe.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(fd)
        return self.pipe.recv()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.pipe.send(None)
        self.client.join(timeout=10)
        self.rig.run(self.emulator.stop())
        self.rig.close()


def verify_http(bench: HttpBench, result: HttpResult) -> None:
    """What a User does with what arrived (untimed): schema-check and model the DUIS
    response, verify the DCC's XML signature, then the device's GBCS MAC."""
    from gbhil.duis.model import parse_response
    from gbhil.duis.xmldsig import certificate_resolver, verify

    resolve = certificate_resolver([bench.emulator.users.dcc.certificate])
    context = bench.rig.dcc
    for rid, code in result.ack_codes.items():
        if code != "I99":
            raise SystemExit(f"{rid}: acknowledged {code}, expected I99")
    for rid, body in result.bodies.items():
        verify(body, resolve, at=bench.rig.clock.now())
        response = parse_response(body)
        if response.header.response_code != "I0":
            raise SystemExit(f"{rid}: response {response.header.response_code}, expected I0")
        payload = getattr(response.body, "gbcs_payload", None)
        if payload is None or inspect_message(payload, context).mac is not Check.VERIFIED:
            raise SystemExit(f"{rid}: device response MAC not verified")


def http_report(result: HttpResult) -> None:
    rids = list(result.sent)
    elapsed = result.end - result.start
    total = [result.answered[r] - result.sent[r] for r in rids]
    acks = [result.acked[r] - result.sent[r] for r in rids]
    report("end-to-end (I0 at URL)", total, elapsed)
    last_ack = max(result.acked.values()) - result.start
    report("  acknowledgements (I99)", acks, last_ack)


def http_mode(args: argparse.Namespace, srvs: list[str]) -> None:
    mix = itertools.cycle(srvs)
    t0 = time.perf_counter()
    bench = HttpBench(args.seed, args.store, args.han_speed)
    speed = "real time" if args.han_speed == 1 else f"real time x{args.han_speed:g}"
    print(f"[http] emulator on {bench.emulator.duis_url} (rig clock {speed}, aiohttp DUIS "
          f"endpoint, outbox POSTs to the client's receive URL); client process "
          f"pid {bench.client.pid}, {len(HTTP_USERS)} User streams "
          f"({', '.join(HTTP_USERS)}), keep-alive; built in {time.perf_counter() - t0:.2f} s;"
          f" stores: {args.store or 'in memory'}")
    try:
        warm = bench.run(bench.streams(mix, args.warmup))
        verify_http(bench, warm)
        streams = bench.streams(mix, args.requests)
        profile = None
        if args.profile_emulator:
            import cProfile

            profile = cProfile.Profile()
        result = bench.run(streams, profile)
        http_report(result)
        print(f"  emulator process CPU {bench.cpu:.2f} s over {result.end - result.start:.2f} s"
              f" ({1e6 * bench.cpu / len(result.sent):.0f} us/request); client process CPU"
              f" {result.cpu:.2f} s")
        t0 = time.perf_counter()
        verify_http(bench, result)
        print(f"  checked {len(result.bodies)} responses as a User (XSD, DCC XML-DSig, "
              f"device GBCS MAC) in {time.perf_counter() - t0:.2f} s (untimed)")
        if profile is not None:
            import pstats

            print("[http] emulator process profile (top by own time):")
            stats = pstats.Stats(profile)
            stats.sort_stats("tottime").print_stats(args.profile_emulator)
            stats.sort_stats("cumulative").print_stats(args.profile_emulator)
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per scenario")
    parser.add_argument("--srv", default=",".join(DEFAULT_MIX),
                        help="comma-separated DUIS SRVs sent to the ESME in turn")
    parser.add_argument("--seed", type=int, default=1, help="rig PKI seed")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests first")
    parser.add_argument("--profile", type=int, default=500,
                        help="requests in the instrumented breakdown pass (0: skip)")
    parser.add_argument("--store", default=None,
                        help="SQLite file for the DCC's durable stores (default: in memory, "
                        "as the pytest fixture runs)")
    parser.add_argument("--processes", type=int, default=0,
                        help="also run this many independent rigs in parallel processes "
                        "(aggregate capacity, not one DCC's throughput; 0: skip)")
    parser.add_argument("--http", action="store_true",
                        help="only the HTTP mode (default: HTTP, then in process)")
    parser.add_argument("--in-process", action="store_true",
                        help="only the in-process mode (the pytest fixture's DCC client)")
    parser.add_argument("--han-speed", type=float, default=100.0,
                        help="HTTP mode: the rig's clock runs this many times faster than "
                        "the wall clock, so HAN airtime costs 1/N (1: gbhil serve's real time)")
    parser.add_argument("--profile-emulator", type=int, default=0, metavar="ROWS",
                        help="HTTP mode: cProfile the emulator process, print ROWS rows")
    args = parser.parse_args()
    srvs = [s.strip() for s in args.srv.split(",") if s.strip()]

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(f"CPUs: {os.cpu_count()} (usable by this process: {affinity})")
    print("request mix (round robin, to the ESME): " + "; ".join(
        f"SRV {srv} {getattr(service_variant(srv), 'name', '?')}" for srv in srvs))
    both = not (args.http or args.in_process)
    if args.http or both:
        http_mode(args, srvs)
    if args.in_process or both:
        in_process_mode(args, srvs)
    if args.processes:
        independent_rigs(args.processes, args.seed, srvs, args.requests, args.warmup)


def in_process_mode(args: argparse.Namespace, srvs: list[str]) -> None:
    mix = itertools.cycle(srvs)
    t0 = time.perf_counter()
    rig, dcc = build(args.seed, args.store)
    print(f"[in-process] one process, client and emulator share the rig's stepped loop "
          f"(virtual time); built in {time.perf_counter() - t0:.2f} s; DCC stores: "
          f"{args.store or 'in memory (pytest fixture default)'}")
    try:
        for _ in range(args.warmup):
            one(dcc, next(mix))
        end_to_end(dcc, mix, args.requests)
        ack_only(dcc, mix, args.requests)
        if args.profile:
            breakdown(dcc, mix, args.profile)
        crypto_check(rig, dcc, srvs[0])
    finally:
        dcc.close()
        rig.close()

if __name__ == "__main__":
    main()
