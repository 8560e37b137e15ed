"""Structural shape of a typed payload, for "same structure, values may differ" checks.

The coverage check compares a simulated device's response with the RTDS
response by shape: the APDU kind, request/response specs, data types and
container nesting, GBZ components with their clusters and commands, the ASN.1
tag tree.  Runs of identical elements collapse to one and an empty container
matches any container of the same type, because how many log entries a
device holds is a value, not structure.
"""

from __future__ import annotations

from typing import Any

from gbhil.gbcs import asn1, axdr, dlms, gbz

Shape = tuple[Any, ...]
CONTAINER = "container"


def _collapse(items: list[Shape]) -> tuple[Shape, ...]:
    out: list[Shape] = []
    for s in items:
        if not out or out[-1] != s:
            out.append(s)
    return tuple(out)


def _container(tag: str, children: list[Shape]) -> Shape:
    return (CONTAINER, tag, _collapse(children))


def axdr_shape(d: axdr.Data) -> Shape:
    if isinstance(d, axdr.Array | axdr.Structure):
        return _container(type(d).__name__, [axdr_shape(x) for x in d.items])
    if isinstance(d, axdr.CompactArray):
        return ("CompactArray", repr(d.element))
    return (type(d).__name__,)


def _spec(s: dlms.RequestSpec) -> Shape:
    return (int(s.kind), s.class_id, s.obis, s.index)


def dlms_shape(p: dlms.DlmsApdu) -> Shape:
    if isinstance(p, dlms.AccessRequest):
        return (
            "AccessRequest",
            tuple(_spec(s) for s in p.specs),
            tuple(axdr_shape(d) for d in p.data),
        )
    if isinstance(p, dlms.AccessResponse):
        return (
            "AccessResponse",
            tuple(axdr_shape(d) for d in p.data),
            tuple(int(r.kind) for r in p.results),
        )
    return ("DataNotification", axdr_shape(p.body))


def zcl_shape(payload: object) -> Shape:
    if isinstance(payload, bytes | bytearray):
        return ("raw",)
    fields = getattr(payload, "__slots__", ())
    parts: list[Shape] = [(type(payload).__name__,)]
    for f in fields:
        v = getattr(payload, f)
        if isinstance(v, tuple | list):
            parts.append(_container(f, [zcl_shape(x) for x in v]))
        elif isinstance(v, int | bytes | str | bool) or v is None:
            if f in ("attribute_id", "data_type", "type_id", "command_id", "cluster_id"):
                parts.append((f, v))
        else:
            parts.append((f, zcl_shape(v)))
    return tuple(parts)


def gbz_shape(p: gbz.GbzMessage) -> Shape:
    comps: list[Shape] = []
    for c in p.components:
        h = c.header
        common = (c.cluster_id, h.frame_type, h.command_id)
        if isinstance(c, gbz.EncryptedComponent):
            comps.append(("encrypted", *common, c.from_datetime is not None))
        else:
            comps.append(("plain", *common, c.from_datetime is not None, zcl_shape(c.payload)))
    alert = None if p.alert is None else (p.alert.code, type(p.alert.body).__name__)
    return ("GBZ", alert, _collapse(comps))


def asn1_shape(n: asn1.Asn1Node) -> Shape:
    items = getattr(n, "items", None)
    if isinstance(items, list):
        label = f"{type(n).__name__}:{getattr(n, 'number', '')}"
        return _container(label, [asn1_shape(c) for c in items])
    return (type(n).__name__, getattr(n, "number", None))


def payload_shape(p: object) -> Shape:
    if isinstance(p, gbz.GbzMessage):
        return gbz_shape(p)
    if isinstance(p, asn1.Asn1Node):
        return ("ASN.1", asn1_shape(p))
    return ("DLMS", dlms_shape(p))  # type: ignore[arg-type]


def shapes_match(a: Any, b: Any) -> bool:
    """Equality, except that an empty container matches any container of the same tag."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) == 3 and len(b) == 3 and a[0] == CONTAINER == b[0]:
            if a[1] != b[1]:
                return False
            if not a[2] or not b[2]:
                return True
            return len(a[2]) == len(b[2]) and all(
                shapes_match(x, y) for x, y in zip(a[2], b[2], strict=True)
            )
        return len(a) == len(b) and all(shapes_match(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Where two shapes first differ, as a readable path (for failure reports)."""
    if shapes_match(a, b):
        return None
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) == 3 and len(b) == 3 and a[0] == CONTAINER == b[0] and a[1] == b[1]:
            a, b = a[2], b[2]
            path = f"{path}/{a and 'items'}"
        if len(a) != len(b):
            return f"{path or '/'}: {len(a)} vs {len(b)} elements"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = first_difference(x, y, f"{path}/{i}")
            if d:
                return d
    return f"{path or '/'}: {a!r} vs {b!r}"[:300]
