"""Rig files: the shipped examples, every validation error, and the model's round trip."""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbhil.han.channels import PAGES, SUB_GHZ_PAGES
from gbhil.han.ezsp.frames import EMULATED_VERSIONS
from gbhil.han.joining import with_crc
from gbhil.rigs.instruments import SIM_PSU_DEFINITIONS
from gbhil.rigs.rigfile import (
    DEFAULT_PARTIES,
    DEFAULT_PROFILE_DIR,
    DEFAULT_PROFILES,
    INSTRUMENT_CATALOGUE,
    PARTY_ROLES,
    BusKind,
    DeviceKind,
    DeviceRole,
    InstrumentRole,
    PkiSource,
    RadioDriver,
    RigFile,
    RigFileError,
    RigProblem,
    load_rig,
    parse_rig,
)
from gbhil.rigs.simulated import DEVICE_CHANNELS, DEVICES, HUB_CHANNELS, PARTIES, SimulatedRig

ROOT = Path(__file__).resolve().parent.parent
RIGS = ROOT / "rigs"
#: The Zigbee specification's example install code, with its CRC.
INSTALL_CODE = "83FED3407A939723A5C639B26916D505C3B5"
DELETE = object()


# -- the shipped rig files --------------------------------------------------------------


@pytest.mark.parametrize("name", ["simulated", "bench-example", "mqtt-example"])
def test_shipped_rig_files_are_valid(name: str) -> None:
    rig = load_rig(RIGS / f"{name}.toml")
    assert rig.name == name and rig.path == RIGS / f"{name}.toml"
    assert parse_rig(rig.to_dict(), path=rig.path) == rig


def test_simulated_toml_is_what_simulated_rig_builds() -> None:
    rig = load_rig(RIGS / "simulated.toml")
    assert rig.pki.source is PkiSource.GENERATED
    assert rig.pki.seed == inspect.signature(SimulatedRig.build).parameters["seed"].default
    assert rig.pki.party_roles == PARTIES
    assert rig.bus.kind is BusKind.IN_PROCESS
    [place] = rig.places
    assert place.radio.driver is RadioDriver.SIMULATED
    assert place.radio.channels == HUB_CHANNELS
    assert {d.role.value: (d.eui, d.device_type) for d in rig.devices} == DEVICES
    assert all(d.simulated and d.place == place.name for d in rig.devices)
    # Every device's channel is one of the hub's bands (2.4 GHz or sub-GHz).
    for role, channels in DEVICE_CHANNELS.items():
        assert set(channels) <= set(place.radio.channels), role
    mains = rig.mains
    assert mains is not None and mains.simulated and mains.role is InstrumentRole.MAINS


def test_bench_example_describes_a_real_bench() -> None:
    rig = load_rig(RIGS / "bench-example.toml")
    [place] = rig.places
    radio = place.radio
    assert radio.driver is RadioDriver.EZSP and radio.emulated and radio.has_sub_ghz
    assert rig.needs_cbke(place)
    esme = rig.device("esme")
    assert esme.kind is DeviceKind.REAL and esme.relay == "esme-contactor"
    assert esme.install_code == bytes.fromhex(INSTALL_CODE)
    assert rig.profile_path(esme) is None
    assert rig.profile_path(rig.device("gsme")) == DEFAULT_PROFILE_DIR / "gsme.toml"
    psu = rig.instrument("psu")
    assert psu.role is InstrumentRole.MAINS and rig.mains == psu
    assert rig.instrument_definitions(psu) == SIM_PSU_DEFINITIONS
    assert rig.relay("esme-contactor").instrument == "aux"


def test_mqtt_example_spans_two_processes() -> None:
    rig = load_rig(RIGS / "mqtt-example.toml")
    assert rig.bus.kind is BusKind.MQTT
    assert (rig.bus.host, rig.bus.port) == ("localhost", 1883)
    assert rig.processes == ("main", "meters")
    assert {d.name for d in rig.devices if d.process == "meters"} == {"esme", "gsme", "ppmid"}


# -- validation errors ----------------------------------------------------------------

CHF, GPF, ESME, GSME, PPMID = (
    DEVICES[n][0].hex().upper() for n in ("chf", "gpf", "esme", "gsme", "ppmid")
)


