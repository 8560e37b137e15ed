"""GSME and GPF: the GBZ/ZCL server, the gas meter behind it, and RTDS coverage."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gbhil.devices import Refusal
from gbhil.devices.coverage import (
    COVERAGE_START,
    RTDS_DEVICES,
    RTDS_PARTIES,
    SteppedClock,
    _check_reply,
    make_rig,
    reprotect,
    run_coverage,
    scenarios,
)
from gbhil.devices.gpf import CLOCK_GPF_TIME, CLOCK_GSME_TIME, Gpf
from gbhil.devices.gsme import (
    A_ACCUMULATED_DEBT,
    A_CREDIT_REMAINING,
    A_EC_LIMIT,
    A_PAYMENT_CONTROL,
    A_SITE_ID,
    A_SUPPLY_STATUS,
    ALERT_POWER_SUPPLY_LOSS,
    DAY,
    L_DEBT_LOG,
    L_TOP_UP_LOG,
    LOG_GENERAL,
    LOG_SECURITY,
    METERING,
    NETWORK_DATA_SAMPLE_ID,
    NO_HISTORY,
    PREPAYMENT,
    SUPPLY_ARMED,
    SUPPLY_OFF,
    SUPPLY_ON,
    TOP_UP_ACCEPTED,
    TOP_UP_REJECTED_DUPLICATE,
    TOP_UP_REJECTED_INVALID,
    GasMeterData,
    Gsme,
    commissioning_snapshot,
    daily_record,
    seed_history,
)
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.devices.zcl_server import (
    ALERT_FUTURE_DATED_SUCCESS,
    FAULT_ATTRIBUTE,
    MESSAGE_CODE_FUTURE_DATED_GBZ,
    NOT_PROCESSED_COMMAND_ID,
    PROFILE_DIR,
    STATUS_ABORT,
    STATUS_ACTION_DENIED,
    STATUS_FAILURE,
    STATUS_INVALID_DATA_TYPE,
    STATUS_INVALID_VALUE,
    STATUS_NOT_FOUND,
    STATUS_READ_ONLY,
    STATUS_SUCCESS,
    STATUS_UNSUPPORTED_ATTRIBUTE,
    Fault,
    Layout,
    ZclError,
    faults_from_response,
    gbz_seconds,
    load_profile,
    parse_profile,
)
from gbhil.gbcs import gbz, zcl
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation, Shape
from gbhil.gbcs.message import decode_message, decrypt_payload, encode_payload
from gbhil.gbcs.security import Check, SecurityContext, protect, verify_signature
from gbhil.gbcs.usecases import MESSAGE_CODES
from gbhil.gbcs.utrn import VALUE_CLASS_POUNDS, build_utrn, parse_utrn, utrn_shared_secret
from gbhil.gbcs.zcl import ZclHeader, ZclValue
from gbhil.smki import generate_pki

GSME_EUI = bytes.fromhex("00DB1234567890A1")
GPF_EUI = bytes.fromhex("00DB1234567890A3")
PPMID_EUI = bytes.fromhex("00DB1234567890A4")
SUPPLIER = RTDS_PARTIES[Role.SUPPLIER]
ACB = RTDS_PARTIES[Role.ACB]
NO = RTDS_PARTIES[Role.NETWORK_OPERATOR]
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

# message codes used below
GCS02, GCS03, GCS05, GCS07, GCS13A = 0x006C, 0x006D, 0x006F, 0x0071, 0x0074
GCS16B, GCS21E, GCS32, GCS39, GCS41 = 0x0096, 0x009E, 0x0081, 0x0085, 0x0087
GCS17, GCS15E, GCS40A, GCS04, CS10A, CS11 = 0x0078, 0x00C5, 0x0086, 0x006E, 0x0014, 0x0015
GCS01A, GCS46, GCS60, CS01B, PCS01 = 0x006B, 0x0089, 0x008D, 0x0097, 0x009B
GCS15D, GCS18, GCS31 = 0x00C4, 0x0079, 0x0080

C2S_CLUSTER, S2C_CLUSTER, C2S_GLOBAL = 0x01, 0x09, 0x00


# ---------------------------------------------------------------------------
# rig
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    orgs = {"supplier": SUPPLIER.hex(), "acb": ACB.hex(), "network_operator": NO.hex()}
    devices = {GSME_EUI: "GSME", GPF_EUI: "GPF", PPMID_EUI: "PPMID"}
    return generate_pki(None, organisations=orgs, devices=devices, seed=7)


class Rig:
    """A GSME and a GPF on one clock, and the remote parties' keys to talk to them."""

    def __init__(self, pki: Any) -> None:
        self.store = pki.keystore
        self.clock = SteppedClock(START)
        self.ctx = SecurityContext(self.store, ACB)
        parties = {Role.SUPPLIER: SUPPLIER, Role.ACB: ACB}
        gsme_keys = DeviceKeys.from_keystore(GSME_EUI, self.store, parties)
        gsme_keys.peers_ka = {PPMID_EUI: self.store.ka_public(PPMID_EUI)}
        self.gsme = Gsme(GSME_EUI, gsme_keys, self.clock)
        self.gpf = Gpf(GPF_EUI, DeviceKeys.from_keystore(GPF_EUI, self.store, parties), self.clock)
        self.counter = 0x1000

    def next_counter(self) -> int:
        self.counter += 1
        return self.counter

    def command(
        self,
        code: int,
        components: list[gbz.GbzComponent],
        *,
        target: bytes = GSME_EUI,
        originator: bytes = SUPPLIER,
        counter: int | None = None,
        other: OtherInformation | None = None,
    ) -> bytes:
        gs = GeneralSigning(
            Cra.COMMAND,
            self.next_counter() if counter is None else counter,
            originator,
            target,
            other or OtherInformation(code),
            encode_payload(gbz.GbzMessage(tuple(components))),
        )
        signed = MESSAGE_CODES[code].command_protection == "MAC+SIG"
        return protect(self.ctx, gs, signed=signed, maced=True).encode()

    def send(self, code: int, *components: gbz.GbzComponent, **kw: Any) -> gbz.GbzMessage:
        """Send a command to the GSME (or ``target``) and return its decoded GBZ answer."""
        device = self.gpf if kw.get("target") == GPF_EUI else self.gsme
        reply = device.receive(self.command(code, list(components), **kw))
        assert reply.refused is None, reply.reason
        assert reply.response is not None
        msg = decode_message(reply.response)
        assert isinstance(msg.payload, gbz.GbzMessage)
        return msg.payload

    def advance(self, delta: timedelta) -> None:
        self.clock.set(self.clock.now() + delta)


