"""``gbhil rig check``: every resource of the bench example OK against pyvisa-sim and the
emulated radio; each broken resource named with its exact problem; the JSON report."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gbhil.cli import main
from gbhil.han.ezsp.probe import ProbeResult as RadioProbeResult
from gbhil.rigs.check import (
    EMULATOR_CERTIFICATE,
    CheckProblem,
    CheckResult,
    ResourceKind,
    _radio_result,
    check_rig,
    emulator_config,
)
from gbhil.rigs.instruments import SIM_PSU_DEFINITIONS
from gbhil.rigs.rigfile import load_rig, parse_rig
from gbhil.smki import generate_pki

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "rigs" / "bench-example.toml"
SIM_DEFINITIONS_LINE = 'definitions = "../gbhil/rigs/instruments/sim/psu.yaml"'
MISSING_PORT = "/dev/serial/by-id/usb-gbhil-no-such-stick-if00"
#: Debian installs the broker in /usr/sbin, often not on a user's PATH.
MOSQUITTO = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
BROKER_START_POLLS = 200
BROKER_START_POLL_S = 0.05


def bench_copy(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The bench example in ``tmp_path``, with each ``(old, new)`` text replaced once."""
    text = BENCH.read_text()
    text = text.replace(SIM_DEFINITIONS_LINE, f'definitions = "{SIM_PSU_DEFINITIONS}"')
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} is not once in {BENCH.name}"
        text = text.replace(old, new)
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def by_label(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.label: r for r in results}


def codes(result: CheckResult) -> list[CheckProblem]:
    return [f.code for f in result.problems]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().out


# -- the bench example, all OK ---------------------------------------------------------


