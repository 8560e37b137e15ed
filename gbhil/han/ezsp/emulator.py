"""An EZSP network co-processor emulated on a pseudo-terminal, on the simulated HAN.

Why: the real-radio transport (:class:`gbhil.han.ezsp.radio.EzspRadio`) runs
the unmodified bellows/zigpy stack, and CI has no USB stick. This emulator is
the stick: it owns the master side of ``os.openpty()``; bellows opens the
slave path (``/dev/pts/N``) exactly as it would open ``/dev/ttyUSB0``, and
everything bellows does (ASH reset, version negotiation, configuration,
forming or resuming a network, unicasts and their ``messageSentHandler``)
goes through real serial I/O. The emulated NCP is a node on a
:class:`~gbhil.han.medium.SimulatedMedium`, so frames the host sends reach
simulated devices and their frames come back as ``incomingMessageHandler``
callbacks (architecture rule 2: a HIL suite cannot tell it from a stick).

What it implements (see docs/radios.md for the full list):

* ASH, NCP side: RST -> RSTACK, numbered DATA frames both ways, ACK, NAK of
  bad or out-of-sequence frames, retransmission with reTx, and the ERROR
  frame after too many unacknowledged retransmissions.
* EZSP protocol 14, 16, 17 or 18 (``EMULATED_VERSIONS``): every command in
  :data:`gbhil.han.ezsp.frames.COMMANDS` with stateful handlers: configuration
  and values, endpoints, policies, the network (form, init/resume, leave,
  state, parameters) kept across resets as an NCP keeps it in flash, keys
  (initial security state, export), tokens (absent NV3 store), address
  lookups from the medium, unicast/broadcast/multicast onto the medium with
  ``messageSentHandler``, permit joining, channel change via ZDO
  Mgmt_NWK_Update_req, multi-PHY sub-GHz (when configured dual-PHY), duty
  cycle state and the Smart Energy CBKE certificate (none by default).
* Any other frame ID is answered with ``invalidCommand``, as an NCP does.

Timers (ASH retransmission, delayed callbacks) come from the medium's clock
(architecture rule 3). A serial client in another thread runs on wall-clock
time, so the medium must use a real-time clock, unless the client shares the
emulator's loop on a :class:`~gbhil.han.ezsp.serial_clock.SerialSteppedClock`
(bellows with ``use_thread=False``): then the whole chain runs in virtual
time. The emulator refuses a plain stepped clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import tty
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from gbhil.han.channels import (
    PAGE_2_4_GHZ,
    SUB_GHZ_PAGES,
    Band,
    ChannelError,
    HanError,
    band_of,
    validate,
)
from gbhil.han.ezsp import ash, fragments
from gbhil.han.ezsp.frames import (
    BY_NAME,
    CERTIFICATE_283K1_LEN,
    DEFAULT_EMULATED_VERSION,
    EMULATED_VERSIONS,
    FC_ASYNC_CALLBACK,
    FC_RESPONSE,
    STACK_TYPE_MESH,
    ApsOption,
    Command,
    ConfigId,
    CurrentSecurityBitmask,
    DeviceUpdate,
    DutyCycleState,
    EzspFrameError,
    EzspHeader,
    IncomingMessageType,
    JoinDecision,
    MfgTokenId,
    NetworkStatus,
    NodeType,
    OutgoingMessageType,
    SlStatus,
    ValueId,
    by_frame_id,
    decode_header,
    is_legacy_version_command,
)
from gbhil.han.joining import (
    JoinOffer,
    JoinRole,
    RejectReason,
    seal_transport_key,
    verify_key_hash,
)
from gbhil.han.medium import SimulatedMedium, SimulatedNode, channel_change_of
from gbhil.han.transport import (
    BROADCAST_SHORT_ADDRESSES,
    PROFILE_ZDP,
    ApsFrame,
    TxOptions,
    TxStatus,
)
from gbhil.simulator.clock import ClockMode, TimerHandle

LOGGER = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Catalogue: emulator defaults and protocol facts it relies on
# ---------------------------------------------------------------------------

#: UG101 defaults: initial ACK timeout and consecutive timeouts before FAILED.
T_RX_ACK_S: Final = 1.6
ACK_TIMEOUTS: Final = 5
#: DATA frames the NCP may have unacknowledged (UG101's TX_K allows up to 7).
TX_WINDOW: Final = 3
#: Number of counters ``readCounters`` returns (EMBER_COUNTER_TYPE_COUNT).
COUNTER_COUNT: Final = 41
COUNTER_MAC_RX_UNICAST: Final = 0x02
COUNTER_MAC_TX_UNICAST_SUCCESS: Final = 0x03
COUNTER_APS_DATA_RX_UNICAST: Final = 0x08
COUNTER_APS_DATA_TX_UNICAST_SUCCESS: Final = 0x09
COUNTER_APS_DATA_TX_UNICAST_FAILED: Final = 0x0B
#: getValue(FREE_BUFFERS): a healthy NCP reports plenty.
FREE_BUFFERS: Final = 0xF0
#: ``findKeyTableEntry`` answer when no key matches.
KEY_TABLE_NOT_FOUND: Final = 0xFF
NULL_NODE_ID: Final = 0xFFFF
COORDINATOR_SHORT: Final = 0x0000
#: SecurityManagerKeyType values ``exportKey`` distinguishes.
KEY_TYPE_NETWORK: Final = 1
KEY_TYPE_TC_LINK: Final = 2
#: EmberInitialSecurityBitmask bits the current-state bitmask reflects.
INITIAL_HAVE_PRECONFIGURED_KEY: Final = 0x0100
INITIAL_TO_CURRENT_MASK: Final = 0x0002 | 0x0004 | 0x0084
#: ZDO requests the NCP's own ZDO answers (a response cluster is request | 0x8000).
ZDO_NWK_ADDR_REQ: Final = 0x0000
ZDO_IEEE_ADDR_REQ: Final = 0x0001
ZDO_NODE_DESC_REQ: Final = 0x0002
ZDO_SIMPLE_DESC_REQ: Final = 0x0004
ZDO_ACTIVE_EP_REQ: Final = 0x0005
ZDO_MGMT_NWK_UPDATE_REQ: Final = 0x0038
ZDO_RESPONSE_BIT: Final = 0x8000
ZDO_CHANNEL_CHANGE: Final = 0xFE
ZDO_SUCCESS: Final = 0x00
ZDO_INVALID_EP: Final = 0x82
ZDO_NOT_ACTIVE: Final = 0x83
#: Node descriptor of an EmberZNet coordinator: logical type 0 (coordinator),
#: frequency band bit 6 (2.4 GHz; bit 3 = 868 MHz on a dual-band NCP), MAC
#: capabilities alternate-PAN-coordinator | FFD | mains | rx-on-when-idle |
#: allocate-address, server mask primary trust centre | network manager with
#: stack compliance revision 22, 82-byte buffers and 128-byte transfers.
NODE_DESC_LOGICAL_COORDINATOR: Final = 0x00
NODE_DESC_BAND_2_4: Final = 0x40
NODE_DESC_BAND_868: Final = 0x08
NODE_DESC_MAC_CAPABILITIES: Final = 0x8F
NODE_DESC_MAX_BUFFER: Final = 82
NODE_DESC_MAX_TRANSFER: Final = 128
NODE_DESC_SERVER_MASK: Final = 0x2C41
#: Silicon Labs' manufacturer code, which EmberZNet NCPs report.
MANUFACTURER_CODE_SILABS: Final = 0x1049
#: Delay before a requested channel change takes effect (a real NCP waits for
#: the broadcast to propagate; kept short so tests stay fast).
CHANNEL_CHANGE_DELAY_S: Final = 0.2
#: Link quality reported for frames from the simulated medium.
SIM_LQI: Final = 0xFF
SIM_RSSI: Final = -40
#: Index of the second (sub-GHz) PHY on a dual-PHY NCP.
SUB_GHZ_PHY_INDEX: Final = 1
#: getMfgToken(CUSTOM_EUI_64) of an NCP whose EUI-64 was never overridden.
ERASED_EUI64: Final = b"\xff" * 8


class EmulatorError(HanError):
    """The emulator cannot run as configured (bad settings, wrong clock, no pty)."""


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """What kind of NCP to emulate.

    ``phy_interfaces=2`` models a dual-PHY GB868 NCP (EFR32xG24 + Si4468 style)
    whose second PHY serves sub-GHz pages 28-31; the default is a commodity
    2.4 GHz-only stick. ``certificate_283k1`` is the Smart Energy CBKE
    certificate installed at manufacture (74 bytes); None means none, as on
    every commodity stick.
    """

    eui64: bytes
    protocol_version: int = DEFAULT_EMULATED_VERSION
    stack_version: tuple[int, int, int, int] = (8, 0, 2, 0)
    build: int = 0
    manufacturer: str = "gbhil"
    board_name: str = "EZSP emulator"
    phy_interfaces: int = 1
    certificate_283k1: bytes | None = None
    short_address: int = COORDINATOR_SHORT
    initial_channel: int = 11
    sub_ghz_page: int = 28
    sub_ghz_channel: int = 0
    tx_window: int = TX_WINDOW
    t_rx_ack: float = T_RX_ACK_S

    def __post_init__(self) -> None:
        if not isinstance(self.eui64, bytes) or len(self.eui64) != 8:
            raise EmulatorError(f"eui64 must be 8 bytes, got {self.eui64!r}")
        if self.protocol_version not in EMULATED_VERSIONS:
            raise EmulatorError(
                f"EZSP protocol version {self.protocol_version} is not emulated "
                f"(supported: {', '.join(map(str, sorted(EMULATED_VERSIONS)))})"
            )
        if self.phy_interfaces not in (1, 2):
            raise EmulatorError(f"phy_interfaces must be 1 or 2, got {self.phy_interfaces}")
        if self.certificate_283k1 is not None and (
            not isinstance(self.certificate_283k1, bytes)
            or len(self.certificate_283k1) != CERTIFICATE_283K1_LEN
        ):
            raise EmulatorError(
                f"certificate_283k1 must be {CERTIFICATE_283K1_LEN} bytes (sect283k1 implicit "
                f"certificate), got {self.certificate_283k1!r}"
            )
        try:
            validate(PAGE_2_4_GHZ, self.initial_channel)
            validate(self.sub_ghz_page, self.sub_ghz_channel)
        except ChannelError as exc:
            raise EmulatorError(str(exc)) from None
        if self.sub_ghz_page not in SUB_GHZ_PAGES:
            raise EmulatorError(f"sub_ghz_page {self.sub_ghz_page} is not a sub-GHz page")
        if not 1 <= self.tx_window <= 7:
            raise EmulatorError(f"tx_window must be 1-7, got {self.tx_window}")

    @property
    def stack_version_word(self) -> int:
        """``version``'s 16-bit stack version: one nibble per component (8.0.2.0 -> 0x8020)."""
        major, minor, patch, special = self.stack_version
        return (major << 12) | (minor << 8) | (patch << 4) | special


