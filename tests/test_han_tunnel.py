"""Tunnelling GBCS over the HAN: the ZCL codec, the GBCS tunnel header, GBT, and real devices.

The rig here (:class:`HanRig`) is also used by test_han_ota.py and test_han_network.py.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gbhil.devices.chf import Chf, DeviceLogEntry
from gbhil.devices.coverage import RTDS_PARTIES
from gbhil.devices.ppmid import Ppmid
from gbhil.devices.trust import DeviceKeys, Role
from gbhil.gbcs import zcl_catalogue as cat
from gbhil.gbcs.asn1_schemas import Direction, json_to_asn1
from gbhil.gbcs.frame import Cra, GeneralSigning, OtherInformation, decode_frame
from gbhil.gbcs.message import decode_message, encode_payload
from gbhil.gbcs.security import Check, SecurityContext, protect, verify_mac, verify_signature
from gbhil.gbcs.zcl import AttributeValue, ZclValue
from gbhil.han import LinkQuality, SimulatedMedium
from gbhil.han.joining import with_crc
from gbhil.han.network import DeliveryStatus, HubNode, MeterNode
from gbhil.han.tunnel import MIN_TRANSFER_SIZE, TunnelError, tunnel_pieces
from gbhil.han.zcl_frames import (
    CLUSTER_COMMAND_CLASSES,
    CLUSTER_METERING,
    CLUSTER_OTA,
    CLUSTER_TUNNELING,
    AttributeReport,
    CloseTunnel,
    DefaultResponseCommand,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageNotify,
    ImageNotifyPayloadType,
    MirrorRemoved,
    OtaStatus,
    QueryNextImageRequest,
    QueryNextImageResponse,
    RemoveMirror,
    RequestMirror,
    RequestMirrorResponse,
    RequestTunnel,
    RequestTunnelResponse,
    TransferDataErrorToClient,
    TransferDataErrorToServer,
    TransferDataStatus,
    TransferDataToClient,
    TransferDataToServer,
    TunnelClosureNotification,
    TunnelGet,
    TunnelGetResponse,
    TunnelProtocol,
    TunnelPut,
    TunnelStatus,
    UpgradeEndRequest,
    UpgradeEndResponse,
    ZclCommand,
    ZclFrameError,
    ZclPort,
    decode_command,
    decode_tunnel_data,
    encode_command,
    encode_tunnel_data,
)
from gbhil.simulator import SteppedClock
from gbhil.smki import generate_pki

# ---------------------------------------------------------------------------
# The rig (shared with the OTA and network tests)
# ---------------------------------------------------------------------------

CHF = bytes.fromhex("00DB1234567890A2")
GPF = bytes.fromhex("00DB1234567890A3")
ESME = bytes.fromhex("00DB1234567890A0")
GSME = bytes.fromhex("00DB1234567890A1")
PPMID = bytes.fromhex("00DB1234567890A4")
HCALCS = bytes.fromhex("00DB1234567890A5")
ESME2 = bytes.fromhex("00DB1234567890A6")
HHT = bytes.fromhex("00DB1234567890B7")
SUPPLIER = RTDS_PARTIES[Role.SUPPLIER]
ACB = RTDS_PARTIES[Role.ACB]
START = datetime(2026, 3, 2, tzinfo=UTC)
DEVICE_TYPES = {
    CHF: "CHF", GPF: "GPF", ESME: "ESME", GSME: "GSME", PPMID: "PPMID", HCALCS: "HCALCS",
    ESME2: "ESME",
}  # fmt: skip
PARTIES = {r: RTDS_PARTIES[r] for r in (Role.SUPPLIER, Role.ACB, Role.NETWORK_OPERATOR)}
READ_JOIN_DETAILS = 0x0013  # CS07, MACed ASN.1 with an empty body
CS03A2_JOIN = 0x00AB  # critical: signed and MACed, response signed
ECS52 = 0x0059  # read ESME firmware version (DLMS)


@lru_cache(maxsize=1)
def rig_pki() -> Any:
    orgs = {"supplier": SUPPLIER.hex(), "acb": ACB.hex(),
            "network_operator": RTDS_PARTIES[Role.NETWORK_OPERATOR].hex()}  # fmt: skip
    return generate_pki(None, organisations=orgs, devices=DEVICE_TYPES, seed=11)


def install_code(eui: bytes) -> bytes:
    return with_crc(hashlib.sha256(b"install code" + eui).digest()[:16])


def device_class(module: str, name: str) -> type[Any] | None:
    """A device class another engineer is writing, or None when it is not there yet."""
    try:
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


class HanRig:
    """A Comms Hub (CHF + GPF) on a simulated dual-band medium, the DCC's keys, a WAN log."""

    def __init__(self, *, seed: int = 0, link: LinkQuality | None = None, gpf: Any = None,
                 **hub_kw: Any) -> None:  # fmt: skip
        self.pki = rig_pki()
        self.clock = SteppedClock(START)
        self.medium = SimulatedMedium(self.clock, seed=seed, link=link)
        self.hub_transport = self.medium.attach(CHF, [(0, 11), (28, 5)])
        self.chf = Chf(CHF, self.keys(CHF), self.clock)
        self.chf.device_log.join_enabled = True
        self.gpf = gpf(GPF, self.keys(GPF), self.clock) if gpf is not None else None
        self.wan: list[bytes] = []
        self.hub = HubNode(
            self.chf, self.gpf, self.hub_transport, self.clock,
            on_wan_message=self.wan.append, **hub_kw,
        )  # fmt: skip
        self.ctx = SecurityContext(self.pki.keystore, ACB)
        self.counter = 1000

    def keys(self, eui: bytes) -> DeviceKeys:
        return DeviceKeys.from_keystore(eui, self.pki.keystore, PARTIES)

    def add(
        self,
        eui: bytes,
        device_cls: Callable[..., Any] | None,
        node_cls: Callable[..., Any] = MeterNode,
        channels: tuple[tuple[int, int], ...] = ((0, 11),),
        **node_kw: Any,
    ) -> Any:
        """Put a device in the CHF Device Log and on the medium; returns its (unjoined) node."""
        self.chf.device_log.add(DeviceLogEntry(eui, install_code=install_code(eui)))
        transport = self.medium.attach(eui, list(channels), joined=False)
        if device_cls is None:  # an HHT has no GBCS device behind it
            return node_cls(transport, self.clock, install_code=install_code(eui), **node_kw)
        device = device_cls(eui, self.keys(eui), self.clock)
        return node_cls(device, transport, self.clock, install_code=install_code(eui), **node_kw)

    def command(
        self, target: bytes, code: int, content: bytes, *, signed: bool = False,
        counter: int | None = None,
    ) -> bytes:  # fmt: skip
        if counter is None:
            self.counter += 1
            counter = self.counter
        gs = GeneralSigning(Cra.COMMAND, counter, SUPPLIER, target, OtherInformation(code), content)
        return protect(self.ctx, gs, signed=signed, maced=True).encode()

    def read_join_details(self, target: bytes) -> bytes:
        return self.command(target, READ_JOIN_DETAILS, bytes.fromhex("0500"))

    def join_command(self, target: bytes, entity: bytes) -> bytes:
        body = json_to_asn1(
            {"joinMethodAndRole": 1, "entityId": entity, "deviceType": 1},
            CS03A2_JOIN,
            Direction.COMMAND,
        )
        return self.command(target, CS03A2_JOIN, encode_payload(body), signed=True)

    def run(self, coro: Any) -> Any:
        async def main() -> Any:
            self.hub.start()
            return await coro

        return self.clock.run(main())


