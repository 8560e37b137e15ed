"""``gbhil rig check``: validate a rig file, then probe every resource it names.

A HIL suite that finds out ten seconds into its first test that the stick is
unplugged or the PSU is another model wastes a bench slot and blames the
device under test. :func:`check_rig` answers before anything runs, with one
:class:`CheckResult` per resource (the file, the PKI, the bus, each radio,
instrument and relay), each OK or carrying findings (:class:`Finding`): a
stable code and one sentence an operator can act on. It only reads: radios are
probed with :func:`~gbhil.han.ezsp.probe.probe_radio` (nothing is formed or
joined), instruments with :func:`~gbhil.rigs.instruments.probe.probe_psu`
(no output is switched), the broker gets one CONNECT.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import pyvisa

from gbhil.han.ezsp.emulator import EmulatorConfig, EmulatorError, EzspEmulator
from gbhil.han.ezsp.frames import CERTIFICATE_283K1_LEN, DEFAULT_EMULATED_VERSION, EMULATED_VERSIONS
from gbhil.han.ezsp.probe import ProbeProblem as RadioProbeProblem
from gbhil.han.ezsp.probe import ProbeResult as RadioProbeResult
from gbhil.han.ezsp.probe import RadioExpectation, probe_radio
from gbhil.han.medium import SimulatedMedium
from gbhil.rigs.instruments.probe import ProbeProblem as PsuProbeProblem
from gbhil.rigs.instruments.probe import probe_psu
from gbhil.rigs.instruments.scpi import catalogue_entry
from gbhil.rigs.rigfile import (
    DUAL_PHY,
    EZSP_NEWEST_KNOWN,
    BusKind,
    Instrument,
    PkiSource,
    Place,
    RadioDriver,
    Relay,
    RigFile,
    RigFileError,
    load_rig,
)
from gbhil.simulator.clock import create_clock
from gbhil.smki import KeyStore, SmkiError

# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------


class ResourceKind(StrEnum):
    """What a check result is about."""

    RIG_FILE = "rig-file"
    PKI = "pki"
    BUS = "bus"
    RADIO = "radio"
    INSTRUMENT = "instrument"
    RELAY = "relay"


class CheckProblem(StrEnum):
    """Stable codes of everything ``rig check`` can find wrong (docs/rigs.md lists them)."""

    INVALID_RIG_FILE = "invalid-rig-file"
    MISSING_PORT = "missing-port"
    PORT_UNUSABLE = "port-unusable"
    WRONG_FIRMWARE = "wrong-firmware"
    RADIO_NOT_ANSWERING = "radio-not-answering"
    UNSUPPORTED_BAND = "unsupported-band"
    NO_CBKE_CERTIFICATE = "no-cbke-certificate"
    WRONG_RADIO = "wrong-radio"
    EMULATOR_FAILED = "emulator-failed"
    VISA_BACKEND = "visa-backend-unavailable"
    INSTRUMENT_MISSING = "instrument-missing"
    INSTRUMENT_NOT_ANSWERING = "instrument-not-answering"
    UNKNOWN_INSTRUMENT = "unknown-instrument"
    WRONG_IDENTITY = "wrong-identity"
    INSTRUMENT_BAD_REPLY = "instrument-bad-reply"
    INSTRUMENT_ERROR = "instrument-error"
    NO_SUCH_CHANNEL = "no-such-channel"
    INSTRUMENT_FAILED = "instrument-failed"
    BROKER_UNREACHABLE = "broker-unreachable"
    PKI_UNLOADABLE = "pki-unloadable"
    PKI_INCOMPLETE = "pki-incomplete"


#: What each radio probe problem means for the rig.
RADIO_PROBLEMS: Final[Mapping[RadioProbeProblem, CheckProblem]] = {
    RadioProbeProblem.PORT_MISSING: CheckProblem.MISSING_PORT,
    RadioProbeProblem.PORT_UNUSABLE: CheckProblem.PORT_UNUSABLE,
    RadioProbeProblem.NOT_EZSP: CheckProblem.WRONG_FIRMWARE,
    RadioProbeProblem.NO_EZSP_RESPONSE: CheckProblem.RADIO_NOT_ANSWERING,
    RadioProbeProblem.EZSP_TOO_OLD: CheckProblem.WRONG_FIRMWARE,
    RadioProbeProblem.STACK_TOO_OLD: CheckProblem.WRONG_FIRMWARE,
    RadioProbeProblem.SUB_GHZ_UNSUPPORTED: CheckProblem.UNSUPPORTED_BAND,
    RadioProbeProblem.NO_CBKE_CERTIFICATE: CheckProblem.NO_CBKE_CERTIFICATE,
}
#: What each instrument probe problem means for the rig.
INSTRUMENT_PROBLEMS: Final[Mapping[PsuProbeProblem, CheckProblem]] = {
    PsuProbeProblem.RESOURCE_MISSING: CheckProblem.INSTRUMENT_MISSING,
    PsuProbeProblem.NOT_ANSWERING: CheckProblem.INSTRUMENT_NOT_ANSWERING,
    PsuProbeProblem.UNKNOWN_MODEL: CheckProblem.UNKNOWN_INSTRUMENT,
    PsuProbeProblem.WRONG_IDENTITY: CheckProblem.WRONG_IDENTITY,
    PsuProbeProblem.BAD_REPLY: CheckProblem.INSTRUMENT_BAD_REPLY,
    PsuProbeProblem.INSTRUMENT_ERROR: CheckProblem.INSTRUMENT_ERROR,
}

#: EUI-64 of an emulated NCP whose rig file gives the radio none.
DEFAULT_EMULATOR_EUI: Final = bytes.fromhex("00DB123456789EEE")
#: The emulator's stand-in Smart Energy certificate: 74 fixed, non-blank bytes. Not a valid
#: sect283k1 certificate; the probe (like bellows) only asks whether one is installed.
EMULATOR_CERTIFICATE: Final = (hashlib.sha256(b"gbhil emulated CBKE certificate").digest() * 3)[
    :CERTIFICATE_283K1_LEN
]
#: One MQTT CONNECT: how long the broker has to answer, and the keep-alive asked for (paho
#: also bounds its blocking socket connect by the keep-alive).
BROKER_TIMEOUT_S: Final = 5.0
BROKER_KEEPALIVE_S: Final = 5


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One problem with a resource: a stable code and the sentence that explains it."""

    code: CheckProblem
    message: str

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one resource; ``ok`` when it has no findings."""

    kind: ResourceKind
    name: str
    summary: str
    problems: tuple[Finding, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        """``radio bench``: how the result is named in the report."""
        if self.kind in (ResourceKind.RIG_FILE, ResourceKind.PKI, ResourceKind.BUS):
            return self.kind.value
        return f"{self.kind.value} {self.name}"

    def has(self, code: CheckProblem) -> bool:
        return any(f.code is code for f in self.problems)

    def __str__(self) -> str:
        lines = [f"{'OK' if self.ok else 'FAIL':<5} {self.label:<22} {self.summary}"]
        lines += [f"{'':<5}   {finding}" for finding in self.problems]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "ok": self.ok,
            "summary": self.summary,
            "problems": [f.to_dict() for f in self.problems],
            "details": dict(self.details),
        }


def _fail(kind: ResourceKind, name: str, summary: str, code: CheckProblem, message: str) -> Any:
    return CheckResult(kind, name, summary, (Finding(code, message),))


# ---------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------


def check_rig(rigfile: RigFile | str | Path, *, bus_url: str | None = None) -> list[CheckResult]:
    """Validate ``rigfile`` and probe every resource; see the module docstring.

    Runs its own event loop; from async code use :func:`check_rig_async`.
    """
    return asyncio.run(check_rig_async(rigfile, bus_url=bus_url))


async def check_rig_async(
    rigfile: RigFile | str | Path, *, bus_url: str | None = None
) -> list[CheckResult]:
    """:func:`check_rig` for callers that already run an event loop.

    ``bus_url`` (else $GBHIL_BUS_URL) replaces an MQTT rig's broker, as ``gbhil run`` does.
    """
    if isinstance(rigfile, RigFile):
        rig = rigfile
    else:
        try:
            rig = load_rig(rigfile)
        except RigFileError as exc:
            return [
                _fail(
                    ResourceKind.RIG_FILE,
                    str(rigfile),
                    str(rigfile),
                    CheckProblem.INVALID_RIG_FILE,
                    str(p),
                )
                for p in exc.problems
            ]
    results = [_rig_file_result(rig), _check_pki(rig), await _check_bus(rig, bus_url)]
    for place in rig.places:
        results.append(await _check_radio(rig, place))
    instrument_results = _check_instruments(rig)
    results += instrument_results.values()
    results += [_check_relay(rig, relay, instrument_results) for relay in rig.relays]
    return results


def _rig_file_result(rig: RigFile) -> CheckResult:
    real = sum(not d.simulated for d in rig.devices)
    counts = [
        _count(len(rig.places), "place"),
        _count(len(rig.instruments), "instrument"),
        _count(len(rig.relays), "relay"),
        _count(len(rig.devices), "device") + (f" ({real} real)" if real else ""),
    ]
    where = str(rig.path) if rig.path is not None else rig.name
    return CheckResult(ResourceKind.RIG_FILE, rig.name, f"{where}: " + ", ".join(counts))


def _count(n: int, what: str, plural: str | None = None) -> str:
    return f"{n} {what if n == 1 else plural or what + 's'}"


# -- PKI -------------------------------------------------------------------------------


def _check_pki(rig: RigFile) -> CheckResult:
    """A generated PKI is made at start; a PKI on disk must load and hold the rig's EUIs."""
    pki = rig.pki
    kind = ResourceKind.PKI
    if pki.source is PkiSource.GENERATED:
        parties = _count(len(pki.parties), "party", "parties")
        summary = f"{pki.describe()} at start: {parties}, {_count(len(rig.devices), 'device')}"
        return CheckResult(kind, "pki", summary)
    path = rig.pki_path
    assert path is not None
    try:
        store = (
            KeyStore.from_zaz1_json(path) if pki.source is PkiSource.ZAZ1 else KeyStore.load(path)
        )
    except (SmkiError, OSError, ValueError) as exc:
        return _fail(
            kind,
            "pki",
            str(path),
            CheckProblem.PKI_UNLOADABLE,
            f"cannot load the {pki.source.value} PKI: {exc}",
        )
    missing: list[str] = []
    for name, eui in pki.parties.items():
        if eui not in store:
            missing.append(f"party {name} ({eui.hex().upper()}) has no certificate")
    for device in rig.devices:
        eui = device.eui
        if device.simulated and (store.ds_private(eui) is None or store.ka_private(eui) is None):
            missing.append(f"simulated {device.name} ({eui.hex().upper()}) lacks its private keys")
        elif not device.simulated and eui not in store:
            missing.append(f"real {device.name} ({eui.hex().upper()}) has no certificate")
    summary = f"{pki.source.value} {path}: {len(store)} entries"
    problems = tuple(Finding(CheckProblem.PKI_INCOMPLETE, m) for m in missing)
    return CheckResult(kind, "pki", summary, problems, {"entries": len(store)})


