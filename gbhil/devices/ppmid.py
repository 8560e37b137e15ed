"""PPMID and HCALCS: HAN devices without metrology, driven by CS use cases.

They join meters (CS03A2), leave them (CS04AC), report their firmware (CS08) and
trust-anchor details (CS02a), and activate firmware with the CS09 alert.
"""

from __future__ import annotations

from datetime import datetime

from gbhil.devices import credentials, firmware, joining
from gbhil.devices.core import Alert, Device, DeviceType, Handler
from gbhil.devices.trust import Role
from gbhil.gbcs.asn1_schemas import build_cs09_alert

CS09_ALERT = 0x012B


class Ppmid(Device):
    """Prepayment meter interface device."""

    DEVICE_TYPE = DeviceType.PPMID

    def handlers(self) -> dict[int, Handler]:
        return {**joining.handlers(), **firmware.handlers(), **credentials.handlers()}

    def activate_staged_firmware(self, image_hash: bytes, now: datetime) -> list[bytes]:
        """PPMIDs activate on their own after OTA and report it with CS09 (alert 8F8B)."""
        fw = firmware.slots(self)
        result = fw.activate(image_hash)
        alert = build_cs09_alert(now, fw.running_version, result)
        acb = self.keys.party(Role.ACB)  # CS09 goes to the ACB (gbcs-facts 2.8)
        return [self.build_alert(Alert(CS09_ALERT, alert, acb)).encode()]


class Hcalcs(Ppmid):
    """HAN-connected auxiliary load control switch."""

    DEVICE_TYPE = DeviceType.HCALCS
