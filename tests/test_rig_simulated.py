"""The embedded default rig end to end: DCC-protected commands over the dual-band HAN."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gbhil.devices.trust import Role
from gbhil.gbcs.axdr import NullData
from gbhil.gbcs.dlms import AccessRequest, RequestKind, RequestSpec, gbcs_invoke_id, parse_obis
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation
from gbhil.gbcs.message import decode_message, encode_payload
from gbhil.gbcs.security import Check, protect, verify_mac, verify_signature
from gbhil.han.network import DeliveryStatus
from gbhil.rigs.simulated import PARTIES, PowerEvent, SimulatedRig

SUPPLIER = PARTIES[Role.SUPPLIER]
NETWORK_OPERATOR = PARTIES[Role.NETWORK_OPERATOR]


def _ecs52(rig: SimulatedRig, counter: int, target: bytes) -> bytes:
    req = AccessRequest(
        gbcs_invoke_id(counter),
        (RequestSpec(RequestKind.GET, 1, parse_obis("0-0:0.2.1.255"), 2),),
        (NullData(),),
    )
    gs = GeneralSigning(
        Cra.COMMAND, counter, SUPPLIER, target, OtherInformation(0x0059), encode_payload(req)
    )
    return protect(rig.dcc, gs, signed=False, maced=True).encode()


@pytest.fixture()
def rig(tmp_path: Path):  # type: ignore[no-untyped-def]
    rig = SimulatedRig.build(seed=4, capture=tmp_path / "han.pcap")
    rig.run(rig.start())
    yield rig
    rig.close()


def test_esme_read_over_the_han(rig: SimulatedRig) -> None:
    async def go() -> DeliveryStatus:
        delivery = await rig.send(_ecs52(rig, 5000, rig.esme.eui))
        await rig.settle()
        return delivery.status

    assert rig.run(go()) is DeliveryStatus.SENT
    [rsp] = [m for m in rig.wan if decode_message(m).frame.gs.cra is Cra.RESPONSE]
    msg = decode_message(rsp)
    assert (
        msg.frame.gs.originator_counter == 5000 and msg.frame.gs.business_originator == rig.esme.eui
    )
    assert verify_mac(rig.dcc, msg.frame) is Check.VERIFIED
    assert rig.capture is not None and rig.capture.frames_written > 0


def test_gsme_read_waits_for_the_wake_cycle(rig: SimulatedRig) -> None:
    from gbhil.gbcs.gbz import GbzMessage, PlainComponent, encode_gbz
    from gbhil.gbcs.zcl import ReadAttributes, ZclHeader

    comp = PlainComponent(0x0702, ZclHeader(0x00, 0, 0x00), ReadAttributes((0x0000,)))
    content = encode_gbz(GbzMessage((comp,)))
    gs = GeneralSigning(
        Cra.COMMAND, 6000, SUPPLIER, rig.gsme.eui, OtherInformation(0x0074), content
    )
    raw = protect(rig.dcc, gs, signed=False, maced=True).encode()

    async def go() -> DeliveryStatus:
        delivery = await rig.send(raw)
        start = rig.clock.now()
        await rig.settle(3600)
        assert rig.clock.now() - start >= timedelta(seconds=1)
        return delivery.status

    assert rig.run(go()) is DeliveryStatus.QUEUED
    responses = [decode_message(m) for m in rig.wan]
    assert any(
        m.frame.gs.originator_counter == 6000 and m.frame.gs.cra is Cra.RESPONSE for m in responses
    )


def test_hht_local_delivery_returns_the_response(rig: SimulatedRig) -> None:
    async def go():  # type: ignore[no-untyped-def]
        return await rig.hht.deliver(_ecs52(rig, 7000, rig.esme.eui))

    result = rig.run(go())
    assert result.response is not None and not result.timed_out
    assert decode_message(result.response).frame.gs.originator_counter == 7000
    assert not any(decode_message(m).frame.gs.originator_counter == 7000 for m in rig.wan)


@pytest.mark.parametrize("minutes, alert", [(2, 0x8F35), (4, 0x8F36)])
def test_mains_outage_and_restoration(rig: SimulatedRig, minutes: int, alert: int) -> None:
    async def go() -> None:
        rig.mains.set_output(False)
        await rig.clock.sleep(minutes * 60)
        rig.mains.set_output(True)
        await rig.settle(120)

    rig.run(go())
    kinds = [e.kind for e in rig.power_events]
    assert kinds == [PowerEvent.OUTAGE, PowerEvent.RESTORED]
    assert rig.power_events[1].at - rig.power_events[0].at == timedelta(minutes=minutes)
    restored = [
        decode_message(m) for m in rig.wan if decode_message(m).frame.gs.message_code == 0x0067
    ]
    assert len(restored) == 1
    msg = restored[0]
    assert msg.frame.gs.business_target == NETWORK_OPERATOR
    assert verify_signature(rig.dcc, msg.frame.gs) is Check.VERIFIED
    assert msg.payload.body.items[0].value == alert  # type: ignore[union-attr]