# -- bus -------------------------------------------------------------------------------


async def _check_bus(rig: RigFile, override: str | None = None) -> CheckResult:
    """An MQTT bus needs a broker that accepts a connection now."""
    bus = rig.bus
    kind = ResourceKind.BUS
    if bus.kind is BusKind.IN_PROCESS:
        return CheckResult(kind, "bus", "in-process")
    import aiomqtt  # only rigs with a broker pay for the import

    from gbhil.rigs.build import RigBuildError, bus_address

    try:
        address = bus_address(rig, override)
    except RigBuildError as exc:
        finding = Finding(CheckProblem.BROKER_UNREACHABLE, str(exc))
        return CheckResult(kind, "bus", override or bus.url, (finding,), {})
    host, port, url = address.host, address.port, str(address)
    details = {"host": host, "port": port}
    try:
        async with asyncio.timeout(BROKER_TIMEOUT_S):
            async with aiomqtt.Client(
                host,
                port,
                identifier=f"gbhil-rig-check-{os.getpid()}",
                timeout=BROKER_TIMEOUT_S,
                keepalive=BROKER_KEEPALIVE_S,
            ):
                pass
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {BROKER_TIMEOUT_S:g} s"
        finding = Finding(
            CheckProblem.BROKER_UNREACHABLE,
            f"MQTT broker {host}:{port} not reachable: {reason} (is Mosquitto running?)",
        )
        return CheckResult(kind, "bus", url, (finding,), details)
    return CheckResult(kind, "bus", f"{url}: broker accepted a connection", (), details)


