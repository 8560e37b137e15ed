"""The EZSP rig: the embedded rig's devices behind bellows and the emulated NCP, in virtual time.

tests/test_three_ways.py compares its ESME read and outage with the other
rigs; here: the rest of the rig contract over the serial line (sub-GHz GSME,
HHT, capture, close), the virtual-time loop it relies on, and the clear
errors for rig files it cannot build.
"""

from __future__ import annotations

import asyncio
import os
import time
import tomllib
import tty
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gbhil.gbcs.frame import Cra
from gbhil.gbcs.message import decode_message
from gbhil.han.ezsp.emulator import EmulatorConfig, EmulatorError, EzspEmulator
from gbhil.han.ezsp.serial_clock import SerialSteppedClock
from gbhil.han.medium import SimulatedMedium
from gbhil.han.network import DeliveryStatus
from gbhil.rigs.ezsp_rig import EzspRig, RigBuildError, build_ezsp_rig
from gbhil.rigs.instruments.observed import ObservedPsu
from gbhil.rigs.rigfile import parse_rig
from tests.test_bus_two_process import _gsme_read
from tests.test_rig_simulated import _ecs52

RIGS = Path(__file__).resolve().parent.parent / "rigs"
EZSP_RIG = RIGS / "ezsp-emulated.toml"
BENCH = RIGS / "bench-example.toml"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EzspRig]:
    built = build_ezsp_rig(EZSP_RIG, seed=4, capture=tmp_path_factory.mktemp("cap") / "han.pcap")
    built.run(built.start())
    yield built
    built.close()


def test_commissioning_joins_every_device_and_bellows_hears_of_it(rig: EzspRig) -> None:
    assert rig.radio is not None and rig.emulator is not None
    assert all(node.joined for node in (*rig.nodes.values(), rig.hht))
    known = {bytes(ieee)[::-1] for ieee in rig.radio.app.devices}
    assert {n.eui for n in (*rig.nodes.values(), rig.hht)} <= known
    # The hub's radios: the rig file's 2.4 GHz channel and the dual-PHY NCP's sub-GHz one.
    assert rig.radio.channels == ((0, 11), (28, 5))
    assert rig.nodes["gsme"].transport.channels == ((28, 5),)
    assert rig.emulator.counters.unknown_commands == 0


def test_gsme_read_over_sub_ghz_waits_for_the_wake_cycle(rig: EzspRig) -> None:
    async def go() -> DeliveryStatus:
        delivery = await rig.send(_gsme_read(rig, 6000))
        start = rig.clock.now()
        await rig.settle(3600)
        assert rig.clock.now() - start >= timedelta(seconds=1)
        return delivery.status

    before = rig.emulator.counters.frames_from_medium if rig.emulator else 0
    assert rig.run(go()) is DeliveryStatus.QUEUED
    responses = [decode_message(m).frame.gs for m in rig.wan]
    assert any(gs.originator_counter == 6000 and gs.cra is Cra.RESPONSE for gs in responses)
    assert rig.emulator is not None and rig.emulator.counters.frames_from_medium > before


def test_hht_local_delivery_through_the_ncp(rig: EzspRig) -> None:
    async def go() -> Any:
        return await rig.hht.deliver(_ecs52(rig, 7000, rig.esme.eui))

    result = rig.run(go())
    assert result.response is not None and not result.timed_out
    assert decode_message(result.response).frame.gs.originator_counter == 7000
    assert rig.capture is not None and rig.capture.frames_written > 0


def test_close_releases_the_pty_and_the_instrument() -> None:
    built = build_ezsp_rig(EZSP_RIG, seed=4)
    assert built.emulator is not None and built.emulator.network_up
    assert isinstance(built.mains, ObservedPsu) and built.mains.output_enabled(1)
    built.close()
    assert built.radio is not None and not built.radio.joined
    assert not built.emulator.network_up
    with pytest.raises(EmulatorError, match="not started"):
        built.emulator.port  # noqa: B018
    assert built.mains.release is None  # the VISA resource manager is closed


# -- the loop it runs on --------------------------------------------------------------------


def test_serial_stepped_loop_keeps_virtual_time_for_ptys_and_executor_jobs() -> None:
    clock = SerialSteppedClock()

    async def main() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(slave, False)
        try:
            far = loop.create_future()
            loop.call_later(10.0, far.set_result, None)  # a pending timer to jump to
            heard = loop.create_future()
            loop.add_reader(slave, lambda: heard.done() or heard.set_result(os.read(slave, 64)))
            os.write(master, b"\x1a\xc0\x38\xbc\x7e")
            assert await heard == b"\x1a\xc0\x38\xbc\x7e"
            after_io = clock.monotonic()
            loop.remove_reader(slave)
            await loop.run_in_executor(None, time.sleep, 0.05)  # e.g. serialx's os.open
            after_job = clock.monotonic()
            await far
            return after_io, after_job, clock.monotonic()
        finally:
            os.close(master)
            os.close(slave)

    after_io, after_job, at_timer = clock.run(main())
    assert (after_io, after_job, at_timer) == (0.0, 0.0, 10.0)


def test_emulator_accepts_the_serial_stepped_clock() -> None:
    medium = SimulatedMedium(SerialSteppedClock())
    assert EzspEmulator(medium, EmulatorConfig(bytes(8))).clock is medium.clock


# -- what it cannot build --------------------------------------------------------------------


def _edited(path: Path, edit: Any) -> Any:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    edit(data)
    return parse_rig(data, path=path)


def test_a_real_device_cannot_be_simulated() -> None:
    with pytest.raises(RigBuildError, match=r"device 'esme' \(esme, 00124B0000E5A001\) is kind"):
        build_ezsp_rig(BENCH)


def test_a_real_device_behind_a_real_stick_is_refused_with_the_reason() -> None:
    def on_a_stick(data: dict[str, Any]) -> None:
        radio = data["place"][0]["radio"]
        radio.pop("emulated")
        radio.pop("emulator")
        radio["port"] = "/dev/ttyUSB0"

    with pytest.raises(RigBuildError, match=r"'esme'.*wall-clock time"):
        build_ezsp_rig(_edited(BENCH, on_a_stick))


def test_sub_ghz_on_a_single_phy_ncp_is_refused() -> None:
    def one_phy(data: dict[str, Any]) -> None:
        data["place"][0]["radio"]["emulator"]["phy_interfaces"] = 1

    with pytest.raises(RigBuildError, match="one PHY"):
        build_ezsp_rig(_edited(EZSP_RIG, one_phy))


def test_a_device_the_rig_has_no_model_for_is_refused() -> None:
    def other_eui(data: dict[str, Any]) -> None:
        data["device"][2]["eui"] = "00DB1234567890FF"

    with pytest.raises(RigBuildError, match=r"'esme'.*00DB1234567890A0"):
        build_ezsp_rig(_edited(EZSP_RIG, other_eui))

    def no_hht(data: dict[str, Any]) -> None:
        data["device"] = data["device"][:-1]

    with pytest.raises(RigBuildError, match="add \\[\\[device\\]\\] entries for: hht"):
        build_ezsp_rig(_edited(EZSP_RIG, no_hht))


def test_a_simulated_place_is_not_an_ezsp_rig() -> None:
    with pytest.raises(RigBuildError, match="exactly one place with driver"):
        build_ezsp_rig(RIGS / "simulated.toml")
