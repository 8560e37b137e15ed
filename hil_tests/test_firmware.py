"""Firmware suite: SR 11.3 activation (CS06) on the ESME and the SR 11.2 read-back.

The image is staged on the ESME with ``gbhil.devices.firmware.slots(esme).stage(...)``
(what a completed OTA over the HAN leaves behind), then activated with the critical 11.3
(CV 4 pre-command, signed by the supplier, CV 5). The version read back with 11.2 is
checked by the DCC against the SMI and the CPL (seed 004 table 41: N49 / N50 / N51).
The ESME's firmware slots are put back after every test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from gbhil.dcc.cpl import CplEntry, CplStatus, DeviceModel
from gbhil.devices import firmware
from gbhil.devices.core import Device
from gbhil.devices.trust import Role
from gbhil.duis.codes import ACKNOWLEDGED
from gbhil.duis.model import format_eui
from gbhil.pytest_plugin import srv, usecase
from gbhil.pytest_plugin.plugin import DccClient, Submission, VirtualClock

#: CS06 response codes (GBCS): success, no staged image, hash mismatch.
ACTIVATED = 0
HASH_MISMATCH = 2
#: GBCS alert 0x8F66 "Future dated execution of instruction successful" (CS06: 0x00CA).
FUTURE_DATED_OK = 0x8F66
CS06_ALERT_MESSAGE_CODE = "0x00CA"
#: DCC alerts of seed 004 table 41 on a firmware version change.
N49, N50, N51 = "N49", "N50", "N51"

#: One new version per test: the DCC (SMI, CPL) lives for the session and CPL entries
#: can be removed but never deleted or amended (seed 001 4.4).
VERSION_IMMEDIATE = "01000102"
VERSION_FUTURE = "01000103"
VERSION_N49 = "01000104"
VERSION_N50 = "01000105"
VERSION_N51 = "01000106"
VERSION_MISMATCH = "01000107"


@pytest.fixture(autouse=True)
def _restore_esme_firmware(dcc: DccClient, esme: Device) -> Iterator[None]:
    """Later tests see the ESME and its SMI record as they were."""
    fw = firmware.slots(esme)
    saved = (fw.running_version, fw.running_hash, fw.staged_version, fw.staged_hash)
    smi = _smi_version(dcc, esme)
    yield
    fw.running_version, fw.running_hash, fw.staged_version, fw.staged_hash = saved
    dcc.inventory.update_details(format_eui(esme.eui), firmware_version=smi)


def _stage(esme: Device, version: str) -> bytes:
    """The precondition: a complete image in the ESME's spare slot; returns its hash."""
    image = f"gbhil ESME manufacturer image {version}".encode()
    return firmware.slots(esme).stage(image, bytes.fromhex(version))


def _activate(dcc: DccClient, esme: Device, image_hash: bytes, at: dt.datetime | None = None,
              ) -> Submission:
    when = ""
    if at is not None:
        stamp = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        when = f"<sr:ExecutionDateTime>{stamp}</sr:ExecutionDateTime>"
    body = (f"<sr:ActivateFirmware>{when}"
            f"<sr:FirmwareHash>{image_hash.hex().upper()}</sr:FirmwareHash></sr:ActivateFirmware>")
    pre = dcc.submit(dcc.request("11.3", esme, body=body, cv=4))
    assert pre.pre_command is not None, "CV 4 returns the pre-command"
    submission = dcc.submit_signed(pre)
    assert submission.await_ack().header.response_code == ACKNOWLEDGED
    return submission


def _outcome(dcc: DccClient, submission: Submission) -> dict[str, Any]:
    summary = dcc.describe(submission.await_response())
    assert summary["header"]["useCase"] == "CS06"
    return dict(summary["payload"]["executionOutcome"])


def _read_version(dcc: DccClient, esme: Device, user: Role = Role.SUPPLIER) -> str:
    response = dcc.submit(dcc.request("11.2", esme, user=user)).await_response()
    summary = dcc.describe(response)
    assert summary["outcome"]["success"] is True
    return str(summary["payload"]["data"][0]["octet-string"]).upper()


def _list_on_cpl(dcc: DccClient, esme: Device, version: str, image_hash: bytes) -> CplEntry:
    """A CPL entry for the ESME's model with ``version`` (the running one's, renamed)."""
    smi = dcc.inventory.get(format_eui(esme.eui))
    model = DeviceModel(smi.manufacturer, smi.model, smi.hardware_version)
    current = dcc.emulator.cpl.entry_for(model, smi.firmware_version)
    assert current is not None
    return dcc.emulator.cpl.add(replace(current, firmware_version=version,
                                        firmware_hash=image_hash, entry_id=0,
                                        status=CplStatus.CURRENT))


def _smi_version(dcc: DccClient, esme: Device) -> str:
    return str(dcc.inventory.get(format_eui(esme.eui)).firmware_version)


