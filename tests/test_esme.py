"""The ESME and the generic COSEM server: behaviour, atomicity, alerts, and RTDS coverage."""

from __future__ import annotations

import tomllib
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gbhil.devices.core import Refusal
from gbhil.devices.cosem import (
    ALERT_FUTURE_DATED_OK,
    FUTURE_DATED_ALERT,
    CosemServer,
    Result,
    inject_recorded_failure,
    load_profile,
    matches,
    obis_bytes,
    parse_timestamp,
    seconds_since_2000,
    timestamp,
)
from gbhil.devices.coverage import (
    COVERAGE_START,
    RTDS_DEVICES,
    RTDS_PARTIES,
    SteppedClock,
    make_rig,
    reprotect,
    run_coverage,
    scenarios,
)
from gbhil.devices.esme import (
    ALERT_OUTAGE_RESTORED,
    ALERT_OUTAGE_RESTORED_LONG,
    ALERT_SUPPLY_INTERRUPTED,
    CS01A_TOP_UP,
    DEFAULT_PROFILE,
    ECS80_SUPPLY_RESTORED,
    ESME_DLMS_CODES,
    EVENT_COMMAND_OK,
    GENERIC_CRITICAL_ALERT,
    SECURITY_AUTHENTICATION,
    SECURITY_UTRN_NOT_AUTHENTIC,
    Esme,
)
from gbhil.devices.shape import first_difference, payload_shape, shapes_match
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs import axdr
from gbhil.gbcs.axdr import (
    NULL,
    Array,
    Boolean,
    Data,
    Enum,
    Int8,
    Int32,
    OctetString,
    Structure,
    Uint16,
    Uint32,
)
from gbhil.gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    DataNotification,
    RequestKind,
    RequestSpec,
    format_obis,
    gbcs_invoke_id,
)
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation, Shape
from gbhil.gbcs.message import DecodedMessage, decode_message, decrypt_payload, encode_payload
from gbhil.gbcs.obis import OBIS_NAMES
from gbhil.gbcs.security import Check, SecurityContext, protect, verify_signature
from gbhil.gbcs.usecases import MESSAGE_CODES
from gbhil.gbcs.utrn import build_utrn
from gbhil.smki import generate_pki

ESME = bytes.fromhex("00DB1234567890A0")
SUPPLIER = RTDS_PARTIES[Role.SUPPLIER]
NETWORK_OPERATOR = RTDS_PARTIES[Role.NETWORK_OPERATOR]
START = datetime(2026, 3, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent

# Message codes used below (gbhil.gbcs.usecases).
ECS17B, ECS26E, ECS35A, ECS42, ECS43, ECS44, ECS45 = 0x27, 0x3F, 0x48, 0x4F, 0x50, 0x51, 0x52
ECS04A, ECS08, ECS70, ECS82, ECS39A, ECS17A = 0x1C, 0x1F, 0x62, 0x69, 0x4C, 0x26

CLOCK = "0-0:1.0.0.255"
MPAN = "0-0:94.44.34.11"
MAX_BALANCE = "0-0:94.44.2.20"
SWITCH = "0-0:96.3.10.255"


# --- rig --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    orgs = {
        "supplier": SUPPLIER.hex(),
        "acb": RTDS_PARTIES[Role.ACB].hex(),
        "network_operator": NETWORK_OPERATOR.hex(),
    }
    return generate_pki(None, organisations=orgs, devices={ESME.hex(): "ESME"}, seed=7)


@dataclass
class Rig:
    esme: Esme
    ctx: SecurityContext
    clock: SteppedClock
    counter: int = 1000

    def send(self, code: int, *entries: tuple[RequestSpec, Data], originator: bytes = SUPPLIER):
        """Protect and deliver one DLMS command; returns (reply, decoded response or None)."""
        self.counter += 1
        specs = tuple(s for s, _ in entries)
        data = tuple(d for _, d in entries)
        content = encode_payload(AccessRequest(gbcs_invoke_id(self.counter), specs, data))
        gs = GeneralSigning(
            Cra.COMMAND, self.counter, originator, ESME, OtherInformation(code), content
        )
        signed = MESSAGE_CODES[code].command_protection == "MAC+SIG"
        reply = self.esme.receive(protect(self.ctx, gs, signed=signed, maced=True).encode())
        rsp = decode_message(reply.response) if reply.response else None
        return reply, rsp

    def results(self, code: int, *entries: tuple[RequestSpec, Data]) -> list[int]:
        _, rsp = self.send(code, *entries)
        assert rsp is not None and isinstance(rsp.payload, AccessResponse)
        return [r.result for r in rsp.payload.results]

    def get(self, class_id: int, obis: str, attr: int, code: int = ECS26E) -> Data:
        _, rsp = self.send(code, get(class_id, obis, attr))
        assert rsp is not None and isinstance(rsp.payload, AccessResponse)
        assert rsp.payload.results[0].result == Result.SUCCESS
        return rsp.payload.data[0]