def base() -> dict[str, Any]:
    """A small valid rig touching every table; each case below breaks one thing."""
    return {
        "rig": {"name": "t"},
        "pki": {"generated": True, "seed": 3},
        "bus": {"url": "in-process"},
        "place": [
            {
                "name": "p",
                "radio": {
                    "driver": "ezsp",
                    "port": "/dev/ttyUSB0",
                    "channel": 15,
                    "sub_ghz": {"page": 28, "channel": 5},
                },
            },
            {"name": "sim", "radio": {"driver": "simulated", "channel": 11}},
        ],
        "instrument": [
            {
                "name": "psu",
                "resource": "TCPIP0::1::INSTR",
                "driver": "rigol-dp832",
                "role": "mains",
            },
            {"name": "model", "driver": "simulated"},
        ],
        "relay": [{"name": "r", "instrument": "psu", "channel": 2}],
        "device": [
            {"role": "chf", "eui": CHF, "place": "p"},
            {"role": "gpf", "eui": GPF, "place": "p"},
            {
                "role": "esme",
                "eui": ESME,
                "place": "p",
                "kind": "real",
                "install_code": INSTALL_CODE,
                "relay": "r",
            },
            {"role": "gsme", "eui": GSME, "place": "p", "profile": "gsme.toml"},
            {"role": "ppmid", "eui": PPMID, "place": "sim"},
        ],
    }


def changed(*edits: tuple[tuple[Any, ...], Any]) -> dict[str, Any]:
    """``base()`` with each ``(path, value)`` set (``DELETE`` removes the key)."""
    data = base()
    for path, value in edits:
        node: Any = data
        for step in path[:-1]:
            node = node[step]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return data


def test_base_is_valid() -> None:
    rig = parse_rig(base())
    assert [d.name for d in rig.devices] == ["chf", "gpf", "esme", "gsme", "ppmid"]


RADIO = ("place", 0, "radio")
SUB = (*RADIO, "sub_ghz")
SIMRADIO = ("place", 1, "radio")
PSU = ("instrument", 0)
DEV_CHF, DEV_GPF, DEV_ESME, DEV_GSME, DEV_PPMID = (("device", i) for i in range(5))