def ecs52(rig: HanRig, target: bytes) -> bytes:
    """ECS52: DLMS GET class 1 0-0:0.2.1.255 attribute 2 (firmware version)."""
    from gbhil.gbcs.axdr import NULL
    from gbhil.gbcs.dlms import AccessRequest, RequestKind, RequestSpec, gbcs_invoke_id, parse_obis

    rig.counter += 1
    spec = RequestSpec(RequestKind.GET, 1, parse_obis("0-0:0.2.1.255"), 2)
    content = encode_payload(AccessRequest(gbcs_invoke_id(rig.counter), (spec,), (NULL,)))
    return rig.command(target, ECS52, content, counter=rig.counter)


# ---------------------------------------------------------------------------
# ZCL codec
# ---------------------------------------------------------------------------

EUI = bytes.fromhex("0011223344556677")
EXAMPLES: list[ZclCommand] = [
    RequestTunnel(),
    RequestTunnel(TunnelProtocol.DLMS_COSEM, 0x121D, True, 100),
    RequestTunnelResponse(5, TunnelStatus.SUCCESS, 1500),
    RequestTunnelResponse(0xFFFF, TunnelStatus.PROTOCOL_NOT_SUPPORTED, 1500),
    CloseTunnel(5),
    TunnelClosureNotification(5),
    TransferDataToServer(5, b"\x01"),
    TransferDataToClient(5, b"\x02\x00"),
    TransferDataErrorToServer(5, TransferDataStatus.DATA_OVERFLOW),
    TransferDataErrorToClient(5, TransferDataStatus.NO_SUCH_TUNNEL),
    ImageNotify(ImageNotifyPayloadType.JITTER, 100),
    ImageNotify(ImageNotifyPayloadType.JITTER_MANUFACTURER_TYPE_VERSION, 50, 0x121D, 2, 7),
    QueryNextImageRequest(0x121D, 0, 0x01000000),
    QueryNextImageRequest(0x121D, 0, 0x01000000, 0x1111),
    QueryNextImageResponse(OtaStatus.NO_IMAGE_AVAILABLE),
    QueryNextImageResponse(OtaStatus.SUCCESS, 0x121D, 0, 0x02000000, 361),
    ImageBlockRequest(0x121D, 0, 0x02000000, 64, 64),
    ImageBlockRequest(0x121D, 0, 0x02000000, 64, 64, EUI, 250),
    ImageBlockResponse(OtaStatus.SUCCESS, 0x121D, 0, 0x02000000, 64, bytes(range(64))),
    ImageBlockResponse(
        OtaStatus.WAIT_FOR_DATA, current_time=10, request_time=12, minimum_block_period=2000
    ),
    ImageBlockResponse(OtaStatus.ABORT),
    UpgradeEndRequest(OtaStatus.SUCCESS, 0x121D, 0, 0x02000000),
    UpgradeEndResponse(0x121D, 0, 0x02000000, 100, 0xFFFFFFFF),
    RequestMirror(),
    RemoveMirror(),
    RequestMirrorResponse(2),
    MirrorRemoved(2),
    AttributeReport(CLUSTER_METERING, (AttributeValue(0, ZclValue(0x25, 123456)),)),
    DefaultResponseCommand(CLUSTER_OTA, 0x06, 0x00, True),
]