def get(class_id: int, obis: str, attr: int) -> tuple[RequestSpec, Data]:
    return RequestSpec(RequestKind.GET, class_id, obis_bytes(obis), attr), NULL


def set_(class_id: int, obis: str, attr: int, value: Data) -> tuple[RequestSpec, Data]:
    return RequestSpec(RequestKind.SET, class_id, obis_bytes(obis), attr), value


def act(class_id: int, obis: str, method: int, p: Data = NULL) -> tuple[RequestSpec, Data]:
    return RequestSpec(RequestKind.ACTION, class_id, obis_bytes(obis), method), p


def range_get(class_id: int, obis: str, start: datetime, end: datetime) -> tuple[RequestSpec, Data]:
    restricting = Structure(
        (Uint16(1), OctetString(obis_bytes("0-0:94.44.100.255")), Int8(2), Uint16(0))
    )
    sel = Structure(
        (
            restricting,
            Uint32(seconds_since_2000(start)),
            Uint32(seconds_since_2000(end)),
            Array(()),
        )
    )
    return RequestSpec(RequestKind.GET_WITH_SELECTION, class_id, obis_bytes(obis), 2, 1, sel), NULL


@pytest.fixture()
def rig(pki) -> Rig:  # type: ignore[no-untyped-def]
    clock = SteppedClock(START)
    parties = {r: RTDS_PARTIES[r] for r in (Role.SUPPLIER, Role.ACB, Role.NETWORK_OPERATOR)}
    keys = DeviceKeys.from_keystore(ESME, pki.keystore, parties)
    ctx = SecurityContext(pki.keystore, RTDS_PARTIES[Role.ACB])
    return Rig(Esme(ESME, keys, clock), ctx, clock)


def alerts_of(raw: list[bytes]) -> list[DecodedMessage]:
    return [decode_message(a) for a in raw]


# --- the profile ------------------------------------------------------------------------


def test_profiles_parse_and_defaults_have_their_types() -> None:
    for name in ("esme.toml", "chf.toml"):
        profile = load_profile(ROOT / "devices" / name)
        assert profile.identity["manufacturer"] == "gbhil"
        for obj in profile.objects.values():
            for index, attr in obj.attributes.items():
                assert matches(attr.type, attr.default), (obj.obis_text, index)
    chf = load_profile(ROOT / "devices" / "chf.toml")
    assert chf.object(104, "0-0:30.3.0.255").methods >= {1, 2, 4, 5}  # type: ignore[union-attr]


def test_profile_is_shared_and_devices_store_only_changes(rig: Rig) -> None:
    other = Esme(ESME, rig.esme.keys, rig.clock)
    assert other.cosem.profile is rig.esme.cosem.profile is load_profile(DEFAULT_PROFILE)
    assert rig.esme.cosem.changes() == {}
    assert rig.results(ECS39A, set_(1, MPAN, 2, OctetString(b"1100000000011"))) == [0]
    assert list(rig.esme.cosem.changes().values()) == [OctetString(b"1100000000011")]
    assert other.cosem.changes() == {}  # copy-on-write: the other meter is untouched
    assert rig.results(ECS39A, set_(1, MPAN, 2, OctetString(b""))) == [0]  # back to default
    assert rig.esme.cosem.changes() == {}


