"""Firmware slots and the CS06 / CS08 use cases.

A device runs one image and may hold one more, delivered over the HAN (OTA) and
identified by the SHA-256 of its manufacturer image; CS06 activates it now or at
a future date (0x00CA alert with 8F66/8F67), CS08 reads the running version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gbhil.devices.core import Alert, Command, Deferred, Device, Outcome
from gbhil.gbcs.asn1 import asn1_to_json
from gbhil.gbcs.asn1_schemas import (
    build_cs06_alert,
    build_cs06_response,
    build_cs08_response,
)

CS06 = 0x0012
CS06_ALERT = 0x00CA
CS08 = 0x0129
CANCEL_TIME = "9999-12-31T23:59:59Z"
ACTIVATE_OK = 0
ACTIVATE_NO_IMAGE = 1
ACTIVATE_HASH_MISMATCH = 2
ACTIVATE_FAILURE = 3


@dataclass(slots=True)
class FirmwareSlots:
    """The running image and at most one staged image, by manufacturer-image hash."""

    running_version: bytes
    running_hash: bytes = b""
    staged_version: bytes | None = None
    staged_hash: bytes | None = None

    def stage(self, manufacturer_image: bytes, version: bytes) -> bytes:
        """Keep a received image for a later CS06; returns its hash (what FDRA reports)."""
        digest = hashlib.sha256(manufacturer_image).digest()
        self.staged_version, self.staged_hash = version, digest
        return digest

    def activate(self, image_hash: bytes) -> int:
        if self.staged_hash is None:
            return ACTIVATE_NO_IMAGE
        if image_hash != self.staged_hash:
            return ACTIVATE_HASH_MISMATCH
        assert self.staged_version is not None
        self.running_version, self.running_hash = self.staged_version, self.staged_hash
        self.staged_version = self.staged_hash = None
        return ACTIVATE_OK


DEFAULT_VERSION = b"\x01\x00\x00\x00"


def slots(device: Device) -> FirmwareSlots:
    fw = getattr(device, "firmware", None)
    if fw is None:
        fw = FirmwareSlots(DEFAULT_VERSION)
        device.firmware = fw  # type: ignore[attr-defined]
    return fw


def handle_cs06(device: Device, cmd: Command) -> Outcome:
    req = asn1_to_json(cmd.payload, CS06, 1)  # type: ignore[arg-type]
    fw = slots(device)
    image_hash = bytes.fromhex(req["manufacturerImageHash"])
    when = req.get("executionDateTime")
    if when == CANCEL_TIME:
        device.cancel(lambda d: d.message_code == CS06)
        return Outcome(build_cs06_response())
    if req.get("originatorCounter") != cmd.counter:
        # The counter inside the payload must repeat the header's (replay binding).
        return Outcome(build_cs06_response(ACTIVATE_FAILURE, fw.running_version))
    at = datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None
    if at is not None and at > cmd.received_at:

        def run(now: datetime) -> list[Alert]:
            code = fw.activate(image_hash)
            alert = build_cs06_alert(now.astimezone(UTC), cmd.counter, code, fw.running_version)
            return [Alert(CS06_ALERT, alert, cmd.originator)]

        device.cancel(lambda d: d.message_code == CS06)
        return Outcome(
            build_cs06_response(),
            deferred=[Deferred(at, run, CS06, cmd.counter, cmd.originator, "CS06")],
        )
    code = fw.activate(image_hash)
    return Outcome(build_cs06_response(code, fw.running_version))


def handle_cs08(device: Device, cmd: Command) -> Outcome:
    return Outcome(build_cs08_response(slots(device).running_version))


def handlers() -> dict[int, Any]:
    return {CS06: handle_cs06, CS08: handle_cs08}
