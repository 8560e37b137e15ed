"""Coverage of the simulated devices against a corpus laid out like RTDS.

For every command in the corpus the target device (found by its EUI) gets the
same command re-protected with the rig's keys.  Its response, and the alert
where the corpus scenario has one, must carry the RTDS message code and CRA
flag, the same payload structure (values may differ), and protection that
verifies under the rig's keys.

RTDS error scenarios (``*_ERROR``, ``*_NOT_FOUND``) send the same command as
the success scenario: the recorded device failed for a reason the bytes do not
carry (a hardware fault, an empty calendar).  Where the recorded response shows
a failure the harness first injects it through the device's fault API
(:meth:`Device.inject_recorded_failure`), then checks the error response.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gbhil.devices.core import Device, DeviceType, Reply
from gbhil.devices.registry import device_class
from gbhil.devices.shape import first_difference, payload_shape, shapes_match
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import Cra, Shape
from gbhil.gbcs.message import DecodedMessage, decode_message
from gbhil.gbcs.security import Check, SecurityContext, protect, verify_mac, verify_signature
from gbhil.smki import KeyStore, generate_pki

#: RTDS device identities (gbcs-facts 0): last byte of 00-DB-12-34-56-78-90-xx.
RTDS_DEVICES: dict[bytes, DeviceType] = {
    bytes.fromhex("00DB1234567890A0"): DeviceType.ESME,
    bytes.fromhex("00DB1234567890A1"): DeviceType.GSME,
    bytes.fromhex("00DB1234567890A2"): DeviceType.CHF,
    bytes.fromhex("00DB1234567890A3"): DeviceType.GPF,
    bytes.fromhex("00DB1234567890A4"): DeviceType.PPMID,
    bytes.fromhex("00DB1234567890A5"): DeviceType.HCALCS,
    bytes.fromhex("00DB1234567890A6"): DeviceType.ESME,
}
#: RTDS remote parties, by trust anchor role.
RTDS_PARTIES: dict[Role, bytes] = {
    Role.RECOVERY: bytes.fromhex("90B3D51F30000001"),
    Role.SUPPLIER: bytes.fromhex("90B3D51F30010000"),
    Role.NETWORK_OPERATOR: bytes.fromhex("90B3D51F30020000"),
    Role.ACB: bytes.fromhex("90B3D51F30000002"),
    Role.TRANSITIONAL_COS: bytes.fromhex("90B3D51F30000004"),
    Role.WAN_PROVIDER: bytes.fromhex("90B3D51F30000007"),
    Role.LOAD_CONTROLLER: bytes.fromhex("90B3D51F30010008"),
}
ROLE_NAMES = {
    Role.RECOVERY: "recovery",
    Role.SUPPLIER: "supplier",
    Role.NETWORK_OPERATOR: "network_operator",
    Role.ACB: "acb",
    Role.TRANSITIONAL_COS: "transitional_cos",
    Role.WAN_PROVIDER: "wan_provider",
    Role.LOAD_CONTROLLER: "load_controller",
}
#: Virtual time of a coverage run: before the execution dates RTDS future-dates to.
COVERAGE_START = datetime(2016, 1, 1, tzinfo=UTC)
#: How far the clock runs after a command so that future-dated work executes.
FUTURE_HORIZON = timedelta(days=365 * 100)
#: Alert files may name the alert code before the command's scenario: 8F66_FUTURE_DATED_SUCCESS.
_ALERT_PREFIX = re.compile(r"^[0-9A-F]{4}_")
_NAME = re.compile(
    r"^(?P<scenario>.*?)_(?P<kind>PRECOMMAND|COMMAND|RESPONSE|ALERT)(?:_(?P<suffix>.*?))?_GBCS$"
)


class SteppedClock:
    """Minimal settable clock for a coverage run (one instant per command)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, t: datetime) -> None:
        self._now = t