def test_profile_holds_no_rtds_byte_strings(rtds_dir: Path) -> None:
    """The committed defaults are gbhil's own: no octet string of an RTDS ESME response."""
    seen: set[bytes] = set()
    for s in scenarios(rtds_dir):
        if s.response is None:
            continue
        msg = decode_message(bytes.fromhex(s.response.read_text().strip()))
        if RTDS_DEVICES.get(msg.frame.gs.business_originator) is None:
            continue
        if isinstance(msg.payload, AccessResponse):
            for d in msg.payload.data:
                seen |= {x.value for x in axdr.iter_data(d) if isinstance(x, OctetString)}
    # Object references (logical names of catalogued OBIS codes) are names, not values.
    seen = {
        v
        for v in seen
        if len(v) >= 3
        and v.strip(b"\x00\xff")
        and not (len(v) == 6 and format_obis(v) in OBIS_NAMES)
    }
    profile = load_profile(DEFAULT_PROFILE)
    ours = {
        x.value
        for obj in profile.objects.values()
        for a in obj.attributes.values()
        for x in axdr.iter_data(a.default)
        if isinstance(x, OctetString)
    }
    assert not (ours & seen)
    header = (ROOT / "devices" / "esme.toml").read_text().splitlines()[0]
    assert header.startswith("#")
    assert tomllib.loads((ROOT / "devices" / "esme.toml").read_text())["format"] == 1


# --- get / set / action ------------------------------------------------------------------


def test_get_values_and_errors(rig: Rig) -> None:
    assert rig.get(1, "0-0:96.1.1.255", 2) == OctetString(ESME)  # live: the device EUI
    assert rig.get(1, MPAN, 1) == OctetString(obis_bytes(MPAN))  # logical name
    assert rig.results(
        ECS26E,
        get(1, "0-0:96.1.4.255", 2),
        get(1, "9-9:9.9.9.9", 2),  # no such object
        get(1, "0-0:96.1.4.255", 7),
    ) == [0, Result.OBJECT_UNDEFINED, Result.OTHER_REASON]
    assert rig.results(ECS26E, get(3, "0-0:96.1.4.255", 2)) == [Result.OBJECT_CLASS_INCONSISTENT]
    assert rig.results(ECS26E, get(1, "0-0:96.1.4.255", 9)) == [Result.OBJECT_UNDEFINED]


def test_set_checks_type_and_access(rig: Rig) -> None:
    assert rig.results(ECS39A, set_(1, MPAN, 2, Uint32(5))) == [Result.TYPE_UNMATCHED]
    assert rig.results(ECS39A, set_(1, "0-0:96.1.1.255", 2, OctetString(b"x" * 8))) == [
        Result.READ_WRITE_DENIED
    ]
    assert rig.results(ECS39A, set_(1, MPAN, 1, OctetString(b"abcdef"))) == [
        Result.READ_WRITE_DENIED
    ]
    assert rig.esme.cosem.changes() == {}
    assert rig.results(ECS39A, set_(1, MPAN, 2, OctetString(b"1900000000022"))) == [0]
    assert rig.get(1, MPAN, 2, code=0x4E) == OctetString(b"1900000000022")


def test_a_refused_entry_leaves_the_whole_command_unapplied(rig: Rig) -> None:
    before = rig.esme.cosem.read(9000, MAX_BALANCE, 2)
    results = rig.results(
        ECS08,
        set_(9000, MAX_BALANCE, 2, Int32(123456)),
        set_(1, MPAN, 2, Uint16(1)),  # wrong type
        set_(9000, "0-0:94.44.2.10", 2, Int32(5)),
    )
    assert results == [Result.OTHER_REASON, Result.TYPE_UNMATCHED, Result.OTHER_REASON]
    assert rig.esme.cosem.read(9000, MAX_BALANCE, 2) == before
    assert rig.esme.cosem.changes() == {}
    # Reads before the failure are still answered: they change nothing.
    _, rsp = rig.send(ECS26E, get(1, "0-0:96.1.4.255", 2), get(1, "0-0:96.1.4.255", 99))
    assert isinstance(rsp.payload, AccessResponse)  # type: ignore[union-attr]
    assert rsp.payload.data[0] == OctetString(b"GBHIL-ESME")  # type: ignore[union-attr]


def test_actions_generic_behaviour_and_hooks(rig: Rig) -> None:
    counter = "1-0:32.32.0.4"
    rig.esme.cosem.write(3, counter, 2, Uint32(17))
    assert rig.results(0xD3, act(3, counter, 1, Int8(0))) == [0]  # ECS29e: register reset
    assert rig.esme.cosem.read(3, counter, 2) == Uint32(0)
    assert rig.results(0xD3, act(3, counter, 9, Int8(0))) == [Result.OBJECT_UNDEFINED]
    calls: list[Data] = []

    def hook(cmd, p):  # type: ignore[no-untyped-def]
        calls.append(p)
        return Result.SUCCESS, Uint16(7)

    rig.esme.cosem.on_method(3, counter, 1, hook, lambda cmd, p: 0 if p == Int8(0) else 250)
    _, rsp = rig.send(0xD3, act(3, counter, 1, Int8(0)))
    assert rsp.payload.data == (Uint16(7),) and calls == [Int8(0)]  # type: ignore[union-attr]
    assert rig.results(0xD3, act(3, counter, 1, Int8(1))) == [Result.OTHER_REASON]
    assert calls == [Int8(0)]  # the check refused it: the hook never ran
    other = Esme(ESME, rig.esme.keys, rig.clock)
    assert other.cosem._hooks is not rig.esme.cosem._hooks  # private copy for one device


