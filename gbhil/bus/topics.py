"""The MQTT topic scheme and payload envelope of a gbhil rig (one catalogue, rule 6).

Every topic of a run lives under ``gbhil/<rig>/<run>/``: the rig names the
bench (or simulated rig), the run ID separates runs that share a broker, so a
late message of an old run can never reach a new one. What follows the prefix,
its QoS and whether it is retained are catalogued in :data:`CATALOGUE`; code
builds topics only through :class:`RunTopics`, never by string formatting.

Every payload is one JSON :class:`Envelope`: a message ID (unique per message,
the receivers' de-duplication key), the publisher's sequence number, the
publisher's client ID, optional bytes (base64: GBCS messages, APS payloads)
and a small JSON object of metadata. JSON rather than raw bytes because
observers (mosquitto_sub, Node-RED, dashboards) can read it, and because QoS 1
redelivery needs an ID inside the payload: MQTT 3.1.1 packet IDs are reused
and do not survive a reconnect.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum
from typing import Any, Final

from gbhil.han.channels import ChannelError, validate

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------

#: First level of every gbhil topic.
TOPIC_ROOT: Final = "gbhil"
#: Version of the JSON envelope; a receiver refuses other versions.
ENVELOPE_VERSION: Final = 1
#: Rig names and run IDs: one topic level, readable, no MQTT wildcards or separators.
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Device names in state topics (``esme``, ``chf``, ``mains``...).
DEVICE_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: EUI-64 in topics: 16 upper-case hex digits, as GBCS and DUIS print them.
EUI_PATTERN: Final = re.compile(r"[0-9A-F]{16}")
EUI64_LEN: Final = 8
#: Envelope fields (JSON keys).
FIELD_VERSION: Final = "v"
FIELD_ID: Final = "id"
FIELD_SEQ: Final = "seq"
FIELD_SRC: Final = "src"
FIELD_DATA: Final = "data"
FIELD_META: Final = "meta"


class TopicError(ValueError):
    """A topic, rig name, run ID or topic parameter that the scheme does not allow."""


class PayloadError(ValueError):
    """A payload that is not a valid envelope; the message names the field."""


class Qos(IntEnum):
    """MQTT delivery guarantees used by the scheme (QoS 2 is not needed: receivers de-dup)."""

    AT_MOST_ONCE = 0
    AT_LEAST_ONCE = 1


class TopicKind(Enum):
    """Every kind of topic of a run."""

    HAN_FRAME = "han-frame"
    TC_REQUEST = "tc-request"
    TC_REPLY = "tc-reply"
    NODE_COMMAND = "node-command"
    NODE_RESULT = "node-result"
    WAN_UP = "wan-up"
    WAN_DOWN = "wan-down"
    ALERTS = "alerts"
    POWER = "power"
    STATE = "state"
    CLOCK = "clock"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One row of the catalogue: where, how reliably, and why so."""

    kind: TopicKind
    template: str  # relative to gbhil/<rig>/<run>/; {name} marks a parameter level
    qos: Qos
    retain: bool
    publisher: str
    subscriber: str
    why: str

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the parameter levels, in order."""
        return tuple(level[1:-1] for level in self.template.split("/") if level.startswith("{"))


_SPECS: Final = (
    TopicSpec(
        TopicKind.HAN_FRAME,
        "han/{page}/{channel}/frame",
        Qos.AT_MOST_ONCE,
        False,
        "every process with radios on the channel",
        "every process with radios on the channel",
        "the air of one channel: a late radio frame is worse than a lost one (APS, tunnel "
        "and GBCS timers above already retry), so no broker-side queueing or redelivery",
    ),
    TopicSpec(
        TopicKind.TC_REQUEST,
        "han/tc/request",
        Qos.AT_LEAST_ONCE,
        False,
        "device hosts",
        "the hub process (trust center)",
        "joining is a control-plane exchange with the CHF's trust center (a real NCP does it "
        "inside its stack); a lost step would fail a join that should succeed",
    ),
    TopicSpec(
        TopicKind.TC_REPLY,
        "han/tc/reply/{eui}",
        Qos.AT_LEAST_ONCE,
        False,
        "the hub process",
        "the device host of {eui}",
        "answers to one device's join steps",
    ),
    TopicSpec(
        TopicKind.NODE_COMMAND,
        "node/{eui}/command",
        Qos.AT_LEAST_ONCE,
        False,
        "the rig (hub process)",
        "the device host of {eui}",
        "what the rig does to a device hosted elsewhere: join, mains on/off, leave, wake, stop",
    ),
    TopicSpec(
        TopicKind.NODE_RESULT,
        "node/{eui}/result",
        Qos.AT_LEAST_ONCE,
        False,
        "the device host of {eui}",
        "the rig",
        "outcome of each node command",
    ),
    TopicSpec(
        TopicKind.WAN_UP,
        "wan/up",
        Qos.AT_LEAST_ONCE,
        False,
        "the hub process",
        "the DCC emulator",
        "GBCS responses (and undecodable messages) the hub sends over the WAN",
    ),
    TopicSpec(
        TopicKind.WAN_DOWN,
        "wan/down",
        Qos.AT_LEAST_ONCE,
        False,
        "the DCC emulator",
        "the hub process",
        "GBCS commands for the hub to route to their Business Target",
    ),
    TopicSpec(
        TopicKind.ALERTS,
        "alerts",
        Qos.AT_LEAST_ONCE,
        False,
        "the hub process",
        "the DCC emulator (persistent session)",
        "GBCS alerts the hub sends over the WAN; QoS 1 to a persistent session, so the broker "
        "queues them while the DCC side is away and none is lost",
    ),
    TopicSpec(
        TopicKind.POWER,
        "power",
        Qos.AT_LEAST_ONCE,
        False,
        "the hub process",
        "the DCC emulator",
        "hub power events (the CSP's last gasp and restoration) from which the DCC raises AD1",
    ),
    TopicSpec(
        TopicKind.STATE,
        "state/{device}",
        Qos.AT_LEAST_ONCE,
        True,
        "whoever hosts the device",
        "anyone",
        "current state of a device (online, powered, joined): retained, so a late subscriber "
        "learns it at once",
    ),
    TopicSpec(
        TopicKind.CLOCK,
        "clock",
        Qos.AT_LEAST_ONCE,
        True,
        "the hub process",
        "device hosts",
        "the run's time base (start, epoch, rate): retained, so every process of the run "
        "builds the same real-time clock",
    ),
)
#: The topic scheme: one row per kind.
CATALOGUE: Final[Mapping[TopicKind, TopicSpec]] = {spec.kind: spec for spec in _SPECS}


# ---------------------------------------------------------------------------
# Names and parameters
# ---------------------------------------------------------------------------


def check_name(what: str, value: object) -> str:
    """A rig name or run ID: one readable topic level."""
    if not isinstance(value, str) or NAME_PATTERN.fullmatch(value) is None:
        raise TopicError(
            f"{what} must be 1-64 characters of letters, digits, '_', '.', '-' starting with a "
            f"letter or digit, got {value!r}"
        )
    return value


def new_run_id(at: datetime | None = None) -> str:
    """A fresh run ID: the run's start time when given (readable), plus randomness (unique)."""
    suffix = secrets.token_hex(4)
    return suffix if at is None else f"{at:%Y%m%dT%H%M%S}-{suffix}"