@pytest.mark.parametrize("command", EXAMPLES, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: ZclCommand) -> None:
    data = encode_command(command, 0x42)
    msg = decode_command(command.cluster, data)
    assert msg.command == command and msg.sequence == 0x42
    assert encode_command(msg.command, 0x42) == data


def test_every_cluster_command_has_an_example_and_the_catalogue_name() -> None:
    assert {type(c) for c in EXAMPLES} >= set(CLUSTER_COMMAND_CLASSES.values())
    for (cluster, to_client, command_id), cls in CLUSTER_COMMAND_CLASSES.items():
        name = cat.CLUSTER_COMMANDS[(cluster, int(to_client), command_id)]
        words = {w for w in name.lower().split() if len(w) > 3}
        assert any(w in cls.__name__.lower() for w in words), (name, cls.__name__)


def test_wire_layouts() -> None:
    # frame control 0x11: cluster-specific, client->server, default response disabled
    assert encode_command(RequestTunnel(), 7).hex() == "11070006ffff00dc05"
    # as in test_pcap: server->client TransferData, tunnel id 5 little-endian
    assert encode_command(TransferDataToClient(5, b"\x03\xdd"), 7).hex() == "1907010500" + "03dd"
    assert encode_command(RequestTunnelResponse(5, TunnelStatus.SUCCESS, 1500), 1).hex() == (
        "1901000500" + "00" + "dc05"
    )
    assert encode_command(RequestMirrorResponse(0x7B), 3).hex() == "1103017b00"  # as HG's CH
    assert encode_command(RequestMirror(), 3).hex() == "190301"
    block = ImageBlockRequest(0x121D, 0, 0xACDCACDC, 0x40, 0x30, EUI, 0x00FA)
    assert encode_command(block, 9).hex() == (
        "110903" + "03" + "1d12" + "0000" + "dcacdcac" + "40000000" + "30"
        + "7766554433221100" + "fa00"
    )  # fmt: skip
    report = AttributeReport(CLUSTER_METERING, (AttributeValue(0, ZclValue(0x25, 1)),))
    assert encode_command(report, 2).hex() == "18020a" + "0000" + "25" + "010000000000"


