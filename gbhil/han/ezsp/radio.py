"""EzspRadio: the HAN transport on a real EZSP radio, through bellows and zigpy.

Architecture rule 2: device models and HIL suites talk to a
:class:`~gbhil.han.transport.HanTransport` and never learn whether it is the
simulated medium or a USB stick. This module maps that interface onto the
unmodified bellows stack (``bellows.zigbee.application.ControllerApplication``
on zigpy), which owns ASH, EZSP, network formation, keys and retries:

* ``send(ApsFrame)`` -> a ``zigpy.types.ZigbeePacket`` through
  ``ControllerApplication.send_packet`` (EZSP ``sendUnicast`` /
  ``sendBroadcast`` and the NCP's ``messageSentHandler``);
* EZSP ``incomingMessageHandler`` -> an :class:`ApsFrame` for the listeners;
* ``set_channel`` -> zigpy's channel migration (page 0) or the EZSP multi-PHY
  commands (sub-GHz pages 28-31), with a :class:`RadioError` when the NCP has
  no second PHY;
* the Smart Energy CBKE certificate state, read once at start.

The project-owned shims (radio-stack.md 1.1 and 6b): endpoint 1 is registered
with the Smart Energy profile 0x0109 instead of zigpy's ZHA endpoint, and
received frames are taken from the EZSP callback before zigpy, which drops
every 0x0109 packet (zigpy issue #1810), ever sees them. zigpy still gets the
ZDO traffic and frames from devices it knows, so its own requests work. No
bellows or zigpy code is patched at runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import bellows.ash
import bellows.ezsp
import bellows.types as bellows_t
import bellows.zigbee.application as bellows_app
import zigpy.config as zconf
import zigpy.exceptions
import zigpy.types as zt
import zigpy.zdo
import zigpy.zdo.types as zdo_t
from bellows.config import CONF_EZSP_CONFIG, CONF_USE_THREAD

from gbhil.han.channels import (
    MAX_PSDU_2_4,
    PAGE_2_4_GHZ,
    Band,
    HanError,
    PageChannel,
    airtime,
    band_of,
    validate,
)
from gbhil.han.ezsp import fragments
from gbhil.han.ezsp.frames import (
    CERTIFICATE_283K1_LEN,
    MIN_PROTOCOL_VERSION,
    SL_STATUS_SINCE,
    ApsOption,
    IncomingMessageType,
)
from gbhil.han.medium import ZDO_ENDPOINT, ZDO_MGMT_NWK_UPDATE_REQ, channel_change_payload
from gbhil.han.pcap import DEFAULT_FRAMING
from gbhil.han.transport import (
    BROADCAST_ALL,
    PROFILE_SMART_ENERGY,
    PROFILE_ZDP,
    ApsFrame,
    FrameError,
    HanTransport,
    TxOptions,
    TxResult,
    TxStatus,
)
from gbhil.simulator.clock import Clock, RealTimeClock

LOGGER = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Catalogue: the Smart Energy endpoint the coordinator registers
# ---------------------------------------------------------------------------

SE_ENDPOINT: Final = 1
#: Smart Energy device ID of an Energy Service Interface (the CHF's role).
SE_DEVICE_ESI: Final = 0x0500
#: Server clusters of a CHF ESI endpoint: Basic, Identify, Time, Price, Messaging,
#: Tunneling, Prepayment, Calendar, Device Management, Key Establishment.
SE_INPUT_CLUSTERS: Final = (
    0x0000,
    0x0003,
    0x000A,
    0x0700,
    0x0703,
    0x0704,
    0x0705,
    0x0707,
    0x0708,
    0x0800,
)
#: Client clusters: Metering (mirrors), Tunneling (GET from devices), Key Establishment.
SE_OUTPUT_CLUSTERS: Final = (0x0702, 0x0704, 0x0800)
#: Sub-GHz lives on the NCP's second PHY (EZSP multi-PHY, radio-stack.md 3.2).
SUB_GHZ_PHY_INDEX: Final = 1
#: Multi-PHY network configuration bitmask: no options.
MULTI_PHY_NO_OPTIONS: Final = 0x00
#: Radius of the channel-change broadcast, and how long the NCP has to act on it.
CHANNEL_CHANGE_RADIUS: Final = 30
CHANNEL_CHANGE_TIMEOUT_S: Final = 12.0
#: Permit-joining window (s) the rigs open on the NCP: the ZDO maximum (254; 255 = forever).
PERMIT_S: Final = 254
DEFAULT_CHANNEL: Final = 11
DEFAULT_BAUDRATE: Final = 115200
DEFAULT_SUB_GHZ_POWER_DBM: Final = 0
#: How long (s) the NCP has to report each fragment sent (bellows' mains-powered timeout).
FRAGMENT_SENT_TIMEOUT_S: Final = bellows_app.MESSAGE_SEND_TIMEOUT_MAINS
NO_CERTIFICATE_MESSAGE: Final = (
    "radio has no Smart Energy certificate: real SMETS2 devices will not join "
    "(no sect283k1 CBKE certificate installed on the NCP)"
)
#: A certificate token that was never written reads as erased flash.
_ERASED_BYTES: Final = (0x00, 0xFF)


class RadioError(HanError):
    """The radio cannot do what was asked (band, firmware, state); says why."""


@dataclass(frozen=True, slots=True)
class RadioSettings:
    """How to open the stick and which network to form when it has none.

    ``pan_id``/``extended_pan_id``/``network_key`` left None are chosen by
    zigpy at random when a network is formed; an NCP that already has a
    network resumes it and ignores them.
    """

    port: str
    channel: int = DEFAULT_CHANNEL
    baudrate: int = DEFAULT_BAUDRATE
    flow_control: str | None = None  # None/"software" (bellows default) or "hardware"
    pan_id: int | None = None
    extended_pan_id: bytes | None = None
    network_key: bytes | None = None
    form: bool = True
    database_path: str | None = None
    use_thread: bool = True
    extra_config: Mapping[str, Any] = field(default_factory=dict)

    def zigpy_config(self) -> dict[str, Any]:
        """The ControllerApplication configuration dictionary."""
        validate(PAGE_2_4_GHZ, self.channel)
        nwk: dict[str, Any] = {zconf.CONF_NWK_CHANNEL: self.channel}
        if self.pan_id is not None:
            nwk[zconf.CONF_NWK_PAN_ID] = self.pan_id
        if self.extended_pan_id is not None:
            nwk[zconf.CONF_NWK_EXTENDED_PAN_ID] = ":".join(f"{b:02x}" for b in self.extended_pan_id)
        if self.network_key is not None:
            nwk[zconf.CONF_NWK_KEY] = ":".join(f"{b:02x}" for b in self.network_key)
        config: dict[str, Any] = {
            zconf.CONF_DEVICE: {
                zconf.CONF_DEVICE_PATH: self.port,
                zconf.CONF_DEVICE_BAUDRATE: self.baudrate,
                zconf.CONF_DEVICE_FLOW_CONTROL: self.flow_control,
            },
            zconf.CONF_DATABASE: self.database_path,
            zconf.CONF_NWK: nwk,
            zconf.CONF_NWK_BACKUP_ENABLED: False,
            zconf.CONF_TOPO_SCAN_ENABLED: False,
            zconf.CONF_OTA: {zconf.CONF_OTA_ENABLED: False},
            CONF_USE_THREAD: self.use_thread,
        }
        config.update(self.extra_config)
        return config


@dataclass(slots=True)
class RadioCounters:
    """Frames through the radio, and sends the NCP reported as not delivered."""

    sent: int = 0
    received: int = 0
    delivery_failures: int = 0
    last_failure: str = ""


class _FragmentingEzsp(bellows.ezsp.EZSP):
    """bellows' EZSP layer with APS fragment reassembly for EZSP v14 and later.

    bellows 1.2.1 reassembles fragments with the pre-v14 field positions of
    ``incomingMessageHandler`` (sender at 4, message at 7); from v14 those are
    ``binding_index`` and ``rssi``, so every fragmented message is lost. Here
    the fragments of a v14+ NCP are collected (:mod:`gbhil.han.ezsp.fragments`),
    each is acknowledged as EmberZNet's host library does, and the whole
    message goes to the callbacks as one ``incomingMessageHandler``.
    """

    def __init__(self, device_config: dict[str, Any], application: Any = None) -> None:
        super().__init__(device_config, application)
        self._fragments = fragments.Reassembler()
        self._ack_tasks: set[asyncio.Task[Any]] = set()

    def frame_received(self, data: bytes) -> None:
        fragment = self._fragment_of(data)
        if fragment is None:
            super().frame_received(data)
            return
        try:
            self._take_fragment(fragment)
        except fragments.FragmentError as exc:
            LOGGER.warning("EZSP radio: fragmented message dropped: %s", exc)

    def _fragment_of(self, data: bytes) -> dict[str, Any] | None:
        protocol = self._protocol
        if protocol is None or not data or self.ezsp_version < SL_STATUS_SINCE:
            return None
        try:
            _sequence, frame_id, payload = protocol._ezsp_frame_rx(data)
            name, _tx, rx_schema = protocol.COMMANDS_BY_ID[frame_id]
            if name != "incomingMessageHandler":
                return None
            values, _rest = bellows_t.deserialize_dict(payload, rx_schema)
        except (KeyError, ValueError):
            return None  # bellows' own path reports it
        if not int(values["aps_frame"].options) & ApsOption.FRAGMENT:
            return None
        return dict(values)

    def _take_fragment(self, values: dict[str, Any]) -> None:
        aps = values["aps_frame"]
        sender = int(values["nwk"])
        group = int(aps.groupId)
        key = (sender, int(aps.sequence), int(aps.profileId), int(aps.clusterId))
        whole = self._fragments.add(key, group, bytes(values["message"]))
        self._acknowledge(sender, aps, fragments.count_and_index(group)[1])
        if whole is None:
            return
        values["aps_frame"] = bellows_t.EmberApsFrame(
            profileId=aps.profileId,
            clusterId=aps.clusterId,
            sourceEndpoint=aps.sourceEndpoint,
            destinationEndpoint=aps.destinationEndpoint,
            options=bellows_t.EmberApsOption(int(aps.options) & ~ApsOption.FRAGMENT),
            groupId=0,
            sequence=aps.sequence,
        )
        values["message"] = bellows_t.LVBytes(whole)
        self.handle_callback("incomingMessageHandler", list(values.values()))

    def _acknowledge(self, sender: int, aps: Any, index: int) -> None:
        """APS-acknowledge one fragment (a reply with no data, groupId 0xFFnn)."""
        ack = bellows_t.EmberApsFrame(
            profileId=aps.profileId,
            clusterId=aps.clusterId,
            sourceEndpoint=aps.destinationEndpoint,
            destinationEndpoint=aps.sourceEndpoint,
            options=aps.options,
            groupId=fragments.FRAGMENT_ACK_COUNT << fragments.FRAGMENT_COUNT_SHIFT | index,
            sequence=aps.sequence,
        )
        task = asyncio.get_running_loop().create_task(self._send_ack(sender, ack))
        self._ack_tasks.add(task)
        task.add_done_callback(self._ack_tasks.discard)

    async def _send_ack(self, sender: int, ack: Any) -> None:
        try:
            await self.sendReply(sender, ack, b"")
        except (TimeoutError, OSError, RuntimeError, bellows.ash.NcpFailure) as exc:
            LOGGER.debug("fragment acknowledgement not sent: %r", exc)  # e.g. port closed


class _SeControllerApplication(bellows_app.ControllerApplication):
    """bellows' application with the gbhil shims: an SE endpoint and a raw-frame tap."""

    radio: EzspRadio | None = None

    async def connect(self) -> None:
        """bellows' connect, on the EZSP layer that reassembles v14+ fragments."""
        self._ezsp = _FragmentingEzsp(self.config[zconf.CONF_DEVICE], self)
        try:
            await self._ezsp.connect(use_thread=self.config[CONF_USE_THREAD])
            await self._ezsp.write_config(self.config[CONF_EZSP_CONFIG])
            self._created_device_endpoints.clear()
            await self.register_endpoints()
        except Exception:
            await self._ezsp.disconnect()
            self._ezsp = None
            raise

    async def register_endpoints(self) -> None:
        await self.add_endpoint(
            zdo_t.SimpleDescriptor(
                endpoint=SE_ENDPOINT,
                profile=PROFILE_SMART_ENERGY,
                device_type=SE_DEVICE_ESI,
                device_version=0,
                input_clusters=list(SE_INPUT_CLUSTERS),
                output_clusters=list(SE_OUTPUT_CLUSTERS),
            )
        )
        for endpoint in self.config[zconf.CONF_ADDITIONAL_ENDPOINTS]:
            await self.add_endpoint(endpoint)

    def ezsp_callback_handler(self, frame_name: str, args: list[Any]) -> None:
        if frame_name == "incomingMessageHandler" and self.radio is not None:
            self.radio._incoming(args)
        super().ezsp_callback_handler(frame_name, args)

    def packet_received(self, packet: zt.ZigbeePacket) -> None:
        # zigpy drops SE-profile packets and chases unknown senders with ZDO
        # requests; gbhil has already delivered the frame, so only ZDO traffic
        # and devices zigpy knows go on to zigpy.
        if packet.profile_id != PROFILE_ZDP:
            try:
                self.get_device_with_address(packet.src)
            except (KeyError, ValueError):
                return
            if packet.profile_id == PROFILE_SMART_ENERGY:
                return
        super().packet_received(packet)