# -- radios ----------------------------------------------------------------------------


def radio_expectation(rig: RigFile, place: Place) -> RadioExpectation:
    """What the rig needs of a place's NCP: versions, the bands it configures, CBKE."""
    radio = place.radio
    return RadioExpectation(
        min_protocol_version=radio.ezsp_versions[0],
        min_stack_version=radio.stack_min,
        sub_ghz=radio.has_sub_ghz,
        cbke_certificate=rig.needs_cbke(place),
    )


def emulator_config(rig: RigFile, place: Place) -> EmulatorConfig:
    """The stick an ``emulated = true`` radio stands for; unset settings follow the rig."""
    radio = place.radio
    settings = radio.emulator
    assert settings is not None
    low, high = radio.ezsp_versions
    in_range = sorted(v for v in EMULATED_VERSIONS if low <= v <= high)
    protocol = settings.protocol_version or (in_range[0] if in_range else DEFAULT_EMULATED_VERSION)
    phys = settings.phy_interfaces or (DUAL_PHY if radio.has_sub_ghz else 1)
    certificate = settings.cbke_certificate
    if certificate is None:
        certificate = rig.needs_cbke(place)
    extra: dict[str, Any] = {}
    if settings.stack_version is not None:
        extra["stack_version"] = settings.stack_version
    if radio.sub_ghz is not None:
        extra.update(sub_ghz_page=radio.sub_ghz.page, sub_ghz_channel=radio.sub_ghz.first_channel)
    return EmulatorConfig(
        radio.eui or DEFAULT_EMULATOR_EUI,
        protocol_version=protocol,
        phy_interfaces=phys,
        certificate_283k1=EMULATOR_CERTIFICATE if certificate else None,
        initial_channel=radio.band.first_channel,
        **extra,
    )


