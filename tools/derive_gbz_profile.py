"""List the ZCL clusters, attributes and types a corpus reads or writes on GSME/GPF.

Helper for writing ``devices/gsme.toml`` and ``devices/gpf.toml``: it walks an
RTDS-like corpus (``<SRV>_<UseCase>/*.HEX``), decodes every GBZ message to the
GSME or GPF, decrypts encrypted response components when a key store is given,
and prints the *structure* it saw: cluster, attribute id, catalogue name and ZCL
data type, plus which use cases read or wrote it.

It deliberately prints no attribute values: the committed profiles hold gbhil's
own defaults, never values copied from RTDS responses.

Usage::

    .venv/bin/python tools/derive_gbz_profile.py ../shared/conformance/rtds-4.5.0 \
        [--keystore ../shared/conformance/rtds-keystore] [--toml]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from gbhil.gbcs import gbz, zcl
from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.message import DecodedMessage, decode_message
from gbhil.gbcs.security import SecurityContext, decrypt_block, payload_key
from gbhil.gbcs.usecases import MESSAGE_CODES

#: Last byte of the RTDS GSME and GPF EUI-64s (gbcs-facts 0).
DEVICE_SUFFIXES = {0xA1: "GSME", 0xA3: "GPF"}

Key = tuple[int, int]


def _payloads(msg: DecodedMessage, ctx: SecurityContext | None) -> list[tuple[int, zcl.ZclPayload]]:
    """(cluster, typed payload) of every component, decrypting where possible."""
    assert isinstance(msg.payload, gbz.GbzMessage)
    out: list[tuple[int, zcl.ZclPayload]] = []
    key = payload_key(ctx, msg.frame.gs) if ctx is not None else None
    for c in msg.payload.components:
        if isinstance(c, gbz.PlainComponent):
            out.append((c.cluster_id, c.payload))
        elif key is not None:
            plain = decrypt_block(key, msg.frame.gs.business_originator, c.block)
            if plain is not None:
                try:
                    out.append((c.cluster_id, gbz.decode_decrypted_zcl(c, plain)))
                except GbcsError:
                    continue
    return out


def derive(root: Path, ctx: SecurityContext | None) -> dict[str, dict[Key, dict[str, set[str]]]]:
    """device -> (cluster, attribute) -> {"types": {...}, "read": {...}, "written": {...}}."""
    seen: dict[str, dict[Key, dict[str, set[str]]]] = defaultdict(
        lambda: defaultdict(lambda: {"types": set(), "read": set(), "written": set()})
    )
    for path in sorted(root.rglob("*.HEX")):
        try:
            msg = decode_message(bytes.fromhex(path.read_text().strip()))
        except (GbcsError, ValueError):
            continue
        if not isinstance(msg.payload, gbz.GbzMessage):
            continue
        gs = msg.frame.gs
        peer = gs.business_originator if gs.cra.name == "RESPONSE" else gs.business_target
        device = (
            DEVICE_SUFFIXES.get(peer[-1]) if peer[:7] == bytes.fromhex("00DB1234567890") else None
        )
        if device is None:
            continue
        uc = MESSAGE_CODES.get(gs.message_code)
        label = uc.use_case if uc and uc.use_case else f"0x{gs.message_code:04X}"
        for cluster, p in _payloads(msg, ctx):
            table = seen[device]
            if isinstance(p, zcl.ReadAttributes):
                for a in p.attribute_ids:
                    table[(cluster, a)]["read"].add(label)
            elif isinstance(p, zcl.ReadAttributesResponse):
                for rec in p.records:
                    if rec.value is not None:
                        table[(cluster, rec.attribute_id)]["types"].add(
                            cat.ZCL_TYPES[rec.value.type_id].name
                        )
            elif isinstance(p, zcl.WriteAttributes):
                for av in p.records:
                    entry = table[(cluster, av.attribute_id)]
                    entry["written"].add(label)
                    entry["types"].add(cat.ZCL_TYPES[av.value.type_id].name)
    return seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--keystore", type=Path, help="decrypt encrypted components with these keys")
    ap.add_argument("--toml", action="store_true", help="print [[attribute]] skeletons")
    args = ap.parse_args(argv)
    ctx = None
    if args.keystore is not None:
        from gbhil.smki import KeyStore

        ctx = SecurityContext(KeyStore.load(args.keystore))
    for device, table in sorted(derive(args.corpus, ctx).items()):
        print(f"# {device}")
        for (cluster, attr), info in sorted(table.items()):
            types = ",".join(sorted(info["types"])) or "?"
            name = cat.attribute_name(cluster, attr) or "?"
            uses = ",".join(sorted(info["read"] | info["written"]))
            if args.toml:
                print(
                    f"[[attribute]]\ncluster = 0x{cluster:04X}\nid = 0x{attr:04X}\n"
                    f'name = "{name}"\ntype = "{types}"\n# used by {uses}\n'
                )
            else:
                print(f"0x{cluster:04X} 0x{attr:04X} {types:<8} {name:<45} {uses}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
