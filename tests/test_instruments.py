"""PSU protocol, VISA drivers (against pyvisa-sim instruments), probe and behavioural model."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import pyvisa
from hypothesis import given
from hypothesis import strategies as st

from gbhil.rigs.instruments import SIM_PSU_DEFINITIONS
from gbhil.rigs.instruments.model import (
    MAINS_NOMINAL_V,
    MAINS_SPEC,
    Load,
    Regulation,
    SimulatedPsu,
    mains_supply,
)
from gbhil.rigs.instruments.observed import ObservedPsu
from gbhil.rigs.instruments.probe import ProbeProblem, probe_psu
from gbhil.rigs.instruments.psu import (
    ChannelSpec,
    Identity,
    ModelSpec,
    PsuChannelError,
    PsuError,
    PsuIdentityError,
    PsuInstrumentError,
    PsuNotAnswering,
    PsuProtocol,
    PsuRangeError,
    PsuReplyError,
    PsuResourceMissing,
    PsuUnknownModel,
    Range,
)
from gbhil.rigs.instruments.scpi import (
    CATALOGUE,
    KeysightE36xx,
    KoradKA,
    RigolDP800,
    ScpiPsu,
    Transport,
    VisaPsu,
    catalogue_entry,
    find_model,
    open_psu,
    open_resource,
    parse_idn,
    parse_number,
    parse_scpi_error,
    parse_switch,
)
from gbhil.simulator.clock import SteppedClock

# Resources of sim/psu.yaml: catalogue key -> (resource, driver class, write termination).
# The simulated Korad needs LF (pyvisa-sim cannot frame unterminated messages).
SIMULATED = {
    "rigol-dp832": ("TCPIP0::192.168.0.32::inst0::INSTR", RigolDP800, None),
    "keysight-e3631a": ("GPIB0::5::INSTR", KeysightE36xx, None),
    "keysight-e36312a": ("TCPIP0::192.168.0.36::inst0::INSTR", KeysightE36xx, None),
    "keysight-e36103a": ("TCPIP0::192.168.0.103::inst0::INSTR", ScpiPsu, None),
    "korad-ka3005p": ("ASRL1::INSTR", KoradKA, "\n"),
}
UNKNOWN = "TCPIP0::192.168.0.99::inst0::INSTR"
IDN_ONLY = "TCPIP0::192.168.0.33::inst0::INSTR"
MUTE = "ASRL9::INSTR"
QUICK_MS = 50  # timeout for instruments that are expected to stay silent


@pytest.fixture
def rm(tmp_path: Path) -> Iterator[pyvisa.ResourceManager]:
    """A fresh simulated bench: pyvisa caches the sim library per file, so copy it."""
    definitions = tmp_path / "psu.yaml"
    shutil.copy(SIM_PSU_DEFINITIONS, definitions)
    manager = pyvisa.ResourceManager(f"{definitions}@sim")
    yield manager
    manager.close()


def _open(rm: pyvisa.ResourceManager, key: str, **kwargs: object) -> VisaPsu:
    resource, _, termination = SIMULATED[key]
    return open_psu(resource, rm, write_termination=termination, **kwargs)  # type: ignore[arg-type]


def _mid(rng: Range, fraction: float, decimals: int) -> float:
    """A value inside ``rng`` that every driver's resolution represents exactly."""
    return round(rng.low + fraction * (rng.high - rng.low), decimals)


# ---------------------------------------------------------------------------
# Reply parsing
# ---------------------------------------------------------------------------

INSTRUMENT_FORMATS = ("{:.4f}", "{:+.8E}", "{:.3f}", "{:05.2f}", "{:05.3f}", "{:g}", "{:+.6e}")


@given(
    value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    fmt=st.sampled_from(INSTRUMENT_FORMATS),
    pad=st.sampled_from(["", " ", "\r", "\n", "\r\n"]),
)
def test_parse_number_reads_instrument_formats(value: float, fmt: str, pad: str) -> None:
    text = fmt.format(value)
    assert parse_number(text + pad) == float(text)
    # Within the format's rounding: 2 decimals at worst, 6 significant digits for {:g}.
    assert parse_number(text) == pytest.approx(value, rel=1e-5, abs=0.0051)