async def _check_radio(rig: RigFile, place: Place) -> CheckResult:
    radio = place.radio
    kind = ResourceKind.RADIO
    if radio.driver is RadioDriver.SIMULATED:
        return CheckResult(kind, place.name, radio.describe())
    expected = radio_expectation(rig, place)
    if not radio.emulated:
        assert radio.port is not None
        result = await probe_radio(
            radio.port, expected, baudrate=radio.baudrate, flow_control=radio.flow_control
        )
        return _radio_result(place, result, radio.port)
    try:
        config = emulator_config(rig, place)
        medium = SimulatedMedium(create_clock("real-time"))
        async with EzspEmulator(medium, config) as emulator:
            result = await probe_radio(emulator.port, expected)
            where = f"EZSP emulator on {emulator.port}"
    except EmulatorError as exc:
        return _fail(
            kind,
            place.name,
            "EZSP emulator",
            CheckProblem.EMULATOR_FAILED,
            f"the EZSP emulator could not start: {exc}",
        )
    return _radio_result(place, result, where)


def _radio_result(place: Place, result: RadioProbeResult, where: str) -> CheckResult:
    radio = place.radio
    problems = [Finding(RADIO_PROBLEMS[f.problem], f.message) for f in result.problems]
    low, high = radio.ezsp_versions
    version = result.protocol_version
    if version is not None and version > high:
        problems.append(
            Finding(
                CheckProblem.WRONG_FIRMWARE,
                f"NCP firmware speaks EZSP protocol {version}, newer than the rig file's "
                f"ezsp_versions {low}..{high} (bellows handles up to {EZSP_NEWEST_KNOWN})",
            )
        )
    if radio.eui is not None and result.eui64 is not None and result.eui64 != radio.eui:
        problems.append(
            Finding(
                CheckProblem.WRONG_RADIO,
                f"the NCP at {result.port} has EUI-64 {result.eui64.hex().upper()}, the rig file "
                f"expects {radio.eui.hex().upper()} (another stick on this port?)",
            )
        )
    summary = where
    if result.is_ezsp:
        found = [
            f"EZSP v{version}",
            f"EmberZNet {result.stack_version or '?'}",
            f"{result.manufacturer or '?'} / {result.board or '?'}",
        ]
        if result.eui64 is not None:
            found.append(f"EUI-64 {result.eui64.hex().upper()}")
        if result.phy_interfaces is not None:
            found.append(f"{result.phy_interfaces} PHY")
        if result.cbke_certificate:
            found.append("CBKE certificate")
        summary += ": " + ", ".join(found) + "; " + " + ".join(str(b) for b in radio.bands)
    details = {
        "port": result.port,
        "emulated": radio.emulated,
        "protocol_version": version,
        "stack_version": result.stack_version,
        "manufacturer": result.manufacturer,
        "board": result.board,
        "eui64": result.eui64.hex().upper() if result.eui64 is not None else None,
        "phy_interfaces": result.phy_interfaces,
        "cbke_certificate": result.cbke_certificate,
    }
    return CheckResult(ResourceKind.RADIO, place.name, summary, tuple(problems), details)