def test_bench_example_every_resource_ok(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_cli(capsys, "rig", "check", str(BENCH))
    assert status == 0, out
    lines = out.splitlines()
    labels = ["rig-file", "pki", "bus", "radio bench", "instrument psu", "instrument aux",
              "relay esme-contactor"]  # fmt: skip
    assert [line[6:28].strip() for line in lines[:-1]] == labels
    assert all(line.startswith("OK ") for line in lines[:-1]), out
    assert lines[-1] == "7 checks: all OK"
    radio = next(line for line in lines if "radio bench" in line)
    assert "EZSP emulator on /dev/" in radio and "EZSP v14" in radio and "2 PHY" in radio
    assert "CBKE certificate" in radio and "page 28 channel 5" in radio
    assert "RIGOL TECHNOLOGIES DP832 (s/n DP8C000000001" in out
    assert "mains on channel 1 (CH1)" in out
    assert "Keysight Technologies E36312A (s/n MY00000036" in out
    assert "aux channel 2 (CH2) feeds esme" in out


def test_bench_example_results_carry_what_was_found() -> None:
    results = by_label(check_rig(BENCH))
    radio = results["radio bench"].details
    assert radio["emulated"] and radio["protocol_version"] == 14
    assert radio["phy_interfaces"] == 2 and radio["cbke_certificate"] is True
    psu = results["instrument psu"].details
    assert psu["driver"] == "rigol-dp832" and psu["role"] == "mains"
    assert psu["identity"] == "RIGOL TECHNOLOGIES,DP832,DP8C000000001,00.01.16"
    assert results["instrument aux"].details["driver"] == "keysight-e36312a"


# -- broken resources, each named -----------------------------------------------------


def test_missing_port_wrong_resource_and_wrong_identity_are_each_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bench_copy(
        tmp_path,
        ("emulated = true\n", f'port = "{MISSING_PORT}"\n'),
        (
            "[place.radio.emulator]\nprotocol_version = 14\nphy_interfaces = 2\n"
            "cbke_certificate = true\n",
            "",
        ),
        ("TCPIP0::192.168.0.32::inst0::INSTR", "TCPIP0::192.168.0.42::inst0::INSTR"),
        ('serial = "MY00000036"', 'serial = "MY99999999"'),
    )
    results = by_label(check_rig(path))
    radio = results["radio bench"]
    assert codes(radio) == [CheckProblem.MISSING_PORT]
    assert f"serial port {MISSING_PORT} does not exist" in radio.problems[0].message
    psu = results["instrument psu"]
    assert codes(psu) == [CheckProblem.INSTRUMENT_MISSING]
    assert psu.problems[0].message == "TCPIP0::192.168.0.42::inst0::INSTR: no such VISA resource"
    aux = results["instrument aux"]
    assert codes(aux) == [CheckProblem.WRONG_IDENTITY]
    assert "expected serial 'MY99999999', found Keysight Technologies E36312A (s/n MY00000036" in (
        aux.problems[0].message
    )
    relay = results["relay esme-contactor"]
    assert codes(relay) == [CheckProblem.INSTRUMENT_FAILED]
    assert "instrument 'aux' failed its check" in relay.problems[0].message
    assert all(results[k].ok for k in ("rig-file", "pki", "bus"))

    status, out = run_cli(capsys, "rig", "check", str(path))
    assert status == 1
    assert "FAIL  radio bench" in out and f"missing-port: serial port {MISSING_PORT}" in out
    assert "instrument-missing: TCPIP0::192.168.0.42::inst0::INSTR: no such VISA resource" in out
    assert "wrong-identity: TCPIP0::192.168.0.36::inst0::INSTR: expected serial" in out
    assert out.splitlines()[-1] == "7 checks: 4 failed"


def test_wrong_firmware_unsupported_band_and_no_certificate(tmp_path: Path) -> None:
    path = bench_copy(
        tmp_path,
        ('stack_min = "7.4.0"', 'stack_min = "8.1.0"'),  # the emulator plays EmberZNet 8.0.2
        ("phy_interfaces = 2", "phy_interfaces = 1"),  # a 2.4 GHz-only stick
        ("cbke_certificate = true", "cbke_certificate = false"),
    )
    radio = by_label(check_rig(path))["radio bench"]
    assert codes(radio) == [
        CheckProblem.WRONG_FIRMWARE,
        CheckProblem.UNSUPPORTED_BAND,
        CheckProblem.NO_CBKE_CERTIFICATE,
    ]
    messages = [f.message for f in radio.problems]
    assert "EmberZNet 8.0.2.0 build 0 is older than the 8.1.0 the rig needs" in messages[0]
    assert "1 PHY interface (2.4 GHz only)" in messages[1]
    assert "real SMETS2 devices will not join" in messages[2]


def test_newer_firmware_than_the_rig_allows_and_another_stick() -> None:
    rig = load_rig(BENCH)
    place = rig.places[0]
    found = RadioProbeResult(
        "/dev/ttyUSB0", protocol_version=19, eui64=bytes.fromhex("0011223344556677")
    )
    plain = _radio_result(place, found, "/dev/ttyUSB0")
    assert codes(plain) == [CheckProblem.WRONG_FIRMWARE]
    assert "EZSP protocol 19, newer than the rig file's ezsp_versions 13..18" in (
        plain.problems[0].message
    )
    pinned = replace(place, radio=replace(place.radio, eui=bytes.fromhex("00DB123456789EEE")))
    result = _radio_result(pinned, found, "/dev/ttyUSB0")
    assert codes(result) == [CheckProblem.WRONG_FIRMWARE, CheckProblem.WRONG_RADIO]
    assert "EUI-64 0011223344556677, the rig file expects 00DB123456789EEE" in (
        result.problems[1].message
    )


def test_emulator_follows_the_rig_unless_told() -> None:
    rig = load_rig(BENCH)
    config = emulator_config(rig, rig.places[0])
    assert config.protocol_version == 14 and config.phy_interfaces == 2
    assert config.certificate_283k1 == EMULATOR_CERTIFICATE
    assert (config.initial_channel, config.sub_ghz_page, config.sub_ghz_channel) == (15, 28, 5)


def test_instrument_driver_channel_and_backend_problems(tmp_path: Path) -> None:
    path = bench_copy(
        tmp_path,
        ('driver = "rigol-dp832"', 'driver = "keysight-e36312a"'),  # pinned, but it is a DP832
        ('role = "supply"\nchannel = 1', 'role = "supply"\nchannel = 1\nwrite_termination = "\\n"'),
    )
    results = by_label(check_rig(path))
    psu = results["instrument psu"]
    assert codes(psu) == [CheckProblem.WRONG_IDENTITY]
    assert "says driver 'keysight-e36312a', but the instrument is RIGOL" in psu.problems[0].message
    assert results["instrument aux"].ok

    path = bench_copy(
        tmp_path,
        (
            'resource = "TCPIP0::192.168.0.36::inst0::INSTR"',
            'resource = "TCPIP0::192.168.0.103::inst0::INSTR"',
        ),
        ('model = "E36312A"\nserial = "MY00000036"', 'model = "E36103A"'),
        ("channel = 2\n", "channel = 3\n"),
    )
    results = by_label(check_rig(path))
    assert results["instrument aux"].ok  # auto: a single-output E36103A, channel 1
    relay = results["relay esme-contactor"]
    assert codes(relay) == [CheckProblem.NO_SUCH_CHANNEL]
    assert "Keysight E36103A (aux) has no channel 3 (channels: 1)" in relay.problems[0].message

    path = bench_copy(
        tmp_path,
        ('"rigol-dp832"\nbackend = "@sim"\ndefinitions', '"rigol-dp832"\nbackend = "@nope"\n#'),
    )
    psu = by_label(check_rig(path))["instrument psu"]
    assert codes(psu) == [CheckProblem.VISA_BACKEND]
    assert "cannot open VISA backend @nope" in psu.problems[0].message


def test_mute_and_unknown_instruments(tmp_path: Path) -> None:
    path = bench_copy(
        tmp_path,
        (
            'resource = "TCPIP0::192.168.0.36::inst0::INSTR"',
            'resource = "TCPIP0::192.168.0.99::inst0::INSTR"',
        ),
        ('model = "E36312A"\nserial = "MY00000036"\n', ""),
    )
    aux = by_label(check_rig(path))["instrument aux"]
    assert codes(aux) == [CheckProblem.UNKNOWN_INSTRUMENT]
    assert "no driver for ACME INSTRUMENTS PS-9000" in aux.problems[0].message


# -- PKI, bus, invalid files -----------------------------------------------------------


def test_pki_folder_loadable_and_complete(tmp_path: Path) -> None:
    rig = load_rig(BENCH)
    devices = {d.eui.hex(): d.device_type.value for d in rig.devices if d.name != "gsme"}
    parties = {name: eui.hex() for name, eui in rig.pki.parties.items()}
    generate_pki(tmp_path / "pki", organisations=parties, devices=devices, seed=3)
    path = bench_copy(tmp_path, ("generated = true\nseed = 7", f'folder = "{tmp_path / "pki"}"'))
    pki = by_label(check_rig(path))["pki"]
    assert codes(pki) == [CheckProblem.PKI_INCOMPLETE]
    assert pki.problems[0].message == "simulated gsme (00DB1234567890A1) lacks its private keys"

    path = bench_copy(tmp_path, ("generated = true\nseed = 7", 'folder = "no-such-pki"'))
    pki = by_label(check_rig(path))["pki"]
    assert codes(pki) == [CheckProblem.PKI_UNLOADABLE]
    assert "no-such-pki: no such file or directory" in pki.problems[0].message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_broker_unreachable(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there once the socket is closed
    path = bench_copy(tmp_path, ('url = "in-process"', f'url = "mqtt://127.0.0.1:{port}"'))
    bus = by_label(check_rig(path))["bus"]
    assert codes(bus) == [CheckProblem.BROKER_UNREACHABLE]
    assert f"MQTT broker 127.0.0.1:{port} not reachable" in bus.problems[0].message


@pytest.fixture()
def mosquitto(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto on a free port (skipped when it is not installed)."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    port = _free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
    try:
        for _ in range(BROKER_START_POLLS):  # readiness, not a timed assertion
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited with status {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(BROKER_START_POLL_S)
        else:
            pytest.fail(f"mosquitto did not listen on port {port}")
        yield port
    finally:
        proc.terminate()
        proc.wait()


def test_broker_reachable(tmp_path: Path, mosquitto: int) -> None:
    path = bench_copy(tmp_path, ('url = "in-process"', f'url = "mqtt://127.0.0.1:{mosquitto}"'))
    bus = by_label(check_rig(path))["bus"]
    assert bus.ok, bus
    assert bus.summary == f"mqtt://127.0.0.1:{mosquitto}: broker accepted a connection"


def test_invalid_rig_file_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bench_copy(tmp_path, ("channel = 15", "channel = 30"))
    results = check_rig(path)
    assert [r.kind for r in results] == [ResourceKind.RIG_FILE]
    assert codes(results[0]) == [CheckProblem.INVALID_RIG_FILE]
    assert "[place.radio] of place #1 'bench': key 'channel': channel 30 is not on page 0" in (
        results[0].problems[0].message
    )
    status, out = run_cli(capsys, "rig", "check", str(tmp_path / "missing.toml"))
    assert status == 1 and "no such rig file" in out


# -- JSON and show ---------------------------------------------------------------------


def _check_shape(doc: dict[str, Any]) -> None:
    assert set(doc) == {"rig", "file", "ok", "checks"}
    for check in doc["checks"]:
        assert set(check) == {"kind", "name", "ok", "summary", "problems", "details"}
        assert check["kind"] in {k.value for k in ResourceKind}
        assert isinstance(check["ok"], bool) and isinstance(check["summary"], str)
        assert check["ok"] == (check["problems"] == [])
        for problem in check["problems"]:
            assert set(problem) == {"code", "message"}
            assert problem["code"] in {c.value for c in CheckProblem}


def test_json_output_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_cli(capsys, "rig", "check", str(BENCH), "--json")
    doc = json.loads(out)
    assert status == 0
    _check_shape(doc)
    assert (doc["rig"], doc["file"], doc["ok"]) == ("bench-example", str(BENCH), True)
    assert [(c["kind"], c["name"]) for c in doc["checks"]] == [
        ("rig-file", "bench-example"), ("pki", "pki"), ("bus", "bus"), ("radio", "bench"),
        ("instrument", "psu"), ("instrument", "aux"), ("relay", "esme-contactor"),
    ]  # fmt: skip
    radio = doc["checks"][3]["details"]
    assert radio["protocol_version"] == 14 and radio["eui64"] == "00DB123456789EEE"

    broken = bench_copy(tmp_path, ("emulated = true\n", f'port = "{MISSING_PORT}"\n'),
                        ("[place.radio.emulator]\n", "[place.radio.x]\n"))  # fmt: skip
    status, out = run_cli(capsys, "rig", "check", str(broken), "--json")
    doc = json.loads(out)
    assert status == 1 and doc["ok"] is False and doc["rig"] is None
    _check_shape(doc)
    [invalid] = doc["checks"]
    assert invalid["problems"][0]["code"] == "invalid-rig-file"
    assert "key 'x': unknown key" in invalid["problems"][0]["message"]


def test_show_prints_the_rig_and_its_canonical_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run_cli(capsys, "rig", "show", str(BENCH))
    assert status == 0
    assert "place bench: EZSP emulator on a pty, page 0 channel 15 + page 28 channel 5" in out
    assert "needs EZSP 13..18, EmberZNet >= 7.4.0, sub-GHz PHY, CBKE certificate" in out
    assert "relay esme-contactor: aux channel 2, feeds esme" in out
    status, out = run_cli(capsys, "rig", "show", str(BENCH), "--json")
    assert status == 0 and parse_rig(json.loads(out), path=BENCH) == load_rig(BENCH)


def test_show_reports_problems_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = bench_copy(tmp_path, ('role = "mains"', 'role = "main"'))
    assert main(["rig", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "[[instrument]] #1 'psu': key 'role': 'main' is not one of: mains, supply" in err


def test_bus_url_override_probes_that_broker_instead(
    tmp_path: Path, mosquitto: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CI job's broker on a free port is checked, as ``gbhil run --bus-url`` would use it."""
    dead = _free_port()
    path = bench_copy(tmp_path, ('url = "in-process"', f'url = "mqtt://127.0.0.1:{dead}"'))
    live = f"mqtt://127.0.0.1:{mosquitto}"
    assert by_label(check_rig(path, bus_url=live))["bus"].ok
    monkeypatch.setenv("GBHIL_BUS_URL", live)
    assert by_label(check_rig(path))["bus"].ok, "the environment variable counts too"
    bus = by_label(check_rig(path, bus_url="mqtt://:1883"))["bus"]
    assert codes(bus) == [CheckProblem.BROKER_UNREACHABLE]
    assert "broker host must not be empty" in bus.problems[0].message
