"""The gbhil pytest plugin and ``gbhil run``, exercised through pytester on the embedded rig."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gbhil.cli import main as gbhil_main
from gbhil.pytest_plugin.artefacts import DEVICE_LOG, HAN_PCAP, TRANSCRIPT, folder_name
from gbhil.pytest_plugin.plugin import CAPABILITIES, EMBEDDED_CAPABILITIES, MARKERS
from gbhil.pytest_plugin.report import PROPERTY_PREFIX, format_virtual

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

PCAP_HEADER_LEN = 24
#: Inner runs: no cache folder, no hypothesis statistics, no "already imported" noise.
QUIET = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-W",
    "ignore::pytest.PytestAssertRewriteWarning",
)

ECS52_TEST = """
from gbhil.pytest_plugin import srv, usecase

@usecase("ECS52")
@srv("11.2")
def test_read(dcc, esme):
    sub = dcc.submit(dcc.request("11.2", esme))
    assert sub.await_ack().header.response_code == "I99"
    assert dcc.describe(sub.await_response())["outcome"]["success"]

@usecase("ECS52")
def test_broken(dcc, esme):
    sub = dcc.submit(dcc.request("11.2", esme))
    assert sub.await_ack().header.response_code == "E99", "deliberately wrong"
"""


def _duis_schema_available() -> bool:
    from gbhil.duis.schema import SchemaNotFoundError, resolve_schema_folder

    try:
        resolve_schema_folder()
    except SchemaNotFoundError:
        return False
    return True


#: The DCC emulator validates against the official DUIS XSD, read from ../shared at run time.
needs_duis_schema = pytest.mark.skipif(
    not _duis_schema_available(),
    reason="DUIS schema not found (../shared/conformance/duis/schema or $GBHIL_DUIS_SCHEMA): "
    "the in-process DCC emulator needs it",
)


def _properties(junit: Path) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props: dict[str, list[str]] = {}
        for prop in case.iter("property"):
            props.setdefault(prop.get("name", ""), []).append(prop.get("value", ""))
        out[case.get("name", "")] = props
    return out


def test_markers_work_with_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.usecase("ECS17b")
        @pytest.mark.srv("4.1.1")
        @pytest.mark.needs("esme")
        def test_traced():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", *QUIET)
    result.assert_outcomes(passed=1)
    assert set(MARKERS) == {"usecase", "srv", "needs"}


def test_needs_skips_naming_what_the_rig_lacks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from gbhil.pytest_plugin import needs

        @needs("psu_real")
        def test_bench_only():
            raise AssertionError("must not run on the simulated rig")

        @needs("subghz", "psu")
        def test_simulated_has_these():
            pass
        """
    )
    result = pytester.runpytest("-rs", *QUIET)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*test_needs_skips*lacks psu_real*bench PSU*"])
    assert "psu_real" not in EMBEDDED_CAPABILITIES and "psu_real" in CAPABILITIES


def test_unknown_capability_or_srv_is_an_error_not_a_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from gbhil.pytest_plugin import needs, srv

        @needs("sub-ghz")
        def test_typo_capability():
            pass

        @srv("4.1.99")
        def test_typo_srv():
            pass
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*unknown capability sub-ghz*", "*4.1.99 is not a DUIS*"])


@needs_duis_schema
def test_every_fixture_exists_and_reset_restores_mains(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from gbhil.pytest_plugin.plugin import DccClient, HanView, Hht, Mains, VirtualClock

        def test_fixtures(rig, dcc, clock, han, chf, gpf, esme, gsme, ppmid, hht, psu):
            assert isinstance(dcc, DccClient) and isinstance(clock, VirtualClock)
            assert isinstance(han, HanView) and isinstance(hht, Hht)
            assert isinstance(psu, Mains) and psu.is_on
            assert {d.eui for d in (chf, gpf, esme, gsme, ppmid)} == {
                d.eui for d in rig.devices().values()
            }
            before = clock.now()
            clock.sleep(3600)
            assert (clock.now() - before).total_seconds() == 3600
            psu.off()  # left off on purpose: the next test must find it on

        def test_next_test_gets_mains_back(psu, rig):
            assert psu.is_on
            assert rig.power_events == [], "previous test's events are not this test's"
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)


@needs_duis_schema
def test_artefacts_reach_junit_and_the_html_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_ecs52=ECS52_TEST)
    result = pytester.runpytest("--junitxml=out/junit.xml", "--gbhil-report=out", *QUIET)
    result.assert_outcomes(passed=1, failed=1)
    out = pytester.path / "out"
    props = _properties(out / "junit.xml")["test_read"]
    assert props["usecase"] == ["ECS52"] and props["srv"] == ["11.2"]
    files = {
        name: pytester.path / props[PROPERTY_PREFIX + name][0]
        for name in (HAN_PCAP, TRANSCRIPT, DEVICE_LOG)
    }
    assert files[HAN_PCAP].stat().st_size > PCAP_HEADER_LEN, "the test's frames were captured"
    transcript = files[TRANSCRIPT].read_text()
    assert "ECS52" in transcript and "synchronous answer I99" in transcript
    assert "device -> DCC" in transcript and "MAC verified" in transcript
    assert "esme" in files[DEVICE_LOG].read_text()

    index = (out / "index.html").read_text()
    folder = folder_name("test_ecs52.py::test_read")
    assert f'href="artefacts/{folder}/{HAN_PCAP}"' in index
    assert "test_ecs52.py::test_broken" in index and "deliberately wrong" in index
    assert "1 passed, 1 failed" in index and 'href="junit.xml"' in index


