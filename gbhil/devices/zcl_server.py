"""A generic GBZ/ZCL server: what a GSME or GPF does with the ZCL commands GBCS sends it.

GBZ messages carry one or more ZCL commands ("components").  This module turns
them into one response part per component (a few commands, such as Get Day
Profiles, answer with several publish commands), with the GBCS rules that hold
for every GBZ device:

* **Atomic per message.**  Components run in order against a staged copy of
  the device state; the copy replaces the live state only when no component
  failed.  A failed component answers with its error status, the components
  after it with Default Response ``command 0xFF, FAILURE`` (not processed, as
  RTDS shows) and the state-changing components before it with ``ABORT`` —
  they were valid but were not applied.
* **Future-dated components.**  A from-date-time in the GBZ header or a
  start/implementation time in the ZCL payload later than now schedules the
  change as :class:`~gbhil.devices.core.Deferred` work; running it raises the
  0x00CD alert (0x8F66 success, 0x8F67 failure, gbcs-facts 3.4).  The
  all-ones times cancel what is pending for that command.
* **Sensitive data encrypted.**  For the use cases whose responses GBCS
  encrypts, every non-default-response part is encrypted for the command's
  originator (gbcs-facts 2.5), including the URP form with the originator's
  key-agreement certificate in Other Information.

Attribute values come from a device profile (``devices/*.toml``) shared by
every device of a model; a device stores only the attributes it changed
(:class:`AttributeStore`, copy on write), so 50 000 simulated meters share one
parsed profile.  Cluster-specific command payloads are laid out with
:class:`Layout` field lists (ZigBee Smart Energy 1.x as GBCS uses it).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Protocol, Self

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gbhil.devices.core import Alert, Command, Deferred, Device, Outcome
from gbhil.gbcs import gbz, zcl
from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.errors import GbcsEncodeError, GbcsError
from gbhil.gbcs.frame import GeneralSigning
from gbhil.gbcs.kdf import TYPE_PAYLOAD_ENCRYPTION, derive_key
from gbhil.gbcs.security import encrypt_block
from gbhil.gbcs.zcl import EPOCH_2000, ZclHeader, ZclValue

# ---------------------------------------------------------------------------
# Server-side catalogue
# ---------------------------------------------------------------------------

STATUS_SUCCESS = 0x00
STATUS_FAILURE = 0x01
STATUS_NOT_AUTHORIZED = 0x7E
STATUS_MALFORMED_COMMAND = 0x80
STATUS_UNSUP_CLUSTER_COMMAND = 0x81
STATUS_UNSUP_GENERAL_COMMAND = 0x82
STATUS_UNSUP_MANUF_CLUSTER_COMMAND = 0x83
STATUS_UNSUP_MANUF_GENERAL_COMMAND = 0x84
STATUS_INVALID_FIELD = 0x85
STATUS_UNSUPPORTED_ATTRIBUTE = 0x86
STATUS_INVALID_VALUE = 0x87
STATUS_READ_ONLY = 0x88
STATUS_INSUFFICIENT_SPACE = 0x89
STATUS_NOT_FOUND = 0x8B
STATUS_INVALID_DATA_TYPE = 0x8D
STATUS_ACTION_DENIED = 0x93
STATUS_ABORT = 0x95
#: RTDS answers every failed GBZ command with this status (ZCL "HARDWARE_FAILURE").
STATUS_HARDWARE_FAILURE = 0xC0

#: Default Response command id of components not processed after a failure (RTDS).
NOT_PROCESSED_COMMAND_ID = 0xFF

#: Payload start/implementation times and GBZ from-date-times meaning "cancel what is
#: pending" (RTDS uses both all-ones and all-ones-minus-one in cancellation scenarios).
CANCEL_TIMES = frozenset({0xFFFFFFFF, 0xFFFFFFFE})
#: Time value meaning "now".
TIME_NOW = 0x00000000

#: Alert carrying the outcome of future-dated GBZ work, and its two alert codes.
MESSAGE_CODE_FUTURE_DATED_GBZ = 0x00CD
ALERT_FUTURE_DATED_SUCCESS = 0x8F66
ALERT_FUTURE_DATED_FAILURE = 0x8F67

#: ZCL data type names used in profiles -> type id (the codec's catalogue names).
TYPE_IDS: Mapping[str, int] = MappingProxyType({t.name: tid for tid, t in cat.ZCL_TYPES.items()})

DIRECTION_TO_SERVER = cat.DIRECTION_CLIENT_TO_SERVER
DIRECTION_TO_CLIENT = cat.DIRECTION_SERVER_TO_CLIENT


class ZclError(Exception):
    """A component cannot be executed: answered with ``status``; ``parts`` overrides the DR.

    ``fatal`` errors stop the message (later components are not processed, state
    changes roll back); a non-fatal one, such as NOT_FOUND for a log read, only
    answers its own component.
    """

    def __init__(
        self, status: int, reason: str = "", parts: list[Part] | None = None, *, fatal: bool = True
    ) -> None:
        super().__init__(reason or cat.ZCL_STATUS.get(status, f"0x{status:02X}"))
        self.status = status
        self.parts = parts
        self.fatal = fatal


# ---------------------------------------------------------------------------
# Field layouts of cluster-specific payloads (ZCL little-endian)
# ---------------------------------------------------------------------------

#: kind -> (size in bytes, signed); the ZCL names map onto these.
_INT_KINDS: dict[str, tuple[int, bool]] = {
    "u8": (1, False),
    "u16": (2, False),
    "u24": (3, False),
    "u32": (4, False),
    "u48": (6, False),
    "i8": (1, True),
    "i16": (2, True),
    "i24": (3, True),
    "i32": (4, True),
    "i48": (6, True),
    "utc": (4, False),
    "map8": (1, False),
    "map16": (2, False),
    "map32": (4, False),
    "enum8": (1, False),
}
#: Byte-valued kinds: ZCL date (4 bytes), length-prefixed strings, the rest of the payload.
KIND_DATE = "date"
KIND_OCTSTR = "octstr"
KIND_REST = "rest"
_KNOWN_KINDS = frozenset(_INT_KINDS) | {KIND_DATE, KIND_OCTSTR, KIND_REST}

Fields = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Layout:
    """Fixed fields, then rows of ``row`` fields until the payload ends.

    A field kind ending in ``?`` is optional: it may be missing at the end of
    the payload (ZSE added fields to some commands over time).
    """

    fields: tuple[tuple[str, str], ...]
    row: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for _, kind in self.fields + self.row:
            if kind.rstrip("?") not in _KNOWN_KINDS:
                raise ValueError(f"unknown field kind {kind!r}")

    def parse(self, data: bytes) -> tuple[Fields, list[Fields]]:
        """Decode ``data``; MALFORMED_COMMAND when it is short or has stray bytes."""
        pos, values = _parse_fields(self.fields, data, 0)
        rows: list[Fields] = []
        while self.row and pos < len(data):
            pos, r = _parse_fields(self.row, data, pos)
            rows.append(r)
        if pos != len(data):
            raise ZclError(STATUS_MALFORMED_COMMAND, f"{len(data) - pos} unexpected bytes")
        return values, rows

    def build(
        self, values: Mapping[str, Any], rows: list[Mapping[str, Any]] | None = None
    ) -> bytes:
        out = [_build_fields(self.fields, values)]
        out += [_build_fields(self.row, r) for r in rows or ()]
        return b"".join(out)


def _parse_fields(spec: tuple[tuple[str, str], ...], data: bytes, pos: int) -> tuple[int, Fields]:
    out: Fields = {}
    for name, kind in spec:
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if optional and pos >= len(data):
            out[name] = None
            continue
        if kind in _INT_KINDS:
            size, signed = _INT_KINDS[kind]
            if pos + size > len(data):
                raise ZclError(STATUS_MALFORMED_COMMAND, f"payload ends inside {name}")
            out[name] = int.from_bytes(data[pos : pos + size], "little", signed=signed)
            pos += size
        elif kind == KIND_DATE:
            if pos + 4 > len(data):
                raise ZclError(STATUS_MALFORMED_COMMAND, f"payload ends inside {name}")
            out[name] = data[pos : pos + 4]
            pos += 4
        elif kind == KIND_OCTSTR:
            if pos >= len(data) or pos + 1 + data[pos] > len(data):
                raise ZclError(STATUS_MALFORMED_COMMAND, f"payload ends inside {name}")
            n = data[pos]
            out[name] = data[pos + 1 : pos + 1 + n]
            pos += 1 + n
        else:  # rest
            out[name] = data[pos:]
            pos = len(data)
    return pos, out


def _build_fields(spec: tuple[tuple[str, str], ...], values: Mapping[str, Any]) -> bytes:
    out: list[bytes] = []
    for name, kind in spec:
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        v = values.get(name)
        if v is None and optional:
            continue
        if kind in _INT_KINDS:
            size, signed = _INT_KINDS[kind]
            try:
                out.append(int(v).to_bytes(size, "little", signed=signed))
            except (OverflowError, TypeError):
                raise GbcsEncodeError(f"zcl.{name}", f"{v!r} does not fit {kind}") from None
        elif kind == KIND_DATE:
            if not isinstance(v, bytes) or len(v) != 4:
                raise GbcsEncodeError(f"zcl.{name}", "a ZCL date is 4 bytes")
            out.append(v)
        elif kind == KIND_OCTSTR:
            if not isinstance(v, bytes) or len(v) >= cat.ZCL_INVALID_STRING_LEN:
                raise GbcsEncodeError(f"zcl.{name}", "octet string of up to 254 bytes expected")
            out.append(bytes((len(v),)) + v)
        else:
            out.append(bytes(v or b""))
    return b"".join(out)


# ---------------------------------------------------------------------------
# Time helpers (GBZ/ZCL count seconds since 2000-01-01 UTC)
# ---------------------------------------------------------------------------


def gbz_seconds(t: datetime) -> int:
    return int((t - EPOCH_2000).total_seconds())


def from_gbz_seconds(s: int) -> datetime:
    return EPOCH_2000 + timedelta(seconds=s)


# ---------------------------------------------------------------------------
# Profiles: attribute lists per cluster, shared by every device of a model
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute a device model serves: type, default value, whether Write may change it."""

    cluster: int
    attribute_id: int
    type_id: int
    default: ZclValue
    writable: bool = False
    name: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class DeviceProfile:
    """A device model: identity, attributes, and free-form model settings.

    Compared and hashed by identity: per-profile caches key on the object.
    """

    name: str
    identity: Mapping[str, Any]
    attributes: Mapping[tuple[int, int], AttributeSpec]
    settings: Mapping[str, Any]

    def spec(self, cluster: int, attribute_id: int) -> AttributeSpec | None:
        return self.attributes.get((cluster, attribute_id))

    def setting(self, section: str, key: str, default: Any = None) -> Any:
        table = self.settings.get(section, {})
        return table.get(key, default) if isinstance(table, Mapping) else default

    def tables(self, name: str) -> tuple[Mapping[str, Any], ...]:
        """An array of tables (``[[name]]``), empty when absent."""
        v = self.settings.get(name, ())
        return v if isinstance(v, tuple) else ()


