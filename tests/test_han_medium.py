"""Simulated HAN: channels and masks, delivery by page/channel, impairments, duty cycle."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbhil.gbcs.alerts import ALERT_CODES
from gbhil.han import (
    ApsFrame,
    ChannelError,
    ChannelMask,
    DutyCycleConfig,
    DutyCycleMode,
    FrameError,
    FrequencyAgilityConfig,
    HanAlert,
    LinkQuality,
    MediumError,
    SimulatedMedium,
    TxPriority,
    TxStatus,
)
from gbhil.han.channels import (
    MASK_CHANNEL_BITS,
    PAGES,
    Band,
    PageChannel,
    airtime,
    band_of,
    is_sub_ghz,
    page_info,
    validate,
)
from gbhil.han.medium import (
    ALERT_ENTERING,
    ALERT_LEAVING,
    channel_change_of,
    channel_change_payload,
)
from gbhil.han.pcap import DEFAULT_FRAMING
from gbhil.simulator import SteppedClock

CHF = bytes.fromhex("00DB1234567890A2")
ESME = bytes.fromhex("00DB1234567890A0")
GSME = bytes.fromhex("00DB1234567890A1")
PPMID = bytes.fromhex("00DB1234567890A4")
TUNNELING = 0x0704


def frame(
    src: bytes, dst: bytes | None, payload: bytes = b"\x11\x00\x02\x05\x00", **kw: Any
) -> ApsFrame:
    return ApsFrame(src, dst, TUNNELING, payload, **kw)


class Log:
    """Records (receiver, virtual time, payload, page, channel) of every delivery."""

    def __init__(self, clock: SteppedClock) -> None:
        self.clock = clock
        self.rows: list[tuple[str, float, bytes, int | None, int | None]] = []

    def listen(self, name: str, node: Any) -> None:
        node.add_listener(
            lambda f: self.rows.append((name, self.clock.monotonic(), f.payload, f.page, f.channel))
        )


# ---------------------------------------------------------------------------
# channels.py: pages, channels, masks, airtime
# ---------------------------------------------------------------------------


def test_page_catalogue() -> None:
    assert page_info(0).channels == tuple(range(11, 27))
    assert page_info(28).channels == tuple(range(0, 27))
    assert page_info(29).channels == (*range(27, 35), 62)
    assert page_info(30).channels == tuple(range(35, 62))
    assert page_info(31).channels == tuple(range(0, 27))
    assert band_of(0) is Band.GHZ_2_4
    assert all(is_sub_ghz(p) for p in (28, 29, 30, 31)) and not is_sub_ghz(0)
    assert validate(28, 0) == PageChannel(28, 0)


@pytest.mark.parametrize(
    ("page", "channel", "message"),
    [
        (1, 11, "page 1 is not supported"),
        (27, 0, "page 27 is not supported"),
        (0, 10, "channel 10 is not on page 0"),
        (0, 27, "valid: 11-26"),
        (29, 35, "valid: 27-34, 62"),
        (30, 34, "valid: 35-61"),
        (31, 27, "valid: 0-26"),
    ],
)
def test_bad_page_or_channel(page: int, channel: int, message: str) -> None:
    with pytest.raises(ChannelError, match=message):
        validate(page, channel)


@pytest.mark.parametrize(
    ("page", "channels", "value"),
    [
        (0, range(11, 27), 0x07FF_F800),
        (0, [11], 0x0000_0800),
        (0, [26], 0x0400_0000),
        (28, range(0, 27), 0xE7FF_FFFF),
        (28, [0], 0xE000_0001),
        (29, [27], 0xE800_0001),
        (29, [62], 0xE800_0100),
        (29, [*range(27, 35), 62], 0xE800_01FF),
        (30, [35], 0xF000_0001),
        (30, range(35, 62), 0xF7FF_FFFF),
        (31, range(0, 27), 0xFFFF_FFFF),
    ],
)
def test_mask_known_values(page: int, channels: range | list[int], value: int) -> None:
    mask = ChannelMask.of(page, channels)
    assert mask.encode() == value
    assert ChannelMask.decode(value) == mask


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0x0000_0000, "selects no channel"),
        (0xE000_0000, "selects no channel"),
        (0x0000_0001, "bit 0 is not a channel of page 0"),
        (0x0800_0800, "page 1 is not supported"),
        (0xE800_0200, "bit 9 is not a channel of page 29"),
        (0x1_0000_0000, "does not fit in 32 bits"),
        (-1, "does not fit in 32 bits"),
    ],
)
def test_mask_decode_errors(value: int, message: str) -> None:
    with pytest.raises(ChannelError, match=message):
        ChannelMask.decode(value)


def test_mask_construction_errors() -> None:
    with pytest.raises(ChannelError, match="selects no channel"):
        ChannelMask.of(28, [])
    with pytest.raises(ChannelError, match="channel 40 is not on page 28"):
        ChannelMask.of(28, [40])
    with pytest.raises(ChannelError, match="must be an int"):
        ChannelMask.decode("0x800")  # type: ignore[arg-type]


@st.composite
def masks(draw: st.DrawFn) -> ChannelMask:
    page = draw(st.sampled_from(sorted(PAGES)))
    channels = draw(st.sets(st.sampled_from(PAGES[page].channels), min_size=1))
    return ChannelMask(page, frozenset(channels))


@given(masks())
def test_property_mask_round_trip(mask: ChannelMask) -> None:
    value = mask.encode()
    assert 0 <= value <= 0xFFFF_FFFF
    assert value >> 27 == mask.page
    assert bin(value & MASK_CHANNEL_BITS).count("1") == len(mask.channels)
    assert ChannelMask.decode(value) == mask
    assert all(pc in mask for pc in mask)


@given(st.integers(min_value=-(2**33), max_value=2**33))
def test_property_any_integer_decodes_exactly_or_raises_channel_error(value: int) -> None:
    try:
        mask = ChannelMask.decode(value)
    except ChannelError:
        return
    assert mask.encode() == value


def test_airtime_from_bit_rate_and_phy_header() -> None:
    # 2.4 GHz O-QPSK: (4 preamble + 1 SFD + 1 PHR + 127) octets at 250 kb/s
    assert airtime(0, 127) == pytest.approx(133 * 8 / 250_000)
    # sub-GHz default: (4 + 2 + 2 + 127) octets at 100 kb/s
    assert airtime(28, 127) == pytest.approx(135 * 8 / 100_000)
    assert airtime(31, 10) < airtime(31, 11)
    with pytest.raises(ChannelError, match="exceeds"):
        airtime(0, 128)


# ---------------------------------------------------------------------------
# transport.py: ApsFrame validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"src_eui64": b"\x00" * 7}, "src_eui64 must be 8 bytes"),
        ({"dst_eui64": b"\x00" * 9}, "dst_eui64 must be 8 bytes"),
        ({"cluster_id": 0x10000}, "cluster_id must be an unsigned 16-bit"),
        ({"src_endpoint": 256}, "src_endpoint must be an unsigned 8-bit"),
        ({"aps_counter": -1}, "aps_counter must be an unsigned 8-bit"),
        ({"dst_eui64": None, "dst_short": 0x1234}, "not a broadcast address"),
        ({"src_short": 0xFFFF}, "src_short 0xFFFF is a broadcast address"),
        ({"page": 0}, "page and channel must be given together"),
        ({"payload": "text"}, "payload must be bytes"),
    ],
)
def test_aps_frame_validation(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "src_eui64": CHF,
        "dst_eui64": ESME,
        "cluster_id": TUNNELING,
        "payload": b"",
    }
    base.update(kwargs)
    with pytest.raises(FrameError, match=message):
        ApsFrame(**base)


def test_aps_frame_channel_is_validated_by_the_catalogue() -> None:
    with pytest.raises(ChannelError, match="channel 5 is not on page 0"):
        ApsFrame(CHF, ESME, TUNNELING, b"", page=0, channel=5)


def test_alert_codes_match_the_gbcs_catalogue() -> None:
    for alert in HanAlert:
        assert alert.value in ALERT_CODES, hex(alert.value)
    assert ALERT_CODES[HanAlert.MESSAGE_DISCARDED_DUTY_CYCLE] == (
        "Message Discarded Due to Duty Cycle Management"
    )
    assert ALERT_CODES[HanAlert.LIMITED_DUTY_CYCLE_ACTION_TAKEN] == (
        "Limited Duty Cycle Action Taken"
    )
    assert ALERT_CODES[ALERT_LEAVING[DutyCycleMode.CRITICAL]].startswith(
        "Duty Cycle fallen below Limited-Critical"
    )
    assert ALERT_CODES[ALERT_ENTERING[DutyCycleMode.REGULATED]] == (
        "Regulated Duty Cycle Action Taken"
    )


# ---------------------------------------------------------------------------
# medium.py: delivery
# ---------------------------------------------------------------------------


def test_delivery_only_on_the_same_page_and_channel() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])
    ppmid = medium.attach(PPMID, [(0, 15)])
    gsme = medium.attach(GSME, [(28, 11)])  # same channel number, other page
    log = Log(clock)
    for name, node in (("esme", esme), ("ppmid", ppmid), ("gsme", gsme)):
        log.listen(name, node)
    medium.transmit(frame(CHF, None, b"broadcast"))
    medium.transmit(frame(CHF, PPMID, b"unicast-off-channel"))
    clock.advance(1)
    assert [(r[0], r[2]) for r in log.rows] == [("esme", b"broadcast")]
    assert log.rows[0][3:] == (0, 11)
    assert chf.counters.sent == 2
    assert chf.counters.delivered == 1
    assert chf.counters.lost == 1  # the PPMID is on channel 15
    assert esme.counters.received == 1 and ppmid.counters.received == 0


def test_dual_band_chf_hears_and_reaches_both_bands() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 20), (28, 3)])
    esme = medium.attach(ESME, [(0, 20)])
    gsme = medium.attach(GSME, [(28, 3)])
    log = Log(clock)
    for name, node in (("chf", chf), ("esme", esme), ("gsme", gsme)):
        log.listen(name, node)
    assert chf.channels == (PageChannel(0, 20), PageChannel(28, 3))
    r_esme = medium.transmit(frame(CHF, ESME, b"to-esme"))
    r_gsme = medium.transmit(frame(CHF, GSME, b"to-gsme"))
    assert r_esme.channels == (PageChannel(0, 20),)
    assert r_gsme.channels == (PageChannel(28, 3),)
    # Two radios: both transmissions start at once, one per band.
    assert r_esme.start == r_gsme.start == 0.0
    medium.transmit(frame(ESME, CHF, b"from-esme"))
    medium.transmit(frame(GSME, CHF, b"from-gsme"))
    clock.advance(1)
    got = {(r[0], r[2], r[3], r[4]) for r in log.rows}
    assert got == {
        ("esme", b"to-esme", 0, 20),
        ("gsme", b"to-gsme", 28, 3),
        ("chf", b"from-esme", 0, 20),
        ("chf", b"from-gsme", 28, 3),
    }
    with pytest.raises(MediumError, match="has no radio on page 28 channel 4"):
        medium.transmit(frame(CHF, GSME, page=28, channel=4))


def test_received_frames_carry_filled_in_addressing() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)], short_address=0x4A21)
    got: list[ApsFrame] = []
    esme.add_listener(got.append)
    medium.transmit(frame(CHF, ESME))
    medium.transmit(frame(CHF, ESME))
    medium.transmit(frame(CHF, ESME, aps_counter=200))
    clock.advance(1)
    assert [(f.src_short, f.dst_short) for f in got] == [(0x0000, 0x4A21)] * 3
    assert [f.aps_counter for f in got] == [0, 1, 200]
    assert esme.short_address == 0x4A21


def test_airtime_delays_delivery_and_serialises_one_radio() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])
    log = Log(clock)
    log.listen("esme", esme)
    big = frame(CHF, ESME, b"B" * 80)
    small = frame(CHF, ESME, b"s")
    t_big = sum(airtime(0, n) for n in DEFAULT_FRAMING.psdu_lengths(big.replace(aps_counter=0)))
    t_small = sum(airtime(0, n) for n in DEFAULT_FRAMING.psdu_lengths(small.replace(aps_counter=0)))
    r1 = medium.transmit(big)
    r2 = medium.transmit(small)  # queued behind the big one on the same radio
    assert (r1.start, r1.end) == (0.0, pytest.approx(t_big))
    assert (r2.start, r2.end) == (pytest.approx(t_big), pytest.approx(t_big + t_small))
    clock.advance(1)
    assert [r[2] for r in log.rows] == [b"B" * 80, b"s"]
    assert log.rows[0][1] == pytest.approx(t_big)
    assert log.rows[1][1] == pytest.approx(t_big + t_small)


def test_shorter_frame_from_another_node_arrives_first() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(28, 1)])
    medium.attach(ESME, [(28, 1)])
    medium.attach(GSME, [(28, 1)])
    order: list[bytes] = []
    chf.add_listener(lambda f: order.append(f.payload))
    medium.transmit(frame(ESME, CHF, b"L" * 90))
    medium.transmit(frame(GSME, CHF, b"s"))
    clock.advance(1)
    assert order == [b"s", b"L" * 90]


def test_fragmented_payload_costs_the_airtime_of_every_fragment() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    medium.attach(CHF, [(0, 11)])
    medium.attach(ESME, [(0, 11)])
    payload = bytes(300)
    lengths = DEFAULT_FRAMING.psdu_lengths(frame(CHF, ESME, payload, aps_counter=0))
    assert len(lengths) == 4 and max(lengths) <= 127
    result = medium.transmit(frame(CHF, ESME, payload))
    assert result.airtime == pytest.approx(sum(airtime(0, n) for n in lengths))


def test_latency_and_link_overrides() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock, link=LinkQuality(latency=0.2))
    medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])
    log = Log(clock)
    log.listen("esme", esme)
    r = medium.transmit(frame(CHF, ESME, b"a"))
    clock.advance(1)
    assert log.rows[-1][1] == pytest.approx(r.end + 0.2)
    medium.set_link(CHF, ESME, LinkQuality(latency=1.5))
    r = medium.transmit(frame(CHF, ESME, b"b"))
    clock.advance(5)
    assert log.rows[-1][1] == pytest.approx(r.end + 1.5)
    medium.set_link(CHF, ESME, None)
    assert medium.link(CHF, ESME) == LinkQuality(latency=0.2)


def test_total_loss_and_partition() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])
    medium.set_link(CHF, ESME, LinkQuality(loss=1.0), both_ways=False)
    for _ in range(5):
        medium.transmit(frame(CHF, ESME))
    medium.transmit(frame(ESME, CHF))
    clock.advance(1)
    assert chf.counters.lost == 5 and chf.counters.delivered == 0
    assert esme.counters.received == 0
    assert chf.counters.received == 1  # the other direction still works


def test_duplication() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock, link=LinkQuality(duplicate=1.0, duplicate_delay=0.01))
    chf = medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])
    log = Log(clock)
    log.listen("esme", esme)
    r = medium.transmit(frame(CHF, ESME, b"x"))
    clock.advance(1)
    assert [row[1] for row in log.rows] == [pytest.approx(r.end), pytest.approx(r.end + 0.01)]
    assert chf.counters.duplicated == 1 and chf.counters.delivered == 2


def _impaired_run(seed: int, quality: LinkQuality, n: int = 200) -> tuple[list[bytes], Any]:
    clock = SteppedClock()
    medium = SimulatedMedium(clock, seed=seed, link=quality)
    chf = medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])
    got: list[bytes] = []
    esme.add_listener(lambda f: got.append(f.payload))
    for i in range(n):
        medium.transmit(frame(CHF, ESME, i.to_bytes(2, "big")))
    clock.advance(60)
    return got, chf.counters


def test_impairments_are_reproducible_with_a_seed() -> None:
    quality = LinkQuality(loss=0.2, duplicate=0.1, reorder=0.2, jitter=0.002)
    a, ca = _impaired_run(7, quality)
    b, cb = _impaired_run(7, quality)
    c, _ = _impaired_run(8, quality)
    assert a == b and ca == cb
    assert a != c
    # 200 frames, 20 % loss, 10 % duplicates: all three effects happened
    assert 100 < ca.delivered - ca.duplicated < 200
    assert ca.lost + ca.delivered - ca.duplicated == 200
    assert ca.duplicated > 0
    sent_order = sorted(set(a))
    first_seen = list(dict.fromkeys(a))
    assert first_seen != sent_order  # reordered


def test_loss_pattern_does_not_depend_on_other_knobs() -> None:
    lossy = _impaired_run(3, LinkQuality(loss=0.3))
    lossy_and_jittery = _impaired_run(3, LinkQuality(loss=0.3, duplicate=0.0, jitter=0.0001))
    assert set(lossy[0]) == set(lossy_and_jittery[0])


def test_reordering_lets_later_frames_overtake() -> None:
    got, counters = _impaired_run(11, LinkQuality(reorder=0.3, reorder_delay=0.05), n=50)
    assert sorted(got) == [i.to_bytes(2, "big") for i in range(50)]  # nothing lost
    assert got != sorted(got)
    assert counters.lost == 0


def test_leave_join_and_detach() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])

    async def scenario() -> None:
        await esme.leave()
        assert not esme.joined
        await chf.send(frame(CHF, ESME))
        with pytest.raises(MediumError, match="has not joined"):
            await esme.send(frame(ESME, CHF))
        await esme.join()
        await chf.send(frame(CHF, ESME))
        await clock.run_until_idle()

    clock.run(scenario())
    assert chf.counters.lost == 1 and chf.counters.delivered == 1
    medium.detach(ESME)
    medium.transmit(frame(CHF, ESME))  # still a known address: transmitted, lost
    assert chf.counters.lost == 2
    with pytest.raises(MediumError, match="never been on this medium"):
        medium.transmit(frame(CHF, PPMID))
    with pytest.raises(MediumError, match="is not attached"):
        medium.node(ESME)


def test_attach_errors() -> None:
    medium = SimulatedMedium(SteppedClock())
    medium.attach(CHF, [(0, 11)])
    with pytest.raises(MediumError, match="already attached"):
        medium.attach(CHF, [(0, 11)])
    with pytest.raises(MediumError, match="one radio per band"):
        medium.attach(ESME, [(28, 1), (29, 27)])
    with pytest.raises(MediumError, match="at least one"):
        medium.attach(ESME, [])
    with pytest.raises(ChannelError, match="page 5"):
        medium.attach(ESME, [(5, 1)])
    with pytest.raises(MediumError, match="already in use"):
        medium.attach(ESME, [(0, 11)], short_address=0x0000)
    with pytest.raises(MediumError, match="8-byte EUI-64"):
        medium.attach(b"short", [(0, 11)])


def test_send_checks_the_source() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 11)])
    medium.attach(ESME, [(0, 11)])
    with pytest.raises(FrameError, match="is not this node"):
        clock.run(chf.send(frame(ESME, CHF)))
    with pytest.raises(FrameError, match="src_short 0x0005"):
        medium.transmit(frame(CHF, ESME, src_short=5))
    with pytest.raises(FrameError, match="dst_short 0x0009"):
        medium.transmit(frame(CHF, ESME, dst_short=9))


def test_send_waits_for_the_airtime_and_receive_queue() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(28, 7)])
    esme = medium.attach(ESME, [(28, 7)])

    async def scenario() -> tuple[float, float, ApsFrame, float]:
        esme.enable_queue()
        result = await chf.send(frame(CHF, ESME, b"hello"))
        after_send = clock.monotonic()
        received = await esme.receive()
        return result.end, after_send, received, clock.monotonic()

    end, after_send, received, at = clock.run(scenario())
    assert after_send == end > 0
    assert received.payload == b"hello" and (received.page, received.channel) == (28, 7)
    assert at == end


def test_async_iteration_over_received_frames() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    chf = medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])

    async def consumer() -> list[bytes]:
        out: list[bytes] = []
        async for f in esme:
            out.append(f.payload)
            if len(out) == 3:
                break
        return out

    async def scenario() -> list[bytes]:
        task = asyncio.create_task(consumer())
        await clock.sleep(0)
        for p in (b"1", b"2", b"3"):
            await chf.send(frame(CHF, ESME, p))
        return await task

    assert clock.run(scenario()) == [b"1", b"2", b"3"]


# ---------------------------------------------------------------------------
# medium.py: duty cycle and frequency agility
# ---------------------------------------------------------------------------

# A 60 s window in 5 s buckets with 1 / 2 / 3 % thresholds = 0.6 / 1.2 / 1.8 s of airtime.
SMALL_WINDOW = DutyCycleConfig(
    limited_percent=1.0,
    critical_percent=2.0,
    regulated_percent=3.0,
    window_seconds=60.0,
    bucket_seconds=5.0,
)


class Alerts:
    def __init__(self, clock: SteppedClock) -> None:
        self.clock = clock
        self.rows: list[tuple[bytes, int, float, Mapping[str, Any]]] = []

    def __call__(self, node: bytes, code: int, details: Mapping[str, Any]) -> None:
        self.rows.append((node, code, self.clock.monotonic(), details))

    @property
    def codes(self) -> list[int]:
        return [r[1] for r in self.rows]


def _duty_rig(
    config: DutyCycleConfig = SMALL_WINDOW,
) -> tuple[SteppedClock, SimulatedMedium, Alerts]:
    clock = SteppedClock()
    alerts = Alerts(clock)
    medium = SimulatedMedium(clock, duty_cycle=config, on_alert=alerts)
    medium.attach(CHF, [(0, 11), (28, 2)])
    medium.attach(GSME, [(28, 2)])
    medium.attach(ESME, [(0, 11)])
    return clock, medium, alerts


BIG = b"\x00" * 84  # fills one PSDU: 127 octets, 10.8 ms at 100 kb/s on sub-GHz


def test_duty_cycle_modes_rise_with_alerts_and_discard() -> None:
    _clock, medium, alerts = _duty_rig()
    per_frame = medium.transmit(frame(CHF, GSME, BIG)).airtime
    assert per_frame == pytest.approx(0.0108)
    # 2.4 GHz traffic never counts
    for _ in range(200):
        medium.transmit(frame(CHF, ESME, BIG))
    assert medium.duty_cycle_status(CHF).used_seconds == pytest.approx(per_frame)
    sent = 1
    while medium.duty_cycle_status(CHF).mode is DutyCycleMode.NORMAL:
        assert medium.transmit(frame(CHF, GSME, BIG)).status is TxStatus.SENT
        sent += 1
    assert sent == 56  # ceil(0.6 s / 10.8 ms)
    assert alerts.codes == [0x8F20]
    node, _code, _t, details = alerts.rows[0]
    assert node == CHF and details["mode"] is DutyCycleMode.LIMITED
    # Limited: routine traffic is discarded with 0x8F2C, essential traffic still goes.
    routine = frame(CHF, GSME, b"routine")
    result = medium.transmit(routine)
    assert result.status is TxStatus.DISCARDED_DUTY_CYCLE
    assert alerts.codes[-1] == 0x8F2C
    discarded = alerts.rows[-1][3]["frame"]
    assert discarded.payload == b"routine" and discarded.dst_eui64 == GSME
    assert medium.counters(CHF).discarded == 1
    essential = frame(CHF, GSME, BIG, priority=TxPriority.ESSENTIAL)
    while medium.duty_cycle_status(CHF).mode is DutyCycleMode.LIMITED:
        assert medium.transmit(essential).status is TxStatus.SENT
    assert alerts.codes[-1] == 0x8F22
    assert medium.transmit(essential).status is TxStatus.DISCARDED_DUTY_CYCLE
    critical = frame(CHF, GSME, BIG, priority=TxPriority.CRITICAL)
    while medium.duty_cycle_status(CHF).mode is DutyCycleMode.CRITICAL:
        assert medium.transmit(critical).status is TxStatus.SENT
    assert medium.duty_cycle_status(CHF).mode is DutyCycleMode.REGULATED
    assert medium.transmit(critical).status is TxStatus.DISCARDED_DUTY_CYCLE
    assert [c for c in alerts.codes if c != 0x8F2C] == [0x8F20, 0x8F22, 0x8F24]
    assert alerts.codes.count(0x8F2C) == 3
    # the GSME on the same channel is unaffected: duty cycle is per transmitting node
    assert medium.transmit(frame(GSME, CHF, BIG)).status is TxStatus.SENT


def test_duty_cycle_falls_back_as_the_window_slides() -> None:
    clock, medium, alerts = _duty_rig()
    critical = frame(CHF, GSME, BIG, priority=TxPriority.CRITICAL)
    while medium.duty_cycle_status(CHF).mode is not DutyCycleMode.REGULATED:
        medium.transmit(critical)
    assert alerts.codes == [0x8F20, 0x8F22, 0x8F24]
    # All airtime sits in bucket [0, 5): it leaves the 60 s window at t = 60 s.
    clock.advance(59.9)
    assert medium.duty_cycle_status(CHF).mode is DutyCycleMode.REGULATED
    clock.advance(0.1)
    assert alerts.codes[3:] == [0x8F25, 0x8F23, 0x8F21]
    assert all(row[2] == 60.0 for row in alerts.rows[3:])
    assert alerts.rows[-1][3]["mode"] is DutyCycleMode.NORMAL
    assert medium.duty_cycle_status(CHF).mode is DutyCycleMode.NORMAL
    assert medium.transmit(frame(CHF, GSME, b"routine again")).status is TxStatus.SENT


def test_duty_cycle_partial_fall_back() -> None:
    clock, medium, alerts = _duty_rig()
    routine = frame(CHF, GSME, BIG)
    while medium.duty_cycle_status(CHF).mode is DutyCycleMode.NORMAL:
        medium.transmit(routine)  # 0.6 s in bucket [0, 5)
    clock.advance(30)
    essential = frame(CHF, GSME, BIG, priority=TxPriority.ESSENTIAL)
    while medium.duty_cycle_status(CHF).mode is not DutyCycleMode.CRITICAL:
        medium.transmit(essential)  # more airtime in bucket [30, 35)
    for _ in range(10):
        medium.transmit(frame(CHF, GSME, BIG, priority=TxPriority.CRITICAL))
    assert alerts.codes == [0x8F20, 0x8F22]
    clock.advance(30)  # t = 60: the first bucket leaves; ~0.7 s remain -> limited
    assert alerts.codes[2:] == [0x8F23]
    assert medium.duty_cycle_status(CHF).mode is DutyCycleMode.LIMITED
    clock.advance(30)  # t = 90: empty window
    assert alerts.codes[3:] == [0x8F21]


def test_duty_cycle_can_be_disabled_per_node() -> None:
    _clock, medium, alerts = _duty_rig()
    off = DutyCycleConfig(enabled=False)
    medium.attach(PPMID, [(28, 2)], duty_cycle=off)
    for _ in range(300):
        assert medium.transmit(frame(PPMID, CHF, BIG)).status is TxStatus.SENT
    assert alerts.codes == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limited_percent": 2.0, "critical_percent": 1.0}, "0 < limited < critical"),
        ({"regulated_percent": 101.0}, "<= 100"),
        ({"bucket_seconds": 7.0}, "must divide"),
        ({"min_priority": (None,)}, "one entry per mode"),
        (
            {"min_priority": (TxPriority.CRITICAL, TxPriority.ROUTINE, None, None)},
            "must not admit more",
        ),
    ],
)
def test_duty_cycle_config_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(MediumError, match=message):
        DutyCycleConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": 1.5}, "probability"),
        ({"latency": -1}, "non-negative"),
        ({"jitter": float("nan")}, "finite"),
    ],
)
def test_link_quality_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(MediumError, match=message):
        LinkQuality(**kwargs)


def test_frequency_agility() -> None:
    clock = SteppedClock()
    alerts = Alerts(clock)
    medium = SimulatedMedium(
        clock,
        agility=FrequencyAgilityConfig(min_interval_seconds=3600, max_changes=2),
        on_alert=alerts,
    )
    chf = medium.attach(CHF, [(0, 11), (28, 2)])
    gsme = medium.attach(GSME, [(28, 2)])

    async def scenario() -> list[bool]:
        out = [await chf.set_channel(28, 9)]
        out.append(await chf.set_channel(29, 30))  # too soon
        await clock.sleep(3600)
        out.append(await chf.set_channel(29, 30))
        await clock.sleep(3600)
        out.append(await chf.set_channel(30, 40))  # third change within a day
        out.append(await chf.set_channel(0, 25))  # 2.4 GHz is not frequency-agility managed
        out.append(await chf.set_channel(0, 25))  # no change: nothing to refuse
        return out

    assert clock.run(scenario()) == [True, False, True, False, True, True]
    assert alerts.codes == [0x8F26, 0x8F2B, 0x8F26, 0x8F2B]
    assert alerts.rows[1][3]["requested"] == PageChannel(29, 30)
    assert "minimum interval" in alerts.rows[1][3]["reason"]
    assert "2 changes" in alerts.rows[3][3]["reason"]
    assert chf.channels == (PageChannel(0, 25), PageChannel(29, 30))
    # The GSME stayed on 28/2: the CHF no longer reaches it.
    medium.transmit(frame(CHF, GSME))
    clock.advance(1)
    assert gsme.counters.received == 0
    with pytest.raises(MediumError, match=r"has no 2\.4GHz radio"):
        medium.set_channel(GSME, 0, 11)
    with pytest.raises(ChannelError):
        medium.set_channel(CHF, 28, 27)


def test_retuning_while_a_frame_is_in_flight_loses_it() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock, link=LinkQuality(latency=1.0))
    chf = medium.attach(CHF, [(28, 2)])
    medium.attach(GSME, [(28, 2)])
    medium.transmit(frame(CHF, GSME))
    medium.set_channel(GSME, 28, 3)
    clock.advance(2)
    assert chf.counters.lost == 1 and chf.counters.delivered == 0


def test_phy_override_changes_airtime() -> None:
    from gbhil.han import PhyProfile

    clock = SteppedClock()
    slow = PhyProfile("slow sub-GHz", 50_000, 8, 127)
    medium = SimulatedMedium(clock, phy={28: slow})
    medium.attach(CHF, [(28, 2)])
    medium.attach(GSME, [(28, 2)])
    result = medium.transmit(frame(CHF, GSME, BIG))
    assert result.airtime == pytest.approx((8 + 127) * 8 / 50_000)
    with pytest.raises(ChannelError, match="page 3"):
        SimulatedMedium(clock, phy={3: slow})


def test_duty_cycle_meter_buckets_slide() -> None:
    from gbhil.han.medium import DutyCycleMeter

    meter = DutyCycleMeter(DutyCycleConfig(window_seconds=0.7, bucket_seconds=0.1))
    meter.add(0.3, 0.002)  # bucket [0.3, 0.4), despite 0.3 / 0.1 < 3 in binary floats
    assert meter.used(0.3) == pytest.approx(0.002)
    meter.add(0.35, 0.001)
    meter.add(0.45, 0.004)
    assert meter.used(0.5) == pytest.approx(0.007)
    assert meter.next_expiry() == pytest.approx(1.0)
    assert meter.used(0.999) == pytest.approx(0.007)
    assert meter.used(1.0) == pytest.approx(0.004)  # bucket 3 left the 0.7 s window
    assert meter.next_expiry() == pytest.approx(1.1)
    assert meter.used(1.1) == 0.0 and meter.next_expiry() is None


def test_waiting_for_a_lost_frame_times_out_in_virtual_time() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock, link=LinkQuality(loss=1.0))
    chf = medium.attach(CHF, [(0, 11)])
    esme = medium.attach(ESME, [(0, 11)])

    async def scenario() -> float:
        await chf.send(frame(CHF, ESME))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(esme.receive(), timeout=30)
        return clock.monotonic()

    assert clock.run(scenario()) == pytest.approx(30, abs=0.01)


# ---------------------------------------------------------------------------
# medium.py: moving the whole network (Mgmt_NWK_Update_req)
# ---------------------------------------------------------------------------


def test_move_network_takes_every_node_that_hears_it() -> None:
    clock = SteppedClock()
    alerts = Alerts(clock)
    medium = SimulatedMedium(clock, on_alert=alerts)
    chf = medium.attach(CHF, [(0, 11), (28, 2)])
    gsme = medium.attach(GSME, [(28, 2)])
    other = medium.attach(PPMID, [(28, 7)])  # another channel: does not hear the update
    esme = medium.attach(ESME, [(0, 11)])
    captured: list[Any] = []
    medium.add_tap(captured.append)

    assert medium.move_network(CHF, 28, 9) is True
    clock.advance(1)

    assert chf.channels == (PageChannel(0, 11), PageChannel(28, 9))
    assert gsme.channels == (PageChannel(28, 9),)
    assert other.channels == (PageChannel(28, 7),), "missed the broadcast: stays behind"
    assert esme.channels == (PageChannel(0, 11),), "the 2.4 GHz radio is not moved"
    [update] = captured
    assert (update.page, update.channel) == (28, 2), "announced on the old channel"
    assert channel_change_of(update.frame) == PageChannel(28, 9)
    assert alerts.codes == [0x8F26], "only the network manager reports the change"
    assert alerts.rows[0][0] == CHF
    medium.transmit(frame(CHF, GSME, b"after"))
    clock.advance(1)
    assert gsme.counters.received == 2  # the update and the frame on the new channel


def test_move_network_refused_by_frequency_agility_sends_nothing() -> None:
    clock = SteppedClock()
    alerts = Alerts(clock)
    medium = SimulatedMedium(
        clock, agility=FrequencyAgilityConfig(min_interval_seconds=3600), on_alert=alerts
    )
    chf = medium.attach(CHF, [(28, 2)])
    gsme = medium.attach(GSME, [(28, 2)])
    assert medium.move_network(CHF, 28, 3) is True
    clock.advance(1)
    sent = chf.counters.sent

    assert medium.move_network(CHF, 28, 4) is False

    clock.advance(1)
    assert chf.counters.sent == sent, "no Mgmt_NWK_Update_req for a refused move"
    assert chf.channels == gsme.channels == (PageChannel(28, 3),)
    assert alerts.codes == [0x8F26, 0x8F2B]
    assert medium.move_network(CHF, 28, 3) is True, "already there: nothing to refuse"


def test_a_lost_channel_update_leaves_the_device_behind() -> None:
    clock = SteppedClock()
    medium = SimulatedMedium(clock)
    medium.attach(CHF, [(28, 2)])
    gsme = medium.attach(GSME, [(28, 2)])
    medium.set_link(CHF, GSME, LinkQuality(loss=1.0))
    medium.move_network(CHF, 28, 5)
    clock.advance(1)
    assert gsme.channels == (PageChannel(28, 2),)


@given(page=st.sampled_from(sorted(PAGES)), data=st.data())
def test_property_channel_change_payload_round_trips(page: int, data: Any) -> None:
    channel = data.draw(st.sampled_from(PAGES[page].channels))
    update = data.draw(st.integers(0, 255))
    payload = channel_change_payload(PageChannel(page, channel), update)
    zdo = ApsFrame(CHF, None, 0x0038, payload, 0, 0, 0x0000, dst_short=0xFFFF)
    assert channel_change_of(zdo) == PageChannel(page, channel)


@given(payload=st.binary(max_size=12))
def test_property_channel_change_decoder_never_raises(payload: bytes) -> None:
    zdo = ApsFrame(CHF, None, 0x0038, payload, 0, 0, 0x0000, dst_short=0xFFFF)
    result = channel_change_of(zdo)
    assert result is None or validate(*result) == result


def test_channel_change_of_ignores_other_frames() -> None:
    payload = channel_change_payload(PageChannel(28, 9))
    assert channel_change_of(frame(CHF, GSME, payload)) is None  # not ZDO
    scan = payload[:5] + b"\x03" + payload[6:]  # ScanDuration 3: an energy scan
    assert channel_change_of(ApsFrame(CHF, None, 0x0038, scan, 0, 0, 0, dst_short=0xFFFF)) is None
