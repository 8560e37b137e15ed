"""A generic DLMS COSEM server: the object model behind every DLMS device (ESME, CHF).

A device model *profile* (``devices/*.toml``) lists the COSEM objects a device
type exposes: per (class id, OBIS) the attributes with their A-XDR type and
default value, the supported methods, and the *activations* (attributes whose
date-time moves passive values to active ones, GBCS future-dated execution).
The parsed profile is immutable and shared by every device of that model; a
:class:`CosemServer` holds only what one device changed (copy-on-write), so a
fleet of simulated meters costs little memory.

Behaviour comes from three places, most specific first: hooks the device
registers (live values such as the clock or energy registers, use-case
methods), the generic behaviour of the COSEM interface class (register reset,
credit update, disconnect control, data protection, ...), and finally plain
storage (set stores, get reads, a listed method succeeds with null).

An access-request is processed atomically: every entry is validated first
(object present, attribute/method present, access, A-XDR type, parameters);
only when all are valid is anything applied.  The first invalid entry gets
its own result code and every entry after it ``other-reason`` (the pattern of
the RTDS error responses); state-changing entries before it also report
``other-reason`` because nothing was applied, while reads before it are
answered, since a read changes nothing.

Profile format (TOML, read with :mod:`tomllib`)::

    format = 1
    [identity]                 # free-form: manufacturer, model, versions ...
    [[object]]
    class = 3
    obis = "1-0:32.32.0.4"
    name = "what it is"        # optional
    methods = [1]              # supported method ids (optional)
      [object.attr.2]
      type = "uint32"          # see below
      value = 0                # default, interpreted against the type
      access = "r"             # optional: "r" read-only, default "rw"
    [[activation]]             # writing a date-time to `trigger` activates `copy`
    trigger = [9000, "0-0:94.44.128.28", 6]
    copy = [{ from = [10, "0-1:12.0.1.255", 2], to = [10, "0-0:12.0.1.255", 2] }]

Types: the A-XDR names of :data:`gbhil.gbcs.axdr.TAG_NAMES` (``uint32``,
``octet-string``, ``enum`` ...), ``timestamp`` (an octet-string(12) holding a
DLMS date-time, as GBCS sends them), ``any``, and the composites
``["structure", [member types]]``, ``["array", element type]`` or
``["array", element type, count]`` (fixed count, needed inside compact
arrays) and ``["compact-array", element type]``.  Values: integers and
booleans as TOML scalars, octet-strings as hex text or ``{ text = "..." }``,
visible/UTF-8 strings as text, bit-strings as ``[bit count, "hex"]``,
timestamps as ISO-8601 text (UTC), ``"now"``, ``"never"`` or hex, composites
as TOML arrays.  Other top-level tables are kept in :attr:`Profile.settings`.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeAlias

from gbhil.devices.core import Alert, Command, Deferred, Outcome, dlms_datetime
from gbhil.gbcs import axdr
from gbhil.gbcs.axdr import (
    NULL,
    Array,
    BitString,
    Boolean,
    CompactArray,
    Data,
    Enum,
    Int8,
    Int32,
    NullData,
    OctetString,
    Structure,
    TypeDesc,
    Uint16,
    Uint32,
)
from gbhil.gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    DataNotification,
    RequestKind,
    RequestSpec,
    ResponseKind,
    ResponseSpec,
    format_obis,
    gbcs_invoke_id,
    parse_obis,
)
from gbhil.gbcs.errors import GbcsError

# --- catalogues ----------------------------------------------------------------------------


class Result(IntEnum):
    """Data-Access-Result / Action-Result codes a server answers with (DLMS Green Book)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    OTHER_REASON = 250


#: COSEM interface class ids with generic behaviour here.
CLASS_REGISTER = 3
CLASS_EXTENDED_REGISTER = 4
CLASS_PROFILE_GENERIC = 7
CLASS_CLOCK = 8
CLASS_SCRIPT_TABLE = 9
CLASS_ACTIVITY_CALENDAR = 20
CLASS_DATA_PROTECTION = 30
CLASS_DISCONNECT_CONTROL = 70
CLASS_CREDIT = 112
CLASS_CHARGE = 113

#: Attribute 1 of every interface class is the logical name (the OBIS code itself).
ATTR_LOGICAL_NAME = 1
#: Access selector of a range selection on a profile buffer (gbcs-facts 3.1.4).
SELECTOR_RANGE = 1
#: Data protection: required protection "authentication and encryption" (gbcs-facts 3.1.6).
PROTECTION_AUTH_ENCRYPT = 2
#: Transaction-id type byte of payload encryption (gbcs-facts 2.3).
PAYLOAD_ENCRYPTION_TYPE = 0x04

#: Future-dated execution alert (DLMS) and its alert codes (gbcs-facts 3.1.5, 3.4).
FUTURE_DATED_ALERT = 0x00CC
ALERT_FUTURE_DATED_OK = 0x8F66
ALERT_FUTURE_DATED_FAILED = 0x8F67

#: GBCS epoch of uint32 timestamps (range selection, profile buffers).
EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
#: Disconnect control states (Blue Book class 70 attribute 3).
DISCONNECTED, CONNECTED, READY_FOR_RECONNECTION = 0, 1, 2

AttrKey: TypeAlias = tuple[int, bytes, int]
ObjKey: TypeAlias = tuple[int, bytes]
ObisLike: TypeAlias = str | bytes


def obis_bytes(obis: ObisLike) -> bytes:
    """OBIS as 6 bytes, from ``a-b:c.d.e.f`` text or bytes."""
    if isinstance(obis, bytes):
        if len(obis) != 6:
            raise ValueError(f"OBIS needs 6 bytes, got {obis.hex()}")
        return obis
    return parse_obis(obis)


def seconds_since_2000(t: datetime) -> int:
    return int((t - EPOCH_2000).total_seconds())


def from_seconds_since_2000(s: int) -> datetime:
    return EPOCH_2000 + timedelta(seconds=s)


def timestamp(t: datetime) -> OctetString:
    """A GBCS date-time value: octet-string(12) in UTC."""
    return OctetString(dlms_datetime(t))


def parse_timestamp(raw: bytes) -> datetime | None:
    """UTC datetime of a 12-byte DLMS date-time; None for wildcards or nonsense."""
    if len(raw) != axdr.DATE_TIME_LEN:
        return None
    dt = axdr.decode_datetime(raw)
    try:
        t = datetime(
            dt.year,
            dt.month,
            dt.day,
            0 if dt.hour == 0xFF else dt.hour,
            0 if dt.minute == 0xFF else dt.minute,
            0 if dt.second == 0xFF else dt.second,
            0 if dt.hundredths == 0xFF else dt.hundredths * 10000,
            tzinfo=UTC,
        )
    except ValueError:
        return None
    if dt.deviation not in (axdr.DEVIATION_NOT_SPECIFIED, 0):
        t += timedelta(minutes=dt.deviation)  # deviation = UTC - local, in minutes
    return t


