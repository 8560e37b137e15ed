"""``gbhil rig``: check a rig file against the bench, or show what it describes.

``gbhil rig check FILE`` validates the file and probes every resource it names
(radios, instruments, relays, the MQTT broker, the PKI); it exits 1 when any
check fails, so CI and bench scripts can gate a HIL run on it.
``gbhil rig show FILE`` prints the rig as gbhil understands it, without probing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gbhil.rigs.rigfile import RigFile, RigFileError, load_rig

#: Exit codes: all checks passed / a check failed / the command line or file was unusable.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add the ``rig`` group to the top-level ``gbhil`` parser."""
    group = subparsers.add_parser("rig", help="rig files: check and show", description=__doc__)
    verbs = group.add_subparsers(dest="rig_verb", required=True, metavar="VERB")

    check = verbs.add_parser(
        "check",
        help="validate a rig file and probe every resource it names",
        description="Validate FILE, then probe each radio, instrument, relay, the MQTT broker "
        "and the PKI. Exit status 1 when any check fails.",
    )
    check.add_argument("file", metavar="FILE", type=Path, help="rig file (TOML)")
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    check.add_argument(
        "--bus-url",
        metavar="URL",
        help="MQTT broker to probe instead of the rig file's (default: $GBHIL_BUS_URL)",
    )
    check.set_defaults(func=_cmd_check)

    show = verbs.add_parser(
        "show",
        help="print what a rig file describes (no probing)",
        description="Validate FILE and print its places, radios, instruments, relays and devices.",
    )
    show.add_argument("file", metavar="FILE", type=Path, help="rig file (TOML)")
    show.add_argument("--json", action="store_true", help="the canonical rig as JSON")
    show.set_defaults(func=_cmd_show)


def _cmd_check(args: argparse.Namespace) -> int:
    from gbhil.rigs.check import check_rig, report_json, report_text

    results = check_rig(args.file, bus_url=args.bus_url)
    if args.json:
        print(json.dumps(report_json(args.file, results), indent=2))
    else:
        print(report_text(results))
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED


def _cmd_show(args: argparse.Namespace) -> int:
    try:
        rig = load_rig(args.file)
    except RigFileError as exc:
        for problem in exc.problems:
            print(f"gbhil rig: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(rig.to_dict(), indent=2))
    else:
        print(describe(rig))
    return EXIT_OK


def describe(rig: RigFile) -> str:
    """The rig in a few lines per part, for people."""
    lines = [f"rig {rig.name}" + (f": {rig.description}" if rig.description else "")]
    parties = ", ".join(f"{name} {eui.hex().upper()}" for name, eui in rig.pki.parties.items())
    lines += [f"  pki      {rig.pki.describe()}", f"           parties: {parties}"]
    lines.append(f"  bus      {rig.bus.url}")
    if len(rig.processes) > 1:
        lines.append(f"  processes {', '.join(rig.processes)}")
    for place in rig.places:
        radio = place.radio
        lines.append(f"  place {place.name}: {radio.describe()}")
        if radio.driver.value == "ezsp":
            low, high = radio.ezsp_versions
            needs = [f"EZSP {low}..{high}"]
            if radio.stack_min is not None:
                needs.append("EmberZNet >= " + ".".join(map(str, radio.stack_min)))
            if radio.has_sub_ghz:
                needs.append("sub-GHz PHY")
            if rig.needs_cbke(place):
                needs.append("CBKE certificate")
            lines.append("    needs " + ", ".join(needs))
        for device in rig.devices_at(place.name):
            extra = []
            profile = rig.profile_path(device)
            if profile is not None:
                extra.append(f"profile {profile.name}")
            if device.relay is not None:
                extra.append(f"relay {device.relay}")
            if device.install_code is not None:
                extra.append("install code set")
            if device.process != "main":
                extra.append(f"process {device.process}")
            lines.append(
                f"    {device.name:<8} {device.role.value:<6} {device.eui.hex().upper()}  "
                f"{device.kind.value:<9} " + ", ".join(extra)
            )
    for instrument in rig.instruments:
        if instrument.simulated:
            where = "gbhil behavioural PSU"
        else:
            where = f"{instrument.driver} at {instrument.resource}"
            if instrument.backend:
                where += f" ({instrument.backend})"
        expect = " ".join(x for x in (instrument.model, instrument.serial) if x)
        lines.append(
            f"  instrument {instrument.name}: {where}, {instrument.role.value} on channel "
            f"{instrument.channel}" + (f", expects {expect}" if expect else "")
        )
    for relay in rig.relays:
        users = ", ".join(d.name for d in rig.devices if d.relay == relay.name) or "nothing"
        lines.append(
            f"  relay {relay.name}: {relay.instrument} channel {relay.channel}, feeds {users}"
        )
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "describe", "register"]