def test_range_selection_on_the_event_log(rig: Rig) -> None:
    rig.results(ECS39A, set_(1, MPAN, 2, OctetString(b"1")))
    rig.clock.set(START + timedelta(days=2))
    rig.results(ECS39A, set_(1, MPAN, 2, OctetString(b"2")))
    _, rsp = rig.send(
        ECS35A,
        range_get(7, "0-0:99.98.0.255", START + timedelta(days=1), START + timedelta(days=3)),
    )
    buf = rsp.payload.data[0]  # type: ignore[union-attr]
    assert isinstance(buf, axdr.CompactArray) and len(buf.items) == 1
    entry = buf.items[0]
    assert entry.items[1] == Uint16(EVENT_COMMAND_OK)  # type: ignore[union-attr]
    assert entry.items[2] == OctetString(ECS39A.to_bytes(2, "big"))  # type: ignore[union-attr]
    bad = RequestSpec(RequestKind.GET_WITH_SELECTION, 7, obis_bytes("0-0:99.98.0.255"), 2, 2, NULL)
    assert rig.results(ECS35A, (bad, NULL)) == [Result.OTHER_REASON]


# --- live values -------------------------------------------------------------------------


def test_energy_advances_and_stops_when_the_load_switch_opens(rig: Rig) -> None:
    power = rig.esme.profile.settings["consumption"]["power_w"]
    rig.clock.set(START + timedelta(hours=2))
    assert rig.get(3, "1-0:1.8.0.255", 2) == Uint32(2 * power)
    assert rig.results(ECS43, act(9, "0-0:10.0.106.255", 1, Uint16(52))) == [0]  # open
    assert rig.get(70, SWITCH, 3, code=ECS45) == Enum(0)
    rig.clock.set(START + timedelta(hours=5))
    assert rig.get(3, "1-0:1.8.0.255", 2) == Uint32(2 * power)
    assert rig.results(ECS44, act(9, "0-0:10.0.106.255", 1, Uint16(54))) == [0]  # arm
    assert rig.get(70, SWITCH, 3, code=ECS45) == Enum(2)
    assert rig.esme.consumer_reconnect()
    rig.clock.set(START + timedelta(hours=6))
    assert rig.get(3, "1-0:1.8.0.255", 2) == Uint32(3 * power)
    assert rig.results(ECS42, act(9, "0-0:10.0.106.255", 1, Uint16(99))) == [Result.OTHER_REASON]


def test_meter_balance_adjusts_and_drains_in_prepayment(rig: Rig) -> None:
    balance = "0-0:19.10.0.255"
    assert rig.results(ECS04A, act(112, balance, 1, Int32(500000))) == [0]
    assert rig.get(112, balance, 2, code=ECS82) == Int32(500000)
    mode = Structure((Enum(2), Enum(2)))  # prepayment, active
    assert rig.results(0x1B, set_(111, "0-0:19.0.0.255", 2, mode)) == [0]
    rig.clock.set(START + timedelta(hours=10))
    settings = rig.esme.profile.settings["consumption"]
    used = settings["power_w"] * 10 / 1000 * settings["price_per_kwh"]
    assert rig.get(112, balance, 2, code=ECS82) == Int32(round(500000 - used))
    assert rig.results(ECS04A, act(112, balance, 1, Int32(2**31 - 1))) == [Result.OTHER_REASON]


