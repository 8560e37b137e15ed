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
import functools
import itertools
import multiprocessing
import multiprocessing.connection
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from gbhil.dcc.mapping import service_variant
from gbhil.gbcs.message import inspect_message
from gbhil.gbcs.security import Check
from gbhil.pytest_plugin.plugin import DccClient, Submission
from gbhil.rigs.simulated import DEVICES, SimulatedRig

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
    args = parser.parse_args()
    srvs = [s.strip() for s in args.srv.split(",") if s.strip()]
    mix = itertools.cycle(srvs)

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(f"CPUs: {os.cpu_count()} (usable by this process: {affinity}); one process, "
          "client and emulator share a core-bound asyncio loop")
    t0 = time.perf_counter()
    rig, dcc = build(args.seed, args.store)
    print(f"rig built and joined in {time.perf_counter() - t0:.2f} s; DCC stores: "
          f"{args.store or 'in memory (pytest fixture default)'}")
    print("request mix (round robin, to the ESME): " + "; ".join(
        f"SRV {srv} {getattr(service_variant(srv), 'name', '?')}" for srv in srvs))
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
    if args.processes:
        independent_rigs(args.processes, args.seed, srvs, args.requests, args.warmup)


if __name__ == "__main__":
    main()
