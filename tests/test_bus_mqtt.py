"""The MQTT bus against a real Mosquitto: delivery, QoS 1 alerts, broker restarts, RPC, HAN frames.

Each test starts its own broker on a free port with a temporary config (and
persistence in the test's directory); without the mosquitto binary the tests
are skipped. Nothing waits for a fixed time: every wait is for a condition,
bounded by a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gbhil.bus.han_bridge import (
    MediumGateway,
    MqttHan,
    SharedRealTimeClock,
    fetch_clock,
    publish_clock,
)
from gbhil.bus.mqtt import (
    BusConnectError,
    BusError,
    BusMessage,
    BusRpc,
    BusTimeoutError,
    MosquittoBroker,
    MqttBus,
    RpcError,
    find_mosquitto,
    free_port,
)
from gbhil.bus.topics import Qos, RunTopics, TopicKind, new_run_id
from gbhil.han.medium import SimulatedMedium
from gbhil.han.transport import ApsFrame
from gbhil.simulator.clock import ClockError, SteppedClock

HUB = bytes.fromhex("00DB1234567890A2")
ESME = bytes.fromhex("00DB1234567890A0")
PPMID = bytes.fromhex("00DB1234567890A4")
TEST_TIMEOUT_S = 12.0
WAIT_S = 8.0


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    if find_mosquitto() is None:
        pytest.skip(
            "mosquitto is not installed (apt-get install mosquitto); MQTT bus tests need it"
        )
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture()
def topics() -> RunTopics:
    return RunTopics("test-rig", new_run_id())


def run(main: Callable[[], Coroutine[Any, Any, None]], timeout: float = TEST_TIMEOUT_S) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await main()

    asyncio.run(bounded())


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """Wait for ``condition`` (polling the event loop), failing after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


class Collector:
    """An application that records what the bus hands it."""

    def __init__(self) -> None:
        self.messages: list[BusMessage] = []

    def __call__(self, msg: BusMessage) -> None:
        self.messages.append(msg)

    def numbers(self) -> list[int]:
        return [int(m.meta["n"]) for m in self.messages]


# -- basic delivery ---------------------------------------------------------------------


def test_publish_subscribe_round_trip(broker: MosquittoBroker, topics: RunTopics) -> None:
    async def main() -> None:
        async with MqttBus(broker.address, role="a") as a, MqttBus(broker.address, role="b") as b:
            got = Collector()
            await b.subscribe(topics.everything(), got)
            ticket = a.publish(topics.wan_up(), b"\x00\x01GBCS", meta={"cra": "RESPONSE"})
            await ticket.wait()
            await until(lambda: len(got.messages) == 1, "the message")
            [msg] = got.messages
            assert msg.topic == topics.wan_up() and msg.data == b"\x00\x01GBCS"
            assert msg.meta == {"cra": "RESPONSE"} and msg.src == a.client_id
            assert msg.message_id == ticket.message_id

    run(main)


