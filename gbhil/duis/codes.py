"""DUIS response codes, the dual-band channel masks they police, and the HTTP statuses.

One catalogue, as data. Names and "applicable to" come from the DCC Systems Response
Codes table (DUIS 3.5.10, seed 003: the MP260 redline of Appendix AD 5.2); the SR-specific
codes from the SEC modification texts and the DUIS 4.0 release note (seeds 002, 004).
Conditions are summarised in gbhil's words. The XSD enumerates 194 codes; those without a
public meaning (E1000+, most ``[E|W]ssvvnn``) are absent here, so ``lookup`` returns None
for them while the schema still accepts them.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType


class CodeKind(enum.StrEnum):
    """The letter prefix of a response code."""

    INFORMATION = "I"
    ERROR = "E"
    WARNING = "W"


class ResponseType(enum.StrEnum):
    """Kinds of DUIS message a response code may travel in ("Applicable to response types")."""

    ACKNOWLEDGEMENT = "acknowledgement"
    SERVICE_RESPONSE = "service response"
    DCC_ALERT = "DCC alert"


_A = frozenset({ResponseType.ACKNOWLEDGEMENT})
_D = frozenset({ResponseType.DCC_ALERT})
_AD = frozenset({ResponseType.ACKNOWLEDGEMENT, ResponseType.DCC_ALERT})
_NOT_ACK = frozenset({ResponseType.SERVICE_RESPONSE, ResponseType.DCC_ALERT})
_UNSTATED: frozenset[ResponseType] = frozenset()


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """One response code: its name, when the DCC returns it, and where it may appear."""

    code: str
    name: str
    condition: str
    #: Message kinds it is applicable to; empty when the source text does not say.
    applies_to: frozenset[ResponseType]
    #: Service Reference of an SR-specific code (``E062801`` -> "6.28"), else None.
    service_reference: str | None = None
    #: Seed the entry comes from (``003`` etc., /work/shared/seeds).
    source: str = "003"
    note: str = ""

    @property
    def kind(self) -> CodeKind:
        return CodeKind(self.code[0])

    @property
    def is_error(self) -> bool:
        return self.kind is CodeKind.ERROR

    @property
    def in_acknowledgement(self) -> bool:
        return ResponseType.ACKNOWLEDGEMENT in self.applies_to

    @property
    def in_service_response(self) -> bool:
        return ResponseType.SERVICE_RESPONSE in self.applies_to

    @property
    def in_dcc_alert(self) -> bool:
        return ResponseType.DCC_ALERT in self.applies_to


def _sr_of(code: str) -> str | None:
    """``E062801`` -> "6.28", ``W081401`` -> "8.14"; generic codes -> None."""
    if len(code) != 7:
        return None
    return f"{int(code[1:3])}.{int(code[3:5])}"


_GENERIC: tuple[tuple[str, str, str, frozenset[ResponseType]], ...] = (
    ("I0", "Success", "the request had a successful outcome", _NOT_ACK),
    ("I99", "Acknowledgement",
     "a request for a device was accepted and passed access control (its response follows "
     "asynchronously), or a non-device request succeeded and its response carries no "
     "specific XML", _A),
    ("E1", "Failed Authorisation - Invalid User / User Role",
     "the User / User Role combination is not a valid SEC party / User Role", _AD),
    ("E2", "Failed Authorisation - Invalid User Role / Service Reference",
     "the User Role may not send this Service Reference", _A),
    ("E3", "Failed Authorisation - Invalid User Status",
     "the User's status does not allow sending this Service Reference", _AD),
    ("E4", "Failed Authorisation - Invalid User / User Role for Device",
     "the User Role is not authorised for the device at the required date and time "
     "(takes precedence over other errors)", _AD),
    ("E5", "Failed Authorisation - Invalid Device Status",
     "the device's SMI status is incompatible with the Service Reference", _AD),
    ("E11", "Failed Validation - Invalid Service Request / device type combination",
     "the Service Reference is not compatible with the target device's type", _A),
    ("E12", "Failed Validation - Invalid Request / Command Variant combination",
     "the Command Variant does not apply to this request type", _A),
    ("E13", "Failed Validation - Invalid Request Type for URL",
     "the request type does not belong to the URL it was sent to (e.g. a non-device "
     "request sent to the Transform URL)", _A),
    ("E17", "Failed Authorisation - Service Request or Signed Pre-Command is not available "
     "for Local Command Services",
     "the User Role / device status combination does not permit asking for a command for "
     "local delivery", _A),
    ("E19", "Failed Authorisation - Device doesn't exist", "the Device ID is invalid", _A),
    ("E20", "Communications Failure - Unable to Communicate with Device",
     "the DCC cannot establish communications with the device", _D),
    ("E21", "Communications Failure - No Response Received from Device",
     "the device did not answer an on-demand or future-dated command", _D),
    ("E30", "Time-out - Future Dated Command",
     "no device response on the expected date of a future-dated command", _D),
    ("E31", "Time-out - DSP Schedule / Future Dated (DSP) Command",
     "the DCC cannot reach, or get a response from, the device for a DSP-scheduled or "
     "future-dated (DSP) command", _D),
    ("E40", "Failed Sequenced Command - Invalid First Request",
     "a sequenced request has FirstInSequence true and a PrecedingServiceRequestID", _A),
    ("E41", "Failed Sequenced Command - Invalid Preceding Request ID",
     "the request's PrecedingServiceRequestID is also the preceding ID of another request "
     "in the same sequence", _A),
    ("E42", "Failed Sequenced Command - Circular Reference",
     "the request's own ID appears as its preceding ID or anywhere up its chain of "
     "preceding requests", _A),
    ("E43", "Failed Sequenced Command - Previous Request(s) Failure",
     "an earlier request of the sequence failed", _AD),
    ("E44", "Failed Sequenced Command - Previous Request(s) not received",
     "no response arrived for earlier request(s) of the sequence within the wait period",
     _AD),
    ("E45", "Failed Sequenced Command - Invalid Command Variant",
     "the Command Variant is not allowed for a sequenced request", _A),
    ("E46", "Failed Sequenced Command - Request after Last In Sequence",
     "the request depends on the last request of a sequence", _AD),
    ("E47", "Failed Sequenced Command - no response to On Demand Command received from device",
     "the device did not answer the previous command of the sequence", _AD),
    ("E48", "Failed Validation - Service Request Reference and Variant mismatch",
     "Service Reference and Service Reference Variant do not belong together", _A),
    ("E49", "Failed Validation - Service Request Format and Service Reference Variant mismatch",
     "the body format does not match the header's Service Reference Variant", _A),
    ("E50", "Local Command Services Not Returned",
     "a request for a command for local delivery did not return a command", _A),
    ("E51", "Failed Validation - Signed Pre-Command Message Code and Service Reference "
     "Variant mismatch",
     "the GBCS message code inside a Signed Pre-Command does not map to the header's "
     "Service Reference Variant", _A),
    ("E52", "Failed Validation - Unable to cancel Future Dated (DSP) Service Request",
     "a cancellation names no future-dated (DSP) request of that type the DCC can find", _A),
    ("E53", "Failed Sequenced Command - Future Dated (DSP) not first in sequence",
     "a future-dated (DSP) sequenced request is not the first of its sequence", _A),
    ("E54", "Failed Sequenced Command - Gas Service Request returns encrypted data",
     "a sequenced gas request would return encrypted data", _A),
    ("E55", "Failed Validation - Duplicate Request ID",
     "the RequestID duplicates another request still being processed", _A),
    ("E56", "Failed Validation - Service Request no longer supported",
     "a request from an older DUIS schema version is no longer accepted (not applicable "
     "to this DUIS version)", _AD),
    ("E57", "Failed Validation - Invalid Service Request / GBCS version combination",
     "the request is not compatible with the GBCS version of the target's device model "
     "(SMI device model -> CPL entry)", _AD),
    ("E58", "Communications Failure - Command not delivered to ESME",
     "the CHF could not deliver the command to the ESME (raised when the CHF sends GBCS "
     "alert 0x8F84)", _D),
    ("E59", "Dual Band CHF Sub GHz event",
     "the dual-band CHF reported a sub-GHz communications event (alerts 0x8F22, 0x8F24, "
     "0x8F29, 0x8F2B without payload; 0x8F20, 0x8F2C, 0x8F2D with payload)", _D),
    ("E60", "Failed Validation - Invalid Service Request for SMETS1 Devices",
     "the target is a SMETS1 device but the request is not a SMETS1 service request", _A),
    ("E61", "Failed Validation - Invalid Command Variant for SMETS1 Service Request",
     "the Command Variant is not valid for the SMETS1 service request", _A),
    ("E62", "SMETS1 Service Provider error or information",
     "a SMETS1 Service Provider reported an error or notification (details in the DCC "
     "alert's S1SPAlertCode)", _D),
    ("E63", "DCC Data Systems anti-Replay Intercept",
     "the DCC's replay protection rejected a SMETS1 service request", _A),
    ("E64", "Failed Validation - Originator ID is not the Notified Critical Supplier or "
     "Notified Critical Network Operator ID",
     "a SMETS1 critical or 'Top Up Device' request was not sent by the notified critical "
     "supplier / network operator", _A),
    ("E65", "Failed Validation - Certificate Role Mismatch",
     "the request or Signed Pre-Command is not signed with an organisation certificate of "
     "Remote Party Role 'xmlSign'", _A),
    ("E66", "Failed Delivery - Unable to deliver to CoS Party",
     "the DCC cannot establish communications with the CoS Party", _D),
    ("E67", "Timeout - No response received from CoS Party",
     "the CoS Party did not answer within the timeout", _D),
    ("E68", "Failed Validation - Service Request failed CoS Party Validation",
     "the CoS Party's validation checks rejected the request", _D),
    ("E69", "Failed Validation - CoS Service Request failed anti-replay checks",
     "the DCC's replay protection rejected the CoS request", _D),
    ("E70", "Failed Validation - CoS Anomaly Detection Threshold Breach",
     "a CoS-specific anomaly-detection volume threshold was exceeded", _D),
    ("E71", "Failed Validation - Invalid Response from CoS Party",
     "the CoS Party's authorisation payload or Signed Pre-Command is inconsistent with the "
     "original request", _D),
    ("E100", "Failed Authentication",
     "the request failed message authentication (DUIS 3.2.3: signature checks)", _A),
)

#: SR-specific codes whose condition text is in the seeds (code, name, condition, source).
_SPECIFIC: tuple[tuple[str, str, str, str, str], ...] = (
    ("E062801", "SetCHFSubGHzConfiguration channel mask",
     "referenced by each of the four sub-GHz channel-mask data items of SRV 6.28 (Pages "
     "28-31); the seeds do not reproduce its condition text", "003",
     "condition unverified; see CHANNEL_MASKS"),
    ("E062802", "SetCHFSubGHzConfiguration fewer than two channels on a used Page",
     "a lower-band channel mask (Page 28, 29 or 30) is used but selects fewer than two "
     "channels (SEC F4 annex: where Pages are used, at least two channels per Page)", "003",
     ""),
    ("E080902", "ReadDeviceLog feature not supported by the device's GBCS version",
     "the GBCS version of the device model recorded in the SMI does not support the "
     "features chosen in the request (e.g. ReadSecurityDetails before GBCS v3.2)", "004", ""),
    ("E080903", "ReadDeviceLog ReadSecurityDetails on a non-CHF",
     "ReadSecurityDetails is given but the target device is not a CHF", "004", ""),
    ("E081111", "Update HAN Device Log install code length",
     "the request is for a SMETS2 device but InstallCode is not 32 hex characters "
     "(16 octets)", "004", "CR1277"),
    ("E081401", "Comms Hub status update on a non-CHF",
     "the device being notified is not a CHF", "002", ""),
    ("E081402", "Comms Hub status update install date in the future",
     "the install date and time supplied lies in the future", "002", ""),
    ("W081401", "Comms Hub status update on a CHF not InstalledNotCommissioned",
     "the CHF's status is not InstalledNotCommissioned (the only compatible one); a CHF "
     "still Pending, and its GPF if also Pending, is moved to InstalledNotCommissioned",
     "002", "SRV 8.14.2 (MP081)"),
    ("W110101", "Update Firmware warning: Devices not passed on",
     "some Devices of DeviceIDList cannot take the image and are listed in the "
     "DSPUpdateFirmwareWarning (InvalidDeviceIDList, NotCommissionedDeviceIDList, ...); the "
     "others are still sent it. A SMETS1 CH or PPMID may be listed too, and is invalid when "
     "the sender is not the Lead Supplier for the SMETS1 CH; SMETS2 PPMIDs stay invalid",
     "004", "CR1045 amends the condition; the 11.4 warning body carries it too (XSD)"),
)


def _build() -> dict[str, ResponseCode]:
    table: dict[str, ResponseCode] = {}
    for code, name, condition, applies in _GENERIC:
        table[code] = ResponseCode(code, name, condition, applies)
    for code, name, condition, source, note in _SPECIFIC:
        table[code] = ResponseCode(
            code, name, condition, _UNSTATED, _sr_of(code), source=source, note=note
        )
    return table


#: Every response code with a public meaning, by code.
RESPONSE_CODES: Mapping[str, ResponseCode] = MappingProxyType(_build())

SUCCESS = "I0"
ACKNOWLEDGED = "I99"
FAILED_AUTHENTICATION = "E100"
#: SR 11.1 / 11.4: some Devices of the list were not passed on (seed 004 CR1045).
UPDATE_FIRMWARE_WARNING = RESPONSE_CODES["W110101"].code
#: The SRV 12.2 / 8.4 MAP ID "not applicable to the Device Type" code is "[TBC]" in
#: SECMP0011 (seed 000): the DCC has not assigned one publicly.
MAPID_NOT_APPLICABLE: str | None = None


def lookup(code: str) -> ResponseCode | None:
    """The catalogue entry of ``code``, or None when its meaning is not public."""
    return RESPONSE_CODES.get(code)


def response_code(code: str) -> ResponseCode:
    """The catalogue entry of ``code``; KeyError names the unknown code."""
    try:
        return RESPONSE_CODES[code]
    except KeyError:
        raise KeyError(f"response code {code!r} has no catalogued meaning") from None


# --- Install code (E081111) -------------------------------------------------------------------

#: SMETS2 install codes are 16 octets, written as 32 hex characters (else E081111).
SMETS2_INSTALL_CODE_HEX_LENGTH = 32


# --- Dual-band CHF channel masks (SRV 6.28, E062801 / E062802) ----------------------------------


@dataclass(frozen=True, slots=True)
class ChannelMask:
    """One ``SetCHFSubGHzConfiguration`` channel-mask data item."""

    element: str
    gbcs_item: str
    band: str
    first_channel: int
    last_channel: int
    mhz: tuple[float, float]
    #: Minimum channels once any channel of the Page is set (E062802); None: no minimum.
    min_channels_when_used: int | None

    @property
    def channels(self) -> range:
        return range(self.first_channel, self.last_channel + 1)


#: The four masks in XSD order. DUIS ties E062802 to the lower-band masks only; the upper
#: band (Page 31) has no minimum and "should be empty" in the Central and South regions,
#: which the DCC does not validate.
_LOWER_MHZ = (863.0, 876.0)
_UPPER_MHZ = (915.0, 921.0)
CHANNEL_MASKS: tuple[ChannelMask, ...] = (
    ChannelMask("LowerBandSubGHzChannels0To26", "Page 28 Mask", "lower", 0, 26, _LOWER_MHZ, 2),
    ChannelMask("LowerBandSubGHzChannels27To34", "Page 29 Mask", "lower", 27, 34, _LOWER_MHZ, 2),
    ChannelMask("LowerBandSubGHzChannels35To61", "Page 30 Mask", "lower", 35, 61, _LOWER_MHZ, 2),
    ChannelMask("UpperBandSubGHzChannels0To26", "Page 31 Mask", "upper", 0, 26, _UPPER_MHZ, None),
)
CHANNEL_MASKS_BY_ELEMENT: Mapping[str, ChannelMask] = MappingProxyType(
    {m.element: m for m in CHANNEL_MASKS}
)


def channel_mask_violations(selected: Mapping[str, Collection[int]]) -> list[tuple[str, str]]:
    """(code, reason) for each mask breaking the seed's rules; ``selected`` maps mask
    element name -> chosen channel numbers. Channels outside a mask cannot occur in
    schema-valid XML and are reported as E062801."""
    problems: list[tuple[str, str]] = []
    for name, channels in selected.items():
        mask = CHANNEL_MASKS_BY_ELEMENT.get(name)
        if mask is None:
            raise KeyError(f"{name!r} is not a SetCHFSubGHzConfiguration channel mask")
        outside = sorted(set(channels) - set(mask.channels))
        if outside:
            problems.append(("E062801", f"{name}: channels {outside} are not on {mask.gbcs_item}"))
        count = len(set(channels))
        if mask.min_channels_when_used is not None and 0 < count < mask.min_channels_when_used:
            problems.append(
                ("E062802", f"{name}: {mask.gbcs_item} is used with {count} channel(s), "
                 f"at least {mask.min_channels_when_used} are required")
            )
    return problems


# --- HTTP status codes of the DCC User Interface -----------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpStatus:
    """An HTTP status the DUIS interface defines beyond plain 200."""

    status: int
    reason: str
    meaning: str
    retry_after: bool
    source: str
    note: str = ""


HTTP_STATUSES: Mapping[int, HttpStatus] = MappingProxyType({
    429: HttpStatus(
        429,
        "Too Many Requests",
        "Service Request Traffic Management is rejecting non-priority requests of a User "
        "exceeding its capacity allocation; the User slows down and retries no earlier "
        "than the Retry-After delay",
        retry_after=True,
        source="004",
        note="SECMP0067, marked 'not yet approved' in the DUIS 4.0 release note; no DUIS body",
    ),
})