# -- instruments and relays ------------------------------------------------------------


def _check_instruments(rig: RigFile) -> dict[str, CheckResult]:
    """Probe each instrument, one ResourceManager per VISA backend (and sim file)."""
    results: dict[str, CheckResult] = {}
    managers: dict[str, pyvisa.ResourceManager | str] = {}
    with ExitStack() as stack:
        for instrument in rig.instruments:
            if instrument.simulated:
                results[instrument.name] = CheckResult(
                    ResourceKind.INSTRUMENT,
                    instrument.name,
                    f"gbhil behavioural PSU, {instrument.role.value} on channel "
                    f"{instrument.channel}",
                    details={"driver": instrument.driver, "role": instrument.role.value},
                )
                continue
            backend = _backend(rig, instrument)
            if backend not in managers:
                managers[backend] = _open_manager(backend)
                manager = managers[backend]
                if isinstance(manager, pyvisa.ResourceManager):
                    stack.callback(manager.close)
            results[instrument.name] = _check_instrument(instrument, managers[backend])
    return results


def _backend(rig: RigFile, instrument: Instrument) -> str:
    """The pyvisa ``visa_library`` argument: ``""`` (default), ``@py``, ``/path/psu.yaml@sim``."""
    definitions = rig.instrument_definitions(instrument)
    if definitions is not None:
        return f"{definitions}{instrument.backend}"
    return instrument.backend or ""


def _open_manager(backend: str) -> pyvisa.ResourceManager | str:
    """A ResourceManager, or why none could be opened (no VISA library, pyvisa-sim missing)."""
    try:
        return pyvisa.ResourceManager(backend)
    except (ValueError, OSError, pyvisa.errors.Error) as exc:
        return str(exc) or type(exc).__name__


