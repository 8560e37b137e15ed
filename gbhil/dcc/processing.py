"""The DCC's request processing: DUIS in, GBCS out, and back again.

:meth:`DccProcessor.submit` takes the body a User POSTed to one of the three web services
and returns the synchronous answer. The checks run in this order, each refusing with the
DUIS response code of seed 003 (the "DCC Systems Response Codes" table):

1. secure parse and XSD validation (HTTP 400/413 when the body is not a DUIS request at
   all: no RequestID to answer to);
2. authentication: the XML signature must verify (E100) with a role-135 XML-signing
   certificate (E65) of the RequestID's originator (E100);
3. the User: known (E1), active (E3), within its traffic allocation (HTTP 429 with
   Retry-After for non-priority requests, seed 004 SECMP0067);
4. duplicate RequestID (E55) and, per originator, a strictly increasing counter (E100);
5. URL vs Command Variant (E13), SR vs SRV (E48), CV vs SRV (E12, from the XSD's
   ``ServiceReferenceVariant`` comments), User Role vs SRV (E2, duis-request-matrix);
6. sequenced requests (E40-E45, E53) and, for device requests, the Smart Metering
   Inventory: device exists (E19), the User's role is registered for it (E4), its status
   allows the request (E5) and local delivery (E17), CPL GBCS version (E57), then the
   inventory pre-checks and the DSP transform (E11, E12, E49, E51, E57, E062801...);
7. non-device requests are answered from the SMI/CPL (:mod:`gbhil.dcc.inventory_requests`)
   or, for SR 8.13, from the local commands this DCC issued.

Device commands go over the WAN (non-critical ones MACed by the ACB, critical ones after
the User signed the pre-command of CV 4); CV 2/3/6/7 return the command for local
delivery. Device responses, device alerts and the CSP's power events come back through
:meth:`device_message` and :meth:`power_event` and become DUIS responses, device alerts
and DCC alerts (AD1 after a 3-minute outage, seed 004 5.9.4), throttled per User and alert
code (SECMP0062), signed by the DCC and handed to the outbox.

Time is the injected clock's (virtual in simulation). Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import dataclasses
import datetime as dt
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lxml import etree

from gbhil.dcc.delivery import MessageKind
from gbhil.dcc.dual_band_alerts import (
    DUAL_BAND_ALERT_CODES,
    DUAL_BAND_CH_ALERT,
    dual_band_alert_body,
)
from gbhil.dcc.dual_band_alerts import response_code as dual_band_response_code
from gbhil.dcc.firmware_reports import FUTURE_DATED_ACTIVATION_ALERT, reported_version
from gbhil.dcc.future_dated import (
    FUTURE_DATED_OUTCOME_ALERTS,
    UNMATCHED_USE_CASES,
    executed_counter,
)
from gbhil.dcc.inventory import (
    SMART_METERS,
    AssociationKind,
    Device,
    DeviceStatus,
    DeviceType,
    InventoryError,
)
from gbhil.dcc.inventory_requests import (
    SERVICES as INVENTORY_SERVICES,
)
from gbhil.dcc.inventory_requests import (
    AlertNotice,
    InventoryService,
    ServiceOutcome,
    UnsupportedRequest,
)
from gbhil.dcc.mapping import FutureDating, ServiceVariant, service_variant
from gbhil.dcc.org_certificates import TRACKED_SERVICES as TRACKED_CREDENTIAL_SERVICES
from gbhil.dcc.org_certificates import OrgCertificateRegister
from gbhil.dcc.schedules import (
    SCHEDULE_CODES,
    DspSchedules,
    Schedule,
    ScheduleError,
    parse_create,
    scheduled_response,
)
from gbhil.dcc.store import IN_MEMORY, GroupCommit, open_store
from gbhil.dcc.transform import (
    GBCS_VERSION,
    DccCounters,
    TransformContext,
    Transformed,
    TransformError,
    complete_signed_pre_command,
    response_outcome,
    transform,
)
from gbhil.dcc.users import DccUser, UserDirectory, UserStatus, signer_problem
from gbhil.duis import codes as duis_codes
from gbhil.duis.alerts import POWER_OUTAGE, POWER_OUTAGE_MIN_DURATION
from gbhil.duis.model import (
    CommandVariant,
    DuisModelError,
    Request,
    RequestHeader,
    RequestID,
    Response,
    WebService,
    acknowledgement,
    dcc_alert,
    device_alert,
    format_datetime,
    format_eui,
    gbcs_response,
    local_command_response,
    parse_datetime,
    power_outage_alert,
    pre_command_response,
)
from gbhil.duis.schema import (
    DEFAULT_MAX_BODY_BYTES,
    SR_NS,
    DuisForbiddenError,
    DuisParseError,
    DuisSchema,
    DuisTooLargeError,
    DuisValidationError,
    load_schema,
)
from gbhil.duis.xmldsig import SignatureError, verify
from gbhil.firmware.distribution import (
    FIRMWARE_SRVS,
    FirmwareDelivery,
    FirmwareService,
    UpdateFirmwareRequest,
    parse_request,
)
from gbhil.gbcs import dlms
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import DecodedMessage, alert_code_of, decode_message
from gbhil.gbcs.security import SecurityContext
from gbhil.gbcs.usecases import ENCRYPTED_RESPONSE_CODES, MESSAGE_CODES
from gbhil.han.network import DeliveryStatus
from gbhil.simulator import Clock, ClockMode

log = logging.getLogger(__name__)


def _code(code: str) -> str:
    """A generic response code from the catalogue (import fails if it is not there)."""
    return duis_codes.response_code(code).code


# --- Response codes this module answers with (seed 003 unless noted) --------------------------

SUCCESS = duis_codes.SUCCESS
ACKNOWLEDGED = duis_codes.ACKNOWLEDGED
INVALID_USER = _code("E1")
ROLE_NOT_FOR_SERVICE = _code("E2")
USER_STATUS = _code("E3")
ROLE_NOT_FOR_DEVICE = _code("E4")
DEVICE_STATUS = _code("E5")
WRONG_COMMAND_VARIANT = _code("E12")
WRONG_URL = _code("E13")
NO_LOCAL_DELIVERY = _code("E17")
UNKNOWN_DEVICE = _code("E19")
UNABLE_TO_COMMUNICATE = _code("E20")
NO_RESPONSE = _code("E21")
FUTURE_DATED_TIMEOUT = _code("E30")
DSP_FUTURE_DATED_TIMEOUT = _code("E31")
SEQUENCE_INVALID_FIRST = _code("E40")
SEQUENCE_PRECEDING_REUSED = _code("E41")
SEQUENCE_CIRCULAR = _code("E42")
SEQUENCE_PREVIOUS_FAILED = _code("E43")
SEQUENCE_PREVIOUS_NO_RESPONSE = _code("E44")
SEQUENCE_WRONG_COMMAND_VARIANT = _code("E45")
SEQUENCE_PREVIOUS_NO_DEVICE_RESPONSE = _code("E47")
SR_SRV_MISMATCH = _code("E48")
#: A request for a command for local delivery that returns none (seed 003 E50): a DSP
#: cancellation only drops what the DCC holds, so there is no command to hand over.
LOCAL_COMMAND_NOT_RETURNED = _code("E50")
SIGNED_PRE_COMMAND_MISMATCH = _code("E51")
NOTHING_TO_CANCEL = _code("E52")
SEQUENCE_DSP_NOT_FIRST = _code("E53")
SEQUENCE_ENCRYPTED_GAS_RESPONSE = _code("E54")
DUPLICATE_REQUEST_ID = _code("E55")
NOT_FOR_DEVICE_MODEL = _code("E57")
CERTIFICATE_ROLE = _code("E65")
FAILED_AUTHENTICATION = _code("E100")

#: SR 8.13 codes E081301-03 exist in the XSD but their text is not public; gbhil uses them
#: as stand-ins for the three ways a returned local response can be wrong (remap with
#: ``ProcessingPolicy.local_response_codes``).
LOCAL_RESPONSE_CODES: Mapping[str, str] = MappingProxyType(
    {
        "original_request.unknown": "E081301",
        "response.undecodable": "E081302",
        "response.mismatch": "E081303",
    }
)

#: Service reference variants treated as "priority" by traffic management (never 429).
#: SECMP0067 names no list publicly; gbhil's choice: prepayment top-up (a consumer may be
#: off supply) and Enable Supply.
PRIORITY_SERVICE_REFERENCE_VARIANTS = frozenset({"2.2", "7.1"})
#: Device SMI statuses that accept device service requests (gbhil's model; E5 otherwise).
ACTIVE_STATUSES = frozenset(
    {DeviceStatus.WHITELISTED, DeviceStatus.INSTALLED_NOT_COMMISSIONED, DeviceStatus.COMMISSIONED}
)
#: Firmware requests may also reach a Suspended device (to bring it back to a CPL version).
SUSPENDED_ALLOWED_SRVS = frozenset({"11.2", "11.3"})
#: Future-dating patterns where the device holds the command until its execution date.
DEVICE_HELD = frozenset({FutureDating.DEVICE, FutureDating.DSP_AND_DEVICE})
#: Gas devices: a sequenced request whose response they encrypt is refused (seed 003 E54).
GAS_DEVICE_TYPES = frozenset({DeviceType.GSME, DeviceType.GPF})
#: SRVs whose device response reports the firmware version (seed 004 N49-N51 triggers).
FIRMWARE_REPORT_SRVS = frozenset({"11.2", "11.3"})
#: User Roles that may ask for commands for local delivery (E17 otherwise); gbhil's model.
LOCAL_DELIVERY_ROLES = frozenset({"IS", "ES", "GS", "ED", "GT"})
#: Command Variants of a sequenced request: it must go over the SM WAN (E45 otherwise).
SEQUENCE_COMMAND_VARIANTS = frozenset({CommandVariant.SEND, CommandVariant.SEND_SIGNED})
#: Registration roles per smart meter type, for E4 and AD1 recipients (seed 004 5.9.4).
METER_ROLES: Mapping[DeviceType, tuple[str, ...]] = MappingProxyType(
    {
        DeviceType.ESME: ("IS", "ES", "ED"),
        DeviceType.GSME: ("GS", "GT"),
    }
)
#: AD1 goes to the IS/ED of an ESME and the GS/GT of a GSME on the comms hub (seed 004).
AD1_ROLES: Mapping[DeviceType, tuple[str, ...]] = MappingProxyType(
    {
        DeviceType.ESME: ("IS", "ED"),
        DeviceType.GSME: ("GS", "GT"),
    }
)
#: Comms hub alerts addressed to the ACB become DCC alert N62 (CommsHubAlert) for the
#: Responsible Suppliers of the hub; gbhil's routing (DUIS' recipients are not public).
COMMS_HUB_ALERT = "N62"
_SIGNED_INPUT = frozenset(
    {
        CommandVariant.SEND_SIGNED,
        CommandVariant.RETURN_SIGNED_FOR_LOCAL_DELIVERY,
        CommandVariant.SEND_AND_RETURN_SIGNED_FOR_LOCAL_DELIVERY,
    }
)
_OVER_WAN = frozenset(
    {
        CommandVariant.SEND,
        CommandVariant.SEND_AND_RETURN_FOR_LOCAL_DELIVERY,
        CommandVariant.SEND_SIGNED,
        CommandVariant.SEND_AND_RETURN_SIGNED_FOR_LOCAL_DELIVERY,
    }
)
_LOCAL = frozenset(
    {
        CommandVariant.RETURN_FOR_LOCAL_DELIVERY,
        CommandVariant.SEND_AND_RETURN_FOR_LOCAL_DELIVERY,
        CommandVariant.RETURN_SIGNED_FOR_LOCAL_DELIVERY,
        CommandVariant.SEND_AND_RETURN_SIGNED_FOR_LOCAL_DELIVERY,
    }
)
#: The XSD comments give 7.12/7.13 (critical in duis-request-matrix, CV 4 in the published
#: templates) CV 1-3 and 7.14/7.15 (non-critical reads, CV 1 templates) CV 4-7: the four
#: comments look shifted. gbhil follows the matrix and the templates for these four.
COMMAND_VARIANT_CORRECTIONS: Mapping[str, frozenset[int]] = MappingProxyType({
    "7.12": frozenset({4, 5, 6, 7}),
    "7.13": frozenset({4, 5, 6, 7}),
    "7.14": frozenset({1, 2, 3}),
    "7.15": frozenset({1, 2, 3}),
})
#: SR 5.1 Create, 5.2 Read and 5.3 Delete Schedule (gbhil.dcc.schedules).
SCHEDULE_SRVS = frozenset({"5.1", "5.2", "5.3"})
_XS = "http://www.w3.org/2001/XMLSchema"
_SEEN_REQUEST_IDS = 200_000


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


# --- Policy -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertThrottlePolicy:
    """Alert storm protection (SECMP0062): more than ``threshold`` alerts of one code for
    one User within ``window_s`` start throttling; while throttled at most one alert per
    ``forward_interval_s`` goes out, carrying ThrottledAlertSequenceId (its number since
    throttling began) and ThrottledAlertCount (alerts consolidated since the last one
    forwarded, itself included). Throttling ends after a quiet window. The thresholds are
    gbhil's (the Traffic Management Mechanism Document is not public)."""

    threshold: int = 10
    window_s: float = 60.0
    forward_interval_s: float = 60.0
    #: Alert keys never throttled ("AD1", "N49", or "0x8F36" for device alerts).
    exempt: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ProcessingPolicy:
    """Tunable DCC behaviour; the defaults are gbhil's and documented in docs/dcc.md."""

    #: Counters must strictly increase per originator (anti-replay, E100 otherwise).
    strict_counter_order: bool = True
    #: No device response within this long (clock seconds) -> E21.
    response_timeout_s: float = 300.0
    #: ... for a command queued for a sleepy device (GSME wake cycle).
    sleepy_response_timeout_s: float = 7200.0
    #: A device-held future-dated command's outcome alert must arrive this long after its
    #: execution date-time (E30 after); a GSME reports at a wake, so hours, not minutes.
    future_dated_outcome_s: float = 7200.0
    #: A sequenced request waits this long for its predecessor (E44 after).
    sequence_wait_s: float = 300.0
    priority_srvs: frozenset[str] = PRIORITY_SERVICE_REFERENCE_VARIANTS
    local_response_codes: Mapping[str, str] = field(default_factory=lambda: LOCAL_RESPONSE_CODES)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: GBCS version written into PreCommand answers when the CPL has none for the model.
    gbcs_version: str = GBCS_VERSION