class EzspRadio(HanTransport):
    """A real (or emulated) EZSP NCP as a :class:`HanTransport` (see the module docstring).

    Create it with :meth:`open`, which connects, forms or resumes the network
    and reads the NCP's EUI-64, protocol version and CBKE certificate.
    """

    def __init__(
        self,
        app: _SeControllerApplication,
        settings: RadioSettings,
        eui64: bytes,
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(eui64)
        self.app = app
        self.settings = settings
        self.clock = clock or RealTimeClock()
        self.counters = RadioCounters()
        self.protocol_version: int = app._ezsp.ezsp_version
        self.certificate_283k1: bytes | None = None
        self.phy_interfaces: int | None = None
        self._sub_ghz: PageChannel | None = None
        self._running = True
        app.radio = self

    # -- opening ---------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        port: str | RadioSettings,
        *,
        clock: Clock | None = None,
        **settings: Any,
    ) -> EzspRadio:
        """Connect to the stick at ``port``, form or resume its network, and start."""
        cfg = port if isinstance(port, RadioSettings) else RadioSettings(port, **settings)
        app = await cls._start_app(cfg)
        try:
            version = app._ezsp.ezsp_version
            if version < MIN_PROTOCOL_VERSION:
                raise RadioError(
                    f"NCP at {cfg.port} speaks EZSP protocol {version}; gbhil needs "
                    f"{MIN_PROTOCOL_VERSION} or later (EmberZNet 7.4+): update the firmware"
                )
            eui64 = bytes(app.state.node_info.ieee)[::-1]
            radio = cls(app, cfg, eui64, clock=clock)
            await radio._read_capabilities()
        except BaseException:
            await app.shutdown()
            raise
        return radio

    @staticmethod
    async def _start_app(cfg: RadioSettings) -> _SeControllerApplication:
        try:
            return await _SeControllerApplication.new(cfg.zigpy_config(), auto_form=cfg.form)
        except zigpy.exceptions.NetworkNotFormed as exc:
            raise RadioError(
                f"NCP at {cfg.port} has no network and forming one was not allowed (form=False)"
            ) from exc
        except (OSError, TimeoutError, zigpy.exceptions.ZigbeeException) as exc:
            raise RadioError(f"cannot start the EZSP radio at {cfg.port}: {exc!r}") from exc

    async def _read_capabilities(self) -> None:
        ezsp = self.app._ezsp
        try:
            (self.phy_interfaces,) = await ezsp.getPhyInterfaceCount()
        except Exception as exc:  # an NCP without multi-PHY support may refuse the frame
            LOGGER.debug("getPhyInterfaceCount failed: %r", exc)
            self.phy_interfaces = 1
        try:
            status, cert = await ezsp.getCertificate283k1()
        except Exception as exc:  # no CBKE library in the firmware
            LOGGER.debug("getCertificate283k1 failed: %r", exc)
            status, cert = 1, b""
        raw = bytes(cert)
        erased = len(set(raw)) == 1 and raw[0] in _ERASED_BYTES
        if int(status) == 0 and len(raw) == CERTIFICATE_283K1_LEN and not erased:
            self.certificate_283k1 = raw
        else:
            self.certificate_283k1 = None
            LOGGER.warning("%s: %s", self.settings.port, NO_CERTIFICATE_MESSAGE)

    @property
    def has_cbke_certificate(self) -> bool:
        """Whether the NCP holds a Smart Energy (sect283k1) CBKE certificate."""
        return self.certificate_283k1 is not None

    @property
    def cbke_message(self) -> str:
        """One line on the CBKE state, for rig checks and logs."""
        if self.certificate_283k1 is None:
            return NO_CERTIFICATE_MESSAGE
        return "radio has a Smart Energy sect283k1 CBKE certificate installed"

    # -- data plane -----------------------------------------------------------------
    async def send(self, frame: ApsFrame) -> TxResult:
        if frame.src_eui64 != self.eui64:
            raise FrameError(
                f"src_eui64 {frame.src_eui64.hex()} is not this radio ({self.eui64.hex()})"
            )
        if not self._running:
            raise RadioError("the radio is not on the HAN (call join() first)")
        pc = frame.page_channel
        if pc is not None and pc not in self.channels:
            raise RadioError(f"the radio has no radio on {pc} (its radios: {self.channels})")
        if frame.is_broadcast:
            dst = zt.AddrModeAddress(
                addr_mode=zt.AddrMode.Broadcast,
                address=zt.BroadcastAddress(frame.dst_short or BROADCAST_ALL),
            )
        else:
            nwk = frame.dst_short
            if nwk is None:
                assert frame.dst_eui64 is not None
                nwk = await self._lookup_nwk(frame.dst_eui64)
            dst = zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=zt.NWK(nwk))
        options = zt.TransmitOptions.NONE
        if frame.options & TxOptions.APS_ACK:
            options |= zt.TransmitOptions.ACK
        if frame.options & TxOptions.APS_SECURITY:
            options |= zt.TransmitOptions.APS_Encryption
        packet = zt.ZigbeePacket(
            src=zt.AddrModeAddress(addr_mode=zt.AddrMode.NWK, address=self.app.state.node_info.nwk),
            src_ep=frame.src_endpoint,
            dst=dst,
            dst_ep=frame.dst_endpoint,
            tsn=frame.aps_counter if frame.aps_counter is not None else self.app.get_sequence(),
            profile_id=frame.profile_id,
            cluster_id=frame.cluster_id,
            data=zt.SerializableBytes(frame.payload),
            tx_options=options,
            radius=0,
        )
        channel = self.channels[0]
        # Same airtime model as the simulated medium (fragments of at most one PSDU).
        on_air = sum(
            airtime(channel.page, min(n, MAX_PSDU_2_4)) for n in DEFAULT_FRAMING.psdu_lengths(frame)
        )
        start = self.clock.monotonic()
        fragmented = len(frame.payload) > fragments.FRAGMENT_PAYLOAD_MAX
        if fragmented and frame.is_broadcast:
            raise FrameError(
                f"a {len(frame.payload)}-octet broadcast does not fit one APS frame "
                f"({fragments.FRAGMENT_PAYLOAD_MAX} octets) and APS fragmentation is unicast only"
            )
        try:
            if fragmented:
                await self._send_fragments(packet)
            else:
                await self.app.send_packet(packet)
        except zigpy.exceptions.DeliveryError as exc:
            # The frame left the radio but the NCP reports no delivery (no APS ACK,
            # no route). The simulated medium does not report loss either, so
            # this is counted and logged, not raised (rule 2).
            self.counters.delivery_failures += 1
            self.counters.last_failure = str(exc)
            LOGGER.warning("EZSP radio: frame to %s not delivered: %s", dst.address, exc)
        except (zigpy.exceptions.ControllerException, RuntimeError) as exc:
            raise RadioError(f"the NCP did not take the frame: {exc!r}") from exc
        self.counters.sent += 1
        return TxResult(TxStatus.SENT, (channel,), on_air, start, self.clock.monotonic())

    async def _send_fragments(self, packet: zt.ZigbeePacket) -> None:
        """A unicast too long for one APS frame, as EmberZNet's host fragmentation sends it.

        Each fragment is a ``sendUnicast`` with the FRAGMENT option, the count and
        index in ``groupId`` and the message's APS counter; the next goes once the
        NCP reports the previous one sent (a window of one).
        """
        app = self.app
        ezsp = app._ezsp
        parts = fragments.split(bytes(packet.data.serialize()))
        options = bellows_t.EmberApsOption(
            ApsOption.FRAGMENT | ApsOption.RETRY | ApsOption.ENABLE_ROUTE_DISCOVERY
        )
        if zt.TransmitOptions.APS_Encryption in packet.tx_options:
            options |= bellows_t.EmberApsOption.APS_OPTION_ENCRYPTION
        nwk = packet.dst.address
        for index, part in enumerate(parts):
            aps = bellows_t.EmberApsFrame(
                profileId=packet.profile_id,
                clusterId=packet.cluster_id,
                sourceEndpoint=packet.src_ep,
                destinationEndpoint=packet.dst_ep or 0,
                options=options,
                groupId=fragments.group_id(len(parts), index),
                sequence=packet.tsn,
            )
            tag = app.get_sequence()
            pending = (nwk, tag)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            app._pending_requests[pending] = future
            try:
                status, _ = await ezsp.send_unicast(
                    nwk=nwk, aps_frame=aps, message_tag=tag, data=part
                )
                if status != bellows_t.sl_Status.OK:
                    raise zigpy.exceptions.DeliveryError(
                        f"fragment {index + 1}/{len(parts)} not taken: {status!r}", status
                    )
                try:
                    async with asyncio.timeout(FRAGMENT_SENT_TIMEOUT_S):
                        sent, _ = await future
                except TimeoutError:
                    raise zigpy.exceptions.DeliveryError(
                        f"fragment {index + 1}/{len(parts)}: the NCP reported no messageSent "
                        f"within {FRAGMENT_SENT_TIMEOUT_S:g} s"
                    ) from None
                if bellows_t.sl_Status.from_ember_status(sent) != bellows_t.sl_Status.OK:
                    raise zigpy.exceptions.DeliveryError(
                        f"fragment {index + 1}/{len(parts)} not delivered: {sent!r}", sent
                    )
            finally:
                del app._pending_requests[pending]

    async def _lookup_nwk(self, eui64: bytes) -> int:
        ieee = zt.EUI64(eui64[::-1])
        with contextlib.suppress(KeyError):
            return int(self.app.get_device(ieee=ieee).nwk)
        ezsp = self.app._ezsp
        if self.protocol_version >= SL_STATUS_SINCE:
            status, nwk = await ezsp.lookupNodeIdByEui64(eui64=ieee)
            found = int(status) == 0 and nwk != 0xFFFF
        else:
            (nwk,) = await ezsp.lookupNodeIdByEui64(eui64=ieee)
            found = nwk != 0xFFFF
        if not found:
            raise RadioError(
                f"destination {eui64.hex('-').upper()} is not known to the NCP "
                "(not joined, not in its address or child table)"
            )
        return int(nwk)

    def _incoming(self, args: Sequence[Any]) -> None:
        """An EZSP ``incomingMessageHandler`` callback, before zigpy sees it."""
        if self.protocol_version >= SL_STATUS_SINCE:
            message_type, aps, nwk, eui64, _b, _a, _lqi, _rssi, _ts, message = args
            src_eui = bytes(eui64)[::-1]
        else:
            message_type, aps, _lqi, _rssi, nwk, _b, _a, message = args
            src_eui = self._eui_of(int(nwk))
        if src_eui is None or src_eui in (b"\x00" * 8, b"\xff" * 8):
            LOGGER.warning("EZSP radio: frame from unknown node 0x%04X dropped", int(nwk))
            return
        if src_eui == self.eui64:
            return  # the NCP's own ZDO answering zigpy: zigpy's business only
        if message_type in (IncomingMessageType.BROADCAST, IncomingMessageType.MULTICAST):
            dst_eui, dst_short = None, BROADCAST_ALL
        elif message_type in (IncomingMessageType.UNICAST, IncomingMessageType.UNICAST_REPLY):
            dst_eui, dst_short = self.eui64, int(self.app.state.node_info.nwk)
        else:
            return  # loopbacks of our own frames
        options = TxOptions.NONE
        if int(aps.options) & ApsOption.ENCRYPTION:
            options |= TxOptions.APS_SECURITY
        if int(aps.options) & ApsOption.RETRY:
            options |= TxOptions.APS_ACK
        channel = self.channels[0]
        try:
            frame = ApsFrame(
                src_eui64=src_eui,
                dst_eui64=dst_eui,
                cluster_id=int(aps.clusterId),
                payload=bytes(message),
                src_endpoint=int(aps.sourceEndpoint),
                dst_endpoint=int(aps.destinationEndpoint),
                profile_id=int(aps.profileId),
                aps_counter=int(aps.sequence),
                src_short=int(nwk),
                dst_short=dst_short,
                page=channel.page,
                channel=channel.channel,
                options=options,
            )
        except FrameError as exc:
            LOGGER.warning("EZSP radio: unusable incoming frame: %s", exc)
            return
        self.counters.received += 1
        self._deliver(frame)

    def _eui_of(self, nwk: int) -> bytes | None:
        for dev in self.app.devices.values():
            if dev.nwk == nwk:
                return bytes(dev.ieee)[::-1]
        return None

    # -- control plane ----------------------------------------------------------------
    async def join(self) -> None:
        """Restart the stack on the stick if it was stopped (the network resumes)."""
        if self._running:
            return
        self.app = await self._start_app(self.settings)
        self.app.radio = self
        self._sub_ghz = None
        self._running = True

    async def leave(self) -> None:
        """Stop the stack and release the port; the NCP keeps its network."""
        if not self._running:
            return
        self._running = False
        self.app.radio = None
        await self.app.shutdown()

    async def close(self) -> None:
        """Same as :meth:`leave`: for ``async with`` and rig teardown."""
        await self.leave()

    async def __aenter__(self) -> EzspRadio:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def permit(self, seconds: int = 60) -> None:
        """Open the trust centre for joins (pre-configured or install-code link keys)."""
        await self.app.permit(seconds)

    async def set_channel(self, page: int, channel: int) -> bool:
        pc = validate(page, channel)
        if band_of(page) is Band.GHZ_2_4:
            if pc in self.channels:
                return True
            await self._move_2_4(channel)
            return True
        return await self._set_sub_ghz(pc)

    async def move_network(self, page: int, channel: int) -> bool:
        """As the network manager (the CHF): move the HAN's radio of ``page``'s band.

        2.4 GHz: the NCP's own channel migration (:meth:`_move_2_4`). Sub-GHz: a
        Mgmt_NWK_Update_req broadcast on the old channel, which the devices of that
        band follow; the NCP's second PHY is then retuned with ``multiPhySetRadioChannel``
        unless the NCP already moved it when it sent the request (gbhil's emulator does,
        after the medium's frequency-agility check). False when the NCP refuses.
        """
        pc = validate(page, channel)
        if band_of(page) is Band.GHZ_2_4:
            return await self.set_channel(page, channel)
        if self._sub_ghz is None or self._sub_ghz == pc:
            return await self._set_sub_ghz(pc)
        update_id = (int(self.app.state.network_info.nwk_update_id) + 1) & 0xFF
        failures = self.counters.delivery_failures
        await self.send(
            ApsFrame(
                src_eui64=self.eui64,
                dst_eui64=None,
                cluster_id=ZDO_MGMT_NWK_UPDATE_REQ,
                payload=channel_change_payload(pc, update_id, self.app.get_sequence()),
                src_endpoint=ZDO_ENDPOINT,
                dst_endpoint=ZDO_ENDPOINT,
                profile_id=PROFILE_ZDP,
                dst_short=BROADCAST_ALL,
            )
        )
        if self.counters.delivery_failures != failures:
            return False  # the NCP did not send it: nobody moves
        status, params = await self.app._ezsp.getRadioParameters(phyIndex=SUB_GHZ_PHY_INDEX)
        if int(status) != 0:
            raise RadioError(f"the NCP cannot report its sub-GHz PHY: status {status!r}")
        self._sub_ghz = PageChannel(int(params.radioPage), int(params.radioChannel))
        return self._sub_ghz == pc or await self._set_sub_ghz(pc)

    async def _move_2_4(self, channel: int) -> None:
        """Move the whole network: one Mgmt_NWK_Update_req broadcast, as a network manager does.

        EmberZNet acts on its own broadcast and reports ``stackStatusHandler
        (CHANNEL_CHANGED)``; when that does not come, the NCP is moved directly
        with ``setRadioChannel``. (zigpy's own migration ends in a ZDO request to
        the coordinator that expects a reply the standard does not send.)
        """
        ezsp = self.app._ezsp
        update_id = (int(self.app.state.network_info.nwk_update_id) + 1) & 0xFF
        with ezsp.wait_for_stack_status(bellows_t.sl_Status.ZIGBEE_CHANNEL_CHANGED) as changed:
            await zigpy.zdo.broadcast(
                self.app,
                zdo_t.ZDOCmd.Mgmt_NWK_Update_req,
                None,
                CHANNEL_CHANGE_RADIUS,
                broadcast_address=zt.BroadcastAddress.ALL_DEVICES,
                NwkUpdate=zdo_t.NwkUpdate(
                    ScanChannels=zt.Channels.from_channel_list([channel]),
                    ScanDuration=zdo_t.NwkUpdate.CHANNEL_CHANGE_REQ,
                    nwkUpdateId=update_id,
                ),
            )
            try:
                async with asyncio.timeout(CHANNEL_CHANGE_TIMEOUT_S):
                    await changed
            except TimeoutError:
                (status,) = await ezsp.setRadioChannel(channel=channel)
                if int(status) != 0:
                    raise RadioError(
                        f"the NCP refused to move to channel {channel}: status {status!r}"
                    ) from None
        await self.app.load_network_info(load_devices=False)
        if int(self.app.state.network_info.channel) != channel:
            raise RadioError(
                f"the NCP still reports channel {self.app.state.network_info.channel} "
                f"after moving to {channel}"
            )

    async def _set_sub_ghz(self, pc: PageChannel) -> bool:
        if self._sub_ghz == pc:
            return True
        if (self.phy_interfaces or 1) < 2:
            raise RadioError(
                f"cannot use {pc}: the NCP firmware at {self.settings.port} has "
                f"{self.phy_interfaces or 1} PHY interface (2.4 GHz only) and EZSP has no "
                "other way to reach a sub-GHz band; GB868 needs a dual-PHY Smart Energy "
                "NCP (e.g. EFR32xG24 + Si4468, or EFR32MG12/13 sub-GHz firmware)"
            )
        ezsp = self.app._ezsp
        if self._sub_ghz is None:
            (status,) = await ezsp.multiPhyStart(
                phyIndex=SUB_GHZ_PHY_INDEX,
                page=pc.page,
                channel=pc.channel,
                power=DEFAULT_SUB_GHZ_POWER_DBM,
                bitmask=MULTI_PHY_NO_OPTIONS,
            )
            what = "multiPhyStart"
        else:
            (status,) = await ezsp.multiPhySetRadioChannel(
                phyIndex=SUB_GHZ_PHY_INDEX, page=pc.page, channel=pc.channel
            )
            what = "multiPhySetRadioChannel"
        if int(status) != 0:
            raise RadioError(f"the NCP refused {what} to {pc}: status {status!r}")
        self._sub_ghz = pc
        return True

    @property
    def channels(self) -> tuple[PageChannel, ...]:
        info = self.app.state.network_info
        radios = [PageChannel(PAGE_2_4_GHZ, int(info.channel))]
        if self._sub_ghz is not None:
            radios.append(self._sub_ghz)
        return tuple(radios)

    @property
    def joined(self) -> bool:
        return self._running and self.app.is_controller_running

    def known_euis(self) -> set[bytes]:
        """EUI-64s (gbhil's byte order) of the devices zigpy knows: the NCP reported them."""
        return {bytes(ieee)[::-1] for ieee in self.app.devices}


__all__ = [
    "NO_CERTIFICATE_MESSAGE",
    "SE_ENDPOINT",
    "EzspRadio",
    "RadioCounters",
    "RadioError",
    "RadioSettings",
]