@given(st.text(max_size=20))
def test_parse_number_never_leaks_other_errors(text: str) -> None:
    try:
        value = parse_number(text)
    except PsuReplyError as exc:
        assert repr(text) in str(exc)
    else:
        assert math.isfinite(value)
        assert value == float(text)


@pytest.mark.parametrize(
    "garbage",
    ["", "nan", "NaN", "inf", "-Infinity", "9.91E+37", "-9.91E37", "1e999", "1_000", "12.3.4",
     "5,000", "OFF", "5 V", "0x10", "--1", "#", "\x00\x01"],
)  # fmt: skip
def test_parse_number_rejects_garbage(garbage: str) -> None:
    with pytest.raises(PsuReplyError):
        parse_number(garbage, "test value")


@given(
    st.text(max_size=12).filter(lambda s: s.strip(" \t\r\n").upper() not in {"1", "0", "ON", "OFF"})
)
def test_parse_switch_rejects_anything_but_states(text: str) -> None:
    with pytest.raises(PsuReplyError):
        parse_switch(text)


@pytest.mark.parametrize(
    ("reply", "state"), [("1", True), ("0", False), ("ON\n", True), ("off", False), (" 1 ", True)]
)
def test_parse_switch(reply: str, state: bool) -> None:
    assert parse_switch(reply) is state


def test_parse_scpi_error() -> None:
    assert parse_scpi_error('+0,"No error"') == (0, "No error")
    assert parse_scpi_error('-222,"Data out of range"\n') == (-222, "Data out of range")
    assert parse_scpi_error("0") == (0, "")
    with pytest.raises(PsuReplyError):
        parse_scpi_error("No error")


@pytest.mark.parametrize(
    ("reply", "manufacturer", "model", "serial", "firmware"),
    [
        ("RIGOL TECHNOLOGIES,DP832,DP8C1234,00.01.14\n", "RIGOL TECHNOLOGIES", "DP832", "DP8C1234",
         "00.01.14"),
        ("Keysight Technologies,E36312A,MY123,2.1.0-1.0.4-1.12", "Keysight Technologies", "E36312A",
         "MY123", "2.1.0-1.0.4-1.12"),
        ("HEWLETT-PACKARD,E3631A,0,2.1-5.0-1.0", "HEWLETT-PACKARD", "E3631A", "0", "2.1-5.0-1.0"),
        ("KORADKA3005PV2.0", "KORAD", "KA3005P", "", "2.0"),
        ("KORAD KA3005P V5.8 SN:03379314", "KORAD", "KA3005P", "03379314", "5.8"),
        ("TENMA 72-2540 V2.1", "TENMA", "72-2540", "", "2.1"),
        ("VELLEMANLABPS3005DV2.0", "VELLEMAN", "LABPS3005D", "", "2.0"),
    ],
)  # fmt: skip
def test_parse_idn(reply: str, manufacturer: str, model: str, serial: str, firmware: str) -> None:
    identity = parse_idn(reply)
    assert (identity.manufacturer, identity.model) == (manufacturer, model)
    assert (identity.serial, identity.firmware) == (serial, firmware)


@pytest.mark.parametrize("garbage", ["", "hello", ",,,", "\x01\x02"])
def test_parse_idn_rejects_garbage(garbage: str) -> None:
    with pytest.raises(PsuReplyError):
        parse_idn(garbage)


# ---------------------------------------------------------------------------
# Catalogue
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idn", "key", "driver"),
    [
        ("RIGOL TECHNOLOGIES,DP832A,DP8A1,00.01.16", "rigol-dp832", RigolDP800),
        ("RIGOL TECHNOLOGIES,DP831,DP8B1,00.01.16", "rigol-dp831", RigolDP800),
        ("Agilent Technologies,E3631A,0,2.1-5.0-1.0", "keysight-e3631a", KeysightE36xx),
        ("Keysight Technologies,E36313A,MY1,2.1", "keysight-e36313a", KeysightE36xx),
        ("Keysight Technologies,E36105A,MY1,1.0", "keysight-e36105a", ScpiPsu),
        ("TENMA 72-2540 V2.1", "korad-ka3005p", KoradKA),
        ("KORADKA6003PV2.0", "korad-ka6003p", KoradKA),
    ],
)
def test_driver_selection_by_idn(idn: str, key: str, driver: type[VisaPsu]) -> None:
    entry = find_model(parse_idn(idn))
    assert (entry.key, entry.driver) == (key, driver)


