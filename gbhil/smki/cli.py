"""``gbhil smki``: generate a test PKI, show a key store, export a rig's PKI (RTDS naming).

Output never contains private key material: only EUIs, roles, serials, names and
file names.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gbhil.smki.keystore import KeyStore, SmkiError, format_name
from gbhil.smki.pki import generate_pki
from gbhil.smki.profile import DEVICE_TYPES, ROLE_NAMES, TEST_KEYS_WARNING, role_name


def register(subparsers: Any) -> None:
    """Add the ``smki`` group to the top-level ``gbhil`` parser."""
    group = subparsers.add_parser(
        "smki", help="GB SMKI test keys and certificates", description=__doc__
    )
    verbs = group.add_subparsers(dest="smki_verb", required=True, metavar="VERB")

    gen = verbs.add_parser(
        "generate",
        help="write a fresh test PKI (CAs, organisations, devices)",
        description=f"Write a fresh GB SMKI-shaped test PKI. {TEST_KEYS_WARNING}.",
    )
    gen.add_argument("out_dir", metavar="OUT_DIR", type=Path, help="folder to write")
    gen.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="EUI:TYPE",
        help=f"device certificate pair; TYPE one of {', '.join(DEVICE_TYPES)} (repeatable)",
    )
    gen.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="ROLE:EUI",
        help="organisation instead of the RTDS defaults; ROLE e.g. supplier, "
        "network_operator, acb, recovery, transitional_cos, wan_provider (repeatable)",
    )
    gen.add_argument(
        "--seed", type=int, help="derive keys from this seed (reproducible, TEST ONLY)"
    )
    gen.add_argument("--force", action="store_true", help="overwrite existing files")
    gen.add_argument("--json", action="store_true", help="print the manifest as JSON")
    gen.set_defaults(func=_cmd_generate)

    show = verbs.add_parser(
        "show",
        help="list the certificates of a key store",
        description="List a PKI folder, RTDS key folder, ZAZ1 keystore.json or orgkeys folder.",
    )
    show.add_argument("path", metavar="DIR|keystore.json", type=Path)
    show.add_argument("--json", action="store_true", help="JSON instead of a table")
    show.set_defaults(func=_cmd_show)

    export = verbs.add_parser(
        "export",
        help="write the rig's certificates and test User keys in RTDS naming",
        description="Write the rig's PKI as an RTDS key folder (<eui>-ds.pem, <eui>-ka.pem, "
        "<eui>-pp-ka.pem, .key PKCS#8 PEM 0600) for outside tools such as gbcs-parser. "
        "Organisation private keys only, unless --with-device-keys. "
        f"{TEST_KEYS_WARNING}.",
    )
    export.add_argument("out_dir", metavar="DIR", type=Path, help="folder to write")
    export.add_argument("--rig", type=Path, metavar="FILE", help="rig file (default: embedded rig)")
    export.add_argument("--seed", type=int, help="PKI seed (default: the rig file's, else 1)")
    export.add_argument(
        "--with-device-keys", action="store_true", help="also write device private keys"
    )
    export.add_argument("--force", action="store_true", help="overwrite existing files")
    export.add_argument("--json", action="store_true", help="print what was written as JSON")
    export.set_defaults(func=_cmd_export)


def _fail(message: str) -> int:
    print(f"gbhil smki: error: {message}", file=sys.stderr)
    return 2


def _pairs(values: Sequence[str], what: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        left, sep, right = value.rpartition(":") if what == "EUI:TYPE" else value.partition(":")
        if not sep or not left or not right:
            raise SmkiError(f"{value!r} is not {what}")
        out.append((left, right))
    return out


def _cmd_generate(args: argparse.Namespace) -> int:
    try:
        devices = dict(_pairs(args.device, "EUI:TYPE"))
        orgs = dict(_pairs(args.org, "ROLE:EUI")) or None
        pki = generate_pki(
            args.out_dir,
            organisations=orgs,
            devices=devices,
            seed=args.seed,
            overwrite=args.force,
        )
    except SmkiError as exc:
        return _fail(str(exc))
    manifest = pki.manifest()
    if args.json:
        print(json.dumps({"out_dir": str(args.out_dir), **manifest}, indent=2))
        return 0
    rows = [
        [
            e["eui"],
            e["device_type"] or e["role_name"],
            e["slot"],
            e["serial"],
            e["not_after"][:10],
            e["certificate"],
            e["private_key"],
        ]
        for e in manifest["entries"]
    ]
    rows += [
        [
            "-",
            f"ca:{ca['name']}",
            "-",
            ca["serial"],
            ca["not_after"][:10],
            ca["certificate"],
            ca["private_key"],
        ]
        for ca in manifest["cas"]
    ]
    _table(["EUI", "ROLE/TYPE", "SLOT", "SERIAL", "NOT AFTER", "CERTIFICATE", "KEY"], rows)
    seeded = " (seeded)" if pki.seeded else ""
    print(f"\nwrote {len(pki.files)} files to {args.out_dir}{seeded}; {TEST_KEYS_WARNING}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from gbhil.smki.export import export_rtds, rig_pki

    try:
        store = rig_pki(args.rig, args.seed)
        result = export_rtds(
            store, args.out_dir, with_device_keys=args.with_device_keys, overwrite=args.force
        )
    except SmkiError as exc:
        return _fail(str(exc))
    if args.json:
        out = {
            "out_dir": str(result.out_dir),
            "euis": [eui.hex() for eui in store.euis()],
            "certificates": [p.name for p in result.certificates],
            "private_keys": [p.name for p in result.private_keys],
            "skipped_device_keys": result.skipped_device_keys,
        }
        print(json.dumps(out, indent=2))
        return 0
    skipped = (
        f" ({result.skipped_device_keys} device private keys left out)"
        if result.skipped_device_keys
        else ""
    )
    print(
        f"wrote {len(result.certificates)} certificates and {len(result.private_keys)} "
        f"private keys for {len(store.euis())} EUIs to {result.out_dir}{skipped}; "
        f"{TEST_KEYS_WARNING}"
    )
    return 0


def _describe(store: KeyStore) -> list[dict[str, Any]]:
    rows = []
    for e in store.entries():
        cert = e.certificate
        active = store.entry(e.eui, e.slot) is e
        rows.append(
            {
                "eui": e.eui.hex(),
                "role": e.role,
                "role_name": e.device_type
                or (role_name(e.role) if cert is not None or e.role is not None else "unknown"),
                "slot": str(e.slot),
                "usage": str(e.usage),
                "active": active,
                "private_key": e.has_private_key,
                "name": e.name,
                "serial": None if cert is None else f"{cert.serial_number:x}",
                "not_before": None if cert is None else cert.not_valid_before_utc.isoformat(),
                "not_after": None if cert is None else cert.not_valid_after_utc.isoformat(),
                "subject": None if cert is None else format_name(cert.subject),
                "issuer": None if cert is None else format_name(cert.issuer),
                "source": e.source,
            }
        )
    return rows


def _cmd_show(args: argparse.Namespace) -> int:
    try:
        store = KeyStore.load(args.path)
    except SmkiError as exc:
        return _fail(str(exc))
    rows = _describe(store)
    if args.json:
        print(
            json.dumps(
                {
                    "source": store.source,
                    "stats": store.stats(),
                    "warnings": store.warnings,
                    "entries": rows,
                },
                indent=2,
            )
        )
        return 0
    table = [
        [
            r["eui"],
            r["role_name"]
            if r["role"] is None
            else f"{r['role']:02X} {ROLE_NAMES.get(r['role'], '')}".strip(),
            r["slot"] + ("" if r["active"] else " (inactive)"),
            "yes" if r["private_key"] else "no",
            r["serial"] or "-",
            (r["not_before"] or "-")[:10],
            (r["not_after"] or "-")[:10],
            "-" if r["subject"] is None else (r["subject"] or "(empty)"),
            r["issuer"] or "-",
        ]
        for r in rows
    ]
    _table(
        ["EUI", "ROLE", "SLOT", "KEY", "SERIAL", "NOT BEFORE", "NOT AFTER", "SUBJECT", "ISSUER"],
        table,
    )
    stats = store.stats()
    print(
        f"\n{stats['euis']} EUIs, {stats['certificates']} certificates, "
        f"{stats['private_keys']} private keys, {stats['public_keys']} bare public keys"
    )
    for warning in store.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
