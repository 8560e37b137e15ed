"""DCC alert codes (``DCCAlertCode``), their ``DCCAlert`` bodies, and the throttling fields.

One catalogue, as data. The XSD lists the 66 codes (AD1, N1-N31, N33-N65, N999) but does
not tie a code to a body; the code -> body table is DUIS 3.9.1 "DCCAlert Definition" (seed
003). Names and triggers exist publicly for a few codes only (seed 004, DUIS 4.0 release
note table 41 excerpts: AD1, N18-N21, N49-N51, N57, N58); the others carry the body's
trigger description and ``name=None`` rather than an invented name.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class AlertBody:
    """One ``sr:DCCAlert`` choice: the XML element name and what triggers it."""

    element: str
    trigger: str
    clause: str


#: The 24 ``DCCAlert`` bodies in XSD order (element names as in the XSD choice).
ALERT_BODIES: Mapping[str, AlertBody] = MappingProxyType({
    b.element: b
    for b in (
        AlertBody("PowerOutageEvent", "a device's power has failed", "3.9.2"),
        AlertBody("DeviceStatusChangeEvent", "a device's SMI status has changed", "3.9.3"),
        AlertBody("DSPScheduleRemoval", "a DCC schedule is to be deleted", "3.9.4"),
        AlertBody("CommandFailure", "a command has failed", "3.9.5"),
        AlertBody("FirmwareDistributionFailure",
                  "a firmware distribution command to the CSP failed for some devices", "3.9.6"),
        AlertBody("UpdateHANDeviceLogResult",
                  "a CH whitelist addition succeeded, or no alert reached the DCC", "3.9.7"),
        AlertBody("ChangeOfSupplier",
                  "an Update Security Credentials (CoS) succeeded or failed CoS access control",
                  "3.9.8"),
        AlertBody("DeviceLogRestored", "the CHF or GPF device log has been restored", "3.9.9"),
        AlertBody("PPMIDAlert", "the PPMID generated an alert", "3.9.10"),
        AlertBody("SecurityCredentialsUpdated",
                  "Update Security Credentials succeeded for a Remote Party other than the "
                  "request's sender", "3.9.11"),
        AlertBody("PPMIDRemoval",
                  "a PPMID joined to both ESME and GSME was removed by Update HAN Device Log",
                  "3.9.12"),
        AlertBody("QuarantinedRequest",
                  "a request was quarantined (anomaly detection threshold or limit breached)",
                  "3.9.17"),
        AlertBody("FirmwareVersionMismatch",
                  "the firmware version a device reports differs from the SMI", "3.9.13"),
        AlertBody("DualBandCHAlert", "the dual-band CHF generated an alert", "3.9.14"),
        AlertBody("S1SPAlertDSP",
                  "a SMETS1 Service Provider reports a validation error or notification, or "
                  "provides a UTRN for SRV 2.2", "3.9.15"),
        AlertBody("SMETS1CHFirmwareNotification",
                  "SMETS1 CH or PPMID firmware distributed or activated", "3.9.18"),
        AlertBody("ALCSHCALCSConfigurationChange", "the ESME's ALCS/HCALCS configuration changed",
                  "3.9.19"),
        AlertBody("FirmwareUpgradeRequested",
                  "lists devices the CSPs approved for a firmware update", "3.9.20"),
        AlertBody("CSPFirmwareDeliveryStatus",
                  "the CSP reports on a firmware image transfer to a comms hub", "3.9.21"),
        AlertBody("CommsHubAlert", "the comms hub generated an alert", "3.9.22"),
        AlertBody("ECoSAlert", "the ECoS Party generated an alert", "3.9.23"),
        AlertBody("CommsHubFirmwareActivation",
                  "new firmware was activated on a SMETS2+ comms hub", "3.9.25"),
        AlertBody("CoSCertificateAlert",
                  "a device was installed with a CoS trust-anchor certificate of no active CoS "
                  "Party", "3.9.24"),
        AlertBody("DUISVersionMismatch",
                  "the alert or response for the User is not compatible with its DUIS XSD "
                  "version", "3.9.16"),
    )
})


@dataclass(frozen=True, slots=True)
class DccAlertCode:
    """One ``DCCAlertCode``: the body it carries and whatever else is public about it."""

    code: str
    body: str
    name: str | None = None
    trigger: str | None = None
    recipients: tuple[str, ...] = ()
    applies_to: str | None = None

    @property
    def description(self) -> str:
        """Name if public, else the trigger, else the body's trigger."""
        return self.name or self.trigger or ALERT_BODIES[self.body].trigger