def _value_from_toml(type_id: int, row: Mapping[str, Any], where: str) -> ZclValue:
    t = cat.ZCL_TYPES[type_id]
    if "hex" in row:
        raw = bytes.fromhex(str(row["hex"]))
        return ZclValue(type_id, raw)
    v = row.get("value")
    if t.kind in (cat.KIND_STRING, cat.KIND_LONG_STRING):
        if not isinstance(v, str):
            raise ValueError(f"{where}: string attribute needs a text value or hex")
        return ZclValue(type_id, v.encode("utf-8"))
    if t.kind == cat.KIND_BOOL:
        return ZclValue(type_id, bool(v))
    if t.kind in (cat.KIND_UINT, cat.KIND_INT) and isinstance(v, int):
        value = ZclValue(type_id, v)
        zcl.encode_value(value)  # range check now, not at the first read
        return value
    raise ValueError(f"{where}: value {v!r} does not suit type {t.name}")


def parse_profile(data: Mapping[str, Any], name: str) -> DeviceProfile:
    """Build a profile from parsed TOML (``[identity]``, ``[[attribute]]``, other tables)."""
    attrs: dict[tuple[int, int], AttributeSpec] = {}
    for i, row in enumerate(data.get("attribute", ())):
        where = f"{name} attribute #{i + 1}"
        try:
            cluster, attr, tname = int(row["cluster"]), int(row["id"]), str(row["type"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: needs cluster, id and type") from exc
        type_id = TYPE_IDS.get(tname)
        if type_id is None:
            raise ValueError(f"{where}: unknown ZCL type {tname!r}")
        if (cluster, attr) in attrs:
            raise ValueError(f"{where}: 0x{cluster:04X}/0x{attr:04X} listed twice")
        default = _value_from_toml(type_id, row, where)
        access = str(row.get("access", "read"))
        if access not in ("read", "write"):
            raise ValueError(f"{where}: access must be 'read' or 'write'")
        attrs[(cluster, attr)] = AttributeSpec(
            cluster, attr, type_id, default, access == "write", str(row.get("name", ""))
        )
    settings: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            settings[k] = MappingProxyType(dict(v))
        elif isinstance(v, list) and k != "attribute":
            settings[k] = tuple(v)  # arrays of tables, e.g. [[calendar]]
    identity = settings.pop("identity", MappingProxyType({}))
    return DeviceProfile(name, identity, MappingProxyType(attrs), MappingProxyType(settings))


@functools.lru_cache(maxsize=32)
def load_profile(path: Path) -> DeviceProfile:
    """Parse a profile once per process; every device of the model shares the result."""
    with path.open("rb") as f:
        return parse_profile(tomllib.load(f), path.stem)


#: Repository folder with the device model profiles (data, not code).
PROFILE_DIR = Path(__file__).resolve().parents[2] / "devices"


class AttributeStore:
    """Attribute values: the profile's defaults plus this device's own changes.

    Copy on write: a device holds only what it changed, and :meth:`copy` (used
    to stage a transaction) shares the dict until the first write.
    """

    __slots__ = ("_own", "profile")

    def __init__(self, profile: DeviceProfile, own: dict[tuple[int, int], ZclValue] | None = None):
        self.profile = profile
        self._own = own

    def get(self, cluster: int, attribute_id: int) -> ZclValue | None:
        if self._own is not None:
            v = self._own.get((cluster, attribute_id))
            if v is not None:
                return v
        spec = self.profile.attributes.get((cluster, attribute_id))
        return None if spec is None else spec.default

    def int(self, cluster: int, attribute_id: int, default: int = 0) -> int:
        v = self.get(cluster, attribute_id)
        return v.value if v is not None and isinstance(v.value, int) else default

    def bytes(self, cluster: int, attribute_id: int) -> bytes:
        v = self.get(cluster, attribute_id)
        return v.value if v is not None and isinstance(v.value, bytes) else b""

    def set(self, cluster: int, attribute_id: int, value: int | bytes | ZclValue) -> None:
        """Set a value; plain ints/bytes take the profile's type for that attribute."""
        if not isinstance(value, ZclValue):
            spec = self.profile.attributes.get((cluster, attribute_id))
            if spec is None:
                raise KeyError(f"attribute 0x{cluster:04X}/0x{attribute_id:04X} not in profile")
            value = ZclValue(spec.type_id, value)
        own = dict(self._own) if self._own is not None else {}
        own[(cluster, attribute_id)] = value
        self._own = own

    def copy(self) -> AttributeStore:
        return AttributeStore(self.profile, self._own)

    def changed(self) -> Iterator[tuple[tuple[int, int], ZclValue]]:
        return iter((self._own or {}).items())


class ServerState(Protocol):
    """What the generic server needs of a device's state object."""

    attrs: AttributeStore

    def copy(self) -> Self: ...


# ---------------------------------------------------------------------------
# Commands, handlers and their results
# ---------------------------------------------------------------------------


class Part(NamedTuple):
    """One response component: cluster, ZCL frame control and command, payload."""

    cluster: int
    frame_control: int
    command_id: int
    payload: zcl.ZclPayload


class Timing(NamedTuple):
    """When a component's change takes effect: now, at ``at`` (GBZ seconds), or cancel."""

    kind: str  # "now" | "future" | "cancel"
    at: int = 0


NOW = Timing("now")
CANCEL = Timing("cancel")

Effect = Callable[[Any, int], None]
"""Change staged state ``(state, gbz_seconds_now)``; raise :class:`ZclError` to refuse."""
Respond = Callable[[Any], list[Part]]


@dataclass(slots=True)
class Result:
    """What a handler decided: an effect (run now or later) and how to answer."""

    effect: Effect | None = None
    respond: Respond | None = None  # default: Default Response SUCCESS
    #: Future-dating/cancellation key; default (cluster, command id).
    key: str | None = None
    #: The handler changed staged state itself (besides ``effect``).
    changed: bool = False


@dataclass(frozen=True, slots=True)
class Ctx:
    """A component being executed."""

    device: ZclDevice
    cmd: Command
    component: gbz.PlainComponent
    now: int  # GBZ seconds
    timing: Timing
    fields: Fields
    rows: list[Fields]

    @property
    def cluster(self) -> int:
        return self.component.cluster_id

    @property
    def header(self) -> ZclHeader:
        return self.component.header


ComponentHandler = Callable[[Ctx, Any], Result]
"""``handler(ctx, staged_state) -> Result``."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A cluster-specific command a server accepts, as received (direction of the request)."""

    cluster: int
    direction: int
    command_id: int
    layout: Layout
    handler: ComponentHandler
    #: Payload field holding the start/implementation time that future-dates the command.
    time_field: str | None = None

    @property
    def name(self) -> str:
        return cat.CLUSTER_COMMANDS.get((self.cluster, self.direction, self.command_id), "?")


CommandTable = Mapping[tuple[int, int, int], CommandSpec]


def command_table(*specs: CommandSpec) -> CommandTable:
    out: dict[tuple[int, int, int], CommandSpec] = {}
    for s in specs:
        key = (s.cluster, s.direction, s.command_id)
        if key in out:
            raise ValueError(f"command 0x{s.cluster:04X}/{s.direction}/0x{s.command_id:02X} twice")
        out[key] = s
    return MappingProxyType(out)


def direction_of(header: ZclHeader) -> int:
    return DIRECTION_TO_CLIENT if header.server_to_client else DIRECTION_TO_SERVER


def reply_fc(request: ZclHeader, cluster_specific: bool) -> int:
    """Frame control of an answer: the opposite direction; cluster answers disable the DR."""
    fc = 0 if request.server_to_client else cat.ZCL_FC_SERVER_TO_CLIENT
    if cluster_specific:
        fc |= cat.ZCL_FRAME_TYPE_CLUSTER | cat.ZCL_FC_DISABLE_DEFAULT_RESPONSE
    return fc


def default_response(comp: gbz.GbzComponent, status: int, command_id: int | None = None) -> Part:
    h = comp.header
    cid = h.command_id if command_id is None else command_id
    return Part(
        comp.cluster_id,
        reply_fc(h, False),
        cat.CMD_DEFAULT_RESPONSE,
        zcl.DefaultResponse(cid, status),
    )


def cluster_reply(ctx: Ctx, command_id: int, payload: bytes) -> Part:
    return Part(ctx.cluster, reply_fc(ctx.header, True), command_id, zcl.RawPayload(payload))


def success(ctx: Ctx) -> list[Part]:
    return [default_response(ctx.component, STATUS_SUCCESS)]


# ---------------------------------------------------------------------------
# Faults: make a device fail the way a real one sometimes does
# ---------------------------------------------------------------------------

FAULT_COMMAND = 0
FAULT_ATTRIBUTE = 1


@dataclass(frozen=True, slots=True)
class Fault:
    """Fail a command (``kind`` FAULT_COMMAND) or an attribute read with ``status``.

    ``sequence`` narrows it to the component with that ZCL sequence number.
    NOT_FOUND faults answer their component only; any other status stops the message.
    """

    cluster: int
    kind: int
    ident: int
    status: int = STATUS_HARDWARE_FAILURE
    sequence: int | None = None
    #: Cleared after the next GBZ command, whether it fired or not.
    once: bool = False

    def matches(self, cluster: int, kind: int, ident: int, sequence: int) -> bool:
        return (self.cluster, self.kind, self.ident) == (cluster, kind, ident) and (
            self.sequence is None or self.sequence == sequence
        )


def faults_from_response(reference: gbz.GbzMessage, *, once: bool = False) -> list[Fault]:
    """The faults that make a device answer like ``reference``, an error response.

    For harnesses replaying reference error scenarios (coverage runs, HIL
    suites): every Default Response with a failure status for a real command,
    and every failed attribute record of a plain Read Attributes Response,
    becomes a fault on that component.  Encrypted components hide their
    records, so an encrypted error answer yields no fault.
    """
    out: list[Fault] = []
    for c in reference.components:
        if not isinstance(c, gbz.PlainComponent):
            continue
        p, seq = c.payload, c.header.sequence
        if isinstance(p, zcl.DefaultResponse):
            if p.status != STATUS_SUCCESS and p.command_id != NOT_PROCESSED_COMMAND_ID:
                out.append(Fault(c.cluster_id, FAULT_COMMAND, p.command_id, p.status, seq, once))
        elif isinstance(p, zcl.ReadAttributesResponse):
            out += [
                Fault(c.cluster_id, FAULT_ATTRIBUTE, r.attribute_id, r.status, seq, once)
                for r in p.records
                if r.status not in (STATUS_SUCCESS, STATUS_UNSUPPORTED_ATTRIBUTE)
            ]
    return out


# ---------------------------------------------------------------------------
# The device base
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Txn:
    state: Any
    deferred: list[Deferred] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


class ZclDevice(Device):
    """A GBCS device whose use cases are GBZ: runs components against staged state.

    Subclasses set ``COMMANDS`` (cluster-specific commands), ``ENCRYPTED_RESPONSES``
    (message codes whose answers are encrypted) and hold their state in
    ``self.data`` (a :class:`ServerState`).
    """

    COMMANDS: ClassVar[CommandTable] = MappingProxyType({})
    ENCRYPTED_RESPONSES: ClassVar[frozenset[int]] = frozenset()

    data: Any
    _faults: list[Fault] | None
    _urp: tuple[int, int] | None

    # -- hooks ---------------------------------------------------------------------
    def advance(self, now: datetime) -> None:
        """Bring time-driven state (registers, logs) up to ``now``; subclasses override."""

    def read_attribute(self, state: Any, cluster: int, attribute_id: int) -> ZclValue | None:
        """Current value of an attribute (subclasses compute registers here)."""
        return state.attrs.get(cluster, attribute_id)

    def response_clock_status(self, cmd: Command) -> int:
        """DLMS clock-status byte of the response date-time (gbcs-facts 1.3)."""
        return 0x00

    # -- faults --------------------------------------------------------------------
    def inject_fault(self, fault: Fault) -> None:
        """Make matching commands/attribute reads fail with ``fault.status`` until cleared."""
        self._faults = [*(self._faults or ()), fault]

    def clear_faults(self) -> None:
        self._faults = None

    def inject_recorded_failure(
        self, message_code: int, command: Any, recorded_response: Any
    ) -> bool:
        """Fail the next GBZ command the way a recorded error response shows (one shot)."""
        if not isinstance(recorded_response, gbz.GbzMessage):
            return super().inject_recorded_failure(message_code, command, recorded_response)
        faults = faults_from_response(recorded_response, once=True)
        for f in faults:
            self.inject_fault(f)
        return bool(faults)

    def _drop_one_shot_faults(self) -> None:
        if self._faults:
            kept = [f for f in self._faults if not f.once]
            self._faults = kept or None

    def _fault(self, comp: gbz.GbzComponent, kind: int, ident: int) -> int | None:
        for f in self._faults or ():
            if f.matches(comp.cluster_id, kind, ident, comp.header.sequence):
                return f.status
        return None

    # -- response header --------------------------------------------------------------
    def response_header(self, cmd: Command) -> GeneralSigning:
        gs = super().response_header(cmd)
        if gs.date_time is not None:
            status = self.response_clock_status(cmd)
            gs = replace(gs, date_time=gs.date_time[:-1] + bytes((status,)))
        if urp_certificate(cmd) is not None:
            other = replace(
                gs.other_information, supplementary_originator_counter=self._urp_soc(cmd)
            )
            gs = replace(gs, other_information=other)
        return gs

    def _urp_soc(self, cmd: Command) -> int:
        """The device's own counter for a URP answer, fixed per command."""
        urp = getattr(self, "_urp", None)
        if urp is None or urp[0] != cmd.counter:
            self.alert_counter = self._next_alert_counter()
            urp = (cmd.counter, self.alert_counter)
            self._urp = urp
        return urp[1]

    def encrypt(self, cmd: Command, plaintext: bytes) -> bytes:
        """Encrypted block for the command's originator (URP: for the party of the certificate)."""
        cert = urp_certificate(cmd)
        if cert is None:
            return self.encrypt_for(cmd, plaintext)
        try:
            pub = x509.load_der_x509_certificate(cert).public_key()
        except ValueError as exc:
            raise GbcsError(f"URP key-agreement certificate does not parse: {exc}") from None
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            raise GbcsError("URP key-agreement certificate holds no EC key")
        z = self.keys.ka.exchange(ec.ECDH(), pub)
        other = cmd.gs.other_information
        recipient = other.supplementary_remote_party_id or cmd.originator
        key = derive_key(z, self.eui, TYPE_PAYLOAD_ENCRYPTION, self._urp_soc(cmd), recipient)
        return encrypt_block(key, self.eui, plaintext)

    # -- the GBZ handler -----------------------------------------------------------------
    def handle_gbz(self, cmd: Command) -> Outcome:
        """Run every component of a GBZ command; see the module docstring for the rules."""
        msg = cmd.payload
        if not isinstance(msg, gbz.GbzMessage) or msg.alert is not None:
            raise GbcsError("a GBZ use case needs a GBZ command payload")
        self.advance(cmd.received_at)
        now = gbz_seconds(cmd.received_at)
        txn = _Txn(self.data.copy())
        answers: list[list[Part]] = []
        changed: list[bool] = []
        failed: int | None = None
        for comp in msg.components:
            if failed is not None:
                answers.append([default_response(comp, STATUS_FAILURE, NOT_PROCESSED_COMMAND_ID)])
                changed.append(False)
                continue
            try:
                parts, did_change = self._run(cmd, txn, comp, now)
            except ZclError as exc:
                if exc.fatal:
                    failed = len(answers)
                answers.append(exc.parts or [default_response(comp, exc.status)])
                changed.append(False)
                continue
            answers.append(parts)
            changed.append(did_change)
        if failed is None:
            self.data = txn.state
            for label in txn.cancels:
                self.cancel(lambda d, label=label: d.label == label)
            deferred = txn.deferred
            for hook in txn.after_commit:
                hook()
        else:
            deferred = []
            for i in range(failed):
                if changed[i]:
                    comp = msg.components[i]
                    answers[i] = [default_response(comp, STATUS_ABORT)]
        self._drop_one_shot_faults()
        payload = self._build_response(cmd, msg, answers)
        return Outcome(payload, [], deferred)

    def _run(
        self, cmd: Command, txn: _Txn, comp: gbz.GbzComponent, now: int
    ) -> tuple[list[Part], bool]:
        if isinstance(comp, gbz.EncryptedComponent):
            raise ZclError(STATUS_MALFORMED_COMMAND, "commands are never encrypted")
        h = comp.header
        if h.manufacturer_specific:
            status = (
                STATUS_UNSUP_MANUF_GENERAL_COMMAND
                if h.is_global
                else STATUS_UNSUP_MANUF_CLUSTER_COMMAND
            )
            raise ZclError(status)
        fault = self._fault(comp, FAULT_COMMAND, h.command_id)
        if fault is not None:
            raise ZclError(fault, "injected fault", fatal=fault != STATUS_NOT_FOUND)
        if h.is_global:
            return self._run_general(cmd, txn, comp)
        spec = self.COMMANDS.get((comp.cluster_id, direction_of(h), h.command_id))
        if spec is None or h.frame_type != cat.ZCL_FRAME_TYPE_CLUSTER:
            raise ZclError(STATUS_UNSUP_CLUSTER_COMMAND)
        assert isinstance(comp.payload, zcl.RawPayload)
        fields, rows = spec.layout.parse(comp.payload.data)
        timing = self._timing(comp, spec, fields, now)
        ctx = Ctx(self, cmd, comp, now, timing, fields, rows)
        result = spec.handler(ctx, txn.state)
        key = result.key or f"gbz:{comp.cluster_id:04X}:{h.command_id:02X}"
        changed = result.effect is not None or result.changed
        if result.effect is not None:
            if timing.kind == "now":
                result.effect(txn.state, now)
            elif timing.kind == "future":
                txn.cancels.append(key)  # a new future-dated instruction replaces the pending one
                txn.deferred.append(self._deferred(cmd, comp, timing.at, key, result.effect))
            else:
                txn.cancels.append(key)
        parts = result.respond(txn.state) if result.respond is not None else success(ctx)
        return parts, changed

    def _timing(
        self, comp: gbz.PlainComponent, spec: CommandSpec, fields: Fields, now: int
    ) -> Timing:
        t = comp.from_datetime
        if t is None and spec.time_field is not None:
            t = fields.get(spec.time_field)
        if t is None or t == TIME_NOW or (t not in CANCEL_TIMES and t <= now):
            return NOW
        if t in CANCEL_TIMES:
            return CANCEL
        return Timing("future", t)

    def _deferred(
        self, cmd: Command, comp: gbz.PlainComponent, at: int, key: str, effect: Effect
    ) -> Deferred:
        h = comp.header
        body = gbz.FutureDatedAlertBody(
            cmd.message_code, cmd.counter, comp.cluster_id, h.frame_control, h.command_id
        )
        originator = cmd.originator

        def run(now: datetime) -> list[Alert]:
            self.advance(now)
            staged = self.data.copy()
            try:
                effect(staged, gbz_seconds(now))
            except ZclError:
                code = ALERT_FUTURE_DATED_FAILURE
            else:
                self.data = staged
                code = ALERT_FUTURE_DATED_SUCCESS
            alert = gbz.GbzMessage((), gbz.GbzAlert(code, gbz_seconds(now), body))
            return [Alert(MESSAGE_CODE_FUTURE_DATED_GBZ, alert, originator, critical=True)]

        return Deferred(from_gbz_seconds(at), run, cmd.message_code, cmd.counter, originator, key)

    # -- general (profile-wide) commands -----------------------------------------------------
    def _run_general(
        self, cmd: Command, txn: _Txn, comp: gbz.PlainComponent
    ) -> tuple[list[Part], bool]:
        h = comp.header
        p = comp.payload
        if isinstance(p, zcl.ReadAttributes):
            return [self._read_attributes(txn.state, comp, p)], False
        if isinstance(p, zcl.WriteAttributes) and h.command_id in WRITE_COMMANDS:
            return [self._write_attributes(txn.state, comp, p)], True
        raise ZclError(STATUS_UNSUP_GENERAL_COMMAND)

    def _read_attributes(self, state: Any, comp: gbz.PlainComponent, p: zcl.ReadAttributes) -> Part:
        records: list[zcl.ReadAttributeRecord] = []
        failed = False
        for attr in p.attribute_ids:
            fault = self._fault(comp, FAULT_ATTRIBUTE, attr)
            if fault is not None:
                records.append(zcl.ReadAttributeRecord(attr, fault))
                failed = True
                continue
            v = self.read_attribute(state, comp.cluster_id, attr)
            if v is None:
                records.append(zcl.ReadAttributeRecord(attr, STATUS_UNSUPPORTED_ATTRIBUTE))
            else:
                records.append(zcl.ReadAttributeRecord(attr, STATUS_SUCCESS, v))
        part = Part(
            comp.cluster_id,
            reply_fc(comp.header, False),
            cat.CMD_READ_ATTRIBUTES_RESPONSE,
            zcl.ReadAttributesResponse(tuple(records)),
        )
        if failed:  # a device fault stops the message like any failed command
            raise ZclError(STATUS_HARDWARE_FAILURE, "attribute read failed", [part])
        return part

    def _write_attributes(
        self, state: Any, comp: gbz.PlainComponent, p: zcl.WriteAttributes
    ) -> Part:
        """Write all records or none: the GBZ message is the unit of change."""
        problems: list[zcl.AttributeStatus] = []
        store: AttributeStore = state.attrs
        for rec in p.records:
            spec = store.profile.spec(comp.cluster_id, rec.attribute_id)
            status = _write_status(spec, rec.value)
            if status != STATUS_SUCCESS:
                problems.append(zcl.AttributeStatus(status, rec.attribute_id))
        fc = reply_fc(comp.header, False)
        if problems:
            part = Part(
                comp.cluster_id,
                fc,
                cat.CMD_WRITE_ATTRIBUTES_RESPONSE,
                zcl.WriteAttributesResponse(tuple(problems)),
            )
            raise ZclError(problems[0].status, "write refused", [part])
        for rec in p.records:
            store.set(comp.cluster_id, rec.attribute_id, rec.value)
        if comp.header.command_id == cat.CMD_WRITE_ATTRIBUTES_NO_RESPONSE:
            return default_response(comp, STATUS_SUCCESS)
        return Part(
            comp.cluster_id,
            fc,
            cat.CMD_WRITE_ATTRIBUTES_RESPONSE,
            zcl.WriteAttributesResponse((zcl.AttributeStatus(STATUS_SUCCESS),)),
        )

    # -- response assembly ---------------------------------------------------------------
    def _build_response(
        self, cmd: Command, msg: gbz.GbzMessage, answers: list[list[Part]]
    ) -> gbz.GbzMessage:
        encrypt = cmd.message_code in self.ENCRYPTED_RESPONSES
        out: list[gbz.GbzComponent] = []
        n_encrypted = 0
        for comp, parts in zip(msg.components, answers, strict=True):
            seq = comp.header.sequence
            for part in parts:
                header = ZclHeader(part.frame_control, seq, part.command_id)
                if encrypt and not _is_default_response(part):
                    plain = zcl.encode_zcl_payload(header, part.payload)
                    block = self.encrypt(cmd, plain)
                    out.append(gbz.EncryptedComponent(part.cluster, header, block, n_encrypted))
                    n_encrypted += 1
                else:
                    out.append(gbz.PlainComponent(part.cluster, header, part.payload))
        return gbz.GbzMessage(tuple(out))


#: Write Attributes, Write Attributes Undivided, Write Attributes No Response.
WRITE_COMMANDS = frozenset(
    {
        cat.CMD_WRITE_ATTRIBUTES,
        cat.CMD_WRITE_ATTRIBUTES_UNDIVIDED,
        cat.CMD_WRITE_ATTRIBUTES_NO_RESPONSE,
    }
)


def _is_default_response(part: Part) -> bool:
    return isinstance(part.payload, zcl.DefaultResponse)


def _write_status(spec: AttributeSpec | None, value: ZclValue) -> int:
    if spec is None:
        return STATUS_UNSUPPORTED_ATTRIBUTE
    if not spec.writable:
        return STATUS_READ_ONLY
    if value.type_id != spec.type_id:
        return STATUS_INVALID_DATA_TYPE
    try:
        zcl.encode_value(value)
    except GbcsEncodeError:
        return STATUS_INVALID_VALUE
    return STATUS_SUCCESS


def urp_certificate(cmd: Command) -> bytes | None:
    """The key-agreement certificate a URP command carries in Other Information (gbcs-facts 1.4)."""
    return cmd.gs.other_information.supplementary_remote_party_ka_certificate
