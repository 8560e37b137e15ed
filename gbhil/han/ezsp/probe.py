"""probe_radio: is the thing on this serial port the radio the rig file says it is?

``gbhil rig check`` calls :func:`probe_radio` for every radio of a rig before a
suite runs, so a missing stick, a Zigbee dongle with the wrong firmware or an
NCP that cannot serve a SMETS2 HAN is reported in one precise line instead of
a bellows timeout ten seconds into a test. The probe speaks ASH and EZSP
itself (host side, with the :mod:`~gbhil.han.ezsp.ash` and
:mod:`~gbhil.han.ezsp.frames` codecs): it resets the NCP, negotiates the
protocol version and reads stack version, identity, PHY count and the Smart
Energy certificate. It never forms, joins or changes anything on the NCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

import zigpy.serial

from gbhil.han.ezsp import ash
from gbhil.han.ezsp.frames import (
    CERTIFICATE_283K1_LEN,
    EXTENDED_HEADER_SINCE,
    FC_ASYNC_CALLBACK,
    MIN_PROTOCOL_VERSION,
    EzspError,
    EzspFrameError,
    EzspUnsupportedError,
    MfgTokenId,
    ValueId,
    build_frame,
    command,
    decode_header,
)

LOGGER = logging.getLogger(__name__)

#: How long an NCP has to answer RST with RSTACK (bellows uses 2.5 s), and tries.
RESET_TIMEOUT_S: Final = 2.5
RESET_ATTEMPTS: Final = 2
#: How long one EZSP command may take, including ASH retransmissions.
COMMAND_TIMEOUT_S: Final = 2.0
DATA_RETRIES: Final = 3
#: The version a host asks for first; any NCP answers with its own.
LEGACY_PROBE_VERSION: Final = 4
DEFAULT_BAUDRATE: Final = 115200
#: Second PHY index of a dual-PHY (sub-GHz) NCP.
SUB_GHZ_PHY_COUNT: Final = 2
#: URL schemes serialx opens without a device node (no "port missing" check).
_URL_MARK: Final = "://"


class ProbeProblem(Enum):
    """What can be wrong with a radio, one code per precise message."""

    PORT_MISSING = "port-missing"
    PORT_UNUSABLE = "port-unusable"
    NOT_EZSP = "not-ezsp"
    NO_EZSP_RESPONSE = "no-ezsp-response"
    EZSP_TOO_OLD = "ezsp-too-old"
    STACK_TOO_OLD = "stack-too-old"
    SUB_GHZ_UNSUPPORTED = "sub-ghz-unsupported"
    NO_CBKE_CERTIFICATE = "no-cbke-certificate"


@dataclass(frozen=True, slots=True)
class ProbeFinding:
    """One problem and the sentence that explains it to the rig owner."""

    problem: ProbeProblem
    message: str

    def __str__(self) -> str:
        return f"{self.problem.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class RadioExpectation:
    """What the rig file needs from this radio."""

    min_protocol_version: int = MIN_PROTOCOL_VERSION
    min_stack_version: tuple[int, int, int] | None = None
    sub_ghz: bool = False
    cbke_certificate: bool = True


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the probe learnt; ``ok`` when nothing in ``problems``."""

    port: str
    problems: tuple[ProbeFinding, ...] = ()
    reset_code: int | None = None
    protocol_version: int | None = None
    stack_type: int | None = None
    stack_version: str | None = None
    stack_version_tuple: tuple[int, int, int, int] | None = None
    manufacturer: str | None = None
    board: str | None = None
    eui64: bytes | None = None
    phy_interfaces: int | None = None
    cbke_certificate: bool | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def is_ezsp(self) -> bool:
        return self.protocol_version is not None

    @property
    def sub_ghz(self) -> bool | None:
        """Whether the NCP has a second (sub-GHz) PHY; None when unknown."""
        if self.phy_interfaces is None:
            return None
        return self.phy_interfaces >= SUB_GHZ_PHY_COUNT

    def has(self, problem: ProbeProblem) -> bool:
        return any(f.problem is problem for f in self.problems)

    def summary(self) -> str:
        """Human-readable lines for ``gbhil rig check``."""
        head = f"{self.port}: " + ("" if self.is_ezsp else "no usable EZSP radio")
        if self.is_ezsp:
            head += (
                f"EZSP v{self.protocol_version}, EmberZNet {self.stack_version or '?'}"
                f", {self.manufacturer or '?'} / {self.board or '?'}"
            )
            if self.eui64 is not None:
                head += f", EUI-64 {self.eui64.hex('-').upper()}"
            if self.phy_interfaces is not None:
                head += f", {self.phy_interfaces} PHY"
        lines = [head + (" — OK" if self.ok else "")]
        lines += [f"  {finding}" for finding in self.problems]
        return "\n".join(lines)