@pytest.fixture()
def rig(pki: Any) -> Rig:
    return Rig(pki)


def cluster_cmd(cluster: int, fc: int, cmd: int, payload: bytes, seq: int = 0, **kw: Any) -> Any:
    return gbz.PlainComponent(cluster, ZclHeader(fc, seq, cmd), zcl.RawPayload(payload), **kw)


def read_attrs(cluster: int, *ids: int, seq: int = 0) -> gbz.PlainComponent:
    return gbz.PlainComponent(cluster, ZclHeader(C2S_GLOBAL, seq, 0x00), zcl.ReadAttributes(ids))


def write_attrs(cluster: int, records: list[tuple[int, ZclValue]], seq: int = 0) -> Any:
    payload = zcl.WriteAttributes(tuple(zcl.AttributeValue(a, v) for a, v in records))
    return gbz.PlainComponent(cluster, ZclHeader(C2S_GLOBAL, seq, 0x02), payload)


def u32(v: int) -> bytes:
    return v.to_bytes(4, "little", signed=v < 0)


def dr(c: gbz.GbzComponent) -> zcl.DefaultResponse:
    assert isinstance(c, gbz.PlainComponent) and isinstance(c.payload, zcl.DefaultResponse)
    return c.payload


def raw(c: gbz.GbzComponent) -> bytes:
    assert isinstance(c, gbz.PlainComponent) and isinstance(c.payload, zcl.RawPayload)
    return c.payload.data


def change_payment_mode(config: int, at: int = 0, cut_off: int = -1) -> gbz.PlainComponent:
    return cluster_cmd(0x0705, C2S_CLUSTER, 0x06, u32(0) + u32(1) + u32(at)
                       + config.to_bytes(2, "little") + u32(cut_off))  # fmt: skip


PREPAY_MODE, CREDIT_MODE = 0x0097, 0x0094


# ---------------------------------------------------------------------------
# profiles and the attribute store
# ---------------------------------------------------------------------------


def test_profiles_are_parsed_once_and_shared(rig: Rig, pki: Any) -> None:
    other = Gsme(GSME_EUI, rig.gsme.keys, rig.clock)
    assert other.profile_data is rig.gsme.profile_data
    assert load_profile(PROFILE_DIR / "gsme.toml") is rig.gsme.profile_data
    assert rig.gsme.data.attrs.profile is other.data.attrs.profile


def test_attribute_store_is_copy_on_write(rig: Rig) -> None:
    a = rig.gsme.data.attrs
    b = a.copy()
    b.set(METERING, A_SITE_ID, b"1234567")
    assert a.bytes(METERING, A_SITE_ID) == b""
    assert b.bytes(METERING, A_SITE_ID) == b"1234567"
    assert list(a.changed()) == []


def test_profile_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="unknown ZCL type"):
        parse_profile({"attribute": [{"cluster": 0, "id": 0, "type": "nonsense"}]}, "x")
    with pytest.raises(ValueError, match="listed twice"):
        row = {"cluster": 0, "id": 0, "type": "uint8", "value": 1}
        parse_profile({"attribute": [row, row]}, "x")
    with pytest.raises(ValueError, match="does not suit"):
        parse_profile({"attribute": [{"cluster": 0, "id": 0, "type": "uint8", "value": "a"}]}, "x")


def test_layout_round_trip_and_malformed() -> None:
    layout = Layout((("a", "u8"), ("b", "i32"), ("s", "octstr")), (("x", "u16"),))
    data = layout.build({"a": 1, "b": -2, "s": b"hi"}, [{"x": 7}, {"x": 8}])
    assert layout.parse(data) == ({"a": 1, "b": -2, "s": b"hi"}, [{"x": 7}, {"x": 8}])
    with pytest.raises(ZclError) as e:
        layout.parse(data[:3])
    assert e.value.status == 0x80
    with pytest.raises(ZclError):
        layout.parse(data + b"\x01")  # half a row


# ---------------------------------------------------------------------------
# Read / Write Attributes
# ---------------------------------------------------------------------------


def test_read_attributes_with_unsupported_attribute(rig: Rig) -> None:
    resp = rig.send(GCS21E, read_attrs(0x0000, 0x0004, 0x0005, 0x7777))
    (comp,) = resp.components
    assert isinstance(comp, gbz.PlainComponent)
    assert comp.header.frame_control == 0x08 and comp.header.command_id == 0x01
    recs = comp.payload.records  # type: ignore[union-attr]
    assert recs[0].value == ZclValue(0x42, b"gbhil")
    assert recs[1].status == STATUS_SUCCESS
    assert recs[2] == zcl.ReadAttributeRecord(0x7777, STATUS_UNSUPPORTED_ATTRIBUTE)


@pytest.fixture()
def writable_gsme(rig: Rig) -> Gsme:
    """A GSME whose profile makes two Basic attributes writable (GBCS itself writes none)."""
    data = tomllib.loads((PROFILE_DIR / "gsme.toml").read_text())
    for row in data["attribute"]:
        if (row["cluster"], row["id"]) in ((0, 0x0006), (0, 0x4000)):
            row["access"] = "write"
    profile = parse_profile(data, "gsme-writable")
    rig.gsme = Gsme(GSME_EUI, rig.gsme.keys, rig.clock, profile)
    return rig.gsme


def test_write_attributes_success_and_errors(rig: Rig, writable_gsme: Gsme) -> None:
    ok = rig.send(GCS41, write_attrs(0, [(0x0006, ZclValue(0x42, b"20270101"))]))
    assert ok.components[0].payload == zcl.WriteAttributesResponse(  # type: ignore[union-attr]
        (zcl.AttributeStatus(STATUS_SUCCESS),)
    )
    assert writable_gsme.data.attrs.bytes(0, 0x0006) == b"20270101"
    cases = [
        (0x0004, ZclValue(0x42, b"x"), STATUS_READ_ONLY),
        (0x0006, ZclValue(0x20, 1), STATUS_INVALID_DATA_TYPE),
        (0x7777, ZclValue(0x20, 1), STATUS_UNSUPPORTED_ATTRIBUTE),
    ]
    for attr, value, status in cases:
        resp = rig.send(GCS41, write_attrs(0, [(attr, value)]))
        assert resp.components[0].payload == zcl.WriteAttributesResponse(  # type: ignore[union-attr]
            (zcl.AttributeStatus(status, attr),)
        )
    assert writable_gsme.data.attrs.bytes(0, 0x0006) == b"20270101"


