"""Typed DUIS messages: request header, acknowledgements, responses and alerts.

Parsing goes bytes -> :func:`gbhil.duis.schema.parse_xml` -> XSD validation -> these
models, so the models only re-check what the XSD cannot (CV 9 from a User, DCC alert code
vs body). Building goes the other way and yields compact XML that validates against the
schema set; sign it with :func:`gbhil.duis.xmldsig.sign`. EUIs are kept in the canonical
upper-case ``XX-XX-…`` form, times as aware UTC datetimes written with milliseconds and
``Z`` like the DCC's own responses.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from lxml import etree

from gbhil.duis.alerts import POWER_OUTAGE, body_for
from gbhil.duis.codes import ACKNOWLEDGED, SUCCESS
from gbhil.duis.schema import (
    DEFAULT_MAX_BODY_BYTES,
    DS_NS,
    SR_NS,
    DuisError,
    DuisSchema,
    load_schema,
)

#: The schemaVersion attribute gbhil writes.
SCHEMA_VERSION = "5.4"
#: The DCC's own EUI: the BusinessTargetID of every non-device (CV 8) request.
DCC_EUI = "90-B3-D5-1F-30-00-00-02"
#: OriginatorCounter is an unsigned 64-bit number (RequestIDType pattern).
MAX_COUNTER = 2**64 - 1

_EUI_RE = re.compile(r"[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){7}|[0-9A-Fa-f]{16}")


class DuisModelError(DuisError):
    """A message is schema-valid (or about to be built) but breaks a DUIS rule the XSD
    cannot express; ``response_code`` suggests the DUIS code to answer with, if any."""

    def __init__(self, message: str, *, response_code: str | None = None):
        self.response_code = response_code
        super().__init__(message)


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


# --- Simple values ----------------------------------------------------------------------------


def format_eui(value: str | bytes) -> str:
    """Canonical DUIS EUI text (``90-B3-D5-1F-30-01-00-00``) from text or 8 bytes."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 8:
            raise DuisModelError(f"an EUI-64 is 8 bytes, got {len(value)}")
        return value.hex("-").upper()
    return _format_eui_text(value)


@functools.lru_cache(maxsize=4096)
def _format_eui_text(value: str) -> str:
    """Text EUIs repeat on every message (a rig has a handful of devices and Users), so
    the canonical form is remembered; invalid text raises and is never cached."""
    text = value.strip()
    if not _EUI_RE.fullmatch(text):
        raise DuisModelError(f"{value!r} is not an EUI-64 (XX-XX-XX-XX-XX-XX-XX-XX)")
    digits = text.replace("-", "").upper()
    return "-".join(digits[i : i + 2] for i in range(0, 16, 2))