@dataclass(slots=True)
class Failure:
    use_case: str
    file: str
    reason: str


@dataclass(slots=True)
class TypeReport:
    covered: set[str] = field(default_factory=set)
    total: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "covered": len(self.covered),
            "total": len(self.total),
            "failures": [
                {"use_case": f.use_case, "file": f.file, "reason": f.reason} for f in self.failures
            ],
        }


@dataclass(slots=True)
class Scenario:
    use_case: str
    name: str
    command: Path
    response: Path | None = None
    alerts: list[Path] = field(default_factory=list)


def scenarios(root: Path) -> list[Scenario]:
    """Group corpus files into command / response / alert scenarios."""
    out: dict[tuple[str, str], Scenario] = {}
    loose: list[tuple[str, str, str, Path]] = []
    for path in sorted(root.rglob("*.HEX")):
        srv, _, use_case = path.parent.name.partition("_")
        stem = path.stem
        prefix = f"{use_case}_{srv}_"
        rest = stem[len(prefix) :] if stem.startswith(prefix) else stem
        m = _NAME.match(rest)
        if not m:
            continue
        key = (path.parent.name, m["scenario"])
        if m["kind"] == "COMMAND":
            out[key] = Scenario(use_case, m["scenario"], path)
        elif m["kind"] in ("RESPONSE", "ALERT"):
            loose.append((path.parent.name, m["scenario"], m["kind"], path))
    for folder, scen, kind, path in loose:
        s = out.get((folder, scen))
        if s is None and kind == "ALERT":
            s = out.get((folder, _ALERT_PREFIX.sub("", scen)))
        if s is None:
            continue
        if kind == "RESPONSE":
            s.response = path
        else:
            s.alerts.append(path)
    return list(out.values())


@dataclass(slots=True)
class Rig:
    """The keys and devices of a coverage run."""

    keystore: KeyStore
    ctx: SecurityContext
    clock: SteppedClock
    factories: dict[bytes, Callable[[], Device]]


def make_rig(seed: int = 1) -> Rig:
    orgs = {ROLE_NAMES[r]: eui.hex() for r, eui in RTDS_PARTIES.items()}
    devices = {eui.hex(): kind.value for eui, kind in RTDS_DEVICES.items()}
    pki = generate_pki(None, organisations=orgs, devices=devices, seed=seed)
    store = pki.keystore
    clock = SteppedClock(COVERAGE_START)
    peers = {eui: store.ka_public(eui) for eui in RTDS_DEVICES}

    def factory(eui: bytes, kind: DeviceType) -> Callable[[], Device]:
        def make() -> Device:
            keys = DeviceKeys.from_keystore(eui, store, RTDS_PARTIES)
            keys.peers_ka = {e: k for e, k in peers.items() if e != eui and k is not None}
            return device_class(kind)(eui, keys, clock)

        return make

    return Rig(
        store,
        SecurityContext(store, RTDS_PARTIES[Role.ACB]),
        clock,
        {eui: factory(eui, kind) for eui, kind in RTDS_DEVICES.items()},
    )


def reprotect(rig: Rig, msg: DecodedMessage) -> bytes:
    """The same command, signed and MACed with the rig's keys instead of RTDS's."""
    gs = replace(msg.frame.gs, signature=b"")
    signed = bool(msg.frame.gs.signature)
    maced = msg.frame.shape is Shape.MACED
    return protect(rig.ctx, gs, signed=signed, maced=maced).encode()


