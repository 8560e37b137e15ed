"""Signed DUIS requests per second, end to end through the simulated rig, crypto on.

Each request goes the whole way the pytest plugin's ``dcc`` fixture sends it: the User
signs the DUIS XML (XML-DSig, role-135 key), the in-process DCC emulator
(:mod:`gbhil.dcc.emulator`, no HTTP) checks schema, signature, User, role and SMI,
transforms it to GBCS, the ACB MACs it, the SM WAN and simulated HAN carry it to the
simulated ESME, which verifies the MAC and answers; the DCC turns the answer into a DUIS
response signed with its own XML key and delivers it to the User's sink.

Two scenarios, each printing requests/s and p50/p99 wall-clock latency per request
(measured around the in-process calls; the rig's clock is virtual, so HAN air time and
device delays cost no wall time):

* end-to-end - ``submit`` + ``await_response`` one request after another (the
  acknowledgement latency of these same requests is shown on its own line);
* ack-only   - ``submit`` alone, back to back, up to the synchronous I99; the commands
  still run, on the rig's loop, while later submits wait (drained, untimed, at the end).

Run: .venv/bin/python benchmarks/duis_throughput.py [--requests N] [--srv 11.2] [--seed S]
"""

from __future__ import annotations

import argparse
import statistics
import time

from gbhil.gbcs.message import inspect_message
from gbhil.gbcs.security import Check
from gbhil.pytest_plugin.plugin import DccClient, Submission
from gbhil.rigs.simulated import DEVICES, SimulatedRig

ESME = DEVICES["esme"][0]


def build(seed: int) -> tuple[SimulatedRig, DccClient]:
    rig = SimulatedRig.build(seed=seed)
    rig.run(rig.start())  # devices join the HAN with install codes
    dcc = DccClient(rig, lambda: None)  # no transcript: measure gbhil, not logging
    rig.on_wan, rig.on_power = dcc.on_wan, dcc.on_power
    return rig, dcc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def report(name: str, latencies: list[float], elapsed: float) -> None:
    ms = [v * 1000 for v in latencies]
    print(
        f"{name:<22} {len(ms):6d} req  {len(ms) / elapsed:8.1f} req/s  "
        f"p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
        f"mean {statistics.fmean(ms):7.2f} ms"
    )


def check(sub: Submission) -> None:
    code = sub.ack.header.response_code if sub.ack is not None else f"HTTP {sub.http_status}"
    if code != "I99":
        raise SystemExit(f"{sub}: acknowledged {code}, expected I99")


def end_to_end(dcc: DccClient, srv: str, n: int) -> None:
    acks: list[float] = []
    total: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        request = dcc.request(srv, ESME)
        t0 = time.perf_counter()
        sub = dcc.submit(request)
        t1 = time.perf_counter()
        response = sub.await_response()
        t2 = time.perf_counter()
        check(sub)
        if response.header.response_code != "I0":
            raise SystemExit(f"{sub}: response {response.header.response_code}, expected I0")
        acks.append(t1 - t0)
        total.append(t2 - t0)
    elapsed = time.perf_counter() - start
    report("end-to-end (I0)", total, elapsed)
    report("  of which ack (I99)", acks, sum(acks))


def ack_only(dcc: DccClient, srv: str, n: int) -> None:
    subs: list[Submission] = []
    acks: list[float] = []
    start = time.perf_counter()
    for _ in range(n):
        request = dcc.request(srv, ESME)
        t0 = time.perf_counter()
        sub = dcc.submit(request)
        acks.append(time.perf_counter() - t0)
        check(sub)
        subs.append(sub)
    elapsed = time.perf_counter() - start
    report("ack-only (I99)", acks, elapsed)
    t0 = time.perf_counter()
    done = sum(1 for sub in subs if sub.await_response().header.response_code == "I0")
    print(f"  drained {done}/{n} I0 responses in {time.perf_counter() - t0:.2f} s (untimed)")


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
    parser.add_argument("--srv", default="11.2", help="DUIS SRV to send the ESME (11.2: ECS52)")
    parser.add_argument("--seed", type=int, default=1, help="rig PKI seed")
    parser.add_argument("--warmup", type=int, default=5, help="untimed requests first")
    args = parser.parse_args()

    t0 = time.perf_counter()
    rig, dcc = build(args.seed)
    print(f"rig built and joined in {time.perf_counter() - t0:.2f} s; SRV {args.srv} -> ESME")
    try:
        for _ in range(args.warmup):
            dcc.submit(dcc.request(args.srv, ESME)).await_response()
        end_to_end(dcc, args.srv, args.requests)
        ack_only(dcc, args.srv, args.requests)
        crypto_check(rig, dcc, args.srv)
    finally:
        dcc.close()
        rig.close()


if __name__ == "__main__":
    main()