def test_unknown_model_is_reported_with_its_identity() -> None:
    identity = parse_idn("ACME INSTRUMENTS,PS-9000,1,1.0")
    with pytest.raises(PsuUnknownModel, match="PS-9000") as info:
        find_model(identity)
    assert info.value.identity == identity


def test_catalogue_is_consistent() -> None:
    keys = [entry.key for entry in CATALOGUE]
    assert len(keys) == len(set(keys))
    for entry in CATALOGUE:
        assert entry.spec.channel_numbers[0] == 1
        assert catalogue_entry(entry.key) is entry
    with pytest.raises(KeyError, match="rigol-dp832"):
        catalogue_entry("rigol-dp999")


def test_model_spec_checks() -> None:
    spec = catalogue_entry("keysight-e3631a").spec
    assert spec.check_voltage(3, -25.75) == -25.75
    assert spec.check_current(1, 5) == 5.0
    for bad in (0, 4, -1, True, 1.0, "1", None):
        with pytest.raises(PsuChannelError, match="channels: 1, 2, 3"):
            spec.channel(bad)
    for value in (0.1, -26, math.nan, math.inf, "5", True, None):
        with pytest.raises(PsuRangeError, match="N25V"):
            spec.check_voltage(3, value)
    with pytest.raises(ValueError):
        ModelSpec("x", "y", {})
    with pytest.raises(ValueError):
        Range(2.0, 1.0, "V")


# ---------------------------------------------------------------------------
# Drivers against their pyvisa-sim instruments
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", SIMULATED)
def test_open_psu_picks_the_driver(rm: pyvisa.ResourceManager, key: str) -> None:
    with _open(rm, key) as psu:
        assert type(psu) is SIMULATED[key][1]
        assert psu.catalogue_key == key
        assert isinstance(psu, PsuProtocol)
        assert find_model(psu.identify()).key == key


@pytest.mark.parametrize("key", SIMULATED)
def test_set_then_measure_round_trips(rm: pyvisa.ResourceManager, key: str) -> None:
    with _open(rm, key) as psu:
        for channel in psu.channels:
            spec = psu.spec.channel(channel)
            volts, amps = _mid(spec.voltage, 0.37, 2), _mid(spec.current, 0.61, 3)
            psu.set_voltage(volts, channel)
            psu.set_current_limit(amps, channel)
            assert psu.measure_voltage(channel) == pytest.approx(volts, abs=1e-6)
            assert psu.measure_current(channel) == pytest.approx(amps, abs=1e-6)
        # A second value proves the first reading was not a default.
        psu.apply(0.0, 0.0, channel=1)
        assert psu.measure_voltage(1) == 0.0
        assert psu.measure_current(1) == 0.0


@pytest.mark.parametrize("key", SIMULATED)
def test_output_on_off(rm: pyvisa.ResourceManager, key: str) -> None:
    with _open(rm, key) as psu:
        last = psu.channels[-1]
        assert not psu.output_enabled(last)
        psu.set_output(True, last)
        assert psu.output_enabled(last)
        others = [psu.output_enabled(c) for c in psu.channels[:-1]]
        # Ganged models switch every output; the others only the one asked for.
        assert others == [psu.spec.ganged_output] * len(others)
        psu.set_output(False, last)
        assert not any(psu.output_enabled(c) for c in psu.channels)
        with pytest.raises(TypeError):
            psu.set_output("off", last)  # type: ignore[arg-type]
        assert not psu.output_enabled(last)


@pytest.mark.parametrize("key", SIMULATED)
def test_unsupported_channel(rm: pyvisa.ResourceManager, key: str) -> None:
    with _open(rm, key) as psu:
        missing = psu.channels[-1] + 1
        calls = [
            lambda: psu.set_voltage(1.0, missing),
            lambda: psu.set_current_limit(0.1, missing),
            lambda: psu.set_output(True, missing),
            lambda: psu.output_enabled(missing),
            lambda: psu.measure_voltage(missing),
            lambda: psu.measure_current(0),
        ]
        for call in calls:
            with pytest.raises(PsuChannelError, match="has no channel"):
                call()
        assert psu.measure_voltage(1) == 0.0  # the link is still in step