# (edits, table, index, key, message pattern)
# fmt: off
CASES: list[Any] = [
    # unknown keys, everywhere, with a suggestion
    pytest.param(changed((("colour",), "red")), "", None, "colour", r"unknown key", id="top-key"),
    pytest.param(changed((("rig", "nmae"), "x")), "rig", None, "nmae",
                 r"did you mean 'name'", id="rig-key"),
    pytest.param(changed(((*RADIO, "chanel"), 3)), "place.radio", 1, "chanel",
                 r"did you mean 'channel'", id="radio-key"),
    pytest.param(changed(((*DEV_ESME, "instal_code"), "x")), "device", 3, "instal_code",
                 r"did you mean 'install_code'", id="device-key"),
    pytest.param(changed(((*SIMRADIO, "port"), "/dev/ttyUSB1")), "place.radio", 2, "port",
                 r"only for driver 'ezsp', not 'simulated'", id="ezsp-key-on-simulated"),
    pytest.param(changed(((*SUB, "chan"), 1)), "place.radio.sub_ghz", 1, "chan",
                 r"did you mean 'channel'", id="sub-ghz-key"),
    # [rig]
    pytest.param(changed((("rig",), DELETE)), "", None, "rig", r"missing: a \[rig\] table",
                 id="no-rig"),
    pytest.param(changed((("rig", "name"), "my rig")), "rig", None, "name", r"is not a name",
                 id="bad-name"),
    pytest.param(changed((("rig", "profiles"), "no/such/dir")), "rig", None, "profiles",
                 r"profile folder .*no/such/dir does not exist", id="profiles-dir"),
    pytest.param(changed((("place",), DELETE)), "", None, "place", r"at least one \[\[place\]\]",
                 id="no-place"),
    # [pki]
    pytest.param(changed((("pki", "folder"), "pki")), "pki", None, "folder",
                 r"exactly one of generated = true, folder, zaz1", id="pki-two-sources"),
    pytest.param(changed((("pki",), {"zaz1": "k.json", "seed": 1})), "pki", None, "seed",
                 r"seed only applies to a generated PKI", id="pki-seed-zaz1"),
    pytest.param(changed((("pki",), {"generated": False})), "pki", None, "generated",
                 r"neither folder nor zaz1", id="pki-nothing"),
    pytest.param(changed((("pki", "parties"), {"dno": CHF})), "pki.parties", None, "dno",
                 r"unknown key", id="pki-party-name"),
    pytest.param(changed((("pki", "parties"), {"supplier": "90B3D51F3001"})), "pki.parties",
                 None, "supplier", r"bad EUI-64: .* 6 bytes", id="pki-party-eui"),
    pytest.param(changed((("pki", "parties"), {"supplier": CHF})), "device", 1, "eui",
                 r"also the PKI party 'supplier'", id="pki-party-is-device"),
    # [bus]
    pytest.param(changed((("bus", "url"), "amqp://h:1")), "bus", None, "url",
                 r"use 'in-process' or 'mqtt://host:port'", id="bus-scheme"),
    pytest.param(changed((("bus", "url"), "mqtt://u:p@h:1883")), "bus", None, "url",
                 r"no credentials", id="bus-credentials"),
    pytest.param(changed((("bus", "url"), "mqtt://h:99999")), "bus", None, "url",
                 r"bad port", id="bus-port"),
    pytest.param(changed((("bus", "url"), "mqtt://h:1883/topic")), "bus", None, "url",
                 r"without path", id="bus-path"),
    # radios: pages, channels, masks
    pytest.param(changed(((*RADIO, "page"), 28)), "place.radio", 1, "page",
                 r"page 28 is invalid for an EZSP radio", id="ezsp-sub-ghz-main-page"),
    pytest.param(changed(((*RADIO, "channel"), 27)), "place.radio", 1, "channel",
                 r"channel 27 is not on page 0 .* valid: 11-26", id="channel-off-page"),
    pytest.param(changed(((*SIMRADIO, "page"), 5)), "place.radio", 2, "page",
                 r"channel page 5 is not supported", id="unknown-page"),
    pytest.param(changed(((*RADIO, "channel"), True)), "place.radio", 1, "channel",
                 r"expected an integer, got a boolean", id="bool-channel"),
    pytest.param(changed(((*RADIO, "mask"), [11, 12])), "place.radio", 1, "mask",
                 r"either channel or mask", id="channel-and-mask"),
    pytest.param(changed(((*RADIO, "channel"), DELETE)), "place.radio", 1, "channel",
                 r"missing \(a channel, or a mask", id="no-channel"),
    pytest.param(changed(((*RADIO, "channel"), DELETE), ((*RADIO, "mask"), 0xE0000001),
                         ((*RADIO, "page"), 0)),
                 "place.radio", 1, "mask", r"mask 0xE0000001 is for page 28, but page = 0",
                 id="mask-int-other-page"),
    pytest.param(changed(((*RADIO, "channel"), DELETE), ((*RADIO, "mask"), 0xE0000001)),
                 "place.radio", 1, "mask", r"page 28 is invalid for an EZSP radio",
                 id="mask-int-sub-ghz-on-ezsp"),
    pytest.param(changed(((*RADIO, "channel"), DELETE), ((*RADIO, "mask"), [11, 30])),
                 "place.radio", 1, "mask", r"channel 30 is not on page 0", id="mask-bad-channel"),
    pytest.param(changed(((*RADIO, "channel"), DELETE), ((*RADIO, "mask"), "11,12")),
                 "place.radio", 1, "mask", r"32-bit integer or an array", id="mask-type"),
    pytest.param(changed(((*SUB, "page"), 0), ((*SUB, "channel"), 20)), "place.radio.sub_ghz",
                 1, "page", r"page 0 is not a sub-GHz page", id="sub-ghz-page-0"),
    pytest.param(changed(((*SUB, "channel"), 40)), "place.radio.sub_ghz", 1, "channel",
                 r"channel 40 is not on page 28", id="sub-ghz-channel"),
    pytest.param(changed(((*SIMRADIO, "page"), 28), ((*SIMRADIO, "channel"), 1),
                         ((*SIMRADIO, "sub_ghz"), {"page": 31, "channel": 2})),
                 "place.radio.sub_ghz", 2, None, r"one sub-GHz band", id="two-sub-ghz"),
    # radios: EZSP settings
    pytest.param(changed(((*RADIO, "emulated"), True)), "place.radio", 1, "port",
                 r"port and emulated = true exclude each other", id="port-and-emulated"),
    pytest.param(changed(((*RADIO, "port"), DELETE)), "place.radio", 1, "port",
                 r"missing: the serial port", id="no-port"),
    pytest.param(changed(((*RADIO, "ezsp_versions"), [8, 14])), "place.radio", 1,
                 "ezsp_versions", r"EZSP protocol 8 is too old", id="ezsp-too-old"),
    pytest.param(changed(((*RADIO, "ezsp_versions"), [18, 14])), "place.radio", 1,
                 "ezsp_versions", r"lowest version 18 is above highest 14", id="ezsp-reversed"),
    pytest.param(changed(((*RADIO, "ezsp_versions"), 14)), "place.radio", 1, "ezsp_versions",
                 r"expected \[lowest, highest\]", id="ezsp-shape"),
    pytest.param(changed(((*RADIO, "stack_min"), "7.4")), "place.radio", 1, "stack_min",
                 r"not an EmberZNet version like '7.4.0'", id="stack-min"),
    pytest.param(changed(((*RADIO, "flow_control"), "rts")), "place.radio", 1, "flow_control",
                 r"'rts' is not one of: software, hardware", id="flow-control"),
    pytest.param(changed(((*RADIO, "baudrate"), 0)), "place.radio", 1, "baudrate",
                 r"below the minimum 1", id="baudrate"),
    pytest.param(changed(((*RADIO, "emulator"), {"phy_interfaces": 2})), "place.radio", 1,
                 "emulator", r"needs emulated = true", id="emulator-not-emulated"),
    pytest.param(changed(((*RADIO, "port"), DELETE), ((*RADIO, "emulated"), True),
                         ((*RADIO, "emulator"), {"protocol_version": 13})),
                 "place.radio.emulator", 1, "protocol_version", r"13 is not emulated",
                 id="emulator-version"),
    pytest.param(changed(((*RADIO, "port"), DELETE), ((*RADIO, "emulated"), True),
                         ((*RADIO, "ezsp_versions"), [16, 18]),
                         ((*RADIO, "emulator"), {"protocol_version": 14})),
                 "place.radio.emulator", 1, "protocol_version",
                 r"outside the radio's ezsp_versions 16..18", id="emulator-out-of-range"),
    pytest.param(changed(((*RADIO, "port"), DELETE), ((*RADIO, "emulated"), True),
                         ((*RADIO, "emulator"), {"phy_interfaces": 3})),
                 "place.radio.emulator", 1, "phy_interfaces", r"models 1 .* or 2",
                 id="emulator-phys"),
    pytest.param(changed((("place", 1, "radio", "driver"), "znp")), "place.radio", 2, "driver",
                 r"'znp' is not one of: ezsp, simulated", id="radio-driver"),
    pytest.param(changed((("place", 1, "radio"), DELETE)), "place", 2, "radio",
                 r"missing: a \[place.radio\] table", id="no-radio"),
    pytest.param(changed((("place", 1, "radio", "eui"), "00DB1234567890A0FF")),
                 "place.radio", 2, "eui", r"bad EUI-64: .*9 bytes", id="radio-eui"),
    pytest.param(changed((("place", 1, "radio", "port"), "/dev/ttyUSB0"),
                         (("place", 1, "radio", "driver"), "ezsp")),
                 "place.radio", 2, "port", r"duplicate serial port /dev/ttyUSB0", id="same-port"),
    pytest.param(changed((("place", 1, "name"), "p")), "place", 2, "name",
                 r"duplicate 'p': place #1 'p' has it too", id="same-place-name"),
    # instruments and relays
    pytest.param(changed(((*PSU, "driver"), "rigol-dp833")), "instrument", 1, "driver",
                 r"did you mean 'rigol-dp832'", id="instrument-driver"),
    pytest.param(changed(((*PSU, "resource"), DELETE)), "instrument", 1, "resource",
                 r"missing: the VISA resource name", id="instrument-resource"),
    pytest.param(changed(((*PSU, "channel"), 4)), "instrument", 1, "channel",
                 r"Rigol DP832 has no channel 4 \(channels: 1, 2, 3\)", id="instrument-channel"),
    pytest.param(changed(((*PSU, "backend"), "sim")), "instrument", 1, "backend",
                 r"not a pyvisa backend", id="instrument-backend"),
    pytest.param(changed(((*PSU, "definitions"), "psu.yaml")), "instrument", 1, "definitions",
                 r"need backend = '@sim'", id="definitions-without-sim"),
    pytest.param(changed(((*PSU, "backend"), "@sim"), ((*PSU, "definitions"), "nope.yaml")),
                 "instrument", 1, "definitions", r"nope.yaml does not exist", id="definitions"),
    pytest.param(changed((("instrument", 1, "resource"), "ASRL1::INSTR")), "instrument", 2,
                 "resource", r"not used by driver 'simulated'", id="simulated-resource"),
    pytest.param(changed((("instrument", 1, "role"), "mains")), "instrument", 2, "role",
                 r"one mains, and 'psu' is it", id="two-mains"),
    pytest.param(changed((("instrument", 1, "role"), "load")), "instrument", 2, "role",
                 r"'load' is not one of: mains, supply", id="instrument-role"),
    pytest.param(changed((("relay", 0, "instrument"), "pus")), "relay", 1, "instrument",
                 r"no \[\[instrument\]\] named 'pus' \(did you mean 'psu'\?\)", id="relay-ref"),
    pytest.param(changed((("relay", 0, "channel"), 7)), "relay", 1, "channel",
                 r"Rigol DP832 has no channel 7", id="relay-channel"),
    pytest.param(changed((("relay", 0, "channel"), 1)), "relay", 1, "channel",
                 r"channel 1 of 'psu' is already its mains output", id="relay-on-mains"),
    pytest.param(changed((("relay", 0, "instrument"), "model")), "relay", 1, "instrument",
                 r"behavioural mains model", id="relay-on-model"),
    pytest.param(changed((("relay", 0, "channel"), DELETE)), "relay", 1, "channel",
                 r"missing \(an integer is required\)", id="relay-no-channel"),
    # devices
    pytest.param(changed(((*DEV_PPMID, "eui"), "00DB1234567890ZZ")), "device", 5, "eui",
                 r"bad EUI-64: .*not hexadecimal", id="eui-hex"),
    pytest.param(changed(((*DEV_PPMID, "eui"), "00DB1234567890")), "device", 5, "eui",
                 r"bad EUI-64: .*7 bytes, expected 8", id="eui-length"),
    pytest.param(changed(((*DEV_PPMID, "eui"), GSME)), "device", 5, "eui",
                 rf"duplicate EUI {GSME}: device #4 'gsme' has it too", id="duplicate-eui"),
    pytest.param(changed(((*DEV_PPMID, "role"), "gsme"), ((*DEV_PPMID, "name"), "gas")),
                 "device", 5, "place", r"simulated gsme talks on sub-GHz, but the radio of "
                 r"place 'sim' has no sub-GHz band", id="gsme-without-sub-ghz"),
    pytest.param(changed(((*DEV_GSME, "profile"), "gsme-v2.toml")), "device", 4, "profile",
                 r"profile file .*gsme-v2.toml does not exist", id="missing-profile"),
    pytest.param(changed(((*DEV_PPMID, "profile"), "esme.toml")), "device", 5, "profile",
                 r"simulated ppmid takes no model profile", id="profile-for-ppmid"),
    pytest.param(changed(((*DEV_ESME, "install_code"), DELETE)), "device", 3, "install_code",
                 r"missing: a real device joins", id="no-install-code"),
    pytest.param(changed(((*DEV_ESME, "install_code"), INSTALL_CODE[:-1] + "6")), "device", 3,
                 "install_code", r"CRC 0xB6C3 != computed 0xB5C3", id="install-code-crc"),
    pytest.param(changed(((*DEV_ESME, "install_code"), "83FED3")), "device", 3, "install_code",
                 r"must be 8, 10, 14 or 18 octets", id="install-code-length"),
    pytest.param(changed(((*DEV_ESME, "profile"), "esme.toml")), "device", 3, "profile",
                 r"a real device has no model profile", id="profile-for-real"),
    pytest.param(changed(((*DEV_PPMID, "relay"), "r")), "device", 5, "relay",
                 r"only for real devices", id="relay-for-simulated"),
    pytest.param(changed(((*DEV_ESME, "relay"), "rr")), "device", 3, "relay",
                 r"no \[\[relay\]\] named 'rr'", id="unknown-relay"),
    pytest.param(changed(((*DEV_PPMID, "place"), "sm")), "device", 5, "place",
                 r"no \[\[place\]\] named 'sm' \(did you mean 'sim'\?\)", id="unknown-place"),
    pytest.param(changed(((*DEV_PPMID, "kind"), "real"), ((*DEV_PPMID, "install_code"),
                          INSTALL_CODE)), "device", 5, "kind",
                 r"real device needs a real radio", id="real-on-simulated-radio"),
    pytest.param(changed(((*DEV_PPMID, "kind"), "emulated")), "device", 5, "kind",
                 r"'emulated' is not one of: simulated, real", id="device-kind"),
    pytest.param(changed(((*DEV_PPMID, "role"), "ihd")), "device", 5, "role",
                 r"'ihd' is not one of: esme, gsme, chf, gpf, ppmid, hht", id="device-role"),
    pytest.param(changed(((*DEV_PPMID, "process"), "meters")), "device", 5, "process",
                 r"needs an MQTT bus", id="process-without-mqtt"),
    pytest.param(changed(((*DEV_PPMID, "role"), "chf"), ((*DEV_PPMID, "place"), "p"),
                         ((*DEV_PPMID, "name"), "chf2")), "device", 5, "role",
                 r"place 'p' already has a chf: 'chf'", id="two-chf"),
    pytest.param(changed(((*DEV_PPMID, "role"), "gpf"), ((*DEV_PPMID, "name"), "gpf2")),
                 "device", 5, "role", r"place 'sim' has no chf device", id="gpf-without-chf"),
    pytest.param(changed(((*DEV_GPF, "kind"), "real")), "device", 2, "kind",
                 r"GPF is part of the Comms Hub: it is real, but chf 'chf' is simulated",
                 id="gpf-kind"),
    pytest.param(changed(((*DEV_PPMID, "role"), "esme")), "device", 5, "name",
                 r"duplicate 'esme': device #3 'esme' has it too", id="duplicate-name"),
    pytest.param(changed(((*DEV_PPMID, "eui"), DELETE)), "device", 5, "eui",
                 r"missing \(a string is required\)", id="device-no-eui"),
]
# fmt: on