def _check_instrument(instrument: Instrument, manager: pyvisa.ResourceManager | str) -> CheckResult:
    kind = ResourceKind.INSTRUMENT
    resource = instrument.resource or ""
    if isinstance(manager, str):
        backend = instrument.backend or "the default VISA library"
        return _fail(
            kind,
            instrument.name,
            resource,
            CheckProblem.VISA_BACKEND,
            f"cannot open VISA backend {backend}: {manager}",
        )
    probe = probe_psu(
        resource,
        manager,
        expected_model=instrument.model,
        expected_serial=instrument.serial,
        write_termination=instrument.write_termination,
        timeout_ms=instrument.timeout_ms,
    )
    details: dict[str, Any] = {
        "resource": resource,
        "driver": probe.driver,
        "identity": probe.identity.raw if probe.identity is not None else None,
        "role": instrument.role.value,
        "channel": instrument.channel,
    }
    if not probe.ok:
        code = CheckProblem.INSTRUMENT_ERROR
        if probe.kind is not None:
            code = INSTRUMENT_PROBLEMS[probe.kind]
        return CheckResult(
            kind,
            instrument.name,
            resource,
            (Finding(code, probe.problem or "probe failed"),),
            details,
        )
    problems: list[Finding] = []
    pinned = instrument.driver
    if pinned not in ("auto", probe.driver):
        problems.append(
            Finding(
                CheckProblem.WRONG_IDENTITY,
                f"{resource}: the rig file says driver {pinned!r}, but the instrument is "
                f"{probe.identity} (driver {probe.driver!r})",
            )
        )
    spec = catalogue_entry(probe.driver).spec if probe.driver else None
    channel_name = "?"
    if spec is not None:
        if instrument.channel in spec.channels:
            channel_name = spec.channels[instrument.channel].name
        else:
            problems.append(
                Finding(
                    CheckProblem.NO_SUCH_CHANNEL,
                    f"{spec.name} has no channel {instrument.channel} for its "
                    f"{instrument.role.value} output (channels: "
                    + ", ".join(map(str, spec.channel_numbers))
                    + ")",
                )
            )
    summary = (
        f"{resource}: {probe.identity}, driver {probe.driver}, "
        f"{instrument.role.value} on channel {instrument.channel} ({channel_name})"
    )
    return CheckResult(kind, instrument.name, summary, tuple(problems), details)


def _check_relay(rig: RigFile, relay: Relay, instruments: Mapping[str, CheckResult]) -> CheckResult:
    kind = ResourceKind.RELAY
    summary = f"{relay.instrument} channel {relay.channel}"
    behind = instruments.get(relay.instrument)
    if behind is None or not behind.ok:
        return _fail(
            kind,
            relay.name,
            summary,
            CheckProblem.INSTRUMENT_FAILED,
            f"instrument {relay.instrument!r} failed its check (see above)",
        )
    driver = behind.details.get("driver")
    if driver is None:  # the behavioural model: rejected by validation, kept for safety
        return CheckResult(kind, relay.name, summary)
    spec = catalogue_entry(str(driver)).spec
    if relay.channel not in spec.channels:
        return _fail(
            kind,
            relay.name,
            summary,
            CheckProblem.NO_SUCH_CHANNEL,
            f"{spec.name} ({relay.instrument}) has no channel {relay.channel} "
            f"(channels: {', '.join(map(str, spec.channel_numbers))})",
        )
    users = [d.name for d in rig.devices if d.relay == relay.name]
    summary += f" ({spec.channels[relay.channel].name})"
    if users:
        summary += " feeds " + ", ".join(users)
    return CheckResult(
        kind, relay.name, summary, (), {"instrument": relay.instrument, "channel": relay.channel}
    )


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------


def report_text(results: list[CheckResult]) -> str:
    """The human report: one line per resource, one more per problem, then a verdict."""
    lines = [str(r) for r in results]
    failed = sum(not r.ok for r in results)
    verdict = "all OK" if not failed else f"{failed} failed"
    lines.append(f"{_count(len(results), 'check')}: {verdict}")
    return "\n".join(lines)


def report_json(rigfile: str | Path, results: list[CheckResult]) -> dict[str, Any]:
    """The ``--json`` document: the verdict and every result."""
    rig = next((r.name for r in results if r.kind is ResourceKind.RIG_FILE and r.ok), None)
    return {
        "rig": rig,
        "file": str(rigfile),
        "ok": all(r.ok for r in results),
        "checks": [r.to_dict() for r in results],
    }


__all__ = [
    "BROKER_TIMEOUT_S",
    "DEFAULT_EMULATOR_EUI",
    "EMULATOR_CERTIFICATE",
    "INSTRUMENT_PROBLEMS",
    "RADIO_PROBLEMS",
    "CheckProblem",
    "CheckResult",
    "Finding",
    "ResourceKind",
    "check_rig",
    "check_rig_async",
    "emulator_config",
    "radio_expectation",
    "report_json",
    "report_text",
]
