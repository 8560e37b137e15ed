"""Drivers for real bench supplies over pyvisa, and the catalogue that picks them.

Each driver speaks one command set, written as a table of templates rather
than scattered literals:

* :class:`ScpiPsu`: plain SCPI-99 (``VOLT``, ``CURR``, ``OUTP``,
  ``MEAS:VOLT?``, ``MEAS:CURR?``, ``SYST:ERR?``);
* :class:`RigolDP800`: Rigol DP800 (``:SOURn:VOLT``, ``:OUTP CHn,ON``,
  ``:MEAS:VOLT? CHn``), channel named in each command;
* :class:`KeysightE36xx`: Agilent/Keysight E36xx (``INST:NSEL n`` then plain
  SCPI on the selected output);
* :class:`KoradKA`: Korad KAxxxxP and its rebrands (Tenma, Velleman, RND), a
  non-SCPI ASCII protocol without terminators (``VSET1:``, ``OUT1``, ``VOUT1?``).

:data:`CATALOGUE` maps the manufacturer and model of an ``*IDN?`` reply to a
driver and the model's ranges (taken from the programming manuals, see
docs/instruments.md); :func:`open_psu` opens a VISA resource, identifies it
and returns the right driver. Every VISA failure becomes a
:class:`~gbhil.rigs.instruments.psu.PsuError`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import ClassVar, Final, TypeVar

import pyvisa
from pyvisa import constants
from pyvisa.resources import MessageBasedResource, SerialInstrument

from .psu import (
    ChannelSpec,
    Identity,
    ModelSpec,
    PsuIdentityError,
    PsuInstrumentError,
    PsuNotAnswering,
    PsuProtocol,
    PsuReplyError,
    PsuResourceMissing,
    PsuUnknownModel,
    Range,
    check_switch,
)

T = TypeVar("T")

#: Quiet time (ms) that ends an unterminated reply (Korad) when its length is unknown.
REPLY_GAP_MS: Final = 100
#: Longest ``*IDN?`` reply read before giving up on a terminator.
MAX_IDN_LENGTH: Final = 256
#: Error-queue entries read after one command at most (bounds the loop should an
#: instrument keep reporting errors).
MAX_QUEUED_ERRORS: Final = 16
#: SCPI-99 reports +/-infinity as +/-9.9E37 and not-a-number as 9.91E37: no reading.
SCPI_NAN_THRESHOLD: Final = 9.9e37

#: What may pad a reply: terminators and blanks, nothing else (no control characters).
_PADDING: Final = " \t\r\n"
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_SWITCH: Final = {"1": True, "ON": True, "0": False, "OFF": False}
_SCPI_ERROR = re.compile(r'\s*([+-]?\d+)\s*(?:,\s*"?(.*?)"?)?\s*', re.ASCII | re.DOTALL)
# Korad-family identification: "KORADKA3005PV2.0", "KORAD KA3005P V5.8 SN:03379314",
# "TENMA 72-2540 V2.1", "VELLEMANLABPS3005DV2.0".
_KORAD_IDN = re.compile(
    r"(?P<manufacturer>[A-Z]+?)\s*"
    r"(?P<model>(?:320-)?K[AD]\d{4}P|72-\d{4}|(?:LAB)?PS\d{4}D)\s*"
    r"(?:V(?P<firmware>\d+(?:\.\d+)*))?\s*(?:SN:\s*(?P<serial>\S+))?",
    re.IGNORECASE | re.ASCII,
)


# ---------------------------------------------------------------------------
# Reply parsing (pure functions: every reply goes through one of these)
# ---------------------------------------------------------------------------


def parse_number(reply: str, what: str = "value") -> float:
    """A finite number in SCPI NR1/NR2/NR3 form (``5``, ``5.000``, ``+5.0E+00``).

    Anything else, including SCPI's 9.91E37 "not a number", is a
    :class:`PsuReplyError` quoting the reply.
    """
    text = reply.strip(_PADDING)
    if not _NUMBER.fullmatch(text):
        raise PsuReplyError(f"{what}: expected a number, got {reply!r}")
    value = float(text)
    if abs(value) >= SCPI_NAN_THRESHOLD:  # also catches overflow to inf
        raise PsuReplyError(f"{what}: instrument returned SCPI not-a-number/overflow {reply!r}")
    return value


def parse_switch(reply: str, what: str = "state") -> bool:
    """An on/off state: ``1``/``0`` (SCPI boolean) or ``ON``/``OFF`` (Rigol)."""
    try:
        return _SWITCH[reply.strip(_PADDING).upper()]
    except KeyError:
        raise PsuReplyError(f"{what}: expected 1, 0, ON or OFF, got {reply!r}") from None


def parse_scpi_error(reply: str) -> tuple[int, str]:
    """``SYST:ERR?`` reply ``-222,"Data out of range"`` as ``(-222, "Data out of range")``."""
    match = _SCPI_ERROR.fullmatch(reply)
    if match is None:
        raise PsuReplyError(f"error queue: expected '<code>,\"<message>\"', got {reply!r}")
    return int(match.group(1)), match.group(2) or ""


def parse_idn(reply: str) -> Identity:
    """An ``*IDN?`` reply: IEEE 488.2 comma-separated fields, or the Korad-family form."""
    text = reply.strip(_PADDING)
    if text.count(",") >= 1:
        fields = [f.strip() for f in text.split(",")]
        fields += [""] * (4 - len(fields))
        if fields[0] and fields[1]:
            return Identity(fields[0], fields[1], fields[2], ",".join(fields[3:]), raw=text)
    else:
        match = _KORAD_IDN.fullmatch(text)
        if match is not None:
            return Identity(
                manufacturer=match["manufacturer"].upper(),
                model=match["model"].upper(),
                serial=match["serial"] or "",
                firmware=match["firmware"] or "",
                raw=text,
            )
    raise PsuReplyError(f"*IDN?: cannot tell manufacturer and model from {reply!r}")


# ---------------------------------------------------------------------------
# VISA plumbing
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Transport:
    """How messages are framed on the wire for one command set."""

    write_termination: str = "\n"
    read_termination: str | None = "\n"
    timeout_ms: int = 2000
    baud_rate: int | None = None  #: applied to serial (ASRL) resources only


def _guard(where: str, what: str, action: Callable[[], T], timeout_ms: object = None) -> T:
    """Run one VISA call; turn every pyvisa/OS failure into a PsuError naming ``what``."""
    try:
        return action()
    except pyvisa.errors.VisaIOError as exc:
        if exc.error_code == constants.StatusCode.error_timeout:
            raise PsuNotAnswering(f"{where}: no answer to {what} within {timeout_ms} ms") from exc
        raise PsuNotAnswering(f"{where}: VISA error on {what}: {exc.abbreviation}") from exc
    except pyvisa.errors.InvalidSession as exc:
        raise PsuNotAnswering(f"{where}: VISA session closed ({what})") from exc
    except (pyvisa.errors.Error, OSError) as exc:
        raise PsuNotAnswering(f"{where}: link failed on {what}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise PsuReplyError(f"{where}: reply to {what} is not ASCII text") from exc


def read_reply(
    resource: MessageBasedResource,
    *,
    terminator: bytes | None,
    gap_ms: int = REPLY_GAP_MS,
    limit: int = MAX_IDN_LENGTH,
) -> bytes:
    """Read one reply byte by byte: up to ``terminator``, or until the line goes quiet.

    Used where the framing is not known yet (identification) or has no
    terminator (Korad): the first byte may take the resource's timeout, each
    next one at most ``gap_ms``.
    """
    out = bytearray()
    saved = resource.timeout
    try:
        while len(out) < limit:
            try:
                out += resource.read_bytes(1)
            except pyvisa.errors.VisaIOError as exc:
                if out and exc.error_code == constants.StatusCode.error_timeout:
                    break
                raise
            if terminator and out.endswith(terminator):
                del out[-len(terminator) :]
                break
            resource.timeout = gap_ms
    finally:
        resource.timeout = saved
    return bytes(out)


class VisaPsu(PsuProtocol):
    """A PSU driver bound to one open VISA resource (labgrid: driver bound to resource)."""

    TRANSPORT: ClassVar[Transport] = Transport()

    def __init__(
        self,
        resource: MessageBasedResource,
        spec: ModelSpec,
        *,
        transport: Transport | None = None,
    ) -> None:
        self._resource = resource
        self._spec = spec
        self.transport = transport or self.TRANSPORT
        self.catalogue_key: str | None = None  #: set by :func:`open_psu`
        self._resource_name = str(getattr(resource, "resource_name", resource))

        def configure() -> None:
            resource.write_termination = self.transport.write_termination
            resource.read_termination = self.transport.read_termination
            resource.timeout = self.transport.timeout_ms
            if self.transport.baud_rate is not None and isinstance(resource, SerialInstrument):
                resource.baud_rate = self.transport.baud_rate

        _guard(str(self), "configuring the VISA session", configure)

    @property
    def spec(self) -> ModelSpec:
        return self._spec

    @property
    def resource_name(self) -> str:
        """The VISA resource this driver talks to."""
        return self._resource_name

    def __str__(self) -> str:
        return f"{self._spec.name} at {self._resource_name}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"

    def __enter__(self) -> VisaPsu:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the VISA session (the instrument keeps its state)."""
        # Already closed, or the link is gone: nothing left to release.
        with contextlib.suppress(pyvisa.errors.Error, OSError):
            self._resource.close()

    def clear_errors(self) -> None:
        """Start from an empty error queue, where the command set has one."""

    # -- I/O ---------------------------------------------------------------
    def _io(self, what: str, action: Callable[[], T]) -> T:
        return _guard(str(self), what, action, self.transport.timeout_ms)

    def _write(self, command: str) -> None:
        self._io(repr(command), lambda: self._resource.write(command))

    def _query(self, command: str) -> str:
        return self._io(repr(command), lambda: self._resource.query(command))