def format_datetime(when: dt.datetime) -> str:
    """xs:dateTime in UTC with milliseconds and ``Z`` (``2022-08-17T15:45:42.790Z``)."""
    if when.tzinfo is None:
        raise DuisModelError(f"{when!r} has no timezone; DUIS times are UTC")
    utc = when.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def wire_datetime(when: dt.datetime) -> dt.datetime:
    """``when`` as it survives the wire: UTC, whole milliseconds (builders normalise so a
    built message equals its parse)."""
    if when.tzinfo is None:
        raise DuisModelError(f"{when!r} has no timezone; DUIS times are UTC")
    utc = when.astimezone(dt.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def parse_datetime(text: str) -> dt.datetime:
    """An xs:dateTime as an aware datetime (no timezone means UTC, as DUIS specifies)."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise DuisModelError(f"{text!r} is not a date-time gbhil can represent") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise DuisModelError(f"{what} is not base64") from None


@dataclass(frozen=True, slots=True, order=True)
class RequestID:
    """``BusinessOriginatorID:BusinessTargetID:OriginatorCounter`` (also a ResponseID)."""

    originator: str
    target: str
    counter: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "originator", format_eui(self.originator))
        object.__setattr__(self, "target", format_eui(self.target))
        if not 0 <= self.counter <= MAX_COUNTER:
            raise DuisModelError(f"OriginatorCounter {self.counter} is outside 0..2^64-1")

    @classmethod
    def parse(cls, text: str) -> RequestID:
        parts = text.strip().split(":")
        if len(parts) != 3 or not (parts[2].isascii() and parts[2].isdigit()):
            raise DuisModelError(f"{text!r} is not originator:target:counter")
        return cls(parts[0], parts[1], int(parts[2]))

    def __str__(self) -> str:
        return f"{self.originator}:{self.target}:{self.counter}"

    def response_id(self) -> RequestID:
        """The ResponseID of a device's answer: responder first (``target:originator:n``)."""
        return RequestID(self.target, self.originator, self.counter)


class WebService(enum.Enum):
    """The three request web services, with DCC Boxed's paths."""

    NON_DEVICE = "/api/v1/serviceD"
    SEND_COMMAND = "/api/v1/serviceS"
    TRANSFORM = "/api/v1/serviceT"

    @property
    def path(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class CommandVariantInfo:
    """One row of the XSD's CommandVariant table."""

    input: str
    output: str
    critical: bool
    returned_to_user: bool
    over_sm_wan: bool
    web_service: WebService | None


_CV_TABLE: dict[int, CommandVariantInfo] = {
    1: CommandVariantInfo("Service Request", "Command", False, False, True,
                          WebService.SEND_COMMAND),
    2: CommandVariantInfo("Service Request", "Command for Local Delivery", False, True, False,
                          WebService.NON_DEVICE),
    3: CommandVariantInfo("Service Request", "Command and Command for Local Delivery", False,
                          True, True, WebService.SEND_COMMAND),
    4: CommandVariantInfo("Service Request", "Pre-Command", True, True, False,
                          WebService.TRANSFORM),
    5: CommandVariantInfo("Signed Pre-Command", "Command", True, False, True,
                          WebService.SEND_COMMAND),
    6: CommandVariantInfo("Signed Pre-Command", "Command for Local Delivery", True, True, False,
                          WebService.NON_DEVICE),
    7: CommandVariantInfo("Signed Pre-Command", "Command and Command for Local Delivery", True,
                          True, True, WebService.SEND_COMMAND),
    8: CommandVariantInfo("Service Request", "Service Response from DCC", False, True, False,
                          WebService.NON_DEVICE),
    9: CommandVariantInfo("DCC internal", "DCC internal", False, False, False, None),
}


class CommandVariant(enum.IntEnum):
    """DUIS CommandVariant; 9 exists in the XSD but is internal to the DCC."""

    SEND = 1
    RETURN_FOR_LOCAL_DELIVERY = 2
    SEND_AND_RETURN_FOR_LOCAL_DELIVERY = 3
    TRANSFORM = 4
    SEND_SIGNED = 5
    RETURN_SIGNED_FOR_LOCAL_DELIVERY = 6
    SEND_AND_RETURN_SIGNED_FOR_LOCAL_DELIVERY = 7
    NON_DEVICE = 8
    DCC_INTERNAL = 9

    @property
    def info(self) -> CommandVariantInfo:
        return _CV_TABLE[self.value]

    @property
    def user_allowed(self) -> bool:
        return self is not CommandVariant.DCC_INTERNAL

    @property
    def local_delivery(self) -> bool:
        return "Local Delivery" in self.info.output

    @property
    def signed_pre_command(self) -> bool:
        return self.info.input == "Signed Pre-Command"


# --- Requests ---------------------------------------------------------------------------------


def _text(parent: etree._Element, local: str) -> str | None:
    child = parent.find(_sr(local))
    return None if child is None else (child.text or "")


def _required(parent: etree._Element, local: str) -> str:
    value = _text(parent, local)
    if value is None:
        raise DuisModelError(f"{etree.QName(parent).localname} has no sr:{local}")
    return value.strip()


class _Children:
    """A header's children by tag in one pass (first of each, as ``find`` returns): every
    message has two or three headers of four to seven fields each."""

    __slots__ = ("_by_tag", "_parent")

    def __init__(self, parent: etree._Element):
        self._parent = parent
        by_tag: dict[object, etree._Element] = {}
        for child in parent:
            by_tag.setdefault(child.tag, child)
        self._by_tag = by_tag

    def text(self, local: str) -> str | None:
        child = self._by_tag.get(_sr(local))
        return None if child is None else (child.text or "")

    def required(self, local: str) -> str:
        value = self.text(local)
        if value is None:
            raise DuisModelError(f"{etree.QName(self._parent).localname} has no sr:{local}")
        return value.strip()


def _only_child(parent: etree._Element, what: str) -> etree._Element:
    children = [c for c in parent if isinstance(c.tag, str)]
    if len(children) != 1:
        raise DuisModelError(f"{what} must hold exactly one element, found {len(children)}")
    return children[0]


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """``sr:Request/sr:Header``."""

    request_id: RequestID
    command_variant: CommandVariant
    service_reference: str
    service_reference_variant: str
    first_in_sequence: bool | None = None
    preceding_request_id: RequestID | None = None

    @property
    def business_originator_id(self) -> str:
        return self.request_id.originator

    @property
    def business_target_id(self) -> str:
        return self.request_id.target

    @property
    def originator_counter(self) -> int:
        return self.request_id.counter

    @classmethod
    def from_element(cls, element: etree._Element) -> RequestHeader:
        header = _Children(element)
        cv_text = header.required("CommandVariant")
        try:
            cv = CommandVariant(int(cv_text))
        except ValueError:
            raise DuisModelError(f"CommandVariant {cv_text!r} is not 1-9",
                                 response_code="E12") from None
        if not cv.user_allowed:
            raise DuisModelError("CommandVariant 9 is internal to the DCC", response_code="E12")
        first = header.text("FirstInSequence")
        preceding = header.text("PrecedingServiceRequestID")
        return cls(
            request_id=RequestID.parse(header.required("RequestID")),
            command_variant=cv,
            service_reference=header.required("ServiceReference"),
            service_reference_variant=header.required("ServiceReferenceVariant"),
            first_in_sequence=None if first is None else first.strip() in ("true", "1"),
            preceding_request_id=None if preceding is None else RequestID.parse(preceding),
        )

    def to_element(self) -> etree._Element:
        header = etree.Element(_sr("Header"))
        etree.SubElement(header, _sr("RequestID")).text = str(self.request_id)
        if self.first_in_sequence is not None:
            etree.SubElement(header, _sr("FirstInSequence")).text = (
                "true" if self.first_in_sequence else "false"
            )
        if self.preceding_request_id is not None:
            etree.SubElement(header, _sr("PrecedingServiceRequestID")).text = str(
                self.preceding_request_id
            )
        etree.SubElement(header, _sr("CommandVariant")).text = str(int(self.command_variant))
        etree.SubElement(header, _sr("ServiceReference")).text = self.service_reference
        etree.SubElement(header, _sr("ServiceReferenceVariant")).text = (
            self.service_reference_variant
        )
        return header


@dataclass(frozen=True, slots=True)
class Request:
    """A service request: header, the single ``sr:Body`` child (kept as XML), signed or not."""

    header: RequestHeader
    body: etree._Element = field(compare=False)
    schema_version: str = SCHEMA_VERSION
    signed: bool = False

    @property
    def body_name(self) -> str:
        """Local name of the body element (``ReadInstantaneousImportRegisters``…)."""
        return etree.QName(self.body).localname

    @classmethod
    def from_element(cls, root: etree._Element) -> Request:
        if root.tag != _sr("Request"):
            raise DuisModelError(f"expected sr:Request, got {root.tag}")
        header = root.find(_sr("Header"))
        body = root.find(_sr("Body"))
        if header is None or body is None:
            raise DuisModelError("sr:Request needs sr:Header and sr:Body")
        return cls(
            header=RequestHeader.from_element(header),
            body=_only_child(body, "sr:Body"),
            schema_version=root.get("schemaVersion", ""),
            signed=root.find(f"{{{DS_NS}}}Signature") is not None,
        )


# --- Responses --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreCommand:
    """CV 4 answer: the GBCS pre-command the User signs and returns with CV 5/6/7."""

    gbcs_version: str
    gbcs_payload: bytes


@dataclass(frozen=True, slots=True)
class ResponseMessage:
    """``sr:ResponseMessage``: SR/SRV plus at most one content element.

    Without content it is an acknowledgement (or a content-free result). ``other`` holds
    any content gbhil does not model (``DSPInventory``, ``DSPScheduleID``…) as XML.
    """

    service_reference: str
    service_reference_variant: str
    gbcs_payload: bytes | None = None
    local_command: bytes | None = None
    pre_command: PreCommand | None = None
    other: etree._Element | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        present = [
            x for x in (self.gbcs_payload, self.local_command, self.pre_command, self.other)
            if x is not None
        ]
        if len(present) > 1:
            raise DuisModelError("a ResponseMessage carries at most one content element")

    @property
    def has_content(self) -> bool:
        return any(
            x is not None
            for x in (self.gbcs_payload, self.local_command, self.pre_command, self.other)
        )

    @classmethod
    def from_element(cls, element: etree._Element) -> ResponseMessage:
        sr_ = _required(element, "ServiceReference")
        srv = _required(element, "ServiceReferenceVariant")
        content = [
            c for c in element
            if isinstance(c.tag, str)
            and c.tag not in (_sr("ServiceReference"), _sr("ServiceReferenceVariant"))
        ]
        if not content:
            return cls(sr_, srv)
        if len(content) > 1:
            raise DuisModelError("ResponseMessage holds more than one content element")
        item = content[0]
        if item.tag == _sr("GBCSPayload"):
            return cls(sr_, srv, gbcs_payload=_b64(item.text, "GBCSPayload"))
        if item.tag == _sr("LocalCommand"):
            return cls(sr_, srv, local_command=_b64(_required(item, "GBCSPayload"),
                                                    "LocalCommand/GBCSPayload"))
        if item.tag == _sr("PreCommand"):
            return cls(sr_, srv, pre_command=PreCommand(
                _required(item, "GBCSVersion"),
                _b64(_required(item, "GBCSPayload"), "PreCommand/GBCSPayload"),
            ))
        return cls(sr_, srv, other=item)

    def to_element(self) -> etree._Element:
        message = etree.Element(_sr("ResponseMessage"))
        etree.SubElement(message, _sr("ServiceReference")).text = self.service_reference
        etree.SubElement(message, _sr("ServiceReferenceVariant")).text = (
            self.service_reference_variant
        )
        if self.gbcs_payload is not None:
            _payload(message, self.gbcs_payload)
        elif self.local_command is not None:
            _payload(etree.SubElement(message, _sr("LocalCommand")), self.local_command)
        elif self.pre_command is not None:
            pre = etree.SubElement(message, _sr("PreCommand"))
            etree.SubElement(pre, _sr("GBCSVersion")).text = self.pre_command.gbcs_version
            _payload(pre, self.pre_command.gbcs_payload)
        elif self.other is not None:
            message.append(_copy(self.other))
        return message


def _payload(parent: etree._Element, data: bytes) -> None:
    etree.SubElement(parent, _sr("GBCSPayload")).text = base64.b64encode(data).decode("ascii")


def _copy(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))


def _throttling(parent: etree._Element, seq: int | None, count: int | None) -> None:
    if seq is not None:
        etree.SubElement(parent, _sr("ThrottledAlertSequenceId")).text = str(seq)
    if count is not None:
        etree.SubElement(parent, _sr("ThrottledAlertCount")).text = str(count)


def _uint(parent: etree._Element, local: str) -> int | None:
    text = _text(parent, local)
    if text is None:
        return None
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise DuisModelError(f"{local} {text!r} is not an unsigned integer")
    return int(text.strip())


def _check_uint32(value: int | None, what: str) -> None:
    if value is not None and not 0 <= value <= 2**32 - 1:
        raise DuisModelError(f"{what} {value} is not an xs:unsignedInt")


@dataclass(frozen=True, slots=True)
class DeviceAlertMessage:
    """A device's GBCS alert forwarded by the DCC (``AlertCode`` such as 0x8F35)."""

    alert_code: int
    gbcs_payload: bytes
    throttled_alert_sequence_id: int | None = None
    throttled_alert_count: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.alert_code <= 0xFFFF:
            raise DuisModelError(f"alert code {self.alert_code:#x} is not two octets")
        _check_uint32(self.throttled_alert_sequence_id, "ThrottledAlertSequenceId")
        _check_uint32(self.throttled_alert_count, "ThrottledAlertCount")

    @classmethod
    def from_element(cls, element: etree._Element) -> DeviceAlertMessage:
        code = _required(element, "AlertCode")
        try:
            alert_code = int(code, 16)
        except ValueError:
            raise DuisModelError(f"AlertCode {code!r} is not hexadecimal") from None
        return cls(
            alert_code=alert_code,
            gbcs_payload=_b64(_required(element, "GBCSPayload"), "GBCSPayload"),
            throttled_alert_sequence_id=_uint(element, "ThrottledAlertSequenceId"),
            throttled_alert_count=_uint(element, "ThrottledAlertCount"),
        )

    def to_element(self) -> etree._Element:
        message = etree.Element(_sr("DeviceAlertMessage"))
        etree.SubElement(message, _sr("AlertCode")).text = f"{self.alert_code:04X}"
        _throttling(message, self.throttled_alert_sequence_id, self.throttled_alert_count)
        _payload(message, self.gbcs_payload)
        return message


@dataclass(frozen=True, slots=True)
class PowerOutageEvent:
    """AD1 body: the comms hub reporting, when power went, and the meter point."""

    comms_hub_device_id: str
    start_date_time: dt.datetime
    mpxn: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "comms_hub_device_id", format_eui(self.comms_hub_device_id))
        object.__setattr__(self, "start_date_time", wire_datetime(self.start_date_time))
        if not 1 <= len(self.mpxn) <= 13:
            raise DuisModelError(f"MPxN {self.mpxn!r} must be 1-13 characters")

    @classmethod
    def from_element(cls, element: etree._Element) -> PowerOutageEvent:
        return cls(
            comms_hub_device_id=_required(element, "CommsHubDeviceID"),
            start_date_time=parse_datetime(_required(element, "StartDateTime")),
            mpxn=_required(element, "MPxN"),
        )

    def to_element(self) -> etree._Element:
        event = etree.Element(_sr("PowerOutageEvent"))
        etree.SubElement(event, _sr("CommsHubDeviceID")).text = self.comms_hub_device_id
        etree.SubElement(event, _sr("StartDateTime")).text = format_datetime(
            self.start_date_time
        )
        etree.SubElement(event, _sr("MPxN")).text = self.mpxn
        return event