# --- types ---------------------------------------------------------------------------------

#: A type specification: a simple type name, or a tuple for composites:
#: ("structure", (members...)), ("array", element, count | None), ("compact-array", element).
TypeSpec: TypeAlias = str | tuple[Any, ...]

ANY = "any"
TIMESTAMP = "timestamp"
STRUCTURE = "structure"
ARRAY = "array"
COMPACT_ARRAY = "compact-array"

_SIMPLE: dict[str, type] = {
    "null-data": NullData,
    "boolean": Boolean,
    "bit-string": BitString,
    "int32": Int32,
    "uint32": Uint32,
    "octet-string": OctetString,
    "visible-string": axdr.VisibleString,
    "utf8-string": axdr.Utf8String,
    "bcd": axdr.Bcd,
    "int8": Int8,
    "int16": axdr.Int16,
    "uint8": axdr.Uint8,
    "uint16": Uint16,
    "int64": axdr.Int64,
    "uint64": axdr.Uint64,
    "enum": Enum,
    "float32": axdr.Float32,
    "float64": axdr.Float64,
}
_NAME_OF: dict[type, str] = {cls: name for name, cls in _SIMPLE.items()}
_TAG_OF: dict[str, int] = {name: cls.tag for name, cls in _SIMPLE.items()}
_NAME_OF_TAG: dict[int, str] = {tag: name for name, tag in _TAG_OF.items()}
_INTEGER_NAMES = frozenset(
    n for n, c in _SIMPLE.items() if isinstance(c, type) and issubclass(c, axdr._Integer)
)


class ProfileError(ValueError):
    """A device profile that cannot be used: names the object and the problem."""


def parse_type(t: Any, where: str = "type") -> TypeSpec:
    """TOML type notation -> :data:`TypeSpec` (interned tuples)."""
    if isinstance(t, str):
        if t in _SIMPLE or t in (ANY, TIMESTAMP):
            return t
        raise ProfileError(f"{where}: unknown type {t!r}")
    if isinstance(t, list) and t:
        kind = t[0]
        if kind == STRUCTURE and len(t) == 2 and isinstance(t[1], list):
            return (STRUCTURE, tuple(parse_type(m, where) for m in t[1]))
        if kind == ARRAY and len(t) in (2, 3):
            count = t[2] if len(t) == 3 else None
            if count is not None and not isinstance(count, int):
                raise ProfileError(f"{where}: array count must be an integer")
            return (ARRAY, parse_type(t[1], where), count)
        if kind == COMPACT_ARRAY and len(t) == 2:
            return (COMPACT_ARRAY, parse_type(t[1], where))
    raise ProfileError(f"{where}: cannot read type {t!r}")


def type_to_toml(spec: TypeSpec) -> Any:
    """Inverse of :func:`parse_type`."""
    if isinstance(spec, str):
        return spec
    if spec[0] == STRUCTURE:
        return [STRUCTURE, [type_to_toml(m) for m in spec[1]]]
    if spec[0] == ARRAY:
        out = [ARRAY, type_to_toml(spec[1])]
        return out if spec[2] is None else [*out, spec[2]]
    return [COMPACT_ARRAY, type_to_toml(spec[1])]


def type_desc(spec: TypeSpec) -> TypeDesc:
    """The compact-array type description of a spec (arrays need a fixed count)."""
    if isinstance(spec, str):
        name = "octet-string" if spec == TIMESTAMP else spec
        if name not in _TAG_OF:
            raise ProfileError(f"{spec!r} has no compact-array type description")
        return TypeDesc(_TAG_OF[name])
    if spec[0] == STRUCTURE:
        return TypeDesc(axdr.TAG_STRUCTURE, 0, tuple(type_desc(m) for m in spec[1]))
    if spec[0] == ARRAY:
        return TypeDesc(axdr.TAG_ARRAY, spec[2] or 0, (type_desc(spec[1]),))
    raise ProfileError("a compact array cannot nest a compact array")


def spec_of_desc(d: TypeDesc) -> TypeSpec:
    """Inverse of :func:`type_desc`."""
    if d.tag == axdr.TAG_STRUCTURE:
        return (STRUCTURE, tuple(spec_of_desc(m) for m in d.members))
    if d.tag == axdr.TAG_ARRAY:
        return (ARRAY, spec_of_desc(d.members[0]), d.count)
    return _NAME_OF_TAG.get(d.tag, ANY)


def infer_type(d: Data) -> TypeSpec:
    """The type a value shows (used to derive a profile from observed traffic)."""
    if isinstance(d, Structure):
        return (STRUCTURE, tuple(infer_type(x) for x in d.items))
    if isinstance(d, Array):
        elem: TypeSpec = ANY
        for x in d.items:
            elem = merge_types(elem, infer_type(x))
        return (ARRAY, elem, None)
    if isinstance(d, CompactArray):
        return (COMPACT_ARRAY, spec_of_desc(d.element))
    if isinstance(d, OctetString) and parse_timestamp(d.value) is not None:
        return TIMESTAMP
    if isinstance(d, OctetString) and axdr.looks_like_datetime(d.value):
        return TIMESTAMP
    return _NAME_OF.get(type(d), ANY)


def merge_types(a: TypeSpec, b: TypeSpec) -> TypeSpec:
    """The most specific type compatible with two observations (``any`` on conflict)."""
    if a in (ANY, b):
        return b
    if b == ANY:
        return a
    if {a, b} == {TIMESTAMP, "octet-string"}:
        return "octet-string"
    if isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0]:
        if a[0] == STRUCTURE and len(a[1]) == len(b[1]):
            return (STRUCTURE, tuple(merge_types(x, y) for x, y in zip(a[1], b[1], strict=True)))
        if a[0] == ARRAY:
            return (ARRAY, merge_types(a[1], b[1]), a[2] if a[2] == b[2] else None)
    return ANY


def matches(spec: TypeSpec, d: Data) -> bool:
    """Does ``d`` have the type ``spec``? (lengths of strings and arrays are free)."""
    if spec == ANY:
        return True
    if spec == TIMESTAMP:
        return isinstance(d, OctetString) and len(d.value) == axdr.DATE_TIME_LEN
    if isinstance(spec, str):
        return type(d) is _SIMPLE[spec]
    kind = spec[0]
    if kind == STRUCTURE:
        return (
            isinstance(d, Structure)
            and len(d.items) == len(spec[1])
            and all(matches(m, x) for m, x in zip(spec[1], d.items, strict=True))
        )
    if kind == ARRAY:
        return isinstance(d, Array) and all(matches(spec[1], x) for x in d.items)
    return isinstance(d, CompactArray) and d.element == type_desc(spec[1])