def test_top_up_with_a_utrn(rig: Rig, pki) -> None:  # type: ignore[no-untyped-def]
    """CS01a: a UTRN from the supplier's prepayment key credits the meter balance."""
    z = SecurityContext(pki.keystore).shared_secret(SUPPLIER, ESME, prepayment=True)
    assert z is not None
    counter = (3 << 32) | (rig.counter + 1)  # counter bits 32..41 go into the PTUT
    rig.counter = counter - 1
    utrn = build_utrn(z, SUPPLIER, ESME, counter, 250).encode("ascii")  # 250 pence
    assert rig.results(CS01A_TOP_UP, act(115, "0-0:19.40.0.255", 1, OctetString(utrn))) == [0]
    assert rig.esme.meter_balance() == 250 * 1000
    forged = utrn[:5] + bytes((utrn[5] ^ 1,)) + utrn[6:]
    rig.counter = counter + (1 << 32) - 1  # same counter bits are not reusable anyway
    assert rig.results(CS01A_TOP_UP, act(115, "0-0:19.40.0.255", 1, OctetString(forged))) == [
        Result.OTHER_REASON
    ]
    assert rig.esme.meter_balance() == 250 * 1000
    assert rig.esme.security_log()[-1][1] == SECURITY_UTRN_NOT_AUTHENTIC


def test_set_clock_uses_the_validity_window(rig: Rig) -> None:
    start, end = (
        datetime(2027, 5, 1, 12, 0, tzinfo=UTC),
        datetime(2027, 5, 1, 12, 0, 20, tzinfo=UTC),
    )
    unspecified = OctetString(axdr.encode_datetime(axdr.DATE_TIME_NEVER))
    preset = Structure((unspecified, timestamp(start), timestamp(end)))
    _, rsp = rig.send(
        ECS70,
        act(8, CLOCK, 5, preset),
        act(8, CLOCK, 4, Int8(0)),
        get(8, CLOCK, 2),
    )
    assert [r.result for r in rsp.payload.results] == [0, 0, 0]  # type: ignore[union-attr]
    assert rsp.payload.data[2] == timestamp(start + timedelta(seconds=10))  # type: ignore[union-attr]
    rig.clock.set(START + timedelta(minutes=1))
    assert parse_timestamp(rig.get(8, CLOCK, 2).value) == start + timedelta(seconds=70)  # type: ignore[union-attr]
    assert rig.results(ECS70, act(8, CLOCK, 4, Int8(0))) == [Result.OTHER_REASON]  # no preset


def test_firmware_version_follows_the_running_image(rig: Rig) -> None:
    default = bytes.fromhex(rig.esme.profile.identity["firmware_version"])
    assert rig.get(1, "0-0:0.2.1.255", 2, code=0x59) == OctetString(default)
    rig.esme.firmware_version = b"\x02\x01\x00\x00"  # type: ignore[attr-defined]
    assert rig.get(1, "0-0:0.2.1.255", 2, code=0x59) == OctetString(b"\x02\x01\x00\x00")


def test_encrypted_read_decrypts_for_the_recipient(rig: Rig) -> None:
    rig.clock.set(START + timedelta(hours=4))
    params = Structure(
        (
            Enum(2),
            Structure(
                (
                    OctetString(b"\x04" + (rig.counter + 1).to_bytes(8, "big")),
                    OctetString(SUPPLIER),
                    OctetString(ESME),
                    OctetString(b""),
                    Structure((Enum(2), Structure((OctetString(b"\x02"), OctetString(b""))))),
                )
            ),
        )
    )
    objects = Array(
        (
            Structure(
                (
                    Uint16(1),
                    OctetString(obis_bytes("0-0:94.44.34.10")),
                    Int8(2),
                    Uint16(0),
                    Structure((Enum(0), NULL)),
                )
            ),
        )
    )
    _, rsp = rig.send(ECS17B, act(30, "0-0:43.2.8.255", 1, Structure((objects, Array((params,))))))
    assert rsp is not None and rsp.frame.gs.date_time is not None
    out = rsp.payload.data[0]  # type: ignore[union-attr]
    assert isinstance(out, Structure)
    echoed = out.items[0].items[0].items[1]  # type: ignore[union-attr]
    assert echoed.items[1] == OctetString(ESME) and echoed.items[2] == OctetString(SUPPLIER)  # type: ignore[union-attr]
    (dec,) = decrypt_payload(rig.ctx, rsp)
    assert dec.ok and dec.plaintext is not None
    value = axdr.decode_data_all(dec.plaintext)
    power = rig.esme.profile.settings["consumption"]["power_w"]
    assert value.items[0].items[0] == Uint32(4 * power)  # type: ignore[union-attr]
    # A recipient without a key: no block, an error result.
    bad = Structure((objects, Array((Structure((Enum(1), params.items[1])),))))
    assert rig.results(ECS17B, act(30, "0-0:43.2.8.255", 1, bad)) == [Result.TYPE_UNMATCHED]


