"""GCS28 Set Clock on GSME: the GSME accepts a time only inside the validity window.

A battery GSME's clock drifts; the DCC sends a validity interval and the meter
adopts the CHF/GPF time when its own clock falls inside it, else it reports
its clock as unreliable (GBCS timing rules as the RTDS error scenario shows).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gbhil.devices.core import Command, Device, Outcome
from gbhil.gbcs.asn1 import asn1_to_json
from gbhil.gbcs.asn1_schemas import build_gcs28_response

GCS28 = 0x007F
TIME_RELIABLE = 0
TIME_UNRELIABLE = 2


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def handle_gcs28(device: Device, cmd: Command) -> Outcome:
    req = asn1_to_json(cmd.payload, GCS28, 1)  # type: ignore[arg-type]
    now = device.clock.now().astimezone(UTC)
    start, end = _time(req["validityIntervalStart"]), _time(req["validityIntervalEnd"])
    inside = start <= now <= end
    if hasattr(device, "clock_reliable"):
        device.clock_reliable = inside or bool(device.clock_reliable)
    status = TIME_RELIABLE if inside else TIME_UNRELIABLE
    return Outcome(build_gcs28_response(now.replace(microsecond=0), status))


def handlers() -> dict[int, Any]:
    return {GCS28: handle_gcs28}
