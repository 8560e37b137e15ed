"""The standard HIL suites through bellows and the emulated EZSP NCP (issues 5 and 6).

``rigs/ezsp-emulated.toml`` puts the Comms Hub on :class:`gbhil.han.ezsp.radio.EzspRadio`:
the unmodified bellows stack over a pseudo-terminal to gbhil's EZSP emulator, whose
simulated HAN carries the meters, in virtual time. Every suite runs there unchanged, the
long GBCS commands (6.15.1, ECS25, signed activations) crossing the EZSP link as APS
fragments; the whole set takes seconds, so CI runs all of it.

``rigs/mqtt-ezsp-example.toml`` adds the MQTT bus: the meters run in a device host
process behind Mosquitto, the hub behind bellows and the emulator. That rig runs on the
shared real-time clock, so CI runs the representative selection of
tests/test_hil_on_rig_files.py there.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gbhil.bus.mqtt import MosquittoBroker
from tests.test_hil_on_rig_files import (
    RATE,
    REPRESENTATIVE,
    SUITES,
    broker,  # noqa: F401 - the module's Mosquitto fixture
    device_hosts,
    needs_duis_schema,
    rigs_of,
    run_suites,
)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EZSP_RIG = ROOT / "rigs" / "ezsp-emulated.toml"
MQTT_EZSP_RIG = ROOT / "rigs" / "mqtt-ezsp-example.toml"
#: Capabilities the emulated-EZSP rig lacks (tests needing them skip there, by name).
EZSP_RIG_LACKS = ("psu_real",)


def _outcomes(junit: Path) -> list[tuple[str, str]]:
    """(test name, outcome) of every test case in a JUnit XML report."""
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = f"{tag}: {element.get('message', '')}"
        out.append((case.get("name", ""), outcome))
    return out


@needs_duis_schema
def test_every_hil_suite_passes_on_the_emulated_ezsp_rig(pytester: pytest.Pytester) -> None:
    result, junit = run_suites(pytester, [str(SUITES)], EZSP_RIG)
    cases = _outcomes(junit)
    assert len(cases) > 50, "the standard suites were collected"
    assert set(rigs_of(junit)) == {"ezsp-emulated"}
    unexpected = [
        (name, outcome)
        for name, outcome in cases
        if outcome != "passed"
        and not (outcome.startswith("skipped") and any(c in outcome for c in EZSP_RIG_LACKS))
    ]
    assert unexpected == [], unexpected
    assert result.ret == 0


@needs_duis_schema
def test_representative_hil_tests_pass_on_the_mqtt_and_ezsp_rig(
    pytester: pytest.Pytester, broker: MosquittoBroker  # noqa: F811
) -> None:
    tests = [str(SUITES / t) for t in REPRESENTATIVE]
    result, junit = run_suites(pytester, tests, MQTT_EZSP_RIG, broker)
    result.assert_outcomes(passed=len(REPRESENTATIVE))
    assert rigs_of(junit) == ["mqtt-ezsp-example"] * len(REPRESENTATIVE)
    assert device_hosts(broker.port) == [], "the harness left a device host running"


def test_an_mqtt_rig_behind_a_real_stick_or_one_phy_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    from gbhil.rigs.build import RigBuildError, build_rig, unbuildable
    from gbhil.rigs.rigfile import load_rig

    text = MQTT_EZSP_RIG.read_text()
    real = tmp_path / "real.toml"
    emulator = text[text.index("[place.radio.emulator]") : text.index("[[instrument]]")]
    real.write_text(
        text.replace(emulator, "").replace(
            "emulated = true", 'emulated = false\nport = "/dev/ttyUSB7"'
        )
    )
    assert any(
        "the stick at /dev/ttyUSB7 cannot carry simulated devices" in p
        for p in unbuildable(load_rig(real))
    )
    one_phy = tmp_path / "one-phy.toml"
    one_phy.write_text(text.replace("phy_interfaces = 2", "phy_interfaces = 1"))
    with pytest.raises(RigBuildError, match="phy_interfaces = 2"):
        build_rig(one_phy, bus_url="mqtt://127.0.0.1:1", rate=RATE)
