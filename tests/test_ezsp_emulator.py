"""The EZSP emulator against the unmodified bellows stack, EzspRadio and probe_radio.

Everything here goes through a real pseudo-terminal: bellows opens the pty
slave as it would open a USB stick. bellows runs on asyncio timeouts, so these
tests use the real-time clock; every wait is bounded, no assertion is about
time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import bellows.zigbee.application as bellows_app
import pytest
import zigpy.config as zconf
import zigpy.exceptions
import zigpy.types as zt

from gbhil.gbcs.frame import decode_frame
from gbhil.gbcs.zcl_catalogue import CLUSTER_TUNNELING
from gbhil.han.ezsp import ash
from gbhil.han.ezsp.emulator import EmulatorConfig, EmulatorError, EzspEmulator
from gbhil.han.ezsp.frames import EMULATED_VERSIONS, FC_RESPONSE, SlStatus
from gbhil.han.ezsp.probe import ProbeProblem, RadioExpectation, probe_radio
from gbhil.han.ezsp.radio import NO_CERTIFICATE_MESSAGE, EzspRadio, RadioError
from gbhil.han.medium import SimulatedMedium
from gbhil.han.transport import PROFILE_SMART_ENERGY, ApsFrame, TxStatus
from gbhil.simulator.clock import RealTimeClock, create_clock

CHF = bytes.fromhex("00db123456789000")
ESME = bytes.fromhex("00db1234567890a0")
GSME = bytes.fromhex("00db1234567890b0")
CHANNEL = 15
WAIT = 5.0  # upper bound for any single event; never reached when things work

# gbcs-facts 1.7: ECS52 read firmware version, supplier -> ESME, MACed (RTDS).
ECS52 = bytes.fromhex(
    "DD000000000000471100000000"
    "DF090100000000000003EA0890B3D51F30010000"
    "0800DB1234567890A000020059"
    "13D9200003EA00010100010000000201FF020100"
    "00"
    "CBA4104EE6FDCCFA05526F8D"
)
# ZCL Tunnelling TransferData: frame control, TSN, command, tunnel ID (LE), GBCS tunnel byte.
FC_TO_CLIENT = 0x19  # cluster-specific, server -> client, no default response
FC_TO_SERVER = 0x11
TRANSFER_DATA_TO_CLIENT = 0x01
TRANSFER_DATA_TO_SERVER = 0x02
GBCS_GET_RESPONSE = 0x02
GBCS_PUT = 0x03
TUNNEL_ID = 5


def transfer_data(fc: int, tsn: int, command: int, gbcs_kind: int, message: bytes) -> bytes:
    return (
        bytes((fc, tsn, command))
        + TUNNEL_ID.to_bytes(2, "little")
        + bytes((gbcs_kind,))
        + (message)
    )


def run(main: Callable[[RealTimeClock], Coroutine[Any, Any, None]]) -> None:
    clock = create_clock("real-time")
    assert isinstance(clock, RealTimeClock)
    clock.run(asyncio.wait_for(main(clock), 30))


def bellows_config(port: str, **extra: Any) -> dict[str, Any]:
    return {
        zconf.CONF_DEVICE: {zconf.CONF_DEVICE_PATH: port},
        zconf.CONF_DATABASE: None,
        zconf.CONF_NWK: {zconf.CONF_NWK_CHANNEL: CHANNEL},
        zconf.CONF_NWK_BACKUP_ENABLED: False,
        zconf.CONF_TOPO_SCAN_ENABLED: False,
        zconf.CONF_OTA: {zconf.CONF_OTA_ENABLED: False},
        **extra,
    }


def first(register: Callable[[Callable[[ApsFrame], None]], object]) -> asyncio.Future[ApsFrame]:
    future: asyncio.Future[ApsFrame] = asyncio.get_running_loop().create_future()

    def on_frame(frame: ApsFrame) -> None:
        if not future.done():
            future.set_result(frame)

    register(on_frame)
    return future


async def within(awaitable: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(awaitable, WAIT)


# -- the unmodified bellows stack ------------------------------------------------------


def test_unmodified_bellows_forms_then_resumes_the_network() -> None:
    async def main(clock: RealTimeClock) -> None:
        medium = SimulatedMedium(clock)
        esme = medium.attach(ESME, [(0, CHANNEL)], short_address=0x1234)
        async with EzspEmulator(medium, EmulatorConfig(CHF)) as emu:
            app = await bellows_app.ControllerApplication.new(
                bellows_config(emu.port), auto_form=True
            )
            try:
                info = app.state.network_info
                assert app.state.node_info.ieee == zt.EUI64(CHF[::-1])
                assert app.state.node_info.version == "8.0.2.0 build 0"
                assert info.channel == CHANNEL
                assert emu.network is not None and emu.network.pan_id == info.pan_id
                assert emu.node.channels == ((0, CHANNEL),) and emu.node.joined
                # A plain bellows send: sendUnicast -> the medium -> the device.
                heard = first(esme.add_listener)
                await app.send_packet(
                    zt.ZigbeePacket(
                        src=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=0x0000),
                        src_ep=1,
                        dst=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=0x1234),
                        dst_ep=1,
                        tsn=1,
                        profile_id=PROFILE_SMART_ENERGY,
                        cluster_id=CLUSTER_TUNNELING,
                        data=zt.SerializableBytes(b"\x11\x01\x00\x05\x00"),
                    )
                )
                frame = await within(heard)
                assert frame.src_eui64 == CHF and frame.src_short == 0x0000
                # Frames the NCP does not implement get invalidCommand, as on a stick.
                with pytest.raises(bellows_app.InvalidCommandError):
                    await app._ezsp.getLibraryStatus(libraryId=0)
            finally:
                await app.shutdown()
            formed = info
            assert emu.counters.by_name["formNetwork"] == 1

            # Second start: networkInit finds the network kept in "flash".
            app = await bellows_app.ControllerApplication.new(
                bellows_config(emu.port), auto_form=False
            )
            try:
                resumed = app.state.network_info
                assert resumed.pan_id == formed.pan_id
                assert resumed.extended_pan_id == formed.extended_pan_id
                assert resumed.network_key.key == formed.network_key.key
                assert emu.counters.by_name["formNetwork"] == 1
            finally:
                await app.shutdown()
            assert emu.counters.unknown_commands == 1  # only getLibraryStatus

    run(main)


def test_resume_without_network_and_no_forming_is_refused() -> None:
    async def main(clock: RealTimeClock) -> None:
        async with EzspEmulator(SimulatedMedium(clock), EmulatorConfig(CHF)) as emu:
            with pytest.raises(zigpy.exceptions.NetworkNotFormed):
                await bellows_app.ControllerApplication.new(
                    bellows_config(emu.port), auto_form=False
                )
            with pytest.raises(RadioError, match="has no network and forming"):
                await EzspRadio.open(emu.port, channel=CHANNEL, form=False, clock=clock)

    run(main)


# -- EzspRadio: APS unicasts both ways -------------------------------------------------


def test_tunnelled_gbcs_message_both_ways_between_radio_and_simulated_device() -> None:
    async def main(clock: RealTimeClock) -> None:
        medium = SimulatedMedium(clock)
        async with EzspEmulator(medium, EmulatorConfig(CHF)) as emu:
            esme = medium.attach(ESME, [(0, CHANNEL)])
            radio = await EzspRadio.open(emu.port, channel=CHANNEL, clock=clock)
            async with radio:
                assert radio.eui64 == CHF and radio.joined
                assert radio.channels == ((0, CHANNEL),)
                assert radio.protocol_version == 14

                # CHF -> ESME: the ECS52 command in a Tunnelling TransferData.
                down = transfer_data(
                    FC_TO_CLIENT, 0x21, TRANSFER_DATA_TO_CLIENT, GBCS_GET_RESPONSE, ECS52
                )
                heard = first(esme.add_listener)
                result = await radio.send(ApsFrame(CHF, ESME, CLUSTER_TUNNELING, down))
                assert result.status is TxStatus.SENT and result.channels == ((0, CHANNEL),)
                frame = await within(heard)
                assert frame.payload == down
                assert frame.cluster_id == CLUSTER_TUNNELING
                assert frame.profile_id == PROFILE_SMART_ENERGY
                assert (frame.src_short, frame.dst_short) == (0x0000, esme.short_address)
                assert decode_frame(frame.payload[6:]).gs.message_code == 0x0059

                # ESME -> CHF: the same GBCS bytes back as a tunnel PUT.
                up = transfer_data(FC_TO_SERVER, 0x22, TRANSFER_DATA_TO_SERVER, GBCS_PUT, ECS52)
                received = first(radio.add_listener)
                await esme.send(ApsFrame(ESME, CHF, CLUSTER_TUNNELING, up))
                frame = await within(received)
                assert frame.src_eui64 == ESME and frame.dst_eui64 == CHF
                assert frame.src_short == esme.short_address
                assert frame.payload == up and decode_frame(frame.payload[6:]).encode() == ECS52
                assert (frame.page, frame.channel) == (0, CHANNEL)
                assert radio.counters.sent == 1 and radio.counters.received == 1
                assert radio.counters.delivery_failures == 0

                # A device that left: the NCP reports no delivery; the send still
                # returns (as on the simulated medium), and the failure is counted.
                await esme.leave()
                await radio.send(ApsFrame(CHF, ESME, CLUSTER_TUNNELING, down))
                assert radio.counters.delivery_failures == 1
                with pytest.raises(RadioError, match="not known to the NCP"):
                    await radio.send(ApsFrame(CHF, GSME, CLUSTER_TUNNELING, down))
            assert not radio.joined

            # Restarting resumes the network and registers the Smart Energy endpoint.
            await radio.join()
            assert radio.joined and emu.counters.by_name["formNetwork"] == 1
            assert list(emu.endpoints) == [1]
            assert emu.endpoints[1]["profileId"] == PROFILE_SMART_ENERGY
            assert 0x0704 in emu.endpoints[1]["inputClusterList"]
            await radio.leave()

    run(main)


@pytest.mark.parametrize("version", sorted(EMULATED_VERSIONS - {14}))
def test_later_ezsp_versions_carry_frames_both_ways(version: int) -> None:
    async def main(clock: RealTimeClock) -> None:
        medium = SimulatedMedium(clock)
        async with EzspEmulator(medium, EmulatorConfig(CHF, protocol_version=version)) as emu:
            esme = medium.attach(ESME, [(0, CHANNEL)])
            async with await EzspRadio.open(emu.port, channel=CHANNEL, clock=clock) as radio:
                assert radio.protocol_version == version
                heard, received = first(esme.add_listener), first(radio.add_listener)
                await radio.send(ApsFrame(CHF, ESME, CLUSTER_TUNNELING, b"down"))
                await esme.send(ApsFrame(ESME, CHF, CLUSTER_TUNNELING, b"up"))
                assert (await within(heard)).payload == b"down"
                assert (await within(received)).payload == b"up"
            assert emu.counters.unknown_commands == 0

    run(main)


def test_moving_the_network_to_another_2_4_ghz_channel() -> None:
    async def main(clock: RealTimeClock) -> None:
        medium = SimulatedMedium(clock)
        async with EzspEmulator(medium, EmulatorConfig(CHF)) as emu:
            esme = medium.attach(ESME, [(0, CHANNEL)])
            async with await EzspRadio.open(emu.port, channel=CHANNEL, clock=clock) as radio:
                heard = first(esme.add_listener)
                assert await radio.set_channel(0, 20)
                announce = await within(heard)  # the Mgmt_NWK_Update_req broadcast
                assert announce.is_broadcast and announce.cluster_id == 0x0038
                assert radio.channels == ((0, 20),) and emu.node.channels == ((0, 20),)
                await esme.set_channel(0, 20)
                received = first(radio.add_listener)
                await esme.send(ApsFrame(ESME, CHF, CLUSTER_TUNNELING, b"moved"))
                frame = await within(received)
                assert (frame.page, frame.channel) == (0, 20)

    run(main)


# -- sub-GHz -----------------------------------------------------------------------


def test_sub_ghz_on_a_single_phy_ncp_is_a_clear_error() -> None:
    async def main(clock: RealTimeClock) -> None:
        async with (
            EzspEmulator(SimulatedMedium(clock), EmulatorConfig(CHF)) as emu,
            await EzspRadio.open(emu.port, channel=CHANNEL, clock=clock) as radio,
        ):
            assert radio.phy_interfaces == 1
            with pytest.raises(RadioError, match=r"1 PHY interface \(2.4 GHz only\)"):
                await radio.set_channel(28, 5)
            assert radio.channels == ((0, CHANNEL),)
            # The NCP itself refuses the multi-PHY command for a PHY it lacks.
            (status,) = await radio.app._ezsp.multiPhyStart(
                phyIndex=1, page=28, channel=5, power=0, bitmask=0
            )
            assert int(status) == SlStatus.INVALID_PARAMETER

    run(main)


def test_sub_ghz_on_a_dual_phy_ncp_reaches_a_gsme() -> None:
    async def main(clock: RealTimeClock) -> None:
        medium = SimulatedMedium(clock)
        config = EmulatorConfig(CHF, phy_interfaces=2)
        async with EzspEmulator(medium, config) as emu:
            gsme = medium.attach(GSME, [(28, 5)])
            async with await EzspRadio.open(emu.port, channel=CHANNEL, clock=clock) as radio:
                assert await radio.set_channel(28, 5)
                assert radio.channels == ((0, CHANNEL), (28, 5))
                assert set(emu.node.channels) == {(0, CHANNEL), (28, 5)}
                heard = first(gsme.add_listener)
                await radio.send(ApsFrame(CHF, GSME, CLUSTER_TUNNELING, b"\x19\x01\x01\x05\x00"))
                frame = await within(heard)
                assert (frame.page, frame.channel) == (28, 5)
                # Retune the sub-GHz PHY; a bad channel is refused by the NCP.
                assert await radio.set_channel(28, 7)
                assert emu.sub_ghz_channel == 7
                (status,) = await radio.app._ezsp.multiPhySetRadioChannel(
                    phyIndex=1, page=28, channel=40
                )
                assert int(status) == SlStatus.TRANSMIT_INVALID_CHANNEL

    run(main)


# -- CBKE -------------------------------------------------------------------------------


def test_cbke_certificate_state_is_reported() -> None:
    cert = bytes(range(1, 75))

    async def main(clock: RealTimeClock) -> None:
        async with (
            EzspEmulator(SimulatedMedium(clock), EmulatorConfig(CHF)) as emu,
            await EzspRadio.open(emu.port, channel=CHANNEL, clock=clock) as radio,
        ):
            assert not radio.has_cbke_certificate
            assert radio.cbke_message == NO_CERTIFICATE_MESSAGE
            assert "real SMETS2 devices will not join" in radio.cbke_message
        config = EmulatorConfig(CHF, certificate_283k1=cert)
        async with (
            EzspEmulator(SimulatedMedium(clock), config) as emu,
            await EzspRadio.open(emu.port, channel=CHANNEL, clock=clock) as radio,
        ):
            assert radio.certificate_283k1 == cert
            assert radio.has_cbke_certificate

    run(main)
    with pytest.raises(EmulatorError, match="74 bytes"):
        EmulatorConfig(CHF, certificate_283k1=b"\x01\x02")


# -- probe_radio ------------------------------------------------------------------------


def test_probe_reports_identity_and_each_missing_capability() -> None:
    async def main(clock: RealTimeClock) -> None:
        async with EzspEmulator(SimulatedMedium(clock), EmulatorConfig(CHF)) as emu:
            result = await probe_radio(emu.port, RadioExpectation(sub_ghz=True))
        assert result.protocol_version == 14 and result.stack_version == "8.0.2.0 build 0"
        assert result.eui64 == CHF and result.manufacturer == "gbhil"
        assert result.phy_interfaces == 1 and result.sub_ghz is False
        assert [f.problem for f in result.problems] == [
            ProbeProblem.SUB_GHZ_UNSUPPORTED,
            ProbeProblem.NO_CBKE_CERTIFICATE,
        ]
        assert "real SMETS2 devices will not join" in result.summary()

        config = EmulatorConfig(CHF, phy_interfaces=2, certificate_283k1=bytes(range(74)))
        async with EzspEmulator(SimulatedMedium(clock), config) as emu:
            result = await probe_radio(
                emu.port, RadioExpectation(sub_ghz=True, min_stack_version=(8, 0, 0))
            )
            assert result.ok, result.summary()
            assert result.cbke_certificate and result.sub_ghz
            result = await probe_radio(emu.port, RadioExpectation(min_stack_version=(8, 1, 0)))
            assert [f.problem for f in result.problems] == [ProbeProblem.STACK_TOO_OLD]

    run(main)


def test_probe_missing_port_and_not_an_ncp() -> None:
    async def main(clock: RealTimeClock) -> None:
        result = await probe_radio("/dev/gbhil-no-such-stick")
        assert result.has(ProbeProblem.PORT_MISSING) and not result.is_ezsp
        assert "does not exist" in result.summary()

        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            result = await probe_radio(os.ttyname(slave), reset_timeout=0.2)
            assert [f.problem for f in result.problems] == [ProbeProblem.NOT_EZSP]
            assert "never answered" in result.problems[0].message
        finally:
            os.close(master)
            os.close(slave)

    run(main)


class FakeOldNcp:
    """A minimal NCP that speaks ASH and answers ``version`` as EZSP v8 (EmberZNet 6.10)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.decoder = ash.AshDecoder()
        self.tx = 0
        self.rx = 0
        asyncio.get_running_loop().add_reader(self.master, self.on_readable)

    def on_readable(self) -> None:
        for frame in self.decoder.feed(os.read(self.master, 4096)):
            if isinstance(frame, ash.RstFrame):
                self.tx = self.rx = 0
                os.write(self.master, ash.encode(ash.RstAckFrame(ash.ResetCode.POWER_ON)))
            elif isinstance(frame, ash.DataFrame) and frame.frm_num == self.rx:
                self.rx = ash.next_seq(self.rx)
                os.write(self.master, ash.encode(ash.AckFrame(self.rx)))
                reply = bytes((frame.payload[0], FC_RESPONSE, 0x00, 8, 2)) + (0x6A00).to_bytes(
                    2, "little"
                )
                os.write(self.master, ash.encode(ash.DataFrame(self.tx, self.rx, reply)))
                self.tx = ash.next_seq(self.tx)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        os.close(self.master)
        os.close(self.slave)