# --- future-dated execution --------------------------------------------------------------


def test_future_dated_activation_raises_8f66_when_due(rig: Rig) -> None:
    when = START + timedelta(days=30)
    _, rsp = rig.send(
        ECS08,
        set_(9000, MAX_BALANCE, 4, Int32(777000)),
        set_(9000, MAX_BALANCE, 6, timestamp(when)),
    )
    assert [r.result for r in rsp.payload.results] == [0, 0]  # type: ignore[union-attr]
    counter = rig.counter
    before = rig.esme.cosem.read(9000, MAX_BALANCE, 2)
    assert before != Int32(777000) and len(rig.esme.pending()) == 1
    rig.clock.set(when - timedelta(seconds=1))
    assert rig.esme.run_due() == []
    rig.clock.set(when)
    (alert,) = alerts_of(rig.esme.run_due())
    assert rig.esme.cosem.read(9000, MAX_BALANCE, 2) == Int32(777000)
    gs = alert.frame.gs
    assert gs.message_code == FUTURE_DATED_ALERT and gs.cra is Cra.ALERT
    assert alert.frame.shape is Shape.SIGNED and verify_signature(rig.ctx, gs) is Check.VERIFIED
    assert gs.business_target == SUPPLIER
    body = alert.payload.body  # type: ignore[union-attr]
    assert body.items[0] == Uint16(ALERT_FUTURE_DATED_OK)
    executed = (
        ECS08.to_bytes(2, "big")
        + counter.to_bytes(8, "big")
        + (9000).to_bytes(2, "big")
        + obis_bytes(MAX_BALANCE)
        + b"\x06"
    )
    assert body.items[2] == OctetString(executed)
    assert alert.payload.long_invoke_id == gbcs_invoke_id(gs.originator_counter)  # type: ignore[union-attr]
    assert rig.esme.event_log()[-1][1] == ALERT_FUTURE_DATED_OK


def test_never_cancels_and_now_applies_at_once(rig: Rig) -> None:
    rig.send(
        ECS08,
        set_(9000, MAX_BALANCE, 4, Int32(1)),
        set_(9000, MAX_BALANCE, 6, timestamp(START + timedelta(days=1))),
    )
    never = OctetString(axdr.encode_datetime(axdr.DATE_TIME_NEVER))
    assert rig.results(ECS08, set_(9000, MAX_BALANCE, 6, never)) == [0]
    assert rig.esme.pending() == []
    now = OctetString(axdr.encode_datetime(axdr.DATE_TIME_NOW))
    reply, _ = rig.send(
        ECS08, set_(9000, MAX_BALANCE, 4, Int32(42)), set_(9000, MAX_BALANCE, 6, now)
    )
    assert reply.alerts == [] and rig.esme.pending() == []
    assert rig.esme.cosem.read(9000, MAX_BALANCE, 2) == Int32(42)


# --- power ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outage", "code"),
    [
        (timedelta(minutes=2, seconds=59), ALERT_OUTAGE_RESTORED),
        (timedelta(minutes=3), ALERT_OUTAGE_RESTORED_LONG),
    ],
)
def test_outage_restoration_alerts_at_the_three_minute_boundary(
    rig: Rig, outage: timedelta, code: int
) -> None:
    (gasp,) = alerts_of(rig.esme.power_off(START))
    assert gasp.frame.gs.message_code == GENERIC_CRITICAL_ALERT
    assert gasp.payload.body == Structure(  # type: ignore[union-attr]
        (Uint16(ALERT_SUPPLY_INTERRUPTED), timestamp(START))
    )
    assert rig.esme.receive(b"\xdd").refused is Refusal.POWERED_OFF
    rig.clock.set(START + outage)
    (restored,) = alerts_of(rig.esme.power_on(START + outage))
    gs = restored.frame.gs
    assert gs.message_code == ECS80_SUPPLY_RESTORED and gs.business_target == NETWORK_OPERATOR
    assert verify_signature(rig.ctx, gs) is Check.VERIFIED
    body = restored.payload.body  # type: ignore[union-attr]
    assert body.items[0] == Uint16(code)
    assert body.items[2:] == (timestamp(START), timestamp(START + outage))
    assert rig.esme.power_on() == []  # already on: nothing to report
    power = rig.esme.profile.settings["consumption"]["power_w"]
    rig.clock.set(START + outage + timedelta(hours=1))
    assert rig.get(3, "1-0:1.8.0.255", 2) == Uint32(power)  # nothing consumed while off


