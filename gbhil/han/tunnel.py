"""GBCS over the Smart Energy Tunnelling cluster (0x0704), CHF server and device clients.

The CHF hosts the Tunnelling server; every other HAN device (ESME, GSME,
PPMID, HCALCS, HHT) opens one tunnel to it with RequestTunnel (protocol
GB-HRGP, no flow control) and the two exchange GBCS messages in TransferData
commands whose data starts with the GBCS tunnel header (gbcs-facts 7.1):

* ``PUT`` (0x03) + message: a command pushed to an always-on device, or a
  response/alert pushed to the CHF;
* ``GET`` (0x01): a sleepy GSME asks for its next queued message;
* ``GET-RESPONSE`` (0x02) + remaining count + message (or ``02 00``: none).

Each side announces its MaximumIncomingTransferSize. A message that does not
fit the peer's size in one TransferData is cut into GBT blocks
(:mod:`gbhil.gbcs.gbt`) that each fit, and reassembled on the far side before
anyone sees it; within that size a TransferData still far exceeds one radio
frame, which APS fragmentation (the medium, the capture) takes care of.
Everything here runs over a :class:`~gbhil.han.zcl_frames.ZclPort`, so over
any :class:`~gbhil.han.transport.HanTransport`.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.gbt import MAX_BLOCK_LEN, GbtReassembler, GbtSegment, is_gbt, segment
from gbhil.han.channels import HanError
from gbhil.han.transport import ApsFrame
from gbhil.han.zcl_frames import (
    CLUSTER_TUNNELING,
    DEFAULT_ENDPOINT,
    CloseTunnel,
    GbcsTunnelCommand,
    NodeEvent,
    RequestTunnel,
    RequestTunnelResponse,
    TransferDataErrorToClient,
    TransferDataStatus,
    TransferDataToClient,
    TransferDataToServer,
    TunnelClosureNotification,
    TunnelGet,
    TunnelGetResponse,
    TunnelProtocol,
    TunnelPut,
    TunnelStatus,
    ZclFrameError,
    ZclMessage,
    ZclPort,
    clock_wait,
    decode_tunnel_data,
    encode_tunnel_data,
)

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------

#: MaximumIncomingTransferSize a CHF announces (a public CH implementation uses 1500).
DEFAULT_MAX_TRANSFER_SIZE: Final = 1500
#: Worst-case GBT routing header + APDU overhead around a block (3-octet lengths).
GBT_OVERHEAD: Final = 51
#: Smallest transfer size that still leaves room for GBT blocks of useful size.
MIN_TRANSFER_SIZE: Final = 2 + GBT_OVERHEAD + 16
#: Tunnels one CHF serves (Device Log capacity plus room for HHTs and rejoins).
DEFAULT_MAX_TUNNELS: Final = 32
#: Client waits (clock seconds) for RequestTunnelResponse / GET-RESPONSE, and retries.
TUNNEL_TIMEOUT_S: Final = 10.0
TUNNEL_RETRIES: Final = 2

MessageSink = Callable[[bytes, bytes], Awaitable[None] | None]  # (peer eui, GBCS message)
ClientSink = Callable[[bytes], Awaitable[None] | None]  # (GBCS message)


class TunnelError(HanError):
    """A tunnel could not be opened or used (status from the server, no tunnel, too big)."""


async def _call(sink: Callable[..., Awaitable[None] | None] | None, *args: object) -> None:
    if sink is None:
        return
    result = sink(*args)
    if inspect.isawaitable(result):
        await result


def _check_size(name: str, size: int) -> int:
    if (
        isinstance(size, bool)
        or not isinstance(size, int)
        or not MIN_TRANSFER_SIZE <= size <= 0xFFFF
    ):
        raise TunnelError(f"{name} must be {MIN_TRANSFER_SIZE}-65535 octets, got {size!r}")
    return size


def tunnel_pieces(message: bytes, max_transfer: int, header_len: int = 1) -> list[bytes]:
    """``message`` as it must travel: whole, or as GBT blocks that each fit ``max_transfer``.

    ``header_len`` is the tunnel header in front of each piece (1 for PUT, 2
    for GET-RESPONSE). GBT needs a decodable GBCS message (for its routing
    header); raises :class:`TunnelError` otherwise.
    """
    if header_len + len(message) <= max_transfer:
        return [message]
    block = min(max_transfer - header_len - GBT_OVERHEAD, MAX_BLOCK_LEN)  # receivers' cap
    if block < 1:
        raise TunnelError(f"transfer size {max_transfer} leaves no room for a GBT block")
    try:
        pieces = [s.encode() for s in segment(message, block)]
    except GbcsError as exc:
        raise TunnelError(f"message of {len(message)} octets needs GBT but: {exc}") from None
    for piece in pieces:
        if header_len + len(piece) > max_transfer:  # the bound above is worst case; keep honest
            raise TunnelError(f"GBT block of {len(piece)} octets exceeds {max_transfer}")
    return pieces


class _Reassembly:
    """GBT reassembly of one peer's traffic, turning decode errors into events."""

    def __init__(self) -> None:
        self.gbt = GbtReassembler()

    def feed(self, data: bytes) -> bytes | None:
        """The complete message once ``data`` (a message or a GBT block) completes one."""
        if not is_gbt(data):
            return data
        try:
            return self.gbt.feed(GbtSegment.decode(data))
        except GbcsError as exc:
            raise TunnelError(f"GBT block rejected: {exc}") from None