AlertBodyType = PowerOutageEvent | etree._Element


@dataclass(frozen=True, slots=True)
class DCCAlertMessage:
    """An alert raised by the DCC itself; ``body`` is typed for AD1, raw XML otherwise."""

    dcc_alert_code: str
    body: AlertBodyType = field(compare=False)
    throttled_alert_sequence_id: int | None = None
    throttled_alert_count: int | None = None

    def __post_init__(self) -> None:
        try:
            expected = body_for(self.dcc_alert_code)
        except KeyError as exc:
            raise DuisModelError(str(exc.args[0])) from None
        if self.body_name != expected:
            raise DuisModelError(
                f"DCC alert {self.dcc_alert_code} carries {expected}, not {self.body_name}"
            )
        _check_uint32(self.throttled_alert_sequence_id, "ThrottledAlertSequenceId")
        _check_uint32(self.throttled_alert_count, "ThrottledAlertCount")

    @property
    def body_name(self) -> str:
        if isinstance(self.body, PowerOutageEvent):
            return "PowerOutageEvent"
        return etree.QName(self.body).localname

    @classmethod
    def from_element(cls, element: etree._Element) -> DCCAlertMessage:
        alert = element.find(_sr("DCCAlert"))
        if alert is None:
            raise DuisModelError("DCCAlertMessage has no sr:DCCAlert")
        body_element = _only_child(alert, "sr:DCCAlert")
        body: AlertBodyType = (
            PowerOutageEvent.from_element(body_element)
            if body_element.tag == _sr("PowerOutageEvent")
            else body_element
        )
        return cls(
            dcc_alert_code=_required(element, "DCCAlertCode"),
            body=body,
            throttled_alert_sequence_id=_uint(element, "ThrottledAlertSequenceId"),
            throttled_alert_count=_uint(element, "ThrottledAlertCount"),
        )

    def to_element(self) -> etree._Element:
        message = etree.Element(_sr("DCCAlertMessage"))
        etree.SubElement(message, _sr("DCCAlertCode")).text = self.dcc_alert_code
        _throttling(message, self.throttled_alert_sequence_id, self.throttled_alert_count)
        alert = etree.SubElement(message, _sr("DCCAlert"))
        alert.append(
            self.body.to_element() if isinstance(self.body, PowerOutageEvent) else _copy(self.body)
        )
        return message