def test_a_failed_component_rolls_back_the_whole_message(rig: Rig, writable_gsme: Gsme) -> None:
    resp = rig.send(
        GCS41,
        write_attrs(0, [(0x0006, ZclValue(0x42, b"changed"))], seq=0),
        write_attrs(0, [(0x0004, ZclValue(0x42, b"nope"))], seq=1),
        read_attrs(0, 0x0006, seq=2),
    )
    first, second, third = resp.components
    assert dr(first) == zcl.DefaultResponse(0x02, STATUS_ABORT)  # valid, not applied
    assert second.payload.records[0].status == STATUS_READ_ONLY  # type: ignore[union-attr]
    assert dr(third) == zcl.DefaultResponse(NOT_PROCESSED_COMMAND_ID, STATUS_FAILURE)
    assert [c.header.sequence for c in resp.components] == [0, 1, 2]
    assert writable_gsme.data.attrs.bytes(0, 0x0006) == b"20260101"


# ---------------------------------------------------------------------------
# cluster-specific commands
# ---------------------------------------------------------------------------


def test_change_payment_mode_immediate(rig: Rig) -> None:
    resp = rig.send(GCS03, change_payment_mode(PREPAY_MODE, cut_off=-5000))
    (comp,) = resp.components
    assert comp.header.frame_control & 0x0B == 0x09 and comp.header.command_id == 0x02
    body = raw(comp)
    assert len(body) == 13 and int.from_bytes(body[5:9], "little") == 500000  # EC limit
    attrs = rig.gsme.data.attrs
    assert attrs.int(PREPAYMENT, A_PAYMENT_CONTROL) == PREPAY_MODE
    assert attrs.int(PREPAYMENT, 0x0040) == -5000
    assert rig.gsme.data.snapshots[0].cause == 0x2000  # change of mode snapshot


def test_invalid_payment_configuration_is_refused(rig: Rig) -> None:
    resp = rig.send(GCS03, change_payment_mode(0xF000))
    assert dr(resp.components[0]).status != STATUS_SUCCESS
    assert rig.gsme.data.attrs.int(PREPAYMENT, A_PAYMENT_CONTROL) == CREDIT_MODE


def test_credit_adjustment_and_change_debt(rig: Rig) -> None:
    before = rig.gsme.data.credit()
    adj = cluster_cmd(0x0705, C2S_CLUSTER, 0x05, u32(1) + u32(0) + b"\x00" + u32(12345))
    assert dr(rig.send(GCS40A, adj).components[0]).status == STATUS_SUCCESS
    assert rig.gsme.data.credit() == before + 12345
    debt = (u32(1) + b"\x00" + u32(50000) + b"\x00\x01" + u32(0) + b"\x00\x00" + b"\x01"
            + u32(1000) + b"\x00\x00")  # fmt: skip
    resp = rig.send(GCS04, cluster_cmd(0x0705, C2S_CLUSTER, 0x02, debt))
    assert dr(resp.components[0]).status == STATUS_SUCCESS
    assert rig.gsme.data.debts() == (50000, 0, 0)
    too_much = cluster_cmd(0x0705, C2S_CLUSTER, 0x05, u32(1) + u32(0) + b"\x01" + u32(2**31 - 1))
    assert dr(rig.send(GCS40A, too_much).components[0]).status == STATUS_INVALID_VALUE
    assert rig.gsme.data.credit() == before + 12345


def test_display_message_and_mprn(rig: Rig) -> None:
    msg = cluster_cmd(0x0703, S2C_CLUSTER, 0x00, u32(9) + b"\x00" + u32(0) + b"\xff\xff\x05Hello")
    resp = rig.send(GCS07, msg)
    assert resp.components[0].header.frame_control == 0x00  # answer goes client -> server
    assert rig.gsme.data.message == (9, 0, 0, 0xFFFF, b"Hello")
    site = cluster_cmd(0x0708, S2C_CLUSTER, 0x03, u32(1) + u32(0) + u32(0) + b"\x071234567")
    assert dr(rig.send(GCS41, site).components[0]).status == STATUS_SUCCESS
    read = rig.send(GCS46, read_attrs(METERING, A_SITE_ID))
    assert read.components[0].payload.records[0].value == ZclValue(0x41, b"1234567")  # type: ignore[union-attr]
    bad = cluster_cmd(0x0708, S2C_CLUSTER, 0x03, u32(1) + u32(0) + u32(0) + b"\x03abc")
    assert dr(rig.send(GCS41, bad).components[0]).status == STATUS_INVALID_VALUE


def test_calendar_publish_and_read_back(rig: Rig) -> None:
    cal_id = 0x4242
    head = u32(0) + u32(1) + u32(cal_id)
    publish = [
        cluster_cmd(0x0707, S2C_CLUSTER, 0x00, head + u32(0) + b"\x00\x00\x00\x01\x01\x02", 0),
        cluster_cmd(0x0707, S2C_CLUSTER, 0x01, head + b"\x01\x02\x00\x01\x00"
                    + (0).to_bytes(2, "little") + b"\x01" + (420).to_bytes(2, "little") + b"\x02",
                    1),
        cluster_cmd(0x0707, S2C_CLUSTER, 0x01, head + b"\x02\x01\x00\x01\x00\x00\x00\x01", 2),
        cluster_cmd(0x0707, S2C_CLUSTER, 0x02, head + b"\x01" + bytes((1,) * 5 + (2, 2)), 3),
        cluster_cmd(0x0707, S2C_CLUSTER, 0x03, head + b"\x00\x01" + bytes.fromhex("FF0101FF01"), 4),
    ]  # fmt: skip
    resp = rig.send(GCS01A, *publish)
    assert [dr(c).status for c in resp.components] == [STATUS_SUCCESS] * 5
    get_days = cluster_cmd(0x0707, C2S_CLUSTER, 0x01, u32(0) + u32(0xFFFFFFFF) + b"\x01\x00")
    days = rig.send(0x009F, get_days).components
    assert [c.header.command_id for c in days] == [0x01, 0x01]  # one Publish Day Profile each
    assert raw(days[0])[12:13] == b"\x01" and raw(days[0]).endswith(b"\xa4\x01\x02")
    # a week that names an undefined day profile fails, and nothing of the message stays
    bad = cluster_cmd(0x0707, S2C_CLUSTER, 0x02, head + b"\x02" + bytes((9,) * 7), 0)
    assert dr(rig.send(GCS01A, bad).components[0]).status == STATUS_INVALID_VALUE
    assert 2 not in rig.gsme.data.calendars[cal_id].weeks


