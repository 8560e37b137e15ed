"""Firmware versions devices report in GBCS responses and alerts (seed 004 N49-N51 triggers).

The DCC compares what a device says it runs with the Smart Metering Inventory after:

* 11.2 Read Firmware Version: ECS52 (ESME, CHF: a DLMS octet-string), GCS38 (GSME: one
  ZCL Read Attributes record) and CS08 (PPMID, HCALCS: ASN.1 ``firmwareVersion`` with
  ``responseCode`` 0 "Read Success");
* 11.3 Activate Firmware: the CS06 response's ``executionOutcome`` with ``responseCode``
  0 (on a refusal the device repeats its running version, which is no "successful
  completion");
* the Future Dated Firmware Activation alert (message code 0x00CA) with alert code 0x8F66
  and outcome 0.

Versions are written as the SMI holds them: 1-4 octets as upper-case hex (``01000000``),
longer ones (up to 8) as their ASCII text (the simulated GSME's ``1.0.0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gbhil.dcc.inventory_requests import FirmwareReport
from gbhil.gbcs import asn1, dlms, gbz, zcl
from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.asn1_schemas import ALERT_FUTURE_DATED_SUCCESS, asn1_to_json
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import DecodedMessage
from gbhil.gbcs.usecases import MESSAGE_CODES

#: 11.2 use cases (duis-facts 1.6) and the 11.3 one.
READ_FIRMWARE_USE_CASES: Final = frozenset({"ECS52", "GCS38", "CS08"})
ACTIVATE_FIRMWARE_USE_CASE: Final = "CS06"
#: Message code of the Future Dated Firmware Activation alert (seed 004 table 41, N50/N51).
FUTURE_DATED_ACTIVATION_ALERT: Final = 0x00CA
#: ``responseCode`` of CS06 / CS08 meaning success (GBCS; asn1_schemas' code tables).
DEVICE_SUCCESS: Final = 0
#: Longest firmware version DUIS carries (FirmwareVersionMismatch: 1-8 characters).
MAX_VERSION_CHARS: Final = 8
_HEX_OCTETS: Final = 4


@dataclass(frozen=True, slots=True)
class ReportedVersion:
    """A version a device reported, and which seed 004 trigger reported it."""

    via: FirmwareReport
    version: str


def version_text(raw: bytes) -> str | None:
    """The SMI form of the octets a device reports, or None when they cannot be one."""
    if not raw or len(raw) > MAX_VERSION_CHARS:
        return None
    if len(raw) <= _HEX_OCTETS:
        return raw.hex().upper()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def reported_version(msg: DecodedMessage) -> ReportedVersion | None:
    """The firmware version ``msg`` reports after a successful 11.2 / 11.3 or a 0x8F66
    future-dated activation; None for any other message (or an unsuccessful one)."""
    gs = msg.frame.gs
    if gs.cra is Cra.ALERT:
        payload = msg.payload
        if gs.message_code != FUTURE_DATED_ACTIVATION_ALERT or not isinstance(
                payload, asn1.Asn1Node) or asn1.alert_code(payload) != ALERT_FUTURE_DATED_SUCCESS:
            return None
        fields = _asn1_fields(msg)
        if fields is None:
            return None
        return _outcome(fields.get("executionOutcome"), FirmwareReport.FUTURE_DATED_ACTIVATION)
    if gs.cra is not Cra.RESPONSE:
        return None
    use_case = MESSAGE_CODES[gs.message_code].use_case if gs.message_code in MESSAGE_CODES \
        else ""
    if use_case == ACTIVATE_FIRMWARE_USE_CASE:
        fields = _asn1_fields(msg)
        return None if fields is None else _outcome(fields.get("executionOutcome"),
                                                    FirmwareReport.ACTIVATE_FIRMWARE)
    if use_case not in READ_FIRMWARE_USE_CASES:
        return None
    raw = _read_octets(msg)
    version = None if raw is None else version_text(raw)
    return None if version is None else ReportedVersion(FirmwareReport.READ_FIRMWARE, version)


def _asn1_fields(msg: DecodedMessage) -> dict[str, Any] | None:
    if not isinstance(msg.payload, asn1.Asn1Node):
        return None
    try:
        return asn1_to_json(msg.payload, msg.frame.gs.message_code, int(msg.frame.gs.cra),
                            strict=True)
    except GbcsError:
        return None


def _outcome(outcome: object, via: FirmwareReport) -> ReportedVersion | None:
    """A CS06 ``executionOutcome`` (None when the command was only accepted)."""
    if not isinstance(outcome, dict) or outcome.get("responseCode") != DEVICE_SUCCESS:
        return None
    raw = _octets(outcome.get("firmwareVersion"))
    version = None if raw is None else version_text(raw)
    return None if version is None else ReportedVersion(via, version)


def _octets(text: object) -> bytes | None:
    """The octets of a hex ``firmwareVersion`` field (None when it is not hex)."""
    try:
        return bytes.fromhex(str(text)) if text is not None else None
    except ValueError:
        return None


def _read_octets(msg: DecodedMessage) -> bytes | None:
    payload = msg.payload
    if isinstance(payload, dlms.AccessResponse):  # ECS52
        value = getattr(payload.data[0], "value", None) if payload.data else None
        return bytes(value) if isinstance(value, bytes | bytearray) else None
    if isinstance(payload, gbz.GbzMessage):  # GCS38: one attribute asked for
        for component in payload.components:
            body = getattr(component, "payload", None)
            if not isinstance(body, zcl.ReadAttributesResponse):
                continue
            for record in body.records:
                if record.status == cat.ZCL_STATUS_SUCCESS and record.value is not None \
                        and isinstance(record.value.value, bytes):
                    return record.value.value
        return None
    if isinstance(payload, asn1.Asn1Node):  # CS08
        fields = _asn1_fields(msg)
        if fields is None or fields.get("responseCode") != DEVICE_SUCCESS:
            return None
        return _octets(fields.get("firmwareVersion"))
    return None


__all__ = [
    "ACTIVATE_FIRMWARE_USE_CASE", "FUTURE_DATED_ACTIVATION_ALERT", "READ_FIRMWARE_USE_CASES",
    "ReportedVersion", "reported_version", "version_text",
]
