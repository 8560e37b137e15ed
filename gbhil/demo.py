"""``gbhil demo``: a self-contained tour of the codec with a freshly generated PKI.

It plays the DCC (ACB MAC), a supplier (signature) and an ESME, so a new user
sees every protection and the GBT path work end to end without any outside data.
"""

from __future__ import annotations

import argparse
import sys
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
    p.set_defaults(func=lambda a: run_demo(a.seed))


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