@pytest.mark.parametrize("key", SIMULATED)
def test_out_of_range_is_refused_before_sending(rm: pyvisa.ResourceManager, key: str) -> None:
    with _open(rm, key) as psu:
        channel = psu.channels[-1]
        spec = psu.spec.channel(channel)
        good = _mid(spec.voltage, 0.5, 2)
        psu.set_voltage(good, channel)
        for bad in (spec.voltage.high + 0.5, spec.voltage.low - 0.5, math.nan, "3"):
            with pytest.raises(PsuRangeError, match=spec.name):
                psu.set_voltage(bad, channel)  # type: ignore[arg-type]
        with pytest.raises(PsuRangeError, match="current limit"):
            psu.set_current_limit(spec.current.high * 2, channel)
        with pytest.raises(PsuRangeError):
            psu.apply(good, -1.0, channel)  # checked before the voltage is sent
        assert psu.measure_voltage(channel) == pytest.approx(good, abs=1e-6)


def test_instrument_side_refusal_is_an_instrument_error(rm: pyvisa.ResourceManager) -> None:
    # A spec wider than the instrument: only the instrument's error queue can catch it.
    wide = ModelSpec(
        "Keysight", "E36103A", {1: ChannelSpec("OUT", Range(0, 30, "V"), Range(0, 2, "A"))}
    )
    resource = open_resource(rm, SIMULATED["keysight-e36103a"][0])
    psu = ScpiPsu(resource, wide)
    psu.set_voltage(5.0)
    with pytest.raises(PsuInstrumentError, match=r"VOLT 25\.0000") as info:
        psu.set_voltage(25.0)
    assert info.value.code == -100
    assert psu.measure_voltage() == 5.0
    unchecked = ScpiPsu(resource, wide, check_errors=False)
    unchecked.set_voltage(25.0)  # silently refused: this is what check_errors is for
    assert unchecked.measure_voltage() == 5.0
    psu.close()


def test_silent_instrument_is_not_answering(rm: pyvisa.ResourceManager) -> None:
    spec = catalogue_entry("rigol-dp832").spec
    resource = open_resource(rm, IDN_ONLY)
    psu = RigolDP800(resource, spec, transport=Transport(timeout_ms=QUICK_MS))
    assert psu.identify().serial == "DP8C000000002"
    with pytest.raises(PsuNotAnswering, match=r"no answer to ':MEAS:VOLT\? CH1' within 50 ms"):
        psu.measure_voltage(1)
    psu.close()


def test_closed_driver_raises_psu_errors(rm: pyvisa.ResourceManager) -> None:
    psu = _open(rm, "rigol-dp832")
    psu.close()
    psu.close()  # idempotent
    with pytest.raises(PsuNotAnswering, match="closed"):
        psu.measure_voltage(1)


def test_open_psu_checks_the_rig_file_identity(rm: pyvisa.ResourceManager) -> None:
    with _open(rm, "rigol-dp832", expected_model="DP832", expected_serial="DP8C000000001"):
        pass
    with _open(rm, "rigol-dp832", expected_model="Rigol-DP832"):
        pass
    with pytest.raises(PsuIdentityError, match="expected model 'E3631A'") as info:
        _open(rm, "rigol-dp832", expected_model="E3631A")
    assert info.value.identity is not None and info.value.identity.model == "DP832"
    with pytest.raises(PsuIdentityError, match="expected serial"):
        _open(rm, "rigol-dp832", expected_serial="DP8C999")
    with pytest.raises(PsuUnknownModel):
        open_psu(UNKNOWN, rm)
    with pytest.raises(PsuResourceMissing, match="no such VISA resource"):
        open_psu("ASRL7::INSTR", rm)


def test_korad_uses_unterminated_framing_on_hardware() -> None:
    assert KoradKA.TRANSPORT.write_termination == ""
    assert KoradKA.TRANSPORT.read_termination is None
    assert KoradKA.TRANSPORT.baud_rate == 9600