def test_snapshot_and_sampled_data_reads(rig: Rig) -> None:
    now = gbz_seconds(START)
    prof = cluster_cmd(0x0702, C2S_CLUSTER, 0x08, b"\x00\x00" + u32(now - 86400) + b"\x00"
                       + (48).to_bytes(2, "little"))  # fmt: skip
    resp = rig.send(GCS17, prof)
    (comp,) = resp.components
    assert isinstance(comp, gbz.EncryptedComponent) and comp.header.command_id == 0x07
    plain = decrypt_payload(rig.ctx, decode_message(_last_response(rig)))[0].plaintext
    assert plain is not None
    count = int.from_bytes(plain[9:11], "little")
    assert count == 48 and len(plain) == 11 + 3 * 48
    assert sum(int.from_bytes(plain[11 + 3 * i : 14 + 3 * i], "little") for i in range(48)) > 0
    old = cluster_cmd(0x0702, C2S_CLUSTER, 0x08, b"\x00\x00" + u32(1000) + b"\x00\x10\x00")
    assert dr(rig.send(GCS17, old).components[0]).status == STATUS_NOT_FOUND


def _last_response(rig: Rig) -> bytes:
    """Resend the last GCS17 style read and keep the raw reply (decryption needs the header)."""
    now = gbz_seconds(START)
    prof = cluster_cmd(0x0702, C2S_CLUSTER, 0x08, b"\x00\x00" + u32(now - 86400) + b"\x00"
                       + (48).to_bytes(2, "little"))  # fmt: skip
    reply = rig.gsme.receive(rig.command(GCS17, [prof]))
    assert reply.response is not None
    return reply.response


def test_event_log_read_and_clear(rig: Rig) -> None:
    now = gbz_seconds(START)
    get = cluster_cmd(0x0709, C2S_CLUSTER, 0x00, b"\x13\x00\x00" + u32(0) + u32(now + 10)
                      + b"\x00\x00\x00")  # fmt: skip
    body = raw(rig.send(CS10A, get).components[0])
    assert int.from_bytes(body[:2], "little") == 1  # the commissioning event
    clear = cluster_cmd(0x0709, C2S_CLUSTER, 0x01, b"\x03")
    assert raw(rig.send(CS11, clear).components[0]) == b"\x08"
    assert any(e.log_id == LOG_SECURITY and e.event_id == 0x8F52 for e in rig.gsme.data.events)
    assert not [e for e in rig.gsme.data.events if e.log_id == LOG_GENERAL]


def test_unsupported_command_stops_the_message(rig: Rig) -> None:
    resp = rig.send(GCS07, cluster_cmd(0x0703, S2C_CLUSTER, 0x7F, b""), read_attrs(0, 4, seq=1))
    assert dr(resp.components[0]).status == 0x81
    assert dr(resp.components[1]).command_id == NOT_PROCESSED_COMMAND_ID


# ---------------------------------------------------------------------------
# encrypted responses
# ---------------------------------------------------------------------------


def test_encrypted_read_decrypts_with_the_supplier_key(rig: Rig) -> None:
    reply = rig.gsme.receive(rig.command(GCS13A, [read_attrs(METERING, 0x0302, 0x0301, 0x0300, 0)]))
    assert reply.response is not None
    msg = decode_message(reply.response)
    assert msg.frame.gs.date_time is not None and msg.frame.gs.date_time[-1] == 0x00
    (comp,) = msg.payload.components  # type: ignore[union-attr]
    assert isinstance(comp, gbz.EncryptedComponent) and comp.header.frame_control == 0x08
    (dec,) = decrypt_payload(rig.ctx, msg)
    assert dec.ok and dec.plaintext is not None
    records = gbz.decode_decrypted_zcl(comp, dec.plaintext).records  # type: ignore[union-attr]
    assert records[0].value == ZclValue(0x22, 1000)
    assert records[3].value is not None and records[3].value.type_id == 0x25
    assert records[3].value.value == rig.gsme.data.register_at(gbz_seconds(START))
    # a different party's key does not open it
    wrong = replace(msg.frame.gs, business_target=NO)
    assert not decrypt_payload(
        rig.ctx, replace(msg, frame=replace(msg.frame, general_signing=wrong))
    )[0].ok


# ---------------------------------------------------------------------------
# future-dated commands
# ---------------------------------------------------------------------------


def test_future_dated_payment_mode_runs_later_and_alerts(rig: Rig) -> None:
    at = gbz_seconds(START + timedelta(days=3))
    reply = rig.gsme.receive(rig.command(GCS03, [change_payment_mode(PREPAY_MODE, at)]))
    assert reply.response is not None and not reply.alerts
    assert rig.gsme.data.attrs.int(PREPAYMENT, A_PAYMENT_CONTROL) == CREDIT_MODE
    assert rig.gsme.run_due() == []
    rig.advance(timedelta(days=3))
    (alert,) = rig.gsme.run_due()
    msg = decode_message(alert)
    assert msg.frame.shape is Shape.SIGNED
    assert verify_signature(rig.ctx, msg.frame.gs) is Check.VERIFIED
    assert msg.frame.gs.message_code == MESSAGE_CODE_FUTURE_DATED_GBZ
    a = msg.payload.alert  # type: ignore[union-attr]
    assert a is not None and a.code == ALERT_FUTURE_DATED_SUCCESS and a.timestamp == at
    assert a.body == gbz.FutureDatedAlertBody(GCS03, rig.counter, 0x0705, 0x01, 0x06)
    assert rig.gsme.data.attrs.int(PREPAYMENT, A_PAYMENT_CONTROL) == PREPAY_MODE


def test_future_dated_cancellation_and_gbz_from_datetime(rig: Rig) -> None:
    at = gbz_seconds(START + timedelta(days=1))
    rig.send(GCS03, change_payment_mode(PREPAY_MODE, at))
    low = cluster_cmd(0x0705, C2S_CLUSTER, 0x09, u32(777), from_datetime=at)
    rig.send(GCS05, low)
    assert len(rig.gsme.pending()) == 2
    rig.send(GCS03, change_payment_mode(PREPAY_MODE, 0xFFFFFFFF))  # cancel
    assert [d.label for d in rig.gsme.pending()] == ["low-credit"]
    rig.advance(timedelta(days=2))
    assert len(rig.gsme.run_due()) == 1
    assert rig.gsme.data.attrs.int(PREPAYMENT, 0x0031) == 777
    assert rig.gsme.data.attrs.int(PREPAYMENT, A_PAYMENT_CONTROL) == CREDIT_MODE