def zero_value(spec: TypeSpec) -> Data:
    """The neutral value of a type: zeros, empty strings and containers, "never"."""
    if spec in (ANY, "null-data"):
        return NULL
    if spec == TIMESTAMP:
        return OctetString(axdr.encode_datetime(axdr.DATE_TIME_NEVER))
    if isinstance(spec, str):
        cls = _SIMPLE[spec]
        if spec in _INTEGER_NAMES:
            return cls(0)  # type: ignore[no-any-return]
        if spec == "boolean":
            return Boolean(False)
        if spec == "bit-string":
            return BitString(0, b"")
        if cls in (axdr.Float32, axdr.Float64):
            return cls.of(0.0)  # type: ignore[no-any-return]
        return cls(b"")  # type: ignore[no-any-return]
    if spec[0] == STRUCTURE:
        return Structure(tuple(zero_value(m) for m in spec[1]))
    if spec[0] == ARRAY:
        return Array(tuple(zero_value(spec[1]) for _ in range(spec[2] or 0)))
    return CompactArray(type_desc(spec[1]), ())


_SPECIAL_TIMES = {
    "now": axdr.DATE_TIME_NOW,
    "never": axdr.DATE_TIME_NEVER,
    "unspecified": axdr.DATE_TIME_NEVER,
}


def _octets(v: Any, where: str) -> bytes:
    if isinstance(v, dict) and set(v) == {"text"}:
        return str(v["text"]).encode("latin-1")
    if isinstance(v, str):
        try:
            return bytes.fromhex(v)
        except ValueError:
            raise ProfileError(f"{where}: {v!r} is not hex") from None
    raise ProfileError(f"{where}: octet-string needs hex text or {{ text = ... }}")


def build_value(spec: TypeSpec, v: Any, where: str = "value") -> Data:
    """TOML value notation -> A-XDR Data of type ``spec``."""
    if spec == ANY:
        raise ProfileError(f"{where}: a value needs a concrete type")
    if spec == "null-data":
        return NULL
    if spec == TIMESTAMP:
        if isinstance(v, str) and v in _SPECIAL_TIMES:
            return OctetString(axdr.encode_datetime(_SPECIAL_TIMES[v]))
        if isinstance(v, str) and len(v) == 24 and all(c in "0123456789abcdefABCDEF" for c in v):
            return OctetString(bytes.fromhex(v))
        if isinstance(v, datetime):
            t = v if v.tzinfo else v.replace(tzinfo=UTC)
            return timestamp(t)
        if isinstance(v, str):
            try:
                return timestamp(datetime.fromisoformat(v.replace("Z", "+00:00")))
            except ValueError:
                pass
        raise ProfileError(f"{where}: cannot read timestamp {v!r}")
    if isinstance(spec, str):
        cls = _SIMPLE[spec]
        if spec in _INTEGER_NAMES:
            if type(v) is not int:
                raise ProfileError(f"{where}: {spec} needs an integer, got {v!r}")
            return cls(v)  # type: ignore[no-any-return]
        if spec == "boolean":
            if type(v) is not bool:
                raise ProfileError(f"{where}: boolean needs true/false")
            return Boolean(v)
        if spec == "bit-string":
            if not (isinstance(v, list) and len(v) == 2 and isinstance(v[0], int)):
                raise ProfileError(f"{where}: bit-string needs [bit count, hex]")
            return BitString(v[0], _octets(v[1], where))
        if spec in ("visible-string", "utf8-string"):
            return cls(str(v).encode("utf-8"))  # type: ignore[no-any-return]
        if spec in ("float32", "float64"):
            return cls.of(float(v))  # type: ignore[no-any-return]
        return OctetString(_octets(v, where))
    if not isinstance(v, list):
        raise ProfileError(f"{where}: {spec[0]} needs a list")
    if spec[0] == STRUCTURE:
        if len(v) != len(spec[1]):
            raise ProfileError(f"{where}: structure needs {len(spec[1])} members, got {len(v)}")
        return Structure(
            tuple(
                build_value(m, x, f"{where}[{i}]")
                for i, (m, x) in enumerate(zip(spec[1], v, strict=True))
            )
        )
    items = tuple(build_value(spec[1], x, f"{where}[{i}]") for i, x in enumerate(v))
    if spec[0] == ARRAY:
        return Array(items)
    return CompactArray(type_desc(spec[1]), items)


def value_to_toml(d: Data) -> Any:
    """Data -> TOML value notation (the inverse of :func:`build_value`)."""
    if isinstance(d, Structure | Array | CompactArray):
        return [value_to_toml(x) for x in d.items]
    if isinstance(d, Boolean):
        return d.value
    if isinstance(d, BitString):
        return [d.bits, d.data.hex()]
    if isinstance(d, axdr.VisibleString | axdr.Utf8String):
        return d.text()
    if isinstance(d, OctetString):
        return d.value.hex()
    if isinstance(d, axdr.Float32 | axdr.Float64):
        return d.value
    if isinstance(d, axdr._Integer):
        return d.value
    return None


# --- the profile ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of a COSEM object in the profile."""

    type: TypeSpec
    default: Data
    writable: bool = True
    encoded: bytes = b""  # A-XDR of the default: a device stores only values that differ

    def __post_init__(self) -> None:
        if not self.encoded:
            object.__setattr__(self, "encoded", axdr.encode_data(self.default))


@dataclass(frozen=True, slots=True)
class CosemObject:
    """One COSEM object of a device model."""

    class_id: int
    obis: bytes
    name: str
    attributes: Mapping[int, Attribute]
    methods: frozenset[int]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def obis_text(self) -> str:
        return format_obis(self.obis)


@dataclass(frozen=True, slots=True)
class Activation:
    """Writing a date-time to ``trigger`` schedules copying passive attributes to active ones."""

    trigger: AttrKey
    copies: tuple[tuple[AttrKey, AttrKey], ...]


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """A parsed device model profile, shared by every device of that model."""

    identity: Mapping[str, Any]
    objects: Mapping[ObjKey, CosemObject]
    activations: Mapping[AttrKey, Activation]
    settings: Mapping[str, Any]
    source: str = "<memory>"
    #: One shared key tuple per attribute, so devices do not allocate their own.
    keys: Mapping[AttrKey, AttrKey] = field(default_factory=dict)

    def object(self, class_id: int, obis: ObisLike) -> CosemObject | None:
        return self.objects.get((class_id, obis_bytes(obis)))

    def classes_of(self, obis: bytes) -> list[int]:
        return [c for (c, o) in self.objects if o == obis]


def _attr_key(v: Any, where: str) -> AttrKey:
    if not (isinstance(v, list) and len(v) == 3 and isinstance(v[0], int)):
        raise ProfileError(f"{where}: needs [class, obis, attribute]")
    return (v[0], obis_bytes(v[1]), int(v[2]))


_OBJECT_KEYS = frozenset({"class", "obis", "name", "methods", "attr"})


