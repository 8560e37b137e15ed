"""The DSP transform: a validated DUIS service request -> the GBCS command for the device.

:func:`transform` picks the GBCS use case from the catalogue (:mod:`gbhil.dcc.mapping`),
fills the General Signing header the way the DCC does (the User, or the ACB on the User's
behalf with the Supplementary Remote Party fields, gbcs-facts 2.8), and lets the family's
payload builder (:mod:`gbhil.dcc.transforms`) turn the body into GBCS content. The result
is unsigned and un-MACed: :class:`Transformed` knows whether the User must sign a
pre-command (CV 4, then CV 5/6/7), whether a DCC party signs, and builds the final bytes.

Errors never escape as crashes: every refusal is a :class:`TransformError` carrying the
DUIS response code to answer with.

The reverse direction lives here too: :func:`describe_response` summarises a device's GBCS
response or alert for DUIS response bodies and logs, and
:func:`complete_signed_pre_command` turns a User's Signed Pre-Command into the command
(also the command for local delivery of CV 6/7).
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from lxml import etree

from gbhil.dcc.mapping import (
    SERVICE_VARIANTS,
    Condition,
    FutureDating,
    Originator,
    Route,
    ServiceVariant,
    service_variant,
)
from gbhil.dcc.transforms import BUILDERS, BuildContext, BuildError
from gbhil.dcc.transforms.base import When, execution_of, find
from gbhil.duis.model import DCC_EUI, CommandVariant, Request, format_eui
from gbhil.gbcs import asn1, dlms, gbz, zcl
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra, Eui64, GeneralSigning, OtherInformation, Shape
from gbhil.gbcs.message import alert_code_of, decode_message, inspect_message
from gbhil.gbcs.security import (
    Check,
    SecurityContext,
    complete_precommand,
    precommand,
    protect,
    verify_signature,
)
from gbhil.gbcs.usecases import MESSAGE_CODES

#: The Transitional Change of Supplier party of the RTDS / ZAZ1 test data.
TRANSITIONAL_COS_EUI = "90-B3-D5-1F-30-00-00-04"
#: GBCS version the DSP writes into PreCommand responses.
GBCS_VERSION = "4.0"

# DUIS response codes the transform answers with (gbhil.duis.codes has their meaning).
UNKNOWN_DEVICE = "E19"
WRONG_DEVICE_TYPE = "E11"
WRONG_COMMAND_VARIANT = "E12"
WRONG_URL = "E13"
SR_SRV_MISMATCH = "E48"
BODY_MISMATCH = "E49"
SIGNED_PRE_COMMAND_MISMATCH = "E51"
NOT_FOR_DEVICE_MODEL = "E57"
FAILED_AUTHENTICATION = "E100"
#: Invalid parameter values the XSD cannot police have no public generic code; the DSP
#: answers with E49 (body does not fit the SRV) unless an SR-specific code exists.
INVALID_PARAMETER = BODY_MISMATCH

_SIGNED_INPUT = frozenset(
    {
        CommandVariant.SEND_SIGNED,
        CommandVariant.RETURN_SIGNED_FOR_LOCAL_DELIVERY,
        CommandVariant.SEND_AND_RETURN_SIGNED_FOR_LOCAL_DELIVERY,
    }
)
_UNSIGNED_DEVICE_CVS = frozenset(
    {
        CommandVariant.SEND,
        CommandVariant.RETURN_FOR_LOCAL_DELIVERY,
        CommandVariant.SEND_AND_RETURN_FOR_LOCAL_DELIVERY,
    }
)


class TransformError(Exception):
    """The DSP refuses the request; ``response_code`` is the DUIS code to answer with."""

    def __init__(self, response_code: str, reason: str) -> None:
        super().__init__(f"{response_code}: {reason}")
        self.response_code = response_code
        self.reason = reason


class DccCounters:
    """Originator counters of the DCC's own parties (ACB, Transitional CoS).

    Devices reject a counter that does not grow, so an emulator that restarts should start
    above anything it sent before (e.g. from the clock in milliseconds).
    """

    def __init__(self, start: int = 0) -> None:
        self._next: dict[str, int] = {}
        self._start = start
        self._lock = threading.Lock()

    def __call__(self, eui: str) -> int:
        with self._lock:
            value = self._next.get(eui, self._start) + 1
            self._next[eui] = value
            return value


def _default_cin(eui: str) -> str:
    """A Customer Identification Number; emulators and tests inject their own."""
    return f"{int(eui.replace('-', ''), 16) % 10_000:04d}"


@dataclass(frozen=True, slots=True)
class TransformContext:
    """What the DSP knows besides the request itself.

    ``device_type`` is the SMI inventory lookup (DUIS device type of an EUI, None when the
    device is unknown). ``preferred_use_cases`` names use cases the target's device model
    supports where GBCS offers several (polyphase meters, newer GBCS versions); without it
    the catalogue default is used. ``certificate(eui, usage)`` returns a device's DER
    certificate ("KA" or "DS") from the SMKI repository (Method C joins need it).
    """

    device_type: Callable[[str], str | None]
    now: dt.datetime
    acb_eui: str = DCC_EUI
    transitional_cos_eui: str = TRANSITIONAL_COS_EUI
    dcc_counter: Callable[[str], int] = field(default_factory=DccCounters)
    user_role: str | None = None
    preferred_use_cases: frozenset[str] = frozenset()
    cin: Callable[[str], str] = _default_cin
    certificate: Callable[[str, str], bytes | None] | None = None


@dataclass(frozen=True, slots=True)
class Transformed:
    """A service request turned into a GBCS command, not yet signed or MACed."""

    service_reference_variant: str
    use_case: str
    message_code: int
    target: str
    #: The DCC User the command is for (Supplementary Remote Party when the ACB sends).
    requester: str
    general_signing: GeneralSigning
    #: The command carries a signature (critical use case).
    critical: bool
    #: Whose digital-signing key signs it: the requester (pre-command, CV 4) or a DCC party.
    signer: str | None
    #: DSP future dating: the DCC holds the command until this time, then sends it.
    dsp_execution_time: dt.datetime | None = None
    #: Device future dating: the execution time written into the payload.
    device_execution_time: dt.datetime | None = None
    #: The request cancels a future-dated command: for device future dating the payload
    #: carries the cancellation; for DSP future dating the caller drops what it holds.
    cancellation: bool = False

    @property
    def gbcs_use_case(self) -> str:
        """The GBCS use case name of the message code ("CS02b" for every CS02b label)."""
        entry = MESSAGE_CODES.get(self.message_code)
        return entry.use_case if entry is not None and entry.use_case else self.use_case

    @property
    def needs_user_signature(self) -> bool:
        """True when the User must sign a pre-command (CV 4 -> CV 5/6/7)."""
        return self.critical and self.signer == self.requester

    def pre_command(self) -> bytes:
        """The pre-command (General Signing APDU without signature field) for CV 4."""
        if not self.needs_user_signature:
            raise TransformError(
                WRONG_COMMAND_VARIANT, f"{self.use_case} is not signed by the DCC User"
            )
        return precommand(self.general_signing).encode()

    def command(self, security: SecurityContext, signature: bytes | None = None) -> bytes:
        """The protected command: signed when critical (``signature`` from the User's signed
        pre-command, or the DCC party's own key), then MACed with the ACB key."""
        gs = self.general_signing
        if not self.critical:
            return protect(security, gs, signed=False, maced=True).encode()
        if signature is not None:
            return complete_precommand(security, precommand(gs), signature).encode()
        if self.needs_user_signature:
            raise TransformError(
                WRONG_COMMAND_VARIANT, f"{self.use_case} needs the DCC User's signature (CV 4)"
            )
        return protect(security, gs, signed=True, maced=True).encode()

    def command_for_local_delivery(
        self, security: SecurityContext, signature: bytes | None = None
    ) -> bytes:
        """CV 2/3 (and 6/7 with the User's signature): the command the User delivers over
        the HAN itself. It is the very command the DCC would send over the SM WAN, so the
        device cannot tell the two paths apart."""
        return self.command(security, signature)


# --- route selection ---------------------------------------------------------------------


def _condition_holds(body: etree._Element, cond: Condition, ctx: TransformContext) -> bool:
    element = find(body, cond.path)
    if cond.absent:
        return element is None
    if element is None:
        return False
    if not cond.values:
        return True
    value = (element.text or "").strip()
    if cond.device_type_of:
        try:
            other = ctx.device_type(format_eui(value))
        except ValueError:
            return False
        return other in cond.values
    return value in cond.values


def select_route(
    sv: ServiceVariant, body: etree._Element, device_type: str, ctx: TransformContext
) -> Route:
    """The catalogue row serving this request (see :mod:`gbhil.dcc.mapping`)."""
    by_device = [r for r in sv.routes if device_type in r.device_types]
    if not by_device:
        raise TransformError(
            WRONG_DEVICE_TYPE, f"SRV {sv.srv} is not available for a {device_type}"
        )
    by_role = [
        r for r in by_device
        if not r.roles or ctx.user_role is None or ctx.user_role in r.roles
    ]
    fitting = [r for r in by_role if all(_condition_holds(body, c, ctx) for c in r.when)]
    if not fitting:
        raise TransformError(
            BODY_MISMATCH, f"no GBCS use case of SRV {sv.srv} fits this {device_type} request"
        )
    for route in fitting:
        if route.use_case in ctx.preferred_use_cases:
            return route
    return fitting[0]


# --- the transform -----------------------------------------------------------------------


def _check_variant(request: Request, sv: ServiceVariant) -> None:
    header = request.header
    if header.service_reference != sv.service_reference:
        raise TransformError(
            SR_SRV_MISMATCH,
            f"ServiceReference {header.service_reference} does not own SRV {sv.srv}",
        )
    if sv.non_device:
        raise TransformError(WRONG_URL, f"SRV {sv.srv} is a non-device request")
    cv = header.command_variant
    if cv in _SIGNED_INPUT:
        raise TransformError(
            WRONG_COMMAND_VARIANT,
            f"CV {int(cv)} carries a Signed Pre-Command; use complete_signed_pre_command",
        )
    if sv.critical and cv is not CommandVariant.TRANSFORM:
        raise TransformError(
            WRONG_COMMAND_VARIANT, f"SRV {sv.srv} is critical: send CV 4 to get a pre-command"
        )
    if not sv.critical and cv not in _UNSIGNED_DEVICE_CVS:
        raise TransformError(
            WRONG_COMMAND_VARIANT, f"CV {int(cv)} does not apply to non-critical SRV {sv.srv}"
        )
    if request.body_name != sv.body:
        raise TransformError(
            BODY_MISMATCH, f"SRV {sv.srv} expects {sv.body}, the body is {request.body_name}"
        )


def _eui(text: str) -> bytes:
    return Eui64.parse(text).value


def transform(request: Request, ctx: TransformContext) -> Transformed:
    """Turn a device service request into its GBCS command (see the module docstring)."""
    header = request.header
    srv = header.service_reference_variant
    sv = service_variant(srv)
    if sv is None:
        raise TransformError(SR_SRV_MISMATCH, f"{srv} is not a DUIS service reference variant")
    _check_variant(request, sv)
    target = header.business_target_id
    device_type = ctx.device_type(target)
    if device_type is None:
        raise TransformError(UNKNOWN_DEVICE, f"device {target} is not in the inventory")
    route = select_route(sv, request.body, device_type, ctx)
    build = BUILDERS.get(route.use_case)
    if build is None:
        raise TransformError(
            NOT_FOR_DEVICE_MODEL, f"gbhil's DSP does not implement {route.use_case} ({srv})"
        )

    user = header.business_originator_id
    user_counter = header.originator_counter
    if route.originator is Originator.USER:
        originator, counter = user, user_counter
        other = OtherInformation(route.message_code)
    elif route.originator is Originator.ACB_FOR_USER:
        originator = format_eui(ctx.acb_eui)
        counter = ctx.dcc_counter(originator)
        other = OtherInformation(route.message_code, _eui(user), user_counter)
    else:
        party = ctx.acb_eui if route.originator is Originator.ACB else ctx.transitional_cos_eui
        originator = format_eui(party)
        counter = ctx.dcc_counter(originator)
        other = OtherInformation(route.message_code)

    try:
        execution, at = execution_of(request.body)
    except BuildError as exc:
        raise TransformError(exc.response_code, str(exc)) from None
    dsp_time: dt.datetime | None = None
    device_time: dt.datetime | None = None
    cancellation = execution.when is When.CANCEL
    if at is not None and sv.future_dating is FutureDating.DSP:
        # The DCC holds (or, for a cancellation, drops) the request; the device gets an
        # ordinary immediate command.
        dsp_time = None if cancellation else at
        execution = replace(execution, when=When.NOW, at=None)
    elif at is not None and execution.when is When.AT:
        device_time = at

    build_ctx = BuildContext(
        use_case=route.use_case,
        message_code=route.message_code,
        body=request.body,
        counter=counter,
        originator=_eui(originator),
        target=_eui(target),
        requester=_eui(user),
        now=ctx.now,
        execution=execution,
        device_type=device_type,
        cin=ctx.cin(target),
        other_device_type=ctx.device_type,
        certificate=ctx.certificate,
    )
    try:
        content = build(build_ctx)
    except BuildError as exc:
        raise TransformError(exc.response_code, str(exc)) from None
    except (GbcsError, ValueError) as exc:
        raise TransformError(INVALID_PARAMETER, f"{route.use_case}: {exc}") from None

    gs = GeneralSigning(
        Cra.COMMAND, counter, _eui(originator), _eui(target), other, content, signature=None
    )
    return Transformed(
        service_reference_variant=srv,
        use_case=route.use_case,
        message_code=route.message_code,
        target=target,
        requester=user,
        general_signing=gs,
        critical=route.signed,
        signer=originator if route.signed else None,
        dsp_execution_time=dsp_time,
        device_execution_time=device_time,
        cancellation=cancellation,
    )


# --- CV 5/6/7: the User's signed pre-command ---------------------------------------------


def complete_signed_pre_command(
    signed_pre_command: bytes, security: SecurityContext, expected: Transformed | None = None
) -> bytes:
    """MAC a User's Signed Pre-Command (CV 5/6/7) into the command.

    The result is both the command sent over the SM WAN and the command for local delivery.
    With ``expected`` (what CV 4 returned for the same RequestID) the signed APDU must be
    that pre-command plus a signature, else E51; a signature that does not verify is E100.
    """
    try:
        msg = decode_message(signed_pre_command, precommand=False)
    except GbcsError as exc:
        raise TransformError(
            SIGNED_PRE_COMMAND_MISMATCH, f"not a signed pre-command: {exc}"
        ) from None
    gs = msg.frame.gs
    if msg.frame.shape is not Shape.SIGNED or gs.cra is not Cra.COMMAND or not gs.signature:
        raise TransformError(SIGNED_PRE_COMMAND_MISMATCH, "not a signed GBCS command APDU")
    if expected is not None and gs.signed_bytes() != expected.general_signing.signed_bytes():
        raise TransformError(
            SIGNED_PRE_COMMAND_MISMATCH, "the signed APDU is not the pre-command the DSP issued"
        )
    if verify_signature(security, gs) is not Check.VERIFIED:
        raise TransformError(FAILED_AUTHENTICATION, "the pre-command signature does not verify")
    return complete_precommand(security, precommand(gs), gs.signature).encode()


# --- the reverse direction: device responses and alerts ----------------------------------


def _dlms_outcome(apdu: dlms.DlmsApdu) -> dict[str, Any]:
    if not isinstance(apdu, dlms.AccessResponse):
        return {}
    results = [r.result_name for r in apdu.results]
    return {"success": all(r.result == 0 for r in apdu.results), "results": results}


def _zcl_statuses(payload: zcl.ZclPayload) -> Iterable[int]:
    if isinstance(payload, zcl.DefaultResponse):
        yield payload.status
    elif isinstance(
        payload,
        zcl.WriteAttributesResponse | zcl.ReadAttributesResponse | zcl.ConfigureReportingResponse,
    ):
        yield from (r.status for r in payload.records)


def _gbz_outcome(message: gbz.GbzMessage) -> dict[str, Any]:
    statuses = [
        s
        for c in message.components
        if isinstance(c, gbz.PlainComponent)
        for s in _zcl_statuses(c.payload)
    ]
    return {"success": all(s == 0 for s in statuses), "zclStatuses": statuses}


def _asn1_outcome(view: Any) -> dict[str, Any]:
    if isinstance(view, dict):
        for key in ("responseCode", "statusCode"):
            if isinstance(view.get(key), int):
                return {"success": view[key] == 0, key: view[key]}
        if view.get("commandAccepted") is True:
            return {"success": True}
    return {}


@functools.cache
def _srvs_by_message_code() -> dict[int, tuple[str, ...]]:
    """Message code -> the SRVs whose catalogue rows use it, sorted (the catalogue is a
    read-only mapping, so the index is built once instead of scanned per response)."""
    index: dict[int, set[str]] = {}
    for sv in SERVICE_VARIANTS.values():
        for r in sv.routes:
            index.setdefault(r.message_code, set()).add(sv.srv)
    return {code: tuple(sorted(srvs)) for code, srvs in index.items()}


def response_outcome(gbcs_bytes: bytes) -> dict[str, Any]:
    """``describe_response(gbcs_bytes)["outcome"]`` (``{}`` for undecodable bytes), without
    building the JSON view for DLMS and GBZ payloads: the DCC asks this of every response."""
    try:
        msg = decode_message(gbcs_bytes)
    except GbcsError:
        return {}
    payload = msg.payload
    if isinstance(payload, gbz.GbzMessage):
        return _gbz_outcome(payload)
    if isinstance(payload, asn1.Asn1Node):
        return dict(describe_response(gbcs_bytes).get("outcome", {}))
    return _dlms_outcome(payload)


def describe_response(gbcs_bytes: bytes) -> dict[str, Any]:
    """A JSON-able summary of a device's GBCS response or alert (DUIS bodies, logs).

    ``header`` and ``payload`` are the codec's view (gbhil.gbcs.message); ``outcome``
    says whether the device reports success (DLMS results, ZCL statuses, ASN.1 response
    codes) where the payload family allows; ``serviceReferenceVariants`` lists the SRVs
    whose catalogue rows use the message code.
    """
    try:
        inspection = inspect_message(gbcs_bytes)
    except GbcsError as exc:
        return {"error": str(exc)}
    view = inspection.to_json()
    msg = inspection.message
    gs = msg.frame.gs
    payload = msg.payload
    if isinstance(payload, gbz.GbzMessage):
        outcome = _gbz_outcome(payload)
    elif isinstance(payload, asn1.Asn1Node):
        outcome = _asn1_outcome(view.get("payload"))
    else:
        outcome = _dlms_outcome(payload)
    srvs = list(_srvs_by_message_code().get(gs.message_code, ()))
    summary: dict[str, Any] = {
        "kind": gs.cra.name.lower(),
        "shape": view["shape"],
        "header": view["header"],
        "payloadFamily": view["payloadFamily"],
        "payload": view["payload"],
        "outcome": outcome,
        "serviceReferenceVariants": srvs,
    }
    code = alert_code_of(msg)
    if code is not None:
        summary["alertCode"] = view.get("alertCode")
        summary["alertName"] = view.get("alertName")
    return summary