# ---------------------------------------------------------------------------
# top ups (UTRN)
# ---------------------------------------------------------------------------


def _top_up(code: bytes, originator: int = 0) -> gbz.PlainComponent:
    return cluster_cmd(0x0705, C2S_CLUSTER, 0x04, bytes((originator, len(code))) + code)


def _utrn(rig: Rig, counter: int, pence: int) -> bytes:
    z = utrn_shared_secret(rig.store, SUPPLIER, GSME_EUI)
    return build_utrn(z, SUPPLIER, GSME_EUI, counter, pence).encode()


def _top_up_result(resp: gbz.GbzMessage) -> tuple[int, int, int]:
    body = raw(resp.components[0])
    signed = lambda b: int.from_bytes(b, "little", signed=True)  # noqa: E731
    return body[0], signed(body[1:5]), signed(body[6:10])


def test_utrn_top_up_accepted(rig: Rig) -> None:
    counter = 0x0000000300000000
    before = rig.gsme.data.credit()
    resp = rig.send(CS01B, _top_up(_utrn(rig, counter, 1250)), counter=counter)
    result, value, credit = _top_up_result(resp)
    assert (result, value) == (TOP_UP_ACCEPTED, 1250 * 1000)
    assert credit == before + 1_250_000 == rig.gsme.data.credit()
    assert rig.gsme.data.top_ups[0].amount == 1_250_000


def test_utrn_with_bad_check_digit_is_rejected(rig: Rig) -> None:
    counter = 0x0000000400000000
    code = bytearray(_utrn(rig, counter, 500))
    code[-1] = ord("0") + (code[-1] - ord("0") + 1) % 10
    before = rig.gsme.data.credit()
    resp = rig.send(CS01B, _top_up(bytes(code)), counter=counter)
    assert _top_up_result(resp) == (TOP_UP_REJECTED_INVALID, -1, -1)
    assert rig.gsme.data.credit() == before
    assert rig.gsme.data.events[0].event_id == 0x8F63


def test_utrn_replay_is_rejected(rig: Rig) -> None:
    counter = 0x0000000500000000
    code = _utrn(rig, counter, 300)
    raw_cmd = rig.command(CS01B, [_top_up(code)], counter=counter)
    assert rig.gsme.receive(raw_cmd).response is not None
    credit = rig.gsme.data.credit()
    assert rig.gsme.receive(raw_cmd).refused is Refusal.REPLAY  # same message again
    # typed in at the PPMID: the GSME knows the UTRN was used
    ppmid = {"originator": PPMID_EUI}
    resp = rig.send(PCS01, _top_up(code, 2), **ppmid)
    assert _top_up_result(resp)[0] == TOP_UP_REJECTED_DUPLICATE
    assert rig.gsme.data.credit() == credit


# ---------------------------------------------------------------------------
# the valve
# ---------------------------------------------------------------------------


def _change_supply(proposed: int) -> gbz.PlainComponent:
    payload = u32(0) + u32(1) + u32(0) + u32(0) + bytes((proposed, 0x01))
    return cluster_cmd(0x0702, C2S_CLUSTER, 0x0B, payload)


def test_valve_close_arm_and_local_open(rig: Rig) -> None:
    g = rig.gsme
    resp = rig.send(GCS32, _change_supply(SUPPLY_OFF))
    assert (
        resp.components[0].header.command_id == 0x0C and raw(resp.components[0])[-1] == SUPPLY_OFF
    )
    assert g.valve == "off"
    closed_at = g.data.register_at(gbz_seconds(rig.clock.now()))
    rig.advance(timedelta(hours=6))
    assert g.data.register_at(gbz_seconds(rig.clock.now())) == closed_at  # no gas flows
    rig.send(GCS39, _change_supply(SUPPLY_ARMED))
    assert g.data.attrs.int(METERING, A_SUPPLY_STATUS) == SUPPLY_ARMED
    assert g.press_button() and g.valve == "on"
    rig.advance(timedelta(hours=6))
    assert g.data.register_at(gbz_seconds(rig.clock.now())) > closed_at
    denied = rig.send(GCS32, _change_supply(SUPPLY_ON))
    assert dr(denied.components[0]).status == STATUS_ACTION_DENIED


def test_registers_advance_with_time(rig: Rig) -> None:
    first = rig.gsme.data.register_at(gbz_seconds(START))
    rig.advance(timedelta(days=2))
    rig.gsme.advance(rig.clock.now())
    later = rig.gsme.data.register_at(gbz_seconds(rig.clock.now()))
    assert 1000 < later - first < 20000  # a few m3 of gas in two days
    assert rig.gsme.data.tiers[0] > 0


# ---------------------------------------------------------------------------
# battery, power and alerts
# ---------------------------------------------------------------------------


def test_wake_sleep_cycle_and_power_loss_alert(rig: Rig) -> None:
    g = rig.gsme
    g.sleep()
    assert not g.awake
    wake_at = g.next_wake(rig.clock.now())
    assert timedelta(0) < wake_at - rig.clock.now() <= g.wake_interval
    rig.clock.set(wake_at)
    assert g.wake() == [] and g.awake and not g.should_sleep()
    rig.advance(g.awake_window)
    assert g.should_sleep()
    (alert,) = g.lose_power()
    msg = decode_message(alert)
    assert msg.frame.gs.message_code == 0x1000 and msg.frame.shape is Shape.SIGNED
    assert msg.payload.alert == gbz.GbzAlert(ALERT_POWER_SUPPLY_LOSS, gbz_seconds(rig.clock.now()))  # type: ignore[union-attr]
    assert g.receive(rig.command(GCS21E, [read_attrs(0, 4)])).refused is Refusal.POWERED_OFF


def test_refusals_land_in_the_security_log(rig: Rig) -> None:
    raw_cmd = bytearray(rig.command(GCS21E, [read_attrs(0, 4)]))
    raw_cmd[-1] ^= 0x01
    assert rig.gsme.receive(bytes(raw_cmd)).refused is Refusal.BAD_MAC
    assert rig.gsme.data.events[0].log_id == LOG_SECURITY