def test_logs_record_commands_and_refusals(rig: Rig) -> None:
    rig.results(ECS39A, set_(1, MPAN, 2, OctetString(b"3")))
    assert rig.esme.event_log()[-1][1:] == (EVENT_COMMAND_OK, ECS39A.to_bytes(2, "big"))
    rig.counter += 1
    gs = GeneralSigning(
        Cra.COMMAND,
        rig.counter,
        SUPPLIER,
        ESME,
        OtherInformation(ECS39A),
        encode_payload(AccessRequest(0, (), ())),
    )
    raw = bytearray(protect(rig.ctx, gs, signed=False, maced=True).encode())
    raw[-1] ^= 1  # break the MAC
    assert rig.esme.receive(bytes(raw)).refused is Refusal.BAD_MAC
    assert rig.esme.security_log()[-1][1] == SECURITY_AUTHENTICATION
    assert rig.results(0x24, act(7, "0-0:99.98.0.255", 1, Int8(0))) == [0]  # ECS15a clear
    assert [e[1] for e in rig.esme.event_log()] == [EVENT_COMMAND_OK]  # only the clear itself


def test_unsupported_requests_get_errors_not_crashes(rig: Rig) -> None:
    assert ECS17A in ESME_DLMS_CODES
    assert rig.results(ECS17A, get(3, "1-0:2.8.0.255", 2)) == [Result.OBJECT_UNDEFINED]
    swsel = RequestSpec(RequestKind.SET_WITH_SELECTION, 1, obis_bytes(MPAN), 2, 1, NULL)
    assert rig.results(ECS39A, (swsel, NULL)) == [Result.SCOPE_OF_ACCESS_VIOLATED]
    rig.counter += 1
    gs = GeneralSigning(
        Cra.COMMAND, rig.counter, SUPPLIER, ESME, OtherInformation(ECS39A), bytes.fromhex("0500")
    )
    reply = rig.esme.receive(protect(rig.ctx, gs, signed=False, maced=True).encode())
    assert reply.refused is None and reply.response is None  # not DLMS: no response


def test_generic_server_without_a_device() -> None:
    """The CHF reuses the server: class 104 methods go to the hooks the device registers."""
    profile = load_profile(ROOT / "devices" / "chf.toml")
    server = CosemServer(profile)
    log: list[bytes] = []

    def register(cmd, p):  # type: ignore[no-untyped-def]
        log.append(p.items[0].value)
        return Result.SUCCESS, None

    server.on_method(104, "0-0:30.3.0.255", 1, register)
    entry = Structure((OctetString(ESME), Enum(1), OctetString(b"\x00" * 16), Enum(0)))
    request = AccessRequest(
        gbcs_invoke_id(5),
        (
            RequestSpec(RequestKind.ACTION, 104, obis_bytes("0-0:30.3.0.255"), 1),
            RequestSpec(RequestKind.SET, 104, obis_bytes("0-0:30.3.0.255"), 3),
        ),
        (entry, Uint16(60)),
    )
    done = server.process(request, None, START)
    assert [r.result for r in done.response.results] == [0, 0] and log == [ESME]
    assert server.read(104, "0-0:30.3.0.255", 3) == Uint16(60)
    assert server.read(104, "0-0:30.3.0.255", 2) == Boolean(False)


