"""What every simulated SMETS2 device does with a GBCS command, whatever its type.

:meth:`Device.receive` runs the GBCS checks in order (decode, target, message
code, MAC, replay, signature, authority), hands an authenticated
:class:`Command` to the device's use-case logic, and protects the response
and any alerts with the device's own keys.  A refused command changes no
state: counters move only after every check passed.  Future-dated work is
queued and run by :meth:`Device.run_due` when the shared clock reaches it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs.asn1 import Asn1Node, asn1_to_json
from gbhil.gbcs.dlms import DataNotification, gbcs_invoke_id
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra, GbcsMessage, GeneralSigning, OtherInformation, Shape
from gbhil.gbcs.message import DecodedMessage, Payload, decode_message, encode_payload
from gbhil.gbcs.security import (
    Check,
    SecurityContext,
    encrypt_block,
    payload_key,
    protect,
    verify_mac,
    verify_signature,
)
from gbhil.gbcs.usecases import MESSAGE_CODES, RESPONSE_DATE_TIME_USE_CASES, UseCase


class DeviceType(Enum):
    ESME = "ESME"
    GSME = "GSME"
    CHF = "CHF"
    GPF = "GPF"
    PPMID = "PPMID"
    HCALCS = "HCALCS"
    HHT = "HHT"


class Refusal(Enum):
    """Why a command was discarded (GBCS: no response, state unchanged)."""

    MALFORMED = "malformed"
    NOT_A_COMMAND = "not a command"
    WRONG_TARGET = "wrong target"
    UNSUPPORTED = "unsupported message code"
    BAD_MAC = "MAC does not verify"
    NO_MAC = "command is not MACed"
    REPLAY = "originator counter not greater than the last accepted"
    BAD_SIGNATURE = "signature does not verify"
    NOT_SIGNED = "critical command is not signed"
    NO_AUTHORITY = "originator holds no trust anchor on this device"
    POWERED_OFF = "device has no power"


#: Entries kept in a device's event/security log (a real meter's logs are bounded too).
EVENT_LOG_LENGTH = 100
#: Commands whose Other Information is echoed (first 18 bytes) into the response.
ECHOED_OTHER_INFO = 18


@dataclass(frozen=True, slots=True)
class Command:
    """An authenticated command, as the use-case logic sees it."""

    message: DecodedMessage
    received_at: datetime

    @property
    def gs(self) -> GeneralSigning:
        return self.message.frame.gs

    @property
    def message_code(self) -> int:
        return self.gs.message_code

    @property
    def counter(self) -> int:
        return self.gs.originator_counter

    @property
    def originator(self) -> bytes:
        return self.gs.business_originator

    @property
    def payload(self) -> Payload:
        return self.message.payload

    @property
    def signed(self) -> bool:
        return bool(self.gs.signature)

    @property
    def use_case(self) -> UseCase | None:
        return MESSAGE_CODES.get(self.message_code)


@dataclass(slots=True)
class Alert:
    """An alert for the device to send: GBCS message code, typed payload, routing."""

    message_code: int
    payload: Payload
    target: bytes | None = None  # default: the device's supplier
    critical: bool = True
    other_information: OtherInformation | None = None


@dataclass(slots=True)
class Deferred:
    """Future-dated work: runs at ``at`` and returns the alerts it raises."""

    at: datetime
    run: Callable[[datetime], list[Alert]]
    message_code: int = 0
    counter: int = 0
    originator: bytes = b""
    label: str = ""


@dataclass(slots=True)
class Outcome:
    """What the use-case logic decided: a response payload, alerts, deferred work."""

    response: Payload | None
    alerts: list[Alert] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)


@dataclass(slots=True)
class Event:
    """One entry of the device's security/event log (what a tester reads back)."""

    at: datetime
    kind: str
    detail: str
    counter: int | None = None
    originator: bytes | None = None


@dataclass(slots=True)
class Reply:
    """Bytes the device sends back for one received message."""

    response: bytes | None = None
    alerts: list[bytes] = field(default_factory=list)
    refused: Refusal | None = None
    reason: str = ""


Handler = Callable[["Device", Command], Outcome]


