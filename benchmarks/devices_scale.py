"""How many simulated devices fit in memory, and how fast they answer.

Creates N ESMEs (each with its own DS/KA key pair and trust anchor cells,
sharing the parsed model profile), measures the resident-set growth, then
sends every one an ECS17b-style read (MACed by the ACB) and times the replies.
Run: .venv/bin/python benchmarks/devices_scale.py [--devices N] [--kind ESME|GSME|PPMID]
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.devices.core import DeviceType
from gbhil.devices.coverage import RTDS_PARTIES, SteppedClock
from gbhil.devices.registry import device_class
from gbhil.devices.trust import AnchorCell, CellUsage, DeviceKeys, Role
from gbhil.gbcs.axdr import NullData
from gbhil.gbcs.dlms import AccessRequest, RequestKind, RequestSpec, gbcs_invoke_id, parse_obis
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation
from gbhil.gbcs.message import encode_payload
from gbhil.gbcs.security import SecurityContext, protect
from gbhil.smki import generate_pki

GIB = 1 << 30


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=20_000)
    ap.add_argument("--kind", default="ESME", choices=["ESME", "GSME", "PPMID"])
    ap.add_argument("--commands", type=int, default=2_000, help="devices that get a read")
    args = ap.parse_args()
    orgs = {"supplier": RTDS_PARTIES[Role.SUPPLIER].hex(), "acb": RTDS_PARTIES[Role.ACB].hex()}
    pki = generate_pki(None, organisations=orgs, seed=1)
    store = pki.keystore
    cells = {}
    for role in (Role.SUPPLIER, Role.ACB):
        eui = RTDS_PARTIES[role]
        for usage, pub in (
            (CellUsage.DS, store.ds_public(eui)),
            (CellUsage.KA, store.ka_public(eui)),
        ):
            assert pub is not None
            cells[(role, usage)] = AnchorCell(role, usage, eui, pub)
    clock = SteppedClock(datetime(2026, 1, 1, tzinfo=UTC))
    cls = device_class(DeviceType(args.kind))
    cls(b"\x00" * 7 + b"\x01", DeviceKeys(b"\x00" * 7 + b"\x01", *_keys(), dict(cells)), clock)
    gc.collect()
    base = rss_bytes()
    t0 = time.perf_counter()
    devices = []
    for i in range(args.devices):
        eui = (0x00DB_0000_0000_0000 + i).to_bytes(8, "big")
        keys = DeviceKeys(eui, *_keys(), dict(cells))
        devices.append(cls(eui, keys, clock))
    build_s = time.perf_counter() - t0
    gc.collect()
    grown = rss_bytes() - base
    per = grown / args.devices
    print(
        f"{args.devices:,} simulated {args.kind} devices: {grown / 2**20:,.0f} MiB resident growth"
    )
    print(f"  {per / 1024:.1f} KiB per device -> {GIB / per:,.0f} devices per GiB, "
          f"{2 * GIB / per:,.0f} in 2 GiB (target 50,000)")  # fmt: skip
    rate = args.devices / build_s
    print(f"  created in {build_s:.1f} s ({rate:,.0f} devices/s, two EC key pairs each)")
    if args.kind != "ESME":
        return
    # One ECS52 firmware-version read per device, MACed by the DCC as the ACB.
    acb_ctx = SecurityContext(store, RTDS_PARTIES[Role.ACB])
    raws = []
    for n, dev in enumerate(devices[: args.commands]):
        counter = 0x1000 + n
        req = AccessRequest(
            gbcs_invoke_id(counter),
            (RequestSpec(RequestKind.GET, 1, parse_obis("0-0:0.2.1.255"), 2),),
            (NullData(),),
        )
        gs = GeneralSigning(Cra.COMMAND, counter, RTDS_PARTIES[Role.SUPPLIER], dev.eui,
                            OtherInformation(0x0059), encode_payload(req))  # fmt: skip
        raws.append((dev, _protect_for(acb_ctx, dev, gs)))
    t0 = time.perf_counter()
    ok = sum(1 for dev, raw in raws if dev.receive(raw).response is not None)
    dt = time.perf_counter() - t0
    print(f"  {ok:,}/{len(raws):,} reads answered in {dt:.2f} s: {len(raws) / dt:,.0f} commands/s "
          "(verify MAC, serve, build and MAC the response)")  # fmt: skip


def _keys() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def _protect_for(acb_ctx: SecurityContext, dev, gs: GeneralSigning) -> bytes:  # type: ignore[no-untyped-def]
    """The ACB MACs with its KA key and the device's KA public key (not in the PKI here)."""

    class View:
        def ka_private(self, eui: bytes, *, prepayment: bool = False):  # type: ignore[no-untyped-def]
            return acb_ctx.keystore.ka_private(eui, prepayment=prepayment)

        def ka_public(self, eui: bytes, *, prepayment: bool = False):  # type: ignore[no-untyped-def]
            return dev.keys.ka.public_key() if eui == dev.eui else None

        def ds_private(self, eui: bytes):  # type: ignore[no-untyped-def]
            return acb_ctx.keystore.ds_private(eui)

        def ds_public(self, eui: bytes):  # type: ignore[no-untyped-def]
            return acb_ctx.keystore.ds_public(eui)

    return protect(SecurityContext(View(), acb_ctx.acb_id), gs, signed=False, maced=True).encode()


if __name__ == "__main__":
    main()
