"""Acceptance of the simulated devices against real RTDS commands (issue: simulated devices)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gbhil.cli import main
from gbhil.devices.coverage import run_coverage, scenarios

#: Use cases covered per device type: every RTDS use case of every simulated device.
FLOORS = {"ESME": 91, "CHF": 14, "GPF": 8, "PPMID": 3, "HCALCS": 2, "GSME": 51}


def test_coverage_per_device_type(rtds_dir: Path) -> None:
    reports = run_coverage(rtds_dir)
    got = {k: (len(r.covered), len(r.total)) for k, r in reports.items()}
    print("coverage:", got)  # the fraction per device type, reported with -s
    for kind, floor in FLOORS.items():
        assert got[kind][0] >= floor, (kind, got[kind], reports[kind].failures[:3])
    assert all(len(r.total) > 0 for r in reports.values())


def test_alerts_pair_with_their_commands(rtds_dir: Path) -> None:
    """8F66 alert files name the alert before the scenario; they still pair up."""
    paired = [s for s in scenarios(rtds_dir) if s.alerts]
    assert len(paired) >= 15
    assert any("8F66" in a.name for s in paired for a in s.alerts)


def test_cli_json_and_exit_status(rtds_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    # A corpus of one covered use case passes ...
    src = rtds_dir / "8.11_CCS02"
    shutil.copytree(src, tmp_path / src.name)
    assert main(["devices", "coverage", "--rtds", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"CHF": {"covered": 1, "total": 1, "failures": []}}
    # ... and a tampered response makes it fail with the use case, file and reason.
    rsp = next((tmp_path / src.name).glob("*SUCCESS_RESPONSE*"))
    raw = bytearray(bytes.fromhex(rsp.read_text()))
    raw[-20] ^= 0xFF  # the DLMS result code region: structure no longer matches
    rsp.write_text(raw.hex().upper())
    rc = main(["devices", "coverage", "--rtds", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    failure = out["CHF"]["failures"][0]
    assert failure["use_case"] == "CCS02" and failure["file"].endswith("_COMMAND_GBCS.HEX")
    assert failure["reason"]
