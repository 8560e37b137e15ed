"""The bus topic scheme, payload envelope and frame/WAN encodings (no broker needed)."""

from __future__ import annotations

import base64
import json

import pytest

from gbhil.bus.han_bridge import frame_from_message, frame_meta
from gbhil.bus.mqtt import BrokerAddress, BusConnectError, BusMessage
from gbhil.bus.topics import (
    CATALOGUE,
    ENVELOPE_VERSION,
    Envelope,
    PayloadError,
    Qos,
    RunTopics,
    TopicError,
    TopicKind,
    check_name,
    new_run_id,
)
from gbhil.bus.wan_bridge import W_COUNTER, W_CRA, W_MESSAGE_CODE, wan_meta
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation
from gbhil.han.channels import PageChannel
from gbhil.han.transport import ApsFrame, TxOptions, TxPriority

ESME = bytes.fromhex("00DB1234567890A0")
CHF = bytes.fromhex("00DB1234567890A2")


@pytest.fixture()
def topics() -> RunTopics:
    return RunTopics("bench-1", "20260101T000000-0a1b2c3d")


# -- the scheme ------------------------------------------------------------------------


def test_every_kind_is_catalogued_once() -> None:
    assert set(CATALOGUE) == set(TopicKind)
    templates = [spec.template for spec in CATALOGUE.values()]
    assert len(templates) == len(set(templates))


def test_qos_and_retain_follow_the_documented_scheme() -> None:
    assert CATALOGUE[TopicKind.HAN_FRAME].qos is Qos.AT_MOST_ONCE
    for kind in (TopicKind.ALERTS, TopicKind.WAN_UP, TopicKind.WAN_DOWN, TopicKind.POWER):
        assert CATALOGUE[kind].qos is Qos.AT_LEAST_ONCE and not CATALOGUE[kind].retain
    assert CATALOGUE[TopicKind.STATE].retain and CATALOGUE[TopicKind.CLOCK].retain


def test_concrete_topics(topics: RunTopics) -> None:
    base = "gbhil/bench-1/20260101T000000-0a1b2c3d"
    assert topics.han_frame(28, 5) == f"{base}/han/28/5/frame"
    assert topics.wan_up() == f"{base}/wan/up"
    assert topics.wan_down() == f"{base}/wan/down"
    assert topics.alerts() == f"{base}/alerts"
    assert topics.power() == f"{base}/power"
    assert topics.state("esme") == f"{base}/state/esme"
    assert topics.clock() == f"{base}/clock"
    assert topics.node_command(ESME) == f"{base}/node/00DB1234567890A0/command"
    assert topics.tc_reply(ESME) == f"{base}/han/tc/reply/00DB1234567890A0"


def test_patterns_put_wildcards_where_parameters_are_missing(topics: RunTopics) -> None:
    assert topics.pattern(TopicKind.HAN_FRAME).endswith("/han/+/+/frame")
    assert topics.pattern(TopicKind.HAN_FRAME, page=0).endswith("/han/0/+/frame")
    assert topics.pattern(TopicKind.STATE).endswith("/state/+")
    assert topics.everything() == f"{topics.prefix}/#"
    with pytest.raises(TopicError, match="no parameters"):
        topics.pattern(TopicKind.ALERTS, device="esme")


@pytest.mark.parametrize("kind", list(TopicKind))
def test_parse_inverts_topic(topics: RunTopics, kind: TopicKind) -> None:
    values = {"page": 0, "channel": 11, "eui": ESME, "device": "esme"}
    params = {name: values[name] for name in CATALOGUE[kind].params}
    parsed = topics.parse(topics.topic(kind, **params))
    assert parsed.kind is kind
    assert set(parsed.params) == set(params)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: t.han_frame(0, 5), "channel"),  # page 0 has channels 11-26
        (lambda t: t.han_frame(7, 1), "page"),
        (lambda t: t.state("ESME"), "device name"),
        (lambda t: t.state("a/b"), "device name"),
        (lambda t: t.node_command(b"\x01\x02"), "8 bytes"),
        (lambda t: t.topic(TopicKind.STATE), "needs parameters"),
        (lambda t: t.parse("gbhil/other/run/alerts"), "is not under"),
        (lambda t: t.parse(f"{t.prefix}/alerts/extra"), "not in the gbhil topic scheme"),
    ],
)
def test_bad_topics_are_refused_precisely(topics: RunTopics, call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TopicError, match=message):
        call(topics)


@pytest.mark.parametrize("name", ["", "a/b", "+", "#", "-lead", "x" * 65, "sp ace", 7])
def test_rig_and_run_names_are_one_safe_level(name: object) -> None:
    with pytest.raises(TopicError):
        check_name("run ID", name)
    with pytest.raises(TopicError):
        RunTopics("rig", name)  # type: ignore[arg-type]


