"""``gbhil gbcs ...``: decode, verify, build and segment GBCS messages from a shell."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any

from gbhil.corpus import format_report, verify_corpus
from gbhil.gbcs.errors import GbcsDecodeError, GbcsError
from gbhil.gbcs.frame import Cra, Eui64, GeneralSigning, OtherInformation
from gbhil.gbcs.gbt import segment
from gbhil.gbcs.message import inspect_message
from gbhil.gbcs.security import RTDS_ACB_ID, SecurityContext, protect
from gbhil.smki import SmkiError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("gbcs", help="decode, verify and build GBCS messages")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    d = verbs.add_parser("decode", help="decode one message field by field")
    d.add_argument("message", help="hex, base64, or a file holding either (or raw bytes)")
    d.add_argument(
        "--keystore", type=Path, help="key folder (RTDS naming or gbhil PKI) or keystore.json"
    )
    d.add_argument("--acb", default=RTDS_ACB_ID.hex(), help="ACB EUI-64 (default: RTDS/ZAZ1 ACB)")
    d.add_argument("--precommand", action="store_true", help="treat a DF message as a pre-command")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=cmd_decode)

    v = verbs.add_parser("verify-corpus", help="decode, verify and re-encode every *.HEX below DIR")
    v.add_argument("dir", type=Path)
    v.add_argument("--keystore", type=Path, required=True)
    v.add_argument("--acb", default=RTDS_ACB_ID.hex())
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify_corpus)

    b = verbs.add_parser("build", help="build a protected message from header fields and content")
    b.add_argument("--keystore", type=Path, required=True)
    b.add_argument("--acb", default=RTDS_ACB_ID.hex())
    b.add_argument("--cra", choices=[c.name.lower() for c in Cra], default="command")
    b.add_argument("--counter", type=lambda s: int(s, 0), required=True)
    b.add_argument("--originator", required=True, help="Business Originator EUI-64")
    b.add_argument("--target", required=True, help="Business Target EUI-64")
    b.add_argument(
        "--code", type=lambda s: int(s, 0), required=True, help="message code, e.g. 0x0059"
    )
    b.add_argument("--content", required=True, help="payload as hex")
    b.add_argument("--sign", action="store_true", help="sign with the originator's DS key")
    b.add_argument(
        "--no-mac", action="store_true", help="signed-only envelope (critical responses/alerts)"
    )
    b.add_argument(
        "--gbt", type=int, metavar="BLOCK", help="print GBT segments of BLOCK bytes instead"
    )
    b.set_defaults(func=cmd_build)


def load_context(keystore: Path | None, acb: str) -> SecurityContext | None:
    if keystore is None:
        return None
    from gbhil.smki import KeyStore

    return SecurityContext(KeyStore.load(keystore), Eui64.parse(acb).value)


def read_message_arg(arg: str) -> bytes:
    """Accept hex, base64, or a path to a file holding hex, base64 or raw bytes."""
    path = Path(arg)
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a long hex string is not a valid file name
        is_file = False
    if is_file:
        data = path.read_bytes()
        try:
            return _parse_text(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return data
    return _parse_text(arg)


def _parse_text(text: str) -> bytes:
    clean = "".join(text.split())
    try:
        return bytes.fromhex(clean)
    except ValueError:
        pass
    try:
        return base64.b64decode(clean, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("input is neither hex nor base64 nor a readable file") from None


def cmd_decode(args: argparse.Namespace) -> int:
    try:
        raw = read_message_arg(args.message)
        ctx = load_context(args.keystore, args.acb)
        ins = inspect_message(raw, ctx, precommand=True if args.precommand else None)
    except GbcsDecodeError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "field": exc.field, "offset": exc.offset}))
        else:
            print(f"gbhil: cannot decode: {exc}", file=sys.stderr)
        return 1
    except (GbcsError, SmkiError, ValueError, OSError) as exc:
        print(f"gbhil: {exc}", file=sys.stderr)
        return 2
    view = ins.to_json()
    if args.json:
        print(json.dumps(view, indent=2))
    else:
        print(format_view(view))
    return 0 if ins.ok else 1


def format_view(view: dict[str, Any], indent: int = 0) -> str:
    """Indented text form of the JSON view, field by field."""
    lines: list[str] = []

    def walk(key: str, value: Any, depth: int) -> None:
        pad = "  " * depth
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            for k, v in value.items():
                walk(str(k), v, depth + 1)
        elif isinstance(value, list):
            if all(not isinstance(v, dict | list) for v in value):
                lines.append(f"{pad}{key}: [{', '.join(str(v) for v in value)}]")
            else:
                lines.append(f"{pad}{key}:")
                for i, v in enumerate(value):
                    walk(f"[{i}]", v, depth + 1)
        elif value is not None:
            lines.append(f"{pad}{key}: {value}")

    for k, v in view.items():
        walk(k, v, indent)
    return "\n".join(lines)


def cmd_verify_corpus(args: argparse.Namespace) -> int:
    if not args.dir.is_dir():
        print(f"gbhil: {args.dir} is not a folder", file=sys.stderr)
        return 2
    try:
        ctx = load_context(args.keystore, args.acb)
    except (GbcsError, SmkiError, ValueError, OSError) as exc:
        print(f"gbhil: {exc}", file=sys.stderr)
        return 2
    assert ctx is not None
    report = verify_corpus(args.dir, ctx)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_report(report))
    return 0 if report.ok else 1


def cmd_build(args: argparse.Namespace) -> int:
    try:
        ctx = load_context(args.keystore, args.acb)
        assert ctx is not None
        gs = GeneralSigning(
            Cra[args.cra.upper()],
            args.counter,
            Eui64.parse(args.originator).value,
            Eui64.parse(args.target).value,
            OtherInformation(args.code),
            bytes.fromhex(args.content),
        )
        msg = protect(ctx, gs, signed=args.sign, maced=not args.no_mac).encode()
        if args.gbt:
            for seg in segment(msg, args.gbt):
                print(seg.encode().hex().upper())
        else:
            print(msg.hex().upper())
    except (GbcsError, SmkiError, ValueError, OSError) as exc:
        print(f"gbhil: {exc}", file=sys.stderr)
        return 2
    return 0