# ---------------------------------------------------------------------------
# Probe
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", SIMULATED)
def test_probe_present_instrument(rm: pyvisa.ResourceManager, key: str) -> None:
    resource, _, termination = SIMULATED[key]
    result = probe_psu(resource, rm, write_termination=termination)
    assert result.ok, str(result)
    assert result.driver == key
    assert result.identity is not None and find_model(result.identity).key == key
    assert "ok" in str(result)


def test_probe_only_reads(rm: pyvisa.ResourceManager) -> None:
    with _open(rm, "rigol-dp832") as psu:
        psu.set_voltage(4.2, 2)
        psu.set_output(True, 2)
    assert probe_psu(SIMULATED["rigol-dp832"][0], rm).ok
    with _open(rm, "rigol-dp832") as psu:
        assert psu.measure_voltage(2) == 4.2
        assert [psu.output_enabled(c) for c in psu.channels] == [False, True, False]


@pytest.mark.parametrize(
    ("resource", "kind", "words"),
    [
        ("ASRL7::INSTR", ProbeProblem.RESOURCE_MISSING, "no such VISA resource"),
        ("definitely not a resource", ProbeProblem.RESOURCE_MISSING, "not a VISA resource name"),
        (MUTE, ProbeProblem.NOT_ANSWERING, "no answer to '*IDN?'"),
        (UNKNOWN, ProbeProblem.UNKNOWN_MODEL, "no driver for ACME INSTRUMENTS PS-9000"),
        (IDN_ONLY, ProbeProblem.NOT_ANSWERING, "':OUTP? CH1'"),
    ],
)
def test_probe_problems(
    rm: pyvisa.ResourceManager, resource: str, kind: ProbeProblem, words: str
) -> None:
    result = probe_psu(resource, rm, timeout_ms=QUICK_MS)
    assert not result.ok
    assert result.kind is kind
    assert result.problem is not None and words in result.problem
    assert kind.value in str(result)


def test_probe_reports_who_answered(rm: pyvisa.ResourceManager) -> None:
    unknown = probe_psu(UNKNOWN, rm)
    assert unknown.identity is not None and unknown.identity.model == "PS-9000"
    idn_only = probe_psu(IDN_ONLY, rm, timeout_ms=QUICK_MS)
    assert idn_only.driver == "rigol-dp832"
    assert idn_only.identity is not None and idn_only.identity.serial == "DP8C000000002"


def test_probe_wrong_identity(rm: pyvisa.ResourceManager) -> None:
    resource = SIMULATED["rigol-dp832"][0]
    wrong_model = probe_psu(resource, rm, expected_model="DP831")
    assert wrong_model.kind is ProbeProblem.WRONG_IDENTITY
    assert wrong_model.problem is not None and "expected model 'DP831'" in wrong_model.problem
    assert wrong_model.identity is not None and wrong_model.identity.model == "DP832"
    wrong_serial = probe_psu(resource, rm, expected_model="dp832", expected_serial="X")
    assert wrong_serial.kind is ProbeProblem.WRONG_IDENTITY
    assert probe_psu(resource, rm, expected_model="rigol-dp832").ok


# ---------------------------------------------------------------------------
# Behavioural model
# ---------------------------------------------------------------------------


def test_model_listeners_follow_the_stepped_clock() -> None:
    clock = SteppedClock()
    mains = mains_supply(clock)
    heard: list[tuple[bool, object]] = []
    mains.subscribe(lambda on, at: heard.append((on, at)))
    mains.set_output(True)
    clock.advance(180.0)  # a 3-minute outage costs nothing
    mains.set_output(False)
    mains.set_output(False)  # no change, no event
    clock.advance(42.5)
    mains.set_output(True)
    start = clock.to_datetime(0.0)
    assert heard == [
        (True, start),
        (False, start + timedelta(seconds=180)),
        (True, start + timedelta(seconds=222.5)),
    ]
    assert [(e.on, e.monotonic) for e in mains.events] == [(True, 0), (False, 180), (True, 222.5)]
    assert mains.measure_voltage() == MAINS_NOMINAL_V
    assert mains.identify().model == MAINS_SPEC.model