@pytest.mark.parametrize(
    "cluster, data, field, offset",
    [
        (CLUSTER_TUNNELING, "110700", "tunnel.protocol_id", 3),  # truncated RequestTunnel
        (CLUSTER_TUNNELING, "11070006ffff02dc05", "tunnel.flow_control", 6),
        (CLUSTER_TUNNELING, "11070006ffff00dc0500", "RequestTunnel payload", 9),
        (CLUSTER_TUNNELING, "1107ee", "zcl.command_id", 2),
        (CLUSTER_TUNNELING, "1901000500" + "09" + "dc05", "tunnel.status", 5),
        (CLUSTER_TUNNELING, "15341207000000", "zcl.frame_control", 0),  # manufacturer-specific
        (CLUSTER_TUNNELING, "1207", "zcl.command_id", 2),  # reserved frame type, truncated
        (CLUSTER_OTA, "190100" + "00" + "00", "ota.query_jitter", 4),
        (CLUSTER_OTA, "110101" + "f0" + "1d12000000000001", "ota.field_control", 3),
        (CLUSTER_OTA, "190105" + "42", "ota.status", 3),
        (
            CLUSTER_OTA,
            "190105" + "00" + "1d1200000000000140000000" + "05" + "0102",
            "ota.image_data",
            17,
        ),
        (CLUSTER_METERING, "1103017b", "metering.endpoint_id", 3),
    ],
)
def test_decode_errors_name_field_and_offset(
    cluster: int, data: str, field: str, offset: int
) -> None:
    with pytest.raises(ZclFrameError) as err:
        decode_command(cluster, bytes.fromhex(data))
    assert err.value.field.startswith(field)
    assert err.value.offset == offset


@pytest.mark.parametrize(
    "command, field",
    [
        (RequestTunnel(max_incoming_transfer_size=70000), "tunnel.max_incoming_transfer_size"),
        (CloseTunnel(-1), "tunnel.tunnel_id"),
        (ImageNotify(ImageNotifyPayloadType.JITTER, 0), "ota.query_jitter"),
        (ImageNotify(ImageNotifyPayloadType.JITTER_MANUFACTURER, 5), "ota.manufacturer_code"),
        (ImageNotify(ImageNotifyPayloadType.JITTER, 5, 0x121D), "ota.manufacturer_code"),
        (QueryNextImageResponse(OtaStatus.SUCCESS), "ota.status"),
        (QueryNextImageResponse(OtaStatus.ABORT, 1, 2, 3, 4), "ota.status"),
        (ImageBlockResponse(OtaStatus.SUCCESS, 1, 2, 3, 4, bytes(256)), "ota.image_data"),
        (ImageBlockResponse(OtaStatus.ABORT, current_time=1), "ota.status"),
        (UpgradeEndRequest(0x42, 1, 2, 3), "ota.status"),  # type: ignore[arg-type]
        (ImageBlockRequest(1, 2, 3, 4, 5, b"short"), "ota.request_node_address"),
    ],
)
def test_encode_errors_name_the_field(command: ZclCommand, field: str) -> None:
    with pytest.raises(ZclFrameError) as err:
        encode_command(command, 1)
    assert err.value.field == field