@dataclass(slots=True)
class NetworkState:
    """What an NCP keeps in flash about its network (survives resets)."""

    extended_pan_id: bytes
    pan_id: int
    channel: int
    tx_power: int
    nwk_manager_id: int
    nwk_update_id: int
    channel_mask: int
    network_key: bytes
    tc_link_key: bytes
    security_bitmask: int
    key_sequence: int = 0
    nwk_frame_counter: int = 0


@dataclass(slots=True)
class EmulatorCounters:
    """What the emulator saw, for tests and logs."""

    resets: int = 0
    commands: int = 0
    unknown_commands: int = 0
    bad_frames: int = 0
    naks_sent: int = 0
    retransmissions: int = 0
    frames_to_medium: int = 0
    frames_from_medium: int = 0
    by_name: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Outstanding:
    frm_num: int
    payload: bytes


Handler = Callable[[dict[str, Any]], Mapping[str, Any] | None]


class EzspEmulator:
    """An EZSP NCP on a pty, attached to a simulated medium (see the module docstring).

    Use it as an async context manager, or call :meth:`start` / :meth:`close`
    from a running event loop; give :attr:`port` to bellows as ``device.path``.
    """

    def __init__(self, medium: SimulatedMedium, config: EmulatorConfig) -> None:
        clock = medium.clock
        if clock.mode is not ClockMode.REAL_TIME and not getattr(clock, "serial_safe", False):
            raise EmulatorError(
                "the EZSP emulator serves a real serial line: give its SimulatedMedium a "
                "RealTimeClock (create_clock('real-time')), or a SerialSteppedClock "
                "(gbhil.han.ezsp.serial_clock) whose loop the client shares with use_thread=False"
            )
        self.medium = medium
        self.clock = medium.clock
        self.config = config
        self.version = config.protocol_version
        self.counters = EmulatorCounters()
        self.network: NetworkState | None = None  # "flash"
        self.sub_ghz_active = False
        self.sub_ghz_page = config.sub_ghz_page
        self.sub_ghz_channel = config.sub_ghz_channel
        self.sub_ghz_power = 0
        self.duty_cycle_limits = {"limitThresh": 100, "critThresh": 180, "suspLimit": 250}
        self._master: int | None = None
        self._slave: int | None = None
        self._port = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._decoder = ash.AshDecoder()
        self._write_buffer = bytearray()
        self._writer_registered = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._node: SimulatedNode | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._timers: list[TimerHandle] = []
        self._after: list[tuple[str, Mapping[str, Any], float]] = []
        #: devices admitted by the NCP's trust centre and their link keys (key table, flash)
        self._ncp_members: dict[bytes, bytes] = {}
        self._ncp_pending: dict[bytes, bytes] = {}
        self._handlers: dict[str, Handler] = self._handler_table()
        self._reset_volatile()
        self._attach()

    # -- lifecycle ---------------------------------------------------------------
    @property
    def port(self) -> str:
        """The pty slave path a client opens (like ``/dev/ttyUSB0``)."""
        if not self._port:
            raise EmulatorError("the emulator is not started")
        return self._port

    @property
    def node(self) -> SimulatedNode:
        """The NCP's own node on the medium."""
        assert self._node is not None
        return self._node

    @property
    def network_up(self) -> bool:
        return self._network_up

    @property
    def endpoints(self) -> dict[int, dict[str, Any]]:
        """Endpoints the host registered since the last reset (``addEndpoint`` requests)."""
        return {ep: dict(desc) for ep, desc in self._endpoints.items()}

    @property
    def trust_center(self) -> NcpTrustCenter:
        """The NCP's own trust centre, for devices on the medium that join through it."""
        return NcpTrustCenter(self)

    async def start(self) -> EzspEmulator:
        """Open the pty and start serving it on the running loop."""
        if self._master is not None:
            return self
        if self._node is None:
            self._attach()  # re-opened after close(): back on the medium
        self._loop = asyncio.get_running_loop()
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise EmulatorError(f"cannot open a pseudo-terminal: {exc}") from exc
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._port = os.ttyname(slave)
        self._loop.add_reader(master, self._on_readable)
        LOGGER.debug("EZSP emulator v%d serving %s", self.version, self._port)
        return self

    async def close(self) -> None:
        """Stop serving, close the pty and leave the medium."""
        for task in tuple(self._tasks):
            task.cancel()
        for task in tuple(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._cancel_timer()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._master is not None and self._loop is not None:
            self._loop.remove_reader(self._master)
            if self._writer_registered:
                self._loop.remove_writer(self._master)
                self._writer_registered = False
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._port = ""  # the pty is gone
        self._set_network_up(False)
        if self._node is not None:
            if self._unsubscribe is not None:
                self._unsubscribe()
            with contextlib.suppress(HanError):
                self.medium.detach(self.config.eui64)
            self._node = None

    async def __aenter__(self) -> EzspEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the medium ----------------------------------------------------------------
    def _radios(self) -> list[tuple[int, int]]:
        channel = self.network.channel if self.network else self.config.initial_channel
        radios = [(PAGE_2_4_GHZ, channel)]
        if self.sub_ghz_active:
            radios.append((self.sub_ghz_page, self.sub_ghz_channel))
        return radios

    def _attach(self) -> None:
        """Attach (or re-attach with other radios) the NCP's node, not yet joined."""
        joined = self._node is not None and self._node.joined
        if self._node is not None:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.medium.detach(self.config.eui64)
        self._node = self.medium.attach(
            self.config.eui64,
            self._radios(),
            short_address=self.config.short_address,
            joined=joined,
        )
        self._unsubscribe = self._node.add_listener(self._from_medium)

    def _set_network_up(self, up: bool) -> None:
        self._network_up = up
        if self._node is None or self.config.eui64 not in {n.eui64 for n in self.medium.nodes}:
            return
        if up and self.network is not None:
            self.medium.set_channel(self.config.eui64, PAGE_2_4_GHZ, self.network.channel)
        # The synchronous form of SimulatedNode.join()/leave(): an EZSP handler
        # must change state before its response goes out, without awaiting.
        self.medium._set_joined(self.config.eui64, up)

    def _short_of(self, eui64: bytes) -> int | None:
        for node in self.medium.nodes:
            if node.eui64 == eui64:
                return node.short_address
        return None

    def _eui_of(self, short: int) -> bytes | None:
        for node in self.medium.nodes:
            if node.short_address == short:
                return node.eui64
        return None

    # -- serial I/O ----------------------------------------------------------------
    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # no client has the slave open
                return
            raise
        for item in self._decoder.feed(data):
            if isinstance(item, ash.AshError):
                self.counters.bad_frames += 1
                LOGGER.debug("bad ASH frame from host: %s", item)
                if item.data_frame:
                    self._reject()
            else:
                self._on_frame(item)

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        self._write_buffer += data
        self._flush()

    def _flush(self) -> None:
        assert self._master is not None and self._loop is not None
        while self._write_buffer:
            try:
                n = os.write(self._master, self._write_buffer)
            except BlockingIOError:
                break
            del self._write_buffer[:n]
        if self._write_buffer and not self._writer_registered:
            self._loop.add_writer(self._master, self._flush)
            self._writer_registered = True
        elif not self._write_buffer and self._writer_registered:
            self._loop.remove_writer(self._master)
            self._writer_registered = False

    def _send_frame(self, frame: ash.AshFrame) -> None:
        self._write(ash.encode(frame))

    # -- ASH, NCP side -----------------------------------------------------------------
    def _reset_volatile(self) -> None:
        """RAM state a reset clears (the network itself stays in "flash")."""
        self._tx_seq = 0
        self._rx_seq = 0
        self._rejecting = False
        self._failed = False
        self._outstanding: deque[_Outstanding] = deque()
        self._tx_queue: deque[bytes] = deque()
        self._timer: TimerHandle | None = None
        self._timeouts = 0
        self._version_set = False
        self._last_sequence = 0
        self._network_up = False
        self._endpoints: dict[int, dict[str, Any]] = {}
        self._config_values: dict[int, int] = {
            ConfigId.PACKET_BUFFER_COUNT: 75,
            ConfigId.ADDRESS_TABLE_SIZE: 8,
            ConfigId.MULTICAST_TABLE_SIZE: 8,
            ConfigId.ROUTE_TABLE_SIZE: 16,
            ConfigId.STACK_PROFILE: 2,
            ConfigId.SECURITY_LEVEL: 5,
            ConfigId.KEY_TABLE_SIZE: 4,
            ConfigId.SUPPORTED_NETWORKS: 1,
        }
        self._values: dict[int, bytes] = {}
        self._policies: dict[int, int] = {}
        self._multicast: dict[int, dict[str, int]] = {}
        self._permit_until: float = 0.0
        self._initial_security: dict[str, Any] | None = None
        self._aps_counter = 0
        self._tx_power = 8
        self._pending_channel: int | None = None
        self._host_fragments = fragments.Reassembler()
        #: importTransientKey: EUI-64 -> link key a joining device must prove (RAM only)
        self.transient_keys: dict[bytes, bytes] = {}

    def _on_frame(self, frame: ash.AshFrame) -> None:
        if isinstance(frame, ash.RstFrame):
            self._do_reset()
            return
        if self._failed:
            return  # only RST leaves the FAILED state
        if isinstance(frame, ash.DataFrame):
            self._on_ack_num(frame.ack_num)
            if frame.frm_num == self._rx_seq:
                self._rx_seq = ash.next_seq(self._rx_seq)
                self._rejecting = False
                self._send_frame(ash.AckFrame(self._rx_seq))
                self._on_ezsp(frame.payload)
            elif frame.re_tx:
                self._send_frame(ash.AckFrame(self._rx_seq))  # duplicate: ACK, do not re-run
            else:
                self._reject()
        elif isinstance(frame, ash.AckFrame):
            self._on_ack_num(frame.ack_num)
        elif isinstance(frame, ash.NakFrame):
            self._on_ack_num(frame.ack_num)
            self._retransmit()
        # RSTACK/ERROR from a host are meaningless: ignore them like an NCP does

    def _reject(self) -> None:
        if not self._rejecting:
            self._rejecting = True
            self.counters.naks_sent += 1
            self._send_frame(ash.NakFrame(self._rx_seq))

    def _do_reset(self) -> None:
        self.counters.resets += 1
        self._cancel_timer()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._set_network_up(False)
        if self.sub_ghz_active:
            self.sub_ghz_active = False
            self._attach()
        self._reset_volatile()
        self._send_frame(ash.RstAckFrame(ash.ResetCode.SOFTWARE))

    def _on_ack_num(self, ack_num: int) -> None:
        if not self._outstanding:
            return
        count = (ack_num - self._outstanding[0].frm_num) % ash.SEQ_MODULUS
        if count == 0 or count > len(self._outstanding):
            return
        for _ in range(count):
            self._outstanding.popleft()
        self._timeouts = 0
        self._cancel_timer()
        if self._outstanding:
            self._start_timer()
        self._pump()

    def _queue_data(self, payload: bytes) -> None:
        self._tx_queue.append(payload)
        self._pump()

    def _pump(self) -> None:
        while self._tx_queue and len(self._outstanding) < self.config.tx_window:
            payload = self._tx_queue.popleft()
            item = _Outstanding(self._tx_seq, payload)
            self._tx_seq = ash.next_seq(self._tx_seq)
            self._outstanding.append(item)
            self._send_frame(ash.DataFrame(item.frm_num, self._rx_seq, payload))
            if self._timer is None:
                self._start_timer()

    def _retransmit(self) -> None:
        for item in self._outstanding:
            self.counters.retransmissions += 1
            self._send_frame(ash.DataFrame(item.frm_num, self._rx_seq, item.payload, re_tx=True))
        if self._outstanding:
            self._cancel_timer()
            self._start_timer()

    def _start_timer(self) -> None:
        self._timer = self.clock.call_later(self.config.t_rx_ack, self._ack_timeout)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ack_timeout(self) -> None:
        self._timer = None
        if not self._outstanding:
            return
        self._timeouts += 1
        if self._timeouts >= ACK_TIMEOUTS:
            LOGGER.warning("host stopped acknowledging: EZSP emulator enters the FAILED state")
            self._failed = True
            self._outstanding.clear()
            self._tx_queue.clear()
            self._send_frame(ash.ErrorFrame(ash.ResetCode.EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT))
            return
        self._retransmit()

    # -- EZSP dispatch ---------------------------------------------------------------
    def _respond(self, cmd: Command, sequence: int, values: Mapping[str, Any]) -> None:
        header = EzspHeader(sequence, cmd.frame_id, FC_RESPONSE)
        self._queue_data(header.encode() + cmd.encode_response(values, self.version))

    def callback(self, name: str, values: Mapping[str, Any]) -> None:
        """Send an asynchronous callback frame to the host now."""
        cmd = BY_NAME[name]
        merged = {**cmd.default_response(self.version), **values}
        header = EzspHeader(self._last_sequence, cmd.frame_id, FC_RESPONSE | FC_ASYNC_CALLBACK)
        self._queue_data(header.encode() + cmd.encode_response(merged, self.version))

    def _later(self, delay: float, fn: Callable[..., object], *args: Any) -> None:
        timer = self.clock.call_later(delay, fn, *args)
        self._timers.append(timer)
        self._timers = [t for t in self._timers if not (t.done() or t.cancelled())]

    def _invalid(self, sequence: int, reason: int) -> None:
        self._respond(BY_NAME["invalidCommand"], sequence, {"reason": reason})

    def _on_ezsp(self, frame: bytes) -> None:
        if is_legacy_version_command(frame):
            # The first command of every session: answer in the legacy format with
            # our own version, whatever the host asked for (UG100).
            self._last_sequence = frame[0]
            self.counters.commands += 1
            body = bytes((self.version, STACK_TYPE_MESH)) + (
                self.config.stack_version_word.to_bytes(2, "little")
            )
            self._queue_data(bytes((frame[0], FC_RESPONSE, 0x00)) + body)
            return
        try:
            header, params = decode_header(frame, extended=True)
        except EzspFrameError as exc:
            self.counters.bad_frames += 1
            LOGGER.warning("EZSP emulator: %s", exc)
            if frame:
                self._invalid(frame[0], SlStatus.ZIGBEE_EZSP_ERROR)
            return
        self._last_sequence = header.sequence
        self.counters.commands += 1
        cmd = by_frame_id(header.frame_id, self.version)
        if cmd is None or cmd.callback or cmd.name == "invalidCommand":
            self.counters.unknown_commands += 1
            LOGGER.info("EZSP emulator: unsupported frame ID 0x%04X", header.frame_id)
            self._invalid(header.sequence, SlStatus.ZIGBEE_EZSP_ERROR)
            return
        try:
            request = cmd.decode_request(params, self.version)
        except EzspFrameError as exc:
            self.counters.bad_frames += 1
            LOGGER.warning("EZSP emulator: %s", exc)
            self._invalid(header.sequence, SlStatus.ZIGBEE_EZSP_ERROR)
            return
        self.counters.by_name[cmd.name] = self.counters.by_name.get(cmd.name, 0) + 1
        if not self._version_set and cmd.name != "version":
            LOGGER.debug("EZSP emulator: %s before version negotiation", cmd.name)
        handler = self._handlers.get(cmd.name)
        values = cmd.default_response(self.version)
        if handler is not None:
            values.update(handler(request) or {})
        LOGGER.debug("EZSP emulator: %s%r -> %r", cmd.name, request, values)
        self._respond(cmd, header.sequence, values)
        for name, cb_values, delay in self._after:
            if delay:
                self._later(delay, self.callback, name, cb_values)
            else:
                self.callback(name, cb_values)
        self._after.clear()

    def _then(self, name: str, values: Mapping[str, Any], delay: float = 0.0) -> None:
        """Queue a callback to follow the current command's response."""
        self._after.append((name, values, delay))

    # -- handlers -------------------------------------------------------------------
    def _handler_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {}
        for name in BY_NAME:
            method = getattr(self, f"_h_{name}", None)
            if method is not None:
                table[name] = method
        return table

    @staticmethod
    def _ok(**extra: Any) -> dict[str, Any]:
        return {"status": SlStatus.OK, **extra}

    def _h_version(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["desiredProtocolVersion"] == self.version:
            self._version_set = True
        return {
            "protocolVersion": self.version,
            "stackType": STACK_TYPE_MESH,
            "stackVersion": self.config.stack_version_word,
        }

    def _h_getValue(self, req: dict[str, Any]) -> dict[str, Any]:
        vid = req["valueId"]
        if vid == ValueId.VERSION_INFO:
            major, minor, patch, special = self.config.stack_version
            value = self.config.build.to_bytes(2, "little") + bytes(
                (major, minor, patch, special, 0xAA)  # 0xAA: general-availability build
            )
            return self._ok(value=value)
        if vid == ValueId.FREE_BUFFERS:
            return self._ok(value=bytes((FREE_BUFFERS,)))
        if vid == ValueId.CERTIFICATE_283K1:
            if self.config.certificate_283k1 is None:
                return {"status": SlStatus.NOT_FOUND, "value": b""}
            return self._ok(value=self.config.certificate_283k1)
        if vid == ValueId.NWK_FRAME_COUNTER and self.network is not None:
            return self._ok(value=self.network.nwk_frame_counter.to_bytes(4, "little"))
        if vid in self._values:
            return self._ok(value=self._values[vid])
        return {"status": SlStatus.INVALID_PARAMETER, "value": b""}

    def _h_setValue(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["valueId"] in (ValueId.VERSION_INFO, ValueId.FREE_BUFFERS):
            return {"status": SlStatus.INVALID_PARAMETER}
        self._values[req["valueId"]] = req["value"]
        return self._ok()

    def _h_getConfigurationValue(self, req: dict[str, Any]) -> dict[str, Any]:
        value = self._config_values.get(req["configId"])
        if value is None:
            return {"status": SlStatus.INVALID_PARAMETER, "value": 0}
        return self._ok(value=value)

    def _h_setConfigurationValue(self, req: dict[str, Any]) -> dict[str, Any]:
        if self._network_up:
            return {"status": SlStatus.INVALID_STATE}
        self._config_values[req["configId"]] = req["value"]
        return self._ok()

    def _h_setPolicy(self, req: dict[str, Any]) -> dict[str, Any]:
        self._policies[req["policyId"]] = req["decisionId"]
        return self._ok()

    def _h_addEndpoint(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["endpoint"] in self._endpoints or self._network_up:
            return {"status": SlStatus.INVALID_STATE}
        self._endpoints[req["endpoint"]] = req
        return self._ok()

    def _h_getMfgToken(self, req: dict[str, Any]) -> dict[str, Any]:
        token = req["tokenId"]
        if token == MfgTokenId.STRING:
            return {"tokenData": self.config.manufacturer.encode()[:16]}
        if token == MfgTokenId.BOARD_NAME:
            return {"tokenData": self.config.board_name.encode()[:16]}
        if token == MfgTokenId.CUSTOM_EUI_64:
            return {"tokenData": ERASED_EUI64}
        return {"tokenData": b""}

    def _h_setMfgToken(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.INVALID_STATE}  # the emulated flash is write-protected

    def _h_customFrame(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.NOT_SUPPORTED, "reply": b""}  # no XNCP extensions

    def _h_getTokenData(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.NOT_FOUND, "value": None}  # no NV3 token access

    def _h_setTokenData(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.NOT_FOUND}

    def _h_echo(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"echo": req["data"]}

    def _counters(self) -> list[int]:
        values = [0] * COUNTER_COUNT
        c = self.node.counters
        values[COUNTER_MAC_RX_UNICAST] = min(c.received, 0xFFFF)
        values[COUNTER_APS_DATA_RX_UNICAST] = min(c.received, 0xFFFF)
        values[COUNTER_MAC_TX_UNICAST_SUCCESS] = min(c.sent, 0xFFFF)
        values[COUNTER_APS_DATA_TX_UNICAST_SUCCESS] = min(c.sent, 0xFFFF)
        return values

    def _h_readCounters(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"values": self._counters()}

    def _h_readAndClearCounters(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"values": self._counters()}

    def _h_getEui64(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"eui64": self.config.eui64}

    def _h_getNodeId(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"nodeId": self.config.short_address if self._network_up else NULL_NODE_ID}

    def _h_setManufacturerCode(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _h_setRadioPower(self, req: dict[str, Any]) -> dict[str, Any]:
        self._tx_power = req["power"]
        if self.network is not None:
            self.network.tx_power = req["power"] & 0xFF
        return self._ok()

    # -- network ----------------------------------------------------------------
    def _h_networkState(self, req: dict[str, Any]) -> dict[str, Any]:
        up = self._network_up
        return {"status": NetworkStatus.JOINED_NETWORK if up else NetworkStatus.NO_NETWORK}

    def _h_networkInit(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.network is None:
            return {"status": SlStatus.NOT_JOINED}
        if self._network_up:
            return {"status": SlStatus.INVALID_STATE}
        self._set_network_up(True)
        self._then("stackStatusHandler", {"status": SlStatus.NETWORK_UP})
        return self._ok()

    def _h_setInitialSecurityState(self, req: dict[str, Any]) -> dict[str, Any]:
        if self._network_up:
            return {"status": SlStatus.INVALID_STATE}
        self._initial_security = req["state"]
        return self._ok()

    def _h_formNetwork(self, req: dict[str, Any]) -> dict[str, Any]:
        p = req["parameters"]
        if self._network_up:
            return {"status": SlStatus.INVALID_STATE}
        if self._initial_security is None:
            return {"status": SlStatus.ZIGBEE_EZSP_ERROR}  # security state not set
        page, channel = (PAGE_2_4_GHZ, p["radioChannel"])
        try:
            validate(page, channel)
        except ChannelError:
            return {"status": SlStatus.TRANSMIT_INVALID_CHANNEL}
        sec = self._initial_security
        self.network = NetworkState(
            extended_pan_id=p["extendedPanId"],
            pan_id=p["panId"],
            channel=channel,
            tx_power=p["radioTxPower"],
            nwk_manager_id=p["nwkManagerId"],
            nwk_update_id=p["nwkUpdateId"],
            channel_mask=p["channels"],
            network_key=sec["networkKey"],
            tc_link_key=sec["preconfiguredKey"],
            security_bitmask=sec["bitmask"],
            key_sequence=sec["networkKeySequenceNumber"],
        )
        self._set_network_up(True)
        self._then("stackStatusHandler", {"status": SlStatus.NETWORK_UP})
        return self._ok()

    def _h_leaveNetwork(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self._network_up:
            return {"status": SlStatus.INVALID_STATE}
        self._set_network_up(False)
        self.network = None
        self._ncp_members.clear()  # their keys were for the network just left
        self._then("stackStatusHandler", {"status": SlStatus.NETWORK_DOWN})
        return self._ok()

    def _h_tokenFactoryReset(self, req: dict[str, Any]) -> dict[str, Any]:
        self.network = None  # the network lives in tokens
        self._ncp_members.clear()
        return {}

    def _h_clearKeyTable(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _parameters(self) -> dict[str, Any]:
        n = self.network
        assert n is not None
        return {
            "extendedPanId": n.extended_pan_id,
            "panId": n.pan_id,
            "radioTxPower": n.tx_power & 0xFF,
            "radioChannel": n.channel,
            "joinMethod": 0,
            "nwkManagerId": n.nwk_manager_id,
            "nwkUpdateId": n.nwk_update_id,
            "channels": n.channel_mask,
        }

    def _h_getNetworkParameters(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self._network_up or self.network is None:
            return {"status": SlStatus.NOT_JOINED}
        return self._ok(nodeType=NodeType.COORDINATOR, parameters=self._parameters())

    def _h_getCurrentSecurityState(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.network is None:
            return {"status": SlStatus.NOT_JOINED}
        bitmask = self.network.security_bitmask & INITIAL_TO_CURRENT_MASK
        if self.network.security_bitmask & INITIAL_HAVE_PRECONFIGURED_KEY:
            bitmask |= CurrentSecurityBitmask.HAVE_TRUST_CENTER_LINK_KEY
        return self._ok(state={"bitmask": bitmask, "trustCenterLongAddress": self.config.eui64})

    def _h_exportKey(self, req: dict[str, Any]) -> dict[str, Any]:
        context = req["context"]
        if self.network is None:
            return {"status": SlStatus.NOT_FOUND, "context": context}
        if context["core_key_type"] == KEY_TYPE_NETWORK:
            return self._ok(key=self.network.network_key, context=context)
        if context["core_key_type"] == KEY_TYPE_TC_LINK:
            return self._ok(key=self.network.tc_link_key, context=context)
        return {"status": SlStatus.INVALID_PARAMETER, "context": context}

    def _h_getNetworkKeyInfo(self, req: dict[str, Any]) -> dict[str, Any]:
        n = self.network
        return self._ok(
            network_key_info={
                "network_key_set": n is not None,
                "alternate_network_key_set": False,
                "network_key_sequence_number": n.key_sequence if n else 0,
                "alt_network_key_sequence_number": 0,
                "network_key_frame_counter": n.nwk_frame_counter if n else 0,
            }
        )

    def _h_exportLinkKeyByIndex(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.NOT_FOUND}

    def _h_importLinkKey(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _h_importTransientKey(self, req: dict[str, Any]) -> dict[str, Any]:
        # bellows' permit_with_link_key (v13+): the install-code key of one joiner
        self.transient_keys[bytes(req["eui64"])] = bytes(req["plaintext_key"])
        return self._ok()

    def _h_findKeyTableEntry(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"index": KEY_TABLE_NOT_FOUND}

    def _h_eraseKeyTableEntry(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _h_getChildData(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.NOT_JOINED}

    def _h_setChildData(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _h_setNeighborFrameCounter(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _h_getAddressTableInfo(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.INVALID_INDEX, "nwk": NULL_NODE_ID, "eui64": ERASED_EUI64}

    def _h_lookupNodeIdByEui64(self, req: dict[str, Any]) -> dict[str, Any]:
        short = self._short_of(req["eui64"])
        if short is None:
            return {"status": SlStatus.NOT_FOUND, "nodeId": NULL_NODE_ID}
        return self._ok(nodeId=short)

    def _h_lookupEui64ByNodeId(self, req: dict[str, Any]) -> dict[str, Any]:
        eui = self._eui_of(req["nodeId"])
        if eui is None:
            return {"status": SlStatus.NOT_FOUND, "eui64": ERASED_EUI64}
        return self._ok(eui64=eui)

    def _h_setConcentrator(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _h_setExtendedTimeout(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._ok()

    def _h_getExtendedTimeout(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"status": SlStatus.FAIL}  # FAIL: the normal retry interval is used

    def _h_getMulticastTableEntry(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["index"] >= self._config_values[ConfigId.MULTICAST_TABLE_SIZE]:
            return {"status": SlStatus.INVALID_INDEX}
        entry = self._multicast.get(req["index"], {"multicastId": 0, "endpoint": 0})
        return self._ok(value={**entry, "networkIndex": 0})

    def _h_setMulticastTableEntry(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["index"] >= self._config_values[ConfigId.MULTICAST_TABLE_SIZE]:
            return {"status": SlStatus.INVALID_INDEX}
        self._multicast[req["index"]] = {
            "multicastId": req["value"]["multicastId"],
            "endpoint": req["value"]["endpoint"],
        }
        return self._ok()

    def _h_permitJoining(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self._network_up:
            return {"status": SlStatus.NOT_JOINED}
        self._permit_until = self.clock.monotonic() + req["duration"]
        opened = (
            SlStatus.ZIGBEE_NETWORK_OPENED if req["duration"] else SlStatus.ZIGBEE_NETWORK_CLOSED
        )
        self._then("stackStatusHandler", {"status": opened})
        return self._ok()

    def _h_setRadioChannel(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self._network_up or self.network is None:
            return {"status": SlStatus.NOT_JOINED}
        try:
            validate(PAGE_2_4_GHZ, req["channel"])
        except ChannelError:
            return {"status": SlStatus.TRANSMIT_INVALID_CHANNEL}
        self._change_channel(req["channel"], announce=False)
        return self._ok()

    def _change_channel(self, channel: int, *, announce: bool = True) -> None:
        if self.network is None:
            return
        self.network.channel = channel
        self.network.nwk_update_id = (self.network.nwk_update_id + 1) & 0xFF
        if self._network_up:
            self.medium.set_channel(self.config.eui64, PAGE_2_4_GHZ, channel)
        if announce:
            self.callback("stackStatusHandler", {"status": SlStatus.ZIGBEE_CHANNEL_CHANGED})

    def _h_setSourceRouteDiscoveryMode(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"remainingTime": 0}

    def _h_getCertificate283k1(self, req: dict[str, Any]) -> dict[str, Any]:
        cert = self.config.certificate_283k1
        if cert is None:
            # No certificate in the manufacturing token: the flash reads erased.
            return {"status": SlStatus.NOT_FOUND, "localCert": b"\xff" * CERTIFICATE_283K1_LEN}
        return self._ok(localCert=cert)

    # -- multi-PHY / sub-GHz ---------------------------------------------------------
    def _h_getPhyInterfaceCount(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"interfaceCount": self.config.phy_interfaces}

    def _check_sub_ghz(self, phy_index: int, page: int, channel: int) -> SlStatus | None:
        if phy_index != SUB_GHZ_PHY_INDEX or self.config.phy_interfaces < 2:
            return SlStatus.INVALID_PARAMETER  # no such PHY on this NCP
        try:
            validate(page, channel)
        except ChannelError:
            return SlStatus.TRANSMIT_INVALID_CHANNEL
        if band_of(page) is not Band.SUB_GHZ:
            return SlStatus.TRANSMIT_INVALID_CHANNEL
        return None

    def _h_multiPhyStart(self, req: dict[str, Any]) -> dict[str, Any]:
        error = self._check_sub_ghz(req["phyIndex"], req["page"], req["channel"])
        if error is not None:
            return {"status": error}
        if not self._network_up:
            return {"status": SlStatus.INVALID_STATE}  # form on the native PHY first
        if self.sub_ghz_active:
            return {"status": SlStatus.INVALID_STATE}
        self.sub_ghz_page, self.sub_ghz_channel = req["page"], req["channel"]
        self.sub_ghz_power = req["power"]
        self.sub_ghz_active = True
        self._attach()
        return self._ok()

    def _h_multiPhyStop(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["phyIndex"] != SUB_GHZ_PHY_INDEX or self.config.phy_interfaces < 2:
            return {"status": SlStatus.INVALID_PARAMETER}
        if not self.sub_ghz_active:
            return {"status": SlStatus.INVALID_STATE}
        self.sub_ghz_active = False
        self._attach()
        return self._ok()

    def _h_multiPhySetRadioChannel(self, req: dict[str, Any]) -> dict[str, Any]:
        error = self._check_sub_ghz(req["phyIndex"], req["page"], req["channel"])
        if error is not None:
            return {"status": error}
        if not self.sub_ghz_active:
            return {"status": SlStatus.INVALID_STATE}
        if not self.medium.set_channel(self.config.eui64, req["page"], req["channel"]):
            return {"status": SlStatus.INVALID_STATE}  # refused by frequency agility
        self.sub_ghz_page, self.sub_ghz_channel = req["page"], req["channel"]
        return self._ok()

    def _h_multiPhySetRadioPower(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["phyIndex"] != SUB_GHZ_PHY_INDEX or self.config.phy_interfaces < 2:
            return {"status": SlStatus.INVALID_PARAMETER}
        self.sub_ghz_power = req["power"]
        return self._ok()

    def _h_getRadioParameters(self, req: dict[str, Any]) -> dict[str, Any]:
        if req["phyIndex"] == 0 and self.network is not None:
            params = {
                "radioTxPower": self._tx_power,
                "radioPage": PAGE_2_4_GHZ,
                "radioChannel": self.network.channel,
            }
            return self._ok(parameters=params)
        if req["phyIndex"] == SUB_GHZ_PHY_INDEX and self.sub_ghz_active:
            params = {
                "radioTxPower": self.sub_ghz_power,
                "radioPage": self.sub_ghz_page,
                "radioChannel": self.sub_ghz_channel,
            }
            return self._ok(parameters=params)
        return {"status": SlStatus.INVALID_PARAMETER}

    def _duty_state(self) -> DutyCycleState:
        if not self.sub_ghz_active:
            return DutyCycleState.TRACKING_OFF
        mode = self.medium.duty_cycle_status(self.config.eui64).mode
        return DutyCycleState(DutyCycleState.LBT_NORMAL + int(mode))

    def _h_getDutyCycleState(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.config.phy_interfaces < 2:
            return {"status": SlStatus.NOT_SUPPORTED}
        return self._ok(returnedState=self._duty_state())

    def _h_getDutyCycleLimits(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.config.phy_interfaces < 2:
            return {"status": SlStatus.NOT_SUPPORTED}
        return self._ok(limits=dict(self.duty_cycle_limits))

    def _h_setDutyCycleLimitsInStack(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.config.phy_interfaces < 2:
            return {"status": SlStatus.NOT_SUPPORTED}
        limits = req["limits"]
        if not 0 < limits["limitThresh"] < limits["critThresh"] < limits["suspLimit"] <= 10000:
            return {"status": SlStatus.INVALID_PARAMETER}
        self.duty_cycle_limits = dict(limits)
        return self._ok()

    # -- messaging ---------------------------------------------------------------------
    def _next_aps_counter(self) -> int:
        counter = self._aps_counter
        self._aps_counter = (self._aps_counter + 1) & 0xFF
        return counter

    def _send(
        self, message_type: OutgoingMessageType, destination: int, req: dict[str, Any]
    ) -> dict[str, Any]:
        """Common path of sendUnicast/Broadcast/Multicast: number the frame, send it later."""
        if not self._network_up:
            return {"status": SlStatus.NOT_JOINED, "sequence": 0}
        counter = self._next_aps_counter()
        aps = {**req["aps_frame"], "sequence": counter}
        self._spawn(
            self._transmit(message_type, destination, aps, req["message_tag"], req["message"])
        )
        return self._ok(sequence=counter)

    def _h_sendUnicast(self, req: dict[str, Any]) -> dict[str, Any]:
        message_type = OutgoingMessageType(req["message_type"])
        if req["aps_frame"]["options"] & ApsOption.FRAGMENT:
            return self._send_fragment(message_type, req["nwk"], req)
        return self._send(message_type, req["nwk"], req)

    def _send_fragment(
        self, message_type: OutgoingMessageType, destination: int, req: dict[str, Any]
    ) -> dict[str, Any]:
        """One fragment of the host's fragmentation library.

        The medium carries whole APS frames (it models fragment airtime itself),
        so the NCP collects the fragments and puts the message on air with the
        last one; each earlier fragment is reported sent as it is taken.
        """
        if not self._network_up:
            return {"status": SlStatus.NOT_JOINED, "sequence": 0}
        aps = dict(req["aps_frame"])
        key = (destination, aps["sequence"], aps["profileId"], aps["clusterId"])
        try:
            whole = self._host_fragments.add(key, aps["groupId"], req["message"])
        except fragments.FragmentError as exc:
            LOGGER.warning("EZSP emulator: fragment refused: %s", exc)
            return {"status": SlStatus.INVALID_PARAMETER, "sequence": 0}
        if whole is None:
            self._later(
                0.0,
                self._report_sent,
                SlStatus.OK,
                message_type,
                destination,
                aps,
                req["message_tag"],
                req["message"],
            )
            return self._ok(sequence=aps["sequence"])
        counter = self._next_aps_counter()
        on_air = {**aps, "sequence": counter, "options": aps["options"] & ~ApsOption.FRAGMENT}
        self._spawn(
            self._transmit(
                message_type,
                destination,
                on_air,
                req["message_tag"],
                whole,
                reported=(aps, req["message"]),
            )
        )
        return self._ok(sequence=counter)

    def _h_sendBroadcast(self, req: dict[str, Any]) -> dict[str, Any]:
        if self._network_up and req["destination"] not in BROADCAST_SHORT_ADDRESSES:
            return {"status": SlStatus.INVALID_PARAMETER, "sequence": 0}
        return self._send(OutgoingMessageType.BROADCAST, req["destination"], req)

    def _h_sendMulticast(self, req: dict[str, Any]) -> dict[str, Any]:
        return self._send(OutgoingMessageType.MULTICAST, req["broadcast_addr"], req)

    def _h_sendReply(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self._network_up:
            return {"status": SlStatus.NOT_JOINED}
        aps_in = req["apsFrame"]
        if aps_in["options"] & ApsOption.FRAGMENT and fragments.is_ack(
            aps_in["groupId"], req["messageContents"]
        ):
            return self._ok()  # a fragment ACK: the medium delivered the message whole
        aps = {**req["apsFrame"], "sequence": self._next_aps_counter()}
        self._spawn(
            self._transmit(
                OutgoingMessageType.DIRECT, req["sender"], aps, None, req["messageContents"]
            )
        )
        return self._ok()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transmit(
        self,
        message_type: OutgoingMessageType,
        destination: int,
        aps: dict[str, Any],
        message_tag: int | None,
        message: bytes,
        *,
        reported: tuple[dict[str, Any], bytes] | None = None,
    ) -> None:
        """Put the frame on the medium, then report it with ``messageSentHandler``.

        ``reported``: the APS frame and message the host sent, when they differ
        from what went on air (the last fragment of a fragmented message).
        """
        status = SlStatus.OK
        options = TxOptions.NONE
        if aps["options"] & ApsOption.RETRY:
            options |= TxOptions.APS_ACK
        if aps["options"] & ApsOption.ENCRYPTION:
            options |= TxOptions.APS_SECURITY
        broadcast = message_type in (
            OutgoingMessageType.BROADCAST,
            OutgoingMessageType.MULTICAST,
        )
        dst_eui = None if broadcast else self._eui_of(destination)
        if dst_eui == self.config.eui64:
            # Addressed to the NCP itself (zigpy interviews its own coordinator):
            # the NCP's ZDO answers without going on air.
            self._zdo_to_self(aps, message)
        elif not broadcast and dst_eui is None:
            status = SlStatus.ZIGBEE_DELIVERY_FAILED
        else:
            if broadcast and destination not in BROADCAST_SHORT_ADDRESSES:
                destination = 0xFFFD  # a multicast goes to rx-on-when-idle devices
            frame = ApsFrame(
                src_eui64=self.config.eui64,
                dst_eui64=dst_eui,
                cluster_id=aps["clusterId"],
                payload=message,
                src_endpoint=aps["sourceEndpoint"],
                dst_endpoint=aps["destinationEndpoint"],
                profile_id=aps["profileId"],
                aps_counter=aps["sequence"],
                dst_short=destination,
                options=options,
            )
            frame = self._pin_channel_change(frame)
            if self._moves_sub_ghz(frame):
                moved = self._move_sub_ghz(frame)
                status = SlStatus.OK if moved else SlStatus.ZIGBEE_DELIVERY_FAILED
                self._report_sent(status, message_type, destination, aps, message_tag, message)
                return
            try:
                result = await self.node.send(frame)
            except HanError as exc:
                LOGGER.warning("EZSP emulator: medium refused a frame: %s", exc)
                status = SlStatus.ZIGBEE_DELIVERY_FAILED
            else:
                self.counters.frames_to_medium += 1
                delivered = broadcast or self._reachable(dst_eui)
                if result.status is not TxStatus.SENT or not delivered:
                    status = SlStatus.ZIGBEE_DELIVERY_FAILED
            if broadcast:
                self._maybe_handle_zdo_broadcast(frame)
        if reported is not None:
            aps, message = reported
        self._report_sent(status, message_type, destination, aps, message_tag, message)

    def _report_sent(
        self,
        status: SlStatus,
        message_type: OutgoingMessageType,
        destination: int,
        aps: dict[str, Any],
        message_tag: int | None,
        message: bytes,
    ) -> None:
        """``messageSentHandler`` for a send the host tagged."""
        if message_tag is None or not self._network_up:
            return
        self.callback(
            "messageSentHandler",
            {
                "status": status,
                "message_type": message_type,
                "nwk": destination,
                "aps_frame": aps,
                "message_tag": message_tag,
                "message": message,
            },
        )

    def _moves_sub_ghz(self, frame: ApsFrame) -> bool:
        """A broadcast channel-change request for the sub-GHz PHY this NCP runs."""
        target = channel_change_of(frame) if frame.is_broadcast else None
        return target is not None and band_of(target.page) is Band.SUB_GHZ and self.sub_ghz_active

    def _move_sub_ghz(self, frame: ApsFrame) -> bool:
        """The NCP acts on its own sub-GHz Mgmt_NWK_Update_req as the network manager.

        The medium checks the frequency-agility limits first (a refused move sends
        nothing), broadcasts on the old channel, then retunes the second PHY.
        """
        target = channel_change_of(frame)
        assert target is not None
        update_id = frame.payload[-1]
        if not self.medium.move_network(
            self.config.eui64, target.page, target.channel, update_id=update_id
        ):
            return False
        self.counters.frames_to_medium += 1
        self.sub_ghz_page, self.sub_ghz_channel = target.page, target.channel
        return True

    def _reachable(self, eui: bytes | None) -> bool:
        """Whether an APS ACK would come back: the destination hears our channel."""
        if eui is None:
            return False
        try:
            target = self.medium.node(eui)
        except HanError:
            return False
        ours = set(self.node.channels)
        return target.joined and bool(ours & set(target.channels))

    def _pin_channel_change(self, frame: ApsFrame) -> ApsFrame:
        """A broadcast Mgmt_NWK_Update_req goes out on the PHY of the band it moves.

        A channel-change request names one page; only nodes on that band can
        act on it, so the NCP sends it on its radio of that band (a sub-GHz move
        is not announced on 2.4 GHz, as the simulated network manager does).
        """
        if not frame.is_broadcast or frame.page_channel is not None:
            return frame
        target = channel_change_of(frame)
        if target is None:
            return frame
        for page, channel in self._radios():
            if band_of(page) is band_of(target.page):
                return replace(frame, page=page, channel=channel)
        return frame

    def _maybe_handle_zdo_broadcast(self, frame: ApsFrame) -> None:
        """The NCP acts on its own 2.4 GHz Mgmt_NWK_Update_req (zigpy's channel migration).

        A sub-GHz request is not handled here: ``_move_sub_ghz`` sends it on the
        second PHY and retunes that PHY itself (the host retunes it with
        ``multiPhySetRadioChannel`` when an NCP does not).
        """
        if frame.profile_id != PROFILE_ZDP or frame.cluster_id != ZDO_MGMT_NWK_UPDATE_REQ:
            return
        target = channel_change_of(frame)
        if target is None or target.page != PAGE_2_4_GHZ:
            return
        if self.network is not None and target.channel != self.network.channel:
            self._pending_channel = target.channel
            self._later(CHANNEL_CHANGE_DELAY_S, self._apply_pending_channel)

    def _zdo_to_self(self, aps: Mapping[str, Any], message: bytes) -> None:
        """Answer a ZDO request addressed to the NCP as its own ZDO would."""
        if aps["profileId"] != PROFILE_ZDP or not message:
            return
        cluster, tsn, args = aps["clusterId"], message[0], message[1:]
        me = self.config.short_address
        if cluster == ZDO_MGMT_NWK_UPDATE_REQ:
            self._maybe_handle_zdo_broadcast(
                ApsFrame(
                    self.config.eui64, None, cluster, message, 0, 0, PROFILE_ZDP, dst_short=0xFFFD
                )
            )
            return
        me_le = me.to_bytes(2, "little")
        body: bytes | None = None
        if cluster in (ZDO_NWK_ADDR_REQ, ZDO_IEEE_ADDR_REQ):
            body = bytes((ZDO_SUCCESS,)) + self.config.eui64[::-1] + me_le
        elif cluster == ZDO_NODE_DESC_REQ:
            band = NODE_DESC_BAND_2_4 | (NODE_DESC_BAND_868 if self.sub_ghz_active else 0)
            descriptor = (
                bytes((NODE_DESC_LOGICAL_COORDINATOR, band, NODE_DESC_MAC_CAPABILITIES))
                + MANUFACTURER_CODE_SILABS.to_bytes(2, "little")
                + bytes((NODE_DESC_MAX_BUFFER,))
                + NODE_DESC_MAX_TRANSFER.to_bytes(2, "little")
                + NODE_DESC_SERVER_MASK.to_bytes(2, "little")
                + NODE_DESC_MAX_TRANSFER.to_bytes(2, "little")
                + b"\x00"
            )
            body = bytes((ZDO_SUCCESS,)) + me_le + descriptor
        elif cluster == ZDO_ACTIVE_EP_REQ:
            eps = sorted(self._endpoints)
            body = bytes((ZDO_SUCCESS,)) + me_le + bytes((len(eps), *eps))
        elif cluster == ZDO_SIMPLE_DESC_REQ and len(args) >= 3:
            ep = self._endpoints.get(args[2])
            if ep is None:
                body = bytes((ZDO_INVALID_EP,)) + me_le + b"\x00"
            else:
                desc = (
                    bytes((ep["endpoint"],))
                    + ep["profileId"].to_bytes(2, "little")
                    + ep["deviceId"].to_bytes(2, "little")
                    + bytes((ep["deviceVersion"] & 0x0F, len(ep["inputClusterList"])))
                    + b"".join(c.to_bytes(2, "little") for c in ep["inputClusterList"])
                    + bytes((len(ep["outputClusterList"]),))
                    + b"".join(c.to_bytes(2, "little") for c in ep["outputClusterList"])
                )
                body = bytes((ZDO_SUCCESS,)) + me_le + bytes((len(desc),)) + desc
        if body is None:
            return
        # After this send's messageSentHandler, as the loopback takes a stack cycle.
        self._later(
            0.0,
            self.callback,
            "incomingMessageHandler",
            {
                "message_type": IncomingMessageType.UNICAST,
                "aps_frame": {
                    "profileId": PROFILE_ZDP,
                    "clusterId": cluster | ZDO_RESPONSE_BIT,
                    "sourceEndpoint": 0,
                    "destinationEndpoint": 0,
                    "options": 0,
                    "groupId": 0,
                    "sequence": self._next_aps_counter(),
                },
                "nwk": me,
                "eui64": self.config.eui64,
                "binding_index": 0xFF,
                "address_index": 0xFF,
                "lqi": SIM_LQI,
                "rssi": SIM_RSSI,
                "timestamp": int(self.clock.monotonic() * 1000) & 0xFFFFFFFF,
                "message": bytes((tsn,)) + body,
            },
        )

    def _apply_pending_channel(self) -> None:
        if self._pending_channel is not None:
            self._change_channel(self._pending_channel)
            self._pending_channel = None

    def _from_medium(self, frame: ApsFrame) -> None:
        """A frame heard on the medium becomes an ``incomingMessageHandler`` callback."""
        if not self._network_up or frame.src_eui64 == self.config.eui64:
            return
        self.counters.frames_from_medium += 1
        if frame.is_broadcast:
            message_type = IncomingMessageType.BROADCAST
        elif frame.dst_eui64 == self.config.eui64:
            message_type = IncomingMessageType.UNICAST
        else:
            return
        options = ApsOption.NONE
        if frame.options & TxOptions.APS_SECURITY:
            options |= ApsOption.ENCRYPTION
        if frame.options & TxOptions.APS_ACK:
            options |= ApsOption.RETRY
        parts = [frame.payload]
        if message_type is IncomingMessageType.UNICAST:
            # APS fragmentation is unicast only; the host reassembles (fragments.py).
            parts = fragments.split(frame.payload)
        for index, part in enumerate(parts):
            group = 0
            part_options = options
            if len(parts) > 1:
                group = fragments.group_id(len(parts), index)
                part_options |= ApsOption.FRAGMENT
            self._incoming(frame, message_type, part_options, group, part)

    def _incoming(
        self,
        frame: ApsFrame,
        message_type: IncomingMessageType,
        options: ApsOption,
        group: int,
        message: bytes,
    ) -> None:
        self.callback(
            "incomingMessageHandler",
            {
                "message_type": message_type,
                "aps_frame": {
                    "profileId": frame.profile_id,
                    "clusterId": frame.cluster_id,
                    "sourceEndpoint": frame.src_endpoint,
                    "destinationEndpoint": frame.dst_endpoint,
                    "options": int(options),
                    "groupId": group,
                    "sequence": frame.aps_counter or 0,
                },
                "nwk": frame.src_short if frame.src_short is not None else NULL_NODE_ID,
                "eui64": frame.src_eui64,
                "binding_index": 0xFF,
                "address_index": 0xFF,
                "lqi": SIM_LQI,
                "rssi": SIM_RSSI,
                "timestamp": int(self.clock.monotonic() * 1000) & 0xFFFFFFFF,
                "message": message,
            },
        )

    # -- joins -------------------------------------------------------------------------
    def announce_join(self, eui64: bytes) -> None:
        """Report a medium node as having joined through this trust centre.

        bellows/zigpy then know the device (and interview it over ZDO, which a
        simulated device may not answer). Permit joining must be open, as on a
        real trust centre.
        """
        if not self._network_up:
            raise EmulatorError("the emulated NCP has no network up")
        if self.clock.monotonic() >= self._permit_until:
            raise EmulatorError("permit joining is closed on the emulated NCP")
        self._report_join(eui64)

    def _report_join(self, eui64: bytes) -> None:
        """``trustCenterJoinHandler`` for a medium node that joined through this NCP."""
        short = self._short_of(eui64)
        if short is None:
            raise EmulatorError(f"{eui64.hex()} is not attached to the medium")
        self.callback(
            "trustCenterJoinHandler",
            {
                "newNodeId": short,
                "newNodeEui64": eui64,
                "status": DeviceUpdate.STANDARD_SECURITY_UNSECURED_JOIN,
                "policyDecision": JoinDecision.USE_PRECONFIGURED_KEY,
                "parentOfNewNodeId": self.config.short_address,
            },
        )

    def replace_config(self, **changes: Any) -> None:
        """Change the emulated NCP (e.g. install a certificate) as a re-flash would."""
        self.config = replace(self.config, **changes)
        self.version = self.config.protocol_version


class NcpTrustCenter:
    """The trust centre inside an NCP, as a joining device on the medium meets it.

    Why: on a bench the stick, not the host, lets a device in: it admits a device only
    with the link key the host installed for that EUI-64 (``importTransientKey``, what
    bellows' ``permit_with_link_key`` sends) while permit joining is open, and then tells
    the host with ``trustCenterJoinHandler``. A :class:`~gbhil.han.joining.JoiningDevice`
    joins through it exactly as through the CHF model's trust centre (same key transport
    and Verify-Key proof), so a wrong install code fails here, in the NCP.
    """

    def __init__(self, emulator: EzspEmulator) -> None:
        self.emulator = emulator
        self.eui = emulator.config.eui64

    def request_join(self, eui: bytes, role: JoinRole = JoinRole.ALWAYS_ON) -> JoinOffer:
        """Association: seal the network key with the installed link key, or refuse."""
        emu = self.emulator
        del role  # the NCP's join decision does not depend on the device type
        network = emu.network
        if not emu.network_up or network is None:
            return self._refuse(eui, RejectReason.TRUST_CENTER_OFF, "no network up")
        members = emu._ncp_members
        link_key = members.get(eui)  # a member rejoins with the key it holds
        if link_key is None:
            if emu.clock.monotonic() >= emu._permit_until:
                return self._refuse(eui, RejectReason.JOINING_DISABLED, "permit joining closed")
            link_key = emu.transient_keys.get(eui)
            if link_key is None:
                return self._refuse(
                    eui, RejectReason.NO_INSTALL_CODE, "the host installed no link key for it"
                )
        emu._ncp_pending[eui] = link_key
        network.nwk_frame_counter += 1
        blob = seal_transport_key(
            link_key, network.network_key, network.key_sequence, self.eui, eui,
            network.nwk_frame_counter,
        )  # fmt: skip
        return JoinOffer(blob)

    def verify_key(self, eui: bytes, proof: bytes, leave: Callable[[], Any] | None = None) -> bool:
        """Verify-Key: on the right proof the device is in and the host is told."""
        del leave
        emu = self.emulator
        link_key = emu._ncp_pending.pop(eui, None)
        if link_key is None or proof != verify_key_hash(link_key):
            LOGGER.info("NCP trust centre: %s did not prove its link key", eui.hex().upper())
            return False
        emu._ncp_members[eui] = link_key
        emu.transient_keys.pop(eui, None)
        emu._report_join(eui)
        return True

    def key_not_verified(self, eui: bytes, detail: str) -> None:
        self.emulator._ncp_pending.pop(eui, None)
        LOGGER.info("NCP trust centre: %s gave up joining: %s", eui.hex().upper(), detail)

    def device_left(self, eui: bytes) -> None:
        self.emulator._ncp_members.pop(eui, None)

    def _refuse(self, eui: bytes, reason: RejectReason, detail: str) -> JoinOffer:
        LOGGER.info("NCP trust centre refused %s: %s", eui.hex().upper(), detail)
        return JoinOffer(None, reason)


__all__ = [
    "EmulatorConfig",
    "EmulatorCounters",
    "EmulatorError",
    "EzspEmulator",
    "NcpTrustCenter",
    "NetworkState",
]