def test_model_unsubscribe_and_channels() -> None:
    clock = SteppedClock()
    psu = SimulatedPsu(clock, catalogue_entry("rigol-dp832").spec)
    one: list[bool] = []
    two: list[bool] = []
    stop = psu.subscribe(lambda on, at: one.append(on), channel=1)
    psu.subscribe(lambda on, at: two.append(on), channel=2)
    psu.set_output(True, 2)
    psu.set_output(True, 1)
    stop()
    stop()  # harmless twice
    psu.set_output(False, 1)
    assert (one, two) == ([True], [True])
    with pytest.raises(PsuChannelError):
        psu.subscribe(lambda on, at: None, channel=4)
    with pytest.raises(TypeError):
        psu.subscribe("not callable")  # type: ignore[arg-type]


def test_model_ganged_output_switches_all_channels() -> None:
    clock = SteppedClock()
    psu = SimulatedPsu(clock, catalogue_entry("keysight-e3631a").spec)
    heard: list[int] = []
    for channel in psu.channels:
        psu.subscribe(lambda on, at, c=channel: heard.append(c), channel=channel)
    psu.set_output(True, 3)
    assert heard == [1, 2, 3]
    assert all(psu.output_enabled(c) for c in psu.channels)


def test_model_failing_listener_does_not_lose_state() -> None:
    clock = SteppedClock()
    mains = mains_supply(clock)
    heard: list[bool] = []

    def broken(on: bool, at: object) -> None:
        raise RuntimeError("device model crashed")

    mains.subscribe(broken)
    mains.subscribe(lambda on, at: heard.append(on))
    with pytest.raises(ExceptionGroup) as info:
        mains.set_output(True)
    assert info.group_contains(RuntimeError, match="crashed")
    assert mains.output_enabled() and heard == [True]


@pytest.mark.parametrize(
    ("load", "volts", "limit", "expected"),
    [
        (Load(), 12.0, 1.0, (12.0, 0.0, Regulation.CV)),
        (Load(resistance_ohms=24.0), 12.0, 1.0, (12.0, 0.5, Regulation.CV)),
        (Load(resistance_ohms=6.0), 12.0, 1.0, (6.0, 1.0, Regulation.CC)),
        (Load(current_a=0.2), 12.0, 1.0, (12.0, 0.2, Regulation.CV)),
        (Load(current_a=2.0), 12.0, 1.0, (0.0, 1.0, Regulation.CC)),
        (Load(resistance_ohms=10.0, current_a=0.5), 12.0, 1.0, (5.0, 1.0, Regulation.CC)),
    ],
)
def test_model_load(
    load: Load, volts: float, limit: float, expected: tuple[float, float, Regulation]
) -> None:
    psu = SimulatedPsu(SteppedClock(), catalogue_entry("korad-ka3005p").spec, loads={1: load})
    psu.apply(volts, limit)
    off = (psu.measure_voltage(), psu.measure_current(), psu.regulation())
    assert off == (0.0, 0.0, Regulation.OFF)
    psu.set_output(True)
    measured = (psu.measure_voltage(), psu.measure_current(), psu.regulation())
    assert measured[:2] == pytest.approx(expected[:2])
    assert measured[2] is expected[2]