def eui_text(eui: bytes) -> str:
    """An EUI-64 as a topic level."""
    if not isinstance(eui, bytes) or len(eui) != EUI64_LEN:
        raise TopicError(f"EUI-64 must be 8 bytes, got {eui!r}")
    return eui.hex().upper()


def parse_eui(text: str) -> bytes:
    """The EUI-64 of a topic level."""
    if EUI_PATTERN.fullmatch(text) is None:
        raise TopicError(f"EUI-64 topic level must be 16 upper-case hex digits, got {text!r}")
    return bytes.fromhex(text)


def _param(name: str, value: object) -> str:
    if name == "eui":
        return eui_text(value) if isinstance(value, bytes) else parse_eui(str(value)).hex().upper()
    if name == "device":
        if not isinstance(value, str) or DEVICE_PATTERN.fullmatch(value) is None:
            raise TopicError(f"device name must match {DEVICE_PATTERN.pattern}, got {value!r}")
        return value
    if name in ("page", "channel"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TopicError(f"{name} must be an integer, got {value!r}")
        return str(value)
    raise TopicError(f"unknown topic parameter {name!r}")  # pragma: no cover - catalogue bug


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A topic of a run, taken apart."""

    kind: TopicKind
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RunTopics:
    """The topics of one run of one rig: the only place topics are built and parsed."""

    rig: str
    run: str

    def __post_init__(self) -> None:
        check_name("rig name", self.rig)
        check_name("run ID", self.run)

    @property
    def prefix(self) -> str:
        return f"{TOPIC_ROOT}/{self.rig}/{self.run}"

    def topic(self, kind: TopicKind, **params: object) -> str:
        """The concrete topic of ``kind`` (every parameter of its template given)."""
        spec = CATALOGUE[kind]
        names = spec.params
        if set(params) != set(names):
            raise TopicError(
                f"topic {spec.template!r} needs parameters {list(names)}, got {sorted(params)}"
            )
        if kind is TopicKind.HAN_FRAME:
            try:
                validate(params["page"], params["channel"])  # type: ignore[arg-type]
            except ChannelError as exc:
                raise TopicError(str(exc)) from None
        levels = [
            _param(level[1:-1], params[level[1:-1]]) if level.startswith("{") else level
            for level in spec.template.split("/")
        ]
        return f"{self.prefix}/{'/'.join(levels)}"

    def pattern(self, kind: TopicKind, **params: object) -> str:
        """A subscription filter for ``kind``: parameters not given become ``+``."""
        spec = CATALOGUE[kind]
        unknown = set(params) - set(spec.params)
        if unknown:
            raise TopicError(f"topic {spec.template!r} has no parameters {sorted(unknown)}")
        levels = []
        for level in spec.template.split("/"):
            if level.startswith("{"):
                name = level[1:-1]
                levels.append(_param(name, params[name]) if name in params else "+")
            else:
                levels.append(level)
        return f"{self.prefix}/{'/'.join(levels)}"

    def everything(self) -> str:
        """Filter for every topic of the run (observers, recorders)."""
        return f"{self.prefix}/#"

    def parse(self, topic: str) -> ParsedTopic:
        """Which kind of topic of this run ``topic`` is, with its parameters."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            raise TopicError(f"topic {topic!r} is not under {head!r}")
        levels = topic[len(head) :].split("/")
        for spec in _SPECS:
            template = spec.template.split("/")
            if len(template) != len(levels):
                continue
            params: dict[str, str] = {}
            for want, got in zip(template, levels, strict=True):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return ParsedTopic(spec.kind, params)
        raise TopicError(f"topic {topic!r} is not in the gbhil topic scheme")

    # -- the concrete topics, by name ---------------------------------------------------
    def han_frame(self, page: int, channel: int) -> str:
        return self.topic(TopicKind.HAN_FRAME, page=page, channel=channel)

    def tc_request(self) -> str:
        return self.topic(TopicKind.TC_REQUEST)

    def tc_reply(self, eui: bytes) -> str:
        return self.topic(TopicKind.TC_REPLY, eui=eui)

    def node_command(self, eui: bytes) -> str:
        return self.topic(TopicKind.NODE_COMMAND, eui=eui)

    def node_result(self, eui: bytes) -> str:
        return self.topic(TopicKind.NODE_RESULT, eui=eui)

    def wan_up(self) -> str:
        return self.topic(TopicKind.WAN_UP)

    def wan_down(self) -> str:
        return self.topic(TopicKind.WAN_DOWN)

    def alerts(self) -> str:
        return self.topic(TopicKind.ALERTS)

    def power(self) -> str:
        return self.topic(TopicKind.POWER)

    def state(self, device: str) -> str:
        return self.topic(TopicKind.STATE, device=device)

    def clock(self) -> str:
        return self.topic(TopicKind.CLOCK)


def spec_of(kind: TopicKind) -> TopicSpec:
    """The catalogue row of ``kind`` (QoS and retain flag to publish with)."""
    return CATALOGUE[kind]


# ---------------------------------------------------------------------------
# Payload envelope
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message on the bus: ID for de-duplication, sequence, publisher, bytes, metadata.

    ``id`` is unique across publishers and restarts (``<instance>:<seq>``, the
    instance being random per bus object); ``seq`` counts the publisher's
    messages from 1, so a receiver can order them and see gaps on QoS 0 topics.
    """

    id: str
    seq: int
    src: str
    data: bytes | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise PayloadError(f"envelope field {FIELD_ID!r} must be a non-empty string")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise PayloadError(f"envelope field {FIELD_SEQ!r} must be a non-negative integer")
        if not isinstance(self.src, str) or not self.src:
            raise PayloadError(f"envelope field {FIELD_SRC!r} must be a non-empty string")
        if self.data is not None and not isinstance(self.data, bytes):
            raise PayloadError(f"envelope field {FIELD_DATA!r} must be bytes or None")
        if not isinstance(self.meta, Mapping):
            raise PayloadError(f"envelope field {FIELD_META!r} must be a mapping")

    def encode(self) -> bytes:
        """UTF-8 JSON, keys sorted (same message, same bytes)."""
        doc: dict[str, Any] = {
            FIELD_VERSION: ENVELOPE_VERSION,
            FIELD_ID: self.id,
            FIELD_SEQ: self.seq,
            FIELD_SRC: self.src,
            FIELD_META: dict(self.meta),
        }
        if self.data is not None:
            doc[FIELD_DATA] = base64.b64encode(self.data).decode("ascii")
        try:
            return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise PayloadError(f"envelope field {FIELD_META!r} is not JSON: {exc}") from None

    @classmethod
    def decode(cls, raw: bytes) -> Envelope:
        """Parse and check an envelope; :class:`PayloadError` names what is wrong."""
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"payload is not UTF-8 JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PayloadError(f"payload must be a JSON object, got {type(doc).__name__}")
        version = doc.get(FIELD_VERSION)
        if version != ENVELOPE_VERSION:
            raise PayloadError(
                f"envelope field {FIELD_VERSION!r} must be {ENVELOPE_VERSION}, got {version!r}"
            )
        for name in (FIELD_ID, FIELD_SEQ, FIELD_SRC):
            if name not in doc:
                raise PayloadError(f"envelope field {name!r} is missing")
        data = doc.get(FIELD_DATA)
        if data is not None:
            if not isinstance(data, str):
                raise PayloadError(f"envelope field {FIELD_DATA!r} must be a base64 string")
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise PayloadError(f"envelope field {FIELD_DATA!r} is not base64: {exc}") from None
        meta = doc.get(FIELD_META, {})
        if not isinstance(meta, dict):
            raise PayloadError(f"envelope field {FIELD_META!r} must be a JSON object")
        return cls(doc[FIELD_ID], doc[FIELD_SEQ], doc[FIELD_SRC], data, meta)


__all__ = [
    "CATALOGUE",
    "ENVELOPE_VERSION",
    "TOPIC_ROOT",
    "Envelope",
    "ParsedTopic",
    "PayloadError",
    "Qos",
    "RunTopics",
    "TopicError",
    "TopicKind",
    "TopicSpec",
    "check_name",
    "eui_text",
    "new_run_id",
    "parse_eui",
    "spec_of",
]