@given(st.binary(max_size=40), st.sampled_from([CLUSTER_TUNNELING, CLUSTER_OTA, CLUSTER_METERING]))
def test_property_decoder_never_crashes_and_what_decodes_re_encodes(
    data: bytes, cluster: int
) -> None:
    try:
        msg = decode_command(cluster, data)
    except ZclFrameError:
        return
    again = encode_command(msg.command, msg.sequence)
    # the frame-control octet is rebuilt: only the default-response bit may differ
    assert again[1:] == data[1:] and (again[0] | 0x10) == (data[0] | 0x10)


# --- the GBCS tunnel header -----------------------------------------------------------


def test_gbcs_tunnel_header() -> None:
    assert encode_tunnel_data(TunnelGet()) == b"\x01"
    assert encode_tunnel_data(TunnelGetResponse(0)) == b"\x02\x00"  # nothing queued
    assert encode_tunnel_data(TunnelGetResponse(3, b"\xdd\x00")) == b"\x02\x03\xdd\x00"
    assert encode_tunnel_data(TunnelPut(b"\xdf\x09")) == b"\x03\xdf\x09"
    for item in (TunnelGet(), TunnelGetResponse(0), TunnelGetResponse(2, b"\xdd"),
                 TunnelPut(b"\xdd\x01"), TunnelPut(b"\xdd\x01", bare=True)):  # fmt: skip
        assert decode_tunnel_data(encode_tunnel_data(item)) == item
    assert decode_tunnel_data(b"\xdf\x09\x01") == TunnelPut(b"\xdf\x09\x01", bare=True)


@pytest.mark.parametrize(
    "data, message",
    [
        ("", "carries no data"),
        ("0100", "trailing"),
        ("02", "needs 1 byte"),
        ("0203", "3 remaining but no message"),
        ("03", "PUT without a message"),
        ("07dd", "unknown tunnel command 0x07"),
    ],
)
def test_gbcs_tunnel_header_errors(data: str, message: str) -> None:
    with pytest.raises(ZclFrameError, match=message):
        decode_tunnel_data(bytes.fromhex(data))


def test_gbt_pieces_fit_and_reassemble() -> None:
    from gbhil.gbcs.gbt import GbtReassembler, GbtSegment

    rig = HanRig()
    message = rig.join_command(PPMID, ESME)
    assert tunnel_pieces(message, 1500) == [message]
    pieces = tunnel_pieces(message, MIN_TRANSFER_SIZE)
    assert len(pieces) > 2 and all(1 + len(p) <= MIN_TRANSFER_SIZE for p in pieces)
    reassembler = GbtReassembler()
    out = [reassembler.feed(GbtSegment.decode(p)) for p in pieces]
    assert out[:-1] == [None] * (len(pieces) - 1) and out[-1] == message
    with pytest.raises(TunnelError, match="needs GBT"):
        tunnel_pieces(b"\x00" * 200, 100)


# ---------------------------------------------------------------------------
# Real GBCS through real tunnels
# ---------------------------------------------------------------------------


def test_round_trip_from_the_dcc_to_a_ppmid_and_back_to_the_wan() -> None:
    rig = HanRig()
    node = rig.add(PPMID, Ppmid)
    command = rig.read_join_details(PPMID)

    async def scenario() -> Any:
        assert (await node.join(rig.hub.trust_center)).accepted
        delivery = await rig.hub.deliver_from_wan(command)
        assert await rig.clock.run_until_idle(max_seconds=60)
        return delivery

    delivery = rig.run(scenario())
    assert delivery.status is DeliveryStatus.SENT and delivery.target == PPMID
    assert len(rig.wan) == 1
    response = decode_frame(rig.wan[0])
    assert response.gs.cra is Cra.RESPONSE
    assert response.gs.originator_counter == decode_frame(command).gs.originator_counter
    assert response.gs.business_originator == PPMID
    assert verify_mac(rig.ctx, response) is Check.VERIFIED
    server = rig.hub.tunnels
    assert server.counters.puts_sent == 1 and server.counters.puts_received == 1
    assert node.tunnel.counters.puts_sent == 1 and node.tunnel.counters.puts_received == 1


