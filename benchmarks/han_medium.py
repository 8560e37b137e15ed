"""HAN frames per second through the simulated medium on the stepped clock.

Four scenarios, each printing wall-clock frames/s and how much virtual time the
frames took on air:

* sync      - ``medium.transmit()`` + ``clock.advance()``: the medium's own cost;
* async     - device tasks ``await node.send()`` on the stepped event loop;
* impaired  - async, with loss, jitter, duplication and reordering on every link;
* pcap      - async, with a PcapWriter tap streaming every frame to a file.

Run: .venv/bin/python benchmarks/han_medium.py [--frames N] [--meters M] [--payload B]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gbhil.han import ApsFrame, LinkQuality, PcapWriter, SimulatedMedium
from gbhil.simulator import SteppedClock

CHF = bytes.fromhex("00DB1234567890A2")
TUNNELING = 0x0704


def meter_eui(i: int) -> bytes:
    return bytes.fromhex("00DB12345678") + i.to_bytes(2, "big")


def rig(meters: int, link: LinkQuality | None = None) -> tuple[SteppedClock, SimulatedMedium]:
    clock = SteppedClock()
    medium = SimulatedMedium(clock, seed=2026, link=link)
    medium.attach(CHF, [(0, 11)])
    for i in range(meters):
        medium.attach(meter_eui(i), [(0, 11)])
    return clock, medium


def count_received(medium: SimulatedMedium) -> list[int]:
    box = [0]

    def inc(_frame: ApsFrame) -> None:
        box[0] += 1

    for node in medium.nodes:
        node.add_listener(inc)
    return box


def bench_sync(frames: int, meters: int, payload: bytes) -> tuple[int, float, float]:
    clock, medium = rig(meters)
    received = count_received(medium)
    dsts = [meter_eui(i) for i in range(meters)]
    batch = 1000
    t0 = time.perf_counter()
    for start in range(0, frames, batch):
        for k in range(start, min(frames, start + batch)):
            last = medium.transmit(ApsFrame(CHF, dsts[k % meters], TUNNELING, payload))
        clock.advance_to(last.end)
    return received[0], time.perf_counter() - t0, clock.monotonic()


def bench_async(
    frames: int,
    meters: int,
    payload: bytes,
    link: LinkQuality | None = None,
    tap: Callable[[SimulatedMedium], None] | None = None,
) -> tuple[int, float, float]:
    clock, medium = rig(meters, link)
    if tap is not None:
        tap(medium)
    received = count_received(medium)
    per_meter = frames // (2 * meters)

    async def meter(i: int) -> None:
        node = medium.node(meter_eui(i))
        for _ in range(per_meter):
            await node.send(ApsFrame(node.eui64, CHF, TUNNELING, payload))
            await medium.node(CHF).send(ApsFrame(CHF, node.eui64, TUNNELING, payload))

    async def main() -> None:
        await asyncio.gather(*(meter(i) for i in range(meters)))
        await clock.run_until_idle()

    t0 = time.perf_counter()
    clock.run(main())
    return received[0], time.perf_counter() - t0, clock.monotonic()


def report(name: str, delivered: int, wall: float, virtual: float) -> None:
    print(
        f"{name:<9} {delivered:>8} frames  {wall:7.3f} s wall  {delivered / wall:>10,.0f} frames/s"
        f"  {virtual:9.3f} s virtual ({virtual / wall:,.0f}x real time)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--meters", type=int, default=20)
    ap.add_argument("--payload", type=int, default=60, help="APS payload octets per frame")
    args = ap.parse_args()
    payload = bytes(args.payload)
    print(
        f"{args.frames} frames, {args.meters} meters + CHF on page 0 channel 11, "
        f"{args.payload}-octet APS payload"
    )
    report("sync", *bench_sync(args.frames, args.meters, payload))
    report("async", *bench_async(args.frames, args.meters, payload))
    impaired = LinkQuality(loss=0.05, jitter=0.002, duplicate=0.02, reorder=0.05, latency=0.001)
    report("impaired", *bench_async(args.frames, args.meters, payload, impaired))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pcap"
        writers: list[PcapWriter] = []

        def add_tap(medium: SimulatedMedium) -> None:
            writers.append(PcapWriter(path))
            medium.add_tap(writers[-1])

        result = bench_async(args.frames, args.meters, payload, tap=add_tap)
        writers[0].close()
        report("pcap", *result)
        size = path.stat().st_size
        print(f"{'':<9} capture: {size:,} bytes, {writers[0].packets_written} packets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