@pytest.mark.parametrize(("data", "table", "index", "key", "pattern"), CASES)
def test_each_validation_error_names_table_and_key(
    data: dict[str, Any], table: str, index: int | None, key: str | None, pattern: str
) -> None:
    with pytest.raises(RigFileError) as caught:
        parse_rig(data, path=Path("rigs/t.toml"))
    problems = caught.value.problems
    found = [p for p in problems if p.table == table and p.key == key and p.index == index]
    assert found, "\n".join(map(str, problems))
    assert any(re.search(pattern, p.message) for p in found), "\n".join(map(str, found))
    assert all(str(p).startswith("rigs/t.toml: ") for p in problems)


def test_problem_text_locates_the_key() -> None:
    with pytest.raises(RigFileError) as caught:
        parse_rig(changed(((*RADIO, "channel"), 27)), path=Path("rigs/t.toml"))
    [problem] = caught.value.problems
    assert str(problem) == (
        "rigs/t.toml: [place.radio] of place #1 'p': key 'channel': channel 27 is not on page 0 "
        "(2.4 GHz); valid: 11-26"
    )
    assert str(RigProblem(None, "device", "bad", "eui", 2, "esme")) == (
        "[[device]] #2 'esme': key 'eui': bad"
    )


def test_every_problem_is_reported_at_once() -> None:
    data = changed(
        (("rig", "name"), "no spaces"),
        ((*RADIO, "channel"), 5),
        ((*DEV_PPMID, "eui"), "xyz"),
        (("relay", 0, "instrument"), "nope"),
    )
    with pytest.raises(RigFileError) as caught:
        parse_rig(data)
    keys = {(p.table, p.key) for p in caught.value.problems}
    assert {("rig", "name"), ("place.radio", "channel"), ("device", "eui"),
            ("relay", "instrument")} <= keys  # fmt: skip
    assert str(caught.value).startswith(f"{len(caught.value.problems)} problems in rig file\n")