def test_round_trip_to_an_esme() -> None:
    esme_cls = device_class("gbhil.devices.esme", "Esme")
    if esme_cls is None:
        pytest.skip("gbhil.devices.esme.Esme does not exist yet")
    rig = HanRig()
    node = rig.add(ESME, esme_cls)
    command = ecs52(rig, ESME)

    async def scenario() -> None:
        assert (await node.join(rig.hub.trust_center)).accepted
        assert (await rig.hub.deliver_from_wan(command)).status is DeliveryStatus.SENT
        await rig.clock.run_until_idle(max_seconds=60)

    rig.run(scenario())
    assert len(rig.wan) == 1
    response = decode_message(rig.wan[0])
    assert response.frame.gs.cra is Cra.RESPONSE and response.frame.gs.message_code == ECS52
    assert verify_mac(rig.ctx, response.frame) is Check.VERIFIED
    payload: Any = response.payload
    assert payload.results[0].result == 0  # the firmware version was read


def test_large_messages_travel_as_gbt_blocks_both_ways() -> None:
    rig = HanRig(max_transfer_size=100)
    node = rig.add(PPMID, Ppmid, max_transfer_size=100)
    command = rig.join_command(PPMID, ESME)  # signed: well over 100 octets
    assert len(command) > 130

    async def scenario() -> None:
        assert (await node.join(rig.hub.trust_center)).accepted
        assert (await rig.hub.deliver_from_wan(command)).status is DeliveryStatus.SENT
        await rig.clock.run_until_idle(max_seconds=60)

    rig.run(scenario())
    assert rig.hub.tunnels.counters.gbt_blocks_sent >= 2  # command cut towards the PPMID
    assert node.tunnel.counters.gbt_blocks_received >= 2
    assert node.device.join_log.entries == {ESME: 1}  # reassembled and executed
    assert node.tunnel.counters.gbt_blocks_sent >= 2  # signed response cut towards the CHF
    assert len(rig.wan) == 1  # ... and reassembled before the WAN sees it
    response = decode_frame(rig.wan[0])
    assert verify_signature(rig.ctx, response.gs) is Check.VERIFIED


def test_transfer_data_bigger_than_a_radio_frame_is_aps_fragmented() -> None:
    import io

    from gbhil.han import PcapWriter, read_frames

    rig = HanRig()
    node = rig.add(PPMID, Ppmid)
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    rig.medium.add_tap(writer)

    async def scenario() -> None:
        assert (await node.join(rig.hub.trust_center)).accepted
        await rig.hub.deliver_from_wan(rig.join_command(PPMID, ESME))
        await rig.clock.run_until_idle(max_seconds=60)

    rig.run(scenario())
    entries = read_frames(buffer.getvalue())
    tunnelled = [e for e in entries if e.frame.cluster_id == CLUSTER_TUNNELING]
    assert any(e.fragments > 1 for e in tunnelled)
    assert len(rig.wan) == 1


def _raw_client(rig: HanRig, eui: bytes) -> ZclPort:
    rig.chf.device_log.add(DeviceLogEntry(eui, install_code=install_code(eui)))
    transport = rig.medium.attach(eui, [(0, 11)])
    return ZclPort(transport, rig.clock)


@pytest.mark.parametrize(
    "request_, status",
    [
        (RequestTunnel(TunnelProtocol.DLMS_COSEM), TunnelStatus.PROTOCOL_NOT_SUPPORTED),
        (RequestTunnel(flow_control=True), TunnelStatus.FLOW_CONTROL_NOT_SUPPORTED),
        (RequestTunnel(), TunnelStatus.SUCCESS),
    ],
)
def test_tunnel_requests_are_checked(request_: RequestTunnel, status: TunnelStatus) -> None:
    rig = HanRig()
    port = _raw_client(rig, ESME)

    async def scenario() -> Any:
        port.start()
        _frame, msg = await port.request(CHF, request_, RequestTunnelResponse, timeout=5)
        return msg.command

    rsp = rig.run(scenario())
    assert rsp.status is status and rsp.max_incoming_transfer_size == 1500
    assert (rsp.tunnel_id != 0xFFFF) == (status is TunnelStatus.SUCCESS)