def test_plain_tests_leave_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists()


@needs_duis_schema
def test_alert_waits_fail_in_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from gbhil.pytest_plugin.plugin import DccTimeout

        def test_no_such_alert(dcc, clock):
            before = clock.monotonic()
            with pytest.raises(DccTimeout, match="8F36"):
                dcc.await_alerts(code=0x8F36, within=900)
            assert clock.monotonic() - before == pytest.approx(900)
            assert dcc.watch_alerts(60, code=0x8F36) == []
        """
    )
    pytester.runpytest(*QUIET).assert_outcomes(passed=1)


def test_missing_rig_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_rig(rig):\n    pass\n")
    result = pytester.runpytest("--rig", "no-such-rig.toml", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no-such-rig.toml: no such rig file*"])


def test_rig_files_the_harness_cannot_build_stop_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_rig(rig):\n    pass\n")
    shipped = (ROOT / "rigs" / "simulated.toml").read_text()
    pytester.path.joinpath("other.toml").write_text(
        shipped.replace('eui = "00DB1234567890A0"', 'eui = "00DB1234567890B0"')
    )
    result = pytester.runpytest("--rig", "other.toml", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*cannot build rig 'simulated'*esme 00DB1234567890B0 is not the embedded one*"]
    )


def test_an_mqtt_rig_whose_broker_is_down_stops_the_run_naming_the_url(
    pytester: pytest.Pytester,
) -> None:
    from gbhil.bus.mqtt import free_port

    pytester.makepyfile("def test_uses_rig(rig):\n    pass\n")
    url = f"mqtt://127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    rig = str(ROOT / "rigs" / "mqtt-example.toml")
    result = pytester.runpytest("--rig", rig, "--bus-url", url, *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*the MQTT broker at {url} is not reachable*--bus-url*"])


def test_mqtt_rig_capabilities_come_from_the_file() -> None:
    from gbhil.pytest_plugin.plugin import rig_capabilities
    from gbhil.rigs.rigfile import load_rig

    caps = rig_capabilities(load_rig(ROOT / "rigs" / "mqtt-example.toml"))
    assert {"mqtt", "psu", "subghz", "2.4ghz", "esme", "gsme", "hht", "capture"} <= caps
    assert "virtual_time" not in caps, "virtual time cannot span processes"
    assert "local_devices" not in caps, "the meters run in another process"
    assert not caps & {"psu_real", "ezsp"}


@needs_duis_schema
def test_a_rig_file_names_the_rig_and_its_capabilities(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("rigs").mkdir()
    shipped = (ROOT / "rigs" / "simulated.toml").read_text()
    no_mains = shipped[: shipped.index("[[instrument]]")] + shipped[shipped.index("[[device]]") :]
    pytester.path.joinpath("rigs", "simulated.toml").write_text(no_mains)
    pytester.makepyfile(
        """
        from gbhil.pytest_plugin import needs

        @needs("psu")
        def test_outage():
            raise AssertionError("this rig file has no mains")

        def test_read(dcc, esme):
            assert dcc.submit(dcc.request("11.2", esme)).await_response()
        """
    )
    result = pytester.runpytest("-rs", *QUIET)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*rig 'simulated' lacks psu*"])


@needs_duis_schema
def test_gbhil_run_writes_reports_and_says_where(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    suites = pytester.path / "hil_tests"
    suites.mkdir()
    (suites / "test_tiny.py").write_text(ECS52_TEST)

    status = gbhil_main(["run", "tiny", "--report", "out"])

    printed = capsys.readouterr().out
    assert status == pytest.ExitCode.TESTS_FAILED
    out = pytester.path / "out"
    assert (out / "junit.xml").is_file() and (out / "index.html").is_file()
    assert f"report: {out / 'index.html'}" in printed
    lines = printed.splitlines()
    assert any(
        line.startswith("PASSED") and line.endswith("test_tiny.py::test_read") for line in lines
    )
    assert any(line.startswith("FAILED") and "test_broken" in line for line in lines)
    assert "1 passed, 1 failed" in printed and "deliberately wrong" in printed


def test_gbhil_run_rejects_an_unknown_suite(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    (pytester.path / "hil_tests").mkdir()
    (pytester.path / "hil_tests" / "test_smoke.py").write_text("def test_x():\n    pass\n")

    assert gbhil_main(["run", "nope"]) == pytest.ExitCode.USAGE_ERROR
    err = capsys.readouterr().err
    assert "no suite 'nope'" in err and "smoke" in err


def test_gbhil_run_passes_the_bus_url_to_the_harness(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    from gbhil.bus.mqtt import free_port

    (pytester.path / "hil_tests").mkdir()
    (pytester.path / "hil_tests" / "test_smoke.py").write_text("def test_x(rig):\n    pass\n")
    url = f"mqtt://127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    rig = str(ROOT / "rigs" / "mqtt-example.toml")

    status = gbhil_main(["run", "--rig", rig, "--bus-url", url, "--report", str(pytester.path)])
    assert status == pytest.ExitCode.USAGE_ERROR
    assert f"the MQTT broker at {url} is not reachable" in capsys.readouterr().err


def test_virtual_durations_read_like_clocks() -> None:
    assert format_virtual(240) == "0:04:00.000"
    assert format_virtual(1800.0004) == "0:30:00.000"
    assert format_virtual(0.25) == "0:00:00.250"
