"""11.2 read firmware version (PPMID/HCALCS part) and 11.3 activate firmware.

ECS52 and GCS38 are plain attribute reads (see :mod:`reads`); CS08 asks a PPMID or HCALCS
through the ACB with an ASN.1 NULL; CS06 names the manufacturer image hash and repeats the
command's own Originator Counter inside the payload (gbcs-facts 2.10).
"""

from __future__ import annotations

from gbhil.dcc.transforms.base import (
    BuildContext,
    BuildError,
    asn1_command,
    asn1_time,
    builder,
    text,
)

#: CS06 carries a SHA-256 manufacturer image hash.
FIRMWARE_HASH_LEN = 32


@builder("CS08")
def read_han_firmware_version(ctx: BuildContext) -> bytes:
    return asn1_command(ctx.message_code, {})


@builder("CS06")
def activate_firmware(ctx: BuildContext) -> bytes:
    raw = text(ctx.body, "FirmwareHash")
    try:
        image_hash = bytes.fromhex(raw)
    except ValueError:
        raise BuildError(f"FirmwareHash {raw!r} is not hex") from None
    if len(image_hash) != FIRMWARE_HASH_LEN:
        raise BuildError(f"FirmwareHash has {len(image_hash)} octets, not {FIRMWARE_HASH_LEN}")
    return asn1_command(
        ctx.message_code,
        {
            "manufacturerImageHash": image_hash,
            "originatorCounter": ctx.counter,
            "executionDateTime": asn1_time(ctx.execution),
        },
    )