# ---------------------------------------------------------------------------
# Server (CHF)
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class ServerTunnel:
    """One open tunnel as the CHF sees it."""

    tunnel_id: int
    eui: bytes
    endpoint: int
    max_incoming_transfer_size: int  # what the client accepts in one TransferData
    opened_at: float


@dataclass(slots=True)
class TunnelCounters:
    """Traffic of one tunnel endpoint (server: all tunnels)."""

    puts_sent: int = 0
    puts_received: int = 0
    gets: int = 0
    get_responses: int = 0
    gbt_blocks_sent: int = 0
    gbt_blocks_received: int = 0
    errors_sent: int = 0
    errors_received: int = 0
    malformed: int = 0


class TunnelServer:
    """The CHF's Tunnelling server: tunnels, per-device queues and GBCS delivery.

    ``on_message(eui, message)`` gets every complete GBCS message a client
    PUTs (GBT already reassembled). Messages for sleepy devices wait in
    :meth:`enqueue` queues until the device GETs them.
    """

    def __init__(
        self,
        port: ZclPort,
        *,
        max_incoming_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
        max_tunnels: int = DEFAULT_MAX_TUNNELS,
        on_message: MessageSink | None = None,
    ) -> None:
        self.port = port
        self.max_incoming_transfer_size = _check_size(
            "max_incoming_transfer_size", max_incoming_transfer_size
        )
        self.max_tunnels = max_tunnels
        self.on_message = on_message
        self.tunnels: dict[int, ServerTunnel] = {}
        self.queues: dict[bytes, deque[bytes]] = {}
        self.events: list[NodeEvent] = []
        self.counters = TunnelCounters()
        self._reassembly: dict[bytes, _Reassembly] = {}
        self._next_id = 0
        port.handlers[CLUSTER_TUNNELING] = self._handle

    # -- bookkeeping ---------------------------------------------------------
    def _event(self, kind: str, peer: bytes | None, detail: str = "", **data: object) -> None:
        self.events.append(NodeEvent(self.port.clock.monotonic(), kind, detail, peer, dict(data)))

    def tunnel_for(self, eui: bytes) -> ServerTunnel | None:
        """The open tunnel of ``eui``, if any."""
        for tunnel in self.tunnels.values():
            if tunnel.eui == eui:
                return tunnel
        return None

    def _allocate_id(self) -> int | None:
        for _ in range(0x10000):
            candidate = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFF
            if candidate not in self.tunnels:
                return candidate
        return None

    def close_all(self) -> None:
        """Forget every tunnel (the CHF restarted); clients must request new ones."""
        self.tunnels.clear()
        self._reassembly.clear()

    # -- queues for sleepy devices ------------------------------------------------
    def enqueue(self, eui: bytes, message: bytes) -> int:
        """Hold ``message`` until ``eui`` GETs it; returns how many wait for it."""
        queue = self.queues.setdefault(eui, deque())
        queue.append(message)
        self._event("queued", eui, f"{len(message)} octets", depth=len(queue))
        return len(queue)

    def queued(self, eui: bytes) -> int:
        """Messages (or GBT blocks already cut) waiting for ``eui``."""
        return len(self.queues.get(eui, ()))

    # -- sending -----------------------------------------------------------------
    async def send(self, eui: bytes, message: bytes) -> bool:
        """PUT ``message`` to an always-on device over its tunnel; False without a tunnel."""
        tunnel = self.tunnel_for(eui)
        if tunnel is None:
            self._event("undeliverable", eui, "no tunnel")
            return False
        pieces = tunnel_pieces(message, tunnel.max_incoming_transfer_size)
        for piece in pieces:
            data = encode_tunnel_data(TunnelPut(piece))
            await self.port.send(
                eui, TransferDataToClient(tunnel.tunnel_id, data), dst_endpoint=tunnel.endpoint
            )
            self.counters.puts_sent += 1
        if len(pieces) > 1:
            self.counters.gbt_blocks_sent += len(pieces)
        self._event("put", eui, f"{len(message)} octets in {len(pieces)} piece(s)")
        return True

    async def notify_closed(self, eui: bytes) -> None:
        """Close ``eui``'s tunnel from the server side and tell the client."""
        tunnel = self.tunnel_for(eui)
        if tunnel is None:
            return
        del self.tunnels[tunnel.tunnel_id]
        await self.port.send(
            eui, TunnelClosureNotification(tunnel.tunnel_id), dst_endpoint=tunnel.endpoint
        )
        self._event("closed", eui, "by server")

    # -- receiving -----------------------------------------------------------------
    async def _handle(self, frame: ApsFrame, msg: ZclMessage) -> None:
        cmd = msg.command
        if isinstance(cmd, RequestTunnel):
            await self._request_tunnel(frame, msg, cmd)
        elif isinstance(cmd, TransferDataToServer):
            await self._transfer_data(frame, msg, cmd)
        elif isinstance(cmd, CloseTunnel):
            tunnel = self.tunnels.get(cmd.tunnel_id)
            if tunnel is not None and tunnel.eui == frame.src_eui64:
                del self.tunnels[cmd.tunnel_id]
                self._reassembly.pop(frame.src_eui64, None)
                self._event("closed", frame.src_eui64, "by client", tunnel_id=cmd.tunnel_id)
            else:
                self._event("close-refused", frame.src_eui64, f"tunnel {cmd.tunnel_id} not theirs")
        else:
            self._event("ignored", frame.src_eui64, type(cmd).__name__)

    async def _request_tunnel(self, frame: ApsFrame, msg: ZclMessage, cmd: RequestTunnel) -> None:
        eui = frame.src_eui64
        status = TunnelStatus.SUCCESS
        tunnel_id = 0xFFFF
        if cmd.protocol_id != TunnelProtocol.GB_HRGP:
            status = TunnelStatus.PROTOCOL_NOT_SUPPORTED
        elif cmd.flow_control:
            status = TunnelStatus.FLOW_CONTROL_NOT_SUPPORTED
        elif cmd.max_incoming_transfer_size < MIN_TRANSFER_SIZE:
            status = TunnelStatus.BUSY  # no status fits better; the size is unusable
        else:
            old = self.tunnel_for(eui)
            if old is not None:  # the device restarted: its old tunnel is stale
                del self.tunnels[old.tunnel_id]
            if len(self.tunnels) >= self.max_tunnels:
                status = TunnelStatus.NO_MORE_TUNNEL_IDS
            else:
                allocated = self._allocate_id()
                if allocated is None:
                    status = TunnelStatus.NO_MORE_TUNNEL_IDS
                else:
                    tunnel_id = allocated
                    self.tunnels[tunnel_id] = ServerTunnel(
                        tunnel_id,
                        eui,
                        frame.src_endpoint,
                        cmd.max_incoming_transfer_size,
                        self.port.clock.monotonic(),
                    )
                    self._reassembly[eui] = _Reassembly()
        self._event("request-tunnel", eui, status.name, tunnel_id=tunnel_id)
        await self.port.send(
            eui,
            RequestTunnelResponse(tunnel_id, status, self.max_incoming_transfer_size),
            dst_endpoint=frame.src_endpoint,
            sequence=msg.sequence,
        )

    async def _error(self, frame: ApsFrame, tunnel_id: int, status: TransferDataStatus) -> None:
        self.counters.errors_sent += 1
        self._event("transfer-error", frame.src_eui64, status.name, tunnel_id=tunnel_id)
        await self.port.send(
            frame.src_eui64,
            TransferDataErrorToClient(tunnel_id, status),
            dst_endpoint=frame.src_endpoint,
        )

    async def _transfer_data(
        self, frame: ApsFrame, msg: ZclMessage, cmd: TransferDataToServer
    ) -> None:
        eui = frame.src_eui64
        tunnel = self.tunnels.get(cmd.tunnel_id)
        if tunnel is None:
            await self._error(frame, cmd.tunnel_id, TransferDataStatus.NO_SUCH_TUNNEL)
            return
        if tunnel.eui != eui:
            await self._error(frame, cmd.tunnel_id, TransferDataStatus.WRONG_DEVICE)
            return
        if len(cmd.data) > self.max_incoming_transfer_size:
            await self._error(frame, cmd.tunnel_id, TransferDataStatus.DATA_OVERFLOW)
            return
        try:
            item = decode_tunnel_data(cmd.data)
        except ZclFrameError as exc:
            self.counters.malformed += 1
            self._event("malformed", eui, str(exc))
            return
        if isinstance(item, TunnelGet):
            self.counters.gets += 1
            await self._answer_get(tunnel, msg.sequence)
        elif isinstance(item, TunnelPut):
            self.counters.puts_received += 1
            if is_gbt(item.message):
                self.counters.gbt_blocks_received += 1
            try:
                whole = self._reassembly.setdefault(eui, _Reassembly()).feed(item.message)
            except TunnelError as exc:
                self.counters.malformed += 1
                self._event("malformed", eui, str(exc))
                return
            if whole is not None:
                self._event("received", eui, f"{len(whole)} octets")
                await _call(self.on_message, eui, whole)
        else:
            self.counters.malformed += 1
            self._event("malformed", eui, "GET-RESPONSE sent to the server")

    async def _answer_get(self, tunnel: ServerTunnel, sequence: int) -> None:
        queue = self.queues.get(tunnel.eui)
        message: bytes | None = None
        if queue:
            head = queue.popleft()
            pieces = tunnel_pieces(head, tunnel.max_incoming_transfer_size, header_len=2)
            message = pieces[0]
            queue.extendleft(reversed(pieces[1:]))  # later blocks go out on the next GETs
            if len(pieces) > 1:
                self.counters.gbt_blocks_sent += 1
        elif tunnel.eui in self.queues:
            del self.queues[tunnel.eui]
        remaining = min(len(queue), 0xFF) if queue and message is not None else 0
        data = encode_tunnel_data(TunnelGetResponse(remaining, message))
        self.counters.get_responses += 1
        self._event(
            "get-response",
            tunnel.eui,
            "empty" if message is None else f"{len(message)} octets",
            remaining=remaining,
        )
        await self.port.send(
            tunnel.eui,
            TransferDataToClient(tunnel.tunnel_id, data),
            dst_endpoint=tunnel.endpoint,
            sequence=sequence,
        )