#: DCC alert code -> body element, from the "Mandatory for Alert Codes" column (seed 003).
_BODY_OF: dict[str, tuple[str, ...]] = {
    "PowerOutageEvent": ("AD1",),
    "DeviceStatusChangeEvent": ("N1", "N2", "N8", "N9", "N16", "N28", "N29", "N44", "N45"),
    "DSPScheduleRemoval": ("N4", "N5", "N6", "N17", "N37", "N40"),
    "CommandFailure": ("N3", "N7", "N10", "N11", "N12", "N13", "N14", "N15", "N33", "N34",
                       "N35", "N36", "N38", "N41", "N53"),
    "FirmwareDistributionFailure": ("N18", "N19", "N20", "N21", "N22", "N23"),
    "UpdateHANDeviceLogResult": ("N24", "N25"),
    "ChangeOfSupplier": ("N26", "N27"),
    "DeviceLogRestored": ("N30", "N31"),
    "PPMIDAlert": ("N39",),
    "SecurityCredentialsUpdated": ("N42",),
    "PPMIDRemoval": ("N43",),
    "QuarantinedRequest": ("N46", "N47", "N48"),
    "FirmwareVersionMismatch": ("N49", "N50", "N51", "N52"),
    "DualBandCHAlert": ("N54",),
    "S1SPAlertDSP": ("N55", "N56"),
    "SMETS1CHFirmwareNotification": ("N57",),
    "ALCSHCALCSConfigurationChange": ("N58",),
    "FirmwareUpgradeRequested": ("N59",),
    "CSPFirmwareDeliveryStatus": ("N60", "N61"),
    "CommsHubAlert": ("N62",),
    "ECoSAlert": ("N63",),
    "CommsHubFirmwareActivation": ("N64",),
    "CoSCertificateAlert": ("N65",),
    "DUISVersionMismatch": ("N999",),
}

_FW_SENDER = ("Update Firmware request sender",)

#: What seeds 003/004 say beyond the body: code -> (name, trigger, recipients, applies to).
_DETAILS: dict[str, tuple[str | None, str | None, tuple[str, ...], str | None]] = {
    "AD1": ("Power Outage Event",
            "the CSP reports loss of power at the comms hub lasting at least three minutes",
            ("IS", "ED", "GS", "GT"), "SMETS2+"),
    "N18": ("Firmware Version / Hash mismatch",
            "the firmware hash calculated by the CSP or S1SP does not match the firmware "
            "version", _FW_SENDER, "All"),
    "N19": ("Firmware Distribution Device ID identification failure",
            "the CSP or S1SP cannot identify the comms hub or meter an image is for",
            _FW_SENDER, "All"),
    "N20": ("Firmware image provided is too large",
            "the CSP or S1SP cannot process the request: the image is too large",
            _FW_SENDER, "All"),
    "N21": ("Unknown Firmware Version",
            "the CSP or S1SP does not recognise the firmware version", _FW_SENDER, "All"),
    "N49": ("Firmware Version Updated in the Smart Metering Inventory",
            "Read Firmware Version (11.2) on an ESME, GSME, CHF or SMETS1 PPMID returned a "
            "version differing from the SMI that is Current on the CPL",
            ("IS", "GS"), "All"),
    "N50": ("Firmware Version no longer valid on the CPL",
            "11.2, 11.3 or a future-dated activation alert (0x8F66 / 0x00CA) returned a "
            "version differing from the SMI that is Removed on the CPL",
            ("IS", "GS"), "All"),
    "N51": ("Invalid Firmware Version",
            "11.2, 11.3 or a future-dated activation alert returned a version differing "
            "from the SMI that is not on the CPL", ("IS", "GS"), "All"),
    "N52": (None,
            "the GSME firmware version in the SMI differs from what 11.2 to the GPF returned",
            (), None),
    "N54": (None, "the dual-band CHF generated an alert", (), None),
    "N55": (None, "a SMETS1 Service Provider reports a validation error or notification",
            (), None),
    "N56": (None, "a SMETS1 Service Provider provides a prepayment UTRN for SRV 2.2", (), None),
    "N57": ("SMETS1 CH or PPMID Firmware notification",
            "firmware distribution or activation for a SMETS1 CH or PPMID, told to the gas "
            "supplier of the installation", ("GS",), "SMETS1"),
    "N58": ("ALCS/HCALCS configuration change",
            "ALCS/HCALCS configuration changed on the ESME (6.14.1, 6.14.2, 6.14.3 or a "
            "0x8F66 / 0x00CC future-dated execution alert)", ("ED",), "SMETS2+"),
}


