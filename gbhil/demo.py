"""``gbhil demo``: a self-contained tour of the codec with a freshly generated PKI.

It plays the DCC (ACB MAC), a supplier (signature) and an ESME, so a new user
sees every protection and the GBT path work end to end without any outside data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from gbhil.gbcs.axdr import NullData, OctetString
from gbhil.gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    RequestKind,
    RequestSpec,
    ResponseKind,
    ResponseSpec,
    encode_dlms,
    gbcs_invoke_id,
    parse_obis,
)
from gbhil.gbcs.frame import Cra, Eui64, GeneralSigning, OtherInformation
from gbhil.gbcs.gbt import GbtReassembler, GbtSegment, segment
from gbhil.gbcs.message import inspect_message
from gbhil.gbcs.security import RTDS_ACB_ID, Check, SecurityContext, protect
from gbhil.gbcs.usecases import BY_USE_CASE
from gbhil.smki import generate_pki

SUPPLIER = bytes.fromhex("90B3D51F30010000")
ESME = bytes.fromhex("00DB1234567890A0")
FIRMWARE_VERSION_OBIS = "0-0:0.2.1.255"  # ECS52: class 1 Data, attribute 2


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="build, protect, segment and verify GBCS with a fresh PKI")
    p.add_argument("--seed", type=int, default=1, help="PKI seed (test keys only)")
    p.add_argument(
        "--pcap", type=Path, default=Path("reports/demo-han.pcap"), help="HAN capture to write"
    )
    p.set_defaults(func=lambda a: run_demo(a.seed) or run_rig_demo(a.seed, a.pcap))


def run_demo(seed: int, out: TextIO = sys.stdout) -> int:
    pki = generate_pki(None, devices={ESME: "ESME"}, seed=seed)
    ctx = SecurityContext(pki.keystore, RTDS_ACB_ID)
    ok = True

    def show(title: str, raw: bytes) -> None:
        nonlocal ok
        ins = inspect_message(raw, ctx)
        view = ins.to_json()
        h = view["header"]
        print(f"\n{title}: {len(raw)} bytes, {view['shape']}", file=out)
        print(f"  {h['craFlag']} {h['messageCode']} {h['useCaseTitle']}", file=out)
        route = f"{h['businessOriginatorId']} -> {h['businessTargetId']}"
        print(f"  {route}, counter {h['originatorCounter']}", file=out)
        print(f"  MAC {ins.mac.value}, signature {ins.signature.value}", file=out)
        ok = ok and ins.ok and ins.message.encode() == raw
        ok = ok and Check.VERIFIED in (ins.mac, ins.signature)

    counter = 0x1000_0000_0000_0001
    code = BY_USE_CASE["ECS52"][0].code
    read = AccessRequest(
        gbcs_invoke_id(counter),
        (RequestSpec(RequestKind.GET, 1, parse_obis(FIRMWARE_VERSION_OBIS), 2),),
        (NullData(),),
    )
    gs = GeneralSigning(
        Cra.COMMAND, counter, SUPPLIER, ESME, OtherInformation(code), encode_dlms(read)
    )
    command = protect(ctx, gs, signed=False, maced=True).encode()
    print(f"fresh test PKI (seed {seed}): {len(list(pki.keystore.euis()))} EUIs", file=out)
    show("ECS52 command (DCC User -> ESME, ACB MAC)", command)

    reply = AccessResponse(
        gbcs_invoke_id(counter),
        (OctetString(b"gbhil-demo-fw-1.0"),),
        (ResponseSpec(ResponseKind.GET, 0),),
    )
    rsp = GeneralSigning(
        Cra.RESPONSE, counter, ESME, SUPPLIER, OtherInformation(code), encode_dlms(reply)
    )
    show(
        "ECS52 response (ESME -> supplier, device MAC)",
        protect(ctx, rsp, signed=False, maced=True).encode(),
    )

    critical = GeneralSigning(
        Cra.COMMAND, counter + 1, SUPPLIER, ESME, OtherInformation(code), encode_dlms(read)
    )
    signed = protect(ctx, critical, signed=True, maced=True).encode()
    show("signed + MACed command", signed)

    blocks = segment(signed, 61)
    r = GbtReassembler()
    whole = None
    for b in blocks:
        whole = r.feed(GbtSegment.decode(b.encode())) or whole
    print(f"\nGBT: {len(blocks)} blocks of <= 61 bytes, reassembled: {whole == signed}", file=out)
    ok = ok and whole == signed
    print(f"\nESME: {Eui64(ESME)}; all checks {'passed' if ok else 'FAILED'}", file=out)
    return 0 if ok else 1


def run_rig_demo(seed: int, pcap: Path, out: TextIO = sys.stdout) -> int:
    """The default simulated rig: a read over the dual-band HAN and a mains outage."""
    from gbhil.devices.trust import Role
    from gbhil.rigs.simulated import PARTIES, SimulatedRig

    pcap.parent.mkdir(parents=True, exist_ok=True)
    rig = SimulatedRig.build(seed=seed, capture=pcap)
    try:
        rig.run(rig.start())
        print("\nsimulated rig: CHF+GPF (2.4 GHz ch 11 + sub-GHz page 28 ch 5), ESME, GSME,"
              " PPMID, HHT joined with install codes", file=out)  # fmt: skip
        counter = 0x2000_0000_0000_0001
        read = AccessRequest(
            gbcs_invoke_id(counter),
            (RequestSpec(RequestKind.GET, 1, parse_obis(FIRMWARE_VERSION_OBIS), 2),),
            (NullData(),),
        )
        supplier = PARTIES[Role.SUPPLIER]
        code = OtherInformation(BY_USE_CASE["ECS52"][0].code)
        gs = GeneralSigning(Cra.COMMAND, counter, supplier, rig.esme.eui, code, encode_dlms(read))
        command = protect(rig.dcc, gs, signed=False, maced=True).encode()

        async def scenario() -> str:
            delivery = await rig.send(command)
            await rig.settle()
            rig.mains.set_output(False)
            await rig.clock.sleep(4 * 60)
            rig.mains.set_output(True)
            await rig.settle(120)
            return delivery.status.name

        status = rig.run(scenario())
        print(f"ECS52 to the ESME over the HAN: {status}", file=out)
        ok = True
        for raw in rig.wan:
            ins = inspect_message(raw, rig.dcc)
            h = ins.to_json()["header"]
            print(f"  WAN <- {h['craFlag']} {h['messageCode']} {h['useCaseTitle']}"
                  f" from {h['businessOriginatorId']}: MAC {ins.mac.value},"
                  f" signature {ins.signature.value}", file=out)  # fmt: skip
            ok = ok and ins.ok
        kinds = ", ".join(f"{e.kind.value} at {e.at:%H:%M}" for e in rig.power_events)
        print(f"  hub power events: {kinds}", file=out)
        print(f"HAN capture: {pcap} ({rig.capture.frames_written if rig.capture else 0} frames;"
              " open it in Wireshark)", file=out)  # fmt: skip
        ok = ok and len(rig.wan) >= 2
        print(f"rig demo {'passed' if ok else 'FAILED'}", file=out)
        return 0 if ok else 1
    finally:
        rig.close()