# ---------------------------------------------------------------------------
# GPF
# ---------------------------------------------------------------------------


def test_gpf_answers_from_its_mirror(rig: Rig) -> None:
    read = [read_attrs(METERING, 0x0000)]
    reply = rig.gpf.receive(rig.command(GCS13A, read, target=GPF_EUI))
    assert reply.response is not None
    assert decode_message(reply.response).frame.gs.date_time[-1] == CLOCK_GPF_TIME  # type: ignore[index]
    rig.advance(timedelta(hours=1))
    rig.gpf.mirror_from(rig.gsme)
    synced = rig.clock.now()
    rig.advance(timedelta(hours=5))
    reply = rig.gpf.receive(rig.command(GCS13A, read, target=GPF_EUI))
    msg = decode_message(reply.response)  # type: ignore[arg-type]
    assert msg.frame.gs.date_time[-1] == CLOCK_GSME_TIME  # type: ignore[index]
    value = decrypt_payload(rig.ctx, msg)[0].plaintext
    assert value is not None
    assert int.from_bytes(value[4:10], "little") == rig.gsme.data.register_at(gbz_seconds(synced))
    rig.gpf.update_mirror({(METERING, 0x0000): 42, (PREPAYMENT, A_CREDIT_REMAINING): -7}, synced)
    resp = rig.send(0x012A, read_attrs(PREPAYMENT, A_CREDIT_REMAINING), target=GPF_EUI)
    assert resp.components[0].payload.records[0].value == ZclValue(0x2B, -7)  # type: ignore[union-attr]


def test_gpf_urp_read_is_encrypted_for_the_certificate_holder(rig: Rig) -> None:
    """GCS16b URP: the ACB asks for a party the GPF has no anchor for (gbcs-facts 1.4)."""
    cert = rig.store.certificate(NO, "ka")
    assert isinstance(cert, x509.Certificate)
    der = cert.public_bytes(Encoding.DER)
    other = OtherInformation(GCS16B, NO, 77, None, der)
    now = gbz_seconds(START)
    get = cluster_cmd(0x0705, C2S_CLUSTER, 0x07, u32(now - 3 * 86400) + u32(now) + b"\x00" + u32(1))
    reply = rig.gpf.receive(rig.command(GCS16B, [get], target=GPF_EUI, originator=ACB, other=other))
    assert reply.refused is None and reply.response is not None
    msg = decode_message(reply.response)
    o = msg.frame.gs.other_information
    assert (o.supplementary_remote_party_id, o.supplementary_remote_party_counter) == (NO, 77)
    assert o.supplementary_originator_counter is not None
    (dec,) = decrypt_payload(rig.ctx, msg)
    assert dec.ok and dec.plaintext is not None and len(dec.plaintext) == 40


# ---------------------------------------------------------------------------
# faults
# ---------------------------------------------------------------------------


def test_injected_attribute_fault(rig: Rig) -> None:
    rig.gsme.inject_fault(Fault(0x0705, FAULT_ATTRIBUTE, A_CREDIT_REMAINING))
    resp = rig.send(GCS60, read_attrs(METERING, 0x0A00), read_attrs(PREPAYMENT, 1, seq=1))
    assert resp.components[0].payload.records[0].value is not None  # type: ignore[union-attr]
    assert resp.components[1].payload.records[0].status == 0xC0  # type: ignore[union-attr]
    rig.gsme.clear_faults()
    resp = rig.send(GCS60, read_attrs(PREPAYMENT, 1))
    assert resp.components[0].payload.records[0].status == STATUS_SUCCESS  # type: ignore[union-attr]
    assert rig.gsme.data.attrs.int(PREPAYMENT, A_EC_LIMIT) == 500000


# ---------------------------------------------------------------------------
# service history: top ups, payment-based debt recovery, network data log
# ---------------------------------------------------------------------------

#: The default profile's debt #3 recovers 20 % of each top up; the history's debt is GBP 40.
HISTORY_PERCENT, HISTORY_DEBT = 20, 4_000_000


def _history_profile(name: str, **changes: Any) -> Any:
    """The default GSME profile with ``[history]`` keys (``table__key`` for sub-tables) set."""
    data = tomllib.loads((PROFILE_DIR / "gsme.toml").read_text())
    for key, value in changes.items():
        table, _, sub = key.rpartition("__")
        target = data["history"][table] if table else data["history"]
        target[sub] = value
    return parse_profile(data, name)


def _plaintext(rig: Rig, code: int, comp: gbz.PlainComponent) -> bytes:
    """Send one read whose answer GBCS encrypts; return the decrypted ZCL payload."""
    reply = rig.gsme.receive(rig.command(code, [comp]))
    assert reply.response is not None
    (dec,) = decrypt_payload(rig.ctx, decode_message(reply.response))
    assert dec.ok and dec.plaintext is not None
    return dec.plaintext


def _get_debt_log(latest: int, debt_type: int = 2) -> gbz.PlainComponent:
    return cluster_cmd(0x0705, C2S_CLUSTER, 0x0A, u32(latest) + bytes((10, debt_type)))


def _get_top_up_log(latest: int) -> gbz.PlainComponent:
    return cluster_cmd(0x0705, C2S_CLUSTER, 0x08, u32(latest) + b"\x05")


def _get_network_data(count: int = 41) -> gbz.PlainComponent:
    return cluster_cmd(0x0702, C2S_CLUSTER, 0x08, NETWORK_DATA_SAMPLE_ID.to_bytes(2, "little")
                       + u32(1) + b"\x00" + count.to_bytes(2, "little"))  # fmt: skip


def _start_network_data_log(interval: int = 360, samples: int = 41) -> gbz.PlainComponent:
    fields = b"\x00" + interval.to_bytes(2, "little") + samples.to_bytes(2, "little")
    return cluster_cmd(0x0702, C2S_CLUSTER, 0x07, u32(7) + u32(0) + fields)


