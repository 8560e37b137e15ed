"""Acceptance: the default rig with its meters in a second process, through Mosquitto.

Process A (this test) runs the Comms Hub, the rest of the rig and the DCC
side; process B (``python -m gbhil.bus.device_host``) runs the ESME (and, in
the second scenario, the PPMID and the GSME too). APS frames, joining, the
mains commands, the WAN and the hub's power events all cross a real broker.
The scenario of ``tests/test_rig_simulated.py`` (an ESME read, then a mains
outage and its restoration alert) must give the same results as the
all-in-one stepped rig with the same PKI seed: the same WAN messages (CRA
flag, message code, originator, target, counter, payload structure and
data), the same alert codes, the same power events. The second scenario
queues a GSME read for the sleepy GSME, wakes it, and compares likewise.

Both processes run on a shared real-time clock at RATE times real time (the
stepped clock cannot span processes; docs/mqtt.md), so a 4-minute outage
takes 6 s. Waits are for conditions, each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from gbhil.bus.device_host import EXIT_BUS_ERROR, HubSide, main, start_hub_side
from gbhil.bus.han_bridge import SharedRealTimeClock, publish_clock
from gbhil.bus.mqtt import MosquittoBroker, MqttBus, find_mosquitto
from gbhil.bus.topics import RunTopics, new_run_id
from gbhil.bus.wan_bridge import DccWanClient, HubWanBridge
from gbhil.gbcs.dlms import AccessResponse
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation
from gbhil.gbcs.gbz import GbzMessage, PlainComponent, encode_gbz
from gbhil.gbcs.message import decode_message
from gbhil.gbcs.security import Check, protect, verify_mac, verify_signature
from gbhil.gbcs.zcl import ReadAttributes, ZclHeader
from gbhil.rigs.simulated import DEFAULT_START, PowerEvent, SimulatedRig
from tests.test_rig_simulated import NETWORK_OPERATOR, SUPPLIER, _ecs52

SEED = 4
#: Virtual seconds per wall second in the two-process run. The 10 s tunnel timeout
#: becomes 250 ms of wall time: far above the broker's sub-millisecond latency.
RATE = 40.0
READ_COUNTER = 5000
BARRIER_COUNTER = 5001
GSME_COUNTER = 6000
ECS80_SUPPLY_RESTORED = 0x0067
HOST_START_TIMEOUT_S = 20.0
WAIT_S = 10.0


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); needed for this test")
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


# -- what is compared -------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """The structure of a decoded payload: types all the way down, no values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = (_shape(getattr(value, f.name)) for f in dataclasses.fields(value))
        return (type(value).__name__, *fields)
    if isinstance(value, tuple | list):
        return tuple(_shape(v) for v in value)
    if isinstance(value, Enum):
        return value
    return type(value).__name__


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One WAN message, reduced to what must not depend on where the meters ran."""

    cra: Cra
    message_code: int
    originator: bytes
    target: bytes
    counter: int | None  # responses only: alerts count on the device's own clock
    shape: Any
    data: Any  # response data and results; the alert code of an alert


def outcome(raw: bytes) -> Outcome:
    msg = decode_message(raw)
    gs = msg.frame.gs
    payload = msg.payload
    data: Any = None  # GBZ payloads are encrypted: their structure is compared
    counter: int | None = None
    if gs.cra is Cra.RESPONSE:
        counter = gs.originator_counter
        if isinstance(payload, AccessResponse):
            data = (payload.data, payload.results)
    else:
        data = payload.body.items[0].value  # type: ignore[union-attr]  # the alert code
    return Outcome(
        gs.cra, gs.message_code, gs.business_originator, gs.business_target, counter,
        _shape(payload), data,
    )  # fmt: skip


def _gsme_read(rig: SimulatedRig, counter: int) -> bytes:
    """A GBZ read of CurrentSummationDelivered (as in tests/test_rig_simulated.py)."""
    comp = PlainComponent(0x0702, ZclHeader(0x00, 0, 0x00), ReadAttributes((0x0000,)))
    gs = GeneralSigning(
        Cra.COMMAND, counter, SUPPLIER, rig.gsme.eui, OtherInformation(0x0074),
        encode_gbz(GbzMessage((comp,))),
    )  # fmt: skip
    return protect(rig.dcc, gs, signed=False, maced=True).encode()


@dataclasses.dataclass
class RunResult:
    responses: list[Outcome]
    alerts: list[Outcome]
    power: list[str]
    outage: timedelta
    delivery: str


# -- the all-in-one reference ---------------------------------------------------------------


async def read_then_outage(rig: Any, minutes: int) -> str:
    """The scenario every way runs: an ESME read, a mains cut of ``minutes``, restoration,
    then a barrier read (everything the outage caused is in before it); the read's
    delivery status."""
    delivery = await rig.send(_ecs52(rig, READ_COUNTER, rig.esme.eui))
    await rig.settle()
    rig.mains.set_output(False)
    await rig.clock.sleep(minutes * 60)
    rig.mains.set_output(True)
    await rig.settle(120)
    await rig.send(_ecs52(rig, BARRIER_COUNTER, rig.esme.eui))
    await rig.settle()
    return str(delivery.status.name)


def in_process(minutes: int) -> RunResult:
    rig = SimulatedRig.build(seed=SEED)
    try:
        rig.run(rig.start())

        delivery = rig.run(read_then_outage(rig, minutes))
        messages = [outcome(m) for m in rig.wan]
        return RunResult(
            [m for m in messages if m.cra is Cra.RESPONSE],
            [m for m in messages if m.cra is Cra.ALERT],
            [e.kind.value for e in rig.power_events],
            rig.power_events[1].at - rig.power_events[0].at,
            delivery,
        )
    finally:
        rig.close()


# -- the same, with meters in a second process ---------------------------------------------------


@dataclasses.dataclass
class Split:
    """A running split rig: hub side here, device host in a subprocess, DCC side here."""

    side: HubSide
    dcc: DccWanClient
    bridge: HubWanBridge
    clock: SharedRealTimeClock
    hub_bus: MqttBus
    topics: RunTopics


@contextlib.asynccontextmanager
async def split_rig(broker: MosquittoBroker, devices: list[str]) -> AsyncIterator[Split]:
    """Start a device host for ``devices``, then the hub side; commission; stop it all after."""
    topics = RunTopics("acceptance", new_run_id())
    clock = SharedRealTimeClock(DEFAULT_START, rate=RATE)
    async with (
        MqttBus(broker.address, role="hub") as hub_bus,
        MqttBus(broker.address, role="dcc") as dcc_bus,
    ):
        await publish_clock(hub_bus, topics, clock).wait()
        host = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gbhil.bus.device_host",
            "--broker", f"{broker.host}:{broker.port}", "--rig", topics.rig, "--run",
            topics.run, "--rig-seed", str(SEED), "--devices", ",".join(devices),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        side = None
        try:
            for name in devices:
                state = await hub_bus.next_message(
                    topics.state(name),
                    timeout=HOST_START_TIMEOUT_S,
                    predicate=lambda m: bool(m.meta.get("online")),
                )
                assert state.meta["joined"] is False
            side = await start_hub_side(hub_bus, topics, clock, seed=SEED, remote_devices=devices)
            await side.rig.start()  # commissioning: the remote meters join through the bus
            for name in devices:
                result = side.remote[name].last_result
                assert result is not None and result.accepted, f"{name}: {result}"
                state = await hub_bus.next_message(
                    topics.state(name), timeout=WAIT_S, predicate=lambda m: m.meta.get("joined")
                )
            bridge = HubWanBridge(hub_bus, topics)
            bridge.attach(side.rig)
            await bridge.start()
            dcc = DccWanClient(dcc_bus, topics)
            await dcc.start()
            yield Split(side, dcc, bridge, clock, hub_bus, topics)
            for m in dcc.messages:
                assert verify_mac(side.rig.dcc, decode_message(m.raw).frame) is Check.VERIFIED
            assert side.gateway.counters.refused == 0 and side.gateway.counters.malformed == 0
            assert dcc.malformed == 0
        finally:
            if side is not None:
                await side.stop_hosts(timeout=WAIT_S)
                await side.close()
            try:
                await asyncio.wait_for(host.wait(), WAIT_S)
            except TimeoutError:
                host.kill()
                await host.wait()
            output = (await host.stdout.read()).decode(errors="replace") if host.stdout else ""
            print(output)  # the device host's log, shown by pytest when the test fails
    assert host.returncode == 0, f"device host exited with {host.returncode}:\n{output}"


async def esme_read_and_outage(broker: MosquittoBroker, minutes: int) -> RunResult:
    async with split_rig(broker, ["esme"]) as split:
        rig, dcc = split.side.rig, split.dcc
        dcc.send(_ecs52(rig, READ_COUNTER, rig.esme.eui))
        await dcc.response(READ_COUNTER, timeout=WAIT_S)

        rig.mains.set_output(False)
        await split.clock.sleep(minutes * 60)
        rig.mains.set_output(True)
        restored = await dcc.alert(ECS80_SUPPLY_RESTORED, timeout=WAIT_S)
        gs = decode_message(restored.raw).frame.gs
        assert verify_signature(rig.dcc, gs) is Check.VERIFIED
        await dcc.wait_until(lambda: len(dcc.power_events) == 2, "power events")
        # a last read: whatever the outage raised is on the WAN before its response
        dcc.send(_ecs52(rig, BARRIER_COUNTER, rig.esme.eui))
        await dcc.response(BARRIER_COUNTER, timeout=WAIT_S)
        [delivery, _] = await split.bridge.wait_deliveries(2)
        return RunResult(
            [outcome(m.raw) for m in dcc.messages],
            [outcome(m.raw) for m in dcc.alerts],
            [p.kind for p in dcc.power_events],
            dcc.power_events[1].at - dcc.power_events[0].at,
            delivery.status.name,
        )


@pytest.mark.parametrize("minutes, alert", [(2, 0x8F35), (4, 0x8F36)])
def test_esme_in_a_second_process_gives_the_in_process_results(
    broker: MosquittoBroker, minutes: int, alert: int
) -> None:
    reference = in_process(minutes)

    async def bounded() -> RunResult:
        async with asyncio.timeout(HOST_START_TIMEOUT_S + minutes * 60 / RATE + 3 * WAIT_S):
            return await esme_read_and_outage(broker, minutes)

    split = asyncio.run(bounded())

    assert reference.delivery == split.delivery == "SENT"
    assert [r.counter for r in split.responses] == [READ_COUNTER, BARRIER_COUNTER]
    assert split.responses == reference.responses
    assert split.alerts == reference.alerts
    assert [a.data for a in split.alerts] == [alert]
    assert split.alerts[0].target == NETWORK_OPERATOR
    assert split.power == reference.power == [PowerEvent.OUTAGE.value, PowerEvent.RESTORED.value]
    assert split.outage >= timedelta(minutes=minutes)
    assert reference.outage == timedelta(minutes=minutes)


def test_every_meter_in_a_second_process_esme_and_gsme_reads(broker: MosquittoBroker) -> None:
    """ESME, PPMID and GSME hosted together; the GSME read waits for its (commanded) wake."""
    rig = SimulatedRig.build(seed=SEED)
    try:
        rig.run(rig.start())

        async def reference() -> tuple[str, Any]:
            delivery = await rig.send(_gsme_read(rig, GSME_COUNTER))
            await rig.nodes["gsme"].wake()
            await rig.send(_ecs52(rig, READ_COUNTER, rig.esme.eui))
            await rig.settle()
            return delivery.status.name, rig.hub.mirrors[rig.gsme.eui].reports

        ref_delivery, ref_reports = rig.run(reference())
        expected = [outcome(m) for m in rig.wan]
    finally:
        rig.close()

    async def split_run() -> tuple[list[Outcome], str, dict[str, Any], int]:
        async with asyncio.timeout(HOST_START_TIMEOUT_S + 4 * WAIT_S):
            async with split_rig(broker, ["esme", "ppmid", "gsme"]) as split:
                rig, dcc = split.side.rig, split.dcc
                dcc.send(_gsme_read(rig, GSME_COUNTER))
                [delivery] = await split.bridge.wait_deliveries(1)
                woke = await split.side.remote["gsme"].wake()
                await dcc.response(GSME_COUNTER, timeout=WAIT_S)
                dcc.send(_ecs52(rig, READ_COUNTER, rig.esme.eui))
                await dcc.response(READ_COUNTER, timeout=WAIT_S)
                reports = rig.hub.mirrors[rig.gsme.eui].reports
                got = [outcome(m.raw) for m in dcc.messages]
                return got, delivery.status.name, dict(woke), reports

    got, delivery, woke, reports = asyncio.run(split_run())
    assert delivery == ref_delivery == "QUEUED"
    assert woke == {"messages": 1, "sent": 1, "mirrored": True}
    assert got == expected
    assert [o.counter for o in got] == [GSME_COUNTER, READ_COUNTER]
    assert reports == ref_reports >= 1  # the GPF mirror follows the remote GSME's reports


def test_device_host_refuses_devices_it_cannot_host(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--broker", "127.0.0.1:1", "--rig", "r", "--run", "x", "--rig-seed", "1"]
    assert main([*argv, "--devices", "esme,hht"]) == EXIT_BUS_ERROR
    assert "'hht' cannot be hosted in another process" in capsys.readouterr().err
    assert main([*argv, "--devices", "esme,esme"]) == EXIT_BUS_ERROR
    assert "named twice" in capsys.readouterr().err
    assert main([*argv, "--devices", "esme", "--run", "a/b"]) == EXIT_BUS_ERROR
    assert "run ID must be" in capsys.readouterr().err