@usecase("CS06", "ECS52")
@srv("11.3", "11.2")
def test_immediate_activation_runs_the_staged_image(dcc: DccClient, esme: Device) -> None:
    image_hash = _stage(esme, VERSION_IMMEDIATE)
    _list_on_cpl(dcc, esme, VERSION_IMMEDIATE, image_hash)

    outcome = _outcome(dcc, _activate(dcc, esme, image_hash))

    assert outcome["responseCode"] == ACTIVATED
    assert str(outcome["firmwareVersion"]).upper() == VERSION_IMMEDIATE
    assert _read_version(dcc, esme) == VERSION_IMMEDIATE
    assert _smi_version(dcc, esme) == VERSION_IMMEDIATE, "Current on the CPL: SMI updated"
    assert not dcc.watch_alerts(60, code=N49), "no N49 to the supplier who read it"


@usecase("CS06")
@srv("11.3")
def test_future_dated_activation_raises_8f66_when_due(
    dcc: DccClient, esme: Device, clock: VirtualClock
) -> None:
    image_hash = _stage(esme, VERSION_FUTURE)
    before = dcc.describe(dcc.submit(dcc.request("11.2", esme)).await_response())
    at = (clock.now() + dt.timedelta(hours=1)).replace(microsecond=0)

    submission = _activate(dcc, esme, image_hash, at)

    accepted = dcc.describe(submission.await_response())
    assert accepted["payload"] == {"commandAccepted": True}, "accepted for later"
    assert not dcc.watch_alerts(1800, code=FUTURE_DATED_OK), "nothing before its time"
    assert _read_version(dcc, esme) == before["payload"]["data"][0]["octet-string"].upper()
    [alert] = dcc.await_alerts(code=FUTURE_DATED_OK, user=Role.SUPPLIER, within=3600)
    assert alert.at >= at
    summary = dcc.describe(alert)
    assert summary["header"]["messageCode"] == CS06_ALERT_MESSAGE_CODE
    assert _read_version(dcc, esme) == VERSION_FUTURE


@usecase("CS06")
@srv("11.3")
def test_activation_with_the_wrong_hash_is_refused_with_hash_mismatch(
    dcc: DccClient, esme: Device
) -> None:
    """Negative: CS06 response code 2 (Hash Mismatch); the running image stays."""
    running = firmware.slots(esme).running_version.hex().upper()
    _stage(esme, VERSION_MISMATCH)

    outcome = _outcome(dcc, _activate(dcc, esme, bytes(32)))

    assert outcome["responseCode"] == HASH_MISMATCH
    assert str(outcome["firmwareVersion"]).upper() == running
    assert _read_version(dcc, esme) == running


@usecase("CS06", "ECS52")
@srv("11.3", "11.2")
def test_version_read_by_another_user_raises_n49_to_the_supplier(
    dcc: DccClient, esme: Device
) -> None:
    image_hash = _stage(esme, VERSION_N49)
    _list_on_cpl(dcc, esme, VERSION_N49, image_hash)
    assert _outcome(dcc, _activate(dcc, esme, image_hash))["responseCode"] == ACTIVATED
    # the supplier's own read would update the SMI silently; the network operator's does not
    assert _read_version(dcc, esme, user=Role.NETWORK_OPERATOR) == VERSION_N49

    [alert] = dcc.await_alerts(code=N49, user=Role.SUPPLIER)
    assert alert.code == N49
    assert _smi_version(dcc, esme) == VERSION_N49


@usecase("CS06", "ECS52")
@srv("11.3", "11.2")
def test_version_removed_from_the_cpl_raises_n50(dcc: DccClient, esme: Device) -> None:
    """Negative: the activated version's CPL entry is Removed -> N50, SMI updated."""
    image_hash = _stage(esme, VERSION_N50)
    entry = _list_on_cpl(dcc, esme, VERSION_N50, image_hash)
    dcc.emulator.cpl.remove(entry.entry_id)
    assert _outcome(dcc, _activate(dcc, esme, image_hash))["responseCode"] == ACTIVATED

    assert _read_version(dcc, esme) == VERSION_N50

    dcc.await_alerts(code=N50, user=Role.SUPPLIER)
    assert _smi_version(dcc, esme) == VERSION_N50


@usecase("CS06", "ECS52")
@srv("11.3", "11.2")
def test_version_not_on_the_cpl_raises_n51(dcc: DccClient, esme: Device) -> None:
    """Negative: a version the CPL does not list -> N51; the SMI keeps the old one."""
    old = _smi_version(dcc, esme)
    image_hash = _stage(esme, VERSION_N51)
    assert _outcome(dcc, _activate(dcc, esme, image_hash))["responseCode"] == ACTIVATED

    assert _read_version(dcc, esme) == VERSION_N51

    dcc.await_alerts(code=N51, user=Role.SUPPLIER)
    assert _smi_version(dcc, esme) == old
    assert not [a for a in dcc.alerts if a.code in (N49, N50)]