ResponseBody = ResponseMessage | DeviceAlertMessage | DCCAlertMessage

_BODY_PARSERS: dict[str, Callable[[etree._Element], ResponseBody]] = {
    _sr("ResponseMessage"): ResponseMessage.from_element,
    _sr("DeviceAlertMessage"): DeviceAlertMessage.from_element,
    _sr("DCCAlertMessage"): DCCAlertMessage.from_element,
}


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    """``sr:Response/sr:Header``."""

    response_code: str
    response_date_time: dt.datetime
    request_id: RequestID | None = None
    response_id: RequestID | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "response_date_time", wire_datetime(self.response_date_time))

    @classmethod
    def from_element(cls, element: etree._Element) -> ResponseHeader:
        header = _Children(element)
        request_id = header.text("RequestID")
        response_id = header.text("ResponseID")
        return cls(
            response_code=header.required("ResponseCode"),
            response_date_time=parse_datetime(header.required("ResponseDateTime")),
            request_id=None if request_id is None else RequestID.parse(request_id),
            response_id=None if response_id is None else RequestID.parse(response_id),
        )

    def to_element(self) -> etree._Element:
        header = etree.Element(_sr("Header"))
        if self.request_id is not None:
            etree.SubElement(header, _sr("RequestID")).text = str(self.request_id)
        if self.response_id is not None:
            etree.SubElement(header, _sr("ResponseID")).text = str(self.response_id)
        etree.SubElement(header, _sr("ResponseCode")).text = self.response_code
        etree.SubElement(header, _sr("ResponseDateTime")).text = format_datetime(
            self.response_date_time
        )
        return header