class Device:
    """Base of every simulated device: keys, counters, logs, power, deferred work.

    Subclasses declare ``DEVICE_TYPE`` and register handlers per message code
    (:meth:`handlers`).  ``clock`` is any object with ``now() -> datetime``.
    """

    DEVICE_TYPE: DeviceType = DeviceType.ESME
    #: Payload family of generic alerts this device type sends.
    GENERIC_ALERT_FAMILY = "DLMS"

    def __init__(self, eui: bytes, keys: DeviceKeys, clock: Any, profile: Any = None) -> None:
        if len(eui) != 8 or keys.eui != eui:
            raise ValueError("device EUI must be 8 bytes and match its keys")
        self.eui = eui
        self.keys = keys
        self.clock = clock
        self.profile = profile
        self.security = SecurityContext(keys, keys.party(Role.ACB) or b"\x00" * 8)
        self.last_counter: dict[bytes, int] = {}
        self.alert_counter = 0
        self.powered = True
        #: Named faults injected by tests (see inject_recorded_failure and each use case).
        self.faults: set[str] = set()
        self.events: deque[Event] = deque(maxlen=EVENT_LOG_LENGTH)
        self._queue: list[tuple[datetime, int, Deferred]] = []
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.eui.hex().upper()})"

    # -- extension points --------------------------------------------------------
    def handlers(self) -> dict[int, Handler]:
        """Message code -> use-case logic; subclasses extend."""
        return {}

    def supports(self, message_code: int) -> bool:
        return message_code in self.handlers()

    def inject_recorded_failure(
        self, message_code: int, command: Payload, recorded_response: Payload
    ) -> bool:
        """Make the next matching command fail the way ``recorded_response`` shows.

        Conformance error scenarios (RTDS ``*_ERROR``) send the same command as
        the success case; the device failed for a reason the bytes do not carry
        (a hardware fault, a missing credential).  This sets up that fault through
        :attr:`faults` or the payload server; returns False when it cannot.
        """
        if isinstance(recorded_response, Asn1Node):
            # The faults live with their use cases (imported here: they import this module).
            from gbhil.devices import credentials, joining

            recorded = asn1_to_json(recorded_response, message_code, int(Cra.RESPONSE))
            if not isinstance(recorded, dict):
                return False
            return any(
                m.inject_recorded_failure(self, message_code, recorded)
                for m in (credentials, joining)
            )
        return False

    # -- receive pipeline ----------------------------------------------------------
    def receive(self, raw: bytes) -> Reply:
        """Process one GBCS message addressed to this device."""
        now = self.clock.now()
        if not self.powered:
            return self._refuse(now, Refusal.POWERED_OFF, "")
        try:
            msg = decode_message(raw)
        except GbcsError as exc:
            return self._refuse(now, Refusal.MALFORMED, str(exc))
        gs = msg.frame.gs
        if gs.cra is not Cra.COMMAND:
            return self._refuse(now, Refusal.NOT_A_COMMAND, gs.cra.name, gs)
        if gs.business_target != self.eui:
            return self._refuse(now, Refusal.WRONG_TARGET, gs.business_target.hex().upper(), gs)
        handler = self.handlers().get(gs.message_code)
        if handler is None:
            return self._unsupported(now, msg)
        check = self._authenticate(msg)
        if check is not None:
            return self._refuse(now, check, "", gs)
        # Every check passed: from here on the command counts.
        self.last_counter[gs.business_originator] = gs.originator_counter
        cmd = Command(msg, now)
        outcome = handler(self, cmd)
        for d in outcome.deferred:
            self.schedule(d)
        reply = Reply()
        if outcome.response is not None:
            reply.response = self.build_response(cmd, outcome.response).encode()
        reply.alerts = [self.build_alert(a).encode() for a in outcome.alerts]
        self.log(
            now,
            "command",
            f"0x{gs.message_code:04X} executed",
            gs.originator_counter,
            gs.business_originator,
        )
        return reply

    def _authenticate(self, msg: DecodedMessage) -> Refusal | None:
        frame = msg.frame
        gs = frame.gs
        if frame.shape is Shape.MACED:
            if verify_mac(self.security, frame) is not Check.VERIFIED:
                return Refusal.BAD_MAC
        elif not self._signed_only_allowed(gs):
            return Refusal.NO_MAC
        last = self.last_counter.get(gs.business_originator)
        if last is not None and gs.originator_counter <= last:
            return Refusal.REPLAY
        if gs.signature:
            if verify_signature(self.security, gs) is not Check.VERIFIED:
                return Refusal.BAD_SIGNATURE
        elif self._must_be_signed(gs):
            return Refusal.NOT_SIGNED
        if self.keys.role_of(gs.business_originator) is None and not self._peer_allowed(gs):
            return Refusal.NO_AUTHORITY
        return None

    def _signed_only_allowed(self, gs: GeneralSigning) -> bool:
        """A few credential commands are signed, not MACed (gbcs-facts 2.7)."""
        uc = MESSAGE_CODES.get(gs.message_code)
        return bool(gs.signature) and uc is not None and uc.use_case in ("CS02a", "CS02b", "CS02f")

    def _must_be_signed(self, gs: GeneralSigning) -> bool:
        uc = MESSAGE_CODES.get(gs.message_code)
        # Critical commands are signed; the ACB's own CS02b credential update is the exception.
        return uc is not None and uc.command_protection == "MAC+SIG"

    def _peer_allowed(self, gs: GeneralSigning) -> bool:
        """HAN peers (PPMID -> GSME commands) are authorised by their KA key."""
        return gs.business_originator in self.keys.peers_ka

    def _unsupported(self, now: datetime, msg: DecodedMessage) -> Reply:
        return self._refuse(
            now, Refusal.UNSUPPORTED, f"0x{msg.frame.gs.message_code:04X}", msg.frame.gs
        )

    def _refuse(
        self, now: datetime, why: Refusal, detail: str, gs: GeneralSigning | None = None
    ) -> Reply:
        self.log(
            now,
            "refused",
            f"{why.value}{': ' + detail if detail else ''}",
            gs.originator_counter if gs else None,
            gs.business_originator if gs else None,
        )
        return Reply(refused=why, reason=why.value)

    def log(
        self,
        at: datetime,
        kind: str,
        detail: str,
        counter: int | None = None,
        originator: bytes | None = None,
    ) -> None:
        self.events.append(Event(at, kind, detail, counter, originator))

    # -- building responses and alerts --------------------------------------------------
    def response_header(self, cmd: Command) -> GeneralSigning:
        """Header of the response: counter and first 18 bytes of Other Information echoed."""
        gs = cmd.gs
        other = gs.other_information
        echoed = OtherInformation(
            other.message_code,
            other.supplementary_remote_party_id,
            other.supplementary_remote_party_counter,
        )
        uc = cmd.use_case
        date_time = None
        if uc is not None and uc.use_case in RESPONSE_DATE_TIME_USE_CASES:
            date_time = dlms_datetime(self.clock.now())
        return GeneralSigning(
            Cra.RESPONSE,
            gs.originator_counter,
            self.eui,
            gs.business_originator,
            echoed,
            b"",
            date_time,
        )

    def encrypt_for(self, cmd: Command, plaintext: bytes) -> bytes:
        """Encrypt sensitive response data for the command's originator (type byte 0x04)."""
        key = payload_key(self.security, self.response_header(cmd))
        if key is None:
            raise GbcsError("no key-agreement key of the recipient for payload encryption")
        return encrypt_block(key, self.eui, plaintext)

    def response_is_signed(self, cmd: Command) -> bool:
        uc = cmd.use_case
        if uc is None:
            return cmd.signed
        if uc.response_protection == "SIG":
            return True
        if uc.response_protection == "MAC":
            return False
        return cmd.signed  # "MAC/SIG" variants follow the command

    def build_response(self, cmd: Command, payload: Payload) -> GbcsMessage:
        gs = replace(self.response_header(cmd), content=encode_payload(payload))
        signed = self.response_is_signed(cmd)
        return protect(self.security, gs, signed=signed, maced=not signed)

    def build_alert(self, alert: Alert) -> GbcsMessage:
        self.alert_counter = self._next_alert_counter()
        if isinstance(alert.payload, DataNotification):
            # DLMS alerts carry the alert counter as invoke id (gbcs-facts 3.1.1).
            invoke = gbcs_invoke_id(self.alert_counter)
            alert = replace(alert, payload=replace(alert.payload, long_invoke_id=invoke))
        target = alert.target or self.keys.party(Role.SUPPLIER) or b"\x00" * 8
        gs = GeneralSigning(
            Cra.ALERT,
            self.alert_counter,
            self.eui,
            target,
            alert.other_information or OtherInformation(alert.message_code),
            encode_payload(alert.payload),
        )
        return protect(self.security, gs, signed=alert.critical, maced=not alert.critical)

    def _next_alert_counter(self) -> int:
        """Strictly increasing; seeded from the clock so a restarted device never repeats."""
        stamp = int(self.clock.now().timestamp()) << 16
        return max(self.alert_counter + 1, stamp)

    # -- future-dated work -------------------------------------------------------------
    def schedule(self, d: Deferred) -> None:
        heapq.heappush(self._queue, (d.at, next(self._seq), d))

    def cancel(self, predicate: Callable[[Deferred], bool]) -> int:
        keep = [e for e in self._queue if not predicate(e[2])]
        n = len(self._queue) - len(keep)
        heapq.heapify(keep)
        self._queue = keep
        return n

    def pending(self) -> list[Deferred]:
        return [e[2] for e in sorted(self._queue)]

    def next_due(self) -> datetime | None:
        return self._queue[0][0] if self._queue else None

    def run_due(self) -> list[bytes]:
        """Run deferred work whose time has come; returns the alerts to send."""
        now = self.clock.now()
        out: list[bytes] = []
        while self._queue and self._queue[0][0] <= now and self.powered:
            _, _, d = heapq.heappop(self._queue)
            for alert in d.run(now):
                out.append(self.build_alert(alert).encode())
            self.log(now, "deferred", d.label or f"0x{d.message_code:04X} executed", d.counter)
        return out


def dlms_datetime(t: datetime, clock_status: int = 0x00) -> bytes:
    """12-byte DLMS date-time in UTC (deviation 0)."""
    t = t.astimezone(UTC)
    return (
        t.year.to_bytes(2, "big")
        + bytes(
            (t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second, t.microsecond // 10000)
        )
        + b"\x00\x00"
        + bytes((clock_status,))
    )
