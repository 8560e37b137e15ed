"""Derive the structural COSEM profile of a device type from an RTDS-like corpus.

Reads every DLMS command addressed to the device type (ESME or CHF, by the
RTDS device identities), pairs it with its response, and prints a profile
skeleton in the ``devices/*.toml`` format: each (class, OBIS, attribute) that
the use cases address with the A-XDR type they show, each method they call,
and the attributes written with GBCS activation date-times.

Only structure leaves the corpus: every default value printed is the neutral
value of its type (zeros, empty strings and containers, "never"), so the
output holds no RTDS values.  A curated profile adds its own plausible
defaults on top.  With ``--keystore`` the encrypted (data protection)
responses are decrypted to type the attributes they carry.

    python tools/derive_esme_profile.py ../shared/conformance/rtds-4.5.0 --device ESME \
        --keystore ../shared/conformance/rtds-keystore > /tmp/esme-skeleton.toml
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from gbhil.devices.core import DeviceType
from gbhil.devices.cosem import (
    ANY,
    CLASS_CHARGE,
    CLASS_DATA_PROTECTION,
    TIMESTAMP,
    AttrKey,
    TypeSpec,
    infer_type,
    merge_types,
    type_to_toml,
    value_to_toml,
    zero_value,
)
from gbhil.devices.coverage import RTDS_DEVICES, scenarios
from gbhil.gbcs import axdr, dlms
from gbhil.gbcs.dlms import RequestKind, format_obis
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.message import DecodedMessage, decode_message, decrypt_payload
from gbhil.gbcs.obis import OBIS_NAMES
from gbhil.gbcs.security import SecurityContext
from gbhil.smki import KeyStore

#: GBCS "now" / "never" activation date-times mark an attribute as an activation trigger.
_NOW_PREFIX = b"\x00" * 9
_NEVER_PREFIX = b"\xff" * 9
#: GBCS extended data (class 9000): attribute 6 activates passive attribute 4 into 2.
CLASS_GBCS_EXTENDED = 9000


class Observed:
    """Everything the corpus shows about one device type's objects."""

    def __init__(self) -> None:
        self.attrs: dict[AttrKey, TypeSpec] = {}
        self.variants: dict[AttrKey, list[TypeSpec]] = defaultdict(list)
        self.methods: dict[tuple[int, bytes], set[int]] = defaultdict(set)
        self.triggers: set[AttrKey] = set()

    def attr(self, key: AttrKey, spec: TypeSpec) -> None:
        """Merge an observation; incompatible ones (device variants) are kept apart."""
        if spec != ANY and spec not in self.variants[key]:
            self.variants[key].append(spec)
        merged = merge_types(self.attrs.get(key, ANY), spec)
        first = self.variants[key][0] if self.variants[key] else ANY
        self.attrs[key] = first if merged == ANY else merged

    def objects(self) -> list[tuple[int, bytes]]:
        keys = {k[:2] for k in self.attrs} | set(self.methods)
        return sorted(keys)


def _load(path: Path) -> DecodedMessage:
    return decode_message(bytes.fromhex(path.read_text().strip()))


def _protected_objects(param: axdr.Data) -> list[AttrKey]:
    out: list[AttrKey] = []
    if isinstance(param, axdr.Structure) and param.items and isinstance(param.items[0], axdr.Array):
        for o in param.items[0].items:
            if isinstance(o, axdr.Structure) and len(o.items) >= 3:
                cls, obis, attr = o.items[:3]
                if isinstance(cls, axdr.Uint16) and isinstance(obis, axdr.OctetString):
                    out.append((cls.value, obis.value, getattr(attr, "value", 2)))
    return out


def _plaintext(ctx: SecurityContext | None, msg: DecodedMessage) -> axdr.Data | None:
    if ctx is None:
        return None
    for d in decrypt_payload(ctx, msg):
        if d.ok and d.plaintext is not None:
            try:
                return axdr.decode_data_all(d.plaintext)
            except GbcsError:
                return None
    return None