@dataclass(frozen=True, slots=True)
class Response:
    """A response, acknowledgement, device alert or DCC alert (all are ``sr:Response``)."""

    header: ResponseHeader
    body: ResponseBody
    schema_version: str = SCHEMA_VERSION
    signed: bool = False

    @property
    def is_acknowledgement(self) -> bool:
        """A ResponseMessage with SR/SRV only (I99, or an error code, as DCC Boxed sends)."""
        return isinstance(self.body, ResponseMessage) and not self.body.has_content

    @classmethod
    def from_element(cls, root: etree._Element) -> Response:
        if root.tag != _sr("Response"):
            raise DuisModelError(f"expected sr:Response, got {root.tag}")
        header = root.find(_sr("Header"))
        body = root.find(_sr("Body"))
        if header is None or body is None:
            raise DuisModelError("sr:Response needs sr:Header and sr:Body")
        content = _only_child(body, "sr:Body")
        parser = _BODY_PARSERS.get(content.tag)
        if parser is None:
            raise DuisModelError(f"response body {etree.QName(content).localname} is not modelled")
        return cls(
            header=ResponseHeader.from_element(header),
            body=parser(content),
            schema_version=root.get("schemaVersion", ""),
            signed=root.find(f"{{{DS_NS}}}Signature") is not None,
        )

    def to_element(self) -> etree._Element:
        root = etree.Element(_sr("Response"), nsmap={"sr": SR_NS})
        root.set("schemaVersion", self.schema_version)
        root.append(self.header.to_element())
        body = etree.SubElement(root, _sr("Body"))
        body.append(self.body.to_element())
        return root

    def to_xml(self) -> bytes:
        """Compact, unsigned UTF-8 XML (sign with :func:`gbhil.duis.xmldsig.sign`)."""
        body = etree.tostring(self.to_element(), encoding="UTF-8", xml_declaration=False)
        return b'<?xml version="1.0" encoding="UTF-8"?>' + body