def parse_profile(doc: Mapping[str, Any], source: str = "<memory>") -> Profile:
    """A profile from a parsed TOML document (see the module docstring for the format)."""
    if doc.get("format", 1) != 1:
        raise ProfileError(f"{source}: unsupported profile format {doc.get('format')!r}")
    objects: dict[ObjKey, CosemObject] = {}
    for i, o in enumerate(doc.get("object", [])):
        where = f"{source}: object #{i + 1}"
        try:
            class_id, obis = int(o["class"]), obis_bytes(o["obis"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ProfileError(f"{where}: needs class and obis ({exc})") from None
        where = f"{source}: {class_id}/{format_obis(obis)}"
        if (class_id, obis) in objects:
            raise ProfileError(f"{where}: listed twice")
        attrs: dict[int, Attribute] = {}
        for k, a in o.get("attr", {}).items():
            index = int(k)
            spec = parse_type(a.get("type"), f"{where} attr {index}")
            default = (
                build_value(spec, a["value"], f"{where} attr {index}")
                if "value" in a
                else zero_value(spec)
            )
            access = a.get("access", "rw")
            if access not in ("r", "rw"):
                raise ProfileError(f"{where} attr {index}: access must be 'r' or 'rw'")
            attrs[index] = Attribute(spec, default, access == "rw")
        extra = {k: v for k, v in o.items() if k not in _OBJECT_KEYS}
        objects[(class_id, obis)] = CosemObject(
            class_id,
            obis,
            str(o.get("name", "")),
            MappingProxyType(attrs),
            frozenset(int(m) for m in o.get("methods", [])),
            MappingProxyType(extra),
        )
    activations: dict[AttrKey, Activation] = {}
    for i, a in enumerate(doc.get("activation", [])):
        where = f"{source}: activation #{i + 1}"
        trigger = _attr_key(a.get("trigger"), where)
        copies = tuple(
            (_attr_key(c.get("from"), where), _attr_key(c.get("to"), where))
            for c in a.get("copy", [])
        )
        for key in (trigger, *(k for pair in copies for k in pair)):
            obj = objects.get(key[:2])
            if obj is None or key[2] not in obj.attributes:
                raise ProfileError(f"{where}: {key[0]}/{format_obis(key[1])} attr {key[2]} absent")
        activations[trigger] = Activation(trigger, copies)
    settings = {
        k: v for k, v in doc.items() if k not in ("format", "identity", "object", "activation")
    }
    keys = {(c, o, a): (c, o, a) for (c, o), obj in objects.items() for a in obj.attributes}
    return Profile(
        MappingProxyType(dict(doc.get("identity", {}))),
        MappingProxyType(objects),
        MappingProxyType(activations),
        MappingProxyType(settings),
        source,
        MappingProxyType(keys),
    )


@functools.lru_cache(maxsize=16)
def _load_cached(path: str) -> Profile:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    return parse_profile(doc, path)


def load_profile(path: str | Path) -> Profile:
    """Parse a profile file once per process; every device of the model shares it."""
    return _load_cached(str(Path(path).resolve()))


# --- hooks ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Selection:
    """A range selection on a profile buffer: entries with start <= time <= end."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, t: datetime) -> bool:
        return (self.start is None or t >= self.start) and (self.end is None or t <= self.end)


#: owner, selection -> current value of a live attribute.
Getter: TypeAlias = Callable[[Any, Selection | None], Data]
#: owner, new value -> store a live attribute.
Putter: TypeAlias = Callable[[Any, Data], None]
#: owner, new value -> result code (0 accepts) of a set.
SetCheck: TypeAlias = Callable[[Any, Data], int]
#: owner, command (None for local calls), parameter -> (result, return value).
MethodHook: TypeAlias = Callable[[Any, Command | None, Data], tuple[int, Data | None]]
#: owner, command, parameter -> result code (0 accepts) checked before anything is applied.
MethodCheck: TypeAlias = Callable[[Any, Command | None, Data], int]


@dataclass(slots=True)
class Hooks:
    """Device behaviour per attribute/method; one table is shared by all devices of a class."""

    getters: dict[AttrKey, Getter] = field(default_factory=dict)
    putters: dict[AttrKey, Putter] = field(default_factory=dict)
    set_checks: dict[AttrKey, SetCheck] = field(default_factory=dict)
    methods: dict[AttrKey, MethodHook] = field(default_factory=dict)
    method_checks: dict[AttrKey, MethodCheck] = field(default_factory=dict)
    #: owner, alert code (8F66/8F67), message code -> called when future-dated work ran.
    activated: Callable[[Any, int, int], None] | None = None

    def copy(self) -> Hooks:
        return Hooks(
            dict(self.getters),
            dict(self.putters),
            dict(self.set_checks),
            dict(self.methods),
            dict(self.method_checks),
            self.activated,
        )

    def live(
        self,
        class_id: int,
        obis: ObisLike,
        attr: int,
        get: Getter,
        put: Putter | None = None,
        check: SetCheck | None = None,
    ) -> None:
        """Bind an attribute to device state (``get``; ``put`` makes it writable)."""
        key = (class_id, obis_bytes(obis), attr)
        self.getters[key] = get
        if put is not None:
            self.putters[key] = put
        if check is not None:
            self.set_checks[key] = check

    def method(
        self,
        class_id: int,
        obis: ObisLike,
        method_id: int,
        run: MethodHook,
        check: MethodCheck | None = None,
    ) -> None:
        """Bind a method to device logic (``check`` runs in the validation phase)."""
        key = (class_id, obis_bytes(obis), method_id)
        self.methods[key] = run
        if check is not None:
            self.method_checks[key] = check


class Encryptor(Protocol):
    """What data protection needs from the owning device (see ``Device.encrypt_for``)."""

    def encrypt_for(self, cmd: Command, plaintext: bytes) -> bytes: ...


class CosemError(Exception):
    """A request entry that cannot be served; carries its DLMS result code."""

    def __init__(self, result: int, detail: str = "") -> None:
        super().__init__(detail or Result(result).name.lower().replace("_", "-"))
        self.result = result


# --- processing ----------------------------------------------------------------------------

_RESPONSE_KIND = {
    RequestKind.GET: ResponseKind.GET,
    RequestKind.GET_WITH_SELECTION: ResponseKind.GET,
    RequestKind.SET: ResponseKind.SET,
    RequestKind.SET_WITH_SELECTION: ResponseKind.SET,
    RequestKind.ACTION: ResponseKind.ACTION,
}
_CHANGES = (RequestKind.SET, RequestKind.SET_WITH_SELECTION, RequestKind.ACTION)


@dataclass(slots=True)
class Processed:
    """What one access-request did: the response and any future-dated work it scheduled."""

    response: AccessResponse
    deferred: list[Deferred] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.result == Result.SUCCESS for r in self.response.results)

    def outcome(self) -> Outcome:
        return Outcome(self.response, self.alerts, self.deferred)


@dataclass(slots=True)
class _Call:
    """Context of one entry while a request is processed."""

    server: CosemServer
    cmd: Command | None
    now: datetime
    obj: CosemObject
    index: int
    parameter: Data
    triggers: list[tuple[AttrKey, Data]]


#: Generic behaviour of a method: parameter type, check, run.
_Check: TypeAlias = Callable[[_Call], int]
_Run: TypeAlias = Callable[[_Call], Data | None]


class CosemServer:
    """One device's COSEM objects: the shared profile plus its own changes.

    ``owner`` is the device; hooks receive it first.  ``hooks`` is a shared
    :class:`Hooks` table; the ``on_*`` methods give this server a private copy.
    """

    __slots__ = ("_changes", "_faults", "_hooks", "_private_hooks", "owner", "profile")

    def __init__(self, profile: Profile, owner: Any = None, hooks: Hooks | None = None) -> None:
        self.profile = profile
        self.owner = owner
        self._hooks = hooks if hooks is not None else _NO_HOOKS
        self._private_hooks = False
        self._changes: dict[AttrKey, bytes] | None = None  # A-XDR encoded: compact
        self._faults: dict[tuple[int, int, bytes, int], list[int]] | None = None

    # -- configuration ---------------------------------------------------------------------
    def _own_hooks(self) -> Hooks:
        if not self._private_hooks:
            self._hooks = self._hooks.copy()
            self._private_hooks = True
        return self._hooks

    def on_method(
        self,
        class_id: int,
        obis: ObisLike,
        method_id: int,
        hook: Callable[[Command | None, Data], tuple[int, Data | None]],
        check: Callable[[Command | None, Data], int] | None = None,
    ) -> None:
        """Run ``hook(cmd, parameter) -> (result, return value)`` for this method.

        ``check(cmd, parameter) -> result`` (optional) runs in the validation
        phase, so a refused parameter leaves the whole command unapplied.
        """
        self._own_hooks().method(
            class_id,
            obis,
            method_id,
            lambda _owner, cmd, p: hook(cmd, p),
            None if check is None else (lambda _owner, cmd, p: check(cmd, p)),
        )

    def on_get(
        self,
        class_id: int,
        obis: ObisLike,
        attr: int,
        get: Callable[[Selection | None], Data],
        put: Callable[[Data], None] | None = None,
    ) -> None:
        """Bind an attribute of this server to live state (``put`` to accept sets)."""
        self._own_hooks().live(
            class_id,
            obis,
            attr,
            lambda _owner, sel: get(sel),
            None if put is None else (lambda _owner, v: put(v)),
        )

    def inject_fault(
        self,
        kind: RequestKind | None,
        class_id: int,
        obis: ObisLike,
        index: int,
        result: int = Result.HARDWARE_FAULT,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` requests on an attribute/method fail with ``result``.

        ``kind`` None matches get, set and action alike.  This is how a test
        reproduces the RTDS error scenarios, which fail for reasons (hardware)
        that the command bytes do not show.
        """
        if self._faults is None:
            self._faults = {}
        if kind is RequestKind.GET_WITH_SELECTION:
            kind = RequestKind.GET
        k = -1 if kind is None else int(kind)
        self._faults[(k, class_id, obis_bytes(obis), index)] = [int(result)] * times

    def _fault(self, spec: RequestSpec) -> int | None:
        if not self._faults:
            return None
        kind = RequestKind.GET if spec.kind is RequestKind.GET_WITH_SELECTION else spec.kind
        for k in (int(kind), -1):
            queue = self._faults.get((k, spec.class_id, spec.obis, spec.index))
            if queue:
                result = queue.pop()
                if not queue:
                    del self._faults[(k, spec.class_id, spec.obis, spec.index)]
                return result
        return None

    # -- state -------------------------------------------------------------------------------
    def changes(self) -> dict[AttrKey, Data]:
        """What this device holds beyond the profile defaults."""
        return {k: axdr.decode_data_all(v) for k, v in (self._changes or {}).items()}

    def reset(self) -> None:
        """Back to the profile defaults (live values are the owner's business)."""
        self._changes = None

    def _object(self, class_id: int, obis: bytes) -> CosemObject:
        obj = self.profile.objects.get((class_id, obis))
        if obj is None:
            if self.profile.classes_of(obis):
                raise CosemError(Result.OBJECT_CLASS_INCONSISTENT)
            raise CosemError(Result.OBJECT_UNDEFINED)
        return obj

    def read(
        self, class_id: int, obis: ObisLike, attr: int, selection: Selection | None = None
    ) -> Data:
        """Current value of an attribute; CosemError when there is none."""
        obis = obis_bytes(obis)
        obj = self._object(class_id, obis)
        if attr == ATTR_LOGICAL_NAME:
            return OctetString(obis)
        key = (class_id, obis, attr)
        getter = self._hooks.getters.get(key)
        if getter is not None:
            return getter(self.owner, selection)
        if attr not in obj.attributes:
            raise CosemError(Result.OBJECT_UNDEFINED)
        raw = (self._changes or {}).get(key)
        value = obj.attributes[attr].default if raw is None else axdr.decode_data_all(raw)
        return value if selection is None else select(value, selection)

    def write(self, class_id: int, obis: ObisLike, attr: int, value: Data) -> None:
        """Set a value without checks (device-internal changes and activation copies)."""
        key = (class_id, obis_bytes(obis), attr)
        putter = self._hooks.putters.get(key)
        if putter is not None:
            putter(self.owner, value)
            return
        self.store(*key, value)

    def store(self, class_id: int, obis: ObisLike, attr: int, value: Data) -> None:
        """Keep a value in this device's changes (a putter that also stores calls this)."""
        key = (class_id, obis_bytes(obis), attr)
        obj = self._object(class_id, key[1])
        raw = axdr.encode_data(value)
        if attr in obj.attributes and obj.attributes[attr].encoded == raw:
            if self._changes:
                self._changes.pop(key, None)
            return
        if self._changes is None:
            self._changes = {}
        self._changes[self.profile.keys.get(key, key)] = raw

    def call(
        self, class_id: int, obis: ObisLike, method_id: int, parameter: Data, now: datetime
    ) -> tuple[int, Data | None]:
        """Invoke a method locally (no command, e.g. a button press): check, then run.

        ``now`` comes from the device's clock (register reset capture times).
        """
        obis = obis_bytes(obis)
        spec = RequestSpec(RequestKind.ACTION, class_id, obis, method_id)
        try:
            obj = self._object(class_id, obis)
        except CosemError as exc:
            return exc.result, None
        call = _Call(self, None, now, obj, method_id, parameter, [])
        result = self._check_action(spec, call)
        if result:
            return result, None
        try:
            return self._run_action(spec, call)
        except CosemError as exc:
            return exc.result, None

    # -- one access-request ------------------------------------------------------------------
    def serve(self, cmd: Command, now: datetime) -> Outcome:
        """A GBCS command's DLMS payload -> the device's outcome (for use-case handlers).

        Content that is not an access-request gets no response (GBCS discards
        commands it cannot parse as the use case requires).
        """
        if not isinstance(cmd.payload, AccessRequest):
            return Outcome(None)
        return self.process(cmd.payload, cmd, now).outcome()

    def process(self, request: AccessRequest, cmd: Command | None, now: datetime) -> Processed:
        """Serve an access-request atomically (validate everything, then apply)."""
        entries = list(zip(request.specs, request.data, strict=True))
        calls: list[_Call | None] = []
        failed_at, failure = len(entries), 0
        triggers: list[tuple[AttrKey, Data]] = []
        for i, (spec, data) in enumerate(entries):
            call, result = self._validate(spec, data, cmd, now, triggers)
            calls.append(call)
            if result:
                failed_at, failure = i, result
                break
        values: list[Data] = []
        results: list[int] = []
        for i, (spec, _data) in enumerate(entries):
            value: Data = NULL
            if i > failed_at or (i < failed_at and failure and spec.kind in _CHANGES):
                result = Result.OTHER_REASON
            elif i == failed_at:
                result = failure
            else:
                call = calls[i]
                assert call is not None
                result, out = self._apply(spec, call)
                value = out if out is not None and result == Result.SUCCESS else NULL
            values.append(value)
            results.append(int(result))
        processed = Processed(
            AccessResponse(
                gbcs_invoke_id(cmd.counter if cmd else request.invoke_id),
                tuple(values),
                tuple(
                    ResponseSpec(_RESPONSE_KIND[s.kind], r)
                    for (s, _), r in zip(entries, results, strict=True)
                ),
            )
        )
        if not failure:
            self._activate(triggers, cmd, now, processed)
        return processed

    def _validate(
        self,
        spec: RequestSpec,
        data: Data,
        cmd: Command | None,
        now: datetime,
        triggers: list[tuple[AttrKey, Data]],
    ) -> tuple[_Call | None, int]:
        fault = self._fault(spec)
        if fault:
            return None, fault
        try:
            obj = self._object(spec.class_id, spec.obis)
        except CosemError as exc:
            return None, exc.result
        parameter = data
        if spec.kind is RequestKind.GET_WITH_SELECTION:
            parameter = spec.selection or NULL
        call = _Call(self, cmd, now, obj, spec.index, parameter, triggers)
        if spec.kind in (RequestKind.GET, RequestKind.GET_WITH_SELECTION):
            return call, self._check_get(spec, call)
        if spec.kind is RequestKind.SET:
            return call, self._check_set(spec, call, data)
        if spec.kind is RequestKind.ACTION:
            return call, self._check_action(spec, call)
        return None, Result.SCOPE_OF_ACCESS_VIOLATED  # set-with-selection: not in GBCS

    def _check_get(self, spec: RequestSpec, call: _Call) -> int:
        key = (spec.class_id, spec.obis, spec.index)
        known = spec.index == ATTR_LOGICAL_NAME or spec.index in call.obj.attributes
        if not known and key not in self._hooks.getters:
            return Result.OBJECT_UNDEFINED
        if spec.kind is RequestKind.GET_WITH_SELECTION and (
            spec.selector != SELECTOR_RANGE or parse_selection(spec.selection) is None
        ):
            return Result.OTHER_REASON
        return Result.SUCCESS

    def _check_set(self, spec: RequestSpec, call: _Call, value: Data) -> int:
        key = (spec.class_id, spec.obis, spec.index)
        attr = call.obj.attributes.get(spec.index)
        live = key in self._hooks.putters
        if attr is None and not live:
            return (
                Result.READ_WRITE_DENIED
                if spec.index == ATTR_LOGICAL_NAME or key in self._hooks.getters
                else Result.OBJECT_UNDEFINED
            )
        if attr is not None:
            if not attr.writable:
                return Result.READ_WRITE_DENIED
            if not matches(attr.type, value):
                return Result.TYPE_UNMATCHED
        check = self._hooks.set_checks.get(key)
        if check is not None:
            result = check(self.owner, value)
            if result:
                return result
        activation = self.profile.activations.get(key)
        if activation is not None:
            if not isinstance(value, OctetString) or len(value.value) != axdr.DATE_TIME_LEN:
                return Result.TYPE_UNMATCHED
            call.triggers.append((key, value))
        return Result.SUCCESS

    def _check_action(self, spec: RequestSpec, call: _Call) -> int:
        key = (spec.class_id, spec.obis, spec.index)
        hook_check = self._hooks.method_checks.get(key)
        if key in self._hooks.methods:
            return hook_check(self.owner, call.cmd, call.parameter) if hook_check else 0
        if spec.index not in call.obj.methods:
            return Result.OBJECT_UNDEFINED
        behaviour = CLASS_METHODS.get((spec.class_id, spec.index))
        if behaviour is None:
            return Result.SUCCESS
        param_type, check, _ = behaviour
        if not matches(param_type, call.parameter):
            return Result.TYPE_UNMATCHED
        return check(call) if check else Result.SUCCESS

    def _apply(self, spec: RequestSpec, call: _Call) -> tuple[int, Data | None]:
        try:
            if spec.kind is RequestKind.GET:
                return Result.SUCCESS, self.read(spec.class_id, spec.obis, spec.index)
            if spec.kind is RequestKind.GET_WITH_SELECTION:
                sel = parse_selection(spec.selection)
                return Result.SUCCESS, self.read(spec.class_id, spec.obis, spec.index, sel)
            if spec.kind is RequestKind.SET:
                self.write(spec.class_id, spec.obis, spec.index, call.parameter)
                return Result.SUCCESS, None
            return self._run_action(spec, call)
        except CosemError as exc:
            return exc.result, None

    def _run_action(self, spec: RequestSpec, call: _Call) -> tuple[int, Data | None]:
        key = (spec.class_id, spec.obis, spec.index)
        hook = self._hooks.methods.get(key)
        if hook is not None:
            return hook(self.owner, call.cmd, call.parameter)
        behaviour = CLASS_METHODS.get((spec.class_id, spec.index))
        if behaviour is None:
            return Result.SUCCESS, None
        return Result.SUCCESS, behaviour[2](call)

    # -- future-dated activation (gbcs-facts 3.1.4, 3.4) ---------------------------------------
    def _activate(
        self,
        triggers: list[tuple[AttrKey, Data]],
        cmd: Command | None,
        now: datetime,
        processed: Processed,
    ) -> None:
        for key, value in triggers:
            activation = self.profile.activations[key]
            raw = value.value if isinstance(value, OctetString) else b""
            dt = axdr.decode_datetime(raw)
            label = activation_label(key)
            cancel = getattr(self.owner, "cancel", None)
            if cancel is not None:  # a new activation time replaces a pending one
                cancel(lambda d, label=label: d.label == label)
            if dt.is_never() or raw[:9] == b"\xff" * 9:
                continue
            when = None if raw[:9] == b"\x00" * 9 else parse_timestamp(raw)
            if when is None or when <= now:
                self.apply_activation(activation)
                continue
            processed.deferred.append(self._deferred(activation, cmd, when))

    def apply_activation(self, activation: Activation) -> None:
        """Copy the passive values to the active attributes."""
        for src, dst in activation.copies:
            self.write(*dst, self.read(*src))

    def _deferred(self, activation: Activation, cmd: Command | None, when: datetime) -> Deferred:
        code = cmd.message_code if cmd else 0
        counter = cmd.counter if cmd else 0
        originator = cmd.originator if cmd else b""

        def run(at: datetime) -> list[Alert]:
            try:
                self.apply_activation(activation)
                alert_code = ALERT_FUTURE_DATED_OK
            except (CosemError, GbcsError):
                alert_code = ALERT_FUTURE_DATED_FAILED
            if self._hooks.activated is not None:
                self._hooks.activated(self.owner, alert_code, code)
            return [
                future_dated_alert(
                    alert_code, at, code, counter, activation.trigger, originator or None
                )
            ]

        return Deferred(when, run, code, counter, originator, activation_label(activation.trigger))


_NO_HOOKS = Hooks()


def activation_label(key: AttrKey) -> str:
    """Label of the Deferred that activates ``key`` (used to replace or cancel it)."""
    return f"activation {key[0]}/{format_obis(key[1])}/{key[2]}"


def future_dated_alert(
    code: int,
    at: datetime,
    message_code: int,
    counter: int,
    trigger: AttrKey,
    target: bytes | None,
) -> Alert:
    """0x00CC alert: structure{uint16 8F66/8F67, time, octet-string(19)} (gbcs-facts 3.1.5)."""
    executed = (
        message_code.to_bytes(2, "big")
        + counter.to_bytes(8, "big")
        + trigger[0].to_bytes(2, "big")
        + trigger[1]
        + bytes((trigger[2],))
    )
    body = Structure((Uint16(code), timestamp(at), OctetString(executed)))
    return Alert(FUTURE_DATED_ALERT, DataNotification(gbcs_invoke_id(0), body), target, True)


# --- selective access ----------------------------------------------------------------------


def _bound(d: Data) -> datetime | None:
    if isinstance(d, Uint32):
        return from_seconds_since_2000(d.value)
    if isinstance(d, OctetString):
        return parse_timestamp(d.value)
    return None


def parse_selection(d: Data | None) -> Selection | None:
    """Range descriptor {restricting object, from, to, columns} -> Selection (None if bad).

    GBCS sends from/to as uint32 seconds since 2000 (gbcs-facts 3.1.4); the DLMS
    octet-string date-time form is accepted too.
    """
    if not isinstance(d, Structure) or len(d.items) != 4:
        return None
    start, end = _bound(d.items[1]), _bound(d.items[2])
    if start is None or end is None or end < start:
        return None
    return Selection(start, end)


def _entry_time(d: Data) -> datetime | None:
    if isinstance(d, Structure) and d.items:
        return _bound(d.items[0])
    return None


def select(buffer: Data, sel: Selection) -> Data:
    """The entries of a stored buffer whose first element (the time) lies in the range."""
    if isinstance(buffer, Array | CompactArray):
        keep = []
        for x in buffer.items:
            t = _entry_time(x)
            if t is None or sel.contains(t):
                keep.append(x)
        if isinstance(buffer, Array):
            return Array(tuple(keep))
        return CompactArray(buffer.element, tuple(keep))
    return buffer


# --- generic class behaviour ---------------------------------------------------------------


def _attr(call: _Call, index: int) -> AttrKey:
    return (call.obj.class_id, call.obj.obis, index)


def _zero_of(call: _Call, index: int) -> Data:
    a = call.obj.attributes.get(index)
    return zero_value(a.type) if a else NULL


def _has(call: _Call, *indices: int) -> int:
    missing = [i for i in indices if i not in call.obj.attributes]
    missing = [i for i in missing if _attr(call, i) not in call.server._hooks.getters]
    return Result.OBJECT_UNAVAILABLE if missing else Result.SUCCESS


def _register_reset(call: _Call) -> None:
    call.server.write(*_attr(call, 2), _zero_of(call, 2))
    if call.obj.class_id == CLASS_EXTENDED_REGISTER and 5 in call.obj.attributes:
        call.server.write(*_attr(call, 5), timestamp(call.now))


def _profile_reset(call: _Call) -> None:
    call.server.write(*_attr(call, 2), _zero_of(call, 2))


def _int_of(d: Data) -> int:
    return d.value if isinstance(d, axdr._Integer) else 0


def _add(call: _Call, index: int, delta: int) -> None:
    current = call.server.read(*_attr(call, index))
    call.server.write(*_attr(call, index), type(current)(_int_of(current) + delta))  # type: ignore[call-arg]


def _check_int_attr(call: _Call, index: int) -> int:
    if index not in call.obj.attributes and _attr(call, index) not in call.server._hooks.getters:
        return Result.OBJECT_UNAVAILABLE
    try:
        current = call.server.read(*_attr(call, index))
    except CosemError as exc:
        return exc.result
    if not isinstance(current, axdr._Integer):
        return Result.OBJECT_UNAVAILABLE
    new = _int_of(current) + _int_of(call.parameter)
    bits = current.size * 8
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if current.signed else (0, (1 << bits) - 1)
    return Result.SUCCESS if lo <= new <= hi else Result.OTHER_REASON


def _credit_update(call: _Call) -> None:
    _add(call, 2, _int_of(call.parameter))


def _credit_set(call: _Call) -> None:
    call.server.write(*_attr(call, 2), Int32(_int_of(call.parameter)))


def _credit_invoke(call: _Call) -> None:
    if 8 in call.obj.attributes:
        call.server.write(*_attr(call, 8), Enum(2))  # credit_status: selected/invoked


def _charge_activate(call: _Call) -> None:
    call.server.write(*_attr(call, 5), call.server.read(*_attr(call, 6)))


def _charge_update_unit(call: _Call) -> None:
    call.server.write(*_attr(call, 6), call.parameter)


def _charge_remaining_update(call: _Call) -> None:
    _add(call, 12, _int_of(call.parameter))


def _charge_remaining_set(call: _Call) -> None:
    call.server.write(*_attr(call, 12), Int32(_int_of(call.parameter)))


def _calendar_activate(call: _Call) -> None:
    for passive, active in ((6, 2), (7, 3), (8, 4), (9, 5)):
        call.server.write(*_attr(call, active), call.server.read(*_attr(call, passive)))


def _disconnect(call: _Call) -> None:
    call.server.write(*_attr(call, 3), Enum(DISCONNECTED))
    if 2 in call.obj.attributes:
        call.server.write(*_attr(call, 2), Boolean(False))


def _reconnect(call: _Call) -> None:
    call.server.write(*_attr(call, 3), Enum(CONNECTED))
    if 2 in call.obj.attributes:
        call.server.write(*_attr(call, 2), Boolean(True))


def _check_script(call: _Call) -> int:
    allowed = call.obj.extra.get("scripts")
    if allowed is not None and _int_of(call.parameter) not in allowed:
        return Result.OTHER_REASON
    return Result.SUCCESS


# Data protection (class 30) get_protected_attributes (gbcs-facts 3.1.6) -------------------


def _protected_request(d: Data) -> tuple[list[tuple[AttrKey, Selection | None]], Array] | None:
    """Object list and protection parameters of a get_protected_attributes call."""
    if not (isinstance(d, Structure) and len(d.items) == 2):
        return None
    objects, params = d.items
    if not (isinstance(objects, Array) and isinstance(params, Array) and params.items):
        return None
    out: list[tuple[AttrKey, Selection | None]] = []
    for o in objects.items:
        if not (isinstance(o, Structure) and len(o.items) == 5):
            return None
        cls, obis, attr, _index, access = o.items
        if not (
            isinstance(cls, Uint16)
            and isinstance(obis, OctetString)
            and len(obis.value) == 6
            and isinstance(attr, Int8)
            and isinstance(access, Structure)
            and len(access.items) == 2
            and isinstance(access.items[0], Enum)
        ):
            return None
        selector, bounds = access.items
        sel: Selection | None = None
        if selector.value == SELECTOR_RANGE:
            if not (isinstance(bounds, Structure) and len(bounds.items) == 2):
                return None
            start, end = _bound(bounds.items[0]), _bound(bounds.items[1])
            if start is None or end is None:
                return None
            sel = Selection(start, end)
        elif selector.value != 0:
            return None
        out.append(((cls.value, obis.value, attr.value), sel))
    for p in params.items:
        if not (
            isinstance(p, Structure)
            and len(p.items) == 2
            and isinstance(p.items[0], Enum)
            and p.items[0].value == PROTECTION_AUTH_ENCRYPT
            and isinstance(p.items[1], Structure)
            and len(p.items[1].items) == 5
            and all(isinstance(x, OctetString) for x in p.items[1].items[:4])
        ):
            return None
    return out, params


def _check_protected(call: _Call) -> int:
    parsed = _protected_request(call.parameter)
    if parsed is None:
        return Result.TYPE_UNMATCHED
    if call.cmd is None or not hasattr(call.server.owner, "encrypt_for"):
        return Result.OTHER_REASON
    for (cls, obis, attr), _ in parsed[0]:
        try:
            obj = call.server._object(cls, obis)
        except CosemError as exc:
            return exc.result
        if attr not in obj.attributes and (cls, obis, attr) not in call.server._hooks.getters:
            return Result.OBJECT_UNDEFINED
    return Result.SUCCESS


def _reply_protection(p: Data) -> Data:
    """The command's protection parameters with originator and recipient swapped."""
    assert isinstance(p, Structure) and isinstance(p.items[1], Structure)
    tid, originator, recipient, *rest = p.items[1].items
    return Structure((p.items[0], Structure((tid, recipient, originator, *rest))))


def _get_protected(call: _Call) -> Data:
    parsed = _protected_request(call.parameter)
    assert parsed is not None and call.cmd is not None
    objects, params = parsed
    plain = Structure(tuple(call.server.read(*key, sel) for key, sel in objects))
    owner: Encryptor = call.server.owner
    try:
        block = owner.encrypt_for(call.cmd, axdr.encode_data(plain))
    except GbcsError as exc:
        raise CosemError(Result.OTHER_REASON, str(exc)) from None
    return Structure((Array(tuple(_reply_protection(p) for p in params.items)), OctetString(block)))


def _none(fn: Callable[[_Call], None]) -> _Run:
    def run(call: _Call) -> Data | None:
        fn(call)
        return None

    return run


def _needs(*indices: int) -> _Check:
    return lambda call: _has(call, *indices)


#: (class id, method id) -> (parameter type, check in the validation phase, behaviour).
CLASS_METHODS: dict[tuple[int, int], tuple[TypeSpec, _Check | None, _Run]] = {
    (CLASS_REGISTER, 1): (ANY, _needs(2), _none(_register_reset)),
    (CLASS_EXTENDED_REGISTER, 1): (ANY, _needs(2), _none(_register_reset)),
    (CLASS_PROFILE_GENERIC, 1): (ANY, _needs(2), _none(_profile_reset)),
    (CLASS_SCRIPT_TABLE, 1): ("uint16", _check_script, _none(lambda call: None)),
    (CLASS_ACTIVITY_CALENDAR, 1): (ANY, _needs(2, 3, 4, 5, 6, 7, 8, 9), _none(_calendar_activate)),
    (CLASS_DATA_PROTECTION, 1): (ANY, _check_protected, _get_protected),
    (CLASS_DISCONNECT_CONTROL, 1): (ANY, _needs(3), _none(_disconnect)),
    (CLASS_DISCONNECT_CONTROL, 2): (ANY, _needs(3), _none(_reconnect)),
    (CLASS_CREDIT, 1): ("int32", lambda call: _check_int_attr(call, 2), _none(_credit_update)),
    (CLASS_CREDIT, 2): ("int32", _needs(2), _none(_credit_set)),
    (CLASS_CREDIT, 3): (ANY, None, _none(_credit_invoke)),
    (CLASS_CHARGE, 1): (ANY, _needs(6), _none(_charge_update_unit)),
    (CLASS_CHARGE, 2): (ANY, _needs(5, 6), _none(_charge_activate)),
    (CLASS_CHARGE, 4): (
        "int32",
        lambda call: _check_int_attr(call, 12),
        _none(_charge_remaining_update),
    ),
    (CLASS_CHARGE, 5): ("int32", _needs(12), _none(_charge_remaining_set)),
}


def inject_recorded_failure(
    server: CosemServer, request: AccessRequest, recorded: AccessResponse
) -> RequestSpec | None:
    """Replay a recorded error response: inject its first failure into ``server``.

    Error scenarios of a conformance corpus (e.g. RTDS ``*_ERROR``) send the
    same command as the success scenario; the device failed for a reason the
    bytes do not carry (a hardware fault).  Injecting the first failing
    entry's result lets the server show the rest of the behaviour: the
    entries after it answered ``other-reason``, nothing applied.
    """
    for spec, result in zip(request.specs, recorded.results, strict=False):
        if result.result != Result.SUCCESS:
            server.inject_fault(spec.kind, spec.class_id, spec.obis, spec.index, result.result)
            return spec
    return None


def iter_objects(profile: Profile) -> Iterable[CosemObject]:
    """Objects in (class, OBIS) order, for listings and tools."""
    return sorted(profile.objects.values(), key=lambda o: (o.class_id, o.obis))