def test_memory_per_instance_stays_small(rig: Rig) -> None:
    Esme(ESME, rig.esme.keys, rig.clock)  # warm shared tables
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        meters = [Esme(ESME, rig.esme.keys, rig.clock) for _ in range(200)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(meters)
    assert per < 2048  # keys shared here; a 50 000-meter fleet needs well under 40 KB each


# --- RTDS ------------------------------------------------------------------------------------


def _dlms_esme(use_case: str) -> bool:
    return use_case.startswith("ECS")


@pytest.fixture(scope="module")
def esme_corpus(rtds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The RTDS folders whose commands target an ESME (linked, not copied), so that the
    coverage run does not depend on the other device simulators."""
    root = tmp_path_factory.mktemp("rtds-esme")
    for s in scenarios(rtds_dir):
        cmd = decode_message(bytes.fromhex(s.command.read_text().strip()))
        kind = RTDS_DEVICES.get(cmd.frame.gs.business_target)
        if kind is None or kind.value != "ESME":
            continue
        folder = root / s.command.parent.name
        folder.mkdir(exist_ok=True)
        for f in s.command.parent.glob("*.HEX"):
            link = folder / f.name
            if not link.exists():
                link.symlink_to(f)
    return root


def test_rtds_coverage_of_the_esme(esme_corpus: Path) -> None:
    report = run_coverage(esme_corpus)["ESME"]
    assert len(report.total) == 91
    assert len(report.covered) >= 51
    dlms_failures = [f for f in report.failures if _dlms_esme(f.use_case)]
    # Every DLMS failure left is an RTDS error scenario: its command equals the success
    # command, the meter failed for a hardware reason (see the fault-injected run below).
    assert all("ERROR" in f.file for f in dlms_failures), dlms_failures


def _esme_scenarios(root: Path) -> Iterator[tuple[str, str, DecodedMessage, Path | None]]:
    for s in scenarios(root):
        cmd = decode_message(bytes.fromhex(s.command.read_text().strip()))
        kind = RTDS_DEVICES.get(cmd.frame.gs.business_target)
        if kind is not None and kind.value == "ESME" and isinstance(cmd.payload, AccessRequest):
            yield s.use_case, s.name, cmd, s.response


def test_rtds_error_scenarios_with_the_fault_injected(rtds_dir: Path) -> None:
    """Every DLMS ESME scenario, error ones with their recorded fault injected: same structure,
    and the first failing entry carries the recorded result code."""
    rig = make_rig()
    problems: list[str] = []
    use_cases: set[str] = set()
    for use_case, name, cmd, response in _esme_scenarios(rtds_dir):
        use_cases.add(use_case)
        rig.clock.set(COVERAGE_START)
        device = rig.factories[cmd.frame.gs.business_target]()
        want = decode_message(bytes.fromhex(response.read_text().strip())) if response else None
        failed = None
        if want is not None and isinstance(want.payload, AccessResponse):
            failed = inject_recorded_failure(device.cosem, cmd.payload, want.payload)  # type: ignore[attr-defined, arg-type]
        reply = device.receive(reprotect(rig, cmd))
        if want is None:
            continue
        got = decode_message(reply.response) if reply.response else None
        if got is None:
            problems.append(f"{use_case} {name}: no response")
            continue
        a, b = payload_shape(got.payload), payload_shape(want.payload)
        if not shapes_match(a, b):
            problems.append(f"{use_case} {name}: {first_difference(a, b)}")
        if failed is not None:
            i = cmd.payload.specs.index(failed)  # type: ignore[union-attr]
            g, w = got.payload.results[i], want.payload.results[i]  # type: ignore[union-attr]
            if g.result != w.result:
                problems.append(f"{use_case} {name}: result {g.result} != {w.result}")
    assert problems == []
    assert len(use_cases) == 78


def test_rtds_future_dated_alerts(rtds_dir: Path) -> None:
    """The 8F66 alerts RTDS records for future-dated ESME commands, one per activation."""
    rig = make_rig()
    checked = 0
    for use_case, name, cmd, _ in _esme_scenarios(rtds_dir):
        if not name.startswith("FUTURE_DATED") or "ERROR" in name:
            continue
        wants = sorted(rtds_dir.glob(f"*_{use_case}/*_8F66_{name}_ALERT_*_GBCS.HEX"))
        assert wants, name
        rig.clock.set(COVERAGE_START)
        device = rig.factories[cmd.frame.gs.business_target]()
        device.receive(reprotect(rig, cmd))
        due = device.next_due()
        assert due is not None
        rig.clock.set(due)
        got = {decode_message(a).payload.body.items[2]: decode_message(a) for a in device.run_due()}  # type: ignore[union-attr]
        for path in wants:
            want = decode_message(bytes.fromhex(path.read_text().strip()))
            executed = want.payload.body.items[2]  # type: ignore[union-attr]
            alert = got.get(executed)
            assert alert is not None, path.name
            assert alert.frame.gs.message_code == want.frame.gs.message_code
            assert alert.frame.shape is want.frame.shape
            assert verify_signature(rig.ctx, alert.frame.gs) is Check.VERIFIED
            assert shapes_match(payload_shape(alert.payload), payload_shape(want.payload))
            assert isinstance(alert.payload, DataNotification)
            checked += 1
    assert checked >= 24