# --- Parsing entry points ---------------------------------------------------------------------

Message = Request | Response
_M = TypeVar("_M", Request, Response)


def parse_message(
    data: bytes | str,
    *,
    schema: DuisSchema | None = None,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Message:
    """Securely parse, validate against ``schema`` (default set), then model."""
    tree = (schema or load_schema()).parse(data, max_bytes=max_bytes)
    root = tree.getroot()
    if root.tag == _sr("Request"):
        return Request.from_element(root)
    return Response.from_element(root)


def _typed(kind: type[_M], data: bytes | str, schema: DuisSchema | None, max_bytes: int) -> _M:
    message = parse_message(data, schema=schema, max_bytes=max_bytes)
    if not isinstance(message, kind):
        raise DuisModelError(f"expected a {kind.__name__}, got a {type(message).__name__}")
    return message


def parse_request(
    data: bytes | str, *, schema: DuisSchema | None = None,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Request:
    return _typed(Request, data, schema, max_bytes)


def parse_response(
    data: bytes | str, *, schema: DuisSchema | None = None,
    max_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Response:
    return _typed(Response, data, schema, max_bytes)


# --- Builders ---------------------------------------------------------------------------------


def _header_of(request: Request | RequestHeader) -> RequestHeader:
    return request.header if isinstance(request, Request) else request


def acknowledgement(
    request: Request | RequestHeader, code: str = ACKNOWLEDGED, *, at: dt.datetime
) -> Response:
    """The synchronous answer carrying only SR/SRV: ``I99`` or an error code."""
    header = _header_of(request)
    return Response(
        ResponseHeader(code, at, request_id=header.request_id),
        ResponseMessage(header.service_reference, header.service_reference_variant),
    )


def gbcs_response(
    request: Request | RequestHeader, gbcs_payload: bytes, *, at: dt.datetime,
    code: str = SUCCESS,
) -> Response:
    """A device's service response: the GBCS response as base64, ResponseID responder-first."""
    header = _header_of(request)
    return Response(
        ResponseHeader(code, at, request_id=header.request_id,
                       response_id=header.request_id.response_id()),
        ResponseMessage(header.service_reference, header.service_reference_variant,
                        gbcs_payload=gbcs_payload),
    )


def local_command_response(
    request: Request | RequestHeader, gbcs_command: bytes, *, at: dt.datetime,
    code: str = SUCCESS,
) -> Response:
    """CV 2/3/6/7 answer: the GBCS command for local delivery."""
    header = _header_of(request)
    return Response(
        ResponseHeader(code, at, request_id=header.request_id),
        ResponseMessage(header.service_reference, header.service_reference_variant,
                        local_command=gbcs_command),
    )


def pre_command_response(
    request: Request | RequestHeader, gbcs_version: str, pre_command: bytes, *,
    at: dt.datetime, code: str = SUCCESS,
) -> Response:
    """CV 4 (Transform) answer: the pre-command for the User to sign."""
    header = _header_of(request)
    return Response(
        ResponseHeader(code, at, request_id=header.request_id),
        ResponseMessage(header.service_reference, header.service_reference_variant,
                        pre_command=PreCommand(gbcs_version, pre_command)),
    )


def device_alert(
    alert_code: int, gbcs_payload: bytes, *, at: dt.datetime, code: str = SUCCESS,
    response_id: RequestID | None = None, throttled_alert_sequence_id: int | None = None,
    throttled_alert_count: int | None = None,
) -> Response:
    """A device alert forwarded to the User."""
    return Response(
        ResponseHeader(code, at, response_id=response_id),
        DeviceAlertMessage(alert_code, gbcs_payload, throttled_alert_sequence_id,
                           throttled_alert_count),
    )


def dcc_alert(
    dcc_alert_code: str, body: AlertBodyType, *, at: dt.datetime, code: str = SUCCESS,
    request_id: RequestID | None = None, response_id: RequestID | None = None,
    throttled_alert_sequence_id: int | None = None, throttled_alert_count: int | None = None,
) -> Response:
    """A DCC alert; the body must be the one the catalogue ties to ``dcc_alert_code``."""
    return Response(
        ResponseHeader(code, at, request_id=request_id, response_id=response_id),
        DCCAlertMessage(dcc_alert_code, body, throttled_alert_sequence_id,
                        throttled_alert_count),
    )


def power_outage_alert(
    comms_hub_device_id: str, start: dt.datetime, mpxn: str, *, at: dt.datetime,
    response_id: RequestID | None = None, throttled_alert_sequence_id: int | None = None,
    throttled_alert_count: int | None = None,
) -> Response:
    """DCC alert AD1 (power lost at the comms hub for three minutes or more)."""
    return dcc_alert(
        POWER_OUTAGE, PowerOutageEvent(comms_hub_device_id, start, mpxn), at=at,
        response_id=response_id, throttled_alert_sequence_id=throttled_alert_sequence_id,
        throttled_alert_count=throttled_alert_count,
    )


# --- MAP ID rules (SECMP0011) that the XSD overlay cannot express -----------------------------

#: Device types whose pre-notification must carry a MAP ID; all others must not.
MAPID_DEVICE_TYPES = frozenset({"ESME", "GSME"})


def mapid_problems(request: Request) -> list[str]:
    """SRV 12.2 rules: ESME/GSME need 1-4 alphanumerics, other types none (the reject
    code is "[TBC]" in SECMP0011). 8.4 needs the SMI's device type, so the DCC checks it."""
    if request.body_name != "DevicePrenotification":
        return []
    device_type = (_text(request.body, "DeviceType") or "").strip()
    map_id = _text(request.body, "MAPID")
    if device_type in MAPID_DEVICE_TYPES and map_id is None:
        return [f"MAPID is mandatory for a {device_type} pre-notification"]
    if device_type not in MAPID_DEVICE_TYPES and map_id is not None:
        return [f"MAPID is not applicable to device type {device_type}"]
    return []