class _ProbeFailed(Exception):
    def __init__(self, finding: ProbeFinding) -> None:
        super().__init__(finding.message)
        self.finding = finding


class _AshHost(asyncio.Protocol):
    """Just enough host-side ASH for a handful of request/response exchanges."""

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self.decoder = ash.AshDecoder()
        self.frames: asyncio.Queue[ash.AshFrame] = asyncio.Queue()
        self.bytes_received = 0
        self.bad_frames = 0
        self.tx_seq = 0
        self.rx_seq = 0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        for item in self.decoder.feed(data):
            if isinstance(item, ash.AshError):
                self.bad_frames += 1
                LOGGER.debug("probe: bad ASH frame: %s", item)
            else:
                self.frames.put_nowait(item)

    def write(self, data: bytes) -> None:
        assert isinstance(self.transport, asyncio.WriteTransport)
        self.transport.write(data)

    async def _next(self, deadline: float) -> ash.AshFrame:
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        async with asyncio.timeout(remaining):
            return await self.frames.get()

    async def reset(self, timeout: float) -> ash.RstAckFrame | None:
        """Cancel any partial frame, send RST, wait for RSTACK."""
        while not self.frames.empty():
            self.frames.get_nowait()
        cancel = bytes([ash.Reserved.CANCEL]) * ash.RESET_CANCEL_COUNT
        self.write(cancel + ash.encode(ash.RstFrame()))
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                frame = await self._next(deadline)
            except TimeoutError:
                return None
            if isinstance(frame, ash.RstAckFrame):
                self.tx_seq = self.rx_seq = 0
                return frame

    async def exchange(self, payload: bytes, timeout: float) -> bytes:
        """Send one EZSP frame and return the next EZSP frame with the same sequence."""
        sequence = payload[0]
        frm = self.tx_seq
        self.tx_seq = ash.next_seq(self.tx_seq)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        acked = False
        for attempt in range(DATA_RETRIES + 1):
            self.write(ash.encode(ash.DataFrame(frm, self.rx_seq, payload, re_tx=attempt > 0)))
            retry_at = min(deadline, loop.time() + timeout / (DATA_RETRIES + 1))
            while True:
                try:
                    frame = await self._next(retry_at)
                except TimeoutError:
                    if loop.time() >= deadline:
                        raise
                    break  # retransmit
                if isinstance(frame, ash.NakFrame) and not acked:
                    break
                if isinstance(frame, ash.ErrorFrame):
                    raise EzspError(f"NCP entered the FAILED state (ASH error 0x{frame.code:02X})")
                if isinstance(frame, ash.RstAckFrame):
                    raise EzspError("NCP reset itself in the middle of the probe")
                if isinstance(frame, ash.AckFrame | ash.DataFrame):
                    acked = acked or frame.ack_num == self.tx_seq
                if isinstance(frame, ash.DataFrame):
                    if frame.frm_num == self.rx_seq:
                        self.rx_seq = ash.next_seq(self.rx_seq)
                        self.write(ash.encode(ash.AckFrame(self.rx_seq)))
                        data = frame.payload
                        is_callback = len(data) > 1 and data[1] & FC_ASYNC_CALLBACK
                        if data[0] == sequence and not is_callback:
                            return data
                    else:
                        self.write(ash.encode(ash.AckFrame(self.rx_seq)))
        raise TimeoutError