# ---------------------------------------------------------------------------
# SCPI supplies
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScpiCommands:
    """One SCPI dialect's templates; fields: ``{channel}`` (number), ``{name}``
    (the manual's channel name), ``{value}``, ``{state}``."""

    set_voltage: str = "VOLT {value}"
    set_current: str = "CURR {value}"
    set_output: str = "OUTP {state}"
    output_query: str = "OUTP?"
    measure_voltage: str = "MEAS:VOLT?"
    measure_current: str = "MEAS:CURR?"
    on: str = "1"
    off: str = "0"
    #: sent before per-channel commands on multi-output supplies with a selected output
    select: str | None = None
    error_query: str | None = "SYST:ERR?"
    clear_status: str | None = "*CLS"
    identify: str = "*IDN?"
    value_format: str = "{:.4f}"


class ScpiPsu(VisaPsu):
    """Generic SCPI-99 supply: ``VOLT``/``CURR``/``OUTP`` and ``MEAS:*?``.

    After each setting command the error queue is read (``check_errors``),
    so a value the instrument refuses surfaces as :class:`PsuInstrumentError`
    at the command that caused it rather than as a wrong reading later.
    """

    COMMANDS: ClassVar[ScpiCommands] = ScpiCommands()

    def __init__(
        self,
        resource: MessageBasedResource,
        spec: ModelSpec,
        *,
        transport: Transport | None = None,
        check_errors: bool = True,
    ) -> None:
        super().__init__(resource, spec, transport=transport)
        self.check_errors = check_errors

    def clear_errors(self) -> None:
        if self.COMMANDS.clear_status:
            self._write(self.COMMANDS.clear_status)

    def identify(self) -> Identity:
        return parse_idn(self._query(self.COMMANDS.identify))

    def set_output(self, on: bool, channel: int = 1) -> None:
        self.spec.channel(channel)
        state = self.COMMANDS.on if check_switch(on) else self.COMMANDS.off
        self._command(
            channel, self.COMMANDS.set_output, selected=not self.spec.ganged_output, state=state
        )

    def output_enabled(self, channel: int = 1) -> bool:
        self.spec.channel(channel)
        reply = self._channel_query(
            channel, self.COMMANDS.output_query, selected=not self.spec.ganged_output
        )
        return parse_switch(reply, f"{self} channel {channel} output state")

    def set_voltage(self, volts: float, channel: int = 1) -> None:
        value = self.spec.check_voltage(channel, volts)
        self._command(channel, self.COMMANDS.set_voltage, value=self._format(value))

    def set_current_limit(self, amps: float, channel: int = 1) -> None:
        value = self.spec.check_current(channel, amps)
        self._command(channel, self.COMMANDS.set_current, value=self._format(value))

    def measure_voltage(self, channel: int = 1) -> float:
        self.spec.channel(channel)
        reply = self._channel_query(channel, self.COMMANDS.measure_voltage)
        return parse_number(reply, f"{self} channel {channel} voltage")

    def measure_current(self, channel: int = 1) -> float:
        self.spec.channel(channel)
        reply = self._channel_query(channel, self.COMMANDS.measure_current)
        return parse_number(reply, f"{self} channel {channel} current")

    # -- helpers -----------------------------------------------------------
    def _format(self, value: float) -> str:
        return self.COMMANDS.value_format.format(value)

    def _render(self, channel: int, template: str, **fields: str) -> str:
        return template.format(channel=channel, name=self.spec.channel(channel).name, **fields)

    def _select(self, channel: int, selected: bool) -> list[str]:
        if not selected or self.COMMANDS.select is None or len(self.spec.channels) == 1:
            return []
        return [self._render(channel, self.COMMANDS.select)]

    def _command(
        self, channel: int, template: str, *, selected: bool = True, **fields: str
    ) -> None:
        commands = [*self._select(channel, selected), self._render(channel, template, **fields)]
        for command in commands:
            self._write(command)
        if self.check_errors:
            self._raise_queued_errors(commands[-1])

    def _channel_query(self, channel: int, template: str, *, selected: bool = True) -> str:
        for command in self._select(channel, selected):
            self._write(command)
        return self._query(self._render(channel, template))

    def _raise_queued_errors(self, after: str) -> None:
        query = self.COMMANDS.error_query
        if query is None:
            return
        errors: list[tuple[int, str]] = []
        for _ in range(MAX_QUEUED_ERRORS):
            code, message = parse_scpi_error(self._query(query))
            if code == 0:
                break
            errors.append((code, message))
        if errors:
            code, message = errors[0]
            listed = "; ".join(f"{c} {m}" for c, m in errors)
            text = f"{self}: instrument refused {after!r}: {listed}"
            raise PsuInstrumentError(text, code, message)


