"""CS03 / CS04 / CS07: a device's own HAN device log (who it may talk to).

Meters and PPMIDs keep a log of the devices they are joined with; the CHF's
larger device log (CCS use cases) lives in gbhil.devices.chf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gbhil.devices.core import Command, Device, Outcome
from gbhil.gbcs.asn1 import asn1_to_json
from gbhil.gbcs.asn1_schemas import Direction, json_to_asn1

JOIN_CODES = frozenset({0x000D, 0x000E, 0x00AB, 0x00AF})
UNJOIN_CODES = frozenset({0x000F, 0x0010})
READ_JOIN_DETAILS = 0x0013
JOIN_SUCCESS = 0
JOIN_LOG_FULL = 2
JOIN_INCOMPATIBLE = 3
UNJOIN_SUCCESS = 0
UNJOIN_NOT_IN_LOG = 1
#: A device's own log holds few entries (GBCS: at least five).
DEVICE_LOG_CAPACITY = 5


@dataclass(slots=True)
class JoinLog:
    """Entity ID -> GBCS device type (0 GSME, 1 ESME, 2 CHF, 3 GPF, 4 HCALCS, 5 PPMID, 6 type 2)."""

    entries: dict[bytes, int] = field(default_factory=dict)
    capacity: int = DEVICE_LOG_CAPACITY


def _log(device: Device) -> JoinLog:
    log = getattr(device, "join_log", None)
    if log is None:
        log = JoinLog()
        device.join_log = log  # type: ignore[attr-defined]
    return log


def _eui(value: str) -> bytes:
    return bytes.fromhex(value.replace("-", ""))


def handle_join(device: Device, cmd: Command) -> Outcome:
    req = asn1_to_json(cmd.payload, cmd.message_code, 1)  # type: ignore[arg-type]
    log = _log(device)
    eui, kind = _eui(req["entityId"]), req["deviceType"]
    if eui in log.entries and log.entries[eui] != kind:
        code = JOIN_INCOMPATIBLE
    elif eui not in log.entries and len(log.entries) >= log.capacity:
        code = JOIN_LOG_FULL
    else:
        log.entries[eui] = kind
        code = JOIN_SUCCESS
    return Outcome(json_to_asn1({"responseCode": code}, cmd.message_code, Direction.RESPONSE))


def handle_unjoin(device: Device, cmd: Command) -> Outcome:
    req = asn1_to_json(cmd.payload, cmd.message_code, 1)  # type: ignore[arg-type]
    log = _log(device)
    code = (
        UNJOIN_SUCCESS
        if log.entries.pop(_eui(req["entityId"]), None) is not None
        else UNJOIN_NOT_IN_LOG
    )
    return Outcome(json_to_asn1({"responseCode": code}, cmd.message_code, Direction.RESPONSE))


#: Named fault: the device cannot read its own device log (CS07 "read failure").
FAULT_JOIN_LOG_READ = "join-log-read"
READ_FAILURE = 1


def handle_read_join_details(device: Device, cmd: Command) -> Outcome:
    if FAULT_JOIN_LOG_READ in device.faults:
        body = {"responseCode": READ_FAILURE}  # RTDS omits the entries on failure
        return Outcome(json_to_asn1(body, READ_JOIN_DETAILS, Direction.RESPONSE))
    log = _log(device)
    body: dict[str, Any] = {
        "responseCode": 0,
        "deviceLogEntries": [{"deviceId": e, "deviceType": t} for e, t in log.entries.items()],
    }
    return Outcome(json_to_asn1(body, READ_JOIN_DETAILS, Direction.RESPONSE))


def inject_recorded_failure(device: Device, message_code: int, recorded: dict[str, Any]) -> bool:
    """A recorded CS07 read failure is a device-log read fault."""
    if message_code == READ_JOIN_DETAILS and recorded.get("responseCode", 0) != 0:
        device.faults.add(FAULT_JOIN_LOG_READ)
        return True
    return False


def handlers() -> dict[int, Any]:
    out: dict[int, Any] = dict.fromkeys(JOIN_CODES, handle_join)
    out.update(dict.fromkeys(UNJOIN_CODES, handle_unjoin))
    out[READ_JOIN_DETAILS] = handle_read_join_details
    return out