def test_transfer_data_refusals() -> None:
    rig = HanRig(max_transfer_size=200)
    esme = _raw_client(rig, ESME)
    other = _raw_client(rig, ESME2)
    errors: list[tuple[bytes, TransferDataStatus]] = []

    def on_error(frame: Any, msg: Any) -> None:
        errors.append((frame.dst_eui64, msg.command.status))

    esme.handlers[CLUSTER_TUNNELING] = on_error
    other.handlers[CLUSTER_TUNNELING] = on_error

    async def scenario() -> None:
        esme.start()
        other.start()
        _f, msg = await esme.request(CHF, RequestTunnel(), RequestTunnelResponse, timeout=5)
        tid = msg.command.tunnel_id
        await esme.send(CHF, TransferDataToServer(tid + 1, b"\x01"))  # no such tunnel
        await other.send(CHF, TransferDataToServer(tid, b"\x01"))  # not its tunnel
        await esme.send(CHF, TransferDataToServer(tid, b"\x03" + bytes(300)))  # overflow
        await esme.send(CHF, TransferDataToServer(tid, b"\x09"))  # malformed header
        await rig.clock.run_until_idle(max_seconds=10)

    rig.run(scenario())
    assert errors == [
        (ESME, TransferDataStatus.NO_SUCH_TUNNEL),
        (ESME2, TransferDataStatus.WRONG_DEVICE),
        (ESME, TransferDataStatus.DATA_OVERFLOW),
    ]
    assert rig.hub.tunnels.counters.malformed == 1
    assert "unknown tunnel command 0x09" in rig.hub.tunnels.events[-1].detail


def test_undeliverable_messages_are_reported() -> None:
    reported: list[str] = []
    rig = HanRig(on_undeliverable=lambda raw, reason: reported.append(reason))

    async def scenario() -> list[Any]:
        return [
            await rig.hub.deliver_from_wan(rig.read_join_details(ESME)),  # not joined
            await rig.hub.deliver_from_wan(b"\xdd\x00garbage"),
        ]

    first, second = rig.run(scenario())
    assert first.status is DeliveryStatus.UNDELIVERABLE and first.target == ESME
    assert second.status is DeliveryStatus.UNDELIVERABLE and second.target is None
    assert reported == ["target is not on the HAN", "not a decodable GBCS message"]
    assert rig.wan == []


def test_commands_for_the_chf_are_answered_locally() -> None:
    rig = HanRig()
    command = ecs52(rig, CHF)  # ECS52 also reads the Comms Hub firmware version

    async def scenario() -> Any:
        delivery = await rig.hub.deliver_from_wan(command)
        await rig.clock.run_until_idle(max_seconds=10)
        return delivery

    assert rig.run(scenario()).status is DeliveryStatus.LOCAL
    assert len(rig.wan) == 1
    response = decode_frame(rig.wan[0])
    assert response.gs.business_originator == CHF and response.gs.cra is Cra.RESPONSE
    assert rig.medium.counters(CHF).sent == 0  # nothing went over the air


def test_a_powered_off_meter_misses_commands_and_reopens_its_tunnel_on_power_on() -> None:
    rig = HanRig()
    node = rig.add(PPMID, Ppmid)

    async def scenario() -> None:
        assert (await node.join(rig.hub.trust_center)).accepted
        first_tunnel = node.tunnel.tunnel_id
        node.power_off()
        assert not node.device.powered
        await rig.hub.deliver_from_wan(rig.read_join_details(PPMID))
        await rig.clock.run_until_idle(max_seconds=60)
        assert rig.wan == []  # the radio was dead
        node.power_on()
        await rig.clock.run_until_idle(max_seconds=60)
        assert node.tunnel.tunnel_id is not None and node.tunnel.tunnel_id != first_tunnel
        await rig.hub.deliver_from_wan(rig.read_join_details(PPMID))
        await rig.clock.run_until_idle(max_seconds=60)

    rig.run(scenario())
    assert len(rig.wan) == 1
    assert node.port.counters.dropped_off == 1
    assert len(rig.hub.tunnels.tunnels) == 1  # the stale tunnel was replaced, not leaked
