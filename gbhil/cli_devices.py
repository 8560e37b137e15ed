"""``gbhil devices ...``: check the simulated devices against a corpus."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("devices", help="simulated devices")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    c = verbs.add_parser(
        "coverage", help="run every command of an RTDS-like corpus through the simulated devices"
    )
    c.add_argument("--rtds", type=Path, required=True, help="corpus folder (<SRV>_<UseCase>/*.HEX)")
    c.add_argument(
        "--keystore",
        type=Path,
        help="RTDS keystore; accepted for symmetry, the run re-protects with a fresh rig PKI",
    )
    c.add_argument("--seed", type=int, default=1, help="seed of the rig PKI")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_coverage)


def cmd_coverage(args: argparse.Namespace) -> int:
    from gbhil.devices.coverage import run_coverage

    if not args.rtds.is_dir():
        print(f"gbhil: {args.rtds} is not a folder", file=sys.stderr)
        return 2
    reports = run_coverage(args.rtds, args.seed)
    ok = all(not r.failures for r in reports.values()) and bool(reports)
    if args.json:
        print(json.dumps({k: r.to_json() for k, r in sorted(reports.items())}, indent=2))
        return 0 if ok else 1
    for kind, r in sorted(reports.items()):
        print(f"{kind:<7} {len(r.covered):>4} / {len(r.total):<4} use cases covered")
    for kind, r in sorted(reports.items()):
        for f in r.failures:
            print(f"  {kind} {f.use_case} {f.file}: {f.reason}")
    return 0 if ok else 1