# ---------------------------------------------------------------------------
# Client (ESME, GSME, PPMID, HCALCS, HHT)
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class FetchResult:
    """What a GET (or a series of GETs for GBT blocks) brought: a message and the rest."""

    message: bytes | None
    remaining: int


@dataclass(slots=True)
class TunnelClient:
    """A device's tunnel to the CHF.

    ``on_message(message)`` gets every complete GBCS message the CHF PUTs
    (GBT reassembled). The tunnel is (re)opened on demand; a TransferDataError
    or closure notification from the server marks it closed.
    """

    port: ZclPort
    server_eui: bytes
    server_endpoint: int = DEFAULT_ENDPOINT
    max_incoming_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE
    on_message: ClientSink | None = None
    timeout: float = TUNNEL_TIMEOUT_S
    retries: int = TUNNEL_RETRIES
    tunnel_id: int | None = None
    server_max_incoming: int = DEFAULT_MAX_TRANSFER_SIZE
    counters: TunnelCounters = field(default_factory=TunnelCounters)
    events: list[NodeEvent] = field(default_factory=list)
    _reassembly: _Reassembly = field(default_factory=_Reassembly)

    def __post_init__(self) -> None:
        _check_size("max_incoming_transfer_size", self.max_incoming_transfer_size)
        self.port.handlers[CLUSTER_TUNNELING] = self._handle

    @property
    def is_open(self) -> bool:
        return self.tunnel_id is not None

    def _event(self, kind: str, detail: str = "", **data: object) -> None:
        self.events.append(
            NodeEvent(self.port.clock.monotonic(), kind, detail, self.server_eui, dict(data))
        )

    def forget(self) -> None:
        """Lose the tunnel (power cut: RAM state is gone, the server's entry is stale)."""
        self.tunnel_id = None
        self._reassembly = _Reassembly()

    async def open(self) -> int:
        """RequestTunnel; returns the tunnel id or raises :class:`TunnelError` with the status."""
        _frame, msg = await self.port.request(
            self.server_eui,
            RequestTunnel(max_incoming_transfer_size=self.max_incoming_transfer_size),
            RequestTunnelResponse,
            dst_endpoint=self.server_endpoint,
            timeout=self.timeout,
            retries=self.retries,
        )
        rsp = msg.command
        assert isinstance(rsp, RequestTunnelResponse)
        if rsp.status is not TunnelStatus.SUCCESS:
            self._event("refused", rsp.status.name)
            raise TunnelError(f"RequestTunnel refused by the CHF: {rsp.status.name}")
        self.tunnel_id = rsp.tunnel_id
        self.server_max_incoming = rsp.max_incoming_transfer_size
        self._event("opened", tunnel_id=rsp.tunnel_id)
        return rsp.tunnel_id

    async def ensure_open(self) -> int:
        return self.tunnel_id if self.tunnel_id is not None else await self.open()

    async def close(self) -> None:
        """CloseTunnel (best effort: the server may already have forgotten it)."""
        if self.tunnel_id is None:
            return
        tunnel_id, self.tunnel_id = self.tunnel_id, None
        await self.port.send(
            self.server_eui, CloseTunnel(tunnel_id), dst_endpoint=self.server_endpoint
        )
        self._event("closed", tunnel_id=tunnel_id)

    async def put(self, message: bytes) -> int:
        """PUT a GBCS message to the CHF (GBT blocks when too big); returns frames sent."""
        tunnel_id = await self.ensure_open()
        pieces = tunnel_pieces(message, self.server_max_incoming)
        for piece in pieces:
            await self.port.send(
                self.server_eui,
                TransferDataToServer(tunnel_id, encode_tunnel_data(TunnelPut(piece))),
                dst_endpoint=self.server_endpoint,
            )
            self.counters.puts_sent += 1
        if len(pieces) > 1:
            self.counters.gbt_blocks_sent += len(pieces)
        return len(pieces)

    async def _get_once(self) -> TunnelGetResponse:
        tunnel_id = await self.ensure_open()
        server = self.server_eui

        def match(frame: ApsFrame, msg: ZclMessage) -> bool:
            if frame.src_eui64 != server:
                return False
            cmd = msg.command
            if isinstance(cmd, TransferDataErrorToClient):
                return cmd.tunnel_id == tunnel_id
            return (
                isinstance(cmd, TransferDataToClient)
                and cmd.tunnel_id == tunnel_id
                and cmd.data[:1] == bytes((GbcsTunnelCommand.GET_RESPONSE,))
            )

        future = self.port.expect(match)
        try:
            await self.port.send(
                server,
                TransferDataToServer(tunnel_id, encode_tunnel_data(TunnelGet())),
                dst_endpoint=self.server_endpoint,
            )
            self.counters.gets += 1
            _frame, msg = await clock_wait(self.port.clock, future, self.timeout, "tunnel GET")
        finally:
            self.port.forget(future)
            if not future.done():
                future.cancel()
        cmd = msg.command
        if isinstance(cmd, TransferDataErrorToClient):
            self.counters.errors_received += 1
            self.forget()
            raise TunnelError(f"GET refused by the CHF: {cmd.status.name}")
        assert isinstance(cmd, TransferDataToClient)
        item = decode_tunnel_data(cmd.data)
        assert isinstance(item, TunnelGetResponse)
        self.counters.get_responses += 1
        return item

    async def fetch(self) -> FetchResult:
        """GET the next queued message (following GBT blocks until it is whole)."""
        while True:
            item = await self._get_once()
            if item.message is None:
                return FetchResult(None, item.remaining)
            if is_gbt(item.message):
                self.counters.gbt_blocks_received += 1
            whole = self._reassembly.feed(item.message)
            if whole is not None or item.remaining == 0:
                return FetchResult(whole, item.remaining)

    async def _handle(self, frame: ApsFrame, msg: ZclMessage) -> None:
        cmd = msg.command
        if frame.src_eui64 != self.server_eui:
            self._event("ignored", f"{type(cmd).__name__} from {frame.src_eui64.hex()}")
            return
        if isinstance(cmd, TransferDataToClient):
            if cmd.tunnel_id != self.tunnel_id:
                self._event("stale-tunnel", f"TransferData on tunnel {cmd.tunnel_id}")
                return
            try:
                item = decode_tunnel_data(cmd.data)
            except ZclFrameError as exc:
                self.counters.malformed += 1
                self._event("malformed", str(exc))
                return
            if not isinstance(item, TunnelPut):
                self._event("unexpected", type(item).__name__)  # a GET-RESPONSE nobody awaited
                return
            self.counters.puts_received += 1
            if is_gbt(item.message):
                self.counters.gbt_blocks_received += 1
            try:
                whole = self._reassembly.feed(item.message)
            except TunnelError as exc:
                self.counters.malformed += 1
                self._event("malformed", str(exc))
                return
            if whole is not None:
                await _call(self.on_message, whole)
        elif isinstance(cmd, TransferDataErrorToClient):
            self.counters.errors_received += 1
            self._event("transfer-error", cmd.status.name, tunnel_id=cmd.tunnel_id)
            if cmd.tunnel_id == self.tunnel_id:
                self.forget()
        elif isinstance(cmd, TunnelClosureNotification):
            if cmd.tunnel_id == self.tunnel_id:
                self.forget()
            self._event("closed", "by server", tunnel_id=cmd.tunnel_id)
        else:
            self._event("ignored", type(cmd).__name__)


__all__ = [
    "DEFAULT_MAX_TRANSFER_SIZE",
    "DEFAULT_MAX_TUNNELS",
    "GBT_OVERHEAD",
    "MIN_TRANSFER_SIZE",
    "FetchResult",
    "ServerTunnel",
    "TunnelClient",
    "TunnelCounters",
    "TunnelError",
    "TunnelServer",
    "tunnel_pieces",
]
