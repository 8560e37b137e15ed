"""The CSP's firmware delivery on a simulated rig: image to the CHF, then OTA over the HAN.

The CHF's OTA server (:class:`gbhil.han.ota.OtaServer`) offers the image to the target
Devices only. Always-on Devices (ESME, PPMID) get an Image Notify and pull the image at
once; a GSME pulls at its next wake. A Device that loses power mid-transfer keeps the
blocks it has and resumes from there when power returns (:mod:`gbhil.han.ota`). The CHF
stages an image for itself directly (it is the OTA server).

Simulation shortcut: real GSMEs query the CHF for images on their own schedule; here the
delivery asks the rig's GSME node to do it at its next wake.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gbhil.devices import firmware as device_firmware
from gbhil.duis.model import format_eui
from gbhil.han.ota import parse_ota_file


class HanOtaDelivery:
    """:class:`gbhil.firmware.distribution.FirmwareDelivery` for a :class:`SimulatedRig`."""

    def __init__(self, rig: Any) -> None:
        self.rig = rig

    def _nodes(self) -> dict[str, Any]:
        out = {}
        for node in self.rig.nodes.values():
            device = getattr(node, "device", None)
            if device is not None and getattr(node, "joined", False):
                out[format_eui(device.eui)] = node
        return out

    async def deliver(self, comms_hub: str, image: bytes, targets: Sequence[str],
                      ) -> frozenset[str]:
        hub = self.rig.hub
        chf = self.rig.chf
        if format_eui(chf.eui) != comms_hub:
            return frozenset(targets)  # the CSP reaches no Comms Hub of that ID here
        nodes = self._nodes()
        on_han = [t for t in targets if t in nodes]
        unknown = frozenset(t for t in targets if t not in nodes and t != comms_hub)
        if comms_hub in targets:
            file = parse_ota_file(image)
            device_firmware.slots(chf).stage(file.manufacturer_image, file.header.version_bytes)
        if not on_han:
            return unknown
        euis = {nodes[t].device.eui for t in on_han}
        for served in hub.ota.images:
            if served.data == image and served.targets is not None:
                euis |= served.targets
        offered = hub.ota.add_image(image, targets=euis)
        for target in on_han:
            node = nodes[target]
            if hasattr(node, "check_firmware"):
                node.check_firmware = True  # sleepy: asks at its next wake
            else:
                await hub.ota.notify(node.device.eui, offered)
        return unknown


__all__ = ["HanOtaDelivery"]