def observe(root: Path, kind: DeviceType, ctx: SecurityContext | None) -> Observed:
    seen = Observed()
    for s in scenarios(root):
        try:
            cmd = _load(s.command)
        except GbcsError:
            continue
        if RTDS_DEVICES.get(cmd.frame.gs.business_target) is not kind:
            continue
        req = cmd.payload
        if not isinstance(req, dlms.AccessRequest):
            continue
        rsp = _load(s.response) if s.response else None
        answer = rsp.payload if rsp and isinstance(rsp.payload, dlms.AccessResponse) else None
        for i, (spec, data) in enumerate(zip(req.specs, req.data, strict=True)):
            key = (spec.class_id, spec.obis, spec.index)
            ok = answer is not None and answer.results[i].result == 0
            got = answer.data[i] if answer is not None and ok else None
            if spec.kind in (RequestKind.GET, RequestKind.GET_WITH_SELECTION):
                seen.attr(key, infer_type(got) if got is not None else ANY)
            elif spec.kind is RequestKind.SET:
                seen.attr(key, infer_type(data))
                if isinstance(data, axdr.OctetString) and data.value[:9] in (
                    _NOW_PREFIX,
                    _NEVER_PREFIX,
                ):
                    seen.triggers.add(key)
                    seen.attr(key, TIMESTAMP)
            elif spec.kind is RequestKind.ACTION:
                seen.methods[(spec.class_id, spec.obis)].add(spec.index)
                if spec.class_id == CLASS_DATA_PROTECTION and spec.index == 1:
                    keys = _protected_objects(data)
                    plain = _plaintext(ctx, rsp) if rsp is not None and ok else None
                    values = plain.items if isinstance(plain, axdr.Structure) else ()
                    for j, k in enumerate(keys):
                        spec_j = infer_type(values[j]) if j < len(values) else ANY
                        seen.attr(k, spec_j)
    return seen


# --- TOML output ---------------------------------------------------------------------------


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def _activation_copies(trigger: AttrKey, seen: Observed) -> list[tuple[AttrKey, AttrKey]]:
    """Copies known by interface-class convention; calendars need a curated mapping."""
    cls, obis, attr = trigger
    if cls == CLASS_CHARGE and attr == 7:
        return [((cls, obis, 6), (cls, obis, 5))]
    if cls == CLASS_GBCS_EXTENDED and attr == 6 and (cls, obis, 4) in seen.attrs:
        return [((cls, obis, 4), (cls, obis, 2))]
    return []


def _key_toml(k: AttrKey) -> str:
    return toml_value([k[0], format_obis(k[1]), k[2]])


def emit(seen: Observed, kind: DeviceType, source: str) -> str:
    for trigger in seen.triggers:  # active attributes the corpus never reads still exist
        for src, dst in _activation_copies(trigger, seen):
            if dst not in seen.attrs and src in seen.attrs:
                seen.attr(dst, seen.attrs[src])
    out = [
        f"# Structural {kind.value} profile derived by tools/derive_esme_profile.py from",
        f"# {source}. Types come from the corpus; every value is the neutral value of",
        "# its type (no corpus values). Curate defaults before committing.",
        "format = 1",
        "",
        "[identity]",
        f'device_type = "{kind.value}"',
        "",
    ]
    for class_id, obis in seen.objects():
        text = format_obis(obis)
        out += ["[[object]]", f"class = {class_id}", f'obis = "{text}"']
        name = OBIS_NAMES.get(text)
        if name:
            out.append(f"name = {toml_value(name)}")
        methods = sorted(seen.methods.get((class_id, obis), ()))
        if methods:
            out.append(f"methods = {toml_value(methods)}")
        for (c, o, a), spec in sorted(seen.attrs.items()):
            if (c, o) != (class_id, obis):
                continue
            out += ["", f"  [object.attr.{a}]"]
            for other in seen.variants.get((c, o, a), [])[1:]:
                if merge_types(spec, other) == ANY:
                    seen_as = toml_value(type_to_toml(other))
                    out.append(f"  # also seen (another variant): {seen_as}")
            out.append(f"  type = {toml_value(type_to_toml(spec))}")
            if spec != ANY:
                out.append(f"  value = {toml_value(value_to_toml(zero_value(spec)))}")
        out.append("")
    for trigger in sorted(seen.triggers):
        out += ["[[activation]]", f"trigger = {_key_toml(trigger)}"]
        copies = _activation_copies(trigger, seen)
        if not copies:
            out.append("# TODO: which passive attributes does this date-time activate?")
        rows = [f"{{ from = {_key_toml(s)}, to = {_key_toml(d)} }}" for s, d in copies]
        out += ["copy = [" + ", ".join(rows) + "]", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rtds", type=Path, help="RTDS-like folder (<SRV>_<UseCase>/*.HEX)")
    p.add_argument("--device", default="ESME", choices=[t.value for t in DeviceType])
    p.add_argument("--keystore", type=Path, help="keys to decrypt protected responses")
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    args = p.parse_args(argv)
    ctx = None
    if args.keystore:
        ctx = SecurityContext(KeyStore.load(args.keystore))
    kind = DeviceType(args.device)
    text = emit(observe(args.rtds, kind, ctx), kind, args.rtds.name)
    if args.output:
        args.output.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
