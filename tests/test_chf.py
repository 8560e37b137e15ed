"""CHF device log through its DLMS use cases: CCS01/02/03/07 and the CS14 alert."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gbhil.devices.chf import CHF_DEVICE_LOG, Chf
from gbhil.devices.coverage import RTDS_PARTIES, SteppedClock
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs.axdr import Array, Boolean, Enum, NullData, OctetString, Structure, Uint16
from gbhil.gbcs.dlms import (
    AccessRequest,
    AccessResponse,
    DataNotification,
    RequestKind,
    RequestSpec,
    gbcs_invoke_id,
)
from gbhil.gbcs.frame import Cra, GbcsMessage, GeneralSigning, OtherInformation, Shape
from gbhil.gbcs.message import decode_message, encode_payload
from gbhil.gbcs.security import Check, SecurityContext, protect, verify_mac
from gbhil.smki import generate_pki

CHF = bytes.fromhex("00DB1234567890A2")
ESME = bytes.fromhex("00DB1234567890A0")
ACB = RTDS_PARTIES[Role.ACB]
SUPPLIER = RTDS_PARTIES[Role.SUPPLIER]
INSTALL_CODE = b"0123456789ABCDEF"


@pytest.fixture()
def rig():  # type: ignore[no-untyped-def]
    orgs = {"acb": ACB.hex(), "supplier": SUPPLIER.hex()}
    pki = generate_pki(None, organisations=orgs, devices={CHF: "CHF"}, seed=9)
    keys = DeviceKeys.from_keystore(CHF, pki.keystore, {Role.ACB: ACB, Role.SUPPLIER: SUPPLIER})
    clock = SteppedClock(datetime(2026, 3, 1, tzinfo=UTC))
    return Chf(CHF, keys, clock), SecurityContext(pki.keystore, ACB)


def _send(chf: Chf, ctx: SecurityContext, code: int, counter: int, specs, data):  # type: ignore[no-untyped-def]
    req = AccessRequest(gbcs_invoke_id(counter), tuple(specs), tuple(data))
    gs = GeneralSigning(
        Cra.COMMAND,
        counter,
        ACB,
        CHF,
        OtherInformation(code, SUPPLIER, counter),
        encode_payload(req),
    )
    return chf.receive(protect(ctx, gs, signed=False, maced=True).encode())


def _register(eui: bytes, code: bytes) -> tuple[RequestSpec, Structure]:
    spec = RequestSpec(RequestKind.ACTION, 104, CHF_DEVICE_LOG, 1)
    return spec, Structure((OctetString(eui), Enum(1), OctetString(code), Enum(0)))


def test_ccs01_adds_device_and_raises_cs14(rig) -> None:  # type: ignore[no-untyped-def]
    chf, ctx = rig
    spec, param = _register(ESME, INSTALL_CODE)
    join = [
        RequestSpec(RequestKind.SET, 104, CHF_DEVICE_LOG, 3),
        RequestSpec(RequestKind.SET, 104, CHF_DEVICE_LOG, 2),
    ]
    reply = _send(chf, ctx, 0x0001, 10, [spec, *join], [param, Uint16(90), Boolean(True)])
    assert reply.response is not None
    rsp = decode_message(reply.response)
    assert verify_mac(ctx, rsp.frame) is Check.VERIFIED
    assert isinstance(rsp.payload, AccessResponse)
    assert [r.result for r in rsp.payload.results] == [0, 0, 0]
    assert chf.device_log.entries[ESME].install_code == INSTALL_CODE
    assert chf.device_log.join_enabled
    assert len(reply.alerts) == 1
    alert = decode_message(reply.alerts[0])
    assert alert.frame.gs.message_code == 0x0018 and alert.frame.gs.business_target == ACB
    assert verify_mac(ctx, alert.frame) is Check.VERIFIED
    assert isinstance(alert.payload, DataNotification)
    assert isinstance(alert.payload.body, Structure)
    assert alert.payload.body.items[0] == Uint16(0x8F12)


def test_bad_install_code_changes_nothing(rig) -> None:  # type: ignore[no-untyped-def]
    chf, ctx = rig
    spec, param = _register(ESME, b"short")
    reply = _send(chf, ctx, 0x0001, 11, [spec], [param])
    rsp = decode_message(reply.response)  # type: ignore[arg-type]
    assert isinstance(rsp.payload, AccessResponse)
    assert rsp.payload.results[0].result != 0
    assert chf.device_log.entries == {} and reply.alerts == []


def test_unregister_unknown_then_known(rig) -> None:  # type: ignore[no-untyped-def]
    chf, ctx = rig
    unreg = RequestSpec(RequestKind.ACTION, 104, CHF_DEVICE_LOG, 2)
    reply = _send(chf, ctx, 0x0002, 12, [unreg], [OctetString(ESME)])
    assert decode_message(reply.response).payload.results[0].result != 0  # type: ignore[arg-type,union-attr]
    spec, param = _register(ESME, INSTALL_CODE)
    _send(chf, ctx, 0x0001, 13, [spec], [param])
    reply = _send(chf, ctx, 0x0002, 14, [unreg], [OctetString(ESME)])
    assert decode_message(reply.response).payload.results[0].result == 0  # type: ignore[arg-type,union-attr]
    assert ESME not in chf.device_log.entries


def test_restore_then_backup_round_trip(rig) -> None:  # type: ignore[no-untyped-def]
    chf, ctx = rig
    key_hash = bytes(range(16))
    entries = Array((Structure((OctetString(ESME), OctetString(key_hash))),))
    restore = RequestSpec(RequestKind.ACTION, 104, CHF_DEVICE_LOG, 5)
    _send(chf, ctx, 0x0003, 20, [restore], [Structure((OctetString(bytes(8)), entries))])
    assert chf.device_log.entries[ESME].link_key_hash == key_hash
    backup = RequestSpec(RequestKind.ACTION, 104, CHF_DEVICE_LOG, 4)
    reply = _send(chf, ctx, 0x00FE, 21, [backup], [NullData()])
    payload = decode_message(reply.response).payload  # type: ignore[arg-type]
    assert isinstance(payload, AccessResponse)
    listed = payload.data[0].items[2]  # type: ignore[union-attr]
    assert listed == entries


def test_han_join_and_undeliverable_alerts(rig) -> None:  # type: ignore[no-untyped-def]
    chf, ctx = rig
    [cs14] = chf.han_device_log_changed()
    assert decode_message(cs14).frame.gs.message_code == 0x0018
    cmd = GeneralSigning(Cra.COMMAND, 99, SUPPLIER, ESME, OtherInformation(0x0059), b"\x05\x00")
    raw = GbcsMessage(Shape.MACED, cmd, bytes(12)).encode()  # the CHF only reads the header
    [alert] = chf.undeliverable_alert(raw)
    msg = decode_message(alert)
    assert msg.frame.gs.message_code == 0x00D5 and msg.frame.gs.business_target == SUPPLIER
    assert verify_mac(ctx, msg.frame) is Check.VERIFIED
    body = msg.payload.body  # type: ignore[union-attr]
    assert body.items[0] == Uint16(0x8F84)
    assert body.items[2] == OctetString(SUPPLIER + ESME + b"\x01" + (99).to_bytes(8, "big"))


def test_han_duty_cycle_and_channel_alerts(rig) -> None:  # type: ignore[no-untyped-def]
    from gbhil.han.channels import PageChannel

    chf, ctx = rig
    [limited] = chf.han_alert(0x8F20, {"node": ESME})
    msg = decode_message(limited)
    assert msg.frame.gs.message_code == 0x0110 and msg.frame.gs.business_target == ACB
    assert msg.payload.body.items[2] == OctetString(ESME)  # type: ignore[union-attr]
    [changed] = chf.han_alert(0x8F26, {"channel": PageChannel(28, 5)})
    assert decode_message(changed).frame.gs.message_code == 0x0111
    [other] = chf.han_alert(0x8F21, {})
    assert decode_message(other).frame.gs.message_code == 0x1001
    assert all(
        verify_mac(ctx, decode_message(a).frame) is Check.VERIFIED
        for a in (limited, changed, other)
    )


def _subghz_config(masks: tuple[int, int, int, int]) -> Structure:
    from gbhil.gbcs.axdr import BitString, Uint8

    numbers = (Uint16(130), Uint16(220), Uint8(5), Uint16(7), Uint8(7), Uint8(12),
               Uint16(6000), Uint8(130), Uint16(100), Uint16(4000), Uint16(3000))
    return Structure((*(BitString(32, m.to_bytes(4, "big")) for m in masks), *numbers))


def test_dbch04_masks_decide_where_the_sub_ghz_radio_goes(rig) -> None:  # type: ignore[no-untyped-def]
    from gbhil.devices.chf import SUBGHZ_CONFIG, SUBGHZ_OPERATING_CHANNEL
    from gbhil.gbcs.axdr import BitString
    from gbhil.han.channels import ChannelMask, PageChannel

    chf, ctx = rig
    here = PageChannel(28, 5)
    assert chf.take_subghz_retune(here) is None, "no new configuration: stay"
    masks = (
        ChannelMask.of(28, [3, 1]).encode(),
        0xE800_0000,  # page 29: no channel selected (unused)
        ChannelMask.of(30, [40, 41]).encode(),
        ChannelMask.of(31, [2]).encode(),
    )
    set_config = RequestSpec(RequestKind.SET, 1, SUBGHZ_CONFIG, 2)
    reply = _send(chf, ctx, 0x010D, 7, [set_config], [_subghz_config(masks)])
    assert reply.response is not None

    assert chf.subghz_allowed_channels() == [
        PageChannel(28, 1), PageChannel(28, 3), PageChannel(30, 40), PageChannel(30, 41),
        PageChannel(31, 2),
    ]
    assert chf.take_subghz_retune(here) == PageChannel(28, 1), "5 is no longer allowed"
    assert chf.take_subghz_retune(here) is None, "one move per configuration"
    _send(chf, ctx, 0x010D, 8, [set_config], [_subghz_config(masks)])
    assert chf.take_subghz_retune(PageChannel(30, 41)) is None, "an allowed channel stays"
    # DBCH01 reads the channel the radio is on, as the HAN side reports it
    chf.han_alert(0x8F26, {"node": CHF, "channel": PageChannel(28, 1)})
    read = RequestSpec(RequestKind.GET, 1, SUBGHZ_OPERATING_CHANNEL, 2)
    response = decode_message(_send(chf, ctx, 0x010A, 9, [read], [NullData()]).response)
    [value] = response.payload.data  # type: ignore[union-attr]
    assert value == BitString(32, ChannelMask.of(28, [1]).encode().to_bytes(4, "big"))