def test_model_negative_channel_and_errors() -> None:
    psu = SimulatedPsu(SteppedClock(), catalogue_entry("keysight-e3631a").spec)
    psu.set_load(Load(resistance_ohms=12.0), 3)
    psu.apply(-12.0, 1.03, 3)
    psu.set_output(True, 3)
    assert (psu.measure_voltage(3), psu.measure_current(3)) == pytest.approx((-12.0, 1.0))
    with pytest.raises(PsuRangeError):
        psu.set_voltage(12.0, 3)
    with pytest.raises(PsuChannelError):
        psu.measure_current(7)
    with pytest.raises(TypeError):
        psu.set_load(12.0, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Load(resistance_ohms=0.0)
    with pytest.raises(ValueError):
        Load(current_a=math.nan)
    assert psu.set_point(3) == (-12.0, 1.03)


@given(
    volts=st.floats(0.0, 30.0),
    limit=st.floats(0.0, 5.0),
    ohms=st.floats(0.01, 1e6) | st.just(math.inf),
    sink=st.floats(0.0, 10.0),
)
def test_model_operating_point_properties(
    volts: float, limit: float, ohms: float, sink: float
) -> None:
    psu = SimulatedPsu(SteppedClock(), catalogue_entry("korad-ka3005p").spec)
    psu.set_load(Load(resistance_ohms=ohms, current_a=sink))
    psu.apply(volts, limit)
    psu.set_output(True)
    v, i, mode = psu.measure_voltage(), psu.measure_current(), psu.regulation()
    assert 0.0 <= v <= volts and 0.0 <= i <= limit
    assert (mode is Regulation.CV) == (v == volts and i == psu.load().draw(volts))
    if mode is Regulation.CC:
        assert i == limit


# ---------------------------------------------------------------------------
# One protocol, every implementation
# ---------------------------------------------------------------------------


def test_every_psu_honours_the_protocol(rm: pyvisa.ResourceManager) -> None:
    psus: list[PsuProtocol] = [_open(rm, key) for key in SIMULATED]
    psus.append(SimulatedPsu(SteppedClock(), catalogue_entry("rigol-dp832").spec))
    for psu in psus:
        for channel in psu.channels:
            volts = _mid(psu.spec.channel(channel).voltage, 0.25, 2)
            psu.set_voltage(volts, channel)
            psu.set_output(True, channel)
            assert psu.output_enabled(channel)
            assert psu.measure_voltage(channel) == pytest.approx(volts, abs=1e-6), psu
        assert isinstance(psu.identify(), Identity)
        with pytest.raises(PsuError):
            psu.set_voltage(1e6, psu.channels[0])
        if isinstance(psu, VisaPsu):
            psu.close()


# ---------------------------------------------------------------------------
# docs/instruments.md cannot rot
# ---------------------------------------------------------------------------

DOC = Path(__file__).resolve().parent.parent / "docs" / "instruments.md"
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def test_doc_examples_run(tmp_path: Path) -> None:
    text = DOC.read_text(encoding="utf-8")
    blocks = [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _FENCE.finditer(text)]
    assert len(blocks) >= 3
    assert 'f"{SIM_PSU_DEFINITIONS}@sim"' in text  # swapped for the private copy below
    definitions = tmp_path / "psu.yaml"  # a private copy: sim state is cached per file
    shutil.copy(SIM_PSU_DEFINITIONS, definitions)
    namespace: dict[str, object] = {"__name__": "docs_instruments"}
    for line, code in blocks:
        code = code.replace('f"{SIM_PSU_DEFINITIONS}@sim"', repr(f"{definitions}@sim"))
        exec(compile("\n" * line + code, str(DOC), "exec"), namespace)
    rm = namespace["rm"]
    assert isinstance(rm, pyvisa.ResourceManager)
    rm.close()


# ---------------------------------------------------------------------------
# A VISA supply as a rig's mains (ObservedPsu)
# ---------------------------------------------------------------------------


def test_observed_supply_reports_output_changes_at_clock_time(rm: pyvisa.ResourceManager) -> None:
    clock = SteppedClock()
    psu = ObservedPsu(_open(rm, "rigol-dp832"), clock, name="mains")
    heard: list[tuple[int, bool, object]] = []
    psu.subscribe(lambda on, at: heard.append((1, on, at)), 1)
    psu.set_output(True, 1)
    clock.advance(90)
    psu.set_output(True, 1)  # already on: no second event
    psu.set_output(True, 2)  # another output of a non-ganged supply: not the mains
    psu.set_output(False, 1)
    assert heard == [(1, True, clock.start), (1, False, clock.start + timedelta(seconds=90))]
    assert not psu.output_enabled(1) and psu.output_enabled(2)  # the instrument's own state
    with pytest.raises(TypeError):
        psu.set_output("on", 1)  # type: ignore[arg-type]
    with pytest.raises(PsuError, match="no channel 4"):
        psu.subscribe(lambda on, at: None, 4)
    psu.close()


def test_observed_ganged_supply_reports_every_output(rm: pyvisa.ResourceManager) -> None:
    released: list[bool] = []
    psu = ObservedPsu(
        _open(rm, "keysight-e3631a"), SteppedClock(), release=lambda: released.append(True)
    )
    heard: list[tuple[int, bool]] = []
    for channel in psu.channels:
        psu.subscribe(lambda on, at, channel=channel: heard.append((channel, on)), channel)
    psu.set_output(True, psu.channels[-1])  # OUTP switches all three outputs
    assert heard == [(c, True) for c in psu.channels]
    psu.close()
    assert released == [True]