def test_history_top_ups_are_utrn_shaped_and_deterministic(rig: Rig) -> None:
    st = rig.gsme.data
    assert len(st.top_ups) == 5  # logs.top_up_log_entries
    times = [t.time for t in st.top_ups]
    assert times == sorted(times, reverse=True) and st.commissioned < times[-1] < st.created
    for t in st.top_ups:
        u = parse_utrn(t.code)
        assert u.check_digit_ok and u.value_class == VALUE_CLASS_POUNDS
        assert 10 <= u.value <= 40 and u.value * 100_000 == t.amount
        assert 7 * 3600 <= t.time % DAY < 22 * 3600
    again = Gsme(GSME_EUI, rig.gsme.keys, rig.clock).data
    assert (again.top_ups, again.debt_log, again.sampling) == (st.top_ups, st.debt_log, st.sampling)
    other = GasMeterData(st.attrs.profile, st.model, st.created)
    seed_history(other, PPMID_EUI)
    assert other.top_ups != st.top_ups and other.sampling != st.sampling


def test_history_debt_is_recovered_from_the_top_ups(rig: Rig) -> None:
    st = rig.gsme.data
    h = st.history
    assert (h.debt, h.start, h.amount) == (2, st.commissioned, HISTORY_DEBT)
    left = HISTORY_DEBT
    for p in h.repayments:
        assert p.debt_type == 2 and p.outstanding == left - p.amount
        # 20 % of a GBP 10..40 top up in GBP 5 steps, or what was left
        assert p.amount == left or (p.amount % 100_000 == 0 and 200_000 <= p.amount <= 800_000)
        left = p.outstanding
    assert left == 0 == st.debts()[2]  # GBP 40 is repaid within the year
    assert st.debt_log == tuple(reversed(h.repayments))[:10]
    # the balances before creation follow the recovery
    assert commissioning_snapshot(st).debts == (0, 0, HISTORY_DEBT)
    first = h.repayments[0]
    midnight = first.time - first.time % DAY
    rec, nxt = daily_record(st, midnight), daily_record(st, midnight + DAY)
    assert rec is not None and nxt is not None
    assert (rec[4], nxt[4]) == (HISTORY_DEBT, first.outstanding)
    # GCS15d reads them back (encrypted), newest first
    plain = _plaintext(rig, GCS15D, _get_debt_log(gbz_seconds(START)))
    head, rows = L_DEBT_LOG.parse(plain)
    assert head == {"command_index": 0, "commands": 1}
    assert [tuple(r.values()) for r in rows] == [tuple(p) for p in st.debt_log]


def test_cs01b_top_up_recovers_payment_based_debt_and_is_logged(rig: Rig) -> None:
    """A new debt on debt #3 takes its percentage of a CS01b top up: GCS15d and GCS15e."""
    now = gbz_seconds(START)
    debt = (u32(1) + b"\x00" + u32(1_000_000) + b"\x01\x04" + u32(0) + b"\x00\x00\x01"
            + u32(0) + (HISTORY_PERCENT * 100).to_bytes(2, "little"))  # fmt: skip
    resp = rig.send(GCS04, cluster_cmd(0x0705, C2S_CLUSTER, 0x02, debt))
    assert dr(resp.components[0]).status == STATUS_SUCCESS
    before = rig.gsme.data.credit()
    counter = rig.counter = 0x0000000600000000  # the reads that follow count on from it
    code = _utrn(rig, counter, 1250)
    result, value, credit = _top_up_result(rig.send(CS01B, _top_up(code), counter=counter))
    assert (result, value) == (TOP_UP_ACCEPTED, 1_250_000)
    assert credit == before + 1_000_000  # 20 % of GBP 12.50 went to the debt
    _, rows = L_DEBT_LOG.parse(_plaintext(rig, GCS15D, _get_debt_log(now + 10)))
    assert rows[0] == {"time": now, "amount": 250_000, "debt_type": 2, "outstanding": 750_000}
    assert rows[1]["time"] < now  # the seeded history follows
    assert rig.gsme.data.attrs.int(PREPAYMENT, A_ACCUMULATED_DEBT) == 750_000
    resp = rig.send(GCS15E, _get_top_up_log(0xFFFFFFFE))
    comp = resp.components[0]
    assert comp.header.command_id == 0x05 and not isinstance(comp, gbz.EncryptedComponent)
    _, logged = L_TOP_UP_LOG.parse(raw(comp))
    assert len(logged) == 5  # the newest top up, then the four newest of the history
    assert logged[0] == {"code": code, "amount": 1_250_000, "time": now}
    assert [r["time"] for r in logged[1:]] == [t.time for t in rig.gsme.data.top_ups[1:]]


def _samples(plain: bytes) -> tuple[int, int, int, list[int]]:
    """(sample id, start, interval, samples) of a Get Sampled Data Response."""
    sid, start = int.from_bytes(plain[:2], "little"), int.from_bytes(plain[2:6], "little")
    interval, count = int.from_bytes(plain[7:9], "little"), int.from_bytes(plain[9:11], "little")
    assert len(plain) == 11 + 3 * count
    values = [int.from_bytes(plain[11 + 3 * i : 14 + 3 * i], "little") for i in range(count)]
    return sid, start, interval, values


def test_network_data_log_seeded_restarted_by_gcs31_and_read_by_gcs18(rig: Rig) -> None:
    st = rig.gsme.data
    (session,) = st.sampling
    assert session.sample_id == NETWORK_DATA_SAMPLE_ID and session.start < st.created
    sid, start, interval, values = _samples(_plaintext(rig, GCS18, _get_network_data()))
    assert (sid, start, interval, len(values)) == (2, session.start, 360, 41)
    assert values == [st.slot_volume(start + i * 360, start + (i + 1) * 360) for i in range(41)]
    assert sum(values) > 0
    # GCS31 restarts it now: no samples yet, then one every six minutes
    resp = rig.send(GCS31, _start_network_data_log())
    assert raw(resp.components[0]) == NETWORK_DATA_SAMPLE_ID.to_bytes(2, "little")
    assert rig.gsme.data.sampling[0].start == gbz_seconds(START)
    assert dr(rig.send(GCS18, _get_network_data()).components[0]).status == STATUS_NOT_FOUND
    rig.advance(timedelta(hours=1))
    sid, start, interval, values = _samples(_plaintext(rig, GCS18, _get_network_data()))
    g = rig.gsme.data
    assert (sid, start, len(values)) == (2, gbz_seconds(START), 10)
    assert values == [g.slot_volume(start + i * 360, start + (i + 1) * 360) for i in range(10)]
    rig.advance(timedelta(hours=5))  # the log is full after 41 samples
    assert len(_samples(_plaintext(rig, GCS18, _get_network_data(100)))[3]) == 41
    # an unusable request leaves the log running
    bad = rig.send(GCS31, _start_network_data_log(interval=0))
    assert raw(bad.components[0]) == b"\xff\xff"
    assert rig.gsme.data.sampling[0].start == gbz_seconds(START)


