"""Firmware suite: SR 11.1 / 11.4 distribution over the HAN, 11.3 activation, 11.2 read.

Black box, so it runs unchanged on every rig, meters in the harness's process or in a
device host behind MQTT: images reach a device only the way they do in the field, from
the CHF's OTA server (in the hub's process on every rig) over the HAN, and a transfer's
end is seen at the CHF (its OTA progress: every octet served, Upgrade End SUCCESS, which
the device sends once the image is staged). A staged image's hash is proven by the 11.3
that activates it.

The first tests stage an image with the CSP's delivery to the CHF (what SR 11.1 does
after the DCC's checks, here for any version, listed or not) and activate it with the
critical 11.3 (CV 4 pre-command, signed by the supplier, CV 5). The version the CS06
outcome, the 0x00CA future-dated activation alert and the 11.2 reads (ECS52 for the ESME
and CHF, GCS38 for the GSME) report is checked by the DCC against the SMI and the CPL
(seed 004 table 41): N49 after an 11.2 only, to the IS/GS that did not send it; N50
(Removed: SMI updated) and N51 (not listed: SMI kept) after 11.2, 11.3 or 0x8F66.

The distribution tests build and sign real GBCS OTA images with :mod:`gbhil.firmware`, list
them on the CPL, and send them with SR 11.1 (ESME, GSME) or SR 11.4 (the rig's SMETS2
PPMID): the DCC checks them, the CHF offers them on the HAN and the devices pull them
block by block, across a mains cut. The negatives assert the DCC alerts N18-N21 of seed 004
5.9.3 and the W110101 warning that keeps SMETS2 PPMIDs out of 11.1 (seed 004 CR1045).
The CHF's offered images are put back after every test; see :func:`_restore_firmware`
for the devices and their SMI records. Each test uses versions of its own, so none
depends on what ran before it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from lxml import etree

from gbhil.dcc.cpl import CplEntry, CplStatus, DeviceModel
from gbhil.dcc.inventory import DeviceStatus, DeviceType, NewDevice
from gbhil.devices import firmware
from gbhil.devices.core import Device
from gbhil.devices.trust import Role
from gbhil.duis.codes import ACKNOWLEDGED, UPDATE_FIRMWARE_WARNING
from gbhil.duis.model import format_eui
from gbhil.firmware import FirmwareManifest, ImageSpec, build_image, decode_image
from gbhil.han.network import DEFAULT_IMAGE_TYPE, DEFAULT_MANUFACTURER_CODE
from gbhil.han.ota import DEFAULT_MAX_DATA_SIZE, OtaHeader, TransferProgress
from gbhil.han.zcl_frames import OtaStatus
from gbhil.pytest_plugin import srv, usecase
from gbhil.pytest_plugin.plugin import DccClient, Submission, VirtualClock
from gbhil.rigs.simulated import PARTIES

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
VERSION_N50_READ = "01000108"
#: Versions the SMI is set to before an 11.2 to the GSME / CHF reports the running one.
VERSION_GSME_OLD = "0.9.1"
VERSION_CHF_OLD = "00000109"
#: The device objects are the devices on the HAN: their slots can be put back (and read).
LOCAL = "local_devices"
#: Manufacturer images the activation tests stage: a quick transfer of a few blocks.
STAGE_OCTETS = 512
#: Rig seconds a transfer may take: to an always-on device (Image Notify, then the
#: blocks), and to the GSME (up to a 30-minute wake interval first).
TRANSFER_S = 300.0
GSME_TRANSFER_S = 3600.0
#: Rig seconds between looks at the CHF's OTA progress while a transfer runs.
POLL_S = 5.0

#: The version each Device was last seen to run (CS06 outcomes, 11.2 reads), by DUIS
#: Device ID, for :func:`_restore_firmware` on rigs whose meters it cannot reset.
_SEEN_RUNNING: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _restore_firmware(dcc: DccClient, rig: Any, capabilities: frozenset[str]
                      ) -> Iterator[None]:
    """Later tests see the CHF's OTA server as it was, and SMI records that match what
    the devices run (else their next 11.2 raises N49-N51 for an earlier test's doing).

    Where the device objects are the devices on the HAN, their slots and SMI records are
    put back. Elsewhere (meters in a device host) a meter keeps what it runs, so the
    ESME's and GSME's SMI records are set to the version last seen running, listed on
    the CPL if it is not (an SMI version the CPL lacks makes the DCC refuse with E57)."""
    if LOCAL not in capabilities:
        images = list(rig.hub.ota.images)
        yield
        rig.hub.ota.images[:] = images
        for device in (d for d in (rig.esme, rig.gsme) if d is not None):  # bench: maybe none
            seen = _SEEN_RUNNING.get(_eui(device))
            if seen is not None and _smi_version(dcc, device) != seen:
                _relist_smi(dcc, device, seen)
        return
    devices = (rig.esme, rig.gsme, rig.ppmid)
    saved = {d.eui: dataclasses.replace(firmware.slots(d)) for d in devices}
    smi = {d.eui: dcc.inventory.get(format_eui(d.eui)).firmware_version for d in devices}
    images = list(rig.hub.ota.images)
    gsme_checks = rig.nodes["gsme"].check_firmware
    yield
    rig.hub.ota.images[:] = images
    rig.nodes["gsme"].check_firmware = gsme_checks
    for device in devices:
        fw, old = firmware.slots(device), saved[device.eui]
        fw.running_version, fw.running_hash = old.running_version, old.running_hash
        fw.staged_version, fw.staged_hash = old.staged_version, old.staged_hash
        if smi[device.eui] is not None:
            dcc.inventory.update_details(format_eui(device.eui),
                                         firmware_version=smi[device.eui])


def _await_transfer(rig: Any, clock: VirtualClock, device: Device, image: bytes,
                    within: float = TRANSFER_S) -> TransferProgress:
    """The CHF's record of ``device`` pulling ``image``, once the device has ended it."""
    key = (device.eui, OtaHeader.decode(image).file_version)
    deadline = clock.monotonic() + within
    while (progress := rig.hub.ota.progress.get(key)) is None or progress.end_status is None:
        assert clock.monotonic() < deadline, (
            f"{_eui(device)} did not finish pulling 0x{key[1]:08X} from the CHF within "
            f"{within:g} s: {progress}")
        clock.sleep(POLL_S)
    return progress


def _stage(dcc: DccClient, rig: Any, clock: VirtualClock, device: Device, version: str,
           ) -> FirmwareManifest:
    """The precondition: ``version`` staged in the device's spare slot, by the CSP's
    delivery to the CHF and OTA over the HAN (no CPL check: any version can be staged)."""
    image, manifest = _image(dcc, rig, device, version,
                             payload=_payload(type(device).__name__, version, STAGE_OCTETS))
    delivery = dcc.emulator.processor.firmware.delivery
    assert clock.run(delivery.deliver(_eui(rig.chf), image, [_eui(device)])) == frozenset()
    assert _await_transfer(rig, clock, device, image).end_status is OtaStatus.SUCCESS
    return manifest


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
    outcome = dict(summary["payload"]["executionOutcome"])
    _SEEN_RUNNING[summary["header"]["businessOriginatorId"]] = str(
        outcome["firmwareVersion"]).upper()
    return outcome


def _read_version(dcc: DccClient, esme: Device, user: Role = Role.SUPPLIER) -> str:
    response = dcc.submit(dcc.request("11.2", esme, user=user)).await_response()
    summary = dcc.describe(response)
    assert summary["outcome"]["success"] is True
    version = str(summary["payload"]["data"][0]["octet-string"]).upper()
    _SEEN_RUNNING[_eui(esme)] = version
    return version


def _list_on_cpl(dcc: DccClient, manifest: FirmwareManifest) -> CplEntry:
    """The image's version, Current on the CPL for the device's model, with its hash."""
    return dcc.emulator.cpl.add(manifest.cpl_entry())


def _smi_version(dcc: DccClient, esme: Device) -> str:
    return str(dcc.inventory.get(format_eui(esme.eui)).firmware_version)


@usecase("CS06", "ECS52")
@srv("11.3", "11.2")
def test_immediate_activation_runs_the_staged_image(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    manifest = _stage(dcc, rig, clock, esme, VERSION_IMMEDIATE)
    _list_on_cpl(dcc, manifest)

    outcome = _outcome(dcc, _activate(dcc, esme, manifest.image_hash))

    assert outcome["responseCode"] == ACTIVATED
    assert str(outcome["firmwareVersion"]).upper() == VERSION_IMMEDIATE
    assert _smi_version(dcc, esme) == VERSION_IMMEDIATE, "Current on the CPL: SMI updated"
    assert _read_version(dcc, esme) == VERSION_IMMEDIATE
    assert not dcc.watch_alerts(60, code=N49), "N49 follows 11.2 only, and the SMI matches"


@usecase("CS06")
@srv("11.3")
def test_future_dated_activation_raises_8f66_when_due(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    manifest = _stage(dcc, rig, clock, esme, VERSION_FUTURE)
    before = _read_version(dcc, esme)
    at = (clock.now() + dt.timedelta(hours=1)).replace(microsecond=0)

    submission = _activate(dcc, esme, manifest.image_hash, at)

    accepted = dcc.describe(submission.await_response())
    assert accepted["payload"] == {"commandAccepted": True}, "accepted for later"
    assert not dcc.watch_alerts(1800, code=FUTURE_DATED_OK), "nothing before its time"
    assert _read_version(dcc, esme) == before
    [alert] = dcc.await_alerts(code=FUTURE_DATED_OK, user=Role.SUPPLIER, within=3600)
    assert alert.at >= at
    summary = dcc.describe(alert)
    assert summary["header"]["messageCode"] == CS06_ALERT_MESSAGE_CODE
    [n51] = dcc.await_alerts(code=N51, user=Role.SUPPLIER)  # VERSION_FUTURE is not listed
    assert n51.at >= at
    assert _smi_version(dcc, esme) == before
    assert _read_version(dcc, esme) == VERSION_FUTURE


@usecase("CS06")
@srv("11.3")
def test_activation_with_the_wrong_hash_is_refused_with_hash_mismatch(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    """Negative: CS06 response code 2 (Hash Mismatch); the running image stays."""
    running = _read_version(dcc, esme)
    _stage(dcc, rig, clock, esme, VERSION_MISMATCH)

    outcome = _outcome(dcc, _activate(dcc, esme, bytes(32)))

    assert outcome["responseCode"] == HASH_MISMATCH
    assert str(outcome["firmwareVersion"]).upper() == running
    assert _read_version(dcc, esme) == running


def _run_unlisted(dcc: DccClient, rig: Any, clock: VirtualClock, esme: Device, version: str,
                  ) -> FirmwareManifest:
    """The ESME runs ``version``, activated while the CPL did not list it: the CS06
    outcome's N51 left the SMI as it was, so the DCC does not know the version yet."""
    old = _smi_version(dcc, esme)
    manifest = _stage(dcc, rig, clock, esme, version)
    assert _outcome(dcc, _activate(dcc, esme, manifest.image_hash))["responseCode"] == ACTIVATED
    dcc.await_alerts(code=N51, user=Role.SUPPLIER)
    assert _smi_version(dcc, esme) == old
    return manifest


@usecase("ECS52")
@srv("11.2")
def test_version_read_by_another_user_raises_n49_to_the_supplier(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    """The ESME runs a Current version the SMI does not know (activated before its CPL
    entry existed): the network operator's read updates the SMI and tells the supplier
    with N49; the reader itself gets none."""
    _list_on_cpl(dcc, _run_unlisted(dcc, rig, clock, esme, VERSION_N49))

    assert _read_version(dcc, esme, user=Role.NETWORK_OPERATOR) == VERSION_N49

    [alert] = dcc.await_alerts(code=N49, user=Role.SUPPLIER)
    assert alert.code == N49
    assert _smi_version(dcc, esme) == VERSION_N49
    assert not dcc.watch_alerts(60, code=N49, user=Role.NETWORK_OPERATOR)


@usecase("CS06")
@srv("11.3")
def test_activation_to_a_version_removed_from_the_cpl_raises_n50(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    """Negative: the activated version's CPL entry is Removed -> N50 from the CS06 outcome
    itself, SMI updated; a later 11.2 finds the SMI matching and raises nothing more."""
    manifest = _stage(dcc, rig, clock, esme, VERSION_N50)
    entry = _list_on_cpl(dcc, manifest)
    dcc.emulator.cpl.remove(entry.entry_id)

    outcome = _outcome(dcc, _activate(dcc, esme, manifest.image_hash))
    assert outcome["responseCode"] == ACTIVATED

    dcc.await_alerts(code=N50, user=Role.SUPPLIER)
    assert _smi_version(dcc, esme) == VERSION_N50
    assert _read_version(dcc, esme) == VERSION_N50
    assert len(dcc.watch_alerts(60, code=N50)) == 1


@usecase("ECS52")
@srv("11.2")
def test_version_read_removed_from_the_cpl_raises_n50_to_the_reader_too(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    """N50 after 11.2 has no 'did not submit' exception: the reading supplier gets it."""
    manifest = _run_unlisted(dcc, rig, clock, esme, VERSION_N50_READ)
    dcc.emulator.cpl.remove(_list_on_cpl(dcc, manifest).entry_id)
    assert not dcc.watch_alerts(1, code=N50), "no N50 before the read"

    assert _read_version(dcc, esme) == VERSION_N50_READ

    dcc.await_alerts(code=N50, user=Role.SUPPLIER)
    assert _smi_version(dcc, esme) == VERSION_N50_READ
    smi = dcc.inventory.get(format_eui(esme.eui))
    assert smi.status is DeviceStatus.COMMISSIONED, "N50: Device Status not Suspended"


@usecase("CS06", "ECS52")
@srv("11.3", "11.2")
def test_version_not_on_the_cpl_raises_n51(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    """Negative: a version the CPL does not list -> N51 on the CS06 outcome and again on
    the 11.2 read; the SMI keeps the old version throughout."""
    old = _smi_version(dcc, esme)
    manifest = _stage(dcc, rig, clock, esme, VERSION_N51)
    assert _outcome(dcc, _activate(dcc, esme, manifest.image_hash))["responseCode"] == ACTIVATED
    dcc.await_alerts(code=N51, user=Role.SUPPLIER)
    assert _smi_version(dcc, esme) == old

    assert _read_version(dcc, esme) == VERSION_N51

    dcc.await_alerts(2, code=N51, user=Role.SUPPLIER)
    assert _smi_version(dcc, esme) == old
    assert not [a for a in dcc.alerts if a.code in (N49, N50)]


def _relist_smi(dcc: DccClient, device: Device, version: str) -> str:
    """List ``version`` on the CPL for the device's model (if it is not) and make it the
    SMI's; returns the SMI's version before, which the device runs where the SMI matches."""
    smi = dcc.inventory.get(format_eui(device.eui))
    running = str(smi.firmware_version)
    model = DeviceModel(smi.manufacturer, smi.model, smi.hardware_version)
    current = dcc.emulator.cpl.entry_for(model, running)
    assert current is not None
    if dcc.emulator.cpl.entry_for(model, version) is None:
        dcc.emulator.cpl.add(replace(current, firmware_version=version, entry_id=0,
                                     status=CplStatus.CURRENT))
    dcc.inventory.update_details(format_eui(device.eui), firmware_version=version)
    return running


@usecase("GCS38")
@srv("11.2")
def test_gsme_version_read_gcs38_by_the_network_operator_raises_n49(
    dcc: DccClient, gsme: Device
) -> None:
    """GCS38 (ZCL, through the GPF) counts like ECS52: the GSME's Current version goes into
    the SMI and its Gas Supplier, who did not ask, gets N49."""
    running = _relist_smi(dcc, gsme, VERSION_GSME_OLD)
    try:
        response = dcc.submit(dcc.request("11.2", gsme, user=Role.NETWORK_OPERATOR)
                              ).await_response(within=7200)
        summary = dcc.describe(response)
        assert summary["outcome"]["success"] is True
        [record] = summary["payload"]["components"][0]["payload"]["records"]
        reported = bytes.fromhex(record["value"]).decode("ascii")
        _SEEN_RUNNING[_eui(gsme)] = reported

        [alert] = dcc.await_alerts(code=N49, user=Role.SUPPLIER)
        assert alert.code == N49
        assert str(dcc.inventory.get(_eui(gsme)).firmware_version) == reported
        assert not dcc.watch_alerts(1, code=N49, user=Role.NETWORK_OPERATOR)
    finally:
        dcc.inventory.update_details(_eui(gsme), firmware_version=running)


@usecase("ECS52")
@srv("11.2")
def test_chf_version_read_by_the_network_operator_raises_n49(
    dcc: DccClient, chf: Device
) -> None:
    running = _relist_smi(dcc, chf, VERSION_CHF_OLD)
    try:
        assert _read_version(dcc, chf, user=Role.NETWORK_OPERATOR) == running

        dcc.await_alerts(code=N49, user=Role.SUPPLIER)
        assert str(dcc.inventory.get(_eui(chf)).firmware_version) == running
    finally:
        dcc.inventory.update_details(_eui(chf), firmware_version=running)


# --- SR 11.1 / 11.4 distribution over the HAN ------------------------------------------------

#: DCC alerts of seed 004 5.9.3 (table 41) on a failed distribution.
N18, N19, N20, N21 = "N18", "N19", "N20", "N21"
CLUSTER_OTA = 0x0019
#: Manufacturer images: small enough for a quick transfer, many 64-octet blocks.
PAYLOAD_OCTETS = 2048
#: Above the CSP's per-hub limit (gbhil.firmware.distribution, 1 MiB [assumption]).
TOO_LARGE_OCTETS = 1024 * 1024 + 1
#: Blocks the ESME gets before the mains goes off in the power-cut test.
BLOCKS_BEFORE_CUT = 10
OUTAGE_S = 60.0
#: A Device in the SMI that no Comms Hub of the rig serves (N19).
UNREACHABLE_ESME = "00-DB-12-34-56-78-90-B0"

VERSION_OTA_ESME = "01000201"
VERSION_OTA_GSME = "01000202"
VERSION_OTA_PPMID = "01000203"
VERSION_POWER_CUT = "01000204"
VERSION_N18 = "01000205"
VERSION_N19 = "01000206"
VERSION_N20 = "01000207"
VERSION_N21 = "01000208"
VERSION_SMETS2_PPMID = "01000209"


def _payload(name: str, version: str, octets: int = PAYLOAD_OCTETS) -> bytes:
    seed = f"gbhil {name} manufacturer image {version} ".encode()
    return (seed * (octets // len(seed) + 1))[:octets]


def _image(dcc: DccClient, rig: Any, device: Device, version: str, *, signed: bool = True,
           payload: bytes | None = None) -> tuple[bytes, FirmwareManifest]:
    """A GBCS OTA image for ``device`` built (and signed by the supplier) with gbhil.firmware."""
    spec = ImageSpec(DEFAULT_MANUFACTURER_CODE, DEFAULT_IMAGE_TYPE, int(version, 16),
                     b"gbhil hil test image")
    signer = rig.keystore.ds_private(PARTIES[Role.SUPPLIER]) if signed else None
    data = build_image(payload or _payload(type(device).__name__, version), spec,
                       signer=signer, max_octets=len(payload or b"") + 4096)
    smi = dcc.inventory.get(format_eui(device.eui))
    manifest = FirmwareManifest.for_image(
        decode_image(data, signed=signed, max_octets=len(data)), len(data),
        device_type=smi.device_type, manufacturer=smi.manufacturer, model=smi.model,
        hardware_version=smi.hardware_version, gbcs_versions=("4.0",))
    return data, manifest


def _update(dcc: DccClient, image: bytes, version: str, targets: list[str],
            srv: str = "11.1") -> Submission:
    element = "UpdateFirmware" if srv == "11.1" else "UpdatePPMIDFirmware"
    body = (f"<sr:{element}><sr:FirmwareImage>{base64.b64encode(image).decode()}"
            f"</sr:FirmwareImage><sr:FirmwareVersion>{version}</sr:FirmwareVersion>"
            f"<sr:DeviceIDList>{','.join(targets)}</sr:DeviceIDList></sr:{element}>")
    return dcc.submit(dcc.request(srv, PARTIES[Role.ACB], body=body, cv=8))


def _ack_code(submission: Submission) -> str:
    return str(submission.await_ack().header.response_code)


def _warning_lists(submission: Submission) -> dict[str, list[str]]:
    """The DSPUpdate(PPMID)FirmwareWarning lists of the synchronous answer."""
    xml = etree.fromstring(submission.await_ack().to_xml())
    found: dict[str, list[str]] = {}
    for element in xml.iter():
        name = etree.QName(element).localname
        if name.endswith("List") and element.text:
            found[name] = element.text.split(",")
    return found


def _failure(alert: Any) -> tuple[str, list[str]]:
    """UpdateFirmwareRequestID and MeterIDs of a FirmwareDistributionFailure alert."""
    xml = etree.fromstring(alert.response.to_xml())
    text = {etree.QName(e).localname: e.text for e in xml.iter()}
    assert "FirmwareDistributionFailure" in text
    return str(text["UpdateFirmwareRequestID"]), str(text["MeterIDs"]).split(",")


def _eui(device: Device) -> str:
    return format_eui(device.eui)


def _offered(rig: Any, version: str) -> bool:
    return any(i.header.file_version == int(version, 16) for i in rig.hub.ota.images)


def _activate_and_read(dcc: DccClient, device: Device, manifest: FirmwareManifest) -> None:
    """11.3 with the image's hash runs it; the CS06 outcome reports the new version."""
    outcome = _outcome(dcc, _activate(dcc, device, manifest.image_hash))
    assert outcome["responseCode"] == ACTIVATED
    assert str(outcome["firmwareVersion"]).upper() == manifest.firmware_version


@usecase("CS06", "ECS52")
@srv("11.1", "11.3", "11.2")
def test_update_firmware_reaches_the_esme_over_the_han_and_activates(
    dcc: DccClient, rig: Any, esme: Device, clock: VirtualClock
) -> None:
    image, manifest = _image(dcc, rig, esme, VERSION_OTA_ESME)
    dcc.emulator.cpl.add(manifest.cpl_entry())

    submission = _update(dcc, image, VERSION_OTA_ESME, [_eui(esme)])

    assert _ack_code(submission) == ACKNOWLEDGED
    progress = _await_transfer(rig, clock, esme, image)
    assert progress.end_status is OtaStatus.SUCCESS, "pulled by OTA, parsed and staged"
    assert progress.octets == len(image), "every octet came over the HAN from the CHF"
    assert not dcc.watch_alerts(1, code=N18) and not dcc.watch_alerts(1, code=N21)
    _activate_and_read(dcc, esme, manifest)  # the staged image's hash is the CPL's
    assert _read_version(dcc, esme) == VERSION_OTA_ESME
    assert _smi_version(dcc, esme) == VERSION_OTA_ESME, "Current on the CPL: SMI updated"


@usecase("CS06")
@srv("11.1", "11.3")
def test_update_firmware_reaches_the_sleepy_gsme_at_its_wake(
    dcc: DccClient, rig: Any, gsme: Device, clock: VirtualClock, capabilities: frozenset[str]
) -> None:
    image, manifest = _image(dcc, rig, gsme, VERSION_OTA_GSME)
    dcc.emulator.cpl.add(manifest.cpl_entry())

    assert _ack_code(_update(dcc, image, VERSION_OTA_GSME, [_eui(gsme)])) == ACKNOWLEDGED

    progress = _await_transfer(rig, clock, gsme, image, GSME_TRANSFER_S)
    assert progress.end_status is OtaStatus.SUCCESS and progress.octets == len(image)
    _activate_and_read(dcc, gsme, manifest)
    if LOCAL in capabilities:  # the device object is the GSME on the HAN
        assert firmware.slots(gsme).running_version.hex().upper() == VERSION_OTA_GSME


@usecase("CS06", "CS08")
@srv("11.4", "11.3", "11.2")
def test_update_ppmid_firmware_reaches_the_smets2_ppmid_without_n49_n51(
    dcc: DccClient, rig: Any, ppmid: Device, clock: VirtualClock, capabilities: frozenset[str]
) -> None:
    """SR 11.4 carries the unsigned PPMID image; N49-N51 are for SMETS1 PPMIDs only
    (seed 004 CR1045), so the SMETS2 PPMID's new version raises none of them."""
    image, manifest = _image(dcc, rig, ppmid, VERSION_OTA_PPMID, signed=False)
    dcc.emulator.cpl.add(manifest.cpl_entry())
    smi_before = dcc.inventory.get(_eui(ppmid)).firmware_version

    assert _ack_code(_update(dcc, image, VERSION_OTA_PPMID, [_eui(ppmid)], "11.4")) == (
        ACKNOWLEDGED)

    progress = _await_transfer(rig, clock, ppmid, image)
    assert progress.end_status is OtaStatus.SUCCESS and progress.octets == len(image)
    _activate_and_read(dcc, ppmid, manifest)
    if LOCAL in capabilities:  # the device object is the PPMID on the HAN
        assert firmware.slots(ppmid).running_version.hex().upper() == VERSION_OTA_PPMID
    assert not [a for a in dcc.watch_alerts(60) if a.code in (N49, N50, N51)]
    assert dcc.inventory.get(_eui(ppmid)).firmware_version == smi_before


@usecase("CS06")
@srv("11.1", "11.3")
def test_update_firmware_rejects_the_smets2_ppmid_with_w110101(
    dcc: DccClient, rig: Any, esme: Device, ppmid: Device, clock: VirtualClock
) -> None:
    """Seed 004 CR1045: 11.1 serves SMETS1 PPMIDs and keeps rejecting SMETS2 ones; the
    other Devices of the list still get the image."""
    image, manifest = _image(dcc, rig, esme, VERSION_SMETS2_PPMID)
    dcc.emulator.cpl.add(manifest.cpl_entry())

    submission = _update(dcc, image, VERSION_SMETS2_PPMID, [_eui(esme), _eui(ppmid)])

    assert _ack_code(submission) == UPDATE_FIRMWARE_WARNING
    assert _warning_lists(submission) == {"InvalidDeviceIDList": [_eui(ppmid)]}
    assert _await_transfer(rig, clock, esme, image).end_status is OtaStatus.SUCCESS
    [served] = [i for i in rig.hub.ota.images if i.data == image]
    assert served.targets == {esme.eui}, "the CHF offers it to the ESME alone"
    assert (ppmid.eui, int(VERSION_SMETS2_PPMID, 16)) not in rig.hub.ota.progress
    refused = _outcome(dcc, _activate(dcc, ppmid, manifest.image_hash))
    assert refused["responseCode"] != ACTIVATED, "the PPMID never staged it"


@usecase("CS06", "ECS52")
@srv("11.1", "11.3", "11.2")
def test_mains_cut_mid_transfer_resumes_where_it_stopped(
    dcc: DccClient, rig: Any, han: Any, psu: Any, esme: Device, clock: VirtualClock,
    capabilities: frozenset[str],
) -> None:
    """Seen at the CHF: the blocks it served before the cut, none while off, and after
    power-on the ESME's first block request is where its kept bytes end."""
    image, manifest = _image(dcc, rig, esme, VERSION_POWER_CUT,
                             payload=_payload("ESME", VERSION_POWER_CUT, 4 * PAYLOAD_OCTETS))
    dcc.emulator.cpl.add(manifest.cpl_entry())
    key = (esme.eui, int(VERSION_POWER_CUT, 16))
    local = LOCAL in capabilities
    state: dict[str, int] = {}

    def cut_mid_transfer(captured: Any) -> None:
        frame = captured.frame
        progress = rig.hub.ota.progress.get(key)
        if ("served" in state or frame.cluster_id != CLUSTER_OTA
                or progress is None or progress.blocks < BLOCKS_BEFORE_CUT):
            return
        psu.supply.set_output(False)  # the block on air is lost with the power
        state["served"] = progress.blocks
        if local:  # what the ESME keeps (its "flash"), readable where it runs here
            state["kept"] = rig.nodes["esme"].ota.download.offset

    remove_tap = han.medium.add_tap(cut_mid_transfer)
    try:
        assert _ack_code(_update(dcc, image, VERSION_POWER_CUT, [_eui(esme)])) == ACKNOWLEDGED
        deadline = clock.monotonic() + TRANSFER_S
        while "served" not in state:
            assert clock.monotonic() < deadline, "the transfer never reached the cut"
            clock.sleep(POLL_S)
    finally:
        remove_tap()
    clock.sleep(OUTAGE_S)
    assert not psu.is_on
    progress = rig.hub.ota.progress[key]
    before = list(progress.offsets)
    assert len(before) == state["served"], "the CHF served nothing while the mains was off"
    assert progress.end_status is None, "nothing staged yet: no Upgrade End"
    stopped = progress.highest_offset
    assert 0 < stopped < len(image)

    psu.on()
    assert _await_transfer(rig, clock, esme, image).end_status is OtaStatus.SUCCESS

    after = progress.offsets[len(before):]
    assert progress.offsets.count(0) == 1, "resumed: the start of the file was asked for once"
    # the last block served may have been lost on air with the power, or kept
    assert after[0] in (before[-1], stopped), "the first request after power-on"
    if local:
        assert after[0] == state["kept"]
    assert max(after) + DEFAULT_MAX_DATA_SIZE >= len(image), "then on to the end"
    _activate_and_read(dcc, esme, manifest)
    assert _read_version(dcc, esme) == VERSION_POWER_CUT


def _rejected(dcc: DccClient, rig: Any, submission: Submission, code: str,
              device_ids: list[str], version: str, esme: Device) -> None:
    """The DSP passed it on (I99), the CSP raised ``code`` naming the Devices, and no
    image was offered on the HAN."""
    assert _ack_code(submission) == ACKNOWLEDGED
    [alert] = dcc.await_alerts(code=code, user=Role.SUPPLIER)
    request_id, meters = _failure(alert)
    assert request_id == str(submission.request_id)
    assert meters == device_ids
    assert not _offered(rig, version)


@usecase("CS06")
@srv("11.1")
def test_image_not_matching_the_cpl_hash_raises_n18(
    dcc: DccClient, rig: Any, esme: Device
) -> None:
    """Negative: the CPL lists another image under that version -> N18."""
    _, listed = _image(dcc, rig, esme, VERSION_N18)
    dcc.emulator.cpl.add(listed.cpl_entry())
    image, _ = _image(dcc, rig, esme, VERSION_N18,
                      payload=_payload("tampered ESME", VERSION_N18))

    submission = _update(dcc, image, VERSION_N18, [_eui(esme)])

    _rejected(dcc, rig, submission, N18, [_eui(esme)], VERSION_N18, esme)


@usecase("CS06")
@srv("11.1")
def test_device_no_comms_hub_serves_raises_n19(
    dcc: DccClient, rig: Any, esme: Device
) -> None:
    """Negative: an ESME in the SMI (Commissioned, the supplier's) linked to no Comms Hub."""
    smi = dcc.inventory.get(_eui(esme))
    dcc.inventory.add_device(NewDevice(UNREACHABLE_ESME, DeviceType.ESME, smi.manufacturer,
                                       smi.model, smi.hardware_version, smi.firmware_version),
                             status=DeviceStatus.COMMISSIONED)
    dcc.inventory.set_party(UNREACHABLE_ESME, "IS", dcc.user_eui(Role.SUPPLIER))
    try:
        image, manifest = _image(dcc, rig, esme, VERSION_N19)
        dcc.emulator.cpl.add(manifest.cpl_entry())

        submission = _update(dcc, image, VERSION_N19, [UNREACHABLE_ESME])

        _rejected(dcc, rig, submission, N19, [UNREACHABLE_ESME], VERSION_N19, esme)
    finally:
        dcc.inventory.delete(UNREACHABLE_ESME)


@usecase("CS06")
@srv("11.1")
def test_image_too_large_for_the_csp_raises_n20(
    dcc: DccClient, rig: Any, esme: Device
) -> None:
    payload = _payload("ESME", VERSION_N20, TOO_LARGE_OCTETS)
    image, manifest = _image(dcc, rig, esme, VERSION_N20, payload=payload)
    dcc.emulator.cpl.add(manifest.cpl_entry())

    submission = _update(dcc, image, VERSION_N20, [_eui(esme)])

    _rejected(dcc, rig, submission, N20, [_eui(esme)], VERSION_N20, esme)


@usecase("CS06")
@srv("11.1")
def test_version_the_cpl_does_not_list_raises_n21(
    dcc: DccClient, rig: Any, esme: Device
) -> None:
    image, _ = _image(dcc, rig, esme, VERSION_N21)  # never listed

    submission = _update(dcc, image, VERSION_N21, [_eui(esme)])

    _rejected(dcc, rig, submission, N21, [_eui(esme)], VERSION_N21, esme)