def test_run_ids_are_unique_valid_and_readable() -> None:
    from datetime import UTC, datetime

    ids = {new_run_id() for _ in range(200)}
    assert len(ids) == 200
    stamped = new_run_id(datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    assert stamped.startswith("20260101T123000-")
    for run in (*ids, stamped):
        RunTopics("rig", run)


def test_broker_addresses() -> None:
    assert BrokerAddress.parse("mqtt://10.0.0.5:1884") == BrokerAddress("10.0.0.5", 1884)
    assert BrokerAddress.parse("broker") == BrokerAddress("broker", 1883)
    with pytest.raises(BusConnectError, match="not a number"):
        BrokerAddress.parse("host:port")
    with pytest.raises(BusConnectError, match="1-65535"):
        BrokerAddress("host", 70000)


# -- the envelope ------------------------------------------------------------------------


def test_envelope_round_trip_with_bytes_and_meta() -> None:
    env = Envelope("abc:7", 7, "gbhil-hub-1", b"\x00\xffGBCS", {"cra": "ALERT", "n": [1, 2]})
    raw = env.encode()
    doc = json.loads(raw)
    assert doc["v"] == ENVELOPE_VERSION and base64.b64decode(doc["data"]) == b"\x00\xffGBCS"
    assert Envelope.decode(raw) == env
    assert Envelope.decode(Envelope("x:1", 1, "c").encode()).data is None


def _doc(**changes: object) -> bytes:
    doc: dict[str, object] = {"v": 1, "id": "a:1", "seq": 1, "src": "c", "meta": {}}
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "raw, field",
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (_doc(v=2), "'v'"),
        (_doc(id=...), "'id' is missing"),
        (_doc(id=""), "'id'"),
        (_doc(seq=-1), "'seq'"),
        (_doc(seq=True), "'seq'"),
        (_doc(src=5), "'src'"),
        (_doc(data="***"), "'data' is not base64"),
        (_doc(data=5), "'data' must be a base64 string"),
        (_doc(meta=[1]), "'meta'"),
    ],
)
def test_bad_envelopes_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(PayloadError, match=field):
        Envelope.decode(raw)


def test_meta_must_be_json() -> None:
    with pytest.raises(PayloadError, match="not JSON"):
        Envelope("a:1", 1, "c", None, {"x": object()}).encode()


# -- what the bridges put in envelopes -------------------------------------------------------


def test_aps_frame_round_trip_through_an_envelope() -> None:
    frame = ApsFrame(
        ESME,
        CHF,
        0x0704,
        b"\x01\x02\x03",
        src_endpoint=1,
        dst_endpoint=1,
        aps_counter=9,
        dst_short=0x0000,
        page=0,
        channel=11,
        options=TxOptions.APS_ACK,
        priority=TxPriority.ESSENTIAL,
    )
    env = Envelope("a:1", 1, "c", frame.payload, frame_meta(frame))
    msg = BusMessage("t", Envelope.decode(env.encode()))
    assert frame_from_message(msg, PageChannel(0, 11)) == frame
    broadcast = frame.replace(dst_eui64=None, dst_short=0xFFFF)
    msg = BusMessage("t", Envelope("a:2", 2, "c", broadcast.payload, frame_meta(broadcast)))
    assert frame_from_message(msg, PageChannel(0, 11)).is_broadcast


@pytest.mark.parametrize(
    "change, field",
    [
        ({"src": "00DB"}, "'src'"),
        ({"cluster": "x"}, "'cluster'"),
        ({"cluster": 1 << 16}, "cluster"),
    ],
)
def test_bad_frames_name_the_field(change: dict[str, object], field: str) -> None:
    frame = ApsFrame(ESME, CHF, 0x0704, b"\x01")
    meta = {**frame_meta(frame), **change}
    with pytest.raises(PayloadError, match=field):
        frame_from_message(
            BusMessage("t", Envelope("a:1", 1, "c", b"\x01", meta)), PageChannel(0, 11)
        )
    with pytest.raises(PayloadError, match="no data"):
        frame_from_message(BusMessage("t", Envelope("a:1", 1, "c", None, meta)), PageChannel(0, 11))


def test_wan_meta_repeats_the_gbcs_header() -> None:
    gs = GeneralSigning(Cra.ALERT, 42, ESME, CHF, OtherInformation(0x0067), b"")
    raw = gs.encode()
    meta = wan_meta(raw)
    assert meta[W_CRA] == "ALERT" and meta[W_MESSAGE_CODE] == 0x0067 and meta[W_COUNTER] == 42
    assert wan_meta(b"\x01\x02") == {W_CRA: None}