class _Session:
    """EZSP commands over an :class:`_AshHost` at the negotiated version."""

    def __init__(self, link: _AshHost, timeout: float) -> None:
        self.link = link
        self.timeout = timeout
        self.sequence = 0
        self.version = LEGACY_PROBE_VERSION

    def _seq(self) -> int:
        seq = self.sequence
        self.sequence = (self.sequence + 1) & 0xFF
        return seq

    async def legacy_version(self) -> tuple[int, int, int]:
        frame = build_frame(
            "version",
            {"desiredProtocolVersion": LEGACY_PROBE_VERSION},
            sequence=self._seq(),
            version=LEGACY_PROBE_VERSION,
            legacy=True,
        )
        reply = await self.link.exchange(frame, self.timeout)
        _header, params = decode_header(reply, extended=False)
        values = command("version", LEGACY_PROBE_VERSION).decode_response(
            params, LEGACY_PROBE_VERSION
        )
        return values["protocolVersion"], values["stackType"], values["stackVersion"]

    async def call(self, name: str, **values: Any) -> dict[str, Any] | None:
        """Run one command; None when the NCP answers ``invalidCommand``."""
        cmd = command(name, self.version)
        frame = build_frame(name, values, sequence=self._seq(), version=self.version)
        reply = await self.link.exchange(frame, self.timeout)
        header, params = decode_header(reply, extended=True)
        if header.frame_id == command("invalidCommand", self.version).frame_id:
            return None
        if header.frame_id != cmd.frame_id:
            raise EzspFrameError(
                f"{name}: reply has frame ID 0x{header.frame_id:04X}, expected 0x{cmd.frame_id:04X}"
            )
        return cmd.decode_response(params, self.version)


def _token_text(data: bytes) -> str | None:
    text = data.rstrip(b"\xff").rstrip(b"\x00")
    if not text:
        return None
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + text.hex().upper()


async def probe_radio(
    port: str,
    expected: RadioExpectation | None = None,
    *,
    baudrate: int = DEFAULT_BAUDRATE,
    reset_timeout: float = RESET_TIMEOUT_S,
    command_timeout: float = COMMAND_TIMEOUT_S,
    flow_control: str | None = "software",
) -> ProbeResult:
    """Probe the EZSP NCP at ``port`` (a device path or serialx URL) against ``expected``.

    Never raises for a bad radio: every failure is a :class:`ProbeFinding` in
    the result. Problems that stop the probe (port, no RSTACK, no EZSP reply,
    protocol too old) come alone; the rest accumulate.
    """
    expected = expected or RadioExpectation()
    info: dict[str, Any] = {"port": port}
    problems: list[ProbeFinding] = []
    if _URL_MARK not in port and not os.path.exists(port):
        finding = ProbeFinding(
            ProbeProblem.PORT_MISSING,
            f"serial port {port} does not exist (stick unplugged, or wrong path: "
            "use a stable /dev/serial/by-id/... name)",
        )
        return ProbeResult(port, (finding,))
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await zigpy.serial.create_serial_connection(
            loop,
            _AshHost,
            port,
            baudrate=baudrate,
            flow_control=flow_control,  # type: ignore[arg-type]
        )
    except (OSError, ValueError) as exc:
        finding = ProbeFinding(ProbeProblem.PORT_UNUSABLE, f"cannot open {port}: {exc}")
        return ProbeResult(port, (finding,))
    link = protocol
    assert isinstance(link, _AshHost)
    try:
        await _probe(link, expected, info, problems, reset_timeout, command_timeout, baudrate)
    except _ProbeFailed as failed:
        problems.append(failed.finding)
    finally:
        transport.close()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)  # let the transport finish closing
    return ProbeResult(problems=tuple(problems), **info)


