"""``gbhil firmware build|sign|verify``: GBCS OTA Upgrade Images from a shell.

Exit codes: 0 done / valid, 1 the image decodes but does not verify (signature, hash or
header differ from the manifest), 3 the image is malformed (names field and offset),
4 an input (payload, key, manifest) cannot be used; argparse usage errors are 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.dcc.inventory import DeviceType
from gbhil.firmware.image import (
    MAX_IMAGE_OCTETS,
    FirmwareImageError,
    ImageSpec,
    build_image,
    decode_image,
    file_version_from_text,
    sign_image,
    verify_image,
)
from gbhil.firmware.keys import load_signing_key, load_verifying_key, rig_supplier_keys
from gbhil.firmware.manifest import FirmwareManifest

EXIT_OK: Final = 0
EXIT_NOT_VERIFIED: Final = 1
EXIT_MALFORMED: Final = 3
EXIT_BAD_INPUT: Final = 4
MANIFEST_SUFFIX: Final = ".manifest.json"


class _InputError(Exception):
    """An input file or key that cannot be used (exit 4)."""


def _int(text: str) -> int:
    return int(text, 0)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("firmware", help="build, sign and verify GBCS OTA upgrade images")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    b = verbs.add_parser("build", help="wrap a manufacturer image in an OTA upgrade image")
    b.add_argument("payload", type=Path, help="the manufacturer image (opaque bytes)")
    b.add_argument("-o", "--output", type=Path, required=True)
    b.add_argument("--manifest", type=Path, help=f"default: OUTPUT{MANIFEST_SUFFIX}")
    b.add_argument("--version", required=True, help="firmware version, 8 hex digits")
    b.add_argument("--manufacturer-code", type=_int, required=True, help="Zigbee, e.g. 0x121D")
    b.add_argument("--image-type", type=_int, default=0)
    b.add_argument("--header-string", default="gbhil firmware image")
    b.add_argument("--hardware-versions", type=_int, nargs=2, metavar=("MIN", "MAX"))
    b.add_argument("--device-type", required=True, choices=[str(t) for t in DeviceType])
    b.add_argument("--manufacturer", required=True, help="CPL Device Model manufacturer")
    b.add_argument("--model", required=True, help="CPL Device Model model")
    b.add_argument("--hardware-version", default="")
    b.add_argument("--gbcs", action="append", default=[], help="GBCS version (repeatable)")
    b.add_argument("--ts", action="append", default=[],
                   help="Technical Specification version, e.g. SMETS2 v5.0 (repeatable)")
    _key_options(b, signing=True)
    b.add_argument("--unsigned", action="store_true", help="no trailer (SR 11.4 PPMID image)")
    b.set_defaults(func=cmd_build)

    s = verbs.add_parser("sign", help="add the supplier signature to an unsigned image")
    s.add_argument("image", type=Path)
    s.add_argument("-o", "--output", type=Path, required=True)
    s.add_argument("--manifest", type=Path, help="rewrite this manifest for the signed image")
    _key_options(s, signing=True)
    s.set_defaults(func=cmd_sign)

    v = verbs.add_parser("verify", help="check structure, size, hash, signature, manifest")
    v.add_argument("image", type=Path)
    v.add_argument("--manifest", type=Path, help="compare header, size and hash with it")
    _key_options(v, signing=False)
    v.add_argument("--unsigned", action="store_true", help="expect no trailer (SR 11.4)")
    v.add_argument("--max-size", type=int, default=MAX_IMAGE_OCTETS,
                   help=f"octets (default {MAX_IMAGE_OCTETS}, the DUIS FirmwareImage cap)")
    v.add_argument("--json", action="store_true", help="one JSON object, with the CPL entry")
    v.set_defaults(func=cmd_verify)


def _key_options(p: argparse.ArgumentParser, *, signing: bool) -> None:
    group = p.add_mutually_exclusive_group()
    if signing:
        group.add_argument("--key", type=Path, help="supplier DS private key (PEM)")
    else:
        group.add_argument("--cert", type=Path, help="supplier DS certificate or key (PEM)")
    group.add_argument("--rig-seed", type=int, default=None,
                       help="use the simulated rig's supplier DS key (rig PKI seed)")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _InputError(f"{what} {path}: {exc.strerror or exc}") from None


def _signer(args: argparse.Namespace) -> ec.EllipticCurvePrivateKey | None:
    if getattr(args, "key", None) is not None:
        _read(args.key, "key")
        return load_signing_key(args.key)
    if args.rig_seed is not None:
        return rig_supplier_keys(args.rig_seed)[0]
    return None


def _verifier(args: argparse.Namespace) -> ec.EllipticCurvePublicKey | None:
    if args.cert is not None:
        _read(args.cert, "certificate")
        return load_verifying_key(args.cert)
    if args.rig_seed is not None:
        return rig_supplier_keys(args.rig_seed)[1]
    return None


def _run(args: argparse.Namespace, body: Any) -> int:
    try:
        return int(body(args))
    except _InputError as exc:
        print(f"gbhil firmware: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except FirmwareImageError as exc:
        print(f"gbhil firmware: {exc}", file=sys.stderr)
        return EXIT_MALFORMED if args.verb == "verify" and args.stage == "image" else (
            EXIT_BAD_INPUT)


def cmd_build(args: argparse.Namespace) -> int:
    args.stage = "input"
    return _run(args, _build)


def _build(args: argparse.Namespace) -> int:
    payload = _read(args.payload, "payload")
    signer = _signer(args)
    if signer is None and not args.unsigned:
        raise _InputError("a signed image needs --key PEM or --rig-seed N (or --unsigned)")
    if signer is not None and args.unsigned:
        raise _InputError("--unsigned with a signing key: choose one")
    spec = ImageSpec(args.manufacturer_code, args.image_type,
                     file_version_from_text(args.version), args.header_string.encode("ascii",
                                                                                    "replace"),
                     None if args.hardware_versions is None else tuple(args.hardware_versions))
    data = build_image(payload, spec, signer=signer)
    manifest = FirmwareManifest.for_image(
        decode_image(data, signed=signer is not None), len(data), device_type=args.device_type,
        manufacturer=args.manufacturer, model=args.model,
        hardware_version=args.hardware_version, gbcs_versions=tuple(args.gbcs),
        technical_specifications=tuple(args.ts))
    manifest_path = args.manifest or args.output.with_name(args.output.name + MANIFEST_SUFFIX)
    args.output.write_bytes(data)
    manifest_path.write_text(manifest.dumps(), encoding="utf-8")
    print(f"{args.output}: {len(data)} octets, firmware version {manifest.firmware_version}, "
          f"manufacturer image hash {manifest.image_hash.hex().upper()}, "
          f"{'signed' if manifest.signed else 'unsigned'}; manifest {manifest_path}")
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    args.stage = "input"
    return _run(args, _sign)


def _sign(args: argparse.Namespace) -> int:
    data = _read(args.image, "image")
    signer = _signer(args)
    if signer is None:
        raise _InputError("signing needs --key PEM or --rig-seed N")
    signed = sign_image(data, signer)
    if args.manifest is not None:
        old = FirmwareManifest.loads(_read(args.manifest, "manifest").decode("utf-8", "replace"))
        new = FirmwareManifest.for_image(
            decode_image(signed, signed=True), len(signed), device_type=old.device_type,
            manufacturer=old.manufacturer, model=old.model,
            hardware_version=old.hardware_version, gbcs_versions=old.gbcs_versions,
            technical_specifications=old.technical_specifications)
        args.manifest.write_text(new.dumps(), encoding="utf-8")
    args.output.write_bytes(signed)
    print(f"{args.output}: signed, {len(signed)} octets")
    return EXIT_OK


def _signature_state(unsigned: bool, key: object, problems: tuple[str, ...]) -> str:
    if unsigned:
        return "none (unsigned image)"
    if key is None:
        return "not checked (no key)"
    return "failed" if any(p.startswith("signature") for p in problems) else "verified"


def cmd_verify(args: argparse.Namespace) -> int:
    args.stage = "input"
    return _run(args, _verify)


def _verify(args: argparse.Namespace) -> int:
    data = _read(args.image, "image")
    manifest = None
    if args.manifest is not None:
        manifest = FirmwareManifest.loads(_read(args.manifest, "manifest").decode("utf-8",
                                                                                 "replace"))
    key = _verifier(args)
    args.stage = "image"
    result = verify_image(data, key=key, signed=not args.unsigned,
                          expected=None if manifest is None else manifest.spec,
                          expected_hash=None if manifest is None else manifest.image_hash,
                          max_octets=args.max_size)
    problems = list(result.problems)
    if manifest is not None:
        if manifest.image_size != len(data):
            problems.append(f"size {len(data)} is not the manifest's {manifest.image_size}")
        if manifest.signed == args.unsigned:
            problems.append(f"the manifest says {'signed' if manifest.signed else 'unsigned'}")
    report: dict[str, Any] = {
        "valid": not problems, "problems": problems, "size": len(data),
        "firmware_version": result.firmware_version,
        "manufacturer_image_hash": result.image_hash.hex().upper(),
        "signature": _signature_state(args.unsigned, key, result.problems),
    }
    if manifest is not None and not problems:
        entry = manifest.cpl_entry()
        report["cpl_entry"] = {
            "device_type": str(entry.device_type), "manufacturer": manifest.manufacturer,
            "model": manifest.model, "hardware_version": manifest.hardware_version,
            "firmware_version": entry.firmware_version,
            "gbcs_versions": list(entry.gbcs_versions),
            "technical_specifications": list(entry.technical_specifications),
            "firmware_hash": result.image_hash.hex().upper(),
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        state = "valid" if not problems else "NOT VALID"
        print(f"{args.image}: {state}; {len(data)} octets, firmware version "
              f"{result.firmware_version}, manufacturer image hash "
              f"{report['manufacturer_image_hash']}")
        for problem in problems:
            print(f"  problem: {problem}")
        if "cpl_entry" in report:
            print(f"  CPL entry: {json.dumps(report['cpl_entry'])}")
    return EXIT_OK if not problems else EXIT_NOT_VERIFIED