def test_retained_state_reaches_a_late_subscriber(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        async with MqttBus(broker.address, role="a") as a:
            await a.publish(topics.state("esme"), meta={"online": True}, retain=True).wait()
            async with MqttBus(broker.address, role="late") as late:
                msg = await late.next_message(topics.pattern(TopicKind.STATE), timeout=WAIT_S)
                assert msg.retained and msg.meta == {"online": True}
                # a second subscription in the same process gets the retained message too
                again = await late.next_message(topics.state("esme"), timeout=WAIT_S)
                assert again.message_id == msg.message_id

    run(main)


def test_own_messages_are_not_handed_back_unless_asked(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        async with MqttBus(broker.address, role="a") as a:
            quiet, loud = Collector(), Collector()
            await a.subscribe(topics.alerts(), quiet)
            await a.subscribe(topics.alerts(), loud, own=True)
            await a.publish(topics.alerts(), meta={"n": 1}).wait()
            await until(lambda: loud.messages != [], "own message")
            assert quiet.messages == []

    run(main)


# -- QoS 1 alerts, de-duplication, broker restarts ----------------------------------------


def test_alerts_wait_in_the_persistent_session_of_an_absent_subscriber(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        dcc_id = f"dcc-{topics.run}"
        async with MqttBus(broker.address, dcc_id) as dcc:
            await dcc.subscribe(topics.alerts(), Collector())
        # the DCC side is away; the hub raises alerts
        async with MqttBus(broker.address, role="hub") as hub:
            for n in range(10):
                hub.publish(topics.alerts(), meta={"n": n})
            await hub.flush()
        got = Collector()
        dcc = MqttBus(broker.address, dcc_id)
        await dcc.subscribe(topics.alerts(), got)  # before connecting: nothing queued is missed
        async with dcc:
            await until(lambda: len(got.messages) >= 10, "the queued alerts")
        assert got.numbers() == list(range(10))

    run(main)


def test_a_redelivered_message_id_reaches_the_application_once(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        async with (
            MqttBus(broker.address, role="hub") as hub,
            MqttBus(broker.address, role="dcc") as dcc,
        ):
            got = Collector()
            await dcc.subscribe(topics.alerts(), got)
            first = hub.envelope(b"alert", {"n": 1})
            await hub.publish_envelope(topics.alerts(), first).wait()
            # what a publisher does when the broker's PUBACK was lost: the same message again
            await hub.publish_envelope(topics.alerts(), first).wait()
            await hub.publish(topics.alerts(), meta={"n": 2}).wait()  # a barrier behind it
            await until(lambda: got.numbers()[-1:] == [2], "the barrier")
            assert got.numbers() == [1, 2]
            assert dcc.stats.duplicates == 1

    run(main)


def test_broker_restart_loses_no_alert_and_delivers_none_twice(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    """Kill Mosquitto mid-run and start it again on the same port with its database."""
    total = 300
    restart_after = 100

    async def main() -> None:
        live, away = Collector(), Collector()
        away_id = f"away-{topics.run}"
        async with (
            MqttBus(broker.address, role="hub") as hub,
            MqttBus(broker.address, role="dcc") as dcc,
        ):
            await dcc.subscribe(topics.alerts(), live)
            away_bus = MqttBus(broker.address, away_id)
            await away_bus.subscribe(topics.alerts(), away)
            await away_bus.start()
            published = 0
            outbox_while_down = 0

            def publish(count: int) -> None:
                nonlocal published
                for _ in range(count):
                    hub.publish(topics.alerts(), meta={"n": published})
                    published += 1

            publish(restart_after)
            await until(lambda: len(live.messages) >= restart_after // 2, "traffic to flow")
            await away_bus.close(flush=None)  # this subscriber is away across the restart
            broker.stop()  # SIGTERM: Mosquitto saves sessions and queued messages
            await until(lambda: not hub.connected and not dcc.connected, "the clients to notice")
            publish(total - restart_after - 100)  # the hub keeps raising alerts: outbox
            outbox_while_down = hub.outbox
            broker.start()  # same port, same database
            publish(100)
            await hub.flush(WAIT_S)
            await until(lambda: len(set(live.numbers())) == total, "every alert (live)")
            away_bus = MqttBus(broker.address, away_id)
            await away_bus.subscribe(topics.alerts(), away)
            async with away_bus:
                await until(lambda: len(set(away.numbers())) == total, "every alert (away)")
                await hub.publish(topics.alerts(), meta={"n": total}).wait()  # barrier
                await until(lambda: total in away.numbers(), "the barrier (away)")
            await until(lambda: total in live.numbers(), "the barrier (live)")

        for got in (live, away):
            numbers = got.numbers()
            assert sorted(numbers) == list(range(total + 1)), "lost or duplicated alerts"
        assert outbox_while_down > 0
        assert hub.stats.disconnects >= 1 and dcc.stats.disconnects >= 1
        assert hub.stats.acknowledged == total + 1

    run(main, timeout=14)


def test_qos0_frames_are_dropped_while_the_broker_is_away(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        async with MqttBus(broker.address, role="radio") as bus:
            broker.stop()
            await until(lambda: not bus.connected, "the disconnection")
            ticket = bus.publish(topics.han_frame(0, 11), b"\x01", qos=Qos.AT_MOST_ONCE)
            with pytest.raises(BusError, match="dropped"):
                await ticket.wait(1.0)
            assert bus.stats.dropped_qos0 == 1
            broker.start()
            await bus.wait_connected(WAIT_S)

    run(main)


def test_malformed_payloads_are_counted_not_raised(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        async with MqttBus(broker.address, role="dcc") as dcc:
            got = Collector()
            await dcc.subscribe(topics.alerts(), got)
            async with aiomqtt.Client(broker.host, broker.port) as raw:
                await raw.publish(topics.alerts(), b"not json", qos=1)
                await raw.publish(topics.alerts(), b'{"v": 1, "id": "x"}', qos=1)
            async with MqttBus(broker.address, role="hub") as hub:
                await hub.publish(topics.alerts(), meta={"n": 1}).wait()
            await until(lambda: got.numbers() == [1], "the valid message")
            assert dcc.stats.malformed == 2

    run(main)


# -- errors ------------------------------------------------------------------------------


def test_no_broker_is_a_precise_connect_error() -> None:
    async def main() -> None:
        port = free_port()
        bus = MqttBus(f"127.0.0.1:{port}", role="lonely")
        with pytest.raises(BusConnectError, match=f"mqtt://127.0.0.1:{port}"):
            await bus.start(timeout=0.5)
        await bus.close()
        with pytest.raises(BusError, match="closed"):
            bus.publish("gbhil/x/y/alerts")

    run(main)


def test_the_stepped_loop_is_refused() -> None:
    clock = SteppedClock()
    with pytest.raises(BusError, match="real-time event loop"):
        clock.run(MqttBus("127.0.0.1:1", role="x").start())


def test_publishing_needs_a_started_bus_and_a_plain_topic() -> None:
    async def main() -> None:
        bus = MqttBus("127.0.0.1:1", role="x")
        with pytest.raises(BusError, match="start"):
            bus.publish("gbhil/a/b/alerts")

    run(main)


# -- request / reply -----------------------------------------------------------------------


def test_rpc_round_trip_remote_errors_and_timeouts(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        async with (
            MqttBus(broker.address, role="srv") as srv,
            MqttBus(broker.address, role="cli") as cli,
        ):
            request, reply = topics.node_command(ESME), topics.node_result(ESME)

            async def add(a: int, b: int) -> dict[str, int]:
                return {"sum": a + b}

            def fail() -> None:
                raise ValueError("no power")

            await BusRpc(srv).serve(request, {"add": add, "fail": fail})
            rpc = BusRpc(cli, timeout=WAIT_S)
            assert await rpc.call(request, reply, "add", {"a": 2, "b": 3}) == {"sum": 5}
            with pytest.raises(RpcError, match="fail: ValueError: no power"):
                await rpc.call(request, reply, "fail")
            with pytest.raises(RpcError, match=r"unknown operation 'nope'.*add, fail"):
                await rpc.call(request, reply, "nope")
            with pytest.raises(BusTimeoutError, match="no reply to 'add'"):
                await rpc.call(topics.node_command(PPMID), reply, "add", timeout=0.3)

    run(main)


# -- the HAN over the broker -----------------------------------------------------------------


def test_shared_clock_is_rebuilt_from_its_description(
    broker: MosquittoBroker, topics: RunTopics
) -> None:
    async def main() -> None:
        from gbhil.rigs.simulated import DEFAULT_START

        clock = SharedRealTimeClock(DEFAULT_START, rate=50)
        async with MqttBus(broker.address, role="a") as a, MqttBus(broker.address, role="b") as b:
            await publish_clock(a, topics, clock).wait()
            other = await fetch_clock(b, topics, timeout=WAIT_S)
            assert other.describe() == clock.describe()
            # same time base, same numbers: read between two readings of the original
            # (up to the wall clock / monotonic clock conversion, a few microseconds)
            slack = 0.002 * clock.rate
            before, reading, after = clock.monotonic(), other.monotonic(), clock.monotonic()
            assert before - slack <= reading <= after + slack
            await asyncio.wait_for(other.sleep(5.0), timeout=WAIT_S)  # 5 s at rate 50
            assert clock.monotonic() >= before + 5.0

    run(main)
    with pytest.raises(ClockError, match="rate"):
        SharedRealTimeClock(SteppedClock().now(), rate=0)
    with pytest.raises(ClockError, match="future"):
        SharedRealTimeClock(SteppedClock().now(), epoch=4e9)


def test_gateway_and_bus_radios_exchange_frames(broker: MosquittoBroker, topics: RunTopics) -> None:
    """A hub on a simulated medium and two radios of another bus client, on one channel."""

    async def main() -> None:
        from gbhil.rigs.simulated import DEFAULT_START

        clock = SharedRealTimeClock(DEFAULT_START, rate=20)
        medium = SimulatedMedium(clock)
        hub = medium.attach(HUB, [(0, 11)])
        hub.enable_queue()
        async with (
            MqttBus(broker.address, role="hub") as a,
            MqttBus(broker.address, role="devices") as b,
        ):
            gateway = MediumGateway(a, topics, medium, {ESME: [(0, 11)], PPMID: [(0, 11)]})
            gateway.attach()
            await gateway.start()
            han = MqttHan(b, topics)
            await han.start()
            esme = han.transport(ESME, [(0, 11)], clock)
            ppmid = han.transport(PPMID, [(0, 11)], clock)
            for radio in (esme, ppmid):
                radio.enable_queue()
            with pytest.raises(BusError, match="has not joined"):
                await esme.send(ApsFrame(ESME, HUB, 0x0704, b"early"))
            await esme.join()
            await ppmid.join()

            await esme.send(ApsFrame(ESME, HUB, 0x0704, b"to the hub"))
            heard = await asyncio.wait_for(hub.receive(), WAIT_S)
            assert heard.payload == b"to the hub" and heard.src_eui64 == ESME
            assert heard.src_short == medium.node(ESME).short_address  # the medium's addressing

            await hub.send(ApsFrame(HUB, ESME, 0x0704, b"to the meter"))
            got = await asyncio.wait_for(esme.receive(), WAIT_S)
            assert got.payload == b"to the meter" and (got.page, got.channel) == (0, 11)

            await hub.send(ApsFrame(HUB, None, 0x0704, b"everyone", dst_short=0xFFFF))
            for radio in (esme, ppmid):
                frame = await asyncio.wait_for(radio.receive(), WAIT_S)
                assert frame.payload == b"everyone" and frame.is_broadcast

            await esme.send(ApsFrame(ESME, PPMID, 0x0704, b"next door"))  # same process
            frame = await asyncio.wait_for(ppmid.receive(), WAIT_S)
            assert frame.payload == b"next door"
            assert esme._queue is not None and esme._queue.empty()  # nobody hears itself

            await gateway.close()
            await han.close()
        assert gateway.counters.malformed == 0 and gateway.counters.refused == 0

    run(main)