async def _probe(
    link: _AshHost,
    expected: RadioExpectation,
    info: dict[str, Any],
    problems: list[ProbeFinding],
    reset_timeout: float,
    command_timeout: float,
    baudrate: int,
) -> None:
    port = info["port"]
    rstack = None
    for _ in range(RESET_ATTEMPTS):
        rstack = await link.reset(reset_timeout)
        if rstack is not None:
            break
    if rstack is None:
        if link.bytes_received:
            detail = (
                f"it sent {link.bytes_received} bytes that were not a valid RSTACK "
                f"({link.bad_frames} malformed ASH frames): wrong baud rate ({baudrate}), "
                "a bootloader, or a non-EZSP firmware (Z-Stack, deCONZ, Spinel)"
            )
        else:
            detail = (
                "it never answered: not an EZSP NCP, wrong baud rate, or the NCP is held in reset"
            )
        raise _ProbeFailed(
            ProbeFinding(
                ProbeProblem.NOT_EZSP, f"{port} did not answer an ASH reset with RSTACK; {detail}"
            )
        )
    info["reset_code"] = rstack.reset_code
    session = _Session(link, command_timeout)
    try:
        protocol, stack_type, stack_word = await session.legacy_version()
    except (TimeoutError, EzspError) as exc:
        raise _ProbeFailed(
            ProbeFinding(
                ProbeProblem.NO_EZSP_RESPONSE,
                f"{port} speaks ASH (RSTACK received) but did not answer the EZSP version "
                f"command: {exc!r}",
            )
        ) from None
    info.update(protocol_version=protocol, stack_type=stack_type)
    info["stack_version"] = ".".join(str(stack_word >> s & 0xF) for s in (12, 8, 4, 0))
    if protocol < expected.min_protocol_version:
        raise _ProbeFailed(
            ProbeFinding(
                ProbeProblem.EZSP_TOO_OLD,
                f"NCP firmware speaks EZSP protocol {protocol} (EmberZNet "
                f"{info['stack_version']}); gbhil needs {expected.min_protocol_version} or "
                "later (EmberZNet 7.4+): update the NCP firmware",
            )
        )
    if protocol < EXTENDED_HEADER_SINCE:  # pragma: no cover - guarded by the check above
        return
    session.version = protocol
    try:
        await _identify(session, info, expected, problems)
    except (TimeoutError, EzspError, EzspUnsupportedError) as exc:
        raise _ProbeFailed(
            ProbeFinding(
                ProbeProblem.NO_EZSP_RESPONSE,
                f"EZSP v{protocol} NCP at {port} stopped answering: {exc!r}",
            )
        ) from None


async def _identify(
    session: _Session,
    info: dict[str, Any],
    expected: RadioExpectation,
    problems: list[ProbeFinding],
) -> None:
    version = await session.call("version", desiredProtocolVersion=session.version)
    if version is None or version["protocolVersion"] != session.version:
        raise EzspError(f"NCP refused to confirm protocol version {session.version}")
    value = await session.call("getValue", valueId=ValueId.VERSION_INFO)
    if value is not None and value["status"] == 0 and len(value["value"]) >= 6:
        raw = value["value"]
        build = int.from_bytes(raw[:2], "little")
        parts = (raw[2], raw[3], raw[4], raw[5])
        info["stack_version_tuple"] = parts
        info["stack_version"] = f"{'.'.join(map(str, parts))} build {build}"
    for key, token in (("manufacturer", MfgTokenId.STRING), ("board", MfgTokenId.BOARD_NAME)):
        reply = await session.call("getMfgToken", tokenId=token)
        if reply is not None:
            info[key] = _token_text(reply["tokenData"])
    eui = await session.call("getEui64")
    if eui is not None:
        info["eui64"] = eui["eui64"]
    tuple_version = info.get("stack_version_tuple")
    minimum = expected.min_stack_version
    if minimum is not None and tuple_version is not None and tuple(tuple_version[:3]) < minimum:
        wanted = ".".join(map(str, minimum))
        problems.append(
            ProbeFinding(
                ProbeProblem.STACK_TOO_OLD,
                f"EmberZNet {info['stack_version']} is older than the {wanted} the rig needs",
            )
        )
    phys = await session.call("getPhyInterfaceCount")
    info["phy_interfaces"] = phys["interfaceCount"] if phys is not None else 1
    if expected.sub_ghz and info["phy_interfaces"] < SUB_GHZ_PHY_COUNT:
        problems.append(
            ProbeFinding(
                ProbeProblem.SUB_GHZ_UNSUPPORTED,
                f"NCP reports {info['phy_interfaces']} PHY interface (2.4 GHz only): the rig "
                "needs sub-GHz (GB868, pages 28-31), which takes a dual-PHY Smart Energy NCP "
                "(EFR32xG24 + Si4468, or EFR32MG12/13 sub-GHz firmware)",
            )
        )
    cert = await session.call("getCertificate283k1")
    installed = False
    if cert is not None and cert["status"] == 0:
        raw = cert["localCert"]
        installed = len(raw) == CERTIFICATE_283K1_LEN and len(set(raw)) > 1
    info["cbke_certificate"] = installed
    if expected.cbke_certificate and not installed:
        problems.append(
            ProbeFinding(
                ProbeProblem.NO_CBKE_CERTIFICATE,
                "radio has no Smart Energy certificate: real SMETS2 devices will not join "
                "(no sect283k1 CBKE certificate in the NCP's manufacturing tokens)",
            )
        )


__all__ = [
    "ProbeFinding",
    "ProbeProblem",
    "ProbeResult",
    "RadioExpectation",
    "probe_radio",
]