class RigolDP800(ScpiPsu):
    """Rigol DP800 series (DP800 Programming Guide): channel given in every command."""

    COMMANDS: ClassVar[ScpiCommands] = ScpiCommands(
        set_voltage=":SOUR{channel}:VOLT {value}",
        set_current=":SOUR{channel}:CURR {value}",
        set_output=":OUTP CH{channel},{state}",
        output_query=":OUTP? CH{channel}",
        measure_voltage=":MEAS:VOLT? CH{channel}",
        measure_current=":MEAS:CURR? CH{channel}",
        on="ON",
        off="OFF",
        error_query=":SYST:ERR?",
    )


class KeysightE36xx(ScpiPsu):
    """Agilent/Keysight E36xx: ``INST:NSEL n`` selects the output the next commands act on.

    On ganged models (E3631A) ``OUTP`` switches all outputs at once; on the
    E36300 series it switches the selected output only.
    """

    COMMANDS: ClassVar[ScpiCommands] = ScpiCommands(select="INST:NSEL {channel}")


# ---------------------------------------------------------------------------
# Korad KAxxxxP family (not SCPI)
# ---------------------------------------------------------------------------


class KoradKA(VisaPsu):
    """Korad KAxxxxP and rebrands: ASCII commands and replies with no terminator.

    Numeric replies are fixed-width (``12.34`` volts, ``0.125`` amps, sigrok
    wiki "Korad KAxxxxP series"); ``STATUS?`` is one byte with bit 0x40 set
    while the output is on. The protocol has no error queue, so ranges are
    enforced here only.
    """

    TRANSPORT: ClassVar[Transport] = Transport(
        write_termination="", read_termination=None, timeout_ms=500, baud_rate=9600
    )
    VALUE_WIDTH: ClassVar[int] = 5
    STATUS_OUTPUT_ON: ClassVar[int] = 0x40
    VOLTAGE_FORMAT: ClassVar[str] = "{:05.2f}"  # 10 mV resolution
    CURRENT_FORMAT: ClassVar[str] = "{:05.3f}"  # 1 mA resolution

    def identify(self) -> Identity:
        self._write("*IDN?")
        raw = self._io("'*IDN?'", lambda: read_reply(self._resource, terminator=None))
        return parse_idn(raw.decode("ascii", errors="replace"))

    def set_output(self, on: bool, channel: int = 1) -> None:
        self.spec.channel(channel)
        self._write("OUT1" if check_switch(on) else "OUT0")

    def output_enabled(self, channel: int = 1) -> bool:
        self.spec.channel(channel)
        self._write("STATUS?")
        status = self._io("'STATUS?'", lambda: self._resource.read_bytes(1))
        return bool(status[0] & self.STATUS_OUTPUT_ON)

    def set_voltage(self, volts: float, channel: int = 1) -> None:
        value = self.spec.check_voltage(channel, volts)
        self._write(f"VSET{channel}:" + self.VOLTAGE_FORMAT.format(value))

    def set_current_limit(self, amps: float, channel: int = 1) -> None:
        value = self.spec.check_current(channel, amps)
        self._write(f"ISET{channel}:" + self.CURRENT_FORMAT.format(value))

    def measure_voltage(self, channel: int = 1) -> float:
        self.spec.channel(channel)
        return self._value_query(f"VOUT{channel}?", f"channel {channel} voltage")

    def measure_current(self, channel: int = 1) -> float:
        self.spec.channel(channel)
        return self._value_query(f"IOUT{channel}?", f"channel {channel} current")

    def _value_query(self, command: str, what: str) -> float:
        self._write(command)
        raw = self._io(repr(command), lambda: self._resource.read_bytes(self.VALUE_WIDTH))
        return parse_number(raw.decode("ascii", errors="replace"), f"{self} {what}")


