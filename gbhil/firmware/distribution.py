"""The DCC side of SR 11.1 Update Firmware and SR 11.4 Update PPMID Firmware.

1. **DSP, synchronous** (:meth:`FirmwareService.accept`). Each ID of ``DeviceIDList`` is
   checked against the Smart Metering Inventory; the ones that cannot take the image are
   listed in ``DSPUpdateFirmwareWarning`` / ``DSPUpdatePPMIDFirmwareWarning`` with
   W110101 (I99 when every Device is fine):

   * ``InvalidDeviceIDList``: not in the SMI; a Device type the SRV does not serve (11.1:
     ESME, GSME, CHF and SMETS1 PPMID, "continuing to reject SMETS2 PPMIDs", seed 004
     CR1045; 11.4: PPMID); or the User is not a Responsible Supplier (IS/GS) for it.
   * ``NotCommissionedDeviceIDList``: an SMI status other than Commissioned.
   * ``OtherRequestInProgressList``: an earlier image for that Device is still with the
     CSP or on its way over the HAN.

2. **CSP, asynchronous** (:meth:`FirmwareService.distribute`), each failure a DCC alert
   with a ``FirmwareDistributionFailure`` body (UpdateFirmwareRequestID, MeterIDs) to the
   request's sender (seed 004 5.9.3 table 41; the body per seed 003's alert table):

   * **N20** image too large: the decoded image exceeds what the CSP can hold for a Comms
     Hub, :attr:`FirmwarePolicy.csp_max_image_octets` (1 MiB by default **[assumption]**:
     no public figure; the DSP's own cap is the XSD's 10 240 000 octets). All Devices.
   * **N18** version / hash mismatch: the image is not a well-formed GBCS OTA image of the
     SRV's form (signed for 11.1, unsigned for 11.4), so no hash can be calculated (all
     Devices), or the SHA-256 of its Manufacturer Image differs from the hash the CPL
     holds for ``FirmwareVersion`` and the Device's model (per Device).
   * **N21** unknown firmware version: the CPL has no entry (Current or Removed) for
     ``FirmwareVersion`` and the Device's model (per Device).
   * **N19** Device ID identification failure: the SMI links the Device to no Comms Hub,
     or the Comms Hub's HAN does not have it (per Device; without a CSP link, every one).

   The rest go to their Comms Hub through :class:`FirmwareDelivery` (on the simulated rig
   :class:`gbhil.firmware.rig_delivery.HanOtaDelivery`: the CHF's OTA server offers the
   image to those Devices, which pull it over the HAN, resuming after a power cut).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from lxml import etree

from gbhil.dcc.cpl import Cpl, DeviceModel
from gbhil.dcc.inventory import (
    AssociationKind,
    Device,
    DeviceStatus,
    DeviceType,
    Inventory,
)
from gbhil.dcc.inventory_requests import AlertNotice, ServiceOutcome, UserContext
from gbhil.duis import codes as duis_codes
from gbhil.duis.alerts import dcc_alert_code
from gbhil.duis.model import Request, format_eui
from gbhil.duis.schema import SR_NS
from gbhil.firmware.image import FirmwareImageError, decode_image, image_hash

log = logging.getLogger(__name__)

UPDATE_FIRMWARE: Final = "11.1"
UPDATE_PPMID_FIRMWARE: Final = "11.4"
FIRMWARE_SRVS: Final = frozenset({UPDATE_FIRMWARE, UPDATE_PPMID_FIRMWARE})

#: Request body element and warning body element per SRV (XSD).
_BODY: Final = {UPDATE_FIRMWARE: "UpdateFirmware", UPDATE_PPMID_FIRMWARE: "UpdatePPMIDFirmware"}
_WARNING: Final = {UPDATE_FIRMWARE: "DSPUpdateFirmwareWarning",
                   UPDATE_PPMID_FIRMWARE: "DSPUpdatePPMIDFirmwareWarning"}
#: SMETS2 Device types each SRV serves (a SMETS1 PPMID is also served by 11.1, seed 004).
_TARGETS: Final = {UPDATE_FIRMWARE: frozenset({DeviceType.ESME, DeviceType.GSME,
                                               DeviceType.CHF}),
                   UPDATE_PPMID_FIRMWARE: frozenset({DeviceType.PPMID})}
#: 11.1 images carry the supplier signature trailer, 11.4 (PPMID) images do not.
_SIGNED: Final = {UPDATE_FIRMWARE: True, UPDATE_PPMID_FIRMWARE: False}

ACKNOWLEDGED: Final = duis_codes.ACKNOWLEDGED
#: The SR 11.1 / 11.4 warning (catalogued; seed 004 CR1045 amends its condition).
UPDATE_FIRMWARE_WARNING: Final = duis_codes.UPDATE_FIRMWARE_WARNING

HASH_MISMATCH: Final = dcc_alert_code("N18").code
DEVICE_NOT_IDENTIFIED: Final = dcc_alert_code("N19").code
IMAGE_TOO_LARGE: Final = dcc_alert_code("N20").code
UNKNOWN_VERSION: Final = dcc_alert_code("N21").code

#: [assumption] what the CSP accepts for one Comms Hub: no public figure was found.
DEFAULT_CSP_MAX_IMAGE_OCTETS: Final = 1024 * 1024


class FirmwareDelivery(Protocol):
    """The CSP's link to a Comms Hub: hand it the image for ``targets`` (canonical EUIs).
    Returns the targets the Comms Hub does not know (N19)."""

    async def deliver(self, comms_hub: str, image: bytes, targets: Sequence[str],
                      ) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class FirmwarePolicy:
    csp_max_image_octets: int = DEFAULT_CSP_MAX_IMAGE_OCTETS


@dataclass(frozen=True, slots=True)
class UpdateFirmwareRequest:
    """The parts of an 11.1 / 11.4 body the DCC uses."""

    srv: str
    request_id: str
    sender: str
    image: bytes
    firmware_version: str
    device_ids: tuple[str, ...]


@dataclass(slots=True)
class DistributionReport:
    """What the CSP step did with one request: per alert code the Devices, and the rest."""

    failures: dict[str, list[str]] = field(default_factory=dict)
    delivered: list[str] = field(default_factory=list)


def _sr(local: str) -> str:
    return f"{{{SR_NS}}}{local}"


def parse_request(request: Request) -> UpdateFirmwareRequest:
    """Read the body the XSD has already validated (base64, version, EUI list)."""
    srv = request.header.service_reference_variant
    body = request.body
    if body.tag != _sr(_BODY[srv]):
        raise ValueError(f"SRV {srv} request without sr:{_BODY[srv]}")
    text = {etree.QName(e).localname: (e.text or "").strip() for e in body}
    try:
        image = base64.b64decode("".join(text["FirmwareImage"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("FirmwareImage is not base64") from None
    ids = tuple(format_eui(part) for part in text["DeviceIDList"].split(","))
    header = request.header
    return UpdateFirmwareRequest(srv, str(header.request_id), header.business_originator_id,
                                 image, text["FirmwareVersion"], ids)


class FirmwareService:
    """SR 11.1 / 11.4 in the DCC (see the module docstring)."""

    def __init__(self, *, inventory: Inventory, cpl: Cpl,
                 delivery: FirmwareDelivery | None = None,
                 policy: FirmwarePolicy | None = None) -> None:
        self.inventory = inventory
        self.cpl = cpl
        self.delivery = delivery
        self.policy = policy or FirmwarePolicy()
        self.in_progress: set[str] = set()
        self.reports: dict[str, DistributionReport] = {}

    # --- DSP ------------------------------------------------------------------------------

    def accept(self, update: UpdateFirmwareRequest, user: UserContext,
               ) -> tuple[ServiceOutcome, tuple[str, ...]]:
        """The synchronous answer and the Devices that go on to the CSP."""
        lists: dict[str, list[str]] = {"InvalidDeviceIDList": [],
                                       "NotCommissionedDeviceIDList": [],
                                       "OtherRequestInProgressList": []}
        valid: list[str] = []
        for device_id in dict.fromkeys(update.device_ids):
            problem = self._dsp_problem(update.srv, device_id, user)
            if problem is None:
                valid.append(device_id)
            else:
                lists[problem].append(device_id)
        if not any(lists.values()):
            return ServiceOutcome(ACKNOWLEDGED, detail="all Devices accepted"), tuple(valid)
        warning = etree.Element(_sr(_WARNING[update.srv]), nsmap={"sr": SR_NS})
        for name, ids in lists.items():
            if ids:
                etree.SubElement(warning, _sr(name)).text = ",".join(ids)
        detail = "; ".join(f"{k}: {','.join(v)}" for k, v in lists.items() if v)
        return ServiceOutcome(UPDATE_FIRMWARE_WARNING, warning, detail=detail), tuple(valid)

    def _dsp_problem(self, srv: str, device_id: str, user: UserContext) -> str | None:
        device = self.inventory.find(device_id)
        if device is None or not self._served(srv, device):
            return "InvalidDeviceIDList"
        if user.user_id not in self.inventory.responsible_suppliers(device.device_id) or not (
                user.roles & {"IS", "GS"}):
            return "InvalidDeviceIDList"
        if device.status is not None and device.status is not DeviceStatus.COMMISSIONED:
            return "NotCommissionedDeviceIDList"
        if device.device_id in self.in_progress:
            return "OtherRequestInProgressList"
        return None

    @staticmethod
    def _served(srv: str, device: Device) -> bool:
        if device.device_type is DeviceType.PPMID and device.smets1:
            return srv == UPDATE_FIRMWARE  # seed 004 CR1045: SMETS1 PPMIDs via 11.1
        return device.device_type in _TARGETS[srv]

    # --- CSP ------------------------------------------------------------------------------

    async def distribute(self, update: UpdateFirmwareRequest, devices: Sequence[str],
                         send: Callable[[AlertNotice], None]) -> DistributionReport:
        """The CSP's checks, then the image to each Comms Hub; failures become alerts."""
        report = DistributionReport()
        self.reports[update.request_id] = report
        self.in_progress.update(devices)
        try:
            await self._distribute(update, devices, report)
        finally:
            self.in_progress.difference_update(devices)
        for code, ids in report.failures.items():
            send(self.failure_alert(code, update, ids))
        return report

    async def _distribute(self, update: UpdateFirmwareRequest, devices: Sequence[str],
                          report: DistributionReport) -> None:
        def fail(code: str, ids: Iterable[str]) -> None:
            report.failures.setdefault(code, []).extend(ids)

        if len(update.image) > self.policy.csp_max_image_octets:
            fail(IMAGE_TOO_LARGE, devices)
            return
        try:
            file = decode_image(update.image, signed=_SIGNED[update.srv])
        except FirmwareImageError as exc:
            log.info("%s: image not usable: %s", update.request_id, exc)
            fail(HASH_MISMATCH, devices)
            return
        calculated = image_hash(file.manufacturer_image)
        by_hub: dict[str, list[str]] = {}
        for device_id in devices:
            device = self.inventory.get(device_id)
            model = DeviceModel(device.manufacturer, device.model, device.hardware_version)
            entries = self.cpl.entries_for(model, update.firmware_version)
            if not entries:
                fail(UNKNOWN_VERSION, [device_id])
                continue
            hashes = [e.firmware_hash for e in entries if e.firmware_hash is not None]
            if hashes and calculated not in hashes:
                fail(HASH_MISMATCH, [device_id])
                continue
            hub = self.comms_hub_of(device)
            if hub is None or self.delivery is None:
                fail(DEVICE_NOT_IDENTIFIED, [device_id])
                continue
            by_hub.setdefault(hub, []).append(device_id)
        for hub, targets in by_hub.items():
            assert self.delivery is not None
            unknown = await self.delivery.deliver(hub, update.image, tuple(targets))
            fail(DEVICE_NOT_IDENTIFIED, [t for t in targets if t in unknown])
            report.delivered.extend(t for t in targets if t not in unknown)
        for code in list(report.failures):
            if not report.failures[code]:
                del report.failures[code]

    def comms_hub_of(self, device: Device) -> str | None:
        """The CHF that serves ``device`` according to the SMI (itself for a CHF)."""
        if device.device_type is DeviceType.CHF:
            return device.device_id
        for kind in (AssociationKind.COMMS_HUB, AssociationKind.HAN_LOG):
            for other in self.inventory.associated(device.device_id, kind):
                found = self.inventory.find(other)
                if found is not None and found.device_type is DeviceType.CHF:
                    return found.device_id
        return None

    @staticmethod
    def failure_alert(code: str, update: UpdateFirmwareRequest,
                      device_ids: Sequence[str]) -> AlertNotice:
        body = etree.Element(_sr("FirmwareDistributionFailure"), nsmap={"sr": SR_NS})
        etree.SubElement(body, _sr("UpdateFirmwareRequestID")).text = update.request_id
        etree.SubElement(body, _sr("MeterIDs")).text = ",".join(device_ids)
        return AlertNotice(code, (update.sender,), body)


__all__ = [
    "FIRMWARE_SRVS", "UPDATE_FIRMWARE", "UPDATE_PPMID_FIRMWARE", "DistributionReport",
    "FirmwareDelivery", "FirmwarePolicy", "FirmwareService", "UpdateFirmwareRequest",
    "parse_request",
]