def _check_reply(rig: Rig, label: str, got: bytes | None, want_path: Path) -> str | None:
    want = decode_message(bytes.fromhex(want_path.read_text().strip()))
    if got is None:
        return f"no {label}"
    try:
        msg = decode_message(got)
    except GbcsError as exc:
        return f"{label} does not decode: {exc}"
    gs, wgs = msg.frame.gs, want.frame.gs
    if gs.message_code != wgs.message_code or gs.cra != wgs.cra:
        return (
            f"{label} is {gs.cra.name} 0x{gs.message_code:04X}, "
            f"RTDS has {wgs.cra.name} 0x{wgs.message_code:04X}"
        )
    if msg.frame.shape is Shape.MACED and verify_mac(rig.ctx, msg.frame) is not Check.VERIFIED:
        return f"{label} MAC does not verify under the rig keys"
    if gs.signature and verify_signature(rig.ctx, gs) is not Check.VERIFIED:
        return f"{label} signature does not verify under the rig keys"
    if msg.frame.shape is not want.frame.shape:
        return f"{label} is {msg.frame.shape.value}, RTDS has {want.frame.shape.value}"
    if (gs.date_time is None) != (wgs.date_time is None):
        return f"{label} header date-time presence differs from RTDS"
    a, b = payload_shape(msg.payload), payload_shape(want.payload)
    if not shapes_match(a, b):
        return f"{label} payload structure differs: {first_difference(a, b)}"
    return None


def run_coverage(root: Path, seed: int = 1) -> dict[str, TypeReport]:
    rig = make_rig(seed)
    reports: dict[str, TypeReport] = {}
    failed: set[tuple[str, str]] = set()
    for s in scenarios(root):
        raw = bytes.fromhex(s.command.read_text().strip())
        try:
            cmd = decode_message(raw)
        except GbcsError:
            continue
        gs = cmd.frame.gs
        kind = RTDS_DEVICES.get(gs.business_target)
        if kind is None or gs.cra is not Cra.COMMAND:
            continue
        report = reports.setdefault(kind.value, TypeReport())
        report.total.add(s.use_case)
        reason = _run_scenario(rig, s, cmd)
        if reason is not None:
            report.failures.append(Failure(s.use_case, s.command.name, reason))
            failed.add((kind.value, s.use_case))
    for kind_name, report in reports.items():
        report.covered = {u for u in report.total if (kind_name, u) not in failed}
    return reports


def _run_scenario(rig: Rig, s: Scenario, cmd: DecodedMessage) -> str | None:
    try:
        device = rig.factories[cmd.frame.gs.business_target]()
    except (ImportError, AttributeError) as exc:
        return f"no simulator for this device type: {exc}"
    except Exception as exc:  # a broken profile is a finding, reported per file
        return f"device could not be created: {type(exc).__name__}: {exc}"
    rig.clock.set(COVERAGE_START)
    try:
        if s.response is not None:  # a no-op unless the recorded response shows a failure
            recorded = decode_message(bytes.fromhex(s.response.read_text().strip()))
            device.inject_recorded_failure(cmd.frame.gs.message_code, cmd.payload, recorded.payload)
        reply: Reply = device.receive(reprotect(rig, cmd))
    except Exception as exc:  # a crash is a finding, reported per file
        return f"device raised {type(exc).__name__}: {exc}"
    if reply.refused is not None:
        return f"device refused the command: {reply.reason}"
    if s.response is not None:
        problem = _check_reply(rig, "response", reply.response, s.response)
        if problem:
            return problem
    if s.alerts:
        alerts = list(reply.alerts)
        due = device.next_due()
        if due is not None:
            rig.clock.set(min(due, COVERAGE_START + FUTURE_HORIZON))
            alerts.extend(device.run_due())
        unused = list(alerts)
        for want in s.alerts:
            wcode = decode_message(bytes.fromhex(want.read_text().strip())).frame.gs.message_code
            candidates = [a for a in unused if decode_message(a).frame.gs.message_code == wcode]
            if not candidates:
                return f"no alert 0x{wcode:04X} as in {want.name}"
            problems = [_check_reply(rig, f"alert ({want.name})", c, want) for c in candidates]
            match = next((c for c, p in zip(candidates, problems, strict=True) if p is None), None)
            if match is None:
                return problems[0]
            unused.remove(match)  # each device alert answers one RTDS alert
    return None