# ---------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """One supported model: how its ``*IDN?`` reads, which driver speaks it, its ranges."""

    key: str  #: stable name for rig files, e.g. "rigol-dp832"
    manufacturer: re.Pattern[str]  #: full-matched against Identity.manufacturer
    model: re.Pattern[str]  #: full-matched against Identity.model
    driver: type[VisaPsu]
    spec: ModelSpec

    def matches(self, identity: Identity) -> bool:
        """Whether ``identity`` is this model."""
        return bool(
            self.manufacturer.fullmatch(identity.manufacturer)
            and self.model.fullmatch(identity.model)
        )


def _ci(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _v(low: float, high: float) -> Range:
    return Range(low, high, "V")


def _a(high: float) -> Range:
    return Range(0.0, high, "A")


def _single(volts: float, amps: float) -> dict[int, ChannelSpec]:
    return {1: ChannelSpec("OUT", _v(0.0, volts), _a(amps))}


_RIGOL = _ci(r"RIGOL TECHNOLOGIES")
_KEYSIGHT = _ci(r"(?:KEYSIGHT|AGILENT) TECHNOLOGIES")
_E3631A_MAKERS = _ci(r"HEWLETT-PACKARD|(?:KEYSIGHT|AGILENT) TECHNOLOGIES")
_KORAD_MAKERS = _ci(r"KORAD|TENMA|VELLEMAN|RND")


def _korad(key: str, models: str, model: str, volts: float, amps: float) -> CatalogueEntry:
    spec = ModelSpec("Korad", model, _single(volts, amps))
    return CatalogueEntry(key, _KORAD_MAKERS, _ci(models), KoradKA, spec)


def _e361xx(model: str, volts: float, amps: float) -> CatalogueEntry:
    spec = ModelSpec("Keysight", model, _single(volts, amps))
    return CatalogueEntry(f"keysight-{model.lower()}", _KEYSIGHT, _ci(model), ScpiPsu, spec)


#: Supported models. Ranges are the programmable ranges from each programming
#: manual (Rigol DP800 guide :APPLy table; E3631A User's Guide Table 4-1), or the
#: rated output where the manual's programmable maximum was not checked.
# fmt: off
CATALOGUE: Final[tuple[CatalogueEntry, ...]] = (
    CatalogueEntry(
        "rigol-dp831", _RIGOL, _ci(r"DP831A?"), RigolDP800,
        ModelSpec("Rigol", "DP831", {
            1: ChannelSpec("CH1", _v(0.0, 8.4), _a(5.3)),
            2: ChannelSpec("CH2", _v(0.0, 32.0), _a(2.1)),
            3: ChannelSpec("CH3", _v(-32.0, 0.0), _a(2.1)),
        }),
    ),
    CatalogueEntry(
        "rigol-dp832", _RIGOL, _ci(r"DP832A?"), RigolDP800,
        ModelSpec("Rigol", "DP832", {
            1: ChannelSpec("CH1", _v(0.0, 32.0), _a(3.2)),
            2: ChannelSpec("CH2", _v(0.0, 32.0), _a(3.2)),
            3: ChannelSpec("CH3", _v(0.0, 5.3), _a(3.2)),
        }),
    ),
    CatalogueEntry(
        "keysight-e3631a", _E3631A_MAKERS, _ci(r"E3631A"), KeysightE36xx,
        ModelSpec("Agilent", "E3631A", {
            1: ChannelSpec("P6V", _v(0.0, 6.18), _a(5.15)),
            2: ChannelSpec("P25V", _v(0.0, 25.75), _a(1.03)),
            3: ChannelSpec("N25V", _v(-25.75, 0.0), _a(1.03)),
        }, ganged_output=True),
    ),
    CatalogueEntry(
        "keysight-e36312a", _KEYSIGHT, _ci(r"E36312A"), KeysightE36xx,
        ModelSpec("Keysight", "E36312A", {
            1: ChannelSpec("CH1", _v(0.0, 6.0), _a(5.0)),
            2: ChannelSpec("CH2", _v(0.0, 25.0), _a(1.0)),
            3: ChannelSpec("CH3", _v(0.0, 25.0), _a(1.0)),
        }),
    ),
    CatalogueEntry(
        "keysight-e36313a", _KEYSIGHT, _ci(r"E36313A"), KeysightE36xx,
        ModelSpec("Keysight", "E36313A", {
            1: ChannelSpec("CH1", _v(0.0, 6.0), _a(10.0)),
            2: ChannelSpec("CH2", _v(0.0, 25.0), _a(2.0)),
            3: ChannelSpec("CH3", _v(0.0, 25.0), _a(2.0)),
        }),
    ),
    _e361xx("E36102A", 6.0, 5.0),
    _e361xx("E36103A", 20.0, 2.0),
    _e361xx("E36104A", 35.0, 1.0),
    _e361xx("E36105A", 60.0, 0.6),
    _e361xx("E36106A", 100.0, 0.4),
    _korad("korad-ka3003p", r"KA3003P|72-2535", "KA3003P", 30.0, 3.0),
    _korad("korad-ka3005p", r"(?:320-)?KA3005P|KD3005P|72-2540|(?:LAB)?PS3005D", "KA3005P",
           30.0, 5.0),
    _korad("korad-ka6002p", r"KA6002P|72-2545", "KA6002P", 60.0, 2.0),
    _korad("korad-ka6003p", r"KA6003P|72-2550", "KA6003P", 60.0, 3.0),
)
# fmt: on


def find_model(
    identity: Identity, catalogue: Iterable[CatalogueEntry] = CATALOGUE
) -> CatalogueEntry:
    """The catalogue entry for ``identity``, or :class:`PsuUnknownModel`."""
    for entry in catalogue:
        if entry.matches(identity):
            return entry
    raise PsuUnknownModel(
        f"no driver for {identity} (*IDN? {identity.raw!r}); supported: "
        + ", ".join(e.key for e in catalogue),
        identity,
    )


def catalogue_entry(key: str, catalogue: Iterable[CatalogueEntry] = CATALOGUE) -> CatalogueEntry:
    """The entry named ``key`` (as written in rig files), or a :class:`KeyError` listing them."""
    entries = {e.key: e for e in catalogue}
    try:
        return entries[key]
    except KeyError:
        raise KeyError(f"unknown PSU model key {key!r} (known: {', '.join(entries)})") from None


# ---------------------------------------------------------------------------
# Opening a resource
# ---------------------------------------------------------------------------


def open_resource(
    rm: pyvisa.ResourceManager, resource_name: str, *, timeout_ms: int | None = None
) -> MessageBasedResource:
    """Open a message-based VISA resource, or :class:`PsuResourceMissing` saying why not.

    viOpen's status is checked explicitly: some backends (pyvisa-sim) report
    an unknown resource there instead of raising.
    """

    def preflight() -> None:
        session, status = rm.open_bare_resource(resource_name)
        if status < constants.StatusCode.success:
            raise pyvisa.errors.VisaIOError(status)
        rm.visalib.close(session)

    try:
        preflight()
        resource = rm.open_resource(resource_name)
    except pyvisa.errors.VisaIOError as exc:
        code = exc.error_code
        if code == constants.StatusCode.error_resource_not_found:
            raise PsuResourceMissing(f"{resource_name}: no such VISA resource") from exc
        if code == constants.StatusCode.error_invalid_resource_name:
            raise PsuResourceMissing(
                f"{resource_name!r} is not a VISA resource name (nor a known alias)"
            ) from exc
        raise PsuNotAnswering(f"{resource_name}: cannot open: {exc.abbreviation}") from exc
    except (pyvisa.errors.Error, OSError, ValueError) as exc:
        raise PsuResourceMissing(f"{resource_name}: cannot open: {exc}") from exc
    if not isinstance(resource, MessageBasedResource):
        resource.close()
        raise PsuResourceMissing(f"{resource_name}: not a message-based instrument")
    if timeout_ms is not None:
        resource.timeout = timeout_ms
    return resource


def identify_resource(resource: MessageBasedResource, *, write_termination: str = "\n") -> Identity:
    """Ask ``*IDN?`` without knowing the command set yet.

    The reply is read up to LF or until the line goes quiet, so the same
    call identifies SCPI supplies and the terminator-less Korad family.
    """
    where = str(resource.resource_name)
    timeout = resource.timeout

    def ask() -> bytes:
        resource.write_termination = write_termination
        resource.write("*IDN?")
        return read_reply(resource, terminator=b"\n")

    raw = _guard(where, "'*IDN?'", ask, timeout)
    text = raw.decode("ascii", errors="replace").strip()
    if not text:
        raise PsuNotAnswering(f"{where}: empty reply to '*IDN?'")
    try:
        return parse_idn(text)
    except PsuReplyError as exc:
        raise PsuUnknownModel(f"{where}: {exc}", Identity("", "", raw=text)) from None


def check_identity(
    identity: Identity,
    entry: CatalogueEntry,
    *,
    expected_model: str | None = None,
    expected_serial: str | None = None,
    where: str = "",
) -> None:
    """:class:`PsuIdentityError` unless ``identity`` is what the rig file expects.

    ``expected_model`` may be the model (``DP832``) or the catalogue key
    (``rigol-dp832``); case does not matter.
    """
    prefix = f"{where}: " if where else ""
    if expected_model is not None:
        names = {identity.model.upper(), entry.key.upper(), entry.spec.model.upper()}
        if expected_model.strip().upper() not in names:
            raise PsuIdentityError(
                f"{prefix}expected model {expected_model!r}, found {identity}", identity
            )
    if expected_serial is not None and identity.serial != expected_serial.strip():
        raise PsuIdentityError(
            f"{prefix}expected serial {expected_serial!r}, found {identity}", identity
        )


def open_psu(
    resource_name: str,
    rm: pyvisa.ResourceManager,
    *,
    expected_model: str | None = None,
    expected_serial: str | None = None,
    write_termination: str | None = None,
    timeout_ms: int | None = None,
    check_errors: bool = True,
    catalogue: Iterable[CatalogueEntry] = CATALOGUE,
) -> VisaPsu:
    """Open ``resource_name``, identify it, check it against the rig file, return its driver.

    ``write_termination`` overrides the driver's framing (and is used for
    the ``*IDN?`` probe); the simulated Korad needs ``"\\n"``.
    """
    resource = open_resource(rm, resource_name, timeout_ms=timeout_ms)
    try:
        identity = identify_resource(
            resource, write_termination="\n" if write_termination is None else write_termination
        )
        entry = find_model(identity, tuple(catalogue))
        check_identity(
            identity,
            entry,
            expected_model=expected_model,
            expected_serial=expected_serial,
            where=resource_name,
        )
        transport = entry.driver.TRANSPORT
        if write_termination is not None:
            transport = replace(transport, write_termination=write_termination)
        if timeout_ms is not None:
            transport = replace(transport, timeout_ms=timeout_ms)
        if issubclass(entry.driver, ScpiPsu):
            psu: VisaPsu = entry.driver(
                resource, entry.spec, transport=transport, check_errors=check_errors
            )
        else:
            psu = entry.driver(resource, entry.spec, transport=transport)
        psu.catalogue_key = entry.key
        psu.clear_errors()
    except BaseException:
        resource.close()
        raise
    return psu


__all__ = [
    "CATALOGUE",
    "CatalogueEntry",
    "KeysightE36xx",
    "KoradKA",
    "RigolDP800",
    "ScpiCommands",
    "ScpiPsu",
    "Transport",
    "VisaPsu",
    "catalogue_entry",
    "check_identity",
    "find_model",
    "identify_resource",
    "open_psu",
    "open_resource",
    "parse_idn",
    "parse_number",
    "parse_scpi_error",
    "parse_switch",
    "read_reply",
]
