"""gbhil's pytest plugin: the rig, the DCC and every device role as fixtures.

labgrid's idea, for GB smart metering: a test names what it needs (``dcc``, ``esme``,
``psu``...) and the rig file decides whether that is a simulation or a bench. The same
test runs on the embedded all-simulated rig (virtual time: a 4-minute outage costs
milliseconds) and on a real rig.

* ``--rig FILE``: the rig file (default ``rigs/simulated.toml`` when it exists, else the
  embedded :class:`~gbhil.rigs.simulated.SimulatedRig`), built by
  :func:`gbhil.rigs.build.build_rig` (embedded, MQTT bus with device-host processes, EZSP).
* ``--bus-url URL`` / ``--bus-rate RATE``: an MQTT rig's broker and shared-clock rate.
* ``--gbhil-report DIR``: where artefacts and ``index.html`` go (default ``reports``).
* Fixtures: ``rig`` (session), ``dcc``, ``clock``, ``han``, ``chf``, ``gpf``, ``esme``,
  ``gsme``, ``ppmid``, ``hht``, ``psu``, and ``gbhil_session`` for harness internals.
* Markers: ``usecase("ECS17b")``, ``srv("4.1.1")`` (traceability: JUnit properties and
  the HTML report) and ``needs("subghz", "psu")`` (skips, naming what the rig lacks).

The plugin is loaded by the ``pytest11`` entry point in every pytest run of the venv,
so it stays inert (no rig, no report) unless a test uses its fixtures or markers.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import pytest
from lxml import etree

from gbhil.dcc.mapping import SERVICE_VARIANTS, service_variant
from gbhil.dcc.processing import OverCapacity
from gbhil.dcc.transform import describe_response
from gbhil.devices.trust import Role
from gbhil.duis.codes import ACKNOWLEDGED, SUCCESS
from gbhil.duis.model import (
    CommandVariant,
    DCCAlertMessage,
    DeviceAlertMessage,
    Request,
    RequestHeader,
    RequestID,
    Response,
    ResponseMessage,
    WebService,
    format_eui,
    parse_response,
)
from gbhil.duis.schema import DS_NS, SR_NS
from gbhil.gbcs.errors import GbcsError
from gbhil.gbcs.frame import GbcsMessage, Shape
from gbhil.gbcs.message import decode_message
from gbhil.gbcs.security import sign_raw
from gbhil.gbcs.usecases import BY_USE_CASE
from gbhil.han.channels import PAGE_2_4_GHZ
from gbhil.han.network import LOCAL_RESPONSE_TIMEOUT_S, LocalResult
from gbhil.han.transport import CapturedFrame
from gbhil.pytest_plugin.artefacts import (
    Channel,
    TestArtefacts,
    Transcript,
    artefact_properties,
    display_path,
    folder_name,
)
from gbhil.pytest_plugin.report import (
    ARTEFACTS_DIR,
    PROP_RIG,
    PROP_SRV,
    PROP_USECASE,
    PROP_VIRTUAL_SECONDS,
    RunRecorder,
    write_html,
)
from gbhil.rigs.simulated import ROLE_NAMES

T = TypeVar("T")

# --- catalogues ------------------------------------------------------------------------

#: Capabilities a rig may offer, and what each means (``needs(...)`` names these).
CAPABILITIES: Mapping[str, str] = MappingProxyType(
    {
        "chf": "a Communications Hub Function",
        "gpf": "a Gas Proxy Function",
        "esme": "an electricity meter",
        "gsme": "a gas meter",
        "ppmid": "a prepayment meter interface device",
        "hht": "a hand-held terminal on the HAN (local command delivery)",
        "2.4ghz": "a 2.4 GHz HAN",
        "subghz": "a sub-GHz (868 MHz) HAN",
        "psu": "a switchable mains feed to the Comms Hub and ESME (model or bench PSU)",
        "psu_real": "a real bench PSU (SCPI over VISA)",
        "dcc": "the DCC emulator (DUIS in, GBCS out)",
        "virtual_time": "a stepped virtual clock (long waits cost milliseconds)",
        "capture": "a HAN capture (per-test pcap)",
        "mqtt": "devices behind an MQTT bus",
        "ezsp": "an EZSP radio (real or emulated NCP)",
        "local_devices": "every device simulated in the harness's process (a test may set up "
        "and read device state directly, e.g. stage a firmware image)",
    }
)
#: What the embedded default rig offers: everything but bench hardware and the MQTT bus.
EMBEDDED_CAPABILITIES = frozenset(CAPABILITIES) - {"psu_real", "mqtt", "ezsp"}
EMBEDDED_RIG_NAME = "embedded-simulated"
DEFAULT_RIG_FILE = Path("rigs/simulated.toml")
DEFAULT_REPORT_DIR = Path("reports")
#: The markers, registered so ``--strict-markers`` accepts them.
MARKERS: Mapping[str, str] = MappingProxyType(
    {
        "usecase": "usecase(*names): GBCS use cases the test exercises, e.g. usecase('ECS17b')",
        "srv": "srv(*variants): DUIS Service Reference Variants it exercises, e.g. srv('4.1.1')",
        "needs": "needs(*capabilities): skip unless the rig has them, e.g. needs('subghz', 'psu')",
    }
)
#: The session fixture every gbhil fixture depends on (marks a test as a HIL test).
SESSION_FIXTURE = "gbhil_session"

#: Virtual-time budgets of the DCC waits, in seconds. A GSME wakes every 30 minutes, so a
#: response may take two wake intervals.
ACK_TIMEOUT_S = 30.0
RESPONSE_TIMEOUT_S = 3600.0
ALERT_TIMEOUT_S = 600.0
#: How long mains restoration is left to settle after ``psu.cut`` (alerts go up the WAN).
RESTORE_SETTLE_S = 120.0
#: Rig seconds per wall second of an MQTT rig's shared real-time clock under the harness:
#: a 4-minute outage takes 6 s and every suite about 2.5 minutes. CPU time in any process
#: (the DCC signing a DUIS alert...) costs rig time at this rate, so timing-bound tests
#: (a burst of 1-second mains cuts) can miss their budgets on a loaded machine; a lower
#: ``--bus-rate`` / $GBHIL_BUS_RATE (10) gives them room.
HARNESS_RATE = 40.0
#: HTTP status of a request the DCC took (its DUIS answer says what became of it).
HTTP_OK = 200
HTTP_TOO_MANY_REQUESTS = 429


# --- rig resolution --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RigSpec:
    """A rig before it is built: enough to decide skips without touching hardware."""

    name: str
    source: str
    capabilities: frozenset[str]
    factory: Callable[[], Any] = field(compare=False)

    def missing(self, needed: Sequence[str]) -> list[str]:
        unknown = [c for c in needed if c not in CAPABILITIES and c not in self.capabilities]
        if unknown:
            known = ", ".join(sorted({*CAPABILITIES, *self.capabilities}))
            pytest.fail(
                f"needs(): unknown capability {', '.join(unknown)}; known: {known}", pytrace=False
            )
        return [c for c in needed if c not in self.capabilities]


def embedded_rig_spec() -> RigSpec:
    from gbhil.rigs.simulated import SimulatedRig

    return RigSpec(EMBEDDED_RIG_NAME, "embedded", EMBEDDED_CAPABILITIES, SimulatedRig.build)


def rig_capabilities(rig: Any) -> frozenset[str]:
    """What a :class:`gbhil.rigs.rigfile.RigFile` offers, in ``needs(...)`` terms."""
    from gbhil.rigs.rigfile import BusKind, RadioDriver

    caps = {d.role.value for d in rig.devices} | {"dcc"}
    radios = [place.radio for place in rig.places]
    if any(band.page == PAGE_2_4_GHZ for radio in radios for band in radio.bands):
        caps.add("2.4ghz")
    if any(radio.has_sub_ghz for radio in radios):
        caps.add("subghz")
    mains = rig.mains
    if mains is not None:
        caps.add("psu")
        if not mains.simulated:
            caps.add("psu_real")
    in_process = rig.bus.kind is BusKind.IN_PROCESS
    if not in_process:
        caps.add("mqtt")
    if any(radio.driver is RadioDriver.EZSP for radio in radios):
        caps.add("ezsp")
    if in_process and all(d.simulated for d in rig.devices):
        caps.add("local_devices")  # the device objects are the devices on the HAN
    # An emulated EZSP stick is an NCP on the in-process medium (capture and virtual time
    # as the simulated radio); a real stick's port is neither.
    if radios and all(
        radio.driver is RadioDriver.SIMULATED
        or (radio.driver is RadioDriver.EZSP and radio.emulated)
        for radio in radios
    ):
        caps.add("capture")
        # virtual time cannot span processes: an MQTT rig runs on a shared real-time clock;
        # a pyvisa-sim ("@sim") mains answers in-process, with no wall-clock of its own
        if (
            in_process
            and all(d.simulated for d in rig.devices)
            and (mains is None or mains.simulated or "@sim" in (mains.backend or ""))
        ):
            caps.add("virtual_time")
    return frozenset(caps)


def embedded_mismatches(rig: Any) -> list[str]:
    """Why the embedded rig cannot stand in for a rig file (empty: it can)."""
    from gbhil.rigs.build import embedded_mismatches as mismatches

    return mismatches(rig)


@dataclass(frozen=True, slots=True)
class BusOptions:
    """``--bus-url`` / ``--bus-rate`` (or $GBHIL_BUS_URL / $GBHIL_BUS_RATE) for MQTT rigs."""

    url: str | None = None
    rate: float | None = None

    def resolved_rate(self) -> float:
        """The option, else $GBHIL_BUS_RATE, else :data:`HARNESS_RATE`."""
        from gbhil.rigs.build import BUS_RATE_ENV, clock_rate

        if self.rate is None and os.environ.get(BUS_RATE_ENV) is None:
            return HARNESS_RATE
        return clock_rate(self.rate)


def rig_file_spec(path: Path, bus: BusOptions | None = None) -> RigSpec:
    """A rig file (:mod:`gbhil.rigs.rigfile`, labgrid's environment-file idea).

    :func:`gbhil.rigs.build.build_rig` builds it: the embedded rig, an MQTT rig (hub here,
    meters in device-host processes) or an EZSP rig. What no builder can make, and an MQTT
    broker that does not answer, stop the run here with a usage error, before any test.
    """
    from gbhil.rigs.build import (
        BUS_KINDS,
        RigBuildError,
        broker_unreachable,
        build_rig,
        rig_kind,
        unbuildable,
    )
    from gbhil.rigs.rigfile import RigFileError, load_rig

    bus = bus or BusOptions()
    try:
        rig = load_rig(path)
    except (RigFileError, OSError) as exc:
        raise pytest.UsageError(f"--rig {path}: {exc}") from None
    problems = unbuildable(rig)
    if problems:
        raise pytest.UsageError(
            f"--rig {path}: the harness cannot build rig {rig.name!r}: {'; '.join(problems)}"
        )
    kind = rig_kind(rig)
    rate: float | None = None
    if kind in BUS_KINDS:
        try:
            rate = bus.resolved_rate()
            down = broker_unreachable(rig, bus.url)
        except RigBuildError as exc:
            raise pytest.UsageError(f"--rig {path}: {exc}") from None
        if down is not None:
            raise pytest.UsageError(
                f"--rig {path}: {down}; start it, or point the run at another broker with "
                "--bus-url / $GBHIL_BUS_URL"
            )
    return RigSpec(
        rig.name,
        display_path(path),
        rig_capabilities(rig),
        lambda: build_rig(path, bus_url=bus.url, rate=rate),
    )


def resolve_rig(
    option: str | None, invocation_dir: Path, rootdir: Path, bus: BusOptions | None = None
) -> RigSpec:
    """``--rig FILE``, else ``rigs/simulated.toml`` when present, else the embedded rig."""
    if option:
        path = Path(option)
        if not path.is_absolute():
            path = invocation_dir / path
        if not path.is_file():
            raise pytest.UsageError(f"--rig {option}: no such rig file")
        return rig_file_spec(path, bus)
    for base in (invocation_dir, rootdir):
        candidate = base / DEFAULT_RIG_FILE
        if candidate.is_file():
            return rig_file_spec(candidate, bus)
    return embedded_rig_spec()


# --- driving the rig from synchronous tests -------------------------------------------


def _run(rig: Any, coro: Coroutine[Any, Any, T]) -> T:
    """Run on the rig's one loop; a clear error instead of asyncio's when nested."""
    loop = getattr(rig, "_loop", None)
    if loop is not None and loop.is_running():
        coro.close()
        raise RuntimeError(
            "gbhil fixtures' blocking calls cannot run inside rig.run(); "
            "await the rig's coroutines there instead"
        )
    return rig.run(coro)


class VirtualClock:
    """The rig's clock for synchronous tests: sleeping lets the whole rig work meanwhile."""

    def __init__(self, rig: Any) -> None:
        self._rig = rig

    @property
    def clock(self) -> Any:
        """The underlying :class:`gbhil.simulator.Clock` (stepped or real time)."""
        return self._rig.clock

    def now(self) -> datetime:
        return self._rig.clock.now()

    def monotonic(self) -> float:
        return self._rig.clock.monotonic()

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass on the rig (virtual time on a simulated rig)."""
        _run(self._rig, self._rig.clock.sleep(seconds))

    def settle(self, seconds: float = 60.0) -> None:
        """Let the HAN work until idle or ``seconds`` have passed."""
        _run(self._rig, self._rig.settle(seconds))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of your own on the rig's loop."""
        return _run(self._rig, coro)


class Mains:
    """The supply the rig can cut: the behavioural mains model or a bench PSU channel."""

    def __init__(self, rig: Any, transcript: Callable[[], Transcript | None]) -> None:
        self._rig = rig
        self._transcript = transcript

    @property
    def supply(self) -> Any:
        """The :class:`~gbhil.rigs.instruments.psu.PsuProtocol` behind it."""
        return self._rig.mains

    @property
    def is_on(self) -> bool:
        return bool(self.supply.output_enabled())

    def _set(self, on: bool) -> None:
        async def switch() -> None:
            self.supply.set_output(on)

        transcript = self._transcript()
        if transcript is not None:
            transcript.note(Channel.PSU, f"mains {'on' if on else 'off'}")
        _run(self._rig, switch())

    def off(self) -> None:
        self._set(False)

    def on(self) -> None:
        self._set(True)

    def cut(self, seconds: float, *, settle: float = RESTORE_SETTLE_S) -> None:
        """Mains off for ``seconds``, back on, then ``settle`` seconds for the alerts."""
        self.off()
        VirtualClock(self._rig).sleep(seconds)
        self.on()
        VirtualClock(self._rig).settle(settle)


class Hht:
    """The hand-held terminal: local delivery of CV 2/3 commands over the HAN."""

    def __init__(self, rig: Any, transcript: Callable[[], Transcript | None]) -> None:
        self._rig = rig
        self._transcript = transcript

    @property
    def node(self) -> Any:
        """The :class:`~gbhil.han.network.HhtNode` (or a real rig's equivalent)."""
        return self._rig.hht

    @property
    def eui(self) -> bytes:
        return bytes(self.node.eui)

    def deliver(self, command: bytes, *, timeout: float = LOCAL_RESPONSE_TIMEOUT_S) -> LocalResult:
        """Take a command for local delivery to its device; returns response and alerts."""
        transcript = self._transcript()
        if transcript is not None:
            transcript.gbcs(Channel.HHT, "HHT -> device", command)
        result: LocalResult = _run(self._rig, self.node.deliver(command, timeout=timeout))
        if transcript is not None:
            if result.response is not None:
                transcript.gbcs(Channel.HHT, "device -> HHT", result.response)
            for alert in result.alerts:
                transcript.gbcs(Channel.HHT, "device -> HHT", alert)
            if result.timed_out:
                transcript.note(Channel.HHT, f"no response within {timeout:g} s")
        return result


class HanView:
    """The HAN as the test sees it: the medium, the hub and this test's transmissions."""

    def __init__(self, rig: Any, frames: Callable[[], list[CapturedFrame]]) -> None:
        self._rig = rig
        self._frames = frames

    @property
    def medium(self) -> Any:
        return getattr(self._rig, "medium", None)

    @property
    def hub(self) -> Any:
        return self._rig.hub

    @property
    def frames(self) -> list[CapturedFrame]:
        """Every transmission since the test started (the test's pcap slice)."""
        return list(self._frames())

    def frames_on(self, page: int, channel: int | None = None) -> list[CapturedFrame]:
        """This test's transmissions on one page (0 = 2.4 GHz, 28 = GB sub-GHz)."""
        return [
            f
            for f in self._frames()
            if f.page == page and (channel is None or f.channel == channel)
        ]


# --- the DCC client --------------------------------------------------------------------


class DccTimeout(AssertionError):
    """Nothing arrived within the virtual-time budget: a test failure, not an error."""


class DccRefused(AssertionError):
    """The DCC refused the request, so the awaited response will never come."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert the DCC delivered to a User: a device alert or a DCC alert."""

    code: str  # "8F36" (device alert code) or "AD1" (DCC alert code)
    user: str  # the User it was delivered to, EUI as DUIS writes it
    response: Response  # the DUIS message (as the User's receive service gets it, parsed)
    gbcs: bytes | None  # the device's GBCS alert, for device alerts
    at: datetime
    request_id: RequestID | None = None


TargetLike = bytes | str | Any  # an EUI (bytes or text) or a device object with ``eui``
UserLike = Role | str | bytes  # Role.SUPPLIER, a User name ("supplier") or a User ID


def _eui_text(target: TargetLike) -> str:
    if isinstance(target, bytes | str):
        return format_eui(target)
    return format_eui(bytes(target.eui))


def request_xml(request: Request) -> bytes:
    """A request model back to (unsigned) DUIS XML."""
    nsmap = {"sr": SR_NS}
    root = etree.Element(f"{{{SR_NS}}}Request", nsmap=nsmap, schemaVersion=request.schema_version)
    root.append(request.header.to_element())
    body = etree.SubElement(root, f"{{{SR_NS}}}Body")
    body.append(etree.fromstring(etree.tostring(request.body)))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _without_signature(xml: bytes) -> bytes:
    """The request with any ds:Signature removed (templates carry placeholder ones)."""
    root = etree.fromstring(xml)
    for signature in root.findall(f"{{{DS_NS}}}Signature"):
        root.remove(signature)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _pretty(xml: bytes) -> bytes:
    try:
        return etree.tostring(etree.fromstring(xml), pretty_print=True)
    except etree.XMLSyntaxError:
        return xml


@dataclass(eq=False)
class Submission:
    """One service request in flight; every wait runs the rig's (virtual) clock."""

    client: DccClient
    request: Request
    #: HTTP status of the synchronous answer (400/413/429 carry no DUIS response).
    http_status: int | None = None
    #: The synchronous DUIS answer: I99, an E code, or the content of a synchronous service.
    ack: Response | None = None
    #: Service responses by RequestID, oldest first (CV 2/4/8: the synchronous answer).
    responses: list[Response] = field(default_factory=list)
    #: Alerts the DCC ties to this RequestID.
    alerts: list[Alert] = field(default_factory=list)
    #: GBCS commands the DCC sent over the SM WAN for this request.
    commands: list[bytes] = field(default_factory=list)

    @property
    def request_id(self) -> RequestID:
        return self.request.header.request_id

    @property
    def refused(self) -> bool:
        if self.http_status not in (None, HTTP_OK):
            return True
        code = self.ack.header.response_code if self.ack is not None else ""
        return code not in ("", ACKNOWLEDGED, SUCCESS)

    @property
    def local_command(self) -> bytes | None:
        """CV 2/3/6/7: the GBCS command for local delivery."""
        body = self.ack.body if self.ack is not None else None
        return body.local_command if isinstance(body, ResponseMessage) else None

    @property
    def pre_command(self) -> bytes | None:
        """CV 4: the pre-command the User signs."""
        body = self.ack.body if self.ack is not None else None
        if isinstance(body, ResponseMessage) and body.pre_command is not None:
            return body.pre_command.gbcs_payload
        return None

    @property
    def command(self) -> bytes | None:
        """The (first) GBCS command the DCC sent over the SM WAN, if any."""
        return self.commands[0] if self.commands else None

    def await_ack(self, within: float = ACK_TIMEOUT_S) -> Response:
        """The synchronous DUIS answer (the DCC answers before ``submit`` returns)."""
        if self.ack is None:
            raise DccRefused(f"{self} got HTTP {self.http_status} and no DUIS answer")
        del within  # kept for rigs whose DCC answers asynchronously
        return self.ack

    def await_response(self, within: float = RESPONSE_TIMEOUT_S) -> Response:
        """The service response: the device's answer (I0), the DCC's failure code (E20,
        E21...), or for CV 2/4/8 the synchronous answer with its content."""
        self._not_refused()
        self.client._wait(lambda: bool(self.responses), within, f"no response to {self}")
        return self.responses[0]

    def await_alerts(self, n: int = 1, *, within: float = ALERT_TIMEOUT_S) -> list[Alert]:
        """The first ``n`` alerts tied to this RequestID: DCC alerts naming it, and device
        alerts reporting on its command (future-dated execution outcomes)."""
        self._not_refused()
        self.client._wait(lambda: len(self.alerts) >= n, within, f"{n} alert(s) for {self}")
        return self.alerts[:n]

    def _not_refused(self) -> None:
        if self.refused:
            code = self.ack.header.response_code if self.ack is not None else "no DUIS answer"
            raise DccRefused(f"{self} was refused: HTTP {self.http_status}, {code}")

    def __str__(self) -> str:
        return f"RequestID {self.request_id} (SRV {self.request.header.service_reference_variant})"


class DccClient:
    """The DCC as tests see it: ``submit`` DUIS requests, await answers by RequestID.

    It is gbhil's DCC emulator (:mod:`gbhil.dcc.emulator`) run in process on the rig's
    loop: requests are signed as their User and go through the full processing (schema,
    XML signature, User and role checks, SMI, DSP transform, ACB protection), commands go
    over the rig's WAN, and what the DCC would POST to a User's receive service lands
    here instead. Every wait runs the rig's clock, so a 30-minute GSME wake or a 3-minute
    outage costs milliseconds on a simulated rig.
    """

    def __init__(self, rig: Any, transcript: Callable[[], Transcript | None]) -> None:
        from gbhil.dcc.emulator import EmulatorConfig, default_emulator

        self._rig = rig
        self._transcript = transcript
        #: The emulator (no HTTP servers): ``inventory``, ``cpl``, ``users``, ``processor``.
        self.emulator = default_emulator(rig, config=EmulatorConfig(duis_port=None, smki_port=None))
        self.processor = self.emulator.processor
        self.users = self.emulator.users
        self._send_wan = self.processor.wan
        self.processor.wan = self._wan
        self.processor.sink = self._receive
        self._counters: dict[str, itertools.count[int]] = {}
        # above anything an earlier run sent to a device or the DCC that remembers
        self._counter_base = int(rig.clock.now().timestamp() * 1000)
        self._submissions: dict[RequestID, Submission] = {}
        #: (device EUI, GBCS originator counter) of each command sent -> its submission
        self._by_command: dict[tuple[bytes, int], tuple[Submission, int]] = {}
        self._all_alerts: list[Alert] = []
        self._mark = 0
        self._wakers: list[asyncio.Future[None]] = []

    @property
    def security(self) -> Any:
        """The DCC's key view (:class:`gbhil.gbcs.security.SecurityContext`): check MACs
        and signatures of what it sent or received."""
        return self.processor.security

    @property
    def inventory(self) -> Any:
        """The Smart Metering Inventory (:class:`gbhil.dcc.inventory.Inventory`)."""
        return self.emulator.inventory

    # -- wiring to the rig (the session fans the rig's callbacks out) ---------------------
    def on_wan(self, raw: bytes) -> None:
        self.processor.device_message(raw)
        self._notify()

    def on_power(self, event: Any) -> None:
        self.processor.power_event(event.kind, event.chf, event.at)
        self._notify()

    async def _wan(self, command: bytes) -> Any:
        transcript = self._transcript()
        if transcript is not None:
            transcript.gbcs(Channel.WAN, "DCC -> device", command)
        self._remember_command(command)
        return await self._send_wan(command)

    def _remember_command(self, command: bytes) -> None:
        """Tie a command to its request: the User's own counter, or the Supplementary
        Remote Party counter when the ACB sends on the User's behalf (gbcs-facts 2.8)."""
        try:
            gs = decode_message(command).frame.gs
        except GbcsError:
            return
        other = gs.other_information
        user, counter = gs.business_originator, gs.originator_counter
        if other.supplementary_remote_party_id is not None:
            user = other.supplementary_remote_party_id
            counter = other.supplementary_remote_party_counter or counter
        rid = RequestID(format_eui(user), format_eui(gs.business_target), counter)
        sub = self._submissions.get(rid)
        if sub is not None:
            sub.commands.append(command)
            self._by_command[(gs.business_target, gs.originator_counter)] = (
                sub,
                other.message_code,
            )

    # -- Users and requests ----------------------------------------------------------
    def user(self, user: UserLike) -> Any:
        """A DCC User (:class:`gbhil.dcc.users.DccUser`) by role, name or User ID."""
        if isinstance(user, Role):
            user = ROLE_NAMES[user]
        if isinstance(user, bytes):
            user = format_eui(user)
        return self.users[user]

    def user_eui(self, user: UserLike) -> str:
        return str(self.user(user).user_id)

    def next_counter(self, user: str) -> int:
        counter = self._counters.setdefault(user, itertools.count(self._counter_base))
        return next(counter)

    def request(
        self,
        srv: str,
        target: TargetLike,
        *,
        body: str | etree._Element | None = None,
        cv: int | CommandVariant = CommandVariant.SEND,
        user: UserLike = Role.SUPPLIER,
        counter: int | None = None,
    ) -> Request:
        """Build a request. ``body`` is the body element as XML with the ``sr:`` prefix
        (default: the SRV's body element, empty, which suits reads); the counter is the
        User's next one."""
        sv = service_variant(srv)
        if sv is None:
            raise ValueError(f"{srv} is not a DUIS Service Reference Variant")
        originator = self.user_eui(user)
        if counter is None:
            counter = self.next_counter(originator)
        request_id = RequestID(originator, _eui_text(target), counter)
        header = RequestHeader(request_id, CommandVariant(cv), sv.service_reference, srv)
        if body is None:
            element = etree.Element(f"{{{SR_NS}}}{sv.body}", nsmap={"sr": SR_NS})
        elif isinstance(body, str):
            element = etree.fromstring(f'<sr:Body xmlns:sr="{SR_NS}">{body}</sr:Body>')[0]
        else:
            element = body
        return Request(header, element)

    # -- submitting ------------------------------------------------------------------
    def submit(
        self,
        request: Request | bytes | str,
        *,
        user: UserLike | None = None,
        sign: bool = True,
        service: WebService | None = None,
    ) -> Submission:
        """POST a request to the DCC as ``user`` (default: its BusinessOriginatorID).

        With ``sign`` the request is signed with the User's XML-signing key (any
        placeholder signature is replaced); ``sign=False`` sends the bytes as given (for
        E100 cases). ``service`` defaults to the web service of the Command Variant.
        Refusals come back as the acknowledgement's response code, as from the real DCC.
        """
        if isinstance(request, Request):
            model, xml = request, request_xml(request)
        else:
            xml = request.encode("utf-8") if isinstance(request, str) else request
            model = Request.from_element(_without_signature_root(xml))
        header = model.header
        submission = Submission(self, model)
        self._submissions[header.request_id] = submission
        if sign:
            signer = (
                self.user(user) if user is not None else self.user(header.business_originator_id)
            )
            xml = signer.sign(_without_signature(xml))
        web_service = service or header.command_variant.info.web_service or WebService.NON_DEVICE
        transcript = self._transcript()
        if transcript is not None:
            transcript.duis("User -> DCC", f"{web_service.path} {submission}", _pretty(xml))
        try:
            answer = _run(self._rig, self.processor.submit(web_service, xml))
        except OverCapacity as exc:  # HTTP 429: no DUIS answer at all
            submission.http_status = HTTP_TOO_MANY_REQUESTS
            if transcript is not None:
                transcript.note(Channel.DUIS, f"HTTP 429: {exc}")
            return submission
        submission.http_status = answer.status
        submission.ack = answer.response
        if transcript is not None:
            code = answer.response_code or f"HTTP {answer.status}"
            transcript.duis("DCC -> User", f"synchronous answer {code}", _pretty(answer.body))
        if answer.response is not None and _has_content(answer.response):
            submission.responses.append(answer.response)
        return submission

    def submit_signed(
        self,
        pre: Submission,
        *,
        cv: int | CommandVariant = CommandVariant.SEND_SIGNED,
        user: UserLike | None = None,
    ) -> Submission:
        """CV 5/6/7: sign the pre-command a CV 4 request returned, as its User, and send it
        with the same RequestID."""
        pre_command = pre.pre_command
        if pre_command is None:
            raise DccRefused(f"{pre} returned no pre-command to sign")
        header = pre.request.header
        signer = self.user(user) if user is not None else self.user(header.business_originator_id)
        key = self._rig.keystore.ds_private(bytes.fromhex(signer.user_id.replace("-", "")))
        if key is None:
            raise ValueError(f"no digital-signing key for User {signer.user_id} on this rig")
        gs = decode_message(pre_command, precommand=True).frame.gs
        signed = GbcsMessage(Shape.SIGNED, replace(gs, signature=sign_raw(key, gs.signed_bytes())))
        payload = base64.b64encode(signed.encode()).decode("ascii")
        body = (
            f"<sr:SignedPreCommand><sr:GBCSPayload>{payload}</sr:GBCSPayload></sr:SignedPreCommand>"
        )
        request = Request(
            replace(header, command_variant=CommandVariant(cv)),
            etree.fromstring(f'<sr:Body xmlns:sr="{SR_NS}">{body}</sr:Body>')[0],
        )
        return self.submit(request, user=user)

    # -- what the DCC sends to Users ---------------------------------------------------
    def _receive(self, user_id: str, body: bytes, kind: Any, request_id: str | None) -> None:
        """The DCC's outbox, in process: every asynchronous response and alert."""
        response = parse_response(body)
        header = response.header
        message = response.body
        transcript = self._transcript()
        if transcript is not None:
            if isinstance(message, DeviceAlertMessage):
                what = f"device alert {message.alert_code:04X}"
            elif isinstance(message, DCCAlertMessage):
                what = f"DCC alert {message.dcc_alert_code}"
            else:
                what = f"service response {header.response_code} to {header.request_id}"
            transcript.duis("DCC -> User", f"{what} for {format_eui(user_id)}", _pretty(body))
        now = self._rig.clock.now()
        if isinstance(message, DeviceAlertMessage | DCCAlertMessage):
            self._alert(user_id, response, now)
        elif header.request_id is not None:
            sub = self._submissions.get(header.request_id)
            if sub is not None:
                sub.responses.append(response)
        del request_id
        self._notify()

    def _alert(self, user_id: str, response: Response, now: datetime) -> None:
        message = response.body
        gbcs: bytes | None = None
        if isinstance(message, DeviceAlertMessage):
            code, gbcs = f"{message.alert_code:04X}", message.gbcs_payload
        else:
            assert isinstance(message, DCCAlertMessage)
            code = message.dcc_alert_code
        related = (
            self._submissions.get(response.header.request_id)
            if (response.header.request_id is not None)
            else None
        )
        if related is None and gbcs is not None:
            related = self._related(gbcs)
        alert = Alert(
            code,
            format_eui(user_id),
            response,
            gbcs,
            now,
            related.request_id if related is not None else None,
        )
        self._all_alerts.append(alert)
        if related is not None:
            related.alerts.append(alert)

    def _related(self, gbcs: bytes) -> Submission | None:
        """The request a device alert reports on: future-dated execution alerts carry the
        command's message code and originator counter (gbcs-facts 3.1.5)."""
        try:
            gs = decode_message(gbcs).frame.gs
        except GbcsError:
            return None
        for (device, counter), (sub, message_code) in self._by_command.items():
            if device != gs.business_originator:
                continue
            if message_code.to_bytes(2, "big") + counter.to_bytes(8, "big") in gs.content:
                return sub
        return None

    # -- alerts of the current test ----------------------------------------------------
    @property
    def alerts(self) -> list[Alert]:
        """Every alert delivered to any User since the test started."""
        return self._all_alerts[self._mark :]

    def _matching(self, code: str | int | None, user: UserLike | None) -> list[Alert]:
        want_code = f"{code:04X}" if isinstance(code, int) else code
        want_user = None if user is None else self.user_eui(user)
        return [
            a
            for a in self.alerts
            if (want_code is None or a.code.upper() == want_code.upper())
            and (want_user is None or a.user == want_user)
        ]

    def await_alerts(
        self,
        n: int = 1,
        *,
        within: float = ALERT_TIMEOUT_S,
        code: str | int | None = None,
        user: UserLike | None = None,
    ) -> list[Alert]:
        """The first ``n`` alerts of this test matching ``code`` (``0x8F36``, ``"AD1"``)
        and ``user``; fails the test if they do not arrive ``within`` virtual seconds."""
        shown = f"{code:04X}" if isinstance(code, int) else (code or "")
        self._wait(
            lambda: len(self._matching(code, user)) >= n,
            within,
            f"{n} alert(s) {shown}".rstrip(),
        )
        return self._matching(code, user)[:n]

    def watch_alerts(
        self, within: float, *, code: str | int | None = None, user: UserLike | None = None
    ) -> list[Alert]:
        """Let ``within`` seconds pass, then return every matching alert of this test (to
        assert that an alert does *not* come)."""
        VirtualClock(self._rig).sleep(within)
        return self._matching(code, user)

    @staticmethod
    def describe(message: Response | Alert | bytes) -> dict[str, Any]:
        """The DSP's summary of a GBCS response or alert (outcome, payload, alert code)."""
        if isinstance(message, Alert):
            raw = message.gbcs or b""
        elif isinstance(message, Response):
            raw = getattr(message.body, "gbcs_payload", None) or b""
        else:
            raw = message
        return describe_response(raw)

    # -- plumbing --------------------------------------------------------------------
    def begin_test(self) -> None:
        self._mark = len(self._all_alerts)

    def _notify(self) -> None:
        for waker in self._wakers:
            if not waker.done():
                waker.set_result(None)

    def _wait(self, ready: Callable[[], bool], within: float, what: str) -> None:
        if ready():
            return
        if not _run(self._rig, self._wait_async(ready, within)):
            raise DccTimeout(f"{what} within {within:g} s of rig time")

    async def _wait_async(self, ready: Callable[[], bool], within: float) -> bool:
        clock = self._rig.clock
        deadline = clock.monotonic() + within
        while not ready():
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return False
            waker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._wakers.append(waker)
            handle = clock.call_later(remaining, lambda w=waker: w.done() or w.set_result(None))
            try:
                await waker
            finally:
                handle.cancel()
                self._wakers.remove(waker)
        return True

    def close(self) -> None:
        _run(self._rig, self.processor.close())


def _without_signature_root(xml: bytes) -> etree._Element:
    return etree.fromstring(_without_signature(xml))


def _has_content(response: Response) -> bool:
    body = response.body
    return isinstance(body, ResponseMessage) and body.has_content


# --- the session -----------------------------------------------------------------------


class HilSession:
    """One pytest session's rig, DCC, current test artefacts and report rows."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        invocation = config.invocation_params.dir
        option = config.getoption("gbhil_report")
        self.report_requested = option is not None
        report = Path(option) if option is not None else DEFAULT_REPORT_DIR
        self.report_dir = report if report.is_absolute() else invocation / report
        self._rig_option: str | None = config.getoption("gbhil_rig")
        self._bus = BusOptions(
            config.getoption("gbhil_bus_url"), config.getoption("gbhil_bus_rate")
        )
        self._spec: RigSpec | None = None
        self._rig: Any = None
        self._dcc: DccClient | None = None
        self.current: TestArtefacts | None = None
        self.recorder = RunRecorder()
        #: set once any test uses a gbhil fixture or marker: only then is a report written
        self.active = False
        self.started = time.time()
        self._folders: set[str] = set()

    @property
    def spec(self) -> RigSpec:
        if self._spec is None:
            self._spec = resolve_rig(
                self._rig_option,
                self.config.invocation_params.dir,
                self.config.rootpath,
                self._bus,
            )
        return self._spec

    @property
    def rig(self) -> Any:
        """The rig, built, started (devices joined) and wired on first use."""
        if self._rig is None:
            rig = self.spec.factory()
            try:
                rig.run(rig.start())
            except BaseException:
                rig.close()  # a rig with device-host processes must not leave them behind
                raise
            # the harness owns the rig's WAN side: transcript first, then the DCC
            rig.on_wan, rig.on_power = self._on_wan, self._on_power
            self._rig = rig
        return self._rig

    @property
    def dcc(self) -> DccClient:
        if self._dcc is None:
            self._dcc = DccClient(self.rig, self.transcript)
        return self._dcc

    def transcript(self) -> Transcript | None:
        return self.current.transcript if self.current is not None else None

    def frames(self) -> list[CapturedFrame]:
        return self.current.frames if self.current is not None else []

    def _on_wan(self, raw: bytes) -> None:
        transcript = self.transcript()
        if transcript is not None:
            transcript.gbcs(Channel.WAN, "device -> DCC", raw)
        if self._dcc is not None:
            self._dcc.on_wan(raw)

    def _on_power(self, event: Any) -> None:
        transcript = self.transcript()
        if transcript is not None:
            transcript.note(Channel.PSU, f"Comms Hub tells the CSP: power {event.kind.value}")
        if self._dcc is not None:
            self._dcc.on_power(event)

    # -- per test --------------------------------------------------------------------
    def begin_test(self, item: pytest.Item) -> TestArtefacts:
        """Reset what one test may have left (mains off, WAN lists) and start recording."""
        rig = self.rig
        mains = getattr(rig, "mains", None)
        if mains is not None and not mains.output_enabled():
            Mains(rig, lambda: None).on()
            VirtualClock(rig).settle(RESTORE_SETTLE_S)
        for name in ("wan", "power_events"):
            if isinstance(getattr(rig, name, None), list):
                getattr(rig, name).clear()
        if self._dcc is not None:
            self._dcc.begin_test()
        name = folder_name(item.nodeid)
        unique = name
        for n in itertools.count(2):
            if unique not in self._folders:
                break
            unique = f"{name}-{n}"
        self._folders.add(unique)
        artefacts = TestArtefacts(
            self.report_dir / ARTEFACTS_DIR / unique, rig, getattr(rig, "dcc", None)
        )
        artefacts.start()
        self.current = artefacts
        return artefacts

    def end_test(self, item: pytest.Item, artefacts: TestArtefacts) -> None:
        self.current = None
        item.user_properties.append((PROP_VIRTUAL_SECONDS, f"{artefacts.virtual_seconds:.3f}"))
        item.user_properties.append((PROP_RIG, self.spec.name))
        item.user_properties.extend(artefact_properties(artefacts.finish()))

    def close(self) -> None:
        if self._dcc is not None:
            self._dcc.close()
            self._dcc = None
        if self._rig is not None:
            self._rig.close()
            self._rig = None


HIL_KEY = pytest.StashKey[HilSession]()


def hil_session(config: pytest.Config) -> HilSession:
    return config.stash[HIL_KEY]


# --- hooks -----------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gbhil", "gbhil hardware-in-the-loop")
    group.addoption(
        "--rig",
        dest="gbhil_rig",
        metavar="FILE",
        default=None,
        help=f"rig file (default: {DEFAULT_RIG_FILE} if present, else the embedded rig)",
    )
    group.addoption(
        "--bus-url",
        dest="gbhil_bus_url",
        metavar="URL",
        default=None,
        help="MQTT rigs: the broker to use instead of the rig file's [bus] url "
        "(mqtt://host:port; default $GBHIL_BUS_URL)",
    )
    group.addoption(
        "--bus-rate",
        dest="gbhil_bus_rate",
        metavar="RATE",
        type=float,
        default=None,
        help="MQTT rigs: rig seconds per wall second of the shared clock "
        f"(default $GBHIL_BUS_RATE, else {HARNESS_RATE:g})",
    )
    group.addoption(
        "--gbhil-report",
        dest="gbhil_report",
        metavar="DIR",
        default=None,
        help=f"folder for per-test artefacts and index.html (default: {DEFAULT_REPORT_DIR})",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}{text[len(name) :]}")
    config.stash[HIL_KEY] = HilSession(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    hil = config.stash.get(HIL_KEY, None)
    if hil is not None:
        hil.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    hil = hil_session(config)
    for item in items:
        if any(item.get_closest_marker(name) is not None for name in MARKERS):
            hil.active = True
        if SESSION_FIXTURE in getattr(item, "fixturenames", ()):
            hil.active = True
    if hil.active:
        hil.spec  # noqa: B018 - a bad --rig is a usage error now, not in the first test


def _marker_values(item: pytest.Item, name: str) -> list[str]:
    return [str(v) for m in item.iter_markers(name) for v in m.args]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Traceability properties first (skipped tests keep them), then capability skips."""
    srvs = _marker_values(item, "srv")
    unknown = [s for s in srvs if s not in SERVICE_VARIANTS]
    if unknown:
        pytest.fail(
            f"srv(): {', '.join(unknown)} is not a DUIS Service Reference Variant", pytrace=False
        )
    for usecase in _marker_values(item, "usecase"):
        if usecase not in BY_USE_CASE:
            item.warn(pytest.PytestWarning(f"usecase({usecase!r}): not in gbhil's catalogue"))
        item.user_properties.append((PROP_USECASE, usecase))
    item.user_properties.extend((PROP_SRV, s) for s in srvs)
    needed = _marker_values(item, "needs")
    if needed:
        spec = hil_session(item.config).spec
        missing = spec.missing(needed)
        if missing:
            what = "; ".join(
                f"{c} ({CAPABILITIES.get(c, 'declared by rig files')})" for c in missing
            )
            # reported at the test's location, like a skipif mark
            raise pytest.skip.Exception(f"rig {spec.name!r} lacks {what}", _use_item_location=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    hil = item.config.stash.get(HIL_KEY, None)
    if hil is not None and (hil.active or hil.report_requested):
        hil.recorder.add(report)
    return report


def pytest_report_header(config: pytest.Config) -> str | None:
    hil = config.stash.get(HIL_KEY, None)
    if hil is None or not hil.active:
        return None
    spec = hil.spec
    return f"gbhil rig: {spec.name} ({spec.source}); report: {hil.report_dir}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    hil = session.config.stash.get(HIL_KEY, None)
    if hil is None or not (hil.active or hil.report_requested) or not hil.recorder.records:
        return
    links: dict[str, Path] = {}
    xmlpath = session.config.getoption("xmlpath", None)
    if xmlpath:
        links["JUnit XML"] = Path(xmlpath).resolve()
    meta = {
        "rig": f"{hil.spec.name} ({hil.spec.source})",
        "started": datetime.fromtimestamp(hil.started).astimezone().isoformat(timespec="seconds"),
    }
    write_html(hil.report_dir, list(hil.recorder.records.values()), meta=meta, links=links)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    hil = config.stash.get(HIL_KEY, None)
    if hil is not None and (hil.active or hil.report_requested) and hil.recorder.records:
        terminalreporter.write_line(f"gbhil report: {hil.report_dir / 'index.html'}")


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def gbhil_session(pytestconfig: pytest.Config) -> HilSession:
    """The harness itself (rig spec, report folder, current test's artefacts)."""
    hil = hil_session(pytestconfig)
    hil.active = True
    return hil


@pytest.fixture(autouse=True)
def _gbhil_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Per-test reset and artefacts, only for tests that use the harness."""
    if SESSION_FIXTURE not in request.fixturenames:
        yield
        return
    hil: HilSession = request.getfixturevalue(SESSION_FIXTURE)
    artefacts = hil.begin_test(request.node)
    try:
        yield
    finally:
        hil.end_test(request.node, artefacts)


@pytest.fixture(scope="session")
def capabilities(gbhil_session: HilSession) -> frozenset[str]:
    """What the rig of ``--rig`` offers (``needs`` markers skip on these; fixtures may adapt)."""
    return gbhil_session.spec.capabilities


@pytest.fixture(scope="session")
def rig(gbhil_session: HilSession) -> Any:
    """The rig of ``--rig``, built and started once per session (devices joined)."""
    return gbhil_session.rig


def _require(hil: HilSession, capability: str) -> None:
    missing = hil.spec.missing([capability])
    if missing:
        pytest.skip(f"rig {hil.spec.name!r} lacks {capability} ({CAPABILITIES[capability]})")


@pytest.fixture()
def dcc(gbhil_session: HilSession, rig: Any) -> DccClient:
    """The DCC: ``dcc.submit(request)`` then ``await_ack/response/alerts`` by RequestID.

    The official DUIS XSD is read at run time and never shipped with gbhil; without it
    the DCC emulator cannot validate, so DCC tests skip saying where to point gbhil.
    """
    from gbhil.duis.schema import SchemaNotFoundError

    _require(gbhil_session, "dcc")
    del rig
    try:
        return gbhil_session.dcc
    except SchemaNotFoundError as exc:
        pytest.skip(f"DCC emulator unavailable: {exc}")


@pytest.fixture()
def clock(gbhil_session: HilSession, rig: Any) -> VirtualClock:
    """The rig's clock: ``now()``, ``sleep(s)`` and ``settle()`` drive the whole rig."""
    del gbhil_session
    return VirtualClock(rig)


@pytest.fixture()
def han(gbhil_session: HilSession, rig: Any) -> HanView:
    """The HAN: medium, hub, and ``frames`` transmitted during this test."""
    return HanView(rig, gbhil_session.frames)


@pytest.fixture()
def psu(gbhil_session: HilSession, rig: Any) -> Mains:
    """The mains feed of the Comms Hub and ESME: ``off()``, ``on()``, ``cut(seconds)``."""
    _require(gbhil_session, "psu")
    return Mains(rig, gbhil_session.transcript)


@pytest.fixture()
def hht(gbhil_session: HilSession, rig: Any) -> Hht:
    """The hand-held terminal: ``deliver(command)`` over the HAN."""
    _require(gbhil_session, "hht")
    return Hht(rig, gbhil_session.transcript)


def _device(hil: HilSession, rig: Any, role: str) -> Any:
    _require(hil, role)
    return getattr(rig, role)


@pytest.fixture()
def chf(gbhil_session: HilSession, rig: Any) -> Any:
    """The Communications Hub Function (device object: ``eui``, ``events``...)."""
    return _device(gbhil_session, rig, "chf")


@pytest.fixture()
def gpf(gbhil_session: HilSession, rig: Any) -> Any:
    """The Gas Proxy Function."""
    return _device(gbhil_session, rig, "gpf")


@pytest.fixture()
def esme(gbhil_session: HilSession, rig: Any) -> Any:
    """The electricity meter."""
    return _device(gbhil_session, rig, "esme")


@pytest.fixture()
def gsme(gbhil_session: HilSession, rig: Any) -> Any:
    """The gas meter (sleepy: commands wait for its wake cycle)."""
    return _device(gbhil_session, rig, "gsme")


@pytest.fixture()
def ppmid(gbhil_session: HilSession, rig: Any) -> Any:
    """The prepayment meter interface device."""
    return _device(gbhil_session, rig, "ppmid")