# --- Results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncAnswer:
    """The synchronous HTTP answer to a POSTed request."""

    status: int
    body: bytes
    content_type: str = "application/xml"
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The DUIS answer (unsigned model) when there is one.
    response: Response | None = None

    @property
    def response_code(self) -> str | None:
        return None if self.response is None else self.response.header.response_code


class OverCapacity(Exception):
    """The User exceeds its traffic allocation: HTTP 429, retry after ``retry_after`` s."""

    def __init__(self, user_id: str, retry_after: int) -> None:
        super().__init__(f"{user_id} exceeds its capacity; retry after {retry_after} s")
        self.user_id = user_id
        self.retry_after = retry_after


class _Refusal(Exception):
    """Internal: answer the request with this DUIS code now."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


# --- XSD facts ----------------------------------------------------------------------------------


def allowed_command_variants(
    schema: DuisSchema,
    corrections: Mapping[str, frozenset[int]] = COMMAND_VARIANT_CORRECTIONS,
) -> Mapping[str, frozenset[int]]:
    """CVs allowed per SRV, from the comments after each ``ServiceReferenceVariant``
    enumeration value of the XSD (``<!-- CV = 4, 5, 6, 7 -->``), with ``corrections``."""
    simple = schema.tree.getroot().find(f"{{{_XS}}}simpleType[@name='ServiceReferenceVariant']")
    out: dict[str, frozenset[int]] = {}
    if simple is None:
        return MappingProxyType(out)
    current: str | None = None
    for node in simple.iter():
        if node.tag == f"{{{_XS}}}enumeration":
            current = node.get("value")
        elif isinstance(node, etree._Comment) and current is not None:
            text = (node.text or "").strip()
            if text.startswith("CV"):
                numbers = text.split("=", 1)[-1].replace(" ", "").split(",")
                out[current] = frozenset(int(n) for n in numbers if n.isdigit())
    out.update({srv: cvs for srv, cvs in corrections.items() if srv in out})
    return MappingProxyType(out)


# --- Traffic management (SECMP0067) ---------------------------------------------------------------


class TrafficManager:
    """A token bucket per User: ``capacity_per_minute`` requests, refilled continuously in
    clock time. A User without a capacity is never limited; priority SRVs bypass it."""

    def __init__(self, clock: Clock, priority_srvs: frozenset[str]) -> None:
        self.clock = clock
        self.priority_srvs = priority_srvs
        self._buckets: dict[str, tuple[float, float]] = {}

    def admit(self, user: DccUser, srv: str) -> None:
        """Take one token or raise :class:`OverCapacity`."""
        capacity = user.capacity_per_minute
        if capacity is None or srv in self.priority_srvs:
            return
        now = self.clock.monotonic()
        tokens, last = self._buckets.get(user.user_id, (float(capacity), now))
        tokens = min(float(capacity), tokens + (now - last) * capacity / 60.0)
        if tokens >= 1.0:
            self._buckets[user.user_id] = (tokens - 1.0, now)
            return
        self._buckets[user.user_id] = (tokens, now)
        raise OverCapacity(user.user_id, max(1, math.ceil((1.0 - tokens) * 60.0 / capacity)))


# --- Alert throttling (SECMP0062) ---------------------------------------------------------------

AlertBuilder = Callable[[int | None, int | None], Response]


@dataclass(slots=True)
class _ThrottleState:
    times: collections.deque[float] = field(default_factory=collections.deque)
    throttling: bool = False
    sequence: int = 0
    consolidated: int = 0
    held: AlertBuilder | None = None
    last_forward: float = -math.inf
    flush: Any = None


class AlertThrottle:
    """Applies :class:`AlertThrottlePolicy` per (User, alert key); ``emit(user, response)``
    gets what goes out."""

    def __init__(
        self, clock: Clock, policy: AlertThrottlePolicy, emit: Callable[[str, Response], None]
    ) -> None:
        self.clock = clock
        self.policy = policy
        self.emit = emit
        self._state: dict[tuple[str, str], _ThrottleState] = {}

    def is_throttling(self, user_id: str, key: str) -> bool:
        state = self._state.get((user_id, key))
        return state is not None and state.throttling

    def submit(self, user_id: str, key: str, build: AlertBuilder) -> None:
        if key in self.policy.exempt:
            self.emit(user_id, build(None, None))
            return
        now = self.clock.monotonic()
        state = self._state.setdefault((user_id, key), _ThrottleState())
        self._prune(state, now)
        state.times.append(now)
        if not state.throttling and len(state.times) > self.policy.threshold:
            state.throttling = True
            state.sequence = 0
        if not state.throttling:
            self.emit(user_id, build(None, None))
            return
        state.consolidated += 1
        state.held = build
        if now - state.last_forward >= self.policy.forward_interval_s:
            self._forward(user_id, key, state)
        elif state.flush is None:
            at = state.last_forward + self.policy.forward_interval_s
            state.flush = self.clock.call_at(at, self._flush, user_id, key)

    def _prune(self, state: _ThrottleState, now: float) -> None:
        while state.times and now - state.times[0] > self.policy.window_s:
            state.times.popleft()

    def _forward(self, user_id: str, key: str, state: _ThrottleState) -> None:
        build, count = state.held, state.consolidated
        state.held, state.consolidated = None, 0
        state.last_forward = self.clock.monotonic()
        if build is None:
            return
        state.sequence += 1
        self.emit(user_id, build(state.sequence, count))

    def _flush(self, user_id: str, key: str) -> None:
        state = self._state.get((user_id, key))
        if state is None:
            return
        state.flush = None
        if state.held is not None:
            self._forward(user_id, key, state)
            state.flush = self.clock.call_later(
                self.policy.forward_interval_s, self._flush, user_id, key
            )
            return
        now = self.clock.monotonic()
        self._prune(state, now)
        if not state.times:
            del self._state[(user_id, key)]  # a quiet window: throttling is over
        else:
            state.flush = self.clock.call_later(
                self.policy.forward_interval_s, self._flush, user_id, key
            )


# --- Work in flight -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    """A device command the DCC sends (now or at its DSP execution time)."""

    request: Request
    #: The request whose body describes the command (the CV 4 request for CV 5/6/7).
    origin: Request
    user: DccUser
    command: bytes
    originator: str
    counter: int
    dsp_time: dt.datetime | None = None
    timer: Any = None
    held: Any = None
    waiting_for: RequestID | None = None

    @property
    def request_id(self) -> RequestID:
        return self.request.header.request_id

    @property
    def srv(self) -> str:
        return self.request.header.service_reference_variant


@dataclass(slots=True)
class _LocalCommand:
    """A command returned for local delivery, kept for SR 8.13."""

    request: Request
    origin: Request
    user: DccUser
    originator: str
    counter: int


@dataclass(slots=True)
class _PreCommand:
    request: Request
    transformed: Transformed
    user: DccUser


@dataclass(slots=True)
class _Outage:
    start: dt.datetime
    timer: Any
    raised: bool = False


WanSend = Callable[[bytes], Awaitable[Any]]
Sink = Callable[[str, bytes, MessageKind, str | None], object]
CertificateLookup = Callable[[str, str], bytes | None]


_PENDING_SCHEMA = """
CREATE TABLE IF NOT EXISTS dcc_pending (
    request_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    service_reference TEXT NOT NULL,
    srv TEXT NOT NULL,
    command_variant INTEGER NOT NULL,
    dsp INTEGER NOT NULL,
    since TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dcc_last_counter (
    originator TEXT PRIMARY KEY,
    counter INTEGER NOT NULL
);
"""


class _PendingStore:
    """Acknowledged requests still waiting for their device, and each originator's last
    RequestID counter (anti-replay), both surviving a restart."""

    def __init__(self, path: str | os.PathLike[str], *, background: bool = False) -> None:
        self._lock = threading.Lock()
        self._conn = open_store(path, _PENDING_SCHEMA)
        # The counter and pending rows of a request are one transaction, shared with the
        # requests processed meanwhile (group commit); submit awaits it before the I99.
        self._writes = GroupCommit(self._conn, self._lock, background=background)

    async def durable(self) -> None:
        await self._writes.durable()

    def last_counters(self) -> dict[str, int]:
        self._writes.flush()
        with self._lock:
            rows = self._conn.execute("SELECT originator, counter FROM dcc_last_counter")
            return {r[0]: int(r[1]) for r in rows.fetchall()}

    def set_last_counter(self, originator: str, counter: int) -> None:
        self._writes.write(
            "INSERT INTO dcc_last_counter VALUES (?, ?) ON CONFLICT (originator) "
            "DO UPDATE SET counter = MAX(counter, excluded.counter)",
            (originator, counter),
        )

    def add(self, job: _Job, since: dt.datetime) -> None:
        h = job.request.header
        self._writes.write(
            "INSERT OR REPLACE INTO dcc_pending VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                str(h.request_id),
                job.user.user_id,
                h.service_reference,
                h.service_reference_variant,
                int(h.command_variant),
                int(job.dsp_time is not None),
                since.isoformat(),
            ),
        )

    def remove(self, request_id: RequestID) -> None:
        """Committed before this returns: the answer is queued, the outbox may send it."""
        self._writes.write("DELETE FROM dcc_pending WHERE request_id = ?", (str(request_id),))
        self._writes.flush()

    def take_all(self) -> list[tuple[RequestHeader, str, bool]]:
        self._writes.flush()
        with self._lock:
            rows = self._conn.execute(
                "SELECT request_id, user_id, service_reference, srv, command_variant, dsp "
                "FROM dcc_pending ORDER BY since"
            ).fetchall()
            self._conn.execute("DELETE FROM dcc_pending")
        return [
            (
                RequestHeader(RequestID.parse(r[0]), CommandVariant(r[4]), r[2], r[3]),
                r[1],
                bool(r[5]),
            )
            for r in rows
        ]

    def close(self) -> None:
        try:
            self._writes.close()
        finally:
            with self._lock:
                self._conn.close()


# --- The processor ------------------------------------------------------------------------------


class DccProcessor:
    """The DCC between Users and devices (see the module docstring).

    ``wan(raw)`` sends a GBCS command to the SM WAN (the rig's ``send``); ``sink(user_id,
    signed_xml, kind, request_id)`` takes every asynchronous message (the outbox's
    ``enqueue``); ``certificate(eui, usage)`` is the SMKI repository for the transform.
    """

    def __init__(
        self,
        *,
        users: UserDirectory,
        inventory: InventoryService,
        security: SecurityContext,
        clock: Clock,
        wan: WanSend,
        sink: Sink,
        schema: DuisSchema | None = None,
        policy: ProcessingPolicy | None = None,
        throttle: AlertThrottlePolicy | None = None,
        certificate: CertificateLookup | None = None,
        store_path: str | os.PathLike[str] = ":memory:",
        counters: Callable[[str], int] | None = None,
        firmware_delivery: FirmwareDelivery | None = None,
    ) -> None:
        self.users = users
        self.inventory = inventory
        self.security = security
        self.clock = clock
        self.wan = wan
        self.sink = sink
        self.schema = schema or load_schema()
        self.policy = policy or ProcessingPolicy()
        self.certificate = certificate
        self.allowed_cvs = allowed_command_variants(self.schema)
        self.traffic = TrafficManager(clock, self.policy.priority_srvs)
        self.throttle = AlertThrottle(clock, throttle or AlertThrottlePolicy(), self._emit_alert)
        self.counters = counters or DccCounters(int(clock.now().timestamp() * 1000))
        self._pending_store = _PendingStore(
            store_path, background=str(store_path) != IN_MEMORY
            and getattr(clock, "mode", None) is ClockMode.REAL_TIME)
        self._seen: collections.OrderedDict[RequestID, None] = collections.OrderedDict()
        self._last_counter: dict[str, int] = self._pending_store.last_counters()
        self._precommands: dict[RequestID, _PreCommand] = {}
        self._local: dict[RequestID, _LocalCommand] = {}
        #: Organisation Certificates held on devices, from credentials responses (seed 002).
        self.org_certificates = OrgCertificateRegister()
        self._awaiting: dict[tuple[str, int], _Job] = {}
        #: Device-held future-dated commands awaiting their outcome alert (E30), by
        #: (device, originator counter); in memory: a restart forgets them.
        self._future_dated: dict[tuple[str, int], tuple[_Job, Any]] = {}
        self._held: dict[tuple[str, str, str], _Job] = {}
        self._outcomes: dict[RequestID, str] = {}
        self._successor: dict[RequestID, RequestID] = {}
        self._preceding: dict[RequestID, RequestID] = {}
        self._waiters: dict[RequestID, list[_Job]] = {}
        self._outages: dict[str, _Outage] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: SR 5.1-5.3: stored schedules (armed by :meth:`recover`) and the runs in flight.
        self.schedules = DspSchedules(store_path, clock, self._run_schedule)
        self._schedule_runs: dict[RequestID, int] = {}
        #: SR 11.1 / 11.4: the DSP checks here, the CSP's checks and delivery in the task.
        self.firmware = FirmwareService(inventory=inventory.inventory, cpl=inventory.cpl,
                                        delivery=firmware_delivery)

    # --- synchronous answers -----------------------------------------------------------------

    def _sign(self, response: Response) -> bytes:
        return self.users.dcc.sign(response.to_element(), in_place=True)  # no reparse

    def _answer(self, response: Response) -> SyncAnswer:
        return SyncAnswer(200, self._sign(response), response=response)

    def _ack(self, header: RequestHeader | Request, code: str) -> SyncAnswer:
        return self._answer(acknowledgement(header, code, at=self.clock.now()))

    @staticmethod
    def _http(status: int, reason: str) -> SyncAnswer:
        return SyncAnswer(status, reason.encode("utf-8"), "text/plain; charset=utf-8")

    async def submit(self, service: WebService, body: bytes) -> SyncAnswer:
        """Process one POSTed request; raises :class:`OverCapacity` for HTTP 429."""
        try:
            tree = self.schema.parse(body, max_bytes=self.policy.max_body_bytes)
        except DuisTooLargeError as exc:
            return self._http(413, str(exc))
        except DuisForbiddenError as exc:
            return self._http(400, f"refused: {exc}")
        except DuisParseError as exc:
            return self._http(400, f"not well-formed XML: {exc}")
        except DuisValidationError as exc:
            first = exc.issues[0] if exc.issues else None
            return self._http(400, f"not valid DUIS {self.schema.version}: {first}")
        root = tree.getroot()
        if root.tag != _sr("Request"):
            return self._http(400, f"expected sr:Request, got {etree.QName(root).localname}")
        header_element = root.find(_sr("Header"))
        if header_element is None:
            return self._http(400, "sr:Request has no sr:Header")
        try:
            header = RequestHeader.from_element(header_element)
        except DuisModelError as exc:
            raw = _raw_header(header_element)
            if raw is None or exc.response_code is None:
                return self._http(400, str(exc))
            return self._ack(raw, exc.response_code)
        try:
            verified = verify(tree, self.users.resolve_certificate, at=self.clock.now(),
                              in_place=True)  # the parsed tree is not used again
        except SignatureError as exc:
            log.info("%s: authentication failed: %s", header.request_id, type(exc).__name__)
            return self._ack(header, FAILED_AUTHENTICATION)
        problem = signer_problem(verified.certificate, header.business_originator_id)
        if problem is not None:
            return self._ack(header, problem)
        try:
            request = Request.from_element(verified.root)
        except DuisModelError as exc:
            return self._ack(header, exc.response_code or FAILED_AUTHENTICATION)
        try:
            answer = await self._process(service, request)
        except _Refusal as refusal:
            log.info("%s refused: %s", request.header.request_id, refusal)
            rid = request.header.request_id
            if refusal.code != DUPLICATE_REQUEST_ID and rid not in self._outcomes:
                self._finish(rid, refusal.code)  # a sequenced follower fails with E43
            answer = self._ack(request, refusal.code)
        await self._pending_store.durable()  # counter and pending rows before the answer
        return answer

    async def _process(self, service: WebService, request: Request) -> SyncAnswer:
        header = request.header
        user = self.users.get(header.business_originator_id)
        if user is None:
            raise _Refusal(INVALID_USER, f"{header.business_originator_id} is not a DCC User")
        if user.status is not UserStatus.ACTIVE:
            raise _Refusal(USER_STATUS, f"User {user.user_id} is {user.status}")
        self.traffic.admit(user, header.service_reference_variant)
        self._check_replay(request)
        sv = self._check_service(service, request, user)
        self._check_sequence(request, sv)
        if sv.non_device:
            return self._non_device(request, user, sv)
        return await self._device(request, user, sv)

    def _check_replay(self, request: Request) -> None:
        header = request.header
        rid = header.request_id
        if header.command_variant in _SIGNED_INPUT and rid in self._precommands:
            return  # the Signed Pre-Command of a CV 4 request keeps its RequestID
        if rid in self._seen:
            raise _Refusal(DUPLICATE_REQUEST_ID, f"{rid} was already received")
        originator = header.business_originator_id
        last = self._last_counter.get(originator)
        self._remember(rid)
        if self.policy.strict_counter_order and last is not None and rid.counter <= last:
            raise _Refusal(FAILED_AUTHENTICATION,
                           f"counter {rid.counter} does not exceed {last} (anti-replay)")
        self._last_counter[originator] = rid.counter if last is None else max(last, rid.counter)
        if last is None or rid.counter > last:
            self._pending_store.set_last_counter(originator, rid.counter)

    def _remember(self, rid: RequestID) -> None:
        self._seen[rid] = None
        while len(self._seen) > _SEEN_REQUEST_IDS:
            self._seen.popitem(last=False)

    def _check_service(self, service: WebService, request: Request,
                       user: DccUser) -> ServiceVariant:
        header = request.header
        cv = header.command_variant
        if cv.info.web_service is not service:
            raise _Refusal(WRONG_URL, f"CV {int(cv)} belongs to {cv.info.web_service}, "
                           f"not {service.path}")
        srv = header.service_reference_variant
        sv = service_variant(srv)
        if sv is None or sv.service_reference != header.service_reference:
            raise _Refusal(SR_SRV_MISMATCH, f"SR {header.service_reference} / SRV {srv}")
        allowed = self.allowed_cvs.get(srv)
        if allowed is not None and int(cv) not in allowed:
            raise _Refusal(WRONG_COMMAND_VARIANT, f"CV {int(cv)} not in {sorted(allowed)}")
        if not user.roles & sv.roles:
            raise _Refusal(ROLE_NOT_FOR_SERVICE,
                           f"roles {sorted(user.roles)} may not send {srv}")
        return sv

    def _check_sequence(self, request: Request, sv: ServiceVariant) -> None:
        header = request.header
        first, preceding = header.first_in_sequence, header.preceding_request_id
        if first is None and preceding is None:
            return
        rid = header.request_id
        if first and preceding is not None:
            raise _Refusal(SEQUENCE_INVALID_FIRST, "first in sequence with a preceding request")
        if header.command_variant not in SEQUENCE_COMMAND_VARIANTS:
            raise _Refusal(SEQUENCE_WRONG_COMMAND_VARIANT, "sequenced requests use CV 1 or 5")
        if preceding is None:
            return
        chain, seen = preceding, {rid}
        while chain is not None:
            if chain in seen:
                raise _Refusal(SEQUENCE_CIRCULAR, f"{rid} precedes itself")
            seen.add(chain)
            chain = self._preceding.get(chain)
        if preceding in self._successor:
            raise _Refusal(SEQUENCE_PRECEDING_REUSED,
                           f"{preceding} already precedes {self._successor[preceding]}")
        if sv.future_dating is FutureDating.DSP and _execution_time(request.body) is not None:
            raise _Refusal(SEQUENCE_DSP_NOT_FIRST, "a DSP future-dated request must be first")
        self._successor[preceding] = rid
        self._preceding[rid] = preceding

    # --- non-device requests ---------------------------------------------------------------------

    def _non_device(self, request: Request, user: DccUser, sv: ServiceVariant) -> SyncAnswer:
        now = self.clock.now()
        if sv.srv == "8.13":
            return self._ack(request, self._return_local_response(request, user))
        if sv.srv in FIRMWARE_SRVS:
            return self._update_firmware(request, user)
        if sv.srv in SCHEDULE_SRVS:
            return self._schedule_service(request, user, sv)
        rule = INVENTORY_SERVICES.get(sv.srv)
        if rule is None or not rule.non_device:
            raise _Refusal(NOT_FOR_DEVICE_MODEL, f"gbhil's DCC does not provide SRV {sv.srv}")
        outcome = self.inventory.process(request, user.context)
        for notice in outcome.alerts:
            self._send_dcc_alert(notice)
        return self._answer(outcome.to_response(request, at=now))

    def _update_firmware(self, request: Request, user: DccUser) -> SyncAnswer:
        """SR 11.1 / 11.4: answer the DSP checks now, distribute in the background."""
        update = parse_request(request)
        outcome, devices = self.firmware.accept(update, user.context)
        if devices:
            task = asyncio.get_running_loop().create_task(
                self._distribute_firmware(update, devices))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._answer(outcome.to_response(request, at=self.clock.now()))

    async def _distribute_firmware(self, update: UpdateFirmwareRequest,
                                   devices: tuple[str, ...]) -> None:
        await self.firmware.distribute(update, devices, self._send_dcc_alert)

    # --- SR 5.1-5.3 DSP schedules --------------------------------------------------------------

    def _schedule_service(self, request: Request, user: DccUser, sv: ServiceVariant
                          ) -> SyncAnswer:
        """Create, read or delete the User's DSP schedules (:mod:`gbhil.dcc.schedules`)."""
        now = self.clock.now()
        body = request.body
        try:
            if sv.srv == "5.1":
                created = self.schedules.create(self._checked_schedule(request, user))
                element = etree.Element(_sr("DSPScheduleID"), nsmap={"sr": SR_NS})
                element.text = str(created.schedule_id)
                outcome = ServiceOutcome(SUCCESS, element)
            else:
                what = "read" if sv.srv == "5.2" else "delete"
                found = self.schedules.select(body, user.user_id, what)
                if not found:
                    outcome = ServiceOutcome(SCHEDULE_CODES[f"{what}.none"])
                elif what == "read":
                    outcome = ServiceOutcome(SUCCESS, self.schedules.read_element(found))
                else:
                    self.schedules.delete(found)
                    outcome = ServiceOutcome(ACKNOWLEDGED)
        except ScheduleError as exc:
            raise _Refusal(SCHEDULE_CODES[exc.key], exc.reason) from None
        except DuisModelError as exc:
            raise _Refusal(UNKNOWN_DEVICE, str(exc)) from None
        return self._answer(outcome.to_response(request, at=now))

    def _checked_schedule(self, request: Request, user: DccUser) -> Schedule:
        schedule = parse_create(request, frozenset(user.roles), self.clock.now())
        target = service_variant(schedule.srv)
        if target is None or not user.roles & target.roles:
            raise ScheduleError("create.role", f"roles {sorted(user.roles)} may not send "
                                f"{schedule.srv}")
        device = self.inventory.inventory.find(schedule.device_id)
        if device is None:
            raise _Refusal(UNKNOWN_DEVICE, f"{schedule.device_id} is not in the SMI")
        if not any(str(device.device_type) in r.device_types for r in target.routes):
            raise _Refusal(_code("E11"), f"{schedule.srv} does not apply to a "
                           f"{device.device_type}")
        if not self._authorised(user, target, device):
            raise _Refusal(ROLE_NOT_FOR_DEVICE, f"{user.user_id} is not registered for "
                           f"{device.device_id}")
        return schedule

    def _run_schedule(self, schedule: Schedule, due: dt.datetime) -> None:
        """One occurrence: the scheduled read goes through the device request path; a
        refusal (device gone, User no longer registered...) reaches the User as the
        schedule's asynchronous answer."""
        user = self.users.get(schedule.user_id)
        if user is None:
            return
        counter = max(int(due.timestamp() * 1000), self._last_counter.get(user.user_id, 0) + 1)
        request = schedule.device_request(counter, due)
        sv = service_variant(schedule.srv)
        assert sv is not None
        self._schedule_runs[request.header.request_id] = schedule.schedule_id
        task = asyncio.get_running_loop().create_task(self._scheduled_device(request, user, sv))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _scheduled_device(self, request: Request, user: DccUser,
                                sv: ServiceVariant) -> None:
        try:
            await self._device(request, user, sv)
        except _Refusal as refusal:
            self._schedule_runs.pop(request.header.request_id, None)
            log.info("DSP schedule run %s refused: %s", request.header.request_id, refusal)
            self._deliver(user.user_id, acknowledgement(request, refusal.code,
                                                        at=self.clock.now()),
                          MessageKind.RESPONSE)

    # --- device requests -------------------------------------------------------------------------

    def _transform_context(self, user: DccUser, sv: ServiceVariant,
                           device: Device) -> TransformContext:
        inventory = self.inventory.inventory

        def device_type(eui: str) -> str | None:
            found = inventory.find(eui)
            return None if found is None else str(found.device_type)

        # The role the User acts in: one registered for this kind of meter if it has one
        # (6.2.10 picks ECS25r1 for a supplier, ECS25r2 for a network operator).
        eligible = sorted(user.roles & sv.roles)
        preferred = [r for r in eligible if r in METER_ROLES.get(device.device_type, ())]
        roles = preferred or eligible
        return TransformContext(
            device_type=device_type, now=self.clock.now(), acb_eui=self.users.dcc.eui,
            dcc_counter=self.counters, user_role=roles[0] if roles else None,
            certificate=self.certificate,
        )

    async def _device(self, request: Request, user: DccUser, sv: ServiceVariant) -> SyncAnswer:
        header = request.header
        cv = header.command_variant
        device = self.inventory.inventory.find(header.business_target_id)
        if device is None:
            raise _Refusal(UNKNOWN_DEVICE, f"{header.business_target_id} is not in the SMI")
        if not self._authorised(user, sv, device):
            raise _Refusal(ROLE_NOT_FOR_DEVICE, f"{user.user_id} is not registered for "
                           f"{device.device_id} in roles {sorted(user.roles & sv.roles)}")
        allowed = ACTIVE_STATUSES | (
            {DeviceStatus.SUSPENDED} if sv.srv in SUSPENDED_ALLOWED_SRVS else set())
        if device.status is not None and device.status not in allowed:
            raise _Refusal(DEVICE_STATUS, f"{device.device_id} is {device.status}")
        if cv in _LOCAL and not (user.roles & sv.roles & LOCAL_DELIVERY_ROLES):
            raise _Refusal(NO_LOCAL_DELIVERY, "this User Role may not deliver locally")
        problem = self.inventory.gbcs_problem(device.device_id)
        if problem is not None:
            raise _Refusal(problem, f"{device.model} has no usable CPL entry")
        rule = INVENTORY_SERVICES.get(sv.srv)
        if rule is not None and not rule.non_device and cv not in _SIGNED_INPUT:
            try:
                outcome = self.inventory.process(request, user.context)
            except UnsupportedRequest:
                outcome = None
            if outcome is not None and not outcome.ok:
                raise _Refusal(outcome.response_code, outcome.detail)
        if cv in _SIGNED_INPUT:
            return self._signed_pre_command(request, user, sv)
        return self._transform(request, user, sv, device)

    def _authorised(self, user: DccUser, sv: ServiceVariant, device: Device) -> bool:
        """E4: the User must hold, for this device, one of the roles the SRV allows. Other
        Users and Registered Supplier Agents are not tied to registration data here."""
        eligible = user.roles & sv.roles
        if eligible & {"OU", "RSA", "MDR"}:
            return True
        inventory = self.inventory.inventory
        meters = [device] if device.device_type in SMART_METERS else [
            m for m in (inventory.find(d) for d in inventory.connected(device.device_id))
            if m is not None and m.device_type in SMART_METERS]
        for meter in meters:
            parties = inventory.parties(meter.device_id)
            for role in eligible & set(METER_ROLES.get(meter.device_type, ())):
                if parties.get(role) == user.user_id:
                    return True
        return False

    def _transform(self, request: Request, user: DccUser, sv: ServiceVariant,
                   device: Device) -> SyncAnswer:
        header = request.header
        cv = header.command_variant
        target = request
        if sv.critical and cv is not CommandVariant.TRANSFORM:
            # Critical SRVs the DCC itself signs (6.21, 6.23) come with CV 1-3.
            target = dataclasses.replace(request, header=dataclasses.replace(
                header, command_variant=CommandVariant.TRANSFORM))
        try:
            t = transform(target, self._transform_context(user, sv, device))
        except TransformError as exc:
            raise _Refusal(exc.response_code, exc.reason) from None
        if (_sequenced(header) and device.device_type in GAS_DEVICE_TYPES
                and t.message_code in ENCRYPTED_RESPONSE_CODES):
            raise _Refusal(SEQUENCE_ENCRYPTED_GAS_RESPONSE,
                           f"{t.use_case} returns encrypted data: not in a sequence")
        now = self.clock.now()
        if cv is CommandVariant.TRANSFORM and t.needs_user_signature:
            self._precommands[header.request_id] = _PreCommand(request, t, user)
            version = self._gbcs_version(device)
            return self._answer(pre_command_response(request, version, t.pre_command(), at=now))
        if t.needs_user_signature:
            raise _Refusal(WRONG_COMMAND_VARIANT, f"{t.use_case} needs the User's signature")
        if t.cancellation and sv.future_dating is FutureDating.DSP:
            if cv in _LOCAL:
                raise _Refusal(LOCAL_COMMAND_NOT_RETURNED,
                               "a DSP cancellation has no command for local delivery")
            return self._cancel_held(request, user)
        command = t.command(self.security)
        gs = t.general_signing
        originator, counter = format_eui(gs.business_originator), gs.originator_counter
        return self._route(request, request, user, command, originator, counter,
                           t.dsp_execution_time, local=cv in _LOCAL,
                           over_wan=cv in _OVER_WAN or cv is CommandVariant.TRANSFORM)

    def _gbcs_version(self, device: Device) -> str:
        from gbhil.dcc.cpl import DeviceModel  # local: only needed for PreCommand answers

        entry = self.inventory.cpl.entry_for(
            DeviceModel(device.manufacturer, device.model, device.hardware_version),
            device.firmware_version)
        version = None if entry is None else entry.latest_gbcs_version
        return version or self.policy.gbcs_version

    def _signed_pre_command(self, request: Request, user: DccUser,
                            sv: ServiceVariant) -> SyncAnswer:
        header = request.header
        if request.body_name != "SignedPreCommand":
            raise _Refusal(_code("E49"), "CV 5/6/7 carry a SignedPreCommand body")
        payload = request.body.find(_sr("GBCSPayload"))
        try:
            signed = base64.b64decode("".join((payload.text or "").split()) if payload is not None
                                      else "", validate=True)
        except (binascii.Error, ValueError):
            raise _Refusal(SIGNED_PRE_COMMAND_MISMATCH, "GBCSPayload is not base64") from None
        record = self._precommands.get(header.request_id)
        if record is None:
            self._check_message_code(signed, sv)
        try:
            command = complete_signed_pre_command(
                signed, self.security, expected=None if record is None else record.transformed)
        except TransformError as exc:
            raise _Refusal(exc.response_code, exc.reason) from None
        msg = decode_message(command)
        gs = msg.frame.gs
        if format_eui(gs.business_target) != header.business_target_id:
            raise _Refusal(SIGNED_PRE_COMMAND_MISMATCH, "the command targets another device")
        self._precommands.pop(header.request_id, None)  # used: a second CV 5 is a duplicate
        at = _execution_time(request.body)
        if at is None and record is not None:
            at = record.transformed.dsp_execution_time
        dsp_time = at if sv.future_dating is FutureDating.DSP else None
        origin = request if record is None else record.request
        cv = header.command_variant
        return self._route(request, origin, user, command, format_eui(gs.business_originator),
                           gs.originator_counter, dsp_time, local=cv in _LOCAL,
                           over_wan=cv in _OVER_WAN)

    @staticmethod
    def _check_message_code(signed: bytes, sv: ServiceVariant) -> None:
        try:
            gs = decode_message(signed, precommand=False).frame.gs
        except GbcsError:
            raise _Refusal(SIGNED_PRE_COMMAND_MISMATCH, "not a GBCS command") from None
        if gs.message_code not in {r.message_code for r in sv.routes}:
            raise _Refusal(SIGNED_PRE_COMMAND_MISMATCH,
                           f"message code 0x{gs.message_code:04X} is not a {sv.srv} command")

    def _route(self, request: Request, origin: Request, user: DccUser, command: bytes,
               originator: str, counter: int, dsp_time: dt.datetime | None, *, local: bool,
               over_wan: bool) -> SyncAnswer:
        now = self.clock.now()
        if local:
            self._local[request.header.request_id] = _LocalCommand(
                request, origin, user, originator, counter)
        if over_wan:
            job = _Job(request, origin, user, command, originator, counter,
                       dsp_time if dsp_time is not None and dsp_time > now else None)
            self._pending_store.add(job, now)
            self._schedule(job)
        if local:
            return self._answer(local_command_response(request, command, at=now))
        return self._ack(request, ACKNOWLEDGED)

    # --- sending and waiting -------------------------------------------------------------------

    def _schedule(self, job: _Job) -> None:
        if job.dsp_time is not None:
            key = (job.user.user_id, job.srv, job.request.header.business_target_id)
            self._held[key] = job
            job.held = self.clock.call_at(job.dsp_time, self._release_held, key, job)
            return
        self._start(job)

    def _release_held(self, key: tuple[str, str, str], job: _Job) -> None:
        if self._held.get(key) is job:
            del self._held[key]
        job.held = None
        self._start(job)

    def _cancel_held(self, request: Request, user: DccUser) -> SyncAnswer:
        key = (user.user_id, request.header.service_reference_variant,
               request.header.business_target_id)
        job = self._held.pop(key, None)
        if job is None:
            raise _Refusal(NOTHING_TO_CANCEL, "no DSP future-dated request to cancel")
        if job.held is not None:
            job.held.cancel()
        self._pending_store.remove(job.request_id)
        self._finish(job.request_id, SUCCESS)
        return self._ack(request, SUCCESS)

    def _start(self, job: _Job) -> None:
        preceding = self._preceding.get(job.request_id)
        if preceding is not None:
            outcome = self._outcomes.get(preceding)
            if outcome is None:
                job.waiting_for = preceding
                self._waiters.setdefault(preceding, []).append(job)
                job.timer = self.clock.call_later(self.policy.sequence_wait_s,
                                                  self._sequence_timeout, job)
                return
            if outcome != SUCCESS:
                failed = (SEQUENCE_PREVIOUS_NO_DEVICE_RESPONSE
                          if outcome in (NO_RESPONSE, UNABLE_TO_COMMUNICATE)
                          else SEQUENCE_PREVIOUS_FAILED)
                self._fail(job, failed)
                return
        task = asyncio.get_running_loop().create_task(self._send(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sequence_timeout(self, job: _Job) -> None:
        if job.waiting_for is None:
            return
        waiters = self._waiters.get(job.waiting_for, [])
        if job in waiters:
            waiters.remove(job)
        job.waiting_for = None
        self._fail(job, SEQUENCE_PREVIOUS_NO_RESPONSE)

    async def _send(self, job: _Job) -> None:
        key = (job.originator, job.counter)
        self._awaiting[key] = job
        job.timer = self.clock.call_later(self.policy.response_timeout_s, self._timed_out, key)
        try:
            delivery = await self.wan(job.command)
        except Exception as exc:  # the WAN side failing is a communications failure
            log.warning("%s: WAN send failed: %s", job.request_id, exc)
            delivery = None
        if self._awaiting.get(key) is not job:
            return  # answered (or timed out) while we were sending
        status = getattr(delivery, "status", None)
        if delivery is None or status is DeliveryStatus.UNDELIVERABLE:
            self._awaiting.pop(key, None)
            job.timer.cancel()
            self._fail(job, UNABLE_TO_COMMUNICATE)
        elif status is DeliveryStatus.QUEUED:
            job.timer.cancel()
            job.timer = self.clock.call_later(self.policy.sleepy_response_timeout_s,
                                              self._timed_out, key)

    def _timed_out(self, key: tuple[str, int]) -> None:
        job = self._awaiting.pop(key, None)
        if job is not None:
            self._fail(job, NO_RESPONSE)

    def _fail(self, job: _Job, code: str) -> None:
        """The request ends without a device response: tell the User (async response)."""
        if self._schedule_runs.pop(job.request_id, None) is not None and code == NO_RESPONSE:
            code = DSP_FUTURE_DATED_TIMEOUT  # E31 covers DSP schedules too
        response = acknowledgement(job.request, code, at=self.clock.now())
        self._deliver(job.user.user_id, response, MessageKind.RESPONSE)
        self._pending_store.remove(job.request_id)  # after the outbox has the answer
        self._finish(job.request_id, code)

    def _finish(self, request_id: RequestID, code: str) -> None:
        self._outcomes[request_id] = code
        for job in self._waiters.pop(request_id, []):
            if job.timer is not None:
                job.timer.cancel()
            job.waiting_for = None
            self._start(job)

    def recover(self, answered: Collection[str] = ()) -> int:
        """After a restart: every request acknowledged before it and never answered gets
        E21 (E31 when it was DSP future-dated), so nothing acknowledged is lost.
        ``answered``: RequestIDs whose response the outbox already holds (the crash came
        between queueing it and clearing the pending row)."""
        self.schedules.start()
        count = 0
        for header, user_id, dsp in self._pending_store.take_all():
            if str(header.request_id) in answered:
                continue
            code = DSP_FUTURE_DATED_TIMEOUT if dsp else NO_RESPONSE
            self._deliver(user_id, acknowledgement(header, code, at=self.clock.now()),
                          MessageKind.RESPONSE)
            count += 1
        return count

    # --- device messages -------------------------------------------------------------------------

    def device_message(self, raw: bytes) -> None:
        """A GBCS response or alert the comms hub sent up the SM WAN."""
        try:
            msg = decode_message(raw)
        except GbcsError as exc:
            log.warning("undecodable GBCS from the WAN: %s", exc)
            return
        gs = msg.frame.gs
        if gs.cra is Cra.RESPONSE:
            key = (format_eui(gs.business_target), gs.originator_counter)
            job = self._awaiting.pop(key, None)
            if job is None:
                log.info("unsolicited response from %s counter %d",
                         format_eui(gs.business_originator), gs.originator_counter)
                return
            if job.timer is not None:
                job.timer.cancel()
            # SMI first, then the outbox, then the pending row: a crash in between leaves
            # either the E21 of recover() or the response queued (recover() skips it).
            ok = self._after_response(job.origin, job.user, raw, msg)
            schedule_id = self._schedule_runs.pop(job.request_id, None)
            self._deliver(job.user.user_id,
                          gbcs_response(job.request, raw, at=self.clock.now())
                          if schedule_id is None else
                          scheduled_response(job.request, raw, schedule_id, at=self.clock.now()),
                          MessageKind.RESPONSE)
            self._pending_store.remove(job.request_id)
            self._finish(job.request_id, SUCCESS if ok else SEQUENCE_PREVIOUS_FAILED)
            if ok:
                self._watch_future_dated(job, gs.message_code)
        elif gs.cra is Cra.ALERT:
            self._device_alert(raw, msg)

    def _after_response(self, origin: Request, user: DccUser, raw: bytes,
                        msg: DecodedMessage, *, local: bool = False) -> bool:
        """Inventory bookkeeping after a device answered; True when it reports success."""
        outcome = response_outcome(raw)
        ok = outcome.get("success", True) is not False
        srv = origin.header.service_reference_variant
        if ok and srv in TRACKED_CREDENTIAL_SERVICES:
            self.org_certificates.record_response(
                origin.header.business_target_id, srv, msg, self.clock.now(), local=local)
        rule = INVENTORY_SERVICES.get(srv)
        if ok and rule is not None and not rule.non_device:
            try:
                self.inventory.complete(origin)
            except (InventoryError, UnsupportedRequest, ValueError) as exc:
                log.warning("%s: SMI bookkeeping skipped: %s", origin.header.request_id, exc)
        if ok and srv in FIRMWARE_REPORT_SRVS:
            self._firmware_reported(origin.header.business_target_id, msg, user)
        return ok

    def _watch_future_dated(self, job: _Job, message_code: int) -> None:
        """A command the device accepted for a later execution: E30 unless its outcome
        alert arrives by then plus ``future_dated_outcome_s`` (seed 003)."""
        sv = service_variant(job.srv)
        if sv is None or job.dsp_time is not None or sv.future_dating not in DEVICE_HELD:
            return
        use_case = MESSAGE_CODES.get(message_code)
        if use_case is None or use_case.use_case in UNMATCHED_USE_CASES:
            return
        due = _execution_time(job.origin.body)
        now = self.clock.now()
        if due is None or due <= now:
            return
        key = (job.origin.header.business_target_id, job.counter)
        wait = (due - now).total_seconds() + self.policy.future_dated_outcome_s
        self._future_dated[key] = (job, self.clock.call_later(wait, self._no_outcome, key))

    def _no_outcome(self, key: tuple[str, int]) -> None:
        entry = self._future_dated.pop(key, None)
        if entry is None:
            return
        job, _ = entry
        log.info("%s: no future-dated outcome alert from %s", job.request_id, key[0])
        self._deliver(job.user.user_id,
                      acknowledgement(job.request, FUTURE_DATED_TIMEOUT, at=self.clock.now()),
                      MessageKind.RESPONSE)

    def _future_dated_outcome(self, device: str, msg: DecodedMessage) -> None:
        counter = executed_counter(msg)
        entry = None if counter is None else self._future_dated.pop((device, counter), None)
        if entry is not None:
            entry[1].cancel()

    def _firmware_reported(self, device_id: str, msg: DecodedMessage,
                           user: DccUser | None) -> None:
        """SMI update and N49/N50/N51 for a version a device reported (seed 004)."""
        report = reported_version(msg)
        if report is None:
            return
        try:
            notices = self.inventory.firmware_version_reported(
                device_id, report.version, via=report.via,
                requested_by=None if user is None else user.context)
        except InventoryError as exc:
            log.warning("firmware version report ignored: %s", exc)
            return
        for notice in notices:
            self._send_dcc_alert(notice)

    def _device_alert(self, raw: bytes, msg: DecodedMessage) -> None:
        gs = msg.frame.gs
        code = alert_code_of(msg)
        if code is None:
            return
        device = format_eui(gs.business_originator)
        target = format_eui(gs.business_target)
        at = self.clock.now()
        if target == self.users.dcc.eui:
            if code in DUAL_BAND_ALERT_CODES:
                self._dual_band_alert(device, code, msg)
                return
            self._comms_hub_alert(device, code, at)
            return
        if code in FUTURE_DATED_OUTCOME_ALERTS:
            self._future_dated_outcome(device, msg)
        if gs.message_code == FUTURE_DATED_ACTIVATION_ALERT:
            self._firmware_reported(device, msg, None)
        user = self.users.get(target)
        if user is None:
            log.info("alert 0x%04X from %s for unknown party %s", code, device, target)
            return
        response_id = RequestID(device, target, gs.originator_counter)

        def build(sequence: int | None, count: int | None) -> Response:
            return device_alert(code, raw, at=self.clock.now(), response_id=response_id,
                                throttled_alert_sequence_id=sequence,
                                throttled_alert_count=count)

        self.throttle.submit(user.user_id, f"0x{code:04X}", build)

    def _comms_hub_alert(self, device: str, code: int, at: dt.datetime) -> None:
        """An alert for the ACB: tell the hub's Responsible Suppliers (N62, gbhil's routing)."""
        inventory = self.inventory.inventory
        if inventory.find(device) is None:
            return
        recipients = sorted(inventory.responsible_suppliers(device))
        body = etree.Element(_sr("CommsHubAlert"), nsmap={"sr": SR_NS})
        etree.SubElement(body, _sr("CommsHubDeviceID")).text = device
        etree.SubElement(body, _sr("AlertCode")).text = f"{code:04X}"
        etree.SubElement(body, _sr("TimeStamp")).text = format_datetime(at)
        self._send_dcc_alert(AlertNotice(COMMS_HUB_ALERT, tuple(recipients), body))

    def _dual_band_alert(self, device: str, code: int, msg: DecodedMessage) -> None:
        """A dual-band CHF alert for the ACB: N54 to the hub's Responsible Suppliers (E59
        for the sub-GHz errors, seed 003)."""
        inventory = self.inventory.inventory
        if inventory.find(device) is None:
            return
        recipients = sorted(inventory.responsible_suppliers(device))
        payload = msg.payload
        body = dual_band_alert_body(
            device, code, msg.frame.gs.message_code,
            payload.body if isinstance(payload, dlms.DataNotification) else None)
        self._send_dcc_alert(AlertNotice(DUAL_BAND_CH_ALERT, tuple(recipients), body),
                             response_code=dual_band_response_code(code, SUCCESS))

    def _send_dcc_alert(self, notice: AlertNotice, *, response_code: str = SUCCESS) -> None:
        for user_id in notice.recipients:
            def build(sequence: int | None, count: int | None,
                      notice: AlertNotice = notice) -> Response:
                return dcc_alert(notice.code, notice.body, at=self.clock.now(),
                                 code=response_code,
                                 throttled_alert_sequence_id=sequence,
                                 throttled_alert_count=count)

            self.throttle.submit(format_eui(user_id), notice.code, build)

    # --- power events (the CSP's last gasp) ------------------------------------------------------

    def power_event(self, kind: object, comms_hub: bytes | str, at: dt.datetime) -> None:
        """The CSP reports the comms hub lost (``"outage"``) or regained (``"restored"``)
        power at ``at``. AD1 goes out once the outage has lasted 3 minutes (seed 004 5.9.4)."""
        hub = format_eui(comms_hub)
        what = str(getattr(kind, "value", kind))
        if what == "outage":
            if hub not in self._outages:
                timer = self.clock.call_at(at + POWER_OUTAGE_MIN_DURATION, self._raise_ad1, hub)
                self._outages[hub] = _Outage(at, timer)
        elif what == "restored":
            outage = self._outages.pop(hub, None)
            if outage is None:
                return
            outage.timer.cancel()
            if not outage.raised and at - outage.start >= POWER_OUTAGE_MIN_DURATION:
                self._ad1(hub, outage)

    def _raise_ad1(self, hub: str) -> None:
        outage = self._outages.get(hub)
        if outage is not None and not outage.raised:
            self._ad1(hub, outage)

    def _ad1(self, hub: str, outage: _Outage) -> None:
        outage.raised = True
        inventory = self.inventory.inventory
        if inventory.find(hub) is None:
            return
        sent: set[tuple[str, str]] = set()
        for meter_id in inventory.associated(hub, AssociationKind.COMMS_HUB):
            meter = inventory.find(meter_id)
            if meter is None or meter.device_type not in AD1_ROLES or not meter.import_mpxn:
                continue
            parties = inventory.parties(meter.device_id)
            mpxn = meter.import_mpxn
            for role in AD1_ROLES[meter.device_type]:
                user_id = parties.get(role)
                if user_id is None or (user_id, mpxn) in sent:
                    continue
                sent.add((user_id, mpxn))

                def build(sequence: int | None, count: int | None, mpxn: str = mpxn) -> Response:
                    return power_outage_alert(hub, outage.start, mpxn, at=self.clock.now(),
                                              throttled_alert_sequence_id=sequence,
                                              throttled_alert_count=count)

                self.throttle.submit(user_id, POWER_OUTAGE, build)

    # --- SR 8.13 Return Local Command Response ---------------------------------------------------

    def _return_local_response(self, request: Request, user: DccUser) -> str:
        codes = self.policy.local_response_codes
        body = request.body
        original = body.find(_sr("OriginalRequestID"))
        payload = body.find(_sr("DeviceGBCSResponse"))
        try:
            raw = base64.b64decode("".join((payload.text or "").split()) if payload is not None
                                   else "", validate=True)
            msg = decode_message(raw)
        except (binascii.Error, ValueError, GbcsError):
            return codes["response.undecodable"]
        gs = msg.frame.gs
        if gs.cra is Cra.ALERT:
            return ACKNOWLEDGED  # alerts collected by the HHT need no original request
        if gs.cra is not Cra.RESPONSE:
            return codes["response.undecodable"]
        if original is None:
            return codes["original_request.unknown"]
        try:
            original_id = RequestID.parse(original.text or "")
        except DuisModelError:
            return codes["original_request.unknown"]
        record = self._local.get(original_id)
        if record is None or record.user.user_id != user.user_id:
            return codes["original_request.unknown"]
        if (format_eui(gs.business_target), gs.originator_counter) != (record.originator,
                                                                       record.counter):
            return codes["response.mismatch"]
        del self._local[original_id]
        self._after_response(record.origin, user, raw, msg, local=True)
        return ACKNOWLEDGED

    # --- output ---------------------------------------------------------------------------------

    def _deliver(self, user_id: str, response: Response, kind: MessageKind) -> None:
        request_id = response.header.request_id
        self.sink(user_id, self._sign(response), kind,
                  None if request_id is None else str(request_id))

    def _emit_alert(self, user_id: str, response: Response) -> None:
        from gbhil.duis.model import DCCAlertMessage  # local: type test only

        kind = (MessageKind.DCC_ALERT if isinstance(response.body, DCCAlertMessage)
                else MessageKind.DEVICE_ALERT)
        self._deliver(user_id, response, kind)

    # --- inspection -----------------------------------------------------------------------------

    @property
    def awaiting(self) -> int:
        """Commands sent and not yet answered."""
        return len(self._awaiting)

    @property
    def held(self) -> int:
        """DSP future-dated commands waiting for their time."""
        return len(self._held)

    def outcome(self, request_id: RequestID) -> str | None:
        """The final code of a finished device request (I0 when the device answered)."""
        return self._outcomes.get(request_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for job in list(self._awaiting.values()):
            if job.timer is not None:
                job.timer.cancel()
        for job in list(self._held.values()):
            if job.held is not None:
                job.held.cancel()
        for outage in self._outages.values():
            outage.timer.cancel()
        for _, timer in self._future_dated.values():
            timer.cancel()
        self._future_dated.clear()
        try:
            self.schedules.close()
        finally:
            self._pending_store.close()


# --- helpers ----------------------------------------------------------------------------------


def _raw_header(header: etree._Element) -> RequestHeader | None:
    """A header good enough to address an error acknowledgement (CV may be invalid)."""

    def text(local: str) -> str | None:
        found = header.find(_sr(local))
        return None if found is None or found.text is None else found.text.strip()

    rid, sr_, srv = text("RequestID"), text("ServiceReference"), text("ServiceReferenceVariant")
    if rid is None or sr_ is None or srv is None:
        return None
    try:
        return RequestHeader(RequestID.parse(rid), CommandVariant.DCC_INTERNAL, sr_, srv)
    except DuisModelError:
        return None


def _sequenced(header: RequestHeader) -> bool:
    """Whether the request is part of a sequence (FirstInSequence or a predecessor)."""
    return header.first_in_sequence is not None or header.preceding_request_id is not None


def _execution_time(body: etree._Element) -> dt.datetime | None:
    found = body.find(_sr("ExecutionDateTime"))
    if found is None or not (found.text or "").strip():
        return None
    try:
        return parse_datetime(found.text or "")
    except DuisModelError:
        return None


__all__ = [
    "ACTIVE_STATUSES",
    "LOCAL_RESPONSE_CODES",
    "PRIORITY_SERVICE_REFERENCE_VARIANTS",
    "AlertThrottle",
    "AlertThrottlePolicy",
    "DccProcessor",
    "OverCapacity",
    "ProcessingPolicy",
    "SyncAnswer",
    "TrafficManager",
    "allowed_command_variants",
]