def _build() -> dict[str, DccAlertCode]:
    table: dict[str, DccAlertCode] = {}
    for body, codes in _BODY_OF.items():
        for code in codes:
            name, trigger, recipients, applies = _DETAILS.get(code, (None, None, (), None))
            table[code] = DccAlertCode(code, body, name, trigger, recipients, applies)

    def order(code: str) -> tuple[int, int]:
        return (0, 0) if code == "AD1" else (1, int(code[1:]))

    return {code: table[code] for code in sorted(table, key=order)}


#: All 66 DCC alert codes of DUIS V5.4, AD1 first then numeric order.
DCC_ALERT_CODES: Mapping[str, DccAlertCode] = MappingProxyType(_build())

POWER_OUTAGE = "AD1"
#: AD1 is raised for a loss of power at the comms hub lasting at least this long.
POWER_OUTAGE_MIN_DURATION = dt.timedelta(minutes=3)


def dcc_alert_code(code: str) -> DccAlertCode:
    """The catalogue entry of a DCC alert code; KeyError names an unknown one."""
    try:
        return DCC_ALERT_CODES[code]
    except KeyError:
        raise KeyError(f"{code!r} is not a DUIS V5.4 DCC alert code") from None


def body_for(code: str) -> str:
    """The ``DCCAlert`` child element a DCC alert with ``code`` must carry."""
    return dcc_alert_code(code).body


def codes_for(body: str) -> tuple[str, ...]:
    """Every DCC alert code carrying the ``body`` element."""
    if body not in ALERT_BODIES:
        raise KeyError(f"{body!r} is not a DCCAlert body element")
    return _BODY_OF[body]


# --- Alert throttling (SECMP0062, "Alert Storm Protection") ---------------------------------


@dataclass(frozen=True, slots=True)
class ThrottlingField:
    """An optional ``xs:unsignedInt`` the DCC adds while it throttles an alert code."""

    element: str
    meaning: str


THROTTLED_ALERT_SEQUENCE_ID = ThrottlingField(
    "ThrottledAlertSequenceId",
    "present only while the alert code is being throttled: this alert's sequence number "
    "since throttling of the code began",
)
THROTTLED_ALERT_COUNT = ThrottlingField(
    "ThrottledAlertCount",
    "the number of alerts the DCC consolidated since the last alert it forwarded to the User",
)
#: In XSD order (both sit between the alert code and the body/payload).
THROTTLING_FIELDS: tuple[ThrottlingField, ...] = (THROTTLED_ALERT_SEQUENCE_ID,
                                                  THROTTLED_ALERT_COUNT)
#: Messages carrying the throttling fields (DUIS 4.0 release note, SECMP0062).
THROTTLED_MESSAGES: tuple[str, ...] = (
    "DeviceAlertMessage", "DCCAlertMessage", "SMETS1ResponseMessage"
)
#: xs:unsignedInt bounds of both fields.
THROTTLING_FIELD_MAX = 2**32 - 1