def test_probe_rejects_an_old_ezsp_version() -> None:
    async def main(clock: RealTimeClock) -> None:
        ncp = FakeOldNcp()
        try:
            result = await probe_radio(os.ttyname(ncp.slave))
        finally:
            ncp.close()
        assert [f.problem for f in result.problems] == [ProbeProblem.EZSP_TOO_OLD]
        assert result.protocol_version == 8 and result.stack_version == "6.10.0.0"
        assert "needs 13 or later" in result.problems[0].message

    run(main)


# -- ASH behaviour of the emulator ------------------------------------------------------


class RawHost:
    """Host side of the pty at the byte level, to poke the emulator's ASH."""

    def __init__(self, port: str) -> None:
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.decoder = ash.AshDecoder()
        self.frames: asyncio.Queue[ash.AshFrame] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(self.fd, self.on_readable)

    def on_readable(self) -> None:
        for item in self.decoder.feed(os.read(self.fd, 4096)):
            assert not isinstance(item, ash.AshError), item
            self.frames.put_nowait(item)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def next(self) -> ash.AshFrame:
        return await within(self.frames.get())

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


def test_emulator_ash_reset_nak_and_retransmission() -> None:
    legacy_version = bytes((0x05, 0x00, 0x00, 0x04))

    async def main(clock: RealTimeClock) -> None:
        config = EmulatorConfig(CHF, t_rx_ack=0.2)
        async with EzspEmulator(SimulatedMedium(clock), config) as emu:
            host = RawHost(emu.port)
            try:
                host.send(bytes([ash.Reserved.CANCEL]) * 32 + ash.encode(ash.RstFrame()))
                assert await host.next() == ash.RstAckFrame(ash.ResetCode.SOFTWARE)

                # A corrupted DATA frame is NAKed and not executed.
                bad = bytearray(ash.encode(ash.DataFrame(0, 0, legacy_version)))
                bad[1] ^= 0x40
                host.send(bytes(bad))
                assert await host.next() == ash.NakFrame(0)
                assert emu.counters.commands == 0 and emu.counters.bad_frames == 1

                # The good frame: ACK, then the legacy version response.
                host.send(ash.encode(ash.DataFrame(0, 0, legacy_version)))
                assert await host.next() == ash.AckFrame(1)
                response = await host.next()
                assert isinstance(response, ash.DataFrame) and not response.re_tx
                assert response.payload[:4] == bytes((0x05, 0x80, 0x00, 14))

                # Not acknowledged: the emulator retransmits the same frame with reTx.
                again = await host.next()
                assert isinstance(again, ash.DataFrame) and again.re_tx
                assert again.frm_num == response.frm_num and again.payload == response.payload
                host.send(ash.encode(ash.AckFrame(ash.next_seq(response.frm_num))))

                # An out-of-sequence frame is NAKed with the number expected
                # (skipping retransmissions sent before our ACK arrived).
                host.send(ash.encode(ash.DataFrame(3, 1, legacy_version)))
                frame = await host.next()
                while isinstance(frame, ash.DataFrame) and frame.re_tx:
                    frame = await host.next()
                assert frame == ash.NakFrame(1)
                assert emu.counters.naks_sent == 2 and emu.counters.retransmissions >= 1
            finally:
                host.close()

    run(main)


def test_emulator_needs_a_real_time_medium() -> None:
    stepped = create_clock("stepped")
    with pytest.raises(EmulatorError, match="RealTimeClock"):
        EzspEmulator(SimulatedMedium(stepped), EmulatorConfig(CHF))
    with pytest.raises(EmulatorError, match="not emulated"):
        EmulatorConfig(CHF, protocol_version=13)


@pytest.fixture(autouse=True)
def _quiet_bellows(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