def test_load_rig_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RigFileError, match=r"nope.toml: no such rig file"):
        load_rig(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[rig]\nname = \n")
    with pytest.raises(RigFileError, match=r"bad.toml: not valid TOML: .*line 2"):
        load_rig(bad)


def test_relative_paths_resolve_against_the_rig_file(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    for name in ("chf.toml", "gpf.toml", "gsme.toml", "my-esme.toml"):
        (models / name).write_text("format = 1\n")
    (tmp_path / "sim.yaml").write_text("spec: '1.1'\n")
    data = base()
    data["rig"]["profiles"] = "models"
    data["device"][2:3] = [{"role": "esme", "eui": ESME, "place": "p", "profile": "my-esme.toml"}]
    data["instrument"][0].update(backend="@sim", definitions="sim.yaml")
    data["relay"] = []
    rig = parse_rig(data, path=tmp_path / "r.toml")
    assert rig.profile_path(rig.device("esme")) == models / "my-esme.toml"
    assert rig.profile_path(rig.device("chf")) == models / "chf.toml"
    assert rig.instrument_definitions(rig.instrument("psu")) == tmp_path / "sim.yaml"
    (models / "chf.toml").unlink()  # a default profile missing from the rig's own folder
    with pytest.raises(RigFileError, match=r"models/chf.toml does not exist \(the default"):
        parse_rig(data, path=tmp_path / "r.toml")


def test_masks_and_defaults() -> None:
    data = changed(((*RADIO, "channel"), DELETE), ((*RADIO, "mask"), 0x00018800))
    radio = parse_rig(data).places[0].radio
    assert radio.band.channels == (11, 15, 16) and radio.band.first_channel == 11
    assert radio.band.channel_mask.encode() == 0x00018800
    assert radio.ezsp_versions == (13, 19) and radio.flow_control == "software"
    data = changed(((*SUB, "channel"), DELETE), ((*SUB, "page"), 29), ((*SUB, "mask"), [27, 62]))
    sub = parse_rig(data).places[0].radio.sub_ghz
    assert sub is not None and (sub.page, sub.channels) == (29, (27, 62))
    assert str(sub) == f"page 29 mask 0x{sub.channel_mask.encode():08X}"


def test_cbke_need_follows_real_devices_unless_said() -> None:
    rig = parse_rig(base())
    assert rig.needs_cbke(rig.place("p")) and not rig.needs_cbke(rig.place("sim"))
    rig = parse_rig(changed(((*RADIO, "cbke"), False)))
    assert not rig.needs_cbke(rig.place("p"))


def test_lookups_name_what_exists() -> None:
    rig = parse_rig(base())
    with pytest.raises(KeyError, match=r"no device named 'x' \(known: chf, gpf, esme"):
        rig.device("x")


# -- round trip (hypothesis) ----------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,7}", fullmatch=True)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
               max_size=20).filter(str.strip)  # fmt: skip


def _hex(data: bytes) -> str:
    return data.hex().upper()


@st.composite
def band(draw: st.DrawFn, page: int) -> dict[str, Any]:
    channels = PAGES[page].channels
    if draw(st.booleans()):
        return {"page": page, "channel": draw(st.sampled_from(channels))}
    chosen = draw(st.lists(st.sampled_from(channels), min_size=1, max_size=5, unique=True))
    return {"page": page, "mask": sorted(chosen)}


@st.composite
def radio(draw: st.DrawFn, euis: list[bytes], port: str) -> dict[str, Any]:
    driver = draw(st.sampled_from(["ezsp", "simulated"]))
    main_page = 0 if driver == "ezsp" else draw(st.sampled_from(sorted(PAGES)))
    out: dict[str, Any] = {"driver": driver, **draw(band(main_page))}
    if draw(st.booleans()):
        out["eui"] = _hex(euis.pop())
    if main_page == 0 and draw(st.booleans()):
        out["sub_ghz"] = draw(band(draw(st.sampled_from(sorted(SUB_GHZ_PAGES)))))
    if driver == "simulated":
        return out
    low = draw(st.integers(13, 20))
    high = draw(st.integers(low, 22))
    emulated = draw(st.booleans())
    if not emulated:
        out["port"] = port
    out.update(emulated=emulated, ezsp_versions=[low, high],
               baudrate=draw(st.sampled_from([57600, 115200, 230400])),
               flow_control=draw(st.sampled_from(["software", "hardware"])))  # fmt: skip
    if draw(st.booleans()):
        out["stack_min"] = ".".join(str(draw(st.integers(0, 15))) for _ in range(3))
    if draw(st.booleans()):
        out["cbke"] = draw(st.booleans())
    if emulated:
        emulator: dict[str, Any] = {}
        versions = sorted(v for v in EMULATED_VERSIONS if low <= v <= high)
        if versions and draw(st.booleans()):
            emulator["protocol_version"] = draw(st.sampled_from(versions))
        if draw(st.booleans()):
            emulator["stack_version"] = ".".join(str(draw(st.integers(0, 15))) for _ in range(4))
        if draw(st.booleans()):
            emulator["phy_interfaces"] = draw(st.sampled_from([1, 2]))
        if draw(st.booleans()):
            emulator["cbke_certificate"] = draw(st.booleans())
        out["emulator"] = emulator
    return out


@st.composite
def instrument(draw: st.DrawFn, name: str, mains_free: bool) -> dict[str, Any]:
    driver = draw(st.sampled_from(["auto", "simulated", *sorted(INSTRUMENT_CATALOGUE)]))
    out: dict[str, Any] = {"name": name, "driver": driver}
    if draw(st.booleans()):
        out["description"] = draw(TEXT)
    roles = ["supply", "mains"] if mains_free else ["supply"]
    spec = INSTRUMENT_CATALOGUE.get(driver)
    channels = list(spec.channels) if spec is not None else [1, 2, 3]
    if driver == "simulated":
        channels = [1]
    else:
        out["resource"] = draw(st.sampled_from(["TCPIP0::10.0.0.1::inst0::INSTR",
                                                "GPIB0::5::INSTR", "ASRL1::INSTR"]))  # fmt: skip
        backend = draw(st.sampled_from([None, "@py", "@ivi", "@sim"]))
        if backend is not None:
            out["backend"] = backend
        if backend == "@sim" and draw(st.booleans()):
            out["definitions"] = str(SIM_PSU_DEFINITIONS)
        for key in ("model", "serial"):
            if draw(st.booleans()):
                out[key] = draw(TEXT)
        if draw(st.booleans()):
            out["write_termination"] = draw(st.sampled_from(["", "\n", "\r\n"]))
        if draw(st.booleans()):
            out["timeout_ms"] = draw(st.integers(1, 60_000))
    out["role"] = draw(st.sampled_from(roles))
    out["channel"] = draw(st.sampled_from(channels))
    return out


@st.composite
def rig_dict(draw: st.DrawFn) -> dict[str, Any]:
    """A valid rig file in canonical form (what ``RigFile.to_dict`` writes)."""
    euis = draw(st.lists(st.binary(min_size=8, max_size=8), min_size=30, max_size=30,
                         unique=True))  # fmt: skip
    rig: dict[str, Any] = {"name": draw(NAMES)}
    if draw(st.booleans()):
        rig["description"] = draw(TEXT)
    party_names = draw(st.lists(st.sampled_from(sorted(PARTY_ROLES)), unique=True))
    parties = {name: _hex(euis.pop()) for name in party_names}
    source = draw(st.sampled_from(list(PkiSource)))
    pki: dict[str, Any] = {}
    if source is PkiSource.GENERATED:
        pki["generated"] = True
        if draw(st.booleans()):
            pki["seed"] = draw(st.integers(0, 2**32))
    else:
        pki[source.value] = draw(st.sampled_from(["pki", "keys/keystore.json", "/srv/pki"]))
    pki["parties"] = parties
    mqtt = draw(st.booleans())
    url = f"mqtt://{draw(NAMES)}:{draw(st.integers(1, 65535))}" if mqtt else "in-process"
    data: dict[str, Any] = {"rig": rig, "pki": pki, "bus": {"url": url}}

    place_names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    places = []
    for number, name in enumerate(place_names):
        place: dict[str, Any] = {"name": name}
        if draw(st.booleans()):
            place["description"] = draw(TEXT)
        place["radio"] = draw(radio(euis, f"/dev/ttyUSB{number}"))
        places.append(place)
    data["place"] = places

    instrument_names = draw(st.lists(NAMES, max_size=3, unique=True))
    instruments = []
    for name in instrument_names:
        mains_free = all(i["role"] != "mains" for i in instruments)
        instruments.append(draw(instrument(name, mains_free)))
    if instruments:
        data["instrument"] = instruments
    relays = []
    used = {(i["name"], i["channel"]) for i in instruments}
    for inst in instruments:
        if inst["driver"] == "simulated" or not draw(st.booleans()):
            continue
        spec = INSTRUMENT_CATALOGUE.get(inst["driver"])
        free = [c for c in (spec.channels if spec else (1, 2, 3)) if (inst["name"], c) not in used]
        if free:
            channel = draw(st.sampled_from(sorted(free)))
            used.add((inst["name"], channel))
            relays.append({"name": f"relay-{len(relays)}", "instrument": inst["name"],
                           "channel": channel})  # fmt: skip
    if relays:
        data["relay"] = relays

    devices = []
    for place in places:
        radio_data = place["radio"]
        has_sub = any(b["page"] in SUB_GHZ_PAGES for b in (radio_data, radio_data.get("sub_ghz"))
                      if b)  # fmt: skip
        real_ok = radio_data["driver"] == "ezsp"
        hub_kind = draw(st.sampled_from(["simulated", "real"] if real_ok else ["simulated"]))
        roles = draw(st.lists(st.sampled_from(list(DeviceRole)), max_size=6))
        if DeviceRole.GPF in roles and DeviceRole.CHF not in roles:
            roles.append(DeviceRole.CHF)
        seen_hub: set[DeviceRole] = set()
        for role in roles:
            if role in (DeviceRole.CHF, DeviceRole.GPF):
                if role in seen_hub:
                    continue
                seen_hub.add(role)
                kind = hub_kind
            else:
                kind = draw(st.sampled_from(["simulated", "real"] if real_ok else ["simulated"]))
            if kind == "simulated" and role is DeviceRole.GSME and not has_sub:
                continue
            device: dict[str, Any] = {"name": f"{role.value}-{len(devices)}"}
            if draw(st.booleans()):
                device["description"] = draw(TEXT)
            process = draw(st.sampled_from(["main", "meters"])) if mqtt else "main"
            device.update(
                role=role.value,
                eui=_hex(euis.pop()),
                kind=kind,
                place=place["name"],
                process=process,
            )
            if kind == "simulated" and role in DEFAULT_PROFILES and draw(st.booleans()):
                device["profile"] = DEFAULT_PROFILES[role]
            if kind == "real" and role not in (DeviceRole.CHF, DeviceRole.GPF):
                device["install_code"] = _hex(with_crc(draw(st.binary(min_size=16, max_size=16))))
            if kind == "real" and relays and draw(st.booleans()):
                device["relay"] = draw(st.sampled_from([r["name"] for r in relays]))
            devices.append(device)
    if devices:
        data["device"] = devices
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rig_dict())
def test_valid_rig_dicts_round_trip_through_the_model(data: dict[str, Any]) -> None:
    original = copy.deepcopy(data)
    rig = parse_rig(data)
    assert data == original  # parsing does not touch its input
    assert rig.to_dict() == data
    again = parse_rig(rig.to_dict())
    assert again == rig and isinstance(again, RigFile)
    assert len(rig.devices) == len(data.get("device", []))
    assert rig.pki.parties == {k: bytes.fromhex(v) for k, v in data["pki"]["parties"].items()}


def test_default_parties_are_the_simulated_rigs() -> None:
    rig = parse_rig({"rig": {"name": "x"}, "place": [{"name": "p", "radio": {
        "driver": "simulated", "channel": 11}}]})  # fmt: skip
    assert rig.pki.parties == DEFAULT_PARTIES and rig.pki.party_roles == PARTIES
    assert rig.pki.source is PkiSource.GENERATED and rig.pki.seed is None
    assert rig.bus.kind is BusKind.IN_PROCESS and rig.devices == ()