def test_history_switch_starts_empty(rig: Rig) -> None:
    rig.gsme = Gsme(GSME_EUI, rig.gsme.keys, rig.clock, _history_profile("quiet", seed_logs=False))
    st = rig.gsme.data
    assert (st.top_ups, st.debt_log, st.sampling, st.history) == ((), (), (), NO_HISTORY)
    assert commissioning_snapshot(st).debts == (0, 0, 0)
    now = gbz_seconds(START)
    for code, comp in ((GCS15E, _get_top_up_log(now)), (GCS18, _get_network_data())):
        assert dr(rig.send(code, comp).components[0]).status == STATUS_NOT_FOUND
    reply = rig.gsme.receive(rig.command(GCS15D, [_get_debt_log(now)]))
    msg = decode_message(reply.response)  # type: ignore[arg-type]
    assert dr(msg.payload.components[0]).status == STATUS_NOT_FOUND  # type: ignore[union-attr]


def test_history_debt_not_repaid_stays_on_the_register(rig: Rig) -> None:
    profile = _history_profile("in-debt", debt__amount=90_000_000, top_ups__pounds=[10, 10])
    st = Gsme(GSME_EUI, rig.gsme.keys, rig.clock, profile).data
    left = st.history.repayments[-1].outstanding
    assert all(p.amount == 200_000 for p in st.history.repayments)  # 20 % of GBP 10
    assert st.debts() == (0, 0, left) and left > 0
    assert st.attrs.int(PREPAYMENT, A_ACCUMULATED_DEBT) == left
    with pytest.raises(ValueError, match="jitter_days"):
        Gsme(GSME_EUI, rig.gsme.keys, rig.clock, _history_profile("bad", top_ups__jitter_days=14))


# ---------------------------------------------------------------------------
# RTDS coverage
# ---------------------------------------------------------------------------

#: Use cases covered on RTDS 4.5.0: all 51 GSME and 8 GPF ones.  GCS15d, GCS15e and GCS18
#: read logs the recorded meter had filled in service (debt payments, top ups, a running
#: network data log): a simulated GSME has them from its seeded history (``[history]``).
GSME_FLOOR = 51
GPF_FLOOR = 8


@pytest.mark.conformance
def test_rtds_coverage_floor(rtds_dir: Path) -> None:
    reports = run_coverage(rtds_dir)
    assert len(reports["GSME"].covered) >= GSME_FLOOR, reports["GSME"].failures
    assert len(reports["GPF"].covered) >= GPF_FLOOR, reports["GPF"].failures
    for kind in ("GSME", "GPF"):
        crashes = [f for f in reports[kind].failures if "raised" in f.reason]
        assert not crashes


@pytest.mark.conformance
def test_rtds_error_scenarios_replay_with_injected_faults(rtds_dir: Path) -> None:
    """RTDS error answers whose cause is inside the device reproduce with injected faults."""
    rig = make_rig(1)
    results: list[str | None] = []
    for s in scenarios(rtds_dir):
        if "SUCCESS" in s.name or s.response is None:
            continue
        cmd = decode_message(bytes.fromhex(s.command.read_text().strip()))
        if RTDS_DEVICES.get(cmd.frame.gs.business_target) is None:
            continue
        want = decode_message(bytes.fromhex(s.response.read_text().strip()))
        if not isinstance(want.payload, gbz.GbzMessage):
            continue
        device = rig.factories[cmd.frame.gs.business_target]()
        assert isinstance(device, Gsme | Gpf)
        for fault in faults_from_response(want.payload):
            device.inject_fault(fault)
        rig.clock.set(COVERAGE_START)
        reply = device.receive(reprotect(rig, cmd))
        results.append(_check_reply(rig, "response", reply.response, s.response))
    assert len(results) >= 50
    assert [r for r in results if r is not None] == []


@pytest.mark.conformance
def test_rtds_future_dated_alerts(rtds_dir: Path) -> None:
    """Every RTDS 8F66 alert of a future-dated GBZ command has its twin from the simulator."""
    rig = make_rig(1)
    checked = 0
    for folder in sorted(rtds_dir.glob("*_GCS0[1-5]*")):
        wanted = sorted(folder.glob("*_8F66_*ALERT*.HEX"))
        commands = sorted(folder.glob("*FUTURE_DATED*SUCCESS_COMMAND_GBCS.HEX"))
        if not wanted or not commands:
            continue
        cmd = decode_message(bytes.fromhex(commands[0].read_text().strip()))
        device = rig.factories[cmd.frame.gs.business_target]()
        rig.clock.set(COVERAGE_START)
        assert device.receive(reprotect(rig, cmd)).refused is None
        alerts: list[bytes] = []
        while (due := device.next_due()) is not None:
            rig.clock.set(due)
            alerts += device.run_due()
        assert len(alerts) == len(wanted), folder.name
        by_command = {}
        for a in alerts:
            body = decode_message(a).payload.alert.body  # type: ignore[union-attr]
            by_command[(body.cluster_id, body.command_id)] = a  # type: ignore[union-attr]
        for w in wanted:
            body = decode_message(bytes.fromhex(w.read_text().strip())).payload.alert.body  # type: ignore[union-attr]
            got = by_command[(body.cluster_id, body.command_id)]  # type: ignore[union-attr]
            assert _check_reply(rig, "alert", got, w) is None
            checked += 1
    assert checked >= 13


def test_gcs38_attribute_reports_the_running_image_after_an_activation() -> None:
    """GCS38 (attribute 0x0206) and the CS06 outcome report one version: the profile's
    until an image is activated, then the activated image's."""
    from gbhil.devices import firmware
    from gbhil.gbcs import zcl_catalogue as cat
    from gbhil.rigs.simulated import SimulatedRig

    gsme = SimulatedRig.build(seed=1).gsme
    slots = firmware.slots(gsme)

    def reported() -> object:
        value = gsme.read_attribute(gsme.data, cat.CLUSTER_METERING, 0x0206)
        return None if value is None else value.value

    assert reported() == slots.running_version == b"1.0.0"
    image_hash = slots.stage(b"gas image", bytes.fromhex("01000300"))
    assert reported() == b"1.0.0", "staged is not running"
    assert slots.activate(image_hash) == firmware.ACTIVATE_OK
    assert reported() == bytes.fromhex("01000300")
