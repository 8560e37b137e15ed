"""One scenario, three ways of running the HAN, the same results.

The scenario: the DCC reads the ESME (ECS52), the mains fails for 4 minutes
(more than the 3 minutes after which the DCC raises AD1) and comes back, the
ESME raises its supply-restored alert, and a last read makes sure whatever
the outage caused has reached the WAN. It runs

(a) all in one process on the embedded SimulatedRig (the reference);
(b) with the devices behind gbhil's EZSP emulator, reached by the Comms Hub
    through the unmodified bellows stack over a pseudo-terminal
    (rigs/ezsp-emulated.toml, mains on a pyvisa-sim Rigol DP832);
(c) with the ESME in a second process, through Mosquitto (the helpers of
    tests/test_bus_two_process.py; skipped when mosquitto is not installed).

What must not depend on the way: every WAN message's CRA flag, message code,
originator, target, counter (responses), payload structure and data, the
alert codes, the hub power events, and the AD1 PowerOutageEvent the DCC
emulator builds from them (skipped without the DUIS XSD from ../shared).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zigpy.types as zt

from gbhil.bus.mqtt import MosquittoBroker, find_mosquitto
from gbhil.dcc.delivery import MessageKind
from gbhil.dcc.emulator import DccEmulator, EmulatorConfig, default_emulator
from gbhil.duis.model import DCCAlertMessage, PowerOutageEvent, parse_response, wire_datetime
from gbhil.gbcs.frame import Cra
from gbhil.rigs.ezsp_rig import EzspRig, build_ezsp_rig
from gbhil.rigs.instruments.observed import ObservedPsu
from gbhil.rigs.simulated import PowerEvent, SimulatedRig
from tests.conftest import CONFORMANCE
from tests.test_bus_two_process import (
    BARRIER_COUNTER,
    ECS80_SUPPLY_RESTORED,
    HOST_START_TIMEOUT_S,
    RATE,
    READ_COUNTER,
    SEED,
    WAIT_S,
    Outcome,
    outcome,
    read_then_outage,
    split_rig,
)
from tests.test_rig_simulated import NETWORK_OPERATOR, _ecs52

MINUTES = 4
#: AD1 goes to the Import Supplier and the Network Operator of each meter on the hub, the
#: ESME's and the GSME's (seed 004 5.9.4): four, as in tests/test_dcc_processing.py.
AD1_RECIPIENTS = 4
EZSP_RIG_FILE = Path(__file__).resolve().parent.parent / "rigs" / "ezsp-emulated.toml"
SCHEMA_DIR = CONFORMANCE / "duis" / "schema"
NO_XSD = f"DUIS XSD not found under {SCHEMA_DIR} (../shared): the AD1 (DUIS) part is skipped"
DCC_CONFIG = EmulatorConfig(duis_port=None, smki_port=None)


@dataclasses.dataclass
class Ad1:
    """One AD1 as a User receives it, reduced to what must not depend on the way."""

    user: str
    code: str
    hub: str
    mpxn: str
    starts_at_outage: bool  # its StartDateTime is the hub's outage event time


@dataclasses.dataclass
class WayResult:
    responses: list[Outcome]
    alerts: list[Outcome]
    power: list[str]
    outage: timedelta
    delivery: str
    ad1: list[Ad1] | None  # None: no DUIS XSD here


def _dcc(rig: Any) -> tuple[DccEmulator, list[tuple[str, bytes, MessageKind]]] | None:
    """A DCC emulator on ``rig`` whose outgoing DUIS messages are collected, or None (no XSD)."""
    if not SCHEMA_DIR.is_dir():
        return None
    emulator = default_emulator(rig, config=DCC_CONFIG)
    sent: list[tuple[str, bytes, MessageKind]] = []
    emulator.processor.sink = lambda user, body, kind, rid: sent.append((user, body, kind))
    return emulator, sent


def _ad1(sent: list[tuple[str, bytes, MessageKind]], outage_at: datetime) -> list[Ad1]:
    found = []
    for user, body, kind in sent:
        if kind is not MessageKind.DCC_ALERT:
            continue
        alert = parse_response(body).body
        assert isinstance(alert, DCCAlertMessage) and isinstance(alert.body, PowerOutageEvent)
        event = alert.body
        found.append(Ad1(user, alert.dcc_alert_code, event.comms_hub_device_id, event.mpxn,
                         event.start_date_time == wire_datetime(outage_at)))  # fmt: skip
    return sorted(found, key=lambda a: (a.user, a.mpxn))


def _stepped_way(rig: SimulatedRig) -> WayResult:
    """The scenario on a rig that runs in this process on a stepped loop (ways a and b)."""
    dcc = _dcc(rig)
    rig.run(rig.start())
    if dcc is not None:
        rig.run(dcc[0].start())

    delivery = rig.run(read_then_outage(rig, MINUTES))
    if dcc is not None:
        rig.run(dcc[0].stop())
    messages = [outcome(m) for m in rig.wan]
    events = rig.power_events
    return WayResult(
        [m for m in messages if m.cra is Cra.RESPONSE],
        [m for m in messages if m.cra is Cra.ALERT],
        [e.kind.value for e in events],
        events[1].at - events[0].at,
        delivery,
        None if dcc is None else _ad1(dcc[1], events[0].at),
    )


@pytest.fixture(scope="module")
def in_process() -> WayResult:
    rig = SimulatedRig.build(seed=SEED)
    try:
        return _stepped_way(rig)
    finally:
        rig.close()


@dataclasses.dataclass
class EzspWay:
    result: WayResult
    frames_to_devices: int
    frames_from_devices: int
    radio_sent: int
    radio_received: int
    delivery_failures: int
    bellows_knows_esme: bool
    mains: str


@pytest.fixture(scope="module")
def over_ezsp() -> Iterator[EzspWay]:
    rig = build_ezsp_rig(EZSP_RIG_FILE, seed=SEED)
    try:
        assert isinstance(rig, EzspRig) and rig.radio is not None and rig.emulator is not None
        result = _stepped_way(rig)
        emu, radio = rig.emulator.counters, rig.radio.counters
        ieee = zt.EUI64(rig.esme.eui[::-1])
        yield EzspWay(
            result, emu.frames_to_medium, emu.frames_from_medium, radio.sent, radio.received,
            radio.delivery_failures, ieee in rig.radio.app.devices, repr(rig.mains),
        )  # fmt: skip
    finally:
        rig.close()


@pytest.fixture(scope="module")
def second_process(tmp_path_factory: pytest.TempPathFactory) -> WayResult:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto): way (c) is skipped")
    with MosquittoBroker(tmp_path_factory.mktemp("broker")) as broker:

        async def bounded() -> WayResult:
            async with asyncio.timeout(HOST_START_TIMEOUT_S + MINUTES * 60 / RATE + 4 * WAIT_S):
                return await _split_way(broker)

        return asyncio.run(bounded())


async def _split_way(broker: MosquittoBroker) -> WayResult:
    async with split_rig(broker, ["esme"]) as split:
        rig, client = split.side.rig, split.dcc
        client.send(_ecs52(rig, READ_COUNTER, rig.esme.eui))
        await client.response(READ_COUNTER, timeout=WAIT_S)
        rig.mains.set_output(False)
        await split.clock.sleep(MINUTES * 60)
        rig.mains.set_output(True)
        await client.alert(ECS80_SUPPLY_RESTORED, timeout=WAIT_S)
        await client.wait_until(lambda: len(client.power_events) == 2, "power events")
        client.send(_ecs52(rig, BARRIER_COUNTER, rig.esme.eui))
        await client.response(BARRIER_COUNTER, timeout=WAIT_S)
        [delivery, _] = await split.bridge.wait_deliveries(2)
        notices = client.power_events
        ad1 = None
        dcc = _dcc(rig)
        if dcc is not None:
            # The DCC processes the power events as they crossed the broker.
            for notice in notices:
                dcc[0].processor.power_event(notice.kind, notice.chf, notice.at)
            await asyncio.sleep(0)
            await dcc[0].processor.close()
            ad1 = _ad1(dcc[1], notices[0].at)
        return WayResult(
            [outcome(m.raw) for m in client.messages],
            [outcome(m.raw) for m in client.alerts],
            [p.kind for p in notices],
            notices[1].at - notices[0].at,
            delivery.status.name,
            ad1,
        )


# -- the comparisons --------------------------------------------------------------------------


def _check_reference(ref: WayResult) -> None:
    """What the scenario must give at all: two reads answered, one restored alert, two events."""
    assert ref.delivery == "SENT"
    assert [r.counter for r in ref.responses] == [READ_COUNTER, BARRIER_COUNTER]
    assert [(a.message_code, a.data, a.target) for a in ref.alerts] == [
        (ECS80_SUPPLY_RESTORED, 0x8F36, NETWORK_OPERATOR)
    ]
    assert ref.power == [PowerEvent.OUTAGE.value, PowerEvent.RESTORED.value]
    assert ref.outage == timedelta(minutes=MINUTES)


def _same_gbcs(ref: WayResult, other: WayResult) -> None:
    assert other.delivery == ref.delivery
    assert other.responses == ref.responses
    assert other.alerts == ref.alerts
    assert other.power == ref.power


def _same_ad1(ref: WayResult, other: WayResult) -> None:
    if ref.ad1 is None or other.ad1 is None:
        pytest.skip(NO_XSD)
    assert len(ref.ad1) == AD1_RECIPIENTS
    assert all(a.code == "AD1" and a.starts_at_outage for a in ref.ad1)
    assert other.ad1 == ref.ad1


def test_ezsp_rig_gives_the_in_process_results(in_process: WayResult, over_ezsp: EzspWay) -> None:
    _check_reference(in_process)
    _same_gbcs(in_process, over_ezsp.result)
    # Virtual time through the serial line: the outage lasts exactly as long.
    assert over_ezsp.result.outage == in_process.outage
    # The frames did cross the pty, bellows and the emulated NCP, both ways, all delivered.
    assert over_ezsp.frames_to_devices >= over_ezsp.radio_sent >= 2
    assert over_ezsp.frames_from_devices >= over_ezsp.radio_received >= 2
    assert over_ezsp.delivery_failures == 0
    assert over_ezsp.bellows_knows_esme  # commissioning reported the join to bellows
    assert over_ezsp.mains.startswith(ObservedPsu.__name__)  # the pyvisa-sim DP832


def test_ezsp_rig_gives_the_in_process_ad1(in_process: WayResult, over_ezsp: EzspWay) -> None:
    _same_ad1(in_process, over_ezsp.result)


def test_second_process_gives_the_in_process_results(
    in_process: WayResult, second_process: WayResult
) -> None:
    _check_reference(in_process)
    _same_gbcs(in_process, second_process)
    assert second_process.outage >= timedelta(minutes=MINUTES)


def test_second_process_gives_the_in_process_ad1(
    in_process: WayResult, second_process: WayResult
) -> None:
    _same_ad1(in_process, second_process)
