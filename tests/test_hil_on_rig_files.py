"""The standard HIL suites on a rig file with the meters behind an MQTT bus (issues 5, 6).

``rigs/mqtt-example.toml`` puts the Comms Hub, the HHT and the mains in the harness's
process and the ESME, GSME and PPMID in process ``meters``: the harness starts that
process itself (``python -m gbhil.bus.device_host``), and every APS frame, join and
mains command crosses a real Mosquitto this module starts on a free port (the rig file's
``mqtt://localhost:1883`` is overridden with ``--bus-url`` / ``GBHIL_BUS_URL``). Both
processes run the shared real-time clock at ``RATE`` times real time.

The suites run unchanged through pytest in a subprocess. The whole set takes minutes of
wall time at that rate (docs/hil-tests.md gives the figures), so CI runs
``REPRESENTATIVE``: tests from every suite, covering each remote device (the sleepy GSME
at its wake cycle included), the HHT's local delivery, the dual-band configuration, a
mains cut, and firmware pulled by the remote ESME over the HAN from the CHF's OTA server.
After each run no device host may be left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from gbhil.bus.mqtt import MosquittoBroker, find_mosquitto, free_port
from gbhil.bus.split_rig import SplitRigError
from gbhil.pytest_plugin.report import PROP_RIG
from gbhil.rigs.build import BUS_URL_ENV, build_rig

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
RIG_FILE = ROOT / "rigs" / "mqtt-example.toml"
SUITES = ROOT / "hil_tests"
TEMPLATES = ROOT.parent / "shared" / "conformance" / "duis" / "templates"
#: Rig seconds per wall second (the harness default).
RATE = 40.0
#: Wall seconds the inner pytest run may take at most before it counts as hung.
RUN_TIMEOUT_S = 900.0
#: One or more tests of every suite in hil_tests/.
REPRESENTATIVE = (
    "test_smoke.py::test_esme_firmware_version_over_the_han",
    "test_smoke.py::test_ppmid_firmware_version_through_the_acb",
    "test_smoke.py::test_gsme_read_waits_for_the_wake_cycle",
    "test_smoke.py::test_hht_delivers_a_local_command",
    "test_smoke.py::test_mains_cut_of_4_minutes_raises_ecs80_and_ad1",
    "test_dual_band.py::test_set_configuration_with_valid_masks_succeeds_and_raises_dbch09",
    "test_dual_band.py::test_lower_band_page_with_one_channel_is_refused_with_e062802",
    "test_inventory.py::test_read_inventory_shows_the_rig_meters_map_id",
    "test_inventory.py::test_install_no_sm_wan_on_an_esme_is_refused_with_e081401",
    "test_local_delivery.py::test_cv2_meter_read_is_returned_with_8_13",
    "test_local_delivery.py::test_local_delivery_for_other_user_is_refused_with_e17",
    "test_power_outage.py::test_outage_of_3_minutes_or_more_sends_ad1_to_every_user_of_the_meters",
    "test_alert_configuration.py::test_network_operator_alerts_are_set_and_read_back",
    # SR 11.1 to the ESME in the device host: OTA over the broker, 11.3, 11.2 (~0.2 s wall)
    "test_firmware.py::test_update_firmware_reaches_the_esme_over_the_han_and_activates",
    "test_firmware.py::test_version_the_cpl_does_not_list_raises_n21",
)


def _duis_schema_available() -> bool:
    from gbhil.duis.schema import SchemaNotFoundError, resolve_schema_folder

    try:
        resolve_schema_folder()
    except SchemaNotFoundError:
        return False
    return True


needs_duis_schema = pytest.mark.skipif(
    not _duis_schema_available(),
    reason="DUIS schema not found (../shared/conformance/duis/schema or $GBHIL_DUIS_SCHEMA): "
    "the suites' DCC emulator needs it",
)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto); needed for this test")
    with MosquittoBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


def device_hosts(port: int) -> list[int]:
    """PIDs of device hosts connected to the broker on ``port`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gbhil.bus.device_host" in argv and f"127.0.0.1:{port}".encode() in argv:
            out.append(int(entry.name))
    return out


def run_suites(
    pytester: pytest.Pytester,
    tests: list[str],
    rig_file: Path,
    broker: MosquittoBroker | None = None,
) -> tuple[pytest.RunResult, Path]:
    """``tests`` (paths under hil_tests/) through pytest in a subprocess on ``rig_file``
    (at ``RATE`` over ``broker`` when given); the result and its JUnit XML report."""
    junit = pytester.path / "junit.xml"
    bus = [] if broker is None else ["--bus-url", str(broker.address), "--bus-rate", str(RATE)]
    result = pytester.runpytest_subprocess(
        *tests,
        "--rig", str(rig_file),
        *bus,
        "--gbhil-report", str(pytester.path / "report"),
        f"--junitxml={junit}",
        "-p", "no:cacheprovider",
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    return result, junit


def rigs_of(junit: Path) -> list[str]:
    """The rig each test case of a JUnit report ran on (the plugin's property)."""
    return [
        prop.get("value", "")
        for case in ET.parse(junit).getroot().iter("testcase")
        for prop in case.iter("property")
        if prop.get("name") == PROP_RIG
    ]


@needs_duis_schema
def test_representative_hil_tests_pass_on_the_mqtt_rig(
    pytester: pytest.Pytester, broker: MosquittoBroker
) -> None:
    suites = {t.split("::")[0] for t in REPRESENTATIVE}
    every = {p.name for p in SUITES.glob("test_*.py")}
    assert suites == every, "a test of every suite"
    tests = [str(SUITES / t) for t in REPRESENTATIVE]
    result, junit = run_suites(pytester, tests, RIG_FILE, broker)
    result.assert_outcomes(passed=len(REPRESENTATIVE))
    assert rigs_of(junit) == ["mqtt-example"] * len(REPRESENTATIVE), "all on the MQTT rig"
    assert device_hosts(broker.port) == [], "the harness left a device host running"


def _ecs52_read(rig: object, counter: int) -> bytes:
    from tests.test_rig_simulated import _ecs52

    return _ecs52(rig, counter, rig.esme.eui)  # type: ignore[arg-type,attr-defined]


def test_build_rig_hosts_the_meters_elsewhere_and_close_stops_them(
    broker: MosquittoBroker,
) -> None:
    from gbhil.gbcs.frame import Cra
    from gbhil.gbcs.message import decode_message

    rig = build_rig(RIG_FILE, bus_url=str(broker.address), rate=RATE)
    try:
        [host] = rig.hosts
        assert host.name == "meters" and set(host.devices) == {"esme", "gsme", "ppmid"}
        assert device_hosts(broker.port) == [host.process.pid]
        rig.run(rig.start())
        assert all(rig.nodes[n].last_result.accepted for n in host.devices), "joined over MQTT"

        async def read() -> None:
            await rig.send(_ecs52_read(rig, 7000))
            await rig.settle(60)

        rig.run(read())
        [response] = [decode_message(m).frame.gs for m in rig.wan]
        assert response.cra is Cra.RESPONSE and response.business_originator == rig.esme.eui
        assert response.originator_counter == 7000
        counters = rig.side.gateway.counters
        assert counters.published and counters.heard, "frames crossed the broker both ways"
    finally:
        rig.close()
    assert host.process.returncode == 0, host.log_tail()
    assert device_hosts(broker.port) == []


def test_unreachable_broker_is_named_and_no_host_is_started() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(SplitRigError, match=re.escape(f"broker at {url} is not reachable")):
        build_rig(RIG_FILE, bus_url=url, rate=RATE)
    assert device_hosts(int(url.rsplit(":", 1)[1])) == []


def test_bus_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    monkeypatch.setenv(BUS_URL_ENV, url)
    with pytest.raises(SplitRigError, match=re.escape(f"broker at {url} is not reachable")):
        build_rig(RIG_FILE)


@needs_duis_schema
@pytest.mark.skipif(not TEMPLATES.is_dir(), reason=f"DUIS templates not found at {TEMPLATES}")
def test_serve_runs_an_mqtt_rig_file_and_stops_its_device_host(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), BUS_URL_ENV: str(broker.address)}
    cli = [sys.executable, "-m", "gbhil.cli"]
    serve = [*cli, "serve", "--rig", str(RIG_FILE), "--port", "0", "--smki-port", "0"]
    server = subprocess.Popen(
        [*serve, "--work-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line, server.stderr.read() if server.stderr else ""
        ready = json.loads(line)
        assert len(device_hosts(broker.port)) == 1, "the meters run in their own process"
        sent = subprocess.run(
            [*cli, "duis", "send", str(TEMPLATES / "ECS52_11.2_SUCCESS_REQUEST_DUIS.XML"),
             "--url", ready["duis"], "--json", "--timeout", "30"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        items = [json.loads(x) for x in sent.stdout.splitlines()]
        assert [(i["channel"], i["responseCode"]) for i in items][:2] == [
            ("sync", "I99"),
            ("async", "I0"),
        ], "the ESME in the device host answered"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0
    assert device_hosts(broker.port) == []


def test_an_ezsp_rig_without_its_builder_is_refused_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gbhil.rigs.build import RigBuildError, unbuildable
    from gbhil.rigs.rigfile import load_rig

    monkeypatch.setitem(sys.modules, "gbhil.rigs.ezsp_rig", None)  # as if not installed
    bench = ROOT / "rigs" / "bench-example.toml"
    assert unbuildable(load_rig(bench)) == ["EZSP radios: gbhil.rigs.ezsp_rig is not available"]
    with pytest.raises(RigBuildError, match=re.escape("gbhil.rigs.ezsp_rig is not available")):
        build_rig(bench)
